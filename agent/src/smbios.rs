//! The firmware's own description of the machine: SMBIOS structures from
//! `/sys/firmware/dmi/tables/DMI`, with the version from `smbios_entry_point`.
//!
//! A small parser of only the types the report needs (0 BIOS, 1 system, 2 board, 3 chassis,
//! 4 processor, 16 memory array, 17 memory device, 38 IPMI) rather than a crate: the crates
//! that read SMBIOS decode every type of every version into their own model, which we would
//! then map field by field into the report's; the eight structures here are a few offsets
//! each, and the table comes from the kernel, so no firmware access or privilege is needed.
//! Offsets and codes are those of the DMTF SMBIOS specification (DSP0134).
//!
//! Firmware fills unused strings with placeholders ("To Be Filled By O.E.M.", "Default
//! string"): those become `None`, as the report wants no placeholder values.

use sixboot_report::{Board, Chassis, Dimm, System};

/// What the report takes from SMBIOS.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Smbios {
    pub system: System,
    /// Installed memory devices (type 17 with a size), in table order.
    pub dimms: Vec<Dimm>,
    /// The maximum speed of each populated processor socket (type 4), in table order.
    pub cpu_max_mhz: Vec<Option<u32>>,
    /// An IPMI device information structure (type 38): the machine has a BMC.
    pub ipmi: bool,
}

/// One structure: its formatted area and its strings.
struct Structure<'a> {
    kind: u8,
    handle: u16,
    data: &'a [u8],
    strings: Vec<&'a [u8]>,
}

impl Structure<'_> {
    fn byte(&self, off: usize) -> Option<u8> {
        self.data.get(off).copied()
    }

    fn word(&self, off: usize) -> Option<u16> {
        Some(u16::from_le_bytes(
            self.data.get(off..off + 2)?.try_into().ok()?,
        ))
    }

    fn dword(&self, off: usize) -> Option<u32> {
        Some(u32::from_le_bytes(
            self.data.get(off..off + 4)?.try_into().ok()?,
        ))
    }

    /// The string a byte at `off` points to (1-based; 0 is "none"), placeholders dropped.
    fn string(&self, off: usize) -> Option<String> {
        let n = usize::from(self.byte(off)?);
        let raw = self.strings.get(n.checked_sub(1)?)?;
        clean(&String::from_utf8_lossy(raw))
    }
}

/// Splits the table into structures; stops at the end-of-table type (127) or at the first
/// structure that runs past the end.
fn structures(table: &[u8]) -> Vec<Structure<'_>> {
    let mut out = Vec::new();
    let mut rest = table;
    while rest.len() >= 4 {
        let (kind, len) = (rest[0], usize::from(rest[1]));
        if len < 4 || len > rest.len() {
            break;
        }
        let data = &rest[..len];
        // The strings end with an empty string: two NULs in a row (also when there are none).
        let Some(end) = rest[len..].windows(2).position(|w| w == [0, 0]) else {
            break;
        };
        let strings = rest[len..len + end]
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .collect();
        out.push(Structure {
            kind,
            handle: u16::from_le_bytes([rest[2], rest[3]]),
            data,
            strings,
        });
        if kind == 127 {
            break;
        }
        rest = &rest[len + end + 2..];
    }
    out
}

/// Trims a firmware string; `None` for empty strings and known placeholders.
pub fn clean(s: &str) -> Option<String> {
    const PLACEHOLDERS: &[&str] = &[
        "to be filled by o.e.m.",
        "not specified",
        "default string",
        "system product name",
        "system manufacturer",
        "system serial number",
        "system version",
        "base board serial number",
        "chassis serial number",
        "none",
        "n/a",
        "unknown",
        "0123456789",
        "not available",
        "not applicable",
        "o.e.m.",
        "oem",
    ];
    let t = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if t.is_empty() || t.chars().all(|c| matches!(c, '.' | '0' | 'x' | 'X' | 'F')) {
        return None;
    }
    let lower = t.to_ascii_lowercase();
    if PLACEHOLDERS.contains(&lower.as_str()) {
        return None;
    }
    Some(t.chars().filter(|c| !c.is_control()).collect())
}

/// The SMBIOS version (major, minor) from the entry point: `_SM_` (2.x) or `_SM3_` (3.x).
pub fn version(entry_point: &[u8]) -> Option<(u8, u8)> {
    if entry_point.starts_with(b"_SM3_") {
        Some((*entry_point.get(7)?, *entry_point.get(8)?))
    } else if entry_point.starts_with(b"_SM_") {
        Some((*entry_point.get(6)?, *entry_point.get(7)?))
    } else {
        None
    }
}

/// The system UUID (type 1, offset 8), as dmidecode writes it: SMBIOS 2.6 and later store
/// the first three fields little-endian. All-zero and all-FF UUIDs are placeholders.
fn uuid(b: &[u8], version: (u8, u8)) -> Option<String> {
    let b: [u8; 16] = b.try_into().ok()?;
    if b.iter().all(|&x| x == 0) || b.iter().all(|&x| x == 0xff) {
        return None;
    }
    let mut o = b;
    if version >= (2, 6) {
        o[0..4].reverse();
        o[4..6].reverse();
        o[6..8].reverse();
    }
    let h = |r: std::ops::Range<usize>| o[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    Some(format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    ))
}

/// SMBIOS chassis types (type 3, offset 5, bits 0-6) by name.
fn chassis_type(code: u8) -> Option<&'static str> {
    const NAMES: &[&str] = &[
        "Other",
        "Unknown",
        "Desktop",
        "Low Profile Desktop",
        "Pizza Box",
        "Mini Tower",
        "Tower",
        "Portable",
        "Laptop",
        "Notebook",
        "Hand Held",
        "Docking Station",
        "All in One",
        "Sub Notebook",
        "Space-saving",
        "Lunch Box",
        "Main Server Chassis",
        "Expansion Chassis",
        "Sub Chassis",
        "Bus Expansion Chassis",
        "Peripheral Chassis",
        "RAID Chassis",
        "Rack Mount Chassis",
        "Sealed-case PC",
        "Multi-system Chassis",
        "Compact PCI",
        "Advanced TCA",
        "Blade",
        "Blade Enclosure",
        "Tablet",
        "Convertible",
        "Detachable",
        "IoT Gateway",
        "Embedded PC",
        "Mini PC",
        "Stick PC",
    ];
    let name = NAMES.get(usize::from(code & 0x7f).checked_sub(1)?)?;
    (*name != "Unknown").then_some(*name)
}

/// SMBIOS memory types (type 17, offset 0x12) by name; `None` for Other and Unknown.
fn memory_type(code: u8) -> Option<&'static str> {
    Some(match code {
        0x03 => "DRAM",
        0x04 => "EDRAM",
        0x05 => "VRAM",
        0x06 => "SRAM",
        0x07 => "RAM",
        0x08 => "ROM",
        0x09 => "Flash",
        0x0a => "EEPROM",
        0x0b => "FEPROM",
        0x0c => "EPROM",
        0x0d => "CDRAM",
        0x0e => "3DRAM",
        0x0f => "SDRAM",
        0x10 => "SGRAM",
        0x11 => "RDRAM",
        0x12 => "DDR",
        0x13 => "DDR2",
        0x14 => "DDR2 FB-DIMM",
        0x18 => "DDR3",
        0x19 => "FBD2",
        0x1a => "DDR4",
        0x1b => "LPDDR",
        0x1c => "LPDDR2",
        0x1d => "LPDDR3",
        0x1e => "LPDDR4",
        0x1f => "Logical non-volatile device",
        0x20 => "HBM",
        0x21 => "HBM2",
        0x22 => "DDR5",
        0x23 => "LPDDR5",
        0x24 => "HBM3",
        _ => return None,
    })
}

/// Whether a memory array's error correction type (type 16, offset 6) corrects errors:
/// single-bit ECC, multi-bit ECC and CRC do; none and parity do not; other and unknown
/// say nothing.
fn corrects(code: u8) -> Option<bool> {
    match code {
        0x05..=0x07 => Some(true),
        0x03 | 0x04 => Some(false),
        _ => None,
    }
}

/// A memory device's size in bytes (type 17, offset 0x0C, and the extended size at 0x1C);
/// `None` when the slot is empty or the size unknown.
fn dimm_bytes(s: &Structure) -> Option<u64> {
    const MIB: u64 = 1 << 20;
    match s.word(0x0c)? {
        0 | 0xffff => None,
        0x7fff => Some(u64::from(s.dword(0x1c)? & 0x7fff_ffff) * MIB),
        n if n & 0x8000 != 0 => Some(u64::from(n & 0x7fff) << 10),
        n => Some(u64::from(n) * MIB),
    }
}

/// A memory device's speed in MT/s (0x15; the extended speed at 0x54 when it says 0xFFFF).
fn dimm_speed(s: &Structure) -> Option<u32> {
    match s.word(0x15)? {
        0 => None,
        0xffff => s.dword(0x54).filter(|&n| n != 0),
        n => Some(u32::from(n)),
    }
}

/// Reads the structure table (`DMI`) with the entry point's version.
pub fn parse(table: &[u8], version: (u8, u8)) -> Smbios {
    let all = structures(table);
    let mut out = Smbios::default();
    let ecc_of = |handle: u16| {
        all.iter()
            .find(|s| s.kind == 16 && s.handle == handle)
            .and_then(|s| s.byte(0x06))
            .and_then(corrects)
    };
    for s in &all {
        match s.kind {
            0 => {
                out.system.bios_version = s.string(0x05);
                out.system.bios_date = s.string(0x08);
            }
            1 => {
                out.system.manufacturer = s.string(0x04);
                out.system.product = s.string(0x05);
                out.system.serial = s.string(0x07);
                out.system.uuid = s.data.get(0x08..0x18).and_then(|b| uuid(b, version));
            }
            2 => {
                out.system.board = Board {
                    manufacturer: s.string(0x04),
                    product: s.string(0x05),
                    serial: s.string(0x07),
                };
            }
            3 => {
                out.system.chassis = Chassis {
                    kind: s.byte(0x05).and_then(chassis_type).map(str::to_string),
                    serial: s.string(0x07),
                };
            }
            // Status bit 6: the socket is populated.
            4 if s.byte(0x18).is_some_and(|st| st & 0x40 != 0) => {
                out.cpu_max_mhz
                    .push(s.word(0x14).filter(|&m| m != 0).map(u32::from));
            }
            17 => {
                let Some(bytes) = dimm_bytes(s) else {
                    continue;
                };
                let slot = match (s.string(0x10), s.string(0x11)) {
                    (Some(d), Some(b)) => format!("{b} {d}"),
                    (Some(d), None) => d,
                    (None, Some(b)) => b,
                    (None, None) => format!("handle {:#06x}", s.handle),
                };
                out.dimms.push(Dimm {
                    slot,
                    bytes,
                    kind: s.byte(0x12).and_then(memory_type).map(str::to_string),
                    speed_mts: dimm_speed(s),
                    manufacturer: s.string(0x17),
                    part: s.string(0x1a),
                    serial: s.string(0x18),
                    ecc: s.word(0x04).and_then(ecc_of),
                });
            }
            38 => out.ipmi = true,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DMI: &[u8] = include_bytes!("../fixtures/qemu-dmi.bin");
    const ENTRY: &[u8] = include_bytes!("../fixtures/qemu-smbios_entry_point.bin");

    #[test]
    fn qemu_tables_read_as_qemu_set_them() {
        let v = version(ENTRY).unwrap();
        assert_eq!(v, (2, 8));
        let s = parse(DMI, v);
        assert_eq!(
            s.system,
            System {
                manufacturer: Some("Sixboot-Lab".into()),
                product: Some("Burnin-VM".into()),
                serial: Some("SYS-0042".into()),
                // QEMU without -uuid: all zero, a placeholder.
                uuid: None,
                bios_version: Some("1.16.2-debian-1.16.2-1".into()),
                bios_date: Some("04/01/2014".into()),
                board: Board::default(),
                chassis: Chassis {
                    kind: Some("Other".into()),
                    serial: None,
                },
            }
        );
        assert_eq!(
            s.dimms,
            [Dimm {
                slot: "DIMM 0".into(),
                bytes: 1 << 30,
                kind: Some("RAM".into()),
                speed_mts: None,
                manufacturer: Some("QEMU".into()),
                part: None,
                serial: None,
                // QEMU's type 16 says multi-bit ECC.
                ecc: Some(true),
            }]
        );
        assert_eq!(s.cpu_max_mhz, [Some(2000)]);
        assert!(s.ipmi);
    }

    #[test]
    fn placeholders_are_none() {
        for p in [
            "To Be Filled By O.E.M.",
            "Not Specified",
            "Default string",
            "",
            "   ",
            "........",
            "FFFFFFFF",
            "00000000",
        ] {
            assert_eq!(clean(p), None, "{p:?}");
        }
        assert_eq!(clean(" PowerEdge R640 ").as_deref(), Some("PowerEdge R640"));
    }

    #[test]
    fn a_uuid_is_written_as_dmidecode_does() {
        let raw: Vec<u8> = (1..=16).collect();
        assert_eq!(
            uuid(&raw, (2, 8)).as_deref(),
            Some("04030201-0605-0807-090a-0b0c0d0e0f10")
        );
        assert_eq!(
            uuid(&raw, (2, 4)).as_deref(),
            Some("01020304-0506-0708-090a-0b0c0d0e0f10")
        );
    }

    #[test]
    fn truncated_tables_give_what_they_hold() {
        for n in 0..DMI.len() {
            let s = parse(&DMI[..n], (2, 8));
            assert!(s.dimms.len() <= 1);
        }
        // The first structure alone (BIOS) still gives its strings.
        let bios_end = 24 + DMI[24..].windows(2).position(|w| w == [0, 0]).unwrap() + 2;
        let s = parse(&DMI[..bios_end], (2, 8));
        assert_eq!(s.system.bios_date.as_deref(), Some("04/01/2014"));
        assert_eq!(s.system.serial, None);
    }

    #[test]
    fn extended_and_kib_dimm_sizes() {
        let mut data = vec![0u8; 0x22];
        data[0] = 17;
        data[1] = 0x22;
        data[0x0c..0x0e].copy_from_slice(&0x7fffu16.to_le_bytes());
        data[0x1c..0x20].copy_from_slice(&(64u32 * 1024).to_le_bytes());
        data.extend_from_slice(&[0, 0, 127, 4, 0, 0, 0, 0]);
        assert_eq!(parse(&data, (3, 2)).dimms[0].bytes, 64 << 30);
        data[0x0c..0x0e].copy_from_slice(&(0x8000u16 | 512).to_le_bytes());
        assert_eq!(parse(&data, (3, 2)).dimms[0].bytes, 512 << 10);
        data[0x0c..0x0e].copy_from_slice(&0u16.to_le_bytes());
        assert!(parse(&data, (3, 2)).dimms.is_empty());
    }
}
