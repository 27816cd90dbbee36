//! The end of a run: reboot or power off through reboot(2) after a sync (the agent is
//! PID 1, so there is no init to ask), or stay up with a shell on the console.

use crate::console::say;
use nix::sys::reboot::{RebootMode, reboot};
use std::process::Command;
use std::time::Duration;

/// Reboots or powers off now. Returns only if the kernel refused (the agent is not PID 1).
pub fn halt(mode: RebootMode) {
    nix::unistd::sync();
    let Err(e) = reboot(mode);
    say(&format!("{mode:?} failed: {e}"));
}

/// Keeps the machine up with a shell on the console, for an operator at the rack.
pub fn wait_with_shell(why: &str) -> ! {
    say(&format!("waiting ({why}); a shell is on the console"));
    loop {
        // setsid + cttyhack give the shell the console as its controlling terminal, so
        // Ctrl-C works in it.
        let _ = Command::new("setsid").args(["cttyhack", "sh"]).status();
        // A console without input (EOF) ends the shell at once: pace the restarts.
        std::thread::sleep(Duration::from_secs(5));
    }
}
