//! The vocabulary of a machine's boot steps: which protocol took a step and what the step
//! was. Both travel as these types between the protocols, the timeline, the machine records
//! and the store; their text forms are stable, because the API, the dashboard, the log and
//! the store's rows show them, and scripts outside this repository read them.

use std::fmt;

/// The protocol (or the API) that took a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Dhcp4,
    Tftp,
    Ra,
    Dhcp6,
    Http,
    /// A change an operator or the burn-in image made through the HTTP API.
    Api,
}

/// What happened at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// A DHCP reply left, with its lease on disk.
    Answered,
    /// Not answered, for a reason the detail names.
    Refused,
    /// A router solicitation was heard; an advertisement is scheduled.
    Solicited,
    /// A whole file was sent.
    Served,
    /// A transfer ended before the whole file was sent.
    Ended,
    /// A file asked for over HTTP is not there.
    Missing,
    /// A per-machine iPXE script was rendered.
    Script,
    /// The next action was set through the API.
    Next,
    /// A burn-in report arrived.
    Report,
}

/// Every protocol, for reading a stored step back.
const PROTOCOLS: [Protocol; 6] = [
    Protocol::Dhcp4,
    Protocol::Tftp,
    Protocol::Ra,
    Protocol::Dhcp6,
    Protocol::Http,
    Protocol::Api,
];

/// Every stage, for reading a stored step back.
const STAGES: [Stage; 9] = [
    Stage::Answered,
    Stage::Refused,
    Stage::Solicited,
    Stage::Served,
    Stage::Ended,
    Stage::Missing,
    Stage::Script,
    Stage::Next,
    Stage::Report,
];

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Dhcp4 => "dhcp4",
            Protocol::Tftp => "tftp",
            Protocol::Ra => "ra",
            Protocol::Dhcp6 => "dhcp6",
            Protocol::Http => "http",
            Protocol::Api => "api",
        }
    }

    /// The protocol whose [`Protocol::as_str`] is `s`.
    pub fn from_name(s: &str) -> Option<Protocol> {
        PROTOCOLS.into_iter().find(|p| p.as_str() == s)
    }
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Answered => "answered",
            Stage::Refused => "refused",
            Stage::Solicited => "solicited",
            Stage::Served => "served",
            Stage::Ended => "ended",
            Stage::Missing => "missing",
            Stage::Script => "script",
            Stage::Next => "next",
            Stage::Report => "report",
        }
    }

    /// The stage whose [`Stage::as_str`] is `s`.
    pub fn from_name(s: &str) -> Option<Stage> {
        STAGES.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Protocol {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl serde::Serialize for Stage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_form_reads_back_and_none_is_shared() {
        for p in PROTOCOLS {
            assert_eq!(Protocol::from_name(p.as_str()), Some(p));
        }
        for s in STAGES {
            assert_eq!(Stage::from_name(s.as_str()), Some(s));
        }
        let mut names: Vec<&str> = STAGES.iter().map(|s| s.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), STAGES.len());
        assert_eq!(Stage::from_name("Served"), None);
        assert_eq!(Protocol::from_name("dhcp"), None);
    }
}
