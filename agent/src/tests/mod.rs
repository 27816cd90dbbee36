//! The tests the image runs for `sixboot.duration` seconds, all at once: the CPU and memory
//! stress side by side, each disk's read and self-test beside them (one thread per disk),
//! with the machine-check, throttle and EDAC counters read around the run. They measure;
//! the server judges.

pub mod edac;
pub mod mce;
pub mod read;
pub mod self_test;
pub mod stress;
pub mod throttle;

use crate::console::{note, say};
use crate::disks::Found;
use sixboot_report::{Check, CheckName, Component, SelfTest, Values};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What the tests need to know.
pub struct Plan<'a> {
    pub duration: Duration,
    pub read_bytes: u64,
    pub self_test: bool,
    pub threads: u64,
    /// `MemAvailable`, for the memory stress.
    pub available: u64,
    pub disks: &'a [Found],
}

/// A check's detail, cut to what the report takes (1 KiB), on a character boundary.
pub fn short(detail: &str) -> String {
    const MAX: usize = 1000;
    let one_line = detail.replace(['\n', '\r', '\t'], " ");
    if one_line.len() <= MAX {
        return one_line;
    }
    let mut end = MAX;
    while !one_line.is_char_boundary(end) {
        end -= 1;
    }
    one_line[..end].to_string()
}

/// One disk's read and self-test, sent as each ends.
fn disk_job(
    found: &Found,
    plan_bytes: u64,
    self_test: bool,
    done: &AtomicU64,
    tx: &mpsc::Sender<Check>,
) {
    let d = &found.disk;
    let dev = format!("/dev/{}", d.name);
    let component = Component::Disk(d.id().to_string());
    let block = std::fs::read_to_string(format!("/sys/block/{}/queue/logical_block_size", d.name))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(512);
    let o = read::read(
        &dev,
        read::plan(plan_bytes, d.bytes, block),
        read::LIMIT,
        done,
    );
    note(&format!("{}: {}", d.name, o.detail));
    let _ = tx.send(read_check(component.clone(), o));
    let (status, detail) = match (&found.self_test, self_test) {
        (Some(via), true) => self_test::run_one(&dev, via),
        (Some(_), false) => (
            SelfTest::Unsupported,
            "not asked for (sixboot.self_test=0)".to_string(),
        ),
        (None, _) => (
            SelfTest::Unsupported,
            "the drive has no self-test".to_string(),
        ),
    };
    let said = format!("{status:?}").to_lowercase();
    note(&format!("{}: self-test {said}: {detail}", d.name));
    let _ = tx.send(self_test_check(component, status, &detail));
}

fn read_check(component: Component, o: read::Outcome) -> Check {
    let mb_per_s = (o.seconds > 0.0).then(|| o.bytes as f64 / 1e6 / o.seconds);
    Check {
        component,
        name: CheckName::Read,
        detail: short(&o.detail),
        values: Values {
            bytes: Some(o.bytes),
            seconds: Some(o.seconds),
            mb_per_s,
            errors: Some(o.errors),
            ..Values::default()
        },
    }
}

fn self_test_check(component: Component, status: SelfTest, detail: &str) -> Check {
    Check {
        component,
        name: CheckName::SelfTest,
        detail: short(detail),
        values: Values {
            status: Some(status),
            ..Values::default()
        },
    }
}

/// Runs every test; returns the checks, cpu first, then memory, then the disks in order.
pub fn run(plan: &Plan) -> Vec<Check> {
    let throttle_before = throttle::total(&throttle::read());
    let edac_before = edac::read();
    say(&format!("starting {}s burn", plan.duration.as_secs()));
    let started = Instant::now();

    let (tx, rx) = mpsc::channel();
    let progress: Vec<Arc<AtomicU64>> = plan.disks.iter().map(|_| Arc::default()).collect();
    for (found, done) in plan.disks.iter().zip(&progress) {
        let (found, done, tx) = (found.clone(), Arc::clone(done), tx.clone());
        let (bytes, st) = (plan.read_bytes, plan.self_test);
        std::thread::spawn(move || disk_job(&found, bytes, st, &done, &tx));
    }
    drop(tx);

    let (cpu_stress, memory_stress) = stress::run_both(plan.duration, plan.threads, plan.available);
    note("stress done");

    // Every disk sends a read and a self-test check; a disk that stalls past both limits
    // is reported as it stands.
    let deadline = started + read::LIMIT + self_test::LIMIT + Duration::from_secs(120);
    let mut disk_checks = Vec::new();
    while disk_checks.len() < 2 * plan.disks.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(c) => disk_checks.push(c),
            Err(_) => break,
        }
    }
    for (found, done) in plan.disks.iter().zip(&progress) {
        let component = Component::Disk(found.disk.id().to_string());
        let has = |name| {
            disk_checks
                .iter()
                .any(|c| c.component == component && c.name == name)
        };
        let (has_read, has_self_test) = (has(CheckName::Read), has(CheckName::SelfTest));
        if !has_read {
            let bytes = done.load(std::sync::atomic::Ordering::Relaxed);
            let detail = format!("the disk stopped answering after {bytes} bytes");
            let seconds = started.elapsed().as_secs_f64();
            disk_checks.push(read_check(
                component.clone(),
                read::Outcome {
                    bytes,
                    seconds,
                    errors: 1,
                    detail,
                },
            ));
        }
        if !has_self_test {
            disk_checks.push(self_test_check(
                component,
                SelfTest::Timeout,
                "no result before the disks' deadline",
            ));
        }
    }
    let order = |c: &Check| {
        let disk = plan
            .disks
            .iter()
            .position(|f| Component::Disk(f.disk.id().to_string()) == c.component);
        (disk, c.name)
    };
    disk_checks.sort_by_key(order);

    let throttle_events = throttle::total(&throttle::read()).saturating_sub(throttle_before);
    let edac_after = edac::read();
    let mut checks = vec![cpu_stress];
    checks.extend(mce::check());
    checks.push(Check {
        component: Component::Cpu,
        name: CheckName::Throttle,
        detail: format!("{throttle_events} thermal throttling event(s) during the run"),
        values: Values {
            events: Some(throttle_events),
            ..Values::default()
        },
    });
    checks.push(memory_stress);
    checks.push(Check {
        component: Component::Memory,
        name: CheckName::Edac,
        detail: format!("{} memory controller(s) with EDAC", edac_after.controllers),
        values: Values {
            corrected: Some(edac_after.corrected),
            uncorrected: Some(edac_after.uncorrected),
            corrected_before: Some(edac_before.corrected),
            uncorrected_before: Some(edac_before.uncorrected),
            count: Some(edac_after.controllers),
            ..Values::default()
        },
    });
    checks.extend(disk_checks);
    checks
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn details_fit_the_report() {
        assert_eq!(short("a\nb"), "a b");
        let long = "é".repeat(700);
        let s = short(&long);
        assert!(s.len() <= 1000 && s.chars().all(|c| c == 'é'));
    }
}
