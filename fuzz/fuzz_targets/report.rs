//! A report body as the image (or anyone holding a token) could send it: parsed with the
//! schema's checks, then judged against the default limits and a spec that sets every
//! field, and rendered as the API shows it.
//!
//! Beyond "no panic": a refusal names a path, and a report that parses serializes back to
//! one that parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sixboot::verdict::{Spec, Thresholds, judge};
use sixboot_report::{Invalid, Report};

fuzz_target!(|data: &[u8]| {
    match Report::parse(data) {
        Err(Invalid::Malformed(_)) => {}
        Err(Invalid::Schema { path, why }) => {
            assert!(!why.is_empty());
            let _ = path;
        }
        Ok(r) => {
            let again = serde_json::to_vec(&r).unwrap();
            assert_eq!(Report::parse(&again).as_ref().ok(), Some(&r));
            let spec = Spec {
                cpu_model: Some("Xeon".into()),
                cpus: Some(2),
                memory_bytes: Some(1 << 30),
                disks: Some(3),
                disk_min_bytes: Some(1 << 30),
            };
            for s in [None, Some(&spec)] {
                let j = judge(&r, s, &Thresholds::default());
                let _ = (j.label(), j.parts(), j.spec());
                assert_eq!(j.passed(), j.checks.iter().all(|c| c.ok));
                let _ = serde_json::to_string(&j.checks).unwrap();
            }
        }
    }
});
