//! A sequential read of the start of each disk, with `O_DIRECT` so the page cache neither
//! hides a slow disk nor takes memory from the stress: the rate the disk gives and the
//! errors it returns. The disk is opened read-only; nothing here can write to it.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest a read may take; the bytes read by then are reported.
pub const LIMIT: Duration = Duration::from_secs(600);
const CHUNK: usize = 1 << 20;
/// `O_DIRECT` needs the buffer aligned to the logical block size, at most 4 KiB.
const ALIGN: usize = 4096;

/// How much to read: what was asked, at most the disk, in whole logical blocks.
pub fn plan(want: u64, size: u64, block: u64) -> u64 {
    let block = block.max(512);
    want.min(size) / block * block
}

/// A read's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub bytes: u64,
    pub seconds: f64,
    pub errors: u64,
    pub detail: String,
}

fn open(path: &str) -> std::io::Result<(File, bool)> {
    let direct = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path);
    match direct {
        Ok(f) => Ok((f, true)),
        // A file system without O_DIRECT (tmpfs): read through the cache rather than not at all.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            Ok((std::fs::OpenOptions::new().read(true).open(path)?, false))
        }
        Err(e) => Err(e),
    }
}

/// Reads `total` bytes of `path` from its start; `done` follows the bytes read, for a
/// caller that stops waiting. A chunk that fails counts one error and is skipped.
pub fn read(path: &str, total: u64, limit: Duration, done: &AtomicU64) -> Outcome {
    let started = Instant::now();
    let (file, direct) = match open(path) {
        Ok(f) => f,
        Err(e) => {
            return Outcome {
                bytes: 0,
                seconds: 0.0,
                errors: 1,
                detail: format!("cannot open {path}: {e}"),
            };
        }
    };
    let mut buf = vec![0u8; CHUNK + ALIGN];
    let start = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
    let buf = &mut buf[start..start + CHUNK];
    let (mut offset, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    let mut first_error = None;
    let mut stopped = false;
    while offset < total {
        if started.elapsed() >= limit {
            stopped = true;
            break;
        }
        let want = usize::try_from((total - offset).min(CHUNK as u64)).unwrap_or(CHUNK);
        match file.read_at(&mut buf[..want], offset) {
            Ok(0) => break,
            Ok(n) => {
                bytes += n as u64;
                offset += n as u64;
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{e} at byte {offset}"));
                offset += want as u64;
            }
        }
        done.store(bytes, Ordering::Relaxed);
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut detail = format!(
        "read {bytes} bytes{}",
        if direct {
            " with O_DIRECT"
        } else {
            " through the page cache"
        }
    );
    if let Some(e) = first_error {
        detail.push_str(&format!("; first error: {e}"));
    }
    if stopped {
        detail.push_str(&format!("; stopped after {} s", limit.as_secs()));
    }
    Outcome {
        bytes,
        seconds,
        errors,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn plan_is_whole_blocks_within_the_disk() {
        assert_eq!(plan(1 << 30, 64 << 20, 512), 64 << 20);
        assert_eq!(plan(64 << 20, 1 << 40, 4096), 64 << 20);
        assert_eq!(plan(10_000, 1 << 20, 4096), 8192);
        assert_eq!(plan(1 << 20, 1000, 0), 512);
    }

    #[test]
    fn reads_a_file_and_stops_at_its_end() {
        let path = std::env::temp_dir().join(format!("sixboot-agent-read-{}", std::process::id()));
        let mut f = File::create(&path).unwrap();
        f.write_all(&vec![7u8; 3 * CHUNK + 4096]).unwrap();
        f.sync_all().unwrap();
        let done = AtomicU64::new(0);
        let p = path.to_str().unwrap();
        let o = read(p, 3 * CHUNK as u64 + 4096, LIMIT, &done);
        assert_eq!(
            (o.bytes, o.errors),
            (3 * CHUNK as u64 + 4096, 0),
            "{}",
            o.detail
        );
        assert_eq!(done.load(Ordering::Relaxed), o.bytes);
        // Asked past the end: what is there.
        let o = read(p, 8 * CHUNK as u64, LIMIT, &done);
        assert_eq!(o.bytes, 3 * CHUNK as u64 + 4096);
        let o = read(p, 8 * CHUNK as u64, Duration::ZERO, &done);
        assert_eq!(o.bytes, 0);
        assert!(o.detail.ends_with("stopped after 0 s"), "{}", o.detail);
        std::fs::remove_file(&path).unwrap();
        let o = read(p, 4096, LIMIT, &done);
        assert_eq!((o.bytes, o.errors), (0, 1));
        assert!(o.detail.starts_with("cannot open"), "{}", o.detail);
    }
}
