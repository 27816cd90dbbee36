//! The baseboard management controller. It is there when the firmware lists an IPMI
//! interface (SMBIOS type 38) or the kernel's IPMI driver made `/dev/ipmi0`; the driver
//! also gives the BMC's firmware revision in sysfs.
//!
//! Its LAN addresses stay `null`: reading them needs ipmitool, whose Debian package brings
//! libfreeipmi17 (5.6 MiB installed) and libssl3 besides its own 6 MiB, about a third of
//! the image again, for two fields.

use sixboot_report::Bmc;

/// `firmware_revision` as the kernel writes it (`1.23`); blank is unknown.
pub fn firmware(text: &str) -> Option<String> {
    let t: String = text.trim().chars().filter(|c| !c.is_control()).collect();
    (!t.is_empty()).then_some(t)
}

pub fn collect(smbios_ipmi: bool) -> Bmc {
    let revision = std::fs::read_dir("/sys/class/ipmi")
        .into_iter()
        .flatten()
        .flatten()
        .find_map(|e| {
            let text = std::fs::read_to_string(e.path().join("device/bmc/firmware_revision"));
            firmware(&text.ok()?)
        });
    Bmc {
        present: smbios_ipmi || std::path::Path::new("/dev/ipmi0").exists(),
        firmware: revision,
        ipv4: None,
        ipv6: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_revision() {
        // QEMU's ipmi-bmc-sim with its default revision.
        assert_eq!(firmware("0.0\n").as_deref(), Some("0.0"));
        assert_eq!(firmware("\n"), None);
    }
}
