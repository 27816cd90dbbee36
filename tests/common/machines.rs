//! sixboot with machine records in a lab, and the moves of the parties around them:
//! iPXE fetching per-machine scripts, the burn-in image posting reports, the operator
//! setting next actions. Shared by the API, dashboard and burn-in tests.

use super::curl::{Reply, curl};
use super::{Lab, SERVER_V6, wait_until};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

pub const MAC: &str = "52:54:00:12:34:56";
pub const ADMIN: &str = "s3cret-admin";

pub fn base() -> String {
    format!("http://[{SERVER_V6}]:8080")
}

/// A config with memtest and burnin items; `api` goes at the end (the `[api]` table and
/// any `[[host]]` pins).
pub fn config(lab: &Lab, api: &str) -> PathBuf {
    lab.write("http/memtest86+x64.efi", b"memtest for EFI");
    lab.write("http/burnin/vmlinuz", b"kernel");
    lab.write("http/burnin/initrd.img", b"initrd");
    let text = format!(
        r#"interface = "br0"
state_dir = "state"

[http]
listen = ["[{SERVER_V6}]:8080"]
root = "http"

[menu]
default = "memtest"
timeout = 5

[[menu.item]]
id = "memtest"
title = "Memtest86+"
efi = "memtest86+x64.efi"

[[menu.item]]
id = "burnin"
title = "CPU burn-in"
kernel = "burnin/vmlinuz"
initrd = "burnin/initrd.img"
args = "console=ttyS0,115200 sixboot.duration=20"
{api}"#
    );
    lab.write("sixboot.toml", text)
}

/// A lab with one client and sixboot answering /healthz.
pub fn started(test: &str, api: &str) -> (Lab, String, PathBuf, u32) {
    let mut lab = Lab::new(test);
    let c = lab.client("c", None, Some("fd00:1::10/64"));
    let cfg = config(&lab, api);
    let pid = lab.start_sixboot(&cfg);
    assert!(
        ready(&lab, &c),
        "sixboot never became ready:\n{}",
        lab.log()
    );
    (lab, c, cfg, pid)
}

pub fn ready(lab: &Lab, c: &str) -> bool {
    wait_until(Duration::from_secs(15), || {
        curl(lab, c, &format!("{}/healthz", base()), &[]).status == 200
    })
}

pub fn json(r: &Reply) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

/// The per-machine script as iPXE on EFI fetches it (see tests/http.rs for the whole
/// chain from boot.ipxe).
pub fn script(lab: &Lab, c: &str, mac: &str, uuid: &str) -> String {
    let url = format!(
        "{}/ipxe?mac={}&platform=efi&buildarch=x86_64&uuid={uuid}&serial=SN1&manufacturer=QEMU&product=Standard%20PC",
        base(),
        mac.replace(':', "-")
    );
    let r = curl(lab, c, &url, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

/// An operator's JSON request: `method` to `path` (below [`base`]) with `body`, and the
/// admin token when given.
pub fn api(lab: &Lab, c: &str, method: &str, path: &str, body: &str, token: Option<&str>) -> Reply {
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let mut args = vec![
        "-X",
        method,
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
    ];
    if let Some(a) = &auth {
        args.extend(["-H", a]);
    }
    curl(lab, c, &format!("{}{path}", base()), &args)
}

pub fn put_next(lab: &Lab, c: &str, mac: &str, body: &str, token: Option<&str>) -> Reply {
    api(
        lab,
        c,
        "PUT",
        &format!("/api/v1/machines/{mac}/next"),
        body,
        token,
    )
}

pub fn put_spec(lab: &Lab, c: &str, mac: &str, body: &str, token: Option<&str>) -> Reply {
    api(
        lab,
        c,
        "PUT",
        &format!("/api/v1/machines/{mac}/spec"),
        body,
        token,
    )
}

/// POSTs `body` (a file, so any size) as the image would.
pub fn post_report(lab: &Lab, c: &str, mac: &str, body: &[u8], token: Option<&str>) -> Reply {
    let file = lab.write("report.json", body);
    let data = format!("@{}", file.display());
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    // No `Expect: 100-continue`: the answer comes in one go, whatever the size.
    let mut args = vec![
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-H",
        "Expect:",
        "--data-binary",
        &data,
    ];
    if let Some(a) = &auth {
        args.extend(["-H", a]);
    }
    curl(
        lab,
        c,
        &format!("{}/api/v1/machines/{mac}/report", base()),
        &args,
    )
}

pub fn machine(lab: &Lab, c: &str, mac: &str) -> Reply {
    curl(lab, c, &format!("{}/api/v1/machines/{mac}", base()), &[])
}

/// The `sixboot.token=` and `sixboot.report=` values on the burn-in kernel line.
pub fn burnin_args(script: &str) -> Option<(String, String)> {
    let line = script
        .lines()
        .find(|l| l.starts_with("kernel ") && l.contains("/burnin/vmlinuz"))?;
    let value = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(str::to_string)
    };
    Some((value("sixboot.report=")?, value("sixboot.token=")?))
}

pub fn stages(v: &Value) -> Vec<String> {
    v["timeline"]
        .as_array()
        .expect("a timeline")
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["protocol"].as_str().unwrap(),
                e["stage"].as_str().unwrap()
            )
        })
        .collect()
}

/// Waits (bounded) until the machine's timeline has step `want` (`protocol stage`):
/// protocol steps reach the records a moment after the answer that made them.
pub fn wait_step(lab: &Lab, c: &str, mac: &str, want: &str) -> Value {
    let mut last = Value::Null;
    let seen = wait_until(Duration::from_secs(5), || {
        last = json(&machine(lab, c, mac));
        stages(&last).iter().any(|s| s == want)
    });
    assert!(seen, "{want} never reached {mac}'s timeline: {last}");
    last
}

/// A step's report in the image's own schema (`sixboot_report`, so it cannot drift from
/// what the server takes): a one-socket machine with serial `serial`, 4 GiB in two DIMMs,
/// one SATA SSD (serial `DSK-` and the MAC's last two bytes) and its NIC `mac`. Every
/// check passes unless `failing` names one: `stress` (the CPU), `edac` (memory) or
/// `self_test` (the disk).
pub fn step_report(step: &str, mac: &str, serial: &str, failing: Option<&str>) -> String {
    use sixboot_report::*;
    let disk_serial = format!("DSK-{}", mac[12..].replace(':', ""));
    let dimm = |slot: &str| Dimm {
        slot: slot.into(),
        bytes: 2 << 30,
        kind: Some("DDR4".into()),
        speed_mts: Some(2400),
        ..Dimm::default()
    };
    let inventory = Inventory {
        system: System {
            manufacturer: Some("QEMU".into()),
            product: Some("Standard PC (Q35)".into()),
            serial: Some(serial.into()),
            ..System::default()
        },
        cpus: vec![Cpu {
            model: "QEMU Virtual CPU version 2.5+".into(),
            cores: 2,
            threads: 2,
            max_mhz: None,
            microcode: None,
        }],
        memory: Memory {
            bytes: 4 << 30,
            dimms: vec![dimm("DIMM 0"), dimm("DIMM 1")],
        },
        disks: vec![Disk {
            name: "sda".into(),
            model: Some("QEMU HARDDISK".into()),
            serial: Some(disk_serial.clone()),
            bytes: 960_197_124_096,
            kind: DiskKind::Ssd,
            transport: Transport::Sata,
            smart: Some(Smart {
                healthy: Some(true),
                power_on_hours: Some(1200),
                reallocated_sectors: Some(0),
                pending_sectors: Some(0),
                temperature_c: Some(30),
                ..Smart::default()
            }),
        }],
        nics: vec![Nic {
            name: "eth0".into(),
            mac: mac.into(),
            driver: Some("e1000".into()),
            speed_mbps: Some(1000),
            link: true,
        }],
        pci: Vec::new(),
        bmc: Bmc::default(),
    };
    let fails = |name: &str| failing == Some(name);
    let checks = vec![
        Check {
            component: Component::Cpu,
            name: CheckName::Stress,
            detail: String::new(),
            values: Values {
                exit_code: Some(if fails("stress") { 2 } else { 0 }),
                errors: Some(if fails("stress") { 3 } else { 0 }),
                seconds: Some(20.0),
                ..Values::default()
            },
        },
        Check {
            component: Component::Memory,
            name: CheckName::Edac,
            detail: String::new(),
            values: Values {
                corrected: Some(0),
                uncorrected: Some(u64::from(fails("edac"))),
                count: Some(1),
                ..Values::default()
            },
        },
        Check {
            component: Component::Disk(disk_serial),
            name: CheckName::SelfTest,
            detail: String::new(),
            values: Values {
                status: Some(if fails("self_test") {
                    SelfTest::Failed
                } else {
                    SelfTest::Passed
                }),
                ..Values::default()
            },
        },
    ];
    let report = Report {
        step: Step::from_name(step).expect("a reporting step"),
        duration_s: 20,
        inventory,
        checks,
    };
    serde_json::to_string(&report).unwrap()
}

/// [`step_report`] for [`MAC`] with system serial `SYS-0001`.
pub fn report(step: &str, failing: Option<&str>) -> String {
    step_report(step, MAC, "SYS-0001", failing)
}
