//! Network interfaces with hardware behind them, from `/sys/class/net`: loopback and
//! virtual interfaces (bridges, tunnels, veths) have no `device` link and are left out.

use sixboot_report::Nic;
use std::path::Path;

/// The link speed from the `speed` file: the kernel writes -1 (or refuses the read) when the
/// link is down or the driver does not know.
pub fn speed(text: &str) -> Option<u32> {
    text.trim()
        .parse::<i64>()
        .ok()
        .and_then(|s| u32::try_from(s).ok())
        .filter(|&s| s > 0)
}

/// A MAC as the report writes it: lowercase, colon-separated, six bytes.
pub fn mac(text: &str) -> Option<String> {
    let m = text.trim().to_ascii_lowercase();
    let ok = m.len() == 17
        && m.split(':')
            .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()));
    ok.then_some(m)
}

/// The kernel's name for a driver, from a `driver` link (`../../bus/pci/drivers/e1000e`).
pub fn driver(link: &Path) -> Option<String> {
    Some(
        std::fs::read_link(link)
            .ok()?
            .file_name()?
            .to_string_lossy()
            .into_owned(),
    )
}

pub fn collect() -> Vec<Nic> {
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut nics: Vec<Nic> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let dir = e.path();
            if name == "lo" || !dir.join("device").exists() {
                return None;
            }
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            Some(Nic {
                mac: mac(&read("address"))?,
                driver: driver(&dir.join("device/driver")),
                speed_mbps: speed(&read("speed")),
                link: read("carrier").trim() == "1",
                name,
            })
        })
        .collect();
    nics.sort_by(|a, b| a.name.cmp(&b.name));
    nics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds() {
        assert_eq!(speed("1000\n"), Some(1000));
        // virtio-net in QEMU, and any link that is down.
        assert_eq!(speed("-1\n"), None);
        assert_eq!(speed(""), None);
    }

    #[test]
    fn macs() {
        assert_eq!(
            mac("52:54:00:B0:00:01\n").as_deref(),
            Some("52:54:00:b0:00:01")
        );
        // InfiniBand's 20-byte hardware address is no MAC.
        assert_eq!(
            mac("80:00:02:08:fe:80:00:00:00:00:00:00:00:02:c9:03:00:0a:2b:3c"),
            None
        );
        assert_eq!(mac(""), None);
    }
}
