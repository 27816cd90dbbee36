//! The burn-in image's report: the schema both sides share (the contract of issue 9) and
//! the checks sixboot makes before it stores one. Each failure names the field, so the
//! image's console says what was wrong.

use serde::Deserialize;

/// The whole report. Fields not listed here are allowed and kept in the stored copy.
#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    pub result: Verdict,
    /// The burn actually run, in seconds.
    pub duration_s: u64,
    pub cpu: Cpu,
    pub memory_bytes: u64,
    pub disks: Vec<Disk>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Cpu {
    pub model: String,
    pub count: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Disk {
    pub name: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// What the check saw; may be empty.
    #[serde(default)]
    pub detail: String,
}

/// Why a body is not a report.
#[derive(Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Not JSON at all (400).
    Malformed(String),
    /// JSON, but not this schema, or contradicting itself (422).
    Schema(String),
}

impl Report {
    /// Reads and checks a report; returns it with the JSON as sent (unknown fields kept).
    pub fn parse(body: &[u8]) -> Result<(Report, serde_json::Value), Invalid> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| Invalid::Malformed(e.to_string()))?;
        let report: Report =
            serde_json::from_value(value.clone()).map_err(|e| Invalid::Schema(e.to_string()))?;
        if report.checks.is_empty() {
            return Err(Invalid::Schema(
                "checks: at least one check is needed".into(),
            ));
        }
        let failed = report.checks.iter().find(|c| !c.ok);
        match (report.result, failed) {
            (Verdict::Pass, Some(c)) => Err(Invalid::Schema(format!(
                "result is \"pass\" but check `{}` failed",
                c.name
            ))),
            (Verdict::Fail, None) => Err(Invalid::Schema(
                "result is \"fail\" but every check passed".into(),
            )),
            _ => Ok((report, value)),
        }
    }

    /// What the dashboard shows: `PASS`, or `FAIL` with the first failing check.
    pub fn label(&self) -> String {
        match self.checks.iter().find(|c| !c.ok) {
            None => "PASS".into(),
            Some(c) => format!("FAIL {}", c.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"result":"pass","duration_s":20,"cpu":{"model":"QEMU","count":2},
        "memory_bytes":1073741824,"disks":[{"name":"vda","bytes":1073741824}],
        "checks":[{"name":"stress-ng-cpu","ok":true,"detail":"ok"},{"name":"mce","ok":true}],
        "extra":{"kept":true}}"#;

    #[test]
    fn a_good_report_keeps_its_unknown_fields() {
        let (r, v) = Report::parse(GOOD.as_bytes()).unwrap();
        assert_eq!(r.label(), "PASS");
        assert_eq!(v["extra"]["kept"], true);
    }

    #[test]
    fn bad_reports_say_what_is_wrong() {
        assert!(matches!(
            Report::parse(b"{\"result\":"),
            Err(Invalid::Malformed(_))
        ));
        let Err(Invalid::Schema(e)) = Report::parse(br#"{"result":"pass"}"#) else {
            panic!()
        };
        assert!(e.contains("duration_s"), "{e}");
        let bad_verdict = GOOD.replace("\"pass\"", "\"maybe\"");
        assert!(matches!(
            Report::parse(bad_verdict.as_bytes()),
            Err(Invalid::Schema(_))
        ));
        let lying = GOOD.replace("\"ok\":true,\"detail\":\"ok\"", "\"ok\":false");
        let Err(Invalid::Schema(e)) = Report::parse(lying.as_bytes()) else {
            panic!()
        };
        assert!(e.contains("stress-ng-cpu"), "{e}");
        let failed = lying.replace("\"pass\"", "\"fail\"");
        let (r, _) = Report::parse(failed.as_bytes()).unwrap();
        assert_eq!(r.label(), "FAIL stress-ng-cpu");
    }
}
