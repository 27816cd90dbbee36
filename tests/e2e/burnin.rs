//! (f) The warehouse path end to end: the operator sets a machine to burn in before it is
//! ever seen, the machine boots through the real chain (SeaBIOS, iPXE ROM, RA, DHCPv6,
//! boot.ipxe, its own script) into the burn-in image, burns for 20 s and reports, while a
//! browser watches the dashboard. sixboot is killed with SIGKILL mid-burn and restarted on
//! the same state folder: the token survives, the image's retries land the report, the page
//! reconnects by itself and shows PASS, and the VM powers off on its own.

use super::common::browser::{Browser, artifacts_dir};
use super::common::machines::{base, json, machine, put_next, ready, stages};
use super::common::{self, Lab};
use super::vm::{Firmware, Hardware, Vm};
use super::{api_timeline, assert_in_order, assert_stages, config};
use std::time::Duration;

const ADMIN: &str = "e2e-admin-token";

#[test]
fn f_burnin_reports_through_the_chain_across_a_kill_9() {
    let mut lab = Lab::new("e2ef");
    let cfg = config(&lab, true);
    // The contract config with its `[api]` table switched on.
    let text = std::fs::read_to_string(&cfg).unwrap();
    lab.write(
        "sixboot.toml",
        format!("{text}\n[api]\nadmin_token = \"{ADMIN}\"\n"),
    );
    let ns = lab.ns.clone();
    let first = lab.start_sixboot(&cfg);
    assert!(
        ready(&lab, &ns),
        "sixboot never became ready:\n{}",
        lab.log()
    );

    // Set before the machine exists: the API makes the record.
    let mac = "52:54:00:e2:0f:01";
    let put = put_next(&lab, &ns, mac, r#"{"next":"burnin"}"#, Some(ADMIN));
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(json(&machine(&lab, &ns, mac))["next"], "burnin");

    let mut b = Browser::open(&ns, &format!("{}/", base()));
    let live = common::wait_until(Duration::from_secs(30), || {
        b.eval("(document.getElementById('live') || {}).textContent") == "live"
    });
    assert!(live, "the dashboard never went live");
    // A reload would lose this.
    b.eval("window.sixbootMarker = 42");
    assert_eq!(
        b.row(mac)["state"],
        "none",
        "the row set up through the API"
    );

    lab.tap("tapf");
    let mut vm = Vm::start(
        &ns,
        lab.dir.path(),
        "tapf",
        Firmware::SeaBiosIpxeRom,
        "tapf",
        mac,
        None,
        &Hardware::default(),
    );
    let started = vm.wait_for(
        "sixboot-burnin: starting 20s burn",
        Duration::from_secs(600),
    );
    let Some(started) = started else {
        panic!(
            "no burn started\n--- console:\n{}\n--- sixboot log:\n{}",
            vm.console(),
            lab.log()
        )
    };
    println!("TIME_TO_BURN seconds={:.1}", started.as_secs_f64());
    let row = b.wait_row(mac, "running", Duration::from_secs(30));
    assert!(
        row.is_ok(),
        "the row never showed the burn running: {row:?}"
    );

    // SIGKILL mid-burn; restart once the image has its report and is posting into the void.
    lab.kill9(first);
    let dropped = common::wait_until(Duration::from_secs(15), || {
        b.eval("document.getElementById('live').textContent") != "live"
    });
    assert!(dropped, "the page did not notice the event stream ending");
    let built = vm.wait_for("sixboot-burnin: report:", Duration::from_secs(300));
    assert!(built.is_some(), "no report built:\n{}", vm.console());
    std::thread::sleep(Duration::from_secs(7)); // at least two refused attempts
    assert!(
        !vm.console().contains("report accepted"),
        "accepted while sixboot was down?"
    );
    lab.start_sixboot(&cfg);
    assert!(ready(&lab, &ns), "no restart:\n{}", lab.log());
    let accepted = vm.wait_for("sixboot-burnin: report accepted", Duration::from_secs(120));
    assert!(
        accepted.is_some(),
        "the report never landed after the restart\n--- console:\n{}\n--- sixboot log:\n{}",
        vm.console(),
        lab.log()
    );
    println!(
        "TIME_TO_REPORT seconds={:.1}",
        accepted.unwrap().as_secs_f64()
    );

    // The page reconnects on its own and shows the result, without a reload.
    let row = b.wait_row(mac, "pass", Duration::from_secs(60));
    let row = row.unwrap_or_else(|r| panic!("the row never reached PASS: {r}"));
    assert_eq!(row["result"], "PASS");
    assert_eq!(b.eval("window.sixbootMarker"), 42, "the page reloaded");
    assert_eq!(
        b.eval("document.getElementById('live').textContent"),
        "live"
    );
    std::thread::sleep(Duration::from_secs(2)); // the row's highlight fades
    b.screenshot(&artifacts_dir().join("e2e-burnin-dashboard.png"));

    // The image powers the VM off by itself once its report is in.
    assert!(
        vm.wait_exit(Duration::from_secs(120)).is_some(),
        "the VM did not power off:\n{}",
        vm.console()
    );
    let console = vm.console();
    for line in [
        "sixboot-burnin: RESULT PASS",
        "sixboot-burnin: powering off",
    ] {
        assert!(console.contains(line), "console lacks {line:?}:\n{console}");
    }

    // The stored record: the verdict and the report as the image measured this VM.
    let v = json(&machine(&lab, &ns, mac));
    assert_eq!(v["result"], "PASS", "{v:#}");
    let r = &v["report"];
    assert_eq!(r["step"], "burnin", "{r:#}");
    assert!(r["duration_s"].as_u64().unwrap_or(0) >= 20, "{r:#}");
    assert_eq!(r["inventory"]["cpus"][0]["threads"], 1, "{r:#}");
    assert!(
        !r["inventory"]["cpus"][0]["model"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "{r:#}"
    );
    assert_eq!(r["inventory"]["memory"]["bytes"], 512u64 << 20, "{r:#}");
    let checks: Vec<(&str, &str, bool)> = r["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["component"].as_str().unwrap(),
                c["name"].as_str().unwrap(),
                c["ok"] == true,
            )
        })
        .collect();
    for want in [
        ("cpu", "stress"),
        ("cpu", "mce"),
        ("cpu", "throttle"),
        ("memory", "stress"),
        ("memory", "edac"),
    ] {
        assert!(
            checks
                .iter()
                .any(|c| (c.0, c.1, c.2) == (want.0, want.1, true)),
            "{want:?} not passed: {checks:?}"
        );
    }

    // Its timeline, in the record (which survived the kill) and in sixboot's log.
    let steps = [
        ("api", "next", "burnin (was unset)"),
        ("dhcp4", "refused", "ipxe"),
        ("dhcp6", "answered", "url=http://[fd00:1::1]:8080/boot.ipxe"),
        ("http", "script", "next action: a step on pcbios"),
        ("http", "served", "/burnin/vmlinuz"),
        ("http", "served", "/burnin/initrd.img"),
        // The image's own IPv6 set-up.
        ("ra", "solicited", ""),
        ("dhcp6", "answered", ""),
        (
            "api",
            "report",
            "burnin report received: PASS; pipeline done",
        ),
    ];
    println!("TIMELINE {}", stages(&v).join(", "));
    assert_in_order(mac, &api_timeline(&v), &steps);
    assert_stages(&lab, mac, &steps);
}
