//! How much memory the machine has. The firmware's DIMM list (SMBIOS type 17) is what is
//! installed; without one, the kernel's online memory blocks count what it maps (close to
//! installed, with no reserved holes taken off); `MemTotal` is the last resort, a little
//! less than installed since the kernel's own image and reservations are not in it.

use sixboot_report::{Dimm, Memory};

/// A `/proc/meminfo` field in bytes (`MemTotal`, `MemAvailable`).
pub fn meminfo_bytes(meminfo: &str, field: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        let kib: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
        kib.checked_mul(1024)
    })
}

/// The memory block size, from `block_size_bytes` (hex without `0x`).
pub fn block_size(hex: &str) -> Option<u64> {
    u64::from_str_radix(hex.trim(), 16).ok().filter(|&n| n > 0)
}

/// The online memory blocks' total, from `/sys/devices/system/memory`.
fn online_blocks() -> Option<u64> {
    let base = std::path::Path::new("/sys/devices/system/memory");
    let size = block_size(&std::fs::read_to_string(base.join("block_size_bytes")).ok()?)?;
    let online = std::fs::read_dir(base)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("memory"))
        .filter(|e| {
            std::fs::read_to_string(e.path().join("state")).is_ok_and(|s| s.trim() == "online")
        })
        .count();
    (online > 0).then(|| size * online as u64)
}

/// The installed total with the firmware's DIMMs.
pub fn collect(dimms: Vec<Dimm>) -> Memory {
    let bytes = if dimms.is_empty() {
        online_blocks()
            .or_else(|| {
                let m = std::fs::read_to_string("/proc/meminfo").ok()?;
                meminfo_bytes(&m, "MemTotal")
            })
            .unwrap_or(0)
    } else {
        dimms.iter().map(|d| d.bytes).sum()
    };
    Memory { bytes, dimms }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU: &str = include_str!("../fixtures/qemu-meminfo.txt");

    #[test]
    fn meminfo_fields_in_bytes() {
        assert_eq!(meminfo_bytes(QEMU, "MemTotal"), Some(983_448 * 1024));
        assert_eq!(meminfo_bytes(QEMU, "MemAvailable"), Some(787_812 * 1024));
        assert_eq!(meminfo_bytes(QEMU, "Mem"), None);
        assert_eq!(meminfo_bytes("MemTotal: lots", "MemTotal"), None);
    }

    #[test]
    fn block_size_is_hex() {
        // QEMU's (and most x86 machines') 128 MiB.
        assert_eq!(block_size("8000000\n"), Some(128 << 20));
        assert_eq!(block_size("zz"), None);
    }
}
