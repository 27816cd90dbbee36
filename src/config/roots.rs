//! Who may write the folders sixboot serves. Whoever can write a TFTP or HTTP root (or a
//! template folder) decides what every machine on the VLAN boots, so such a root must be
//! writable by nobody but root and sixboot itself, and a root sixboot itself can write is
//! worth a warning: a compromised server could then change what it serves.
//!
//! The folder and every folder above it count, since whoever can write a parent can swap
//! the folder for another. A world-writable parent is fine only when it is sticky and owned
//! by root, like /tmp: there only an entry's owner may rename or remove it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

const OTHER_WRITE: u32 = 0o002;
const STICKY: u32 = 0o1000;

/// Why users other than root and this process could change what is served from `root`,
/// or `None` when they cannot (or `root` is missing: that is reported on its own).
pub fn writable_by_others(root: &Path) -> Option<String> {
    writable_by_others_as(root, nix::unistd::geteuid().as_raw())
}

fn writable_by_others_as(root: &Path, me: u32) -> Option<String> {
    // The real folders matter, not the symlinks that lead to them.
    let real = root.canonicalize().ok()?;
    for (depth, p) in real.ancestors().enumerate() {
        let m = std::fs::metadata(p).ok()?;
        let mode = m.mode() & 0o7777;
        let what = if depth == 0 {
            String::new()
        } else {
            format!(", above {}", real.display())
        };
        if m.uid() != 0 && m.uid() != me {
            return Some(format!(
                "{} is owned by uid {}, another user who can change it{what}",
                p.display(),
                m.uid()
            ));
        }
        let shared_tmp = depth > 0 && mode & STICKY != 0 && m.uid() == 0;
        if mode & OTHER_WRITE != 0 && !shared_tmp {
            return Some(format!(
                "{} is writable by every user (mode {mode:04o}){what}",
                p.display()
            ));
        }
    }
    None
}

/// Whether this process may write into `root`.
pub fn writable_by_self(root: &Path) -> bool {
    nix::unistd::access(root, nix::unistd::AccessFlags::W_OK).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_private_tree_under_a_sticky_tmp_is_safe() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("tftp");
        std::fs::create_dir(&root).unwrap();
        chmod(&root, 0o755);
        let me = nix::unistd::geteuid().as_raw();
        assert_eq!(writable_by_others_as(&root, me), None);
    }

    #[test]
    fn a_world_writable_root_or_parent_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let parent = d.path().join("srv");
        let root = parent.join("tftp");
        std::fs::create_dir_all(&root).unwrap();
        chmod(&root, 0o777);
        let why = writable_by_others_as(&root, me).unwrap();
        assert!(why.contains("writable by every user (mode 0777)"), "{why}");
        // Sticky on the root itself does not help: anyone may still add files.
        chmod(&root, 0o1777);
        assert!(writable_by_others_as(&root, me).is_some());
        chmod(&root, 0o755);
        chmod(&parent, 0o777);
        let why = writable_by_others_as(&root, me).unwrap();
        assert!(why.contains("above"), "{why}");
        // A sticky world-writable parent is only safe when root owns it (like /tmp);
        // a symlink to the root is judged by where it leads.
        chmod(&parent, 0o1777);
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&root, &link).unwrap();
        let owner = std::fs::metadata(&parent).unwrap().uid();
        assert_eq!(writable_by_others_as(&link, me).is_some(), owner != 0);
    }

    #[test]
    fn a_root_owned_by_another_user_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        // Root owns everything it may: hand the folder to nobody. Anyone else owns the
        // folder it made: look at it as another uid.
        let seen_by = if me == 0 {
            let nobody = Some(nix::unistd::Uid::from_raw(65534));
            nix::unistd::chown(d.path(), nobody, None).unwrap();
            me
        } else {
            me + 1
        };
        let why = writable_by_others_as(d.path(), seen_by).unwrap();
        assert!(why.contains("another user"), "{why}");
    }

    #[test]
    fn this_process_can_write_its_own_temporary_folder() {
        let d = tempfile::tempdir().unwrap();
        assert!(writable_by_self(d.path()));
    }
}
