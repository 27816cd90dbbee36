//! What the boot image's agent sends sixboot after a step, and what sixboot answers: the
//! one schema both ends compile against, so neither can drift from the other.
//!
//! The image reports facts only: what the machine is ([`Inventory`]) and what each test
//! measured ([`Check`]). Whether a part passed is decided by sixboot's verdict rules,
//! never here and never in the image.

mod check;
mod inventory;
mod validate;

pub use check::{Check, CheckName, Component, SelfTest, Values};
pub use inventory::{
    Bmc, Board, Chassis, Cpu, Dimm, Disk, DiskKind, Inventory, Memory, Nic, Pci, PciClass, Smart,
    System, Transport,
};
pub use validate::Invalid;

use serde::{Deserialize, Serialize};

/// Largest report body sixboot takes. A big server's inventory is a few tens of KiB.
pub const MAX_REPORT_BYTES: usize = 256 << 10;

/// One step's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Which step ran: the image's `sixboot.step`, or `burnin` when booted from the menu.
    pub step: Step,
    /// How long the tests ran, in seconds.
    pub duration_s: u64,
    pub inventory: Inventory,
    pub checks: Vec<Check>,
}

/// The steps that run the image and report. Memtest86+ is a step of a pipeline too, but
/// it never reports, so it is not one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Inventory plus a few seconds of every test.
    Inventory,
    /// The full tests, for the configured duration.
    Burnin,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Inventory => "inventory",
            Step::Burnin => "burnin",
        }
    }

    pub fn from_name(s: &str) -> Option<Step> {
        match s {
            "inventory" => Some(Step::Inventory),
            "burnin" => Some(Step::Burnin),
            _ => None,
        }
    }
}

/// What the image does once its report is stored, as sixboot tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Then {
    /// Boot again: the machine's pipeline has another step (or ends at the disk or menu).
    Reboot,
    /// The pipeline ends here with the machine off.
    Poweroff,
    /// No pipeline: follow the image's own `sixboot.after`.
    Stay,
}

/// sixboot's answer to a stored report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    pub stored: bool,
    /// `PASS`, or `FAIL` with the first failing part and check.
    pub result: String,
    pub then: Then,
}

impl Report {
    /// Reads a report and checks every value's range and every cross-reference; an error
    /// names the field's path (`inventory.disks[2].bytes`).
    pub fn parse(body: &[u8]) -> Result<Report, Invalid> {
        let de = &mut serde_json::Deserializer::from_slice(body);
        let report: Report = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() || inner.is_io() {
                Invalid::Malformed(inner.to_string())
            } else {
                Invalid::Schema {
                    path,
                    why: inner.to_string(),
                }
            }
        })?;
        report.validate()?;
        Ok(report)
    }
}
