//! The boot image's agent: PID 1's successor once the image's shell init has mounted the
//! file systems, loaded drivers and brought up IPv6. It reads what sixboot asked on the
//! kernel command line, collects what the machine is, runs its tests, posts one report
//! (the `sixboot-report` schema, shared with the server) and does what sixboot answers.
//!
//! Collecting and parsing are kept apart: each module's parser takes text, bytes or JSON
//! and returns the report's types, and is tested on fixtures captured from real tools and
//! devices (`fixtures/`); the `collect` functions only read files and run tools.

pub mod bmc;
pub mod cmdline;
pub mod console;
pub mod cpu;
pub mod disks;
pub mod memory;
pub mod nics;
pub mod pci;
pub mod post;
pub mod power;
pub mod run;
pub mod smart;
pub mod smbios;
pub mod tests;

use sixboot_report::Inventory;

/// Everything the report says the machine is, and how to self-test each disk.
pub fn inventory() -> (Inventory, Vec<disks::Found>) {
    let table = std::fs::read("/sys/firmware/dmi/tables/DMI").unwrap_or_default();
    let version = std::fs::read("/sys/firmware/dmi/tables/smbios_entry_point")
        .ok()
        .and_then(|e| smbios::version(&e))
        .unwrap_or((2, 0));
    let firmware = smbios::parse(&table, version);
    let found = disks::collect();
    let inventory = Inventory {
        system: firmware.system,
        cpus: cpu::collect(&firmware.cpu_max_mhz),
        memory: memory::collect(firmware.dimms),
        disks: found.iter().map(|f| f.disk.clone()).collect(),
        nics: nics::collect(),
        pci: pci::collect(),
        bmc: bmc::collect(firmware.ipmi),
    };
    (inventory, found)
}
