//! Small hot files (the iPXE images) kept in memory once read, so a hundred machines
//! booting at once don't each read them from disk.
//!
//! An entry is keyed by canonical path and only used while the file still has the same
//! device, inode, length and mtime ([`FileStamp`]); a changed file is read again and
//! replaces the entry. Files over `max_file` bytes are never kept, and once `max_total`
//! bytes are held new files are served from disk instead: no eviction churn under load.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub mtime_ns: i128,
}

impl FileStamp {
    pub fn of(meta: &std::fs::Metadata) -> FileStamp {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// The in-memory file cache; the shell keeps it behind a mutex.
#[derive(Debug)]
pub struct Cache {
    max_file: u64,
    max_total: u64,
    total: u64,
    entries: HashMap<PathBuf, (FileStamp, Arc<[u8]>)>,
}

impl Cache {
    pub fn new(max_file: u64, max_total: u64) -> Cache {
        Cache {
            max_file,
            max_total,
            total: 0,
            entries: HashMap::new(),
        }
    }

    /// The contents of `path` if cached for exactly this version.
    pub fn get(&self, path: &Path, stamp: &FileStamp) -> Option<Arc<[u8]>> {
        self.entries
            .get(path)
            .filter(|(s, _)| s == stamp)
            .map(|(_, d)| d.clone())
    }

    /// Whether a file of this version would be kept; ask before reading it whole.
    pub fn wants(&self, path: &Path, stamp: &FileStamp) -> bool {
        let freed = self.entries.get(path).map_or(0, |(s, _)| s.len);
        stamp.len <= self.max_file && self.total - freed + stamp.len <= self.max_total
    }

    /// Keeps `data` as the contents of `path` at `stamp`, if [`Cache::wants`] it.
    pub fn insert(&mut self, path: PathBuf, stamp: FileStamp, data: Arc<[u8]>) -> bool {
        if data.len() as u64 != stamp.len || !self.wants(&path, &stamp) {
            return false;
        }
        if let Some((old, _)) = self.entries.insert(path, (stamp, data)) {
            self.total -= old.len;
        }
        self.total += stamp.len;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(len: u64, mtime_ns: i128) -> FileStamp {
        FileStamp {
            dev: 1,
            ino: 2,
            len,
            mtime_ns,
        }
    }

    fn bytes(n: usize) -> Arc<[u8]> {
        vec![7u8; n].into()
    }

    #[test]
    fn hit_only_for_same_version() {
        let mut c = Cache::new(100, 1000);
        let p = Path::new("/srv/undionly.kpxe");
        assert!(c.insert(p.into(), stamp(10, 1), bytes(10)));
        assert_eq!(c.get(p, &stamp(10, 1)).as_deref(), Some(&[7u8; 10][..]));
        assert_eq!(c.get(p, &stamp(10, 2)), None);
        assert!(c.insert(p.into(), stamp(20, 2), bytes(20)));
        assert_eq!(c.total, 20);
    }

    #[test]
    fn respects_size_caps() {
        let mut c = Cache::new(100, 150);
        assert!(!c.insert("/big".into(), stamp(101, 0), bytes(101)));
        assert!(c.insert("/a".into(), stamp(100, 0), bytes(100)));
        assert!(!c.wants(Path::new("/b"), &stamp(60, 0)));
        assert!(!c.insert("/b".into(), stamp(60, 0), bytes(60)));
        assert!(c.insert("/b".into(), stamp(50, 0), bytes(50)));
        assert!(
            !c.insert("/c".into(), stamp(5, 0), bytes(4)),
            "length must match the stamp"
        );
        assert_eq!(c.total, 150);
    }
}
