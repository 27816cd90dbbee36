//! The verdict rules: the one place that decides whether each part of a machine passed.
//! The image reports facts (inventory, measured values); this module holds them against
//! the thresholds in `[verdict]` and the machine's expected spec, and says which part
//! failed, with the value and the limit. It judges when asked, so a changed spec or a new
//! threshold applies to every stored report at once.

mod spec;

pub use spec::{Spec, size};

use serde::Serialize;
use serde_json::{Value, json};
use sixboot_report::{Check, CheckName, Component, Disk, Nic, Report, SelfTest};

/// The limits, from `[verdict]`. Each default is what a buyer of a used server would
/// accept: no errors of any kind, drives not near the end of their life.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// ATA attribute 5 (sectors remapped to spares).
    pub disk_reallocated_max: u64,
    /// ATA attribute 197 (sectors waiting to be remapped).
    pub disk_pending_max: u64,
    /// NVMe media and data integrity errors.
    pub disk_media_errors_max: u64,
    /// NVMe `percentage_used`: the drive's own estimate of its life used.
    pub disk_percentage_used_max: u16,
    pub disk_temperature_max_c: i32,
    /// The sequential read's least speed; 0 checks none.
    pub disk_read_min_mb_s: f64,
    /// EDAC corrected errors (uncorrected ones always fail).
    pub memory_corrected_max: u64,
    /// Thermal throttling events during the run.
    pub cpu_throttle_max: u64,
    /// A NIC whose link is up must be at least this fast; 0 checks none.
    pub nic_min_speed_mbps: u32,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            disk_reallocated_max: 0,
            disk_pending_max: 0,
            disk_media_errors_max: 0,
            disk_percentage_used_max: 80,
            disk_temperature_max_c: 65,
            disk_read_min_mb_s: 0.0,
            memory_corrected_max: 0,
            cpu_throttle_max: 0,
            nic_min_speed_mbps: 0,
        }
    }
}

/// Where a machine's expected spec came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpecFrom {
    /// Set on the machine through the API.
    Machine,
    /// Its batch's, from `[[batch]]`.
    Batch,
}

/// The thresholds and the batches' specs, from the config.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub thresholds: Thresholds,
    batches: Vec<crate::config::Batch>,
}

impl Rules {
    pub fn new(cfg: &crate::config::Config) -> Rules {
        Rules {
            thresholds: cfg.verdict.clone(),
            batches: cfg.batches.clone(),
        }
    }

    /// The batch of `mac`: the one the API set, else the `[[batch]]` that lists it.
    pub fn batch_of<'a>(&'a self, mac: [u8; 6], set: Option<&'a str>) -> Option<&'a str> {
        set.or_else(|| {
            self.batches
                .iter()
                .find(|b| b.macs.contains(&mac))
                .map(|b| b.name.as_str())
        })
    }

    /// The spec a machine is held to: its own, else its batch's (if that sets anything).
    pub fn spec_for<'a>(
        &'a self,
        batch: Option<&str>,
        own: Option<&'a Spec>,
    ) -> Option<(&'a Spec, SpecFrom)> {
        if let Some(s) = own {
            return Some((s, SpecFrom::Machine));
        }
        let b = self
            .batches
            .iter()
            .find(|b| Some(b.name.as_str()) == batch)?;
        (b.spec != Spec::default()).then_some((&b.spec, SpecFrom::Batch))
    }
}

/// One check as judged: the facts, whether they pass, and the limit they were held to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judged {
    pub component: Component,
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
    pub values: Value,
    pub limit: Option<String>,
}

/// A report judged: every check, and each part's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub checks: Vec<Judged>,
}

impl Judgement {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// `PASS`, or `FAIL <component> <check>` of the first failing check.
    pub fn label(&self) -> String {
        match self.checks.iter().find(|c| !c.ok) {
            None => "PASS".into(),
            Some(c) => format!("FAIL {} {}", c.component, c.name),
        }
    }

    /// Each part (in the order first checked) and whether all its checks passed.
    pub fn parts(&self) -> Vec<(Component, bool)> {
        let mut parts: Vec<(Component, bool)> = Vec::new();
        for c in &self.checks {
            match parts.iter_mut().find(|(p, _)| *p == c.component) {
                Some((_, ok)) => *ok &= c.ok,
                None => parts.push((c.component.clone(), c.ok)),
            }
        }
        parts
    }

    /// Whether the spec check passed; `None` when no spec was set.
    pub fn spec(&self) -> Option<bool> {
        self.checks
            .iter()
            .find(|c| c.component == Component::System && c.name == SPEC)
            .map(|c| c.ok)
    }
}

/// The check made from the spec (component `system`).
const SPEC: &str = "spec";

/// Judges `r` against the thresholds and, when given, the expected spec.
pub fn judge(r: &Report, spec: Option<&Spec>, t: &Thresholds) -> Judgement {
    let mut checks = Vec::new();
    if let Some(s) = spec {
        let diff = s.differences(&r.inventory);
        let inv = &r.inventory;
        checks.push(Judged {
            component: Component::System,
            name: SPEC,
            ok: diff.is_empty(),
            detail: if diff.is_empty() {
                "matches the expected spec".into()
            } else {
                diff.join("; ")
            },
            values: json!({
                "cpus": inv.cpus.len(),
                "memory_bytes": inv.memory.bytes,
                "disks": inv.disks.len(),
            }),
            limit: Some(s.describe()),
        });
    }
    for c in &r.checks {
        checks.push(measured(c, t));
    }
    for d in &r.inventory.disks {
        if let Some(j) = smart(d, t) {
            checks.push(j);
        }
    }
    for n in &r.inventory.nics {
        checks.push(link(n, t));
    }
    // Parts in a stable order: system, cpu, memory, then disks and NICs as inventoried,
    // each part's checks together.
    let inv = &r.inventory;
    let rank = |c: &Component| match c {
        Component::System => (0, 0),
        Component::Cpu => (1, 0),
        Component::Memory => (2, 0),
        Component::Disk(id) => (3, inv.disks.iter().position(|d| d.id() == id).unwrap_or(0)),
        Component::Nic(mac) => (4, inv.nics.iter().position(|n| n.mac == *mac).unwrap_or(0)),
    };
    checks.sort_by_key(|c| rank(&c.component));
    Judgement { checks }
}

/// A measured check against its rule.
fn measured(c: &Check, t: &Thresholds) -> Judged {
    let v = &c.values;
    let n = |x: Option<u64>| x.unwrap_or(0);
    let (ok, limit): (bool, Option<String>) = match c.name {
        CheckName::Stress => (
            v.exit_code == Some(0) && n(v.errors) == 0,
            Some("exit code 0 and no verification errors".into()),
        ),
        CheckName::Mce => (n(v.events) == 0, Some("no machine-check events".into())),
        CheckName::Throttle => (
            n(v.events) <= t.cpu_throttle_max,
            Some(format!("at most {} throttling events", t.cpu_throttle_max)),
        ),
        CheckName::Edac => (
            n(v.uncorrected) == 0 && n(v.corrected) <= t.memory_corrected_max,
            Some(format!(
                "no uncorrected errors, at most {} corrected",
                t.memory_corrected_max
            )),
        ),
        CheckName::SelfTest => (
            matches!(v.status, Some(SelfTest::Passed | SelfTest::Unsupported)),
            Some("passed (or the drive has none)".into()),
        ),
        CheckName::Read => {
            let fast_enough = t.disk_read_min_mb_s <= 0.0
                || v.mb_per_s.is_some_and(|s| s >= t.disk_read_min_mb_s);
            let limit = if t.disk_read_min_mb_s > 0.0 {
                format!("no read errors, at least {} MB/s", t.disk_read_min_mb_s)
            } else {
                "no read errors".into()
            };
            (n(v.errors) == 0 && fast_enough, Some(limit))
        }
    };
    Judged {
        component: c.component.clone(),
        name: c.name.as_str(),
        ok,
        detail: c.detail.clone(),
        values: serde_json::to_value(v)
            .map(drop_nulls)
            .unwrap_or(Value::Null),
        limit,
    }
}

/// A JSON object without its `null` members: a check shows only what it measured.
fn drop_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, x)| !x.is_null()).collect()),
        other => other,
    }
}

/// A disk's SMART facts against the thresholds; `None` when it has none (virtio).
fn smart(d: &Disk, t: &Thresholds) -> Option<Judged> {
    let s = d.smart.as_ref()?;
    let mut breaches = Vec::new();
    if s.healthy == Some(false) {
        breaches.push("the drive reports its overall health as failed".to_string());
    }
    let mut over = |what: &str, v: Option<u64>, max: u64| {
        if let Some(v) = v.filter(|v| *v > max) {
            breaches.push(format!("{what} {v} > {max}"));
        }
    };
    over(
        "reallocated sectors",
        s.reallocated_sectors,
        t.disk_reallocated_max,
    );
    over("pending sectors", s.pending_sectors, t.disk_pending_max);
    over("media errors", s.media_errors, t.disk_media_errors_max);
    over(
        "percentage used",
        s.percentage_used.map(u64::from),
        t.disk_percentage_used_max.into(),
    );
    if let Some(c) = s.temperature_c.filter(|c| *c > t.disk_temperature_max_c) {
        breaches.push(format!(
            "temperature {c} °C > {} °C",
            t.disk_temperature_max_c
        ));
    }
    Some(Judged {
        component: Component::Disk(d.id().to_string()),
        name: "smart",
        ok: breaches.is_empty(),
        detail: if breaches.is_empty() {
            "within limits".into()
        } else {
            breaches.join("; ")
        },
        values: serde_json::to_value(s)
            .map(drop_nulls)
            .unwrap_or(Value::Null),
        limit: Some(format!(
            "healthy, reallocated ≤ {}, pending ≤ {}, media errors ≤ {}, used ≤ {}%, ≤ {} °C",
            t.disk_reallocated_max,
            t.disk_pending_max,
            t.disk_media_errors_max,
            t.disk_percentage_used_max,
            t.disk_temperature_max_c
        )),
    })
}

/// A NIC's link: one that is not cabled is no fault; one that is up must be fast enough.
fn link(n: &Nic, t: &Thresholds) -> Judged {
    let min = t.nic_min_speed_mbps;
    let (ok, detail) = match (n.link, n.speed_mbps) {
        (false, _) => (true, "no link (not cabled?)".to_string()),
        (true, Some(s)) if min > 0 && s < min => (false, format!("link at {s} Mb/s")),
        (true, Some(s)) => (true, format!("link at {s} Mb/s")),
        (true, None) => (true, "link up, speed not reported".to_string()),
    };
    Judged {
        component: Component::Nic(n.mac.clone()),
        name: "link",
        ok,
        detail,
        values: drop_nulls(json!({"link": n.link, "speed_mbps": n.speed_mbps})),
        limit: (min > 0).then(|| format!("at least {min} Mb/s when linked")),
    }
}

#[cfg(test)]
pub(crate) mod tests;
