//! The PCI functions that matter for a machine's resale: storage controllers, network
//! adapters and display adapters (class 01, 02 and 03), from `/sys/bus/pci/devices`.

use crate::nics::driver;
use sixboot_report::{Pci, PciClass};

/// The report's class for a `class` file's value (`0x010802`), and the six-digit code.
pub fn class(text: &str) -> Option<(PciClass, String)> {
    let code = text.trim().trim_start_matches("0x").to_ascii_lowercase();
    if code.len() != 6 || !code.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let class = match &code[..2] {
        "01" => PciClass::Storage,
        "02" => PciClass::Network,
        "03" => PciClass::Display,
        _ => return None,
    };
    Some((class, code))
}

/// `vendor:device` from the `vendor` and `device` files (`0x8086`, `0x2922`).
pub fn id(vendor: &str, device: &str) -> Option<String> {
    let hex4 = |s: &str| {
        let s = s.trim().trim_start_matches("0x").to_ascii_lowercase();
        (s.len() == 4 && s.bytes().all(|c| c.is_ascii_hexdigit())).then_some(s)
    };
    Some(format!("{}:{}", hex4(vendor)?, hex4(device)?))
}

pub fn collect() -> Vec<Pci> {
    let Ok(entries) = std::fs::read_dir("/sys/bus/pci/devices") else {
        return Vec::new();
    };
    let mut out: Vec<Pci> = entries
        .flatten()
        .filter_map(|e| {
            let dir = e.path();
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            let (class, class_code) = class(&read("class"))?;
            Some(Pci {
                address: e.file_name().to_string_lossy().into_owned(),
                id: id(&read("vendor"), &read("device"))?,
                class,
                class_code,
                driver: driver(&dir.join("driver")),
            })
        })
        .collect();
    out.sort_by(|a, b| a.address.cmp(&b.address));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The class, code and id a function reads as; `None` for the classes left out.
    type Read = Option<(PciClass, &'static str, &'static str)>;

    /// `class vendor device` of each function in the fixture VM (i440FX with an NVMe, an
    /// AHCI, a virtio-blk and a virtio-net device).
    const QEMU: &[(&str, &str, &str, Read)] = &[
        ("0x060000", "0x8086", "0x1237", None),
        ("0x060100", "0x8086", "0x7000", None),
        (
            "0x010180",
            "0x8086",
            "0x7010",
            Some((PciClass::Storage, "010180", "8086:7010")),
        ),
        ("0x068000", "0x8086", "0x7113", None),
        (
            "0x030000",
            "0x1234",
            "0x1111",
            Some((PciClass::Display, "030000", "1234:1111")),
        ),
        (
            "0x010802",
            "0x1b36",
            "0x0010",
            Some((PciClass::Storage, "010802", "1b36:0010")),
        ),
        (
            "0x010601",
            "0x8086",
            "0x2922",
            Some((PciClass::Storage, "010601", "8086:2922")),
        ),
        (
            "0x010000",
            "0x1af4",
            "0x1001",
            Some((PciClass::Storage, "010000", "1af4:1001")),
        ),
        (
            "0x020000",
            "0x1af4",
            "0x1000",
            Some((PciClass::Network, "020000", "1af4:1000")),
        ),
    ];

    #[test]
    fn qemu_functions() {
        for &(c, v, d, want) in QEMU {
            let got = class(&format!("{c}\n")).map(|(k, code)| (k, code, id(v, d).unwrap()));
            assert_eq!(
                got,
                want.map(|(k, code, id)| (k, code.to_string(), id.to_string())),
                "{c}"
            );
        }
        assert_eq!(class("0x01"), None);
        assert_eq!(id("0x8086", "0x29"), None);
    }
}
