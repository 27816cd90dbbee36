//! The HTTP path resolver: the input is a request-target as hyper would parse it into a
//! `Uri`; its path goes through the fallback route's resolver against real roots on disk
//! (files, a subdirectory, and symlinks that stay in, leave the root, cross from the TFTP
//! root into the HTTP root, point up a level, or loop).
//!
//! Beyond "no panic": a file served is a regular file inside the root its prefix selects
//! (never `secret`, which sits beside the roots), and a decoded `..` segment is always
//! refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;
use sixboot::fuzzing::{HttpRoots, http_file};
use sixboot::policy::HTTP_BOOT_PREFIX;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

struct Lab {
    roots: HttpRoots,
    http: PathBuf,
    boot: PathBuf,
    rt: tokio::runtime::Runtime,
}

/// Builds the tree under the fuzz crate's target folder (idempotent, so parallel jobs
/// and reruns share it, and nothing is left in /tmp).
fn lab() -> &'static Lab {
    static LAB: OnceLock<Lab> = OnceLock::new();
    LAB.get_or_init(|| {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/http_path-roots");
        let (http, boot) = (base.join("http"), base.join("tftp"));
        for d in [http.join("sub"), boot.clone()] {
            std::fs::create_dir_all(d).unwrap();
        }
        for f in [
            base.join("secret"),
            http.join("memtest86+x64.bin"),
            http.join("sub/file"),
            boot.join("snponly.efi"),
        ] {
            std::fs::write(f, b"x").unwrap();
        }
        for (target, link) in [
            ("../secret", http.join("out")),
            ("sub/file", http.join("in")),
            ("..", http.join("up")),
            ("loop", http.join("loop")),
            ("../http/memtest86+x64.bin", boot.join("across")),
        ] {
            if link.symlink_metadata().is_err() {
                symlink(target, link).unwrap();
            }
        }
        let roots = HttpRoots::new(&http, Some(&boot)).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        Lab {
            roots,
            http: http.canonicalize().unwrap(),
            boot: boot.canonicalize().unwrap(),
            rt,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(uri) = http::Uri::try_from(data) else {
        return;
    };
    let lab = lab();
    let path = uri.path();
    let found = lab.rt.block_on(http_file(&lab.roots, path));
    let (root, below) = match path.strip_prefix(HTTP_BOOT_PREFIX) {
        Some(rest) => (&lab.boot, rest),
        None => (&lab.http, path),
    };
    let decoded: Vec<u8> = percent_decode_str(below).collect();
    if decoded.split(|&b| b == b'/').any(|seg| seg == b"..") {
        assert!(found.is_err(), "{path:?} with `..` gave {found:?}");
    }
    if let Ok(Some(file)) = found {
        assert!(
            file.starts_with(root),
            "{path:?} left {}: {}",
            root.display(),
            file.display()
        );
        assert!(file.is_file(), "{path:?} gave {}", file.display());
    }
});
