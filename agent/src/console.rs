//! The serial console is the image's only voice before (and without) a server: every line
//! starts `sixboot-burnin:`, the prefix tests and operators grep for, and progress lines carry
//! the seconds since boot so a console log times the boot by itself.

use std::io::Write;

/// Prints one console line. A console that cannot be written to is no reason to stop.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "sixboot-burnin: {line}");
    let _ = out.flush();
}

/// Prints a progress line with the seconds since boot.
pub fn note(line: &str) {
    match uptime() {
        Some(s) => say(&format!("{line} (at {s} s)")),
        None => say(line),
    }
}

/// The first field of `/proc/uptime`, as the kernel writes it (`12.34`).
fn uptime() -> Option<String> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    text.split_whitespace().next().map(str::to_string)
}
