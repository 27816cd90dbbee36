//! CPU and memory under load, with stress-ng's own verification: `--cpu 0 --cpu-method all
//! --verify` on every thread, and `--vm N --vm-keep --verify` over most of the free memory.
//! stress-ng logs each verification failure as a `fail:` line and exits non-zero; the check
//! carries the exit code and the count of those lines, and the server judges them.

use crate::console::say;
use crate::run::{Ran, run};
use sixboot_report::{Check, CheckName, Component, Values};
use std::time::{Duration, Instant};

/// Beyond the duration, how long stress-ng may take to stop before it is killed.
const GRACE: Duration = Duration::from_secs(60);

/// Verification failures stress-ng reported (`stress-ng: fail:` lines).
pub fn failures(output: &str) -> u64 {
    output.lines().filter(|l| l.contains(": fail:")).count() as u64
}

/// What a person wants to read first: the failures if any, else the stressor's metrics line
/// (`cpu  62  5.03  9.96  0.01  12.32  6.22`).
pub fn summary(output: &str, stressor: &str) -> String {
    let fails: Vec<&str> = output
        .lines()
        .filter(|l| l.contains(": fail:"))
        .take(3)
        .map(after_pid)
        .collect();
    if !fails.is_empty() {
        return fails.join("; ");
    }
    output
        .lines()
        .map(after_pid)
        .find(|l| {
            let mut words = l.split_whitespace();
            words.next() == Some(stressor)
                && words
                    .next()
                    .is_some_and(|w| w.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A log line after stress-ng's `stress-ng: info:  [123] ` prefix.
fn after_pid(line: &str) -> &str {
    line.split_once("] ").map_or(line, |(_, rest)| rest).trim()
}

/// The memory each vm worker takes: three quarters of what the kernel says is available,
/// split over the workers, so the kernel, the agent and the tools keep the rest.
pub fn vm_bytes_per_worker(available: u64, workers: u64) -> u64 {
    (available / 4 * 3 / workers.max(1)) & !0xfff
}

/// One stressor's run, as a check.
fn check(component: Component, ran: Option<Ran>, started: Instant, stressor: &str) -> Check {
    let seconds = Some(started.elapsed().as_secs_f64());
    let (exit_code, errors, detail) = match ran {
        None => (127, 0, "stress-ng could not be started".to_string()),
        Some(r) => {
            let text = r.text();
            for l in text.lines() {
                say(&format!("  {stressor}: {l}"));
            }
            let code = r.code;
            let mut detail = format!("exit {code}: {}", summary(&text, stressor));
            if r.timed_out {
                detail.push_str(" (killed: still running past its time)");
            }
            (code, failures(&text), detail)
        }
    };
    Check {
        component,
        name: CheckName::Stress,
        detail: super::short(&detail),
        values: Values {
            exit_code: Some(exit_code),
            errors: Some(errors),
            seconds,
            ..Values::default()
        },
    }
}

/// Runs the CPU and the memory stressors side by side for `duration`; returns the cpu and
/// the memory check.
pub fn run_both(duration: Duration, threads: u64, available: u64) -> (Check, Check) {
    let secs = format!("{}s", duration.as_secs());
    let limit = duration + GRACE;
    let workers = threads.max(1);
    let per_worker = vm_bytes_per_worker(available, workers);
    let (cpu, vm) = std::thread::scope(|s| {
        let cpu = s.spawn(|| {
            let started = Instant::now();
            let args = [
                "--cpu",
                "0",
                "--cpu-method",
                "all",
                "--verify",
                "--timeout",
                &secs,
                "--metrics-brief",
            ];
            (run("stress-ng", &args, limit), started)
        });
        let vm = s.spawn(|| {
            let started = Instant::now();
            let (n, bytes) = (workers.to_string(), format!("{}k", per_worker >> 10));
            let args = [
                "--vm",
                &n,
                "--vm-bytes",
                &bytes,
                "--vm-keep",
                "--verify",
                "--timeout",
                &secs,
                "--metrics-brief",
            ];
            (run("stress-ng", &args, limit), started)
        });
        (cpu.join(), vm.join())
    });
    let (cpu, cpu_started) = cpu.unwrap_or((None, Instant::now()));
    let (vm, vm_started) = vm.unwrap_or((None, Instant::now()));
    let mut cpu = check(Component::Cpu, cpu, cpu_started, "cpu");
    cpu.values.count = Some(threads);
    let mut memory = check(Component::Memory, vm, vm_started, "vm");
    memory.values.bytes = Some(per_worker * workers);
    memory.values.count = Some(workers);
    (cpu, memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPU: &str = include_str!("../../fixtures/stress-ng-cpu.txt");
    const VM: &str = include_str!("../../fixtures/stress-ng-vm.txt");

    #[test]
    fn clean_runs() {
        assert_eq!(failures(CPU), 0);
        assert_eq!(failures(VM), 0);
        assert!(
            summary(CPU, "cpu").starts_with("cpu "),
            "{}",
            summary(CPU, "cpu")
        );
        assert!(
            summary(VM, "vm").starts_with("vm "),
            "{}",
            summary(VM, "vm")
        );
    }

    #[test]
    fn verification_failures_are_counted() {
        let bad = format!(
            "{VM}stress-ng: fail:  [312] vm: detected 3 bit errors while stressing memory\n\
             stress-ng: fail:  [313] vm: detected 1 bit errors while stressing memory\n"
        );
        assert_eq!(failures(&bad), 2);
        assert_eq!(
            summary(&bad, "vm"),
            "vm: detected 3 bit errors while stressing memory; vm: detected 1 bit errors while stressing memory"
        );
    }

    #[test]
    fn memory_split() {
        assert_eq!(vm_bytes_per_worker(800 << 20, 2), 300 << 20);
        assert_eq!(vm_bytes_per_worker(800 << 20, 0), 600 << 20);
        assert_eq!(vm_bytes_per_worker(0, 2), 0);
    }
}
