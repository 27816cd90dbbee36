//! What sixboot asks of this boot, read from the kernel command line: sixboot writes the
//! `sixboot.*` words into the iPXE script it serves, so the command line is the one channel
//! from the server to the image before the agent has spoken to it.
//!
//! A word given twice counts by its last occurrence (as the kernel's own parameters do). A
//! bad value is reported and replaced by its default: a typo must not stop a burn-in.

use sixboot_report::Step;

/// Seconds of testing when `sixboot.duration` is absent or bad.
pub const DEFAULT_DURATION_S: u64 = 60;
/// The longest duration believed (the report schema's limit, a week).
pub const MAX_DURATION_S: u64 = 7 * 24 * 3600;
const MIB: u64 = 1 << 20;

/// What to do when sixboot does not say (`then` is `stay`) or cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Poweroff,
    /// Stay up with a shell on the console.
    Wait,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where to POST the report; `None` runs the tests and reports to the console only.
    pub report: Option<String>,
    pub token: Option<String>,
    pub step: Step,
    pub duration_s: u64,
    /// How much of each disk to read.
    pub read_bytes: u64,
    /// Whether to run each drive's short self-test.
    pub self_test: bool,
    pub after: After,
}

/// Reads `/proc/cmdline` text; returns the config and one message per value it refused.
pub fn parse(cmdline: &str) -> (Config, Vec<String>) {
    let last = |key: &str| {
        cmdline
            .split_whitespace()
            .filter_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .next_back()
            .map(str::to_string)
    };
    let report = last("sixboot.report").filter(|s| !s.is_empty());
    let token = last("sixboot.token").filter(|s| !s.is_empty());
    let step = last("sixboot.step");
    let duration = last("sixboot.duration");
    let read_bytes = last("sixboot.read_bytes");
    let self_test = last("sixboot.self_test");
    let after = last("sixboot.after");

    let mut bad = Vec::new();
    let mut refuse = |key: &str, v: &str, want: &str, default: String| {
        bad.push(format!("sixboot.{key}={v} is not {want}; using {default}"));
    };

    let step = match step.as_deref() {
        None => Step::Burnin,
        Some(s) => Step::from_name(s).unwrap_or_else(|| {
            refuse("step", s, "inventory or burnin", "burnin".into());
            Step::Burnin
        }),
    };
    let inventory = step == Step::Inventory;
    let duration_s = match duration {
        None => DEFAULT_DURATION_S,
        Some(s) => match s.parse::<u64>() {
            Ok(n) if (1..=MAX_DURATION_S).contains(&n) => n,
            _ => {
                refuse(
                    "duration",
                    &s,
                    &format!("a number of seconds from 1 to {MAX_DURATION_S}"),
                    DEFAULT_DURATION_S.to_string(),
                );
                DEFAULT_DURATION_S
            }
        },
    };
    let default_read = if inventory { 64 * MIB } else { 1024 * MIB };
    let read_bytes = match read_bytes {
        None => default_read,
        Some(s) => s.parse::<u64>().unwrap_or_else(|_| {
            refuse(
                "read_bytes",
                &s,
                "a number of bytes",
                default_read.to_string(),
            );
            default_read
        }),
    };
    let default_self_test = !inventory;
    let self_test = match self_test.as_deref() {
        None => default_self_test,
        Some("1") => true,
        Some("0") => false,
        Some(s) => {
            refuse(
                "self_test",
                s,
                "0 or 1",
                u8::from(default_self_test).to_string(),
            );
            default_self_test
        }
    };
    let after = match after.as_deref() {
        None | Some("poweroff") => After::Poweroff,
        Some("wait") => After::Wait,
        Some(s) => {
            refuse("after", s, "poweroff or wait", "poweroff".into());
            After::Poweroff
        }
    };
    (
        Config {
            report,
            token,
            step,
            duration_s,
            read_bytes,
            self_test,
            after,
        },
        bad,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command line as sixboot's burn-in menu item writes it.
    const MENU: &str = "BOOT_IMAGE=burnin/vmlinuz initrd=initrd.img console=ttyS0,115200 \
        sixboot.report=http://[fd00:1::1]:8080/api/v1/machines/52:54:00:b0:00:01/report \
        sixboot.token=0123456789abcdef0123456789abcdef\n";

    #[test]
    fn the_menu_line_burns_in_with_the_defaults() {
        let (c, bad) = parse(MENU);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(
            c,
            Config {
                report: Some(
                    "http://[fd00:1::1]:8080/api/v1/machines/52:54:00:b0:00:01/report".into()
                ),
                token: Some("0123456789abcdef0123456789abcdef".into()),
                step: Step::Burnin,
                duration_s: 60,
                read_bytes: 1 << 30,
                self_test: true,
                after: After::Poweroff,
            }
        );
    }

    #[test]
    fn inventory_reads_less_and_skips_self_tests() {
        let (c, bad) = parse(&format!(
            "{MENU} sixboot.step=inventory sixboot.duration=10"
        ));
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(
            (c.step, c.duration_s, c.read_bytes, c.self_test),
            (Step::Inventory, 10, 64 << 20, false)
        );
        let (c, _) = parse("sixboot.step=inventory sixboot.self_test=1 sixboot.read_bytes=4096");
        assert_eq!((c.self_test, c.read_bytes), (true, 4096));
    }

    #[test]
    fn the_last_occurrence_wins() {
        let (c, bad) = parse("sixboot.duration=5 sixboot.after=wait sixboot.duration=7");
        assert!(bad.is_empty());
        assert_eq!((c.duration_s, c.after), (7, After::Wait));
        // A longer key with the same start is another word.
        let (c, _) = parse("sixboot.report_x=a sixboot.report=b");
        assert_eq!(c.report.as_deref(), Some("b"));
    }

    #[test]
    fn bad_values_are_named_and_defaulted() {
        let (c, bad) = parse(
            "sixboot.step=erase sixboot.duration=0 sixboot.read_bytes=1G \
             sixboot.self_test=yes sixboot.after=reboot sixboot.report=",
        );
        assert_eq!(
            bad,
            [
                "sixboot.step=erase is not inventory or burnin; using burnin",
                "sixboot.duration=0 is not a number of seconds from 1 to 604800; using 60",
                "sixboot.read_bytes=1G is not a number of bytes; using 1073741824",
                "sixboot.self_test=yes is not 0 or 1; using 1",
                "sixboot.after=reboot is not poweroff or wait; using poweroff",
            ]
        );
        assert_eq!(
            (c.step, c.duration_s, c.self_test, c.after, c.report),
            (Step::Burnin, 60, true, After::Poweroff, None)
        );
    }
}
