//! The machine's disks: every block device in `/sys/block` that is a drive (not a loop,
//! ram, zram, optical, floppy, network, device-mapper or md device), with what sysfs says
//! of it (size, rotational, the bus in its device path, model and serial) and what the
//! drive itself says through smartctl and nvme-cli (full model, SMART health).

use crate::run::run;
use crate::smart::{self, Identity};
use sixboot_report::{Disk, DiskKind, Transport};
use std::path::Path;
use std::time::Duration;

/// How long one smartctl or nvme-cli call may take; a dying drive can stall them.
pub const TOOL_LIMIT: Duration = Duration::from_secs(60);

/// A disk and how to run its self-test, if it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub disk: Disk,
    pub self_test: Option<SelfTestVia>,
}

/// Which tool starts and reads a drive's self-test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelfTestVia {
    /// An ATA drive, through smartctl on `/dev/<name>`.
    Smartctl,
    /// An NVMe drive, through nvme-cli on its controller (`/dev/nvme0`).
    Nvme(String),
}

/// Whether a `/sys/block` name is a drive worth reporting.
pub fn is_drive(name: &str) -> bool {
    const NOT_DRIVES: &[&str] = &["loop", "ram", "zram", "sr", "fd", "nbd", "dm-", "md"];
    !NOT_DRIVES.iter().any(|p| name.starts_with(p))
}

/// The bus a disk hangs off, from its resolved sysfs path
/// (`/sys/devices/pci0000:00/0000:00:04.0/ata3/host2/.../block/sda`). USB comes first: a
/// USB bridge's disk also has SCSI hosts in its path.
pub fn transport(sysfs_path: &str) -> Transport {
    let has = |part: &str| sysfs_path.split('/').any(|p| p.starts_with(part));
    if has("usb") {
        Transport::Usb
    } else if has("nvme") {
        Transport::Nvme
    } else if has("virtio") {
        Transport::Virtio
    } else if has("ata") {
        Transport::Sata
    } else if has("end_device-") || has("sas_") || has("port-") {
        Transport::Sas
    } else {
        Transport::Other
    }
}

/// NVMe by name; otherwise the queue's `rotational` flag tells spinning from solid state.
pub fn kind(name: &str, rotational: &str) -> DiskKind {
    if name.starts_with("nvme") {
        DiskKind::Nvme
    } else if rotational.trim() == "0" {
        DiskKind::Ssd
    } else {
        DiskKind::Hdd
    }
}

/// The unit serial number from a SCSI VPD page 0x80 (`device/vpd_pg80`): a 4-byte header
/// (page code 0x80, length in bytes 2-3), then ASCII padded with spaces.
pub fn vpd_serial(page: &[u8]) -> Option<String> {
    if page.len() < 4 || page[1] != 0x80 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([page[2], page[3]]));
    let raw = page.get(4..4 + len).unwrap_or(&page[4..]);
    clean(&String::from_utf8_lossy(raw))
}

/// Trimmed, printable, non-empty.
fn clean(s: &str) -> Option<String> {
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Lists the drives, asking smartctl (and nvme-cli for NVMe) about each.
pub fn collect() -> Vec<Found> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_drive(n))
        .collect();
    names.sort();
    names.iter().filter_map(|n| one(n)).collect()
}

fn one(name: &str) -> Option<Found> {
    let sys = Path::new("/sys/block").join(name);
    let sectors: u64 = read(sys.join("size"))?.trim().parse().ok()?;
    if sectors == 0 {
        return None;
    }
    let path = std::fs::canonicalize(&sys).ok()?;
    let transport = transport(&path.to_string_lossy());
    let kind = kind(
        name,
        &read(sys.join("queue/rotational")).unwrap_or_default(),
    );
    let sysfs = Identity {
        model: read(sys.join("device/model")).and_then(|m| clean(&m)),
        serial: read(sys.join("device/serial"))
            .or_else(|| read(sys.join("serial")))
            .and_then(|s| clean(&s))
            .or_else(|| vpd_serial(&std::fs::read(sys.join("device/vpd_pg80")).ok()?)),
        bytes: sectors.checked_mul(512),
    };
    let dev = format!("/dev/{name}");

    // virtio disks have no SMART: smartctl cannot even tell their type.
    let smartctl = (transport != Transport::Virtio)
        .then(|| run("smartctl", &["--json", "-a", &dev], TOOL_LIMIT))
        .flatten()
        .map(|r| r.stdout)
        .unwrap_or_default();
    let mut tool = smart::identity_from_smartctl(&smartctl);
    let mut health = smart::from_smartctl(&smartctl);
    let mut self_test =
        crate::tests::self_test::ata_supported(&smartctl).then_some(SelfTestVia::Smartctl);

    if kind == DiskKind::Nvme
        && let Some(ctrl) = nvme_controller(&sys)
    {
        let ctrl_dev = format!("/dev/{ctrl}");
        let nvme = |what: &str| {
            run("nvme", &[what, &ctrl_dev, "-o", "json"], TOOL_LIMIT)
                .map(|r| r.stdout)
                .unwrap_or_default()
        };
        let id = nvme("id-ctrl");
        let from_cli = smart::identity_from_nvme_id_ctrl(&id);
        tool.model = tool.model.or(from_cli.model);
        tool.serial = tool.serial.or(from_cli.serial);
        health = smart::merge(smart::from_nvme_smart_log(&nvme("smart-log")), health);
        self_test = crate::tests::self_test::nvme_supported(&id).then_some(SelfTestVia::Nvme(ctrl));
    }

    Some(Found {
        disk: Disk {
            name: name.to_string(),
            model: tool.model.or(sysfs.model),
            serial: tool.serial.or(sysfs.serial),
            bytes: sysfs.bytes.or(tool.bytes)?,
            kind,
            transport,
            smart: health,
        },
        self_test,
    })
}

/// The NVMe controller (`nvme0`) a namespace (`nvme0n1`) belongs to: its `device` link.
fn nvme_controller(sys: &Path) -> Option<String> {
    let target = std::fs::read_link(sys.join("device")).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `readlink -f /sys/block/*`, rotational, size, logical block size, in QEMU.
    const QEMU: &str = include_str!("../fixtures/qemu-block-devices.txt");
    const VPD: &[u8] = include_bytes!("../fixtures/qemu-sda-vpd_pg80.bin");

    #[test]
    fn qemu_buses_and_kinds() {
        let got: Vec<(String, Transport, DiskKind)> = QEMU
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                let name = f[0].rsplit('/').next().unwrap().to_string();
                (name.clone(), transport(f[0]), kind(&name, f[1]))
            })
            .collect();
        assert_eq!(
            got,
            [
                ("nvme0n1".into(), Transport::Nvme, DiskKind::Nvme),
                // rotation_rate=1 on the ide-hd: a non-rotating (solid state) disk.
                ("sda".into(), Transport::Sata, DiskKind::Ssd),
                ("vda".into(), Transport::Virtio, DiskKind::Hdd),
            ]
        );
    }

    #[test]
    fn other_buses() {
        assert_eq!(
            transport(
                "/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb"
            ),
            Transport::Usb
        );
        assert_eq!(
            transport(
                "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/host0/port-0:0/end_device-0:0/target0:0:0/0:0:0:0/block/sda"
            ),
            Transport::Sas
        );
        assert_eq!(
            transport(
                "/sys/devices/pci0000:00/0000:00:01.0/0000:02:00.0/host0/target0:2:0/0:2:0:0/block/sda"
            ),
            Transport::Other
        );
    }

    #[test]
    fn drives_only() {
        for n in ["sda", "nvme0n1", "vda", "mmcblk0"] {
            assert!(is_drive(n), "{n}");
        }
        for n in [
            "loop0", "ram0", "zram0", "sr0", "fd0", "nbd0", "dm-0", "md127",
        ] {
            assert!(!is_drive(n), "{n}");
        }
    }

    #[test]
    fn vpd_page_serial() {
        assert_eq!(vpd_serial(VPD).as_deref(), Some("SATA-0002"));
        assert_eq!(vpd_serial(&VPD[..3]), None);
        assert_eq!(vpd_serial(&VPD[..10]).as_deref(), Some("SATA-0"));
        assert_eq!(vpd_serial(&[0, 0x83, 0, 4, b'a', b'b', b'c', b'd']), None);
    }
}
