//! (g) The warehouse pipeline end to end with no API call before the boot: a machine never
//! seen before (2 vCPUs, 1 GiB, an NVMe, a SATA disk on AHCI and a virtio disk, each with a
//! serial) boots through the real chain and runs the config's default pipeline: the
//! `inventory` step, a reboot, a short `burnin`, then powers off. One boot sequence serves
//! every assertion: the inventory in the API, a PASS for every part, both step reports
//! kept, and a spec mismatch (2 GiB expected) failing the `system` part at once.

use super::common::machines::{json, machine, put_spec};
use super::common::{self, Lab};
use super::vm::{Firmware, Hardware, Vm};
use super::{api_timeline, assert_in_order, assets};
use std::time::Duration;

const ADMIN: &str = "e2e-admin-token";
const MAC: &str = "52:54:00:e2:0a:01";
const DISKS: [(&str, &str, u64); 3] = [
    ("nvme", "NVME-E2E-0001", 64 << 20),
    ("sata", "SATA-E2E-0002", 96 << 20),
    ("virtio", "VIRTIO-E2E-0003", 128 << 20),
];

/// QEMU arguments for the three disks (sparse files in the lab's folder) and the SMBIOS
/// system serial.
fn hardware(lab: &Lab) -> Hardware {
    let mut extra: Vec<String> = [
        "-smbios",
        "type=1,serial=SYS-E2E-0001",
        "-device",
        "ahci,id=ahci0",
    ]
    .map(String::from)
    .into();
    for (i, (bus, serial, bytes)) in DISKS.iter().enumerate() {
        let file = lab.dir.path().join(format!("{bus}.img"));
        std::fs::File::create(&file)
            .unwrap()
            .set_len(*bytes)
            .unwrap();
        extra.push("-drive".into());
        extra.push(format!(
            "file={},if=none,id=d{i},format=raw",
            file.display()
        ));
        extra.push("-device".into());
        extra.push(match *bus {
            "nvme" => format!("nvme,drive=d{i},serial={serial}"),
            "sata" => format!("ide-hd,drive=d{i},bus=ahci0.0,serial={serial}"),
            _ => format!("virtio-blk-pci,drive=d{i},serial={serial}"),
        });
    }
    Hardware {
        memory_mib: Some(1024),
        cpus: Some(2),
        reboot: true,
        extra,
    }
}

#[test]
fn g_a_default_pipeline_inventories_burns_and_powers_off() {
    let mut lab = Lab::new("e2eg");
    assets(&lab);
    let contract = include_str!("../../examples/sixboot.toml");
    let cfg = lab.write(
        "sixboot.toml",
        format!(
            "{contract}\n[api]\nadmin_token = \"{ADMIN}\"\n\n[steps]\n\
             pipeline = [\"inventory\", \"burnin\", \"poweroff\"]\n\
             inventory_seconds = 5\nburnin_seconds = 20\nread_bytes = 33554432\n"
        ),
    );
    let ns = lab.ns.clone();
    lab.start_sixboot(&cfg);
    assert!(
        common::machines::ready(&lab, &ns),
        "sixboot never became ready:\n{}",
        lab.log()
    );

    lab.tap("tapg");
    let hw = hardware(&lab);
    let mut vm = Vm::start(
        &ns,
        lab.dir.path(),
        "tapg",
        Firmware::SeaBiosIpxeRom,
        "tapg",
        MAC,
        None,
        &hw,
    );
    // Both steps and the power-off, bounded: two chain boots under TCG.
    let off = vm.wait_exit(Duration::from_secs(1500));
    let console = vm.console();
    assert!(
        off.is_some(),
        "the VM did not finish its pipeline\n--- console:\n{console}\n--- sixboot log:\n{}",
        lab.log()
    );
    println!(
        "TIME_TO_POWEROFF seconds={:.1}",
        vm.started.elapsed().as_secs_f64()
    );
    for line in [
        "sixboot-burnin: starting 5s burn",
        "sixboot-burnin: rebooting",
        "sixboot-burnin: starting 20s burn",
        "sixboot-burnin: RESULT PASS",
        "sixboot-burnin: powering off",
    ] {
        assert!(console.contains(line), "console lacks {line:?}:\n{console}");
    }

    let v = json(&machine(&lab, &ns, MAC));
    assert_eq!(v["result"], "PASS", "{v:#}");
    assert_eq!(
        (&v["next"], &v["pipeline"]["at"]),
        (&"poweroff".into(), &2.into()),
        "{v:#}"
    );
    let inv = &v["report"]["inventory"];
    assert_eq!(inv["system"]["serial"], "SYS-E2E-0001", "{inv:#}");
    assert_eq!(inv["memory"]["bytes"], 1u64 << 30, "{inv:#}");
    let threads: u64 = inv["cpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["threads"].as_u64().unwrap())
        .sum();
    assert_eq!(threads, 2, "{inv:#}");
    for (transport, serial, bytes) in DISKS {
        let d = inv["disks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["serial"] == serial)
            .unwrap_or_else(|| panic!("no disk {serial}: {inv:#}"));
        assert_eq!(d["bytes"], bytes, "{d:#}");
        assert_eq!(d["transport"], transport, "{d:#}");
    }
    assert_eq!(
        inv["nics"][0]["mac"], MAC,
        "the booting NIC: {:#}",
        inv["nics"]
    );
    // Every part passed, each disk and the NIC among them.
    let parts = v["verdict"]["parts"].as_array().unwrap();
    assert!(parts.iter().all(|p| p["ok"] == true), "{parts:#?}");
    for want in ["cpu", "memory", &format!("nic:{MAC}")] {
        assert!(
            parts.iter().any(|p| p["component"] == *want),
            "{want}: {parts:#?}"
        );
    }
    for (_, serial, _) in DISKS {
        let c = format!("disk:{serial}");
        assert!(parts.iter().any(|p| p["component"] == c), "{c}: {parts:#?}");
    }
    let reports: Vec<&str> = v["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["step"].as_str().unwrap())
        .collect();
    assert_eq!(reports, ["burnin", "inventory"]);
    assert_in_order(
        MAC,
        &api_timeline(&v),
        &[
            ("http", "script", "next action: a step"),
            ("http", "served", "/burnin/vmlinuz"),
            (
                "api",
                "report",
                "inventory report received: PASS; next burnin",
            ),
            ("http", "script", "next action: a step"),
            ("http", "served", "/burnin/vmlinuz"),
            (
                "api",
                "report",
                "burnin report received: PASS; next poweroff",
            ),
        ],
    );

    // The buyer was promised 2 GiB: the same reports now fail the system part.
    let put = put_spec(
        &lab,
        &ns,
        MAC,
        r#"{"memory_bytes":2147483648,"disks":3}"#,
        Some(ADMIN),
    );
    assert_eq!(put.status, 200, "{}", put.text());
    let v = json(&put);
    assert_eq!(
        (&v["result"], &v["verdict"]["spec"]),
        (&"FAIL system spec".into(), &false.into())
    );
    let spec = &v["report"]["checks"][0];
    assert_eq!(
        (&spec["component"], &spec["ok"]),
        (&"system".into(), &false.into())
    );
    assert_eq!(spec["detail"], "memory 1 GiB, expected 2 GiB", "{spec:#}");
}
