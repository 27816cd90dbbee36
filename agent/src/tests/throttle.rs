//! Thermal throttling during the run: the kernel counts each time a core or a package hit
//! its thermal limit (`thermal_throttle/{core,package}_throttle_count`, Intel only). Every
//! thread shows its core's and its package's counter, so each counter is counted once per
//! core or package, by the topology beside it. Machines without the counters read 0.

use std::collections::BTreeMap;
use std::path::Path;

/// One thread's view: its package and core, and the two counters it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thread {
    pub package: u32,
    pub core: u32,
    pub core_count: u64,
    pub package_count: u64,
}

/// The events over all cores and packages, each counter once.
pub fn total(threads: &[Thread]) -> u64 {
    let mut cores = BTreeMap::new();
    let mut packages = BTreeMap::new();
    for t in threads {
        cores.insert((t.package, t.core), t.core_count);
        packages.insert(t.package, t.package_count);
    }
    cores.values().chain(packages.values()).sum()
}

/// Reads every thread's counters now.
pub fn read() -> Vec<Thread> {
    let Ok(entries) = std::fs::read_dir("/sys/devices/system/cpu") else {
        return Vec::new();
    };
    let number = |p: &Path| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    entries
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.strip_prefix("cpu")
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| {
            let d = e.path();
            let t = d.join("thermal_throttle");
            let id =
                |f: &str| number(&d.join("topology").join(f)).and_then(|n| u32::try_from(n).ok());
            Some(Thread {
                package: id("physical_package_id")?,
                core: id("core_id")?,
                core_count: number(&t.join("core_throttle_count")).unwrap_or(0),
                package_count: number(&t.join("package_throttle_count")).unwrap_or(0),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_share_their_core_and_package_counters() {
        let t = |package, core, core_count, package_count| Thread {
            package,
            core,
            core_count,
            package_count,
        };
        // Two hyperthreads of core 0 and one of core 1 in package 0; package 1 alone.
        let threads = [
            t(0, 0, 3, 10),
            t(0, 0, 3, 10),
            t(0, 1, 1, 10),
            t(1, 0, 0, 2),
        ];
        assert_eq!(total(&threads), 3 + 1 + 10 + 2);
        assert_eq!(total(&[]), 0);
    }
}
