//! DHCPv4 over real sockets: sixboot runs in a lab namespace, clients send firmware-,
//! iPXE- and OS-shaped packets from their own namespaces, and a real dhclient asks too.

mod common;

use common::dhcp4_client::*;
use common::{Lab, cmd_in, exec_in};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

fn config(lab: &Lab, extra: &str) -> PathBuf {
    lab.write("tftp/undionly.kpxe", b"bios nbp");
    lab.write("tftp/snponly.efi", b"efi nbp");
    let text = format!(
        r#"interface = "br0"
state_dir = "state"

[dhcp4]
subnet = "192.168.1.0/24"
pool = ["192.168.1.10", "192.168.1.254"]
lease_time = 600
max_lease_time = 7200
next_server = "192.168.1.1"

[boot]
bios = "undionly.kpxe"
uefi_x64 = "snponly.efi"

[tftp]
root = "tftp"
{extra}"#
    );
    lab.write("sixboot.toml", text)
}

fn started(lab: &mut Lab, cfg: &std::path::Path) -> u32 {
    let pid = lab.start_sixboot(cfg);
    assert!(
        lab.wait_log("DHCPv4 listening", 20),
        "sixboot did not start:\n{}",
        lab.log()
    );
    pid
}

#[test]
fn firmware_gets_offer_and_ack_with_the_file_for_its_arch() {
    let mut lab = Lab::new("d4fw");
    let c = lab.client("c", None, None);
    let cfg = config(&lab, "");
    started(&mut lab, &cfg);
    let s = client_socket(&c, Ipv4Addr::UNSPECIFIED, 68);
    let (a_bios, f_bios) = dora(&s, MAC, 0);
    assert_eq!(f_bios, "undionly.kpxe");
    let mut mac2 = MAC;
    mac2[5] = 0x57;
    let (a_efi, f_efi) = dora(&s, mac2, 7);
    assert_eq!(f_efi, "snponly.efi");
    assert_ne!(a_bios, a_efi);
    let mut mac3 = MAC;
    mac3[5] = 0x58;
    let (_, f_efi9) = dora(&s, mac3, 9);
    assert_eq!(f_efi9, "snponly.efi");
}

#[test]
fn unicast_reply_reaches_a_client_through_a_neighbour_entry() {
    let mut lab = Lab::new("d4uni");
    // The first client gets the first pool address; give the client that address so its
    // kernel accepts the unicast reply, and check the server wrote the neighbour entry.
    let c = lab.client("c", Some("192.168.1.10/24"), None);
    exec_in(
        &c,
        &["ip", "link", "set", "eth0", "address", "52:54:00:12:34:56"],
    );
    let cfg = config(&lab, "");
    started(&mut lab, &cfg);
    let s = client_socket(&c, Ipv4Addr::UNSPECIFIED, 68);
    let r = ask(
        &s,
        BCAST,
        &packet(MAC, false, Ipv4Addr::UNSPECIFIED, &firmware_opts(1, 0, &[])),
        10,
    )
    .expect("no unicast OFFER");
    assert_eq!(decode(&r).1, Ipv4Addr::new(192, 168, 1, 10));
    let neigh =
        String::from_utf8(lab.exec_ok(&["ip", "neigh", "show", "192.168.1.10"]).stdout).unwrap();
    assert!(
        neigh.contains("52:54:00:12:34:56"),
        "no neighbour entry: {neigh}"
    );
}

#[test]
fn relayed_requests_are_answered_to_the_relay_and_foreign_relays_refused() {
    let mut lab = Lab::new("d4relay");
    let c = lab.client("r", Some("192.168.1.2/24"), None);
    let cfg = config(&lab, "");
    started(&mut lab, &cfg);
    let relay = client_socket(&c, Ipv4Addr::new(192, 168, 1, 2), 67);
    let server: SocketAddr = "192.168.1.1:67".parse().unwrap();
    let pkt = packet(
        MAC,
        false,
        Ipv4Addr::new(192, 168, 1, 2),
        &firmware_opts(1, 0, &[]),
    );
    let r = ask(&relay, server, &pkt, 5).expect("relay got no OFFER");
    assert_eq!(decode(&r).0, 2);
    let foreign = packet(
        MAC,
        false,
        Ipv4Addr::new(10, 99, 0, 1),
        &firmware_opts(1, 0, &[]),
    );
    assert!(ask(&relay, server, &foreign, 2).is_none());
    assert!(lab.wait_log("unknown_relay", 5));
}

#[test]
fn ipxe_gets_nothing_and_the_reason_is_logged() {
    let mut lab = Lab::new("d4ipxe");
    let c = lab.client("c", None, None);
    let cfg = config(&lab, "");
    started(&mut lab, &cfg);
    let s = client_socket(&c, Ipv4Addr::UNSPECIFIED, 68);
    assert!(
        ask(
            &s,
            BCAST,
            &packet(MAC, true, Ipv4Addr::UNSPECIFIED, &ipxe_opts(1)),
            3
        )
        .is_none()
    );
    assert!(
        ask(
            &s,
            BCAST,
            &packet(MAC, true, Ipv4Addr::UNSPECIFIED, &ipxe_opts(3)),
            2
        )
        .is_none()
    );
    assert!(lab.wait_log("reason=ipxe", 5), "{}", lab.log());
}

#[test]
fn real_dhclient_gets_nothing() {
    let mut lab = Lab::new("d4dhcl");
    let c = lab.client("c", None, None);
    let cfg = config(&lab, "");
    started(&mut lab, &cfg);
    let dir = lab.dir.path().to_path_buf();
    let conf = lab.write("dhclient.conf", "timeout 6;\nretry 1;\n");
    let out = cmd_in(&c, "timeout")
        .args(["20", "dhclient", "-4", "-d", "-1", "-v", "-sf", "/bin/true"])
        .arg("-cf")
        .arg(&conf)
        .arg("-lf")
        .arg(dir.join("dhclient.leases"))
        .arg("-pf")
        .arg(dir.join("dhclient.pid"))
        .arg("eth0")
        .output()
        .expect("run dhclient");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DHCPDISCOVER"), "dhclient did not run: {err}");
    assert!(
        err.contains("No DHCPOFFERS received"),
        "dhclient got an offer: {err}"
    );
    assert!(!err.contains("bound to"), "dhclient got a lease: {err}");
    assert!(!out.status.success(), "dhclient claims success: {err}");
    assert!(lab.wait_log("reason=not_firmware", 5), "{}", lab.log());
}

#[test]
fn leases_survive_restart_and_kill_9() {
    let mut lab = Lab::new("d4dura");
    let c = lab.client("c", None, None);
    let cfg = config(&lab, "");
    let pid = started(&mut lab, &cfg);
    let s = client_socket(&c, Ipv4Addr::UNSPECIFIED, 68);
    let macs: Vec<[u8; 6]> = (0..5).map(|i| [0x52, 0x54, 0, 0xaa, 0, i]).collect();
    let before: Vec<Ipv4Addr> = macs.iter().map(|&m| dora(&s, m, 0).0).collect();

    assert!(
        lab.stop(pid).is_some_and(|st| st.success()),
        "SIGTERM did not stop sixboot cleanly"
    );
    let pid = started(&mut lab, &cfg);
    let after: Vec<Ipv4Addr> = macs.iter().map(|&m| dora(&s, m, 0).0).collect();
    assert_eq!(before, after, "addresses changed across a restart");

    lab.kill9(pid);
    started(&mut lab, &cfg);
    let again: Vec<Ipv4Addr> = macs.iter().map(|&m| dora(&s, m, 0).0).collect();
    assert_eq!(before, again, "addresses changed across kill -9");
    // A new client never gets an address another client holds.
    let newcomer = dora(&s, [0x52, 0x54, 0, 0xbb, 0, 1], 0).0;
    assert!(!before.contains(&newcomer));
}

#[test]
fn kill_9_under_load_loses_no_acked_lease_and_never_doubles_an_address() {
    let mut lab = Lab::new("d4load");
    let c = lab.client("c", None, None);
    let cfg = config(&lab, "");
    let pid = started(&mut lab, &cfg);
    // More clients than the load can finish in the moment between its 10th ACK and the
    // kill, and fewer than the pool holds.
    let macs: Vec<[u8; 6]> = (0..200u8)
        .map(|i| [0x52, 0x54, 0, 0xcc, i / 16, i])
        .collect();
    // Load: DORAs from many clients on a background thread, which says when 10 were ACKed
    // and stops once the server is killed.
    let load_ns = c.clone();
    let load_macs = macs.clone();
    let killed = Arc::new(AtomicBool::new(false));
    let stop = killed.clone();
    let (started_tx, started_rx) = mpsc::channel();
    let load = std::thread::spawn(move || {
        let s = client_socket(&load_ns, Ipv4Addr::UNSPECIFIED, 68);
        let mut acked = Vec::new();
        for &m in &load_macs {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            if let Ok((a, _)) = try_dora(&s, m, 0, 1) {
                acked.push((m, a));
                if acked.len() == 10 {
                    let _ = started_tx.send(());
                }
            }
        }
        acked
    });
    assert!(
        started_rx.recv_timeout(Duration::from_secs(20)).is_ok(),
        "load did not start"
    );
    lab.kill9(pid);
    killed.store(true, Ordering::SeqCst);
    let acked_before = load.join().unwrap();
    assert!(
        acked_before.len() >= 10,
        "no client was ACKed before the kill"
    );
    assert!(
        acked_before.len() < macs.len(),
        "the kill came after the load ended"
    );
    started(&mut lab, &cfg);
    let s = client_socket(&c, Ipv4Addr::UNSPECIFIED, 68);
    let mut seen = std::collections::HashMap::new();
    for &m in &macs {
        let a = dora(&s, m, 0).0;
        if let Some(prev) = seen.insert(a, m) {
            panic!("{a} held by both {prev:02x?} and {m:02x?}");
        }
    }
    for (m, a) in &acked_before {
        assert_eq!(
            seen.get(a),
            Some(m),
            "client {m:02x?} lost its ACKed address {a}"
        );
    }
}
