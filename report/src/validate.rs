//! Ranges and cross-references that types alone cannot say. Each error names the field's
//! path, so the image's console (and an operator's curl) shows exactly what was wrong.

use crate::{Check, Component, Inventory, Report};
use std::collections::HashSet;
use std::fmt;

/// Why a body is not a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// Not JSON at all.
    Malformed(String),
    /// JSON, but not this schema, or a value out of range.
    Schema { path: String, why: String },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Malformed(e) => write!(f, "malformed JSON: {e}"),
            Invalid::Schema { path, why } => write!(f, "{path}: {why}"),
        }
    }
}

impl std::error::Error for Invalid {}

/// Largest values believed: past these a report is wrong, not a bigger machine.
const MAX_BYTES: u64 = 1 << 56;
const MAX_DURATION_S: u64 = 7 * 24 * 3600;
const MAX_STRING: usize = 256;
/// A check's `detail` in bytes.
const MAX_DETAIL: usize = 4 * MAX_STRING;
const MAX_LIST: usize = 1024;
const MAX_CORES: u32 = 4096;
const MAX_MHZ: u32 = 100_000;
const MAX_MTS: u32 = 100_000;
const MAX_MBPS: u32 = 10_000_000;
const MAX_HOURS: u64 = 10_000_000;
const TEMPERATURE_C: std::ops::RangeInclusive<i32> = -60..=200;

struct V {
    path: String,
}

impl V {
    fn fail<T>(&self, field: &str, why: impl Into<String>) -> Result<T, Invalid> {
        let path = if self.path.is_empty() {
            field.to_string()
        } else if field.is_empty() {
            self.path.clone()
        } else {
            format!("{}.{field}", self.path)
        };
        Err(Invalid::Schema {
            path,
            why: why.into(),
        })
    }

    fn at(&self, field: &str) -> V {
        V {
            path: if self.path.is_empty() {
                field.into()
            } else {
                format!("{}.{field}", self.path)
            },
        }
    }

    fn item(&self, field: &str, i: usize) -> V {
        self.at(&format!("{field}[{i}]"))
    }

    fn max<T: PartialOrd + fmt::Display>(&self, field: &str, v: T, max: T) -> Result<(), Invalid> {
        if v > max {
            return self.fail(field, format!("{v} is out of range (at most {max})"));
        }
        Ok(())
    }

    fn text(&self, field: &str, s: &str) -> Result<(), Invalid> {
        if s.len() > MAX_STRING {
            return self.fail(field, format!("longer than {MAX_STRING} bytes"));
        }
        if s.chars().any(char::is_control) {
            return self.fail(field, "holds control characters");
        }
        Ok(())
    }

    fn opt_text(&self, field: &str, s: &Option<String>) -> Result<(), Invalid> {
        s.as_deref().map_or(Ok(()), |s| self.text(field, s))
    }

    fn list<T>(&self, field: &str, l: &[T]) -> Result<(), Invalid> {
        self.max(field, l.len(), MAX_LIST)
    }
}

/// Whether `s` is a MAC as sixboot writes them (`52:54:00:12:34:56`).
fn is_mac(s: &str) -> bool {
    s.len() == 17
        && s.split(':').count() == 6
        && s.split(':').all(|b| {
            b.len() == 2
                && b.bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        })
}

impl Report {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        let top = V {
            path: String::new(),
        };
        top.max("duration_s", self.duration_s, MAX_DURATION_S)?;
        inventory(&top.at("inventory"), &self.inventory)?;
        top.list("checks", &self.checks)?;
        let disks: HashSet<&str> = self.inventory.disks.iter().map(|d| d.id()).collect();
        let nics: HashSet<&str> = self.inventory.nics.iter().map(|n| n.mac.as_str()).collect();
        for (i, c) in self.checks.iter().enumerate() {
            check(&top.item("checks", i), c, &disks, &nics)?;
        }
        Ok(())
    }
}

fn check(v: &V, c: &Check, disks: &HashSet<&str>, nics: &HashSet<&str>) -> Result<(), Invalid> {
    match &c.component {
        Component::Disk(id) if !disks.contains(id.as_str()) => {
            return v.fail("component", format!("no disk `{id}` in inventory.disks"));
        }
        Component::Nic(mac) if !nics.contains(mac.as_str()) => {
            return v.fail("component", format!("no NIC `{mac}` in inventory.nics"));
        }
        _ => {}
    }
    if !c.name.fits(&c.component) {
        return v.fail(
            "name",
            format!(
                "`{}` measures {}, not {}",
                c.name.as_str(),
                c.name.kind(),
                c.component
            ),
        );
    }
    // Tool output, multi-line by nature: only its length is bounded, not its characters.
    v.max("detail", c.detail.len(), MAX_DETAIL)?;
    let values = v.at("values");
    for need in c.name.needs() {
        if !c.values.has(need) {
            return values.fail(need, format!("missing: `{}` needs it", c.name.as_str()));
        }
    }
    for (field, n) in [
        ("seconds", c.values.seconds),
        ("mb_per_s", c.values.mb_per_s),
    ] {
        if let Some(n) = n
            && (!n.is_finite() || !(0.0..=1e9).contains(&n))
        {
            return values.fail(field, format!("{n} is out of range"));
        }
    }
    if let Some(b) = c.values.bytes {
        values.max("bytes", b, MAX_BYTES)?;
    }
    Ok(())
}

fn inventory(v: &V, inv: &Inventory) -> Result<(), Invalid> {
    let s = &inv.system;
    let sys = v.at("system");
    for (f, x) in [
        ("manufacturer", &s.manufacturer),
        ("product", &s.product),
        ("serial", &s.serial),
        ("uuid", &s.uuid),
        ("bios_version", &s.bios_version),
        ("bios_date", &s.bios_date),
    ] {
        sys.opt_text(f, x)?;
    }
    let board = sys.at("board");
    for (f, x) in [
        ("manufacturer", &s.board.manufacturer),
        ("product", &s.board.product),
        ("serial", &s.board.serial),
    ] {
        board.opt_text(f, x)?;
    }
    sys.at("chassis").opt_text("type", &s.chassis.kind)?;
    sys.at("chassis").opt_text("serial", &s.chassis.serial)?;

    v.list("cpus", &inv.cpus)?;
    for (i, c) in inv.cpus.iter().enumerate() {
        let v = v.item("cpus", i);
        v.text("model", &c.model)?;
        v.max("cores", c.cores, MAX_CORES)?;
        v.max("threads", c.threads, 2 * MAX_CORES)?;
        if let Some(m) = c.max_mhz {
            v.max("max_mhz", m, MAX_MHZ)?;
        }
        v.opt_text("microcode", &c.microcode)?;
    }

    let mem = v.at("memory");
    mem.max("bytes", inv.memory.bytes, MAX_BYTES)?;
    mem.list("dimms", &inv.memory.dimms)?;
    for (i, d) in inv.memory.dimms.iter().enumerate() {
        let v = mem.item("dimms", i);
        v.text("slot", &d.slot)?;
        v.max("bytes", d.bytes, MAX_BYTES)?;
        if let Some(s) = d.speed_mts {
            v.max("speed_mts", s, MAX_MTS)?;
        }
        for (f, x) in [
            ("type", &d.kind),
            ("manufacturer", &d.manufacturer),
            ("part", &d.part),
            ("serial", &d.serial),
        ] {
            v.opt_text(f, x)?;
        }
    }

    v.list("disks", &inv.disks)?;
    let mut ids = HashSet::new();
    for (i, d) in inv.disks.iter().enumerate() {
        let v = v.item("disks", i);
        v.text("name", &d.name)?;
        if d.name.is_empty() {
            return v.fail("name", "empty");
        }
        v.opt_text("model", &d.model)?;
        v.opt_text("serial", &d.serial)?;
        v.max("bytes", d.bytes, MAX_BYTES)?;
        if !ids.insert(d.id()) {
            return v.fail("serial", format!("`{}` names two disks", d.id()));
        }
        if let Some(s) = &d.smart {
            let v = v.at("smart");
            for (f, x) in [
                ("power_on_hours", s.power_on_hours),
                ("reallocated_sectors", s.reallocated_sectors),
                ("pending_sectors", s.pending_sectors),
                ("media_errors", s.media_errors),
            ] {
                if let Some(x) = x {
                    v.max(
                        f,
                        x,
                        if f == "power_on_hours" {
                            MAX_HOURS
                        } else {
                            u32::MAX.into()
                        },
                    )?;
                }
            }
            if let Some(p) = s.percentage_used {
                v.max("percentage_used", p, 255)?;
            }
            if let Some(t) = s.temperature_c
                && !TEMPERATURE_C.contains(&t)
            {
                return v.fail(
                    "temperature_c",
                    format!("{t} is out of range ({TEMPERATURE_C:?})"),
                );
            }
        }
    }

    v.list("nics", &inv.nics)?;
    for (i, n) in inv.nics.iter().enumerate() {
        let v = v.item("nics", i);
        v.text("name", &n.name)?;
        if !is_mac(&n.mac) {
            return v.fail(
                "mac",
                format!("`{}` is not a MAC like 52:54:00:12:34:56", n.mac),
            );
        }
        v.opt_text("driver", &n.driver)?;
        if let Some(s) = n.speed_mbps {
            v.max("speed_mbps", s, MAX_MBPS)?;
        }
    }

    v.list("pci", &inv.pci)?;
    for (i, p) in inv.pci.iter().enumerate() {
        let v = v.item("pci", i);
        v.text("address", &p.address)?;
        let hex4 = |s: &str| s.len() == 4 && s.bytes().all(|c| c.is_ascii_hexdigit());
        match p.id.split_once(':') {
            Some((a, b)) if hex4(a) && hex4(b) => {}
            _ => return v.fail("id", format!("`{}` is not vendor:device in hex", p.id)),
        }
        if p.class_code.len() != 6 || !p.class_code.bytes().all(|c| c.is_ascii_hexdigit()) {
            return v.fail(
                "class_code",
                format!("`{}` is not six hex digits", p.class_code),
            );
        }
        v.opt_text("driver", &p.driver)?;
    }
    v.at("bmc").opt_text("firmware", &inv.bmc.firmware)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::*;

    fn good() -> serde_json::Value {
        serde_json::json!({
            "step": "inventory",
            "duration_s": 10,
            "inventory": {
                "system": {"manufacturer": "QEMU", "product": "Standard PC", "serial": "S1",
                    "uuid": null, "bios_version": null, "bios_date": null,
                    "board": {"manufacturer": null, "product": null, "serial": null},
                    "chassis": {"type": "Other", "serial": null}},
                "cpus": [{"model": "QEMU Virtual CPU", "cores": 2, "threads": 2, "max_mhz": null, "microcode": null}],
                "memory": {"bytes": 1073741824, "dimms": [{"slot": "DIMM 0", "bytes": 1073741824,
                    "type": "RAM", "speed_mts": null, "manufacturer": "QEMU", "part": null, "serial": null, "ecc": false}]},
                "disks": [{"name": "nvme0n1", "model": "QEMU NVMe Ctrl", "serial": "NV1", "bytes": 67108864,
                    "kind": "nvme", "transport": "nvme", "smart": {"healthy": true, "power_on_hours": 0,
                    "reallocated_sectors": null, "pending_sectors": null, "media_errors": 0,
                    "percentage_used": 0, "temperature_c": 50}}],
                "nics": [{"name": "eth0", "mac": "52:54:00:12:34:56", "driver": "virtio_net", "speed_mbps": null, "link": true}],
                "pci": [{"address": "0000:00:04.0", "id": "1b36:0010", "class": "storage", "class_code": "010802", "driver": "nvme"}],
                "bmc": {"present": false, "firmware": null, "ipv4": null, "ipv6": null}
            },
            "checks": [
                {"component": "cpu", "name": "stress", "detail": "ok", "values": {"exit_code": 0, "errors": 0, "seconds": 10.0}},
                {"component": "disk:NV1", "name": "read", "values": {"bytes": 1048576, "seconds": 0.5, "errors": 0}}
            ]
        })
    }

    fn parse(v: &serde_json::Value) -> Result<Report, Invalid> {
        Report::parse(v.to_string().as_bytes())
    }

    fn path_of(v: &serde_json::Value) -> String {
        match parse(v) {
            Err(Invalid::Schema { path, why }) => format!("{path}: {why}"),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_good_report_round_trips() {
        let r = parse(&good()).unwrap();
        assert_eq!(r.step, Step::Inventory);
        assert_eq!(r.checks[1].component, Component::Disk("NV1".into()));
        let again = serde_json::to_value(&r).unwrap();
        assert_eq!(parse(&again).unwrap(), r);
    }

    #[test]
    fn refusals_name_the_field() {
        let mut v = good();
        v["checks"][0]["component"] = "gpu".into();
        let e = path_of(&v);
        assert!(
            e.starts_with("checks[0].component: unknown component `gpu`"),
            "{e}"
        );

        let mut v = good();
        v["inventory"]["disks"][0]["bytes"] = "big".into();
        assert!(path_of(&v).starts_with("inventory.disks[0].bytes: invalid type"));

        let mut v = good();
        v["inventory"]["disks"][0]["smart"]["temperature_c"] = 900.into();
        assert!(
            path_of(&v).starts_with("inventory.disks[0].smart.temperature_c: 900 is out of range")
        );

        let mut v = good();
        v["inventory"]["memory"]["bytes"] = serde_json::json!(u64::MAX);
        assert!(path_of(&v).starts_with("inventory.memory.bytes:"));

        let mut v = good();
        v["checks"][1]["component"] = "disk:OTHER".into();
        assert_eq!(
            path_of(&v),
            "checks[1].component: no disk `OTHER` in inventory.disks"
        );

        let mut v = good();
        v["checks"][0]["name"] = "read".into();
        assert_eq!(path_of(&v), "checks[0].name: `read` measures disk, not cpu");

        let mut v = good();
        v["checks"][0]["values"] = serde_json::json!({"exit_code": 0});
        assert_eq!(
            path_of(&v),
            "checks[0].values.errors: missing: `stress` needs it"
        );

        let mut v = good();
        v["inventory"]["nics"][0]["mac"] = "52-54-00-12-34-56".into();
        assert!(path_of(&v).starts_with("inventory.nics[0].mac:"));

        let mut v = good();
        v["step"] = "erase".into();
        assert!(path_of(&v).starts_with("step: unknown variant `erase`"));

        let mut v = good();
        v["surprise"] = 1.into();
        assert!(path_of(&v).contains("unknown field `surprise`"));

        assert!(matches!(
            Report::parse(b"{\"step\":"),
            Err(Invalid::Malformed(_))
        ));
    }
}
