//! What a machine is sold as: the buyer's promise, checked against the inventory the image
//! found. No peer checks this; a missing DIMM or a smaller disk fails the `system` part.

use serde::{Deserialize, Serialize};
use sixboot_report::Inventory;

/// An expected spec; every field is optional, and only what is set is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    /// A substring every CPU's model must contain (case-insensitive): `E5-2630 v4`.
    pub cpu_model: Option<String>,
    /// CPU sockets.
    pub cpus: Option<u32>,
    /// Installed memory, exactly.
    pub memory_bytes: Option<u64>,
    /// How many disks.
    pub disks: Option<u32>,
    /// The least size of every disk.
    pub disk_min_bytes: Option<u64>,
}

/// Largest values believed (past these a spec is a typo): 64 sockets, 64 PiB, 1024 disks.
const MAX_CPUS: u32 = 64;
const MAX_BYTES: u64 = 1 << 56;
const MAX_DISKS: u32 = 1024;

impl Spec {
    /// Reads a spec as the API takes it; an error names the field.
    pub fn parse(v: serde_json::Value) -> Result<Spec, String> {
        let spec: Spec = serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            format!("{path}: {}", e.into_inner())
        })?;
        spec.check()?;
        Ok(spec)
    }

    /// Refuses values no machine has; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        if let Some(m) = &self.cpu_model
            && (m.trim().is_empty() || m.len() > 256)
        {
            return Err("cpu_model: must be 1 to 256 bytes of text".into());
        }
        if let Some(n) = self.cpus
            && !(1..=MAX_CPUS).contains(&n)
        {
            return Err(format!("cpus: {n} is out of range 1..={MAX_CPUS}"));
        }
        if let Some(b) = self.memory_bytes
            && !((1 << 20)..=MAX_BYTES).contains(&b)
        {
            return Err(format!("memory_bytes: {b} is out of range 1 MiB..=64 PiB"));
        }
        if let Some(n) = self.disks
            && n > MAX_DISKS
        {
            return Err(format!("disks: {n} is out of range 0..={MAX_DISKS}"));
        }
        if let Some(b) = self.disk_min_bytes
            && b > MAX_BYTES
        {
            return Err(format!(
                "disk_min_bytes: {b} is out of range (at most 64 PiB)"
            ));
        }
        Ok(())
    }

    /// What the spec asks for, for the check's `limit`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.cpus {
            parts.push(format!("{n} CPU(s)"));
        }
        if let Some(m) = &self.cpu_model {
            parts.push(format!("model contains `{m}`"));
        }
        if let Some(b) = self.memory_bytes {
            parts.push(format!("memory {}", size(b)));
        }
        if let Some(n) = self.disks {
            parts.push(format!("{n} disk(s)"));
        }
        if let Some(b) = self.disk_min_bytes {
            parts.push(format!("disks of at least {}", disk_size(b)));
        }
        parts.join(", ")
    }

    /// Every way `inv` differs from this spec; empty when it matches.
    pub fn differences(&self, inv: &Inventory) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(n) = self.cpus
            && inv.cpus.len() != n as usize
        {
            out.push(format!("{} CPU(s), expected {n}", inv.cpus.len()));
        }
        if let Some(m) = &self.cpu_model {
            let want = m.to_lowercase();
            for (i, c) in inv.cpus.iter().enumerate() {
                if !c.model.to_lowercase().contains(&want) {
                    out.push(format!("CPU {i} is `{}`, expected `{m}`", c.model));
                }
            }
        }
        if let Some(b) = self.memory_bytes
            && inv.memory.bytes != b
        {
            out.push(format!(
                "memory {}, expected {}",
                size(inv.memory.bytes),
                size(b)
            ));
        }
        if let Some(n) = self.disks
            && inv.disks.len() != n as usize
        {
            out.push(format!("{} disk(s), expected {n}", inv.disks.len()));
        }
        if let Some(min) = self.disk_min_bytes {
            for d in inv.disks.iter().filter(|d| d.bytes < min) {
                out.push(format!(
                    "disk {} is {}, expected at least {}",
                    d.id(),
                    disk_size(d.bytes),
                    disk_size(min)
                ));
            }
        }
        out
    }
}

/// Memory for a person: binary units, as DIMMs are sized (`1 GiB`, `465.76 GiB`).
pub fn size(b: u64) -> String {
    scaled(b, 1024.0, ["B", "KiB", "MiB", "GiB", "TiB", "PiB"])
}

/// A disk for a person: decimal units, as drives are sold (`960.2 GB`).
pub fn disk_size(b: u64) -> String {
    scaled(b, 1000.0, ["B", "kB", "MB", "GB", "TB", "PB"])
}

/// `b` in the largest unit below it, with up to two decimals.
fn scaled(b: u64, step: f64, units: [&str; 6]) -> String {
    const UNITS: usize = 6;
    let mut v = b as f64;
    let mut u = 0;
    while v >= step && u < UNITS - 1 {
        v /= step;
        u += 1;
    }
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s} {}", units[u])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absurd_or_negative_specs_are_refused_by_field() {
        assert!(
            Spec::parse(json!({"memory_bytes": -1}))
                .unwrap_err()
                .starts_with("memory_bytes:")
        );
        assert!(
            Spec::parse(json!({"cpus": 0}))
                .unwrap_err()
                .starts_with("cpus: 0 is out of range")
        );
        assert!(Spec::parse(json!({"cpus": 1000})).is_err());
        assert!(Spec::parse(json!({"memory_bytes": 1u64 << 60})).is_err());
        assert!(Spec::parse(json!({"disks": 5000})).is_err());
        assert!(Spec::parse(json!({"cpu_model": " "})).is_err());
        assert!(
            Spec::parse(json!({"ram": 1}))
                .unwrap_err()
                .contains("unknown field `ram`")
        );
        let s = Spec::parse(json!({"cpus": 1, "memory_bytes": 2u64 << 30})).unwrap();
        assert_eq!(s.describe(), "1 CPU(s), memory 2 GiB");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(1 << 30), "1 GiB");
        assert_eq!(size(500_107_862_016), "465.76 GiB");
        assert_eq!(size(512), "512 B");
        assert_eq!(disk_size(960_197_124_096), "960.2 GB");
        assert_eq!(disk_size(4_000_787_030_016), "4 TB");
    }
}
