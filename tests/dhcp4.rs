//! DHCPv4 over real sockets: sixboot runs in a lab namespace, clients send firmware-,
//! iPXE- and OS-shaped packets from their own namespaces, and a real dhclient asks too.

mod common;

use common::{Lab, cmd_in, exec_in, in_netns};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
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

fn tlv(code: u8, v: &[u8]) -> Vec<u8> {
    let mut o = vec![code, v.len() as u8];
    o.extend_from_slice(v);
    o
}

/// A BOOTREQUEST with the given flags, giaddr and options (END appended).
fn packet(mac: [u8; 6], broadcast: bool, giaddr: Ipv4Addr, opts: &[Vec<u8>]) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    if broadcast {
        b[10] = 0x80;
    }
    b[24..28].copy_from_slice(&giaddr.octets());
    b[28..34].copy_from_slice(&mac);
    b[236..240].copy_from_slice(&[99, 130, 83, 99]);
    for o in opts {
        b.extend_from_slice(o);
    }
    b.push(255);
    b
}

/// Options of OVMF's PXE (x64) or a plain BIOS PXE ROM, per DESIGN.md §2.
fn firmware_opts(mt: u8, arch: u16, extra: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let vc = format!("PXEClient:Arch:{arch:05}:UNDI:003000");
    let mut o = vec![
        tlv(53, &[mt]),
        tlv(57, &[5, 192]),
        tlv(55, &[1, 3, 6, 43, 60, 66, 67, 97, 128, 129, 130]),
        tlv(97, &[0; 17]),
        tlv(94, &[1, 3, 0]),
        tlv(93, &arch.to_be_bytes()),
        tlv(60, vc.as_bytes()),
    ];
    o.extend_from_slice(extra);
    o
}

fn ipxe_opts(mt: u8) -> Vec<Vec<u8>> {
    vec![
        tlv(53, &[mt]),
        tlv(93, &[0, 0]),
        tlv(60, b"PXEClient:Arch:00000:UNDI:002001"),
        tlv(77, b"iPXE"),
        tlv(175, &[177, 5, 1, 128, 134, 16, 14]),
    ]
}

/// A client socket in `ns` on port `port`, bound to eth0 so broadcasts leave there.
fn client_socket(ns: &str, bind: Ipv4Addr, port: u16) -> UdpSocket {
    in_netns(ns, move || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        s.set_reuse_address(true).unwrap();
        s.set_broadcast(true).unwrap();
        s.bind_device(Some(b"eth0")).unwrap();
        s.bind(&SocketAddr::from((bind, port)).into()).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s.into()
    })
}

/// Sends `pkt` to `to` and waits up to `secs` for a reply with our xid; resends each second
/// like a real client.
fn ask(s: &UdpSocket, to: SocketAddr, pkt: &[u8], secs: u64) -> Option<Vec<u8>> {
    let mut buf = [0u8; 1500];
    for _ in 0..secs {
        s.send_to(pkt, to).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while std::time::Instant::now() < deadline {
            if let Ok((n, _)) = s.recv_from(&mut buf)
                && n >= 240
                && buf[0] == 2
                && buf[4..8] == pkt[4..8]
            {
                return Some(buf[..n].to_vec());
            }
        }
    }
    None
}

/// (message type, yiaddr, file) of a reply.
fn decode(r: &[u8]) -> (u8, Ipv4Addr, String) {
    let yiaddr = Ipv4Addr::new(r[16], r[17], r[18], r[19]);
    let file = String::from_utf8_lossy(&r[108..236])
        .trim_end_matches('\0')
        .to_string();
    let mut i = 240;
    let mut mt = 0;
    while i + 1 < r.len() && r[i] != 255 {
        if r[i] == 0 {
            i += 1;
            continue;
        }
        if r[i] == 53 {
            mt = r[i + 2];
        }
        i += 2 + r[i + 1] as usize;
    }
    (mt, yiaddr, file)
}

const BCAST: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::BROADCAST, 67));

fn started(lab: &mut Lab, cfg: &std::path::Path) -> u32 {
    let pid = lab.start_sixboot(cfg);
    assert!(
        lab.wait_log("DHCPv4 listening", 20),
        "sixboot did not start:\n{}",
        lab.log()
    );
    pid
}

/// DISCOVER then REQUEST, waiting `secs` for each answer; the ACKed address and file, or
/// what went wrong.
fn try_dora(
    s: &UdpSocket,
    mac: [u8; 6],
    arch: u16,
    secs: u64,
) -> Result<(Ipv4Addr, String), String> {
    let none = Ipv4Addr::UNSPECIFIED;
    let discover = packet(mac, true, none, &firmware_opts(1, arch, &[]));
    let offer = ask(s, BCAST, &discover, secs).ok_or("no OFFER")?;
    let (mt, addr, file) = decode(&offer);
    if mt != 2 {
        return Err(format!("expected OFFER, got message type {mt}"));
    }
    let extra = [tlv(50, &addr.octets()), tlv(54, &[192, 168, 1, 1])];
    let request = packet(mac, true, none, &firmware_opts(3, arch, &extra));
    let ack = ask(s, BCAST, &request, secs).ok_or("no ACK")?;
    match decode(&ack) {
        (5, acked, f) if acked == addr && f == file => Ok((addr, file)),
        other => Err(format!("expected ACK of {addr} {file}, got {other:?}")),
    }
}

/// A DORA that must succeed.
fn dora(s: &UdpSocket, mac: [u8; 6], arch: u16) -> (Ipv4Addr, String) {
    try_dora(s, mac, arch, 10).unwrap_or_else(|e| panic!("DORA for {mac:02x?}: {e}"))
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
    let macs: Vec<[u8; 6]> = (0..60u8)
        .map(|i| [0x52, 0x54, 0, 0xcc, i / 16, i])
        .collect();
    // Load: DORAs from many clients on a background thread, while the server is killed.
    let load_ns = c.clone();
    let load_macs = macs.clone();
    let load = std::thread::spawn(move || {
        let s = client_socket(&load_ns, Ipv4Addr::UNSPECIFIED, 68);
        load_macs
            .iter()
            .filter_map(|&m| try_dora(&s, m, 0, 1).ok().map(|(a, _)| (m, a)))
            .collect::<Vec<_>>()
    });
    let acks = || lab.log().matches("reply=ACK").count();
    assert!(
        common::wait_until(Duration::from_secs(20), || acks() >= 10),
        "load did not start"
    );
    lab.kill9(pid);
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
