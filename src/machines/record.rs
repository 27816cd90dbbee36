//! One machine's record and timeline, and the JSON views the API, the dashboard and the
//! live updates show of it.

use crate::store::{MACHINE_EVENTS_KEPT, MachineEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::IpAddr;

/// Addresses kept per machine, newest first.
const ADDRESSES_KEPT: usize = 4;

/// What is stored of a machine (as JSON, opaque to the store). Every field has a default
/// so records written by an older sixboot still load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    /// DHCPv6 client DUID, hex.
    pub duid: String,
    pub iaid: Option<u32>,
    /// SMBIOS fields and iPXE's platform, from the per-machine script URL.
    pub uuid: String,
    pub serial: String,
    pub manufacturer: String,
    pub product: String,
    pub platform: String,
    pub buildarch: String,
    pub addresses: Vec<IpAddr>,
    /// Unix milliseconds.
    pub first_seen: u64,
    pub last_seen: u64,
    /// The latest stage, as `protocol stage`, and what it gave.
    pub stage: String,
    pub stage_detail: String,
    /// Set through the API; `None` leaves the `[[host]]` pin or the menu.
    pub next: Option<String>,
    /// The latest report as the image sent it, when, and its label (`PASS`, `FAIL x`).
    pub report: Option<Value>,
    pub report_at: Option<u64>,
    pub result: Option<String>,
    /// The current burn-in token and when it was minted. Never shown.
    pub token: Option<String>,
    pub token_at: Option<u64>,
    /// When the burn-in image was last fetched: a burn runs until a newer report.
    pub burnin_started: Option<u64>,
}

/// A record and its newest timeline steps.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub record: Record,
    pub steps: VecDeque<MachineEvent>,
}

/// Where a burn-in stands, for the dashboard's filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    Pass,
    Fail,
    /// Never reported and not burning.
    None,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Pass => "pass",
            State::Fail => "fail",
            State::None => "none",
        }
    }
}

impl Machine {
    pub fn new(at: u64) -> Machine {
        Machine {
            record: Record {
                first_seen: at,
                last_seen: at,
                ..Record::default()
            },
            steps: VecDeque::new(),
        }
    }

    /// Appends a step (dropping the oldest past the bound) and makes it the current stage.
    pub fn step(&mut self, e: MachineEvent) {
        let r = &mut self.record;
        r.last_seen = r.last_seen.max(e.at);
        r.stage = format!("{} {}", e.protocol, e.stage);
        r.stage_detail = e.detail.clone();
        if self.steps.len() >= MACHINE_EVENTS_KEPT {
            self.steps.pop_front();
        }
        self.steps.push_back(e);
    }

    /// Puts `ip` first among the addresses.
    pub fn address(&mut self, ip: IpAddr, at: u64) {
        let r = &mut self.record;
        r.addresses.retain(|a| *a != ip);
        r.addresses.insert(0, ip);
        r.addresses.truncate(ADDRESSES_KEPT);
        r.last_seen = r.last_seen.max(at);
    }

    pub fn state(&self) -> State {
        let r = &self.record;
        let reported = r.report_at.unwrap_or(0);
        match (&r.burnin_started, r.result.as_deref()) {
            (Some(s), _) if *s > reported => State::Running,
            (_, Some("PASS")) => State::Pass,
            (_, Some(_)) => State::Fail,
            _ => State::None,
        }
    }

    /// The row the dashboard and `GET /api/v1/machines` show; `next` is the action the
    /// machine's next script follows, `next_from` who set it (`api`, `host`, `default`).
    pub fn summary(&self, mac: &str, host_pin: Option<&str>) -> Value {
        let r = &self.record;
        let (next, next_from) = match (&r.next, host_pin) {
            (Some(n), _) => (n.as_str(), "api"),
            (None, Some(h)) => (h, "host"),
            (None, None) => ("menu", "default"),
        };
        let state = self.state();
        let result = match state {
            State::Running => Some("running"),
            _ => r.result.as_deref(),
        };
        json!({
            "mac": mac,
            "stage": r.stage,
            "stage_detail": r.stage_detail,
            "first_seen": r.first_seen,
            "last_seen": r.last_seen,
            "addresses": r.addresses,
            "state": state.as_str(),
            "result": result,
            "next": next,
            "next_from": next_from,
            "duid": r.duid,
            "iaid": r.iaid,
            "uuid": r.uuid,
            "serial": r.serial,
            "manufacturer": r.manufacturer,
            "product": r.product,
            "platform": r.platform,
            "buildarch": r.buildarch,
        })
    }

    /// The summary plus the timeline (oldest first) and the full report.
    pub fn detail(&self, mac: &str, host_pin: Option<&str>) -> Value {
        let mut v = self.summary(mac, host_pin);
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|e| json!({"at": e.at, "protocol": e.protocol, "stage": e.stage, "detail": e.detail}))
            .collect();
        v["timeline"] = Value::Array(steps);
        v["report"] = self.record.report.clone().unwrap_or(Value::Null);
        v["report_at"] = json!(self.record.report_at);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::Stage;

    fn ev(at: u64, stage: Stage) -> MachineEvent {
        MachineEvent {
            mac: [0; 6],
            at,
            protocol: crate::step::Protocol::Http,
            stage,
            detail: String::new(),
        }
    }

    #[test]
    fn steps_are_bounded_and_state_follows_burn_and_report() {
        let mut m = Machine::new(1);
        for i in 0..(MACHINE_EVENTS_KEPT as u64 + 3) {
            m.step(ev(10 + i, Stage::Served));
        }
        assert_eq!(m.steps.len(), MACHINE_EVENTS_KEPT);
        assert_eq!(m.steps[0].at, 13);
        assert_eq!(m.record.stage, "http served");
        assert_eq!(m.state(), State::None);
        m.record.burnin_started = Some(500);
        assert_eq!(m.state(), State::Running);
        m.record.report_at = Some(600);
        m.record.result = Some("FAIL mce".into());
        assert_eq!(m.state(), State::Fail);
        let s = m.summary("52:54:00:00:00:01", Some("burnin"));
        assert_eq!(
            (&s["result"], &s["next"], &s["next_from"]),
            (&json!("FAIL mce"), &json!("burnin"), &json!("host"))
        );
        m.record.next = Some("local".into());
        assert_eq!(m.summary("x", Some("burnin"))["next_from"], "api");
    }

    #[test]
    fn addresses_keep_the_newest_first() {
        let mut m = Machine::new(1);
        for a in ["192.168.1.10", "fd00:1::100", "192.168.1.10"] {
            m.address(a.parse().unwrap(), 5);
        }
        assert_eq!(
            m.record.addresses,
            vec![
                "192.168.1.10".parse::<IpAddr>().unwrap(),
                "fd00:1::100".parse().unwrap()
            ]
        );
    }
}
