//! Machine-check events: the kernel logs corrected machine checks as `[Hardware Error]`
//! lines (fatal ones panic the machine, so a report never carries them). The count is over
//! the whole boot, read from `/dev/kmsg` (each record whole), else from `dmesg`.

use sixboot_report::{Check, CheckName, Component, Values};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

/// Whether a kernel log record reports a machine check.
pub fn is_mce(record: &str) -> bool {
    let l = record.to_ascii_lowercase();
    l.contains("hardware error") || l.contains("machine check")
}

/// The kernel log's records, oldest first: `/dev/kmsg` opened non-blocking gives one
/// record per read and `EAGAIN` at the end.
fn kernel_log() -> Option<Vec<String>> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .ok()?;
    let mut records = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => records.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            // A record overwritten while we read: skip on.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(_) => break,
        }
    }
    Some(records)
}

fn dmesg() -> Option<Vec<String>> {
    let ran = crate::run::run("dmesg", &[], std::time::Duration::from_secs(30))?;
    Some(ran.text().lines().map(str::to_string).collect())
}

/// The cpu `mce` check; `None` when no kernel log could be read.
pub fn check() -> Option<Check> {
    let log = kernel_log().filter(|l| !l.is_empty()).or_else(dmesg)?;
    let hits: Vec<&String> = log.iter().filter(|r| is_mce(r)).collect();
    let detail = match hits.first() {
        None => "no machine-check events in the kernel log".to_string(),
        Some(first) => format!(
            "{} kernel log record(s); first: {}",
            hits.len(),
            first.trim()
        ),
    };
    Some(Check {
        component: Component::Cpu,
        name: CheckName::Mce,
        detail: super::short(&detail),
        values: Values {
            events: Some(hits.len() as u64),
            ..Values::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU: &str = include_str!("../../fixtures/qemu-dmesg.txt");

    #[test]
    fn a_clean_boot_has_none() {
        assert_eq!(QEMU.lines().filter(|l| is_mce(l)).count(), 0);
    }

    #[test]
    fn kernel_mce_lines() {
        for l in [
            "4,1234,5678,-;mce: [Hardware Error]: Machine check events logged",
            "[  101.5] mce: [Hardware Error]: CPU 3: Machine Check: 0 Bank 7: cc00008000010090",
            "3,99,100,-;EDAC MC0: 1 CE memory read error on CPU_SrcID#0 (machine check)",
        ] {
            assert!(is_mce(l), "{l}");
        }
        assert!(!is_mce("6,7,8,-;MCE: In-kernel MCE decoding enabled."));
    }
}
