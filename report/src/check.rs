//! One test's measurement, named by the part of the machine it measured.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A test's measured facts. Which values a check carries depends on its name (see
/// [`CheckName::needs`]); the rest are `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub component: Component,
    pub name: CheckName,
    /// What the tool said, for a person; may be empty.
    #[serde(default)]
    pub detail: String,
    pub values: Values,
}

/// The part of the machine a check is about. On the wire: `cpu`, `memory`, `system`,
/// `disk:<serial>` or `nic:<mac>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    Cpu,
    Memory,
    System,
    /// A disk by [`crate::Disk::id`].
    Disk(String),
    /// A NIC by its MAC, lowercase and colon-separated.
    Nic(String),
}

/// The component names, for error messages.
pub const COMPONENTS: &str = "cpu, memory, system, disk:<serial>, nic:<mac>";

impl Component {
    pub fn parse(s: &str) -> Option<Component> {
        match s {
            "cpu" => Some(Component::Cpu),
            "memory" => Some(Component::Memory),
            "system" => Some(Component::System),
            _ => match s.split_once(':') {
                Some(("disk", id)) if !id.is_empty() => Some(Component::Disk(id.into())),
                Some(("nic", mac)) if !mac.is_empty() => Some(Component::Nic(mac.into())),
                _ => None,
            },
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Component::Cpu => f.write_str("cpu"),
            Component::Memory => f.write_str("memory"),
            Component::System => f.write_str("system"),
            Component::Disk(id) => write!(f, "disk:{id}"),
            Component::Nic(mac) => write!(f, "nic:{mac}"),
        }
    }
}

impl Serialize for Component {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Component {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Component::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown component `{s}`; one of {COMPONENTS}"))
        })
    }
}

/// The tests the image runs, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    /// stress-ng with verification (cpu: every thread; memory: most of the free memory).
    Stress,
    /// Machine-check events the kernel logged (cpu).
    Mce,
    /// Thermal throttling events during the run, from the kernel's counters (cpu).
    Throttle,
    /// EDAC corrected and uncorrected counts before and after (memory).
    Edac,
    /// The drive's short self-test (disk).
    SelfTest,
    /// A read-only sequential read (disk).
    Read,
}

impl CheckName {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Stress => "stress",
            CheckName::Mce => "mce",
            CheckName::Throttle => "throttle",
            CheckName::Edac => "edac",
            CheckName::SelfTest => "self_test",
            CheckName::Read => "read",
        }
    }

    /// The component kind (`cpu`, `memory`, `disk`) this test measures.
    pub fn kind(self) -> &'static str {
        match self {
            CheckName::Stress => "cpu or memory",
            CheckName::Mce | CheckName::Throttle => "cpu",
            CheckName::Edac => "memory",
            CheckName::SelfTest | CheckName::Read => "disk",
        }
    }

    /// Whether this test measures `c`.
    pub fn fits(self, c: &Component) -> bool {
        matches!(
            (self, c),
            (CheckName::Stress, Component::Cpu | Component::Memory)
                | (CheckName::Mce | CheckName::Throttle, Component::Cpu)
                | (CheckName::Edac, Component::Memory)
                | (CheckName::SelfTest | CheckName::Read, Component::Disk(_))
        )
    }

    /// The values this test must carry.
    pub fn needs(self) -> &'static [&'static str] {
        match self {
            CheckName::Stress => &["exit_code", "errors", "seconds"],
            CheckName::Mce | CheckName::Throttle => &["events"],
            CheckName::Edac => &["corrected", "uncorrected", "count"],
            CheckName::SelfTest => &["status"],
            CheckName::Read => &["bytes", "seconds", "errors"],
        }
    }
}

/// How a drive's self-test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfTest {
    Passed,
    Failed,
    /// The drive has no self-test (not a fault).
    Unsupported,
    /// Still running when the image's bounded wait ended.
    Timeout,
    /// The drive or the kernel aborted it.
    Aborted,
}

/// Measured values, by name. Every one is optional here; [`CheckName::needs`] says which
/// a check must carry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Values {
    /// A tool's exit status.
    pub exit_code: Option<i32>,
    /// Errors the test found (verification failures, read errors).
    pub errors: Option<u64>,
    pub seconds: Option<f64>,
    pub bytes: Option<u64>,
    pub mb_per_s: Option<f64>,
    pub events: Option<u64>,
    /// EDAC totals after the run, and before it.
    pub corrected: Option<u64>,
    pub uncorrected: Option<u64>,
    pub corrected_before: Option<u64>,
    pub uncorrected_before: Option<u64>,
    /// How many units the check covered (memory controllers, threads).
    pub count: Option<u64>,
    pub status: Option<SelfTest>,
}

impl Values {
    /// Whether the value named `name` is set.
    pub fn has(&self, name: &str) -> bool {
        match name {
            "exit_code" => self.exit_code.is_some(),
            "errors" => self.errors.is_some(),
            "seconds" => self.seconds.is_some(),
            "bytes" => self.bytes.is_some(),
            "mb_per_s" => self.mb_per_s.is_some(),
            "events" => self.events.is_some(),
            "corrected" => self.corrected.is_some(),
            "uncorrected" => self.uncorrected.is_some(),
            "corrected_before" => self.corrected_before.is_some(),
            "uncorrected_before" => self.uncorrected_before.is_some(),
            "count" => self.count.is_some(),
            "status" => self.status.is_some(),
            _ => false,
        }
    }
}
