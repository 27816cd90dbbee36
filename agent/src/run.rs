//! Runs the image's tools (stress-ng, smartctl, nvme) with a time limit: a tool stuck on a
//! failing disk must not hold the whole report back. Output goes to files rather than pipes,
//! so a tool's own children that keep its output open cannot block the agent either.

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A finished (or stopped) tool.
#[derive(Debug, Default)]
pub struct Ran {
    /// The exit code, or 128 + the signal that ended it, as a shell reports it (137 when
    /// killed at its limit).
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
}

impl Ran {
    /// Standard output then standard error, as text.
    pub fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&self.stderr));
        s
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn scratch(what: &str) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("sixboot-agent-{}-{n}.{what}", std::process::id()))
}

/// Runs `program args` for at most `limit`, in its own process group, killed whole at the
/// limit. `None` when it cannot start (not installed) or cannot be waited for: the caller
/// leaves its facts out.
pub fn run(program: &str, args: &[&str], limit: Duration) -> Option<Ran> {
    let (out_path, err_path) = (scratch("out"), scratch("err"));
    let result = run_to(program, args, limit, &out_path, &err_path);
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    result
}

fn run_to(
    program: &str,
    args: &[&str],
    limit: Duration,
    out_path: &PathBuf,
    err_path: &PathBuf,
) -> Option<Ran> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(out_path).ok()?)
        .stderr(File::create(err_path).ok()?)
        .process_group(0)
        .spawn()
        .ok()?;
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                }
                let _ = child.kill();
                break child.wait().ok()?;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => return None,
        }
    };
    Some(Ran {
        code: status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        stdout: std::fs::read(out_path).unwrap_or_default(),
        stderr: std::fs::read(err_path).unwrap_or_default(),
        timed_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_and_exit_code_come_back() {
        let r = run(
            "sh",
            &["-c", "echo out; echo err >&2; exit 3"],
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!((r.code, r.timed_out), (3, false));
        assert_eq!(r.text(), "out\nerr\n");
    }

    #[test]
    fn a_tool_past_its_limit_is_killed_with_its_children() {
        let started = Instant::now();
        let r = run(
            "sh",
            &["-c", "sleep 30 & sleep 30"],
            Duration::from_millis(300),
        )
        .unwrap();
        assert!(r.timed_out);
        assert_eq!(r.code, 128 + 9);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_missing_tool_is_none() {
        assert!(run("sixboot-no-such-tool", &[], Duration::from_secs(1)).is_none());
    }
}
