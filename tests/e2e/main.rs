//! End to end on real firmware in QEMU (TCG): each boot path, from power-on to the memtest
//! banner on the serial console, against sixboot in a lab namespace. The suite also checks
//! from sixboot's own log what each machine got, stage by stage, and why it was refused.

mod burnin;
#[path = "../common/mod.rs"]
mod common;
mod inventory;
mod vm;

use common::Lab;
use std::path::PathBuf;
use std::time::Duration;
use vm::{Firmware, Vm};

/// Copies the boot assets (Debian's iPXE and memtest, and the burn-in image from
/// `make assets`) into the lab's roots.
fn assets(lab: &Lab) {
    for (from, to) in [
        ("/usr/lib/ipxe/undionly.kpxe", "tftp/undionly.kpxe"),
        ("/usr/lib/ipxe/snponly.efi", "tftp/snponly.efi"),
        ("/boot/memtest86+x64.bin", "http/memtest86+x64.bin"),
        ("/boot/memtest86+x64.efi", "http/memtest86+x64.efi"),
        ("assets/burnin/vmlinuz", "http/burnin/vmlinuz"),
        ("assets/burnin/initrd.img", "http/burnin/initrd.img"),
    ] {
        let data = std::fs::read(from)
            .unwrap_or_else(|e| panic!("{from}: {e} (run scripts/deps.sh and make assets)"));
        lab.write(to, data);
    }
}

/// The contract config; `v4` false drops `[dhcp4]` (IPv6-only mode).
fn config(lab: &Lab, v4: bool) -> PathBuf {
    assets(lab);
    let text = include_str!("../../examples/sixboot.toml");
    let text = if v4 {
        text.to_string()
    } else {
        let (a, b) = (text.find("[dhcp4]").unwrap(), text.find("[boot]").unwrap());
        format!("{}{}", &text[..a], &text[b..])
    };
    lab.write("sixboot.toml", text)
}

fn start(name: &str, v4: bool) -> (Lab, PathBuf) {
    let mut lab = Lab::new(name);
    let cfg = config(&lab, v4);
    lab.start_sixboot(&cfg);
    assert!(
        common::wait_until(Duration::from_secs(20), || lab.log().contains("listening")),
        "sixboot did not start:\n{}",
        lab.log()
    );
    (lab, cfg)
}

/// One machine's timeline from sixboot's log: (protocol, stage, detail) in order.
fn timeline(lab: &Lab, mac: &str) -> Vec<(String, String, String)> {
    let needle = format!("mac={mac} ");
    lab.log()
        .lines()
        .filter(|l| l.contains("sixboot::timeline") && l.contains(&needle))
        .filter_map(|l| {
            let field = |k: &str| {
                l.split(&format!(" {k}="))
                    .nth(1)
                    .map(|v| v.split(' ').next().unwrap_or("").to_string())
            };
            let detail = l.split(" detail=").nth(1).unwrap_or("").to_string();
            Some((field("protocol")?, field("stage")?, detail))
        })
        .collect()
}

/// A machine's timeline as the API serves it: (protocol, stage, detail) in order.
fn api_timeline(v: &serde_json::Value) -> Vec<(String, String, String)> {
    v["timeline"]
        .as_array()
        .expect("a timeline")
        .iter()
        .map(|e| {
            let f = |k: &str| e[k].as_str().unwrap_or("").to_string();
            (f("protocol"), f("stage"), f("detail"))
        })
        .collect()
}

/// Asserts that `steps` appear in this order in the machine's timeline (from sixboot's
/// log); each step is (protocol, stage, text the detail contains).
fn assert_stages(lab: &Lab, mac: &str, steps: &[(&str, &str, &str)]) {
    assert_in_order(mac, &timeline(lab, mac), steps);
}

/// Asserts that `steps` appear in this order in timeline `t` of machine `mac`.
fn assert_in_order(mac: &str, t: &[(String, String, String)], steps: &[(&str, &str, &str)]) {
    let mut at = 0;
    for (p, s, d) in steps {
        match t[at..]
            .iter()
            .position(|(tp, ts, td)| tp == p && ts == s && td.contains(d))
        {
            Some(i) => at += i + 1,
            None => {
                panic!("{mac}: stage {p}/{s} ({d}) missing after step {at} of timeline:\n{t:#?}")
            }
        }
    }
}

/// memtest's own screen: the iPXE menu shows "Memtest86+" too, memtest adds its version.
const MEMTEST_BANNER: &str = "Memtest86+ v";

/// Boots `fw` on a fresh tap and waits for the memtest banner; returns the VM and the time
/// from VM start to the banner.
fn boot_to_memtest(lab: &Lab, name: &str, fw: Firmware, mac: &str, limit: u64) -> (Vm, Duration) {
    lab.tap(name);
    let mut vm = Vm::start(
        &lab.ns,
        lab.dir.path(),
        name,
        fw,
        name,
        mac,
        None,
        &vm::Hardware::default(),
    );
    match vm.wait_for(MEMTEST_BANNER, Duration::from_secs(limit)) {
        Some(t) => {
            println!("TIME_TO_UTILITY path={name} seconds={:.1}", t.as_secs_f64());
            (vm, t)
        }
        None => panic!(
            "{name}: no memtest banner within {limit} s\n--- console:\n{}\n--- sixboot log:\n{}",
            vm.console(),
            lab.log()
        ),
    }
}

/// (a) SeaBIOS + e1000 with QEMU's iPXE ROM: refused on DHCPv4, then RA, DHCPv6,
/// boot.ipxe, the menu default, memtest (BIOS).
#[test]
fn a_seabios_ipxe_rom_boots_memtest_over_ipv6() {
    let (lab, _) = start("e2ea", true);
    let mac = "52:54:00:e2:0a:01";
    boot_to_memtest(&lab, "tapa", Firmware::SeaBiosIpxeRom, mac, 300);
    assert_stages(
        &lab,
        mac,
        &[
            ("dhcp4", "refused", "ipxe"),
            ("dhcp6", "answered", "url=http://[fd00:1::1]:8080/boot.ipxe"),
            ("http", "script", "menu on pcbios"),
            ("http", "served", "memtest86+x64.bin"),
        ],
    );
}

/// (b) OVMF PXE over IPv4: DHCPv4 answers the firmware, TFTP serves snponly.efi, iPXE's
/// own DHCPv4 is refused, then DHCPv6 and HTTP to memtest (EFI).
#[test]
fn b_ovmf_pxe_v4_chains_ipxe_and_boots_memtest_over_ipv6() {
    let (lab, _) = start("e2eb", true);
    let mac = "52:54:00:e2:0b:01";
    boot_to_memtest(&lab, "tapb", Firmware::OvmfPxe, mac, 300);
    assert_stages(
        &lab,
        mac,
        &[
            ("dhcp4", "answered", "file=snponly.efi"),
            ("tftp", "served", "snponly.efi"),
            ("dhcp4", "refused", "ipxe"),
            ("dhcp6", "answered", "url=http://[fd00:1::1]:8080/boot.ipxe"),
            ("http", "script", "menu on efi"),
            ("http", "served", "memtest86+x64.efi"),
        ],
    );
}

/// (c) OVMF IPv6-only, and a config without [dhcp4]: PXEv6, TFTP over IPv6, iPXE, memtest.
/// sixboot opens no DHCPv4 socket at all.
#[test]
fn c_ovmf_ipv6_only_boots_memtest_without_dhcp4() {
    let (lab, _) = start("e2ec", false);
    let mac = "52:54:00:e2:0c:01";
    boot_to_memtest(&lab, "tapc", Firmware::OvmfPxe6Only, mac, 300);
    assert_stages(
        &lab,
        mac,
        &[
            ("dhcp6", "answered", "url=tftp://[fd00:1::1]/snponly.efi"),
            ("tftp", "served", "snponly.efi"),
            ("dhcp6", "answered", "url=http://[fd00:1::1]:8080/boot.ipxe"),
            ("http", "script", "menu on efi"),
            ("http", "served", "memtest86+x64.efi"),
        ],
    );
    assert!(
        !lab.log().contains("protocol=dhcp4"),
        "DHCPv4 activity in IPv6-only mode"
    );
    let udp = String::from_utf8(lab.exec_ok(&["ss", "-lun"]).stdout).unwrap();
    assert!(
        !udp.contains(":67 "),
        "a DHCPv4 socket is open in IPv6-only mode:\n{udp}"
    );
}

/// (d) OVMF UEFI HTTP boot over IPv6: the firmware gets the EFI URL and the HTTPClient echo
/// over DHCPv6, asks the size with HEAD, loads snponly.efi over HTTP, which as iPXE goes on
/// to memtest: no TFTP and no IPv4 anywhere.
#[test]
fn d_ovmf_uefi_http_boot_reaches_memtest_over_http() {
    let (lab, _) = start("e2ed", false);
    let mac = "52:54:00:e2:0d:01";
    boot_to_memtest(&lab, "tapd", Firmware::OvmfHttp, mac, 420);
    assert_stages(
        &lab,
        mac,
        &[
            (
                "dhcp6",
                "answered",
                "url=http://[fd00:1::1]:8080/boot/snponly.efi",
            ),
            ("http", "served", "/boot/snponly.efi"),
            ("dhcp6", "answered", "url=http://[fd00:1::1]:8080/boot.ipxe"),
            ("http", "script", "menu on efi"),
            ("http", "served", "memtest86+x64.efi"),
        ],
    );
    let log = lab.log();
    assert!(
        log.contains(&format!(
            "mac={mac} method=HEAD path=\"/boot/snponly.efi\" status=200"
        )),
        "no HEAD for the NBP size"
    );
    assert!(
        !log.contains("protocol=tftp") && !log.contains("protocol=dhcp4"),
        "TFTP or DHCPv4 used on the HTTP path"
    );
}

/// (e) Two VMs at once with the same (all-zero) SMBIOS UUID: both reach memtest, with
/// different IPv6 addresses.
#[test]
fn e_two_machines_with_one_smbios_uuid_get_different_addresses() {
    let (lab, _) = start("e2ee", true);
    let macs = ["52:54:00:e2:0e:01", "52:54:00:e2:0e:02"];
    lab.tap("tape1");
    lab.tap("tape2");
    let mut vms: Vec<Vm> = macs
        .iter()
        .zip(["tape1", "tape2"])
        .map(|(mac, tap)| {
            Vm::start(
                &lab.ns,
                lab.dir.path(),
                tap,
                Firmware::SeaBiosIpxeRom,
                tap,
                mac,
                None,
                &vm::Hardware::default(),
            )
        })
        .collect();
    for (vm, mac) in vms.iter_mut().zip(macs) {
        assert!(
            vm.wait_for(MEMTEST_BANNER, Duration::from_secs(420))
                .is_some(),
            "{mac}: no memtest\n{}",
            vm.console()
        );
    }
    let addr = |mac| {
        timeline(&lab, mac)
            .into_iter()
            .find(|(p, s, _)| p == "dhcp6" && s == "answered")
            .map(|(_, _, d)| d.split(['[', ']']).nth(1).unwrap_or("").to_string())
            .unwrap_or_else(|| panic!("{mac}: no DHCPv6 answer in the timeline"))
    };
    let (a, b) = (addr(macs[0]), addr(macs[1]));
    assert!(!a.is_empty() && !b.is_empty(), "no addresses: {a:?} {b:?}");
    assert_ne!(a, b, "two machines share {a}");
    assert!(
        lab.log().contains("duplicate SMBIOS UUID"),
        "the shared UUID was not noticed"
    );
}
