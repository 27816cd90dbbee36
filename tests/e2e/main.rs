//! End to end on real firmware in QEMU (TCG): each boot path, from power-on to the memtest
//! banner on the serial console, against sixboot in a lab namespace. The suite also checks
//! from sixboot's own log what each machine got, stage by stage, and why it was refused.

#[path = "../common/mod.rs"]
mod common;
mod vm;

use common::Lab;
use std::path::PathBuf;
use std::time::Duration;
use vm::{Firmware, Vm};

/// Copies the boot assets from the Debian packages into the lab's roots.
fn assets(lab: &Lab) {
    for (from, to) in [
        ("/usr/lib/ipxe/undionly.kpxe", "tftp/undionly.kpxe"),
        ("/usr/lib/ipxe/snponly.efi", "tftp/snponly.efi"),
        ("/boot/memtest86+x64.bin", "http/memtest86+x64.bin"),
        ("/boot/memtest86+x64.efi", "http/memtest86+x64.efi"),
    ] {
        let data =
            std::fs::read(from).unwrap_or_else(|e| panic!("{from}: {e} (run scripts/deps.sh)"));
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

#[test]
fn ovmf_pxe_v4_gets_snponly_from_dhcp4() {
    let (lab, _) = start("e2eovmf4", true);
    lab.tap("tap0");
    let mut vm = Vm::start(
        &lab.ns,
        lab.dir.path(),
        "ovmf4",
        Firmware::OvmfPxe,
        "tap0",
        "52:54:00:e2:00:02",
        None,
    );
    let acked = common::wait_until(Duration::from_secs(120), || {
        lab.log().contains("mac=52:54:00:e2:00:02") && lab.log().contains("reply=ACK")
    });
    assert!(
        acked,
        "no DHCPv4 ACK for OVMF:\n{}\n--- console:\n{}",
        lab.log(),
        vm.console()
    );
    assert!(lab.log().contains("file=snponly.efi"));
    let _ = vm.wait_for("never", Duration::from_millis(1));
}

#[test]
fn seabios_ipxe_rom_is_refused_on_dhcp4() {
    let (lab, _) = start("e2erom", true);
    lab.tap("tap0");
    let vm = Vm::start(
        &lab.ns,
        lab.dir.path(),
        "rom",
        Firmware::SeaBiosIpxeRom,
        "tap0",
        "52:54:00:e2:00:01",
        None,
    );
    let refused = common::wait_until(Duration::from_secs(120), || {
        lab.log().contains("reason=ipxe")
    });
    assert!(
        refused,
        "iPXE ROM not refused:\n{}\n--- console:\n{}",
        lab.log(),
        vm.console()
    );
    assert!(!lab.log().contains("reply=OFFER"));
}

/// The `addrs=[...]` of each DHCPv6 Reply to a Request whose line also contains `needle`.
fn dhcp6_requests(log: &str, needle: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            l.contains("DHCPv6 reply") && l.contains("request=\"request\"") && l.contains(needle)
        })
        .filter_map(|l| {
            l.split("addrs=")
                .nth(1)?
                .split(']')
                .next()
                .map(String::from)
        })
        .collect()
}

#[test]
fn seabios_ipxe_roms_with_one_smbios_uuid_get_two_addresses_and_the_script_url_over_dhcpv6() {
    let (lab, _) = start("e2erom6", true);
    let url = "boot_url=http://[fd00:1::1]:8080/boot.ipxe";
    let mut vms = Vec::new();
    for (i, mac) in ["52:54:00:e2:00:11", "52:54:00:e2:00:12"]
        .iter()
        .enumerate()
    {
        let tap = format!("tap{i}");
        lab.tap(&tap);
        // No -uuid: both report the all-zero SMBIOS UUID, so one DUID-UUID.
        vms.push(Vm::start(
            &lab.ns,
            lab.dir.path(),
            &format!("rom6-{i}"),
            Firmware::SeaBiosIpxeRom,
            &tap,
            mac,
            None,
        ));
    }
    let both = common::wait_until(Duration::from_secs(180), || {
        dhcp6_requests(&lab.log(), url).len() >= 2
    });
    let consoles: Vec<String> = vms.iter().map(Vm::console).collect();
    assert!(
        both,
        "iPXE did not get its boot URL over DHCPv6 twice:\n{}\n--- consoles:\n{}",
        lab.log(),
        consoles.join("\n---\n")
    );
    let addrs = dhcp6_requests(&lab.log(), url);
    assert_ne!(addrs[0], addrs[1], "two machines share an address");
    assert!(lab.log().contains("duplicate SMBIOS UUID"));
}

#[test]
fn ovmf_pxe6_gets_the_tftp_url_over_dhcpv6() {
    let (lab, _) = start("e2eovmf6", false);
    lab.tap("tap0");
    let vm = Vm::start(
        &lab.ns,
        lab.dir.path(),
        "ovmf6",
        Firmware::OvmfPxe6Only,
        "tap0",
        "52:54:00:e2:00:06",
        None,
    );
    let got = common::wait_until(Duration::from_secs(180), || {
        !dhcp6_requests(&lab.log(), "boot_url=tftp://[fd00:1::1]/snponly.efi").is_empty()
    });
    assert!(
        got,
        "OVMF PXEv6 got no tftp:// URL over DHCPv6:\n{}\n--- console:\n{}",
        lab.log(),
        vm.console()
    );
}

#[test]
fn ovmf_http_boot_gets_the_efi_url_and_httpclient_over_dhcpv6() {
    let (lab, _) = start("e2ehttp6", false);
    lab.tap("tap0");
    let vm = Vm::start(
        &lab.ns,
        lab.dir.path(),
        "http6",
        Firmware::OvmfHttp,
        "tap0",
        "52:54:00:e2:00:16",
        None,
    );
    let url = "boot_url=http://[fd00:1::1]:8080/boot/snponly.efi";
    let got = common::wait_until(Duration::from_secs(240), || {
        lab.log()
            .lines()
            .any(|l| l.contains("DHCPv6 reply") && l.contains("client=\"http\"") && l.contains(url))
    });
    assert!(
        got,
        "UEFI HTTP boot got no URL over DHCPv6:\n{}\n--- console:\n{}",
        lab.log(),
        vm.console()
    );
}

/// Boots `fw` as machine `mac` until memtest's own screen (the menu shows "Memtest86+"
/// too; memtest's screen adds its version), checks sixboot's log for each of `needles`,
/// and returns the console.
fn boots_memtest(name: &str, v4: bool, fw: Firmware, mac: &str, needles: &[String]) -> String {
    let (lab, _) = start(name, v4);
    lab.tap("tap0");
    let mut vm = Vm::start(&lab.ns, lab.dir.path(), name, fw, "tap0", mac, None);
    let banner = vm.wait_for("Memtest86+ v", Duration::from_secs(420));
    let log = lab.log();
    assert!(
        banner.is_some(),
        "memtest did not start:\n{log}\n--- console:\n{}",
        vm.console()
    );
    for needle in needles {
        assert!(log.contains(needle), "no `{needle}` in:\n{log}");
    }
    vm.console()
}

#[test]
fn seabios_ipxe_rom_boots_memtest_over_http_through_the_menu() {
    // DHCPv6 gives boot.ipxe; real iPXE expands its variables into the per-machine URL,
    // shows the menu, times out to memtest and loads it over HTTP/IPv6.
    let mac = "52:54:00:e2:00:21";
    let console = boots_memtest(
        "e2ememtest",
        true,
        Firmware::SeaBiosIpxeRom,
        mac,
        &[
            format!("mac={mac} method=GET path=\"/ipxe\" status=200 decision=\"menu\""),
            format!("mac={mac} method=GET path=\"/memtest86+x64.bin\" status=200"),
        ],
    );
    assert!(console.contains("sixboot: booting Memtest86+"), "{console}");
}

#[test]
fn ovmf_http_boot_reaches_memtest_efi_over_http() {
    // UEFI HTTP boot asks the NBP's size with HEAD, loads snponly.efi from /boot/, which as
    // iPXE fetches boot.ipxe, its per-machine menu, and memtest's EFI build: no TFTP and no
    // IPv4 anywhere.
    let mac = "52:54:00:e2:00:26";
    boots_memtest(
        "e2ehttpmt",
        false,
        Firmware::OvmfHttp,
        mac,
        &[
            format!("mac={mac} method=HEAD path=\"/boot/snponly.efi\" status=200"),
            format!("mac={mac} method=GET path=\"/boot/snponly.efi\" status=200"),
            format!("mac={mac} method=GET path=\"/ipxe\" status=200 decision=\"menu\""),
            format!("mac={mac} method=GET path=\"/memtest86+x64.efi\" status=200"),
            // iPXE's DHCPv6 lease differs from the firmware's; the timeline still knows it.
            "protocol=\"http\" stage=\"script\" detail=menu on efi".to_string(),
        ],
    );
}
