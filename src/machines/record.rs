//! One machine's record and timeline, and the JSON views the API, the dashboard and the
//! live updates show of it.

use crate::pipeline::{Action, Pipeline};
use crate::store::{MACHINE_EVENTS_KEPT, MachineEvent};
use crate::verdict::{Judgement, Rules, Spec, SpecFrom, judge};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sixboot_report::{Report, Step};
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
    /// The single next action an older sixboot stored; read once into `pipeline`.
    #[serde(skip_serializing)]
    pub next: Option<String>,
    /// Set through the API or by `[steps] pipeline`; `None` leaves the `[[host]]` pin or
    /// the menu.
    pub pipeline: Option<Pipeline>,
    /// Set through the API; else a `[[batch]]` listing the MAC applies.
    pub batch: Option<String>,
    /// Set through the API; else the batch's.
    pub spec: Option<Spec>,
    /// The newest report of each step, newest first.
    pub reports: Vec<Stored>,
    /// The step the image is running: its kernel was fetched and no report came since.
    pub running: Option<Running>,
    /// The current burn-in token and when it was minted. Never shown.
    pub token: Option<String>,
    pub token_at: Option<u64>,
}

/// A report as stored, with when it arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub at: u64,
    pub report: Report,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    pub step: Step,
    /// Unix milliseconds.
    pub started: u64,
    /// Known when the step came from a pipeline (sixboot chose the duration).
    pub duration_s: Option<u32>,
}

impl Record {
    /// Keeps `r` as its step's newest report.
    pub fn keep(&mut self, at: u64, r: Report) {
        self.reports.retain(|s| s.report.step != r.step);
        self.reports.insert(0, Stored { at, report: r });
    }

    /// The action the machine's next script follows, if its pipeline has one.
    pub fn current(&self) -> Option<&Action> {
        self.pipeline.as_ref().and_then(Pipeline::current)
    }
}

/// A record and its newest timeline steps.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub record: Record,
    pub steps: VecDeque<MachineEvent>,
}

/// Where a machine stands, for the dashboard's filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    Pass,
    Fail,
    /// Never reported and not running.
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

/// What a view of a machine needs besides its record.
pub struct View<'a> {
    pub mac: &'a str,
    pub mac_bytes: [u8; 6],
    /// Its `[[host]] boot` pin.
    pub host_pin: Option<&'a str>,
    pub rules: &'a Rules,
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

    /// The newest report judged by today's rules and spec.
    pub fn judgement(&self, v: &View) -> Option<Judgement> {
        let newest = self.record.reports.first()?;
        Some(self.judge(&newest.report, v))
    }

    fn judge(&self, r: &Report, v: &View) -> Judgement {
        judge(r, self.spec(v).map(|s| s.0), &v.rules.thresholds)
    }

    /// The spec this machine is held to, and where it came from.
    fn spec<'a>(&'a self, v: &View<'a>) -> Option<(&'a Spec, SpecFrom)> {
        let batch = v.rules.batch_of(v.mac_bytes, self.record.batch.as_deref());
        v.rules.spec_for(batch, self.record.spec.as_ref())
    }

    pub fn state(&self, j: Option<&Judgement>) -> State {
        match (self.record.running, j) {
            (Some(_), _) => State::Running,
            (None, Some(j)) if j.passed() => State::Pass,
            (None, Some(_)) => State::Fail,
            (None, None) => State::None,
        }
    }

    /// The row the dashboard and `GET /api/v1/machines` show. `next` is the action the
    /// machine's next script follows, `next_from` who set it (`api`, `host`, `default`).
    pub fn summary(&self, v: &View) -> Value {
        let r = &self.record;
        let (next, next_from) = match (r.current(), v.host_pin) {
            (Some(n), _) => (n.name(), "api"),
            (None, Some(h)) => (h, "host"),
            (None, None) => ("menu", "default"),
        };
        let j = self.judgement(v);
        let state = self.state(j.as_ref());
        let result = match state {
            State::Running => Some("running".to_string()),
            _ => j.as_ref().map(Judgement::label),
        };
        let verdict = j.as_ref().map(|j| {
            let parts: Vec<Value> = j
                .parts()
                .into_iter()
                .map(|(c, ok)| json!({"component": c, "ok": ok}))
                .collect();
            json!({
                "result": if j.passed() { "pass" } else { "fail" },
                "parts": parts,
                "spec": j.spec(),
            })
        });
        let step = r.running.map(|run| {
            json!({"name": run.step.as_str(), "started": run.started, "duration_s": run.duration_s})
        });
        json!({
            "mac": v.mac,
            "stage": r.stage,
            "stage_detail": r.stage_detail,
            "first_seen": r.first_seen,
            "last_seen": r.last_seen,
            "addresses": r.addresses,
            "state": state.as_str(),
            "result": result,
            "next": next,
            "next_from": next_from,
            "pipeline": r.pipeline.as_ref().map(|p| json!({"steps": p.names(), "at": p.at})),
            "step": step,
            "batch": v.rules.batch_of(v.mac_bytes, r.batch.as_deref()),
            "inventory": self.inventory_summary(),
            "verdict": verdict,
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

    /// The dashboard's columns, from the newest report's inventory.
    fn inventory_summary(&self) -> Value {
        let Some(newest) = self.record.reports.first() else {
            return Value::Null;
        };
        let inv = &newest.report.inventory;
        let s = &inv.system;
        let model = [s.manufacturer.as_deref(), s.product.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let cpu = match inv.cpus.as_slice() {
            [] => String::new(),
            [one] => one.model.clone(),
            [first, ..] => format!("{} × {}", inv.cpus.len(), first.model),
        };
        let disks: Vec<Value> = inv
            .disks
            .iter()
            .map(|d| json!({"id": d.id(), "bytes": d.bytes, "kind": d.kind}))
            .collect();
        json!({
            "serial": s.serial.as_deref().or(Some(self.record.serial.as_str()).filter(|x| !x.is_empty())),
            "model": model,
            "cpu": cpu,
            "threads": inv.cpus.iter().map(|c| c.threads).sum::<u32>(),
            "memory_bytes": inv.memory.bytes,
            "dimms": inv.memory.dimms.len(),
            "disks": disks,
        })
    }

    /// The summary plus the timeline (oldest first), every kept report judged (newest
    /// first; the newest also as `report`) and the spec the machine is held to.
    pub fn detail(&self, v: &View) -> Value {
        let mut out = self.summary(v);
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|e| json!({"at": e.at, "protocol": e.protocol, "stage": e.stage, "detail": e.detail}))
            .collect();
        out["timeline"] = Value::Array(steps);
        let reports: Vec<Value> = self
            .record
            .reports
            .iter()
            .map(|s| {
                let j = self.judge(&s.report, v);
                json!({
                    "step": s.report.step,
                    "at": s.at,
                    "duration_s": s.report.duration_s,
                    "result": j.label(),
                    "inventory": s.report.inventory,
                    "checks": j.checks,
                })
            })
            .collect();
        out["report"] = reports.first().cloned().unwrap_or(Value::Null);
        out["reports"] = Value::Array(reports);
        let spec = self.spec(v);
        out["spec"] = json!(spec.map(|s| s.0));
        out["spec_from"] = json!(spec.map(|s| s.1));
        out
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

    fn view<'a>(rules: &'a Rules, pin: Option<&'a str>) -> View<'a> {
        View {
            mac: "52:54:00:00:00:01",
            mac_bytes: [0x52, 0x54, 0, 0, 0, 1],
            host_pin: pin,
            rules,
        }
    }

    #[test]
    fn steps_are_bounded_and_state_follows_running_and_reports() {
        let rules = Rules::default();
        let mut m = Machine::new(1);
        for i in 0..(MACHINE_EVENTS_KEPT as u64 + 3) {
            m.step(ev(10 + i, Stage::Served));
        }
        assert_eq!(m.steps.len(), MACHINE_EVENTS_KEPT);
        assert_eq!(m.steps[0].at, 13);
        assert_eq!(m.record.stage, "http served");
        let v = view(&rules, Some("memtest"));
        assert_eq!(m.state(m.judgement(&v).as_ref()), State::None);
        m.record.running = Some(Running {
            step: Step::Burnin,
            started: 500,
            duration_s: Some(60),
        });
        let s = m.summary(&v);
        assert_eq!(
            (&s["state"], &s["result"]),
            (&json!("running"), &json!("running"))
        );
        assert_eq!(
            s["step"],
            json!({"name": "burnin", "started": 500, "duration_s": 60})
        );
        assert_eq!(
            (&s["next"], &s["next_from"]),
            (&json!("memtest"), &json!("host"))
        );
        m.record.running = None;
        let mut bad = crate::verdict::tests::qemu_report();
        bad["checks"][1]["values"]["events"] = 2.into();
        m.record.keep(600, crate::verdict::tests::report(&bad));
        let s = m.summary(&v);
        assert_eq!(
            (&s["state"], &s["result"]),
            (&json!("fail"), &json!("FAIL cpu mce"))
        );
        assert_eq!(s["inventory"]["serial"], "SYS-1");
        assert_eq!(
            s["inventory"]["disks"][1],
            json!({"id": "SATA-1", "bytes": 67108864, "kind": "hdd"})
        );
        assert_eq!(
            s["verdict"]["parts"][0],
            json!({"component": "cpu", "ok": false})
        );
        m.record.pipeline = Some(Pipeline::parse(&["local"], &[]).unwrap());
        assert_eq!(m.summary(&v)["next_from"], "api");
    }

    #[test]
    fn each_step_keeps_its_newest_report() {
        let mut r = Record::default();
        let mut inv = crate::verdict::tests::qemu_report();
        inv["step"] = "inventory".into();
        let burn = crate::verdict::tests::qemu_report();
        r.keep(1, crate::verdict::tests::report(&inv));
        r.keep(2, crate::verdict::tests::report(&burn));
        r.keep(3, crate::verdict::tests::report(&burn));
        let kept: Vec<(u64, Step)> = r.reports.iter().map(|s| (s.at, s.report.step)).collect();
        assert_eq!(kept, [(3, Step::Burnin), (1, Step::Inventory)]);
    }

    #[test]
    fn an_older_records_next_action_is_read() {
        let r: Record = serde_json::from_str(r#"{"next":"burnin","result":"PASS"}"#).unwrap();
        assert_eq!(r.next.as_deref(), Some("burnin"));
        assert!(!serde_json::to_string(&r).unwrap().contains("\"next\""));
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
