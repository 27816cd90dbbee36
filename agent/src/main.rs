//! `sixboot-agent`: run by the image's init as PID 1 (`exec`), with nothing on its command
//! line: everything it needs is on the kernel's (`/proc/cmdline`, see `cmdline`).

use nix::sys::reboot::RebootMode;
use sixboot_agent::cmdline::{self, After, Config};
use sixboot_agent::console::{note, say};
use sixboot_agent::post::{self, Outcome};
use sixboot_agent::{memory, power, tests};
use sixboot_report::{Report, Then};
use std::time::{Duration, Instant};

/// How long the report is offered to a sixboot that is down or restarting.
const RETRY_FOR: Duration = Duration::from_secs(300);
const RETRY_EVERY: Duration = Duration::from_secs(3);

fn main() {
    let text = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let (cfg, refused) = cmdline::parse(&text);
    for r in &refused {
        say(r);
    }
    // A panic must not end PID 1 (the kernel would panic): the machine still ends its run
    // as sixboot.after says.
    let then = std::panic::catch_unwind(|| burn_and_report(&cfg)).unwrap_or_else(|_| {
        say("the agent failed; no report was sent");
        None
    });
    finish(then, cfg.after);
}

/// Collects, tests, reports; returns what sixboot said to do next.
fn burn_and_report(cfg: &Config) -> Option<Then> {
    note(&format!("agent: step {}", cfg.step.as_str()));
    let (inventory, found) = sixboot_agent::inventory();
    note(&format!(
        "inventory: {} socket(s), {} bytes of memory, {} disk(s), {} NIC(s)",
        inventory.cpus.len(),
        inventory.memory.bytes,
        inventory.disks.len(),
        inventory.nics.len()
    ));
    let threads = match inventory.cpus.iter().map(|c| u64::from(c.threads)).sum() {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        n => n,
    };
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| memory::meminfo_bytes(&m, "MemAvailable"))
        .unwrap_or(0);
    let started = Instant::now();
    let checks = tests::run(&tests::Plan {
        duration: Duration::from_secs(cfg.duration_s),
        read_bytes: cfg.read_bytes,
        self_test: cfg.self_test,
        threads,
        available,
        disks: &found,
    });
    let report = Report {
        step: cfg.step,
        duration_s: started.elapsed().as_secs(),
        inventory,
        checks,
    };
    let json = match serde_json::to_string(&report) {
        Ok(j) => j,
        Err(e) => {
            say(&format!("report failed: cannot write it: {e}"));
            return None;
        }
    };
    say(&format!("report: {json}"));
    let Some(url) = &cfg.report else {
        say("report failed: no sixboot.report on the kernel command line");
        return None;
    };
    match post::post(
        url,
        cfg.token.as_deref(),
        json.as_bytes(),
        RETRY_FOR,
        RETRY_EVERY,
    ) {
        Outcome::Accepted(a) => {
            say(&format!("RESULT {}", a.result));
            Some(a.then)
        }
        Outcome::Unclear(why) => {
            say(&format!(
                "report failed: sixboot's answer is not understood: {why}"
            ));
            None
        }
        Outcome::Refused(status, body) => {
            say(&format!("report failed: HTTP {status}: {body}"));
            None
        }
        Outcome::GaveUp(last) => {
            say(&format!(
                "report failed: no answer within {} s; last: {last}",
                RETRY_FOR.as_secs()
            ));
            None
        }
    }
}

/// Does what sixboot said, or what `sixboot.after` says when it said `stay` or nothing.
fn finish(then: Option<Then>, after: After) {
    if std::process::id() != 1 {
        say("not PID 1: leaving the machine as it is");
        return;
    }
    match (then, after) {
        (Some(Then::Reboot), _) => {
            say("rebooting");
            power::halt(RebootMode::RB_AUTOBOOT);
        }
        (Some(Then::Poweroff), _) | (Some(Then::Stay) | None, After::Poweroff) => {
            say("powering off");
            power::halt(RebootMode::RB_POWER_OFF);
        }
        (Some(Then::Stay) | None, After::Wait) => {}
    }
    power::wait_with_shell("sixboot.after=wait");
}
