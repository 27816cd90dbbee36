//! The drive's own short self-test (about two minutes on most drives), started through
//! smartctl for ATA and nvme-cli for NVMe, then polled until it ends or the bounded wait
//! does. The test reads the medium inside the drive; it writes nothing the host can see.

use crate::disks::{SelfTestVia, TOOL_LIMIT};
use crate::run::run;
use serde_json::Value;
use sixboot_report::SelfTest;
use std::time::{Duration, Instant};

/// How long a short self-test may take before the image stops waiting (`timeout`).
pub const LIMIT: Duration = Duration::from_secs(600);
const POLL: Duration = Duration::from_secs(5);

/// Whether smartctl says the ATA drive has self-tests (`smartctl --json -a` or `-c`).
pub fn ata_supported(smartctl: &[u8]) -> bool {
    serde_json::from_slice::<Value>(smartctl).is_ok_and(|v| {
        v["ata_smart_data"]["capabilities"]["self_tests_supported"].as_bool() == Some(true)
    })
}

/// Whether the NVMe controller supports Device Self-test: OACS bit 4 in `nvme id-ctrl -o json`.
pub fn nvme_supported(id_ctrl: &[u8]) -> bool {
    serde_json::from_slice::<Value>(id_ctrl)
        .ok()
        .and_then(|v| v["oacs"].as_u64())
        .is_some_and(|oacs| oacs & 0x10 != 0)
}

/// Where a self-test stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    Running,
    Done(SelfTest),
    /// The tool said nothing usable.
    Unknown,
}

/// The ATA self-test execution status (`smartctl --json -c`: `ata_smart_data.self_test.
/// status.value`): the high nibble is the state of the latest self-test, 15 while running.
pub fn ata_poll(smartctl_c: &[u8]) -> Poll {
    let Some(value) = serde_json::from_slice::<Value>(smartctl_c)
        .ok()
        .and_then(|v| v["ata_smart_data"]["self_test"]["status"]["value"].as_u64())
    else {
        return Poll::Unknown;
    };
    Poll::Done(match value >> 4 {
        15 => return Poll::Running,
        0 => SelfTest::Passed,
        // Aborted by the host, or interrupted by a reset.
        1 | 2 => SelfTest::Aborted,
        _ => SelfTest::Failed,
    })
}

/// The NVMe self-test log (`nvme self-test-log -o json`): a current operation while one
/// runs, else the newest result (0 passed; 1-4, 8, 9 aborted; 5-7 failed; 15 no entry).
pub fn nvme_poll(log: &[u8]) -> Poll {
    let Ok(v) = serde_json::from_slice::<Value>(log) else {
        return Poll::Unknown;
    };
    match v["Current Device Self-Test Operation"].as_u64() {
        Some(0) => {}
        Some(_) => return Poll::Running,
        None => return Poll::Unknown,
    }
    let newest = v["List of Valid Reports"]
        .as_array()
        .and_then(|l| l.first())
        .and_then(|r| r["Self test result"].as_u64());
    match newest {
        Some(0) => Poll::Done(SelfTest::Passed),
        Some(1..=4 | 8 | 9) => Poll::Done(SelfTest::Aborted),
        Some(5..=7) => Poll::Done(SelfTest::Failed),
        _ => Poll::Unknown,
    }
}

/// The command that starts a short self-test.
fn start_command(dev: &str, via: &SelfTestVia) -> (&'static str, Vec<String>) {
    match via {
        SelfTestVia::Smartctl => ("smartctl", vec!["-t".into(), "short".into(), dev.into()]),
        // Self-test code 1 (short) on every namespace of the controller.
        SelfTestVia::Nvme(ctrl) => (
            "nvme",
            [
                "device-self-test",
                &format!("/dev/{ctrl}"),
                "-n",
                "0xffffffff",
                "-s",
                "1",
            ]
            .map(String::from)
            .to_vec(),
        ),
    }
}

fn poll(dev: &str, via: &SelfTestVia) -> Poll {
    match via {
        SelfTestVia::Smartctl => run("smartctl", &["--json", "-c", dev], TOOL_LIMIT)
            .map_or(Poll::Unknown, |r| ata_poll(&r.stdout)),
        SelfTestVia::Nvme(ctrl) => {
            let ctrl = format!("/dev/{ctrl}");
            run("nvme", &["self-test-log", &ctrl, "-o", "json"], TOOL_LIMIT)
                .map_or(Poll::Unknown, |r| nvme_poll(&r.stdout))
        }
    }
}

/// Starts a short self-test and waits for its end; returns the status and a detail line.
pub fn run_one(dev: &str, via: &SelfTestVia) -> (SelfTest, String) {
    let (tool, args) = start_command(dev, via);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match run(tool, &args, TOOL_LIMIT) {
        Some(r) if r.code == 0 => {}
        Some(r) => {
            let text = r.text();
            let why = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return (
                SelfTest::Aborted,
                format!("{tool} did not start it: {}", why.trim()),
            );
        }
        None => return (SelfTest::Aborted, format!("{tool} could not be started")),
    }
    let started = Instant::now();
    loop {
        match poll(dev, via) {
            Poll::Done(status) => {
                let secs = started.elapsed().as_secs();
                return (status, format!("short self-test via {tool}, {secs} s"));
            }
            _ if started.elapsed() >= LIMIT => {
                return (
                    SelfTest::Timeout,
                    format!("no result after {} s", LIMIT.as_secs()),
                );
            }
            _ => std::thread::sleep(POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ATA: &[u8] = include_bytes!("../../fixtures/smartctl-ata.json");
    const ATA_AFTER: &[u8] = include_bytes!("../../fixtures/smartctl-ata-capabilities.json");
    const NVME_ID: &[u8] = include_bytes!("../../fixtures/nvme-id-ctrl.json");

    #[test]
    fn qemu_ata_has_self_tests_and_nvme_has_none() {
        assert!(ata_supported(ATA));
        assert!(ata_supported(ATA_AFTER));
        // QEMU 7.2's NVMe controller: OACS 0x10a, no Device Self-test.
        assert!(!nvme_supported(NVME_ID));
        assert!(!ata_supported(b"{}"));
    }

    #[test]
    fn ata_status_nibbles() {
        assert_eq!(ata_poll(ATA_AFTER), Poll::Done(SelfTest::Passed));
        let with = |value: u64| {
            let mut v: Value = serde_json::from_slice(ATA_AFTER).unwrap();
            v["ata_smart_data"]["self_test"]["status"]["value"] = value.into();
            v.to_string()
        };
        assert_eq!(ata_poll(with(0xf9).as_bytes()), Poll::Running);
        assert_eq!(
            ata_poll(with(0x10).as_bytes()),
            Poll::Done(SelfTest::Aborted)
        );
        assert_eq!(
            ata_poll(with(0x73).as_bytes()),
            Poll::Done(SelfTest::Failed)
        );
        assert_eq!(ata_poll(b"{}"), Poll::Unknown);
    }

    #[test]
    fn nvme_log_states() {
        let log = |op: u64, result: u64| {
            format!(
                "{{\"Current Device Self-Test Operation\":{op},\"Current Device Self-Test Completion\":0,\
                 \"List of Valid Reports\":[{{\"Self test result\":{result},\"Self test code\":1}}]}}"
            )
        };
        assert_eq!(nvme_poll(log(1, 15).as_bytes()), Poll::Running);
        assert_eq!(
            nvme_poll(log(0, 0).as_bytes()),
            Poll::Done(SelfTest::Passed)
        );
        assert_eq!(
            nvme_poll(log(0, 2).as_bytes()),
            Poll::Done(SelfTest::Aborted)
        );
        assert_eq!(
            nvme_poll(log(0, 7).as_bytes()),
            Poll::Done(SelfTest::Failed)
        );
        assert_eq!(nvme_poll(log(0, 15).as_bytes()), Poll::Unknown);
        assert_eq!(nvme_poll(b"Invalid"), Poll::Unknown);
    }
}
