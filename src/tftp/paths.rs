//! From the file name in a request to a file inside `[tftp] root`, or a refusal.
//!
//! Two steps. [`normalize`] is pure: PXE ROMs send both `/undionly.kpxe` and
//! `undionly.kpxe`, some send `\`, so a leading separator maps into the root, `\` counts as
//! `/`, and any `..` that would climb out of the root is refused. [`resolve`] then asks the
//! filesystem, because only it knows where symlinks lead: the canonical path must still lie
//! inside the (canonical) root, and must be a regular file. The open itself is confined to
//! the root by the kernel (`openat2`, Linux 5.6 or later), so a symlink swapped in after
//! the check cannot lead it out.

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::wire::ErrorCode;

/// Why a requested name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// A NUL byte inside the name.
    Nul,
    /// A `..` that would leave the root.
    Escape,
    /// A symlink (anywhere on the way) that leads outside the root.
    SymlinkEscape,
    /// Nothing there.
    NotFound,
    /// The root itself, a directory or a device: only regular files are served.
    NotAFile,
    /// There, but the server may not read it.
    Unreadable,
}

impl PathError {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            PathError::Nul => "path_nul",
            PathError::Escape => "path_escape",
            PathError::SymlinkEscape => "path_symlink_escape",
            PathError::NotFound => "not_found",
            PathError::NotAFile => "not_a_file",
            PathError::Unreadable => "unreadable",
        }
    }

    /// What the client is told. Escapes get "access violation", like a missing permission.
    pub fn code(self) -> ErrorCode {
        match self {
            PathError::NotFound => ErrorCode::FileNotFound,
            _ => ErrorCode::AccessViolation,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            PathError::NotFound => "file not found",
            PathError::NotAFile => "not a file",
            _ => "access violation",
        }
    }
}

/// The requested name as a path relative to the root, without `.`, `..` or empty parts.
pub fn normalize(name: &[u8]) -> Result<PathBuf, PathError> {
    if name.contains(&0) {
        return Err(PathError::Nul);
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in name.split(|&c| c == b'/' || c == b'\\') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop().ok_or(PathError::Escape)?;
            }
            _ => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err(PathError::NotAFile);
    }
    Ok(parts.iter().map(|p| OsStr::from_bytes(p)).collect())
}

/// A file found inside the root, already open.
#[derive(Debug)]
pub struct Resolved {
    /// Canonical path: the cache key.
    pub path: PathBuf,
    pub file: File,
    pub meta: Metadata,
}

/// Finds and opens `rel` under `root`, which must itself be canonical. The regular-file
/// check is made on the open file, so what is checked is what gets served.
pub fn resolve(root: &Path, rel: &Path) -> Result<Resolved, PathError> {
    let path = std::fs::canonicalize(root.join(rel)).map_err(PathError::from_io)?;
    let inside = path
        .strip_prefix(root)
        .map_err(|_| PathError::SymlinkEscape)?;
    let file = open_beneath(root, inside).map_err(PathError::from_io)?;
    let meta = file.metadata().map_err(PathError::from_io)?;
    if !meta.is_file() {
        return Err(PathError::NotAFile);
    }
    Ok(Resolved { path, file, meta })
}

/// Opens `inside`, the part of a canonical path below `root`, for reading. The kernel
/// refuses any way out of `root` (`RESOLVE_BENEATH`) and any symlink at all
/// (`RESOLVE_NO_SYMLINKS`, as a canonical path has none): the file opened is the one
/// [`resolve`] checked, or none. Non-blocking, so a FIFO in the root cannot hang the open;
/// regular files ignore it.
fn open_beneath(root: &Path, inside: &Path) -> io::Result<File> {
    let dir = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    // `.` for the root itself, which a symlink can name.
    let file = nix::fcntl::openat2(&dir, &Path::new(".").join(inside), how)?;
    Ok(file.into())
}

impl PathError {
    /// What an I/O error on the way to the file means for the client.
    pub fn from_io(e: std::io::Error) -> PathError {
        match e.kind() {
            std::io::ErrorKind::PermissionDenied => PathError::Unreadable,
            // Also ENOTDIR, and ELOOP (a symlink loop, or one swapped in since the check):
            // nothing servable there.
            _ => PathError::NotFound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(name: &[u8]) -> PathBuf {
        normalize(name).unwrap()
    }

    #[test]
    fn leading_separators_map_into_root() {
        assert_eq!(ok(b"undionly.kpxe"), PathBuf::from("undionly.kpxe"));
        assert_eq!(ok(b"/undionly.kpxe"), PathBuf::from("undionly.kpxe"));
        assert_eq!(ok(b"//efi//snponly.efi"), PathBuf::from("efi/snponly.efi"));
        assert_eq!(
            ok(b"\\efi\\boot\\bootx64.efi"),
            PathBuf::from("efi/boot/bootx64.efi")
        );
        assert_eq!(ok(b"./a/./b"), PathBuf::from("a/b"));
    }

    #[test]
    fn dotdot_inside_root_is_fine() {
        assert_eq!(ok(b"a/b/../c"), PathBuf::from("a/c"));
        assert_eq!(ok(b"a/../b"), PathBuf::from("b"));
    }

    #[test]
    fn refuses_escape_nul_and_root() {
        assert_eq!(normalize(b"../etc/passwd"), Err(PathError::Escape));
        assert_eq!(normalize(b"/../etc/passwd"), Err(PathError::Escape));
        assert_eq!(normalize(b"a/../../etc/passwd"), Err(PathError::Escape));
        assert_eq!(normalize(b"..\\..\\windows"), Err(PathError::Escape));
        assert_eq!(normalize(b"a\0b"), Err(PathError::Nul));
        assert_eq!(normalize(b"/"), Err(PathError::NotAFile));
        assert_eq!(normalize(b""), Err(PathError::NotAFile));
        assert_eq!(normalize(b"a/.."), Err(PathError::NotAFile));
    }

    #[test]
    fn non_utf8_names_pass_through() {
        assert_eq!(ok(b"\xff.bin").as_os_str().as_bytes(), b"\xff.bin");
    }

    struct Tree {
        _dir: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
    }

    fn tree() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let root = base.join("root");
        let outside = base.join("secret");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(&outside, b"secret").unwrap();
        std::fs::write(root.join("sub/file"), b"ok").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("leak")).unwrap();
        std::os::unix::fs::symlink(&base, root.join("up")).unwrap();
        std::os::unix::fs::symlink("sub/file", root.join("inside")).unwrap();
        std::os::unix::fs::symlink("nowhere", root.join("dangling")).unwrap();
        std::os::unix::fs::symlink(".", root.join("self")).unwrap();
        Tree {
            _dir: dir,
            root,
            outside,
        }
    }

    #[test]
    fn resolves_files_and_inner_symlinks() {
        let t = tree();
        assert_eq!(
            resolve(&t.root, &ok(b"/sub/file")).unwrap().path,
            t.root.join("sub/file")
        );
        assert_eq!(
            resolve(&t.root, &ok(b"inside")).unwrap().path,
            t.root.join("sub/file")
        );
        assert_eq!(resolve(&t.root, &ok(b"inside")).unwrap().meta.len(), 2);
    }

    #[test]
    fn refuses_symlinks_leading_out() {
        let t = tree();
        assert!(t.outside.exists());
        assert_eq!(
            resolve(&t.root, &ok(b"leak")).unwrap_err(),
            PathError::SymlinkEscape
        );
        assert_eq!(
            resolve(&t.root, &ok(b"up/secret")).unwrap_err(),
            PathError::SymlinkEscape
        );
        // Leaves and re-enters the root through a symlink: only where it ends counts.
        assert_eq!(
            resolve(&t.root, &ok(b"up/root/sub/file")).unwrap().path,
            t.root.join("sub/file")
        );
    }

    #[test]
    fn refuses_missing_and_directories() {
        let t = tree();
        assert_eq!(
            resolve(&t.root, &ok(b"nope")).unwrap_err(),
            PathError::NotFound
        );
        assert_eq!(
            resolve(&t.root, &ok(b"dangling")).unwrap_err(),
            PathError::NotFound
        );
        assert_eq!(
            resolve(&t.root, &ok(b"sub/file/x")).unwrap_err(),
            PathError::NotFound
        );
        assert_eq!(
            resolve(&t.root, &ok(b"sub")).unwrap_err(),
            PathError::NotAFile
        );
        assert_eq!(
            resolve(&t.root, &ok(b"self")).unwrap_err(),
            PathError::NotAFile
        );
    }

    #[test]
    fn the_open_alone_cannot_leave_the_root() {
        let t = tree();
        let outside = t.outside.to_str().unwrap();
        for rel in ["leak", "up/secret", "../secret", outside, "inside"] {
            assert!(open_beneath(&t.root, Path::new(rel)).is_err(), "{rel}");
        }
        assert!(open_beneath(&t.root, Path::new("sub/file")).is_ok());
    }
}
