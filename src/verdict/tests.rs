use super::*;
use serde_json::json;

/// A report as the image sends it from a QEMU VM: 2 threads, 1 GiB, an NVMe, an AHCI and
/// a virtio disk, one NIC.
pub(crate) fn qemu_report() -> Value {
    json!({
        "step": "burnin",
        "duration_s": 20,
        "inventory": {
            "system": {"manufacturer": "QEMU", "product": "Standard PC (i440FX + PIIX, 1996)",
                "serial": "SYS-1", "uuid": null, "bios_version": "1.16.2-debian-1.16.2-1",
                "bios_date": "04/01/2014",
                "board": {"manufacturer": null, "product": null, "serial": null},
                "chassis": {"type": "Other", "serial": null}},
            "cpus": [{"model": "QEMU Virtual CPU version 2.5+", "cores": 2, "threads": 2,
                "max_mhz": 2000, "microcode": "0x1000065"}],
            "memory": {"bytes": 1073741824, "dimms": [{"slot": "DIMM 0", "bytes": 1073741824,
                "type": "RAM", "speed_mts": null, "manufacturer": "QEMU", "part": null,
                "serial": null, "ecc": false}]},
            "disks": [
                {"name": "nvme0n1", "model": "QEMU NVMe Ctrl", "serial": "NVME-1", "bytes": 67108864,
                 "kind": "nvme", "transport": "nvme", "smart": {"healthy": true, "power_on_hours": 0,
                 "reallocated_sectors": null, "pending_sectors": null, "media_errors": 0,
                 "percentage_used": 0, "temperature_c": 50}},
                {"name": "sda", "model": "QEMU HARDDISK", "serial": "SATA-1", "bytes": 67108864,
                 "kind": "hdd", "transport": "sata", "smart": {"healthy": true, "power_on_hours": 0,
                 "reallocated_sectors": 0, "pending_sectors": 0, "media_errors": null,
                 "percentage_used": null, "temperature_c": null}},
                {"name": "vda", "model": null, "serial": "VIRTIO-1", "bytes": 67108864,
                 "kind": "hdd", "transport": "virtio", "smart": null}
            ],
            "nics": [{"name": "eth0", "mac": "52:54:00:12:34:56", "driver": "e1000",
                "speed_mbps": 1000, "link": true}],
            "pci": [],
            "bmc": {"present": false, "firmware": null, "ipv4": null, "ipv6": null}
        },
        "checks": [
            {"component": "cpu", "name": "stress", "detail": "cpu 2 workers", "values": {"exit_code": 0, "errors": 0, "seconds": 20.0}},
            {"component": "cpu", "name": "mce", "values": {"events": 0}},
            {"component": "cpu", "name": "throttle", "values": {"events": 0}},
            {"component": "memory", "name": "stress", "values": {"exit_code": 0, "errors": 0, "seconds": 20.0, "bytes": 400000000}},
            {"component": "memory", "name": "edac", "values": {"corrected": 0, "uncorrected": 0, "count": 0}},
            {"component": "disk:NVME-1", "name": "read", "values": {"bytes": 67108864, "seconds": 0.5, "mb_per_s": 134.2, "errors": 0}},
            {"component": "disk:SATA-1", "name": "self_test", "values": {"status": "passed"}},
            {"component": "disk:VIRTIO-1", "name": "read", "values": {"bytes": 67108864, "seconds": 0.2, "mb_per_s": 300.0, "errors": 0}}
        ]
    })
}

pub(crate) fn report(v: &Value) -> Report {
    Report::parse(v.to_string().as_bytes()).unwrap()
}

fn judged(v: &Value, spec: Option<&Spec>) -> Judgement {
    judge(&report(v), spec, &Thresholds::default())
}

#[test]
fn a_sound_machine_passes_every_part_in_order() {
    let j = judged(&qemu_report(), None);
    assert!(j.passed(), "{j:#?}");
    assert_eq!(j.label(), "PASS");
    let parts: Vec<String> = j.parts().iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(
        parts,
        [
            "cpu",
            "memory",
            "disk:NVME-1",
            "disk:SATA-1",
            "disk:VIRTIO-1",
            "nic:52:54:00:12:34:56"
        ]
    );
    assert_eq!(j.spec(), None, "no spec, no spec check");
    let nvme: Vec<&str> = j
        .checks
        .iter()
        .skip_while(|c| c.component.to_string() != "disk:NVME-1")
        .take(2)
        .map(|c| c.name)
        .collect();
    assert_eq!(nvme, ["read", "smart"], "a disk's checks together");
    let read = &j.checks.iter().find(|c| c.name == "read").unwrap().values;
    assert_eq!(
        read,
        &json!({"bytes": 67108864, "seconds": 0.5, "mb_per_s": 134.2, "errors": 0})
    );
}

#[test]
fn each_threshold_fails_its_own_part_with_value_and_limit() {
    let mut v = qemu_report();
    v["inventory"]["disks"][1]["smart"]["reallocated_sectors"] = 12.into();
    v["inventory"]["disks"][0]["smart"]["percentage_used"] = 91.into();
    v["checks"][4]["values"]["uncorrected"] = 1.into();
    let j = judged(&v, None);
    let failed: Vec<(String, &str, &str)> = j
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| (c.component.to_string(), c.name, c.detail.as_str()))
        .collect();
    assert_eq!(
        failed,
        [
            ("memory".to_string(), "edac", ""),
            (
                "disk:NVME-1".to_string(),
                "smart",
                "percentage used 91 > 80"
            ),
            (
                "disk:SATA-1".to_string(),
                "smart",
                "reallocated sectors 12 > 0"
            ),
        ]
    );
    assert_eq!(j.label(), "FAIL memory edac");
    let parts = j.parts();
    assert!(parts.iter().any(|(c, ok)| c == &Component::Cpu && *ok));
    let nvme = j
        .checks
        .iter()
        .find(|c| c.component.to_string() == "disk:NVME-1" && c.name == "smart")
        .unwrap();
    assert!(nvme.limit.as_deref().unwrap().contains("used ≤ 80%"));

    // A looser threshold in the config lets the same facts pass.
    let t = Thresholds {
        disk_reallocated_max: 20,
        disk_percentage_used_max: 95,
        ..Thresholds::default()
    };
    let j = judge(&report(&v), None, &t);
    assert_eq!(j.label(), "FAIL memory edac");
}

#[test]
fn measured_failures_and_inconclusive_self_tests_fail() {
    let mut v = qemu_report();
    v["checks"][0]["values"]["errors"] = 3.into();
    v["checks"][6]["values"]["status"] = "timeout".into();
    let j = judged(&v, None);
    assert_eq!(j.label(), "FAIL cpu stress");
    assert!(!j.checks.iter().find(|c| c.name == "self_test").unwrap().ok);
    let mut v = qemu_report();
    v["checks"][6]["values"]["status"] = "unsupported".into();
    assert!(judged(&v, None).passed());
}

#[test]
fn a_spec_mismatch_fails_the_system_part_and_says_what_differs() {
    let spec = Spec {
        memory_bytes: Some(2 << 30),
        cpus: Some(1),
        disks: Some(3),
        disk_min_bytes: Some(1 << 30),
        cpu_model: Some("qemu virtual".into()),
    };
    let j = judged(&qemu_report(), Some(&spec));
    assert_eq!(j.spec(), Some(false));
    assert_eq!(j.label(), "FAIL system spec");
    let c = &j.checks[0];
    assert_eq!(
        c.detail,
        "memory 1 GiB, expected 2 GiB; disk NVME-1 is 67.11 MB, expected at least 1.07 GB; \
         disk SATA-1 is 67.11 MB, expected at least 1.07 GB; disk VIRTIO-1 is 67.11 MB, expected at least 1.07 GB"
    );
    assert_eq!(c.values["memory_bytes"], 1073741824);
    let ok = Spec {
        memory_bytes: Some(1 << 30),
        disks: Some(3),
        ..Spec::default()
    };
    let j = judged(&qemu_report(), Some(&ok));
    assert_eq!((j.spec(), j.label().as_str()), (Some(true), "PASS"));
}

#[test]
fn nics_fail_only_when_linked_below_the_least_speed() {
    let mut v = qemu_report();
    v["inventory"]["nics"][0]["speed_mbps"] = 100.into();
    let t = Thresholds {
        nic_min_speed_mbps: 1000,
        ..Thresholds::default()
    };
    assert_eq!(
        judge(&report(&v), None, &t).label(),
        "FAIL nic:52:54:00:12:34:56 link"
    );
    v["inventory"]["nics"][0]["link"] = false.into();
    v["inventory"]["nics"][0]["speed_mbps"] = Value::Null;
    assert!(judge(&report(&v), None, &t).passed());
}

/// Real tool output of QEMU's emulated drives (agent/fixtures/README.md says how each was
/// captured: QEMU 7.2, smartmontools 7.3, nvme-cli 2.4), read by the image's own parsers
/// and judged here. Mutations of the same JSON stand in for worn drives.
mod fixtures {
    use super::*;
    use sixboot_agent::smart::{from_nvme_smart_log, from_smartctl};

    const SMARTCTL_ATA: &str = include_str!("../../agent/fixtures/smartctl-ata.json");
    const SMARTCTL_NVME: &str = include_str!("../../agent/fixtures/smartctl-nvme.json");
    const SMARTCTL_VIRTIO: &str = include_str!("../../agent/fixtures/smartctl-virtio.json");
    const NVME_SMART_LOG: &str = include_str!("../../agent/fixtures/nvme-smart-log.json");

    /// The QEMU report with disk `i`'s SMART as the parsers read it from `smart`.
    fn with_smart(i: usize, smart: Option<sixboot_report::Smart>) -> Report {
        let mut v = qemu_report();
        v["inventory"]["disks"][i]["smart"] = serde_json::to_value(smart).unwrap();
        report(&v)
    }

    fn edit(json: &str, f: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut v: Value = serde_json::from_str(json).unwrap();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    fn smart_check(r: &Report, id: &str) -> Judged {
        judge(r, None, &Thresholds::default())
            .checks
            .into_iter()
            .find(|c| c.component.to_string() == format!("disk:{id}") && c.name == "smart")
            .unwrap_or_else(|| panic!("no smart check for {id}"))
    }

    #[test]
    fn a_report_the_image_sent_from_qemu_passes_every_part() {
        let body = include_bytes!("../../tests/fixtures/report/qemu-burnin.json");
        let r = Report::parse(body).expect("the image's report parses");
        let j = judge(&r, None, &Thresholds::default());
        assert!(j.passed(), "{j:#?}");
        let parts: Vec<String> = j.parts().iter().map(|(c, _)| c.to_string()).collect();
        for want in ["cpu", "memory", "disk:NVME-B001"] {
            assert!(parts.iter().any(|p| p == want), "{want}: {parts:?}");
        }
        let spec = Spec {
            memory_bytes: Some(2 << 30),
            ..Spec::default()
        };
        let j = judge(&r, Some(&spec), &Thresholds::default());
        assert_eq!(j.label(), "FAIL system spec");
    }

    #[test]
    fn qemus_drives_pass_as_captured() {
        let ata = from_smartctl(SMARTCTL_ATA.as_bytes()).expect("ATA SMART");
        assert_eq!(
            (ata.healthy, ata.reallocated_sectors, ata.temperature_c),
            (Some(true), Some(0), Some(31))
        );
        let nvme = from_nvme_smart_log(NVME_SMART_LOG.as_bytes()).expect("NVMe SMART");
        assert_eq!(
            (nvme.percentage_used, nvme.media_errors),
            (Some(0), Some(0))
        );
        assert_eq!(
            from_smartctl(SMARTCTL_VIRTIO.as_bytes()),
            None,
            "virtio has none"
        );
        let j = judge(&with_smart(1, Some(ata)), None, &Thresholds::default());
        assert!(j.passed(), "{j:#?}");
        let c = smart_check(&with_smart(0, Some(nvme)), "NVME-1");
        assert!(c.ok, "{c:#?}");
        assert_eq!(c.values["temperature_c"], 50, "323 K from nvme-cli");
    }

    #[test]
    fn reallocated_and_pending_sectors_from_smartctl_fail_the_disk() {
        let worn = edit(SMARTCTL_ATA, |v| {
            for a in v["ata_smart_attributes"]["table"].as_array_mut().unwrap() {
                if a["id"] == 5 {
                    a["raw"]["value"] = 12.into();
                }
            }
        });
        let c = smart_check(&with_smart(1, from_smartctl(&worn)), "SATA-1");
        assert!(!c.ok);
        assert_eq!(c.detail, "reallocated sectors 12 > 0");
        assert_eq!(c.values["reallocated_sectors"], 12);
        let failing = edit(SMARTCTL_ATA, |v| v["smart_status"]["passed"] = false.into());
        let c = smart_check(&with_smart(1, from_smartctl(&failing)), "SATA-1");
        assert_eq!(
            (c.ok, c.detail.as_str()),
            (false, "the drive reports its overall health as failed")
        );
    }

    #[test]
    fn nvme_wear_and_media_errors_fail_the_disk_by_either_tool() {
        let worn = edit(NVME_SMART_LOG, |v| v["percent_used"] = 91.into());
        let c = smart_check(&with_smart(0, from_nvme_smart_log(&worn)), "NVME-1");
        assert_eq!(
            (c.ok, c.detail.as_str()),
            (false, "percentage used 91 > 80")
        );
        let errors = edit(SMARTCTL_NVME, |v| {
            v["nvme_smart_health_information_log"]["media_errors"] = 3.into();
        });
        let c = smart_check(&with_smart(0, from_smartctl(&errors)), "NVME-1");
        assert_eq!((c.ok, c.detail.as_str()), (false, "media errors 3 > 0"));
        // Within a looser limit, the same wear passes.
        let t = Thresholds {
            disk_percentage_used_max: 95,
            ..Thresholds::default()
        };
        let r = with_smart(0, from_nvme_smart_log(&worn));
        assert!(judge(&r, None, &t).passed());
    }
}
