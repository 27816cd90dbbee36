//! What a machine is, as the image found it: the names here are a contract (tests outside
//! this repository read them from `GET /api/v1/machines/{mac}`). A value the hardware does
//! not give is `null`, never a placeholder.

use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub system: System,
    /// One entry per socket.
    pub cpus: Vec<Cpu>,
    pub memory: Memory,
    /// Real disks only: no ram, loop, zram, optical or network block devices.
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
    /// Storage controllers, GPUs and NICs.
    pub pci: Vec<Pci>,
    pub bmc: Bmc,
}

/// SMBIOS types 0 to 3.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct System {
    pub manufacturer: Option<String>,
    pub product: Option<String>,
    pub serial: Option<String>,
    pub uuid: Option<String>,
    pub bios_version: Option<String>,
    pub bios_date: Option<String>,
    pub board: Board,
    pub chassis: Chassis,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    pub manufacturer: Option<String>,
    pub product: Option<String>,
    pub serial: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chassis {
    /// SMBIOS's chassis type by name (`Rack Mount Chassis`, `Other`, ...).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub serial: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cpu {
    pub model: String,
    pub cores: u32,
    pub threads: u32,
    pub max_mhz: Option<u32>,
    /// As the kernel shows it (`0x2006e05`).
    pub microcode: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// Installed: the DIMMs' sum where SMBIOS lists them, else what the kernel maps.
    pub bytes: u64,
    pub dimms: Vec<Dimm>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dimm {
    pub slot: String,
    pub bytes: u64,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub speed_mts: Option<u32>,
    pub manufacturer: Option<String>,
    pub part: Option<String>,
    pub serial: Option<String>,
    /// Whether the memory array this DIMM sits in corrects errors.
    pub ecc: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// The kernel's name (`nvme0n1`, `sda`, `vda`).
    pub name: String,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub bytes: u64,
    pub kind: DiskKind,
    pub transport: Transport,
    /// `null` when the device has no SMART (virtio) or smartctl could not read it.
    pub smart: Option<Smart>,
}

impl Disk {
    /// How checks name this disk (`disk:<id>`): its serial, or its kernel name when it
    /// has none.
    pub fn id(&self) -> &str {
        self.serial.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskKind {
    Hdd,
    Ssd,
    Nvme,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Sata,
    Sas,
    Nvme,
    Virtio,
    Usb,
    Other,
}

/// SMART facts, each where the device has it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smart {
    /// The drive's own overall assessment.
    pub healthy: Option<bool>,
    pub power_on_hours: Option<u64>,
    pub reallocated_sectors: Option<u64>,
    pub pending_sectors: Option<u64>,
    pub media_errors: Option<u64>,
    /// NVMe's estimate of life used; may pass 100.
    pub percentage_used: Option<u16>,
    pub temperature_c: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    pub name: String,
    /// Lowercase, colon-separated.
    pub mac: String,
    pub driver: Option<String>,
    /// `null` when the link is down or the driver does not say.
    pub speed_mbps: Option<u32>,
    pub link: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pci {
    /// `0000:00:1f.2`.
    pub address: String,
    /// `vendor:device`, four hex digits each (`8086:2922`).
    pub id: String,
    pub class: PciClass,
    /// The six-digit class code (`010601`).
    pub class_code: String,
    pub driver: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PciClass {
    Storage,
    Network,
    Display,
}

/// The baseboard management controller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bmc {
    pub present: bool,
    pub firmware: Option<String>,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
}
