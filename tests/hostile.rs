//! Hostile input over real sockets against a real `sixboot serve`: malformed and lying
//! DHCPv4, DHCPv6, router discovery and TFTP packets from a client namespace. After each barrage sixboot
//! must be alive, still serve valid clients, and have counted every refusal in /metrics
//! by reason (exactly as many as were sent) and logged it.
//!
//! Floods are in `flood.rs`.

mod common;

use common::dhcp4_client::*;
use common::in_netns;
use common::served::{CLIENT_V4, CLIENT_V6, Served, counter, icmpv6_socket, pattern};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x66, 0, 1];

/// A packet with a valid header and these raw option bytes (no END appended).
fn raw(opts: &[u8]) -> Vec<u8> {
    let mut p = packet(MAC, true, Ipv4Addr::UNSPECIFIED, &[]);
    p.pop();
    p.extend_from_slice(opts);
    p
}

/// A BIOS PXE DISCOVER carrying `extra` as its only other option.
fn firmware_with(extra: Vec<u8>) -> Vec<u8> {
    let o = [
        tlv(53, &[1]),
        tlv(60, b"PXEClient:Arch:00000:UNDI:002001"),
        extra,
    ];
    packet(MAC, true, Ipv4Addr::UNSPECIFIED, &o)
}

/// Counts cases per reason: what /metrics must show afterwards.
fn tally<'a>(reasons: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, u64> {
    let mut m = BTreeMap::new();
    for r in reasons {
        *m.entry(r).or_default() += 1;
    }
    m
}

/// Asserts each reason's counter in `metrics` equals what was sent, and that the log
/// names it.
fn assert_counted(s: &Served, family: &str, want: &BTreeMap<&str, u64>) {
    let metrics = s.metrics();
    let log = s.lab.log();
    for (reason, n) in want {
        let series = format!("sixboot_{family}{{reason=\"{reason}\"}}");
        assert_eq!(
            counter(&metrics, &series),
            *n,
            "{series}:\n{metrics}\n{log}"
        );
        assert!(
            log.contains(&format!("reason={reason}"))
                || log.contains(&format!("reason=\"{reason}\"")),
            "no `reason={reason}` logged"
        );
    }
    eprintln!("{family}: {want:?}");
}

#[test]
fn malformed_dhcp4_is_refused_counted_and_valid_firmware_still_served() {
    let mut s = Served::start("hostile4", "", "");
    let sock = client_socket(&s.client, Ipv4Addr::UNSPECIFIED, 68);

    let mut hlen17 = firmware_with(tlv(12, b"x"));
    hlen17[2] = 17;
    let mut hlen255 = hlen17.clone();
    hlen255[2] = 255;
    let mut reply_op = firmware_with(tlv(12, b"x"));
    reply_op[0] = 2;
    let mut cut = firmware_with(tlv(12, b"x"));
    cut.truncate(239);
    // Option 52 inside `file` pointing at `file` again: a loop if followed.
    let mut overload_loop = raw(&[53, 1, 1, 52, 1, 1, 255]);
    overload_loop[108..115].copy_from_slice(&[52, 1, 1, 53, 1, 1, 255]);
    // Both areas overloaded, and `sname` names the overload again.
    let mut overload_sname = raw(&[53, 1, 1, 52, 1, 3, 255]);
    overload_sname[108] = 255;
    overload_sname[44..47].copy_from_slice(&[52, 1, 2]);
    // `file` overloaded, and its option runs past the 128 bytes of `file`.
    let mut overload_overrun = raw(&[53, 1, 1, 52, 1, 1, 255]);
    overload_overrun[108..112].copy_from_slice(&[60, 200, b'P', b'X']);
    let mut bad_magic = firmware_with(tlv(12, b"x"));
    bad_magic[236] = 0;
    let junk: Vec<u8> = (0..576u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let non_firmware = |o: Vec<u8>| packet(MAC, true, Ipv4Addr::UNSPECIFIED, &[tlv(53, &[1]), o]);
    let mut long53 = vec![53, 255];
    long53.extend_from_slice(&[1; 255]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // Truncated headers.
        (vec![], "truncated"),
        (vec![1u8; 100], "truncated"),
        (cut, "truncated"),
        (raw(&[]), "no_message_type"),
        (bad_magic, "bad_magic"),
        (junk, "bad_magic"),
        (reply_op, "not_request"),
        // Options that run past the end.
        (raw(&[53, 1, 1, 60, 200, b'P', 255]), "option_overrun"),
        (raw(&[53, 1, 1, 60]), "option_overrun"),
        (raw(&[53, 1, 1, 61, 255, 1, 2, 3]), "option_overrun"),
        (overload_overrun, "option_overrun"),
        // Option overload (52) loops and bad values.
        (overload_loop, "bad_overload"),
        (overload_sname, "bad_overload"),
        (raw(&[53, 1, 1, 52, 1, 7, 255]), "bad_overload"),
        (raw(&[53, 1, 1, 52, 2, 1, 1, 255]), "bad_overload"),
        // Zero-length and oversized 53, 60, 61, 77, 93.
        (raw(&[53, 0, 255]), "bad_option_length"),
        (raw(&[53, 2, 1, 1, 255]), "bad_option_length"),
        (raw(&[long53, vec![255]].concat()), "bad_option_length"),
        (raw(&[53, 1, 77, 255]), "bad_message_type"),
        (non_firmware(tlv(60, &[])), "not_firmware"),
        (non_firmware(tlv(60, &[b'X'; 255])), "not_firmware"),
        (non_firmware(tlv(61, &[7; 255])), "not_firmware"),
        (firmware_with(tlv(77, b"iPXE")), "ipxe"),
        (firmware_with(tlv(93, &[])), "bad_option_length"),
        (firmware_with(tlv(93, &[0, 0, 7])), "bad_option_length"),
        (firmware_with(tlv(93, &[0; 255])), "bad_option_length"),
        // hlen > 16.
        (hlen17, "bad_hlen"),
        (hlen255, "bad_hlen"),
        // Option lengths that lie about fixed-size values.
        (firmware_with(tlv(50, &[1, 2, 3])), "bad_option_length"),
        (firmware_with(tlv(51, &[0, 1])), "bad_option_length"),
        (
            firmware_with(tlv(54, &[192, 168, 1, 1, 0])),
            "bad_option_length",
        ),
        (firmware_with(tlv(57, &[5])), "bad_option_length"),
    ];
    // Each case gets its own xid, so a stray answer names its case.
    let xid = |i: usize| 0x5b00_0000u32 + i as u32;
    for (i, (pkt, _)) in cases.iter().enumerate() {
        let mut p = pkt.clone();
        if p.len() >= 8 {
            p[4..8].copy_from_slice(&xid(i).to_be_bytes());
        }
        sock.send_to(&p, BCAST).unwrap();
    }
    let mut buf = [0u8; 1500];
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf)
            && n >= 240
            && buf[0] == 2
        {
            let x = u32::from_be_bytes(buf[4..8].try_into().unwrap());
            panic!("case {} was answered", x.wrapping_sub(xid(0)));
        }
    }
    assert_counted(&s, "dhcp4_ignored_total", &tally(cases.iter().map(|c| c.1)));
    // Valid odd values are served: 255-byte, empty and one-byte client ids (the last two
    // fall back to the MAC), empty and 255-byte user classes, a 255-byte host name, and
    // 127 architectures in option 93.
    let mut id = vec![0u8; 255];
    id[0] = 0xff;
    for extra in [
        tlv(61, &id),
        tlv(61, &[]),
        tlv(61, &[1]),
        tlv(77, &[]),
        tlv(77, &[b'u'; 255]),
        tlv(12, &[b'h'; 255]),
        tlv(93, &[0; 254]),
    ] {
        let r =
            ask(&sock, BCAST, &firmware_with(extra), 3).expect("valid odd DISCOVER not answered");
        assert_eq!(decode(&r).0, 2);
    }
    s.firmware_is_served();
    assert!(s.alive(), "sixboot died");
    assert!(s.stop_cleanly(), "sixboot did not stop cleanly");
}

/// A DHCPv6 option.
fn opt6(code: u16, v: &[u8]) -> Vec<u8> {
    let mut o = code.to_be_bytes().to_vec();
    o.extend_from_slice(&(v.len() as u16).to_be_bytes());
    o.extend_from_slice(v);
    o
}

/// iPXE's Solicit: DUID-LL, elapsed time, IA_NA, ORO with the boot URL, user class iPXE,
/// then `extra`.
fn solicit(extra: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![1, 0x12, 0x34, 0x56];
    let mut duid = vec![0, 3, 0, 1];
    duid.extend_from_slice(&MAC);
    m.extend(opt6(1, &duid));
    m.extend(opt6(8, &[0, 0]));
    m.extend(opt6(3, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]));
    m.extend(opt6(6, &[0, 59]));
    m.extend(opt6(15, b"\x00\x04iPXE"));
    for e in extra {
        m.extend_from_slice(e);
    }
    m
}

/// `inner` in a Relay-forward with `hop_count`, from the client's EUI-64 link-local
/// address, with an Interface-Id.
fn relay(inner: &[u8], hop_count: u8) -> Vec<u8> {
    let mut m = vec![12, hop_count];
    m.extend_from_slice(&"fd00:1::".parse::<std::net::Ipv6Addr>().unwrap().octets());
    m.extend_from_slice(
        &"fe80::5054:ff:fe66:1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    m.extend(opt6(18, b"eth0"));
    m.extend(opt6(9, inner));
    m
}

/// `inner` relayed through `depth` relays, hop counts 0 (first relay) upward.
fn nest(inner: &[u8], depth: usize) -> Vec<u8> {
    (0..depth).fold(inner.to_vec(), |m, hop| relay(&m, hop.min(255) as u8))
}

/// The options of a DHCPv6 message body, as (code, value).
fn options6(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let code = u16::from_be_bytes([b[0], b[1]]);
        let len = u16::from_be_bytes([b[2], b[3]]) as usize;
        out.push((code, &b[4..4 + len]));
        b = &b[4 + len..];
    }
    out
}

/// Peels Relay-reply layers; returns how many and the innermost message.
fn unwrap_replies(mut b: &[u8]) -> (usize, &[u8]) {
    let mut depth = 0;
    while b.first() == Some(&13) {
        depth += 1;
        b = options6(&b[34..])
            .into_iter()
            .find(|(c, _)| *c == 9)
            .expect("Relay-reply without a relay message")
            .1;
    }
    (depth, b)
}

/// Sends `m` and returns the first reply within `secs`.
fn ask6(sock: &UdpSocket, m: &[u8], secs: u64) -> Option<Vec<u8>> {
    let to: SocketAddr = "[fd00:1::1]:547".parse().unwrap();
    let mut buf = vec![0u8; 65536];
    for _ in 0..secs {
        sock.send_to(m, to).unwrap();
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                return Some(buf[..n].to_vec());
            }
        }
    }
    None
}

/// An Advertise with a boot URL.
fn assert_advertise_with_url(m: &[u8]) {
    assert_eq!(m[0], 2, "not an Advertise: {m:?}");
    let url = options6(&m[4..])
        .into_iter()
        .find(|(c, _)| *c == 59)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    assert!(
        url.as_deref().is_some_and(|u| u.starts_with("http://")),
        "no boot URL: {url:?}"
    );
}

#[test]
fn malformed_dhcp6_and_deep_relays_are_refused_counted_and_valid_clients_still_served() {
    let mut s = Served::start("hostile6", "", "");
    let sock = in_netns(&s.client, || {
        let sock = UdpSocket::bind(format!("[{CLIENT_V6}]:546")).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        sock
    });
    // 32 relays, the most the server unwraps: answered through all 32.
    let deep = ask6(&sock, &nest(&solicit(&[]), 32), 8).expect("32-deep relay not answered");
    let (depth, inner) = unwrap_replies(&deep);
    assert_eq!(depth, 32);
    assert_advertise_with_url(inner);

    let lie = |mut m: Vec<u8>| {
        m.extend_from_slice(&[0, 8, 0xff, 0xff]);
        m
    };
    let mut no_client_id = vec![1, 0, 0, 1];
    no_client_id.extend(opt6(8, &[0, 0]));
    let mut no_relay_msg = relay(&solicit(&[]), 0);
    no_relay_msg.truncate(34 + 8); // header and Interface-Id only
    let mut relay_msg_lies = relay(&solicit(&[]), 0);
    relay_msg_lies[34 + 8 + 2..34 + 8 + 4].copy_from_slice(&[0xff, 0xff]);
    let mut iaaddr_lies = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    iaaddr_lies.extend_from_slice(&[0, 5, 0, 100]);
    let mut from_server = solicit(&[]);
    from_server[0] = 2;
    let mut relay_reply = relay(&solicit(&[]), 0);
    relay_reply[0] = 13;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // Truncated headers.
        (vec![], "truncated"),
        (vec![1], "truncated"),
        (vec![1, 0, 0], "truncated"),
        (relay(&solicit(&[]), 0)[..33].to_vec(), "truncated"),
        (relay(&[1, 0], 0), "truncated"),
        (vec![0, 1, 2, 3], "bad_message_type"),
        (vec![200, 1, 2, 3], "bad_message_type"),
        // Option lengths that lie.
        (lie(solicit(&[])), "option_overrun"),
        ([solicit(&[]), vec![0, 1, 0]].concat(), "option_overrun"),
        (relay_msg_lies, "option_overrun"),
        (relay(&lie(solicit(&[])), 0), "option_overrun"),
        (solicit(&[opt6(3, &iaaddr_lies)]), "option_overrun"),
        (solicit(&[opt6(8, &[0, 0, 0])]), "bad_option_length"),
        (solicit(&[opt6(3, &[0, 0, 0, 1])]), "bad_option_length"),
        (solicit(&[opt6(6, &[0, 59, 0])]), "bad_option_length"),
        (solicit(&[opt6(79, &[0])]), "bad_option_length"),
        // Relays: none inside, too deep, hop count at or past the limit.
        (no_relay_msg, "no_relay_message"),
        (nest(&solicit(&[]), 33), "relay_too_deep"),
        (nest(&solicit(&[]), 40), "relay_too_deep"),
        (nest(&solicit(&[]), 1000), "relay_too_deep"),
        (relay(&solicit(&[]), 32), "relay_too_deep"),
        (relay(&solicit(&[]), 255), "relay_too_deep"),
        (relay_reply, "relay_reply"),
        (from_server, "server_message"),
        (no_client_id, "no_client_id"),
    ];
    let to: SocketAddr = "[fd00:1::1]:547".parse().unwrap();
    for (m, _) in &cases {
        sock.send_to(m, to).unwrap();
    }
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            panic!("a malformed message was answered: {:?}", &buf[..n.min(64)]);
        }
    }
    assert_counted(&s, "dhcp6_ignored_total", &tally(cases.iter().map(|c| c.1)));
    let plain = ask6(&sock, &solicit(&[]), 5).expect("valid Solicit not answered");
    assert_advertise_with_url(&plain);
    s.firmware_is_served();
    assert!(s.alive(), "sixboot died");
    assert!(s.stop_cleanly(), "sixboot did not stop cleanly");
}

/// A raw TFTP client in the client namespace.
struct Tftp {
    sock: UdpSocket,
    server: SocketAddr,
}

impl Tftp {
    fn new(s: &Served) -> Tftp {
        let sock = in_netns(&s.client, || {
            UdpSocket::bind(format!("{CLIENT_V4}:0")).unwrap()
        });
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        Tftp {
            sock,
            server: "192.168.1.1:69".parse().unwrap(),
        }
    }

    fn recv(&self) -> (Vec<u8>, SocketAddr) {
        let mut buf = vec![0u8; 70_000];
        let (n, from) = self.sock.recv_from(&mut buf).expect("no TFTP reply in 3 s");
        buf.truncate(n);
        (buf, from)
    }

    /// The ERROR code the server answers `req` with.
    fn error_for(&self, req: &[u8]) -> u16 {
        self.sock.send_to(req, self.server).unwrap();
        let (p, _) = self.recv();
        assert_eq!(p[..2], [0, 5], "expected ERROR for {req:?}, got {p:?}");
        u16::from_be_bytes([p[2], p[3]])
    }

    /// Fetches with `req`; returns the OACK's options (empty without one) and the file.
    fn fetch(&self, req: &[u8]) -> (Vec<u8>, Vec<u8>) {
        self.sock.send_to(req, self.server).unwrap();
        let (mut p, tid) = self.recv();
        let mut oack = Vec::new();
        let mut data = Vec::new();
        let mut blksize = 512;
        if p[..2] == [0, 6] {
            oack = p[2..].to_vec();
            let parts: Vec<&[u8]> = oack.split(|&c| c == 0).collect();
            if let Some(i) = parts.iter().position(|n| *n == b"blksize") {
                blksize = std::str::from_utf8(parts[i + 1]).unwrap().parse().unwrap();
            }
            self.sock.send_to(&[0, 4, 0, 0], tid).unwrap();
            p = self.recv().0;
        }
        for _ in 0..10_000 {
            assert_eq!(p[..2], [0, 3], "expected DATA, got {p:?}");
            data.extend_from_slice(&p[4..]);
            self.sock.send_to(&[0, 4, p[2], p[3]], tid).unwrap();
            if p.len() - 4 < blksize {
                return (oack, data);
            }
            p = self.recv().0;
        }
        panic!("transfer did not end");
    }
}

fn rrq(name: &[u8], rest: &[u8]) -> Vec<u8> {
    [&[0, 1][..], name, b"\0octet\0", rest].concat()
}

#[test]
fn hostile_tftp_requests_are_refused_or_ignored_counted_and_files_still_served() {
    let mut s = Served::start("hostiletftp", "", "");
    let root = s.lab.dir.path().join("tftp");
    std::fs::create_dir_all(root.join("ünï")).unwrap();
    std::fs::write(root.join("ünï/☃.efi"), b"utf-8 name").unwrap();
    std::fs::write(
        root.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"\xff\xfe.bin")),
        b"latin-1 name",
    )
    .unwrap();
    let c = Tftp::new(&s);
    let long = vec![b'a'; 400];
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (vec![], 4, "truncated"),
        (vec![0], 4, "truncated"),
        (vec![0, 7], 4, "unknown_opcode"),
        (b"\x00\x01undionly.kpxe".to_vec(), 4, "unterminated"),
        (b"\x00\x01undionly.kpxe\x00".to_vec(), 4, "no_mode"),
        (b"\x00\x01undionly.kpxe\x00\x00".to_vec(), 4, "bad_mode"),
        (
            b"\x00\x01undionly.kpxe\x00octet".to_vec(),
            4,
            "unterminated",
        ),
        (rrq(b"undionly.kpxe", b"blksize\x00"), 4, "unterminated"),
        (rrq("ünïcødé/☃ boot.efi".as_bytes(), b""), 1, "not_found"),
        (rrq(b"\xff\xfe\xc0\x80boot", b""), 1, "not_found"),
        (rrq(b"\x1b[31m\r\nboot\x07", b""), 1, "not_found"),
        (rrq(&long, b""), 1, "not_found"),
        (rrq(b"", b""), 2, "not_a_file"),
        (rrq(b"../\xff/../../etc/passwd", b""), 2, "path_escape"),
    ];
    for (req, code, _) in &cases {
        assert_eq!(c.error_for(req), *code, "for {req:?}");
    }
    let file = pattern(3000);
    // Options with unusable values are left out of the OACK; the transfer goes on.
    for (opts, oack) in [
        (&b"blksize\x000\x00"[..], &b""[..]),
        (b"windowsize\x000\x00", b""),
        (b"tsize\x00abc\x00", b""),
        (b"blksize\x000\x00tsize\x000\x00", b"tsize\x003000\x00"),
    ] {
        let (got_oack, data) = c.fetch(&rrq(b"undionly.kpxe", opts));
        assert_eq!(got_oack, oack, "OACK for {opts:?}");
        assert!(data == file, "file differs for {opts:?}");
    }
    // blksize 65536 is past RFC 2348's maximum: granted as the most the link carries.
    let (oack, data) = c.fetch(&rrq(b"undionly.kpxe", b"blksize\x0065536\x00"));
    assert_eq!(oack, b"blksize\x001468\x00");
    assert!(data == file);
    // Names are bytes: UTF-8 and non-UTF-8 names of files that exist are served.
    assert_eq!(c.fetch(&rrq("/ünï/☃.efi".as_bytes(), b"")).1, b"utf-8 name");
    assert_eq!(c.fetch(&rrq(b"\xff\xfe.bin", b"")).1, b"latin-1 name");

    assert_counted(&s, "tftp_errors_total", &tally(cases.iter().map(|c| c.2)));
    let metrics = s.metrics();
    for (option, n) in [("blksize", 2), ("windowsize", 1), ("tsize", 1)] {
        let series = format!("sixboot_tftp_options_ignored_total{{option=\"{option}\"}}");
        assert_eq!(counter(&metrics, &series), n, "{series}:\n{metrics}");
    }
    assert!(s.lab.log().contains("tftp: option ignored"));
    assert_eq!(c.fetch(&rrq(b"undionly.kpxe", b"")).1, file);
    s.firmware_is_served();
    assert!(s.alive(), "sixboot died");
    assert!(s.stop_cleanly(), "sixboot did not stop cleanly");
}

#[test]
fn malformed_and_forged_router_discovery_is_ignored_counted_and_rdisc6_still_served() {
    let mut s = Served::start("hostilera", "", "");
    let all_routers = |ifindex| {
        socket2::SockAddr::from(std::net::SocketAddrV6::new(
            "ff02::2".parse().unwrap(),
            0,
            0,
            ifindex,
        ))
    };
    let rs = |code: u8, opts: &[u8]| [&[133, code, 0, 0, 0, 0, 0, 0][..], opts].concat();
    let sll = [1, 1, 0x52, 0x54, 0, 0x66, 0, 3];
    // From eth0's link-local address with hop limit 255, as router discovery must be.
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![133, 0, 0, 0], "truncated"),
        (vec![134, 0, 0, 0, 0, 0, 0, 0], "truncated"),
        (rs(1, &sll), "bad_code"),
        (rs(0, &[1, 0, 0x52, 0x54, 0, 0x66, 0, 3]), "bad_option"),
        (rs(0, &[1, 2, 0x52, 0x54, 0, 0x66, 0, 3]), "bad_option"),
        (
            rs(
                0,
                &[[1, 1, 0, 0, 0, 0, 0, 0], [3, 4, 0, 0, 0, 0, 0, 0]].concat(),
            ),
            "bad_option",
        ),
    ];
    let (sock, ifindex) = icmpv6_socket(&s.client, 255);
    for (m, _) in &cases {
        sock.send_to(m, &all_routers(ifindex)).unwrap();
    }
    // Crossed a router (hop limit 64): a well-formed RS that must not be believed.
    let (low, _) = icmpv6_socket(&s.client, 64);
    low.send_to(&rs(0, &sll), &all_routers(ifindex)).unwrap();
    // An RA from a global address: RAs come only from link-local ones.
    let (global, _) = icmpv6_socket(&s.client, 255);
    global
        .bind(
            &std::net::SocketAddr::from((CLIENT_V6.parse::<std::net::Ipv6Addr>().unwrap(), 0))
                .into(),
        )
        .unwrap();
    let ra = [134u8, 0, 0, 0, 64, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    global
        .send_to(
            &ra,
            &socket2::SockAddr::from(std::net::SocketAddrV6::new(
                "ff02::1".parse().unwrap(),
                0,
                0,
                ifindex,
            )),
        )
        .unwrap();
    let mut want = tally(cases.iter().map(|c| c.1));
    want.insert("hop_limit", 1);
    want.insert("not_link_local", 1);
    let settled = common::wait_until(Duration::from_secs(5), || {
        let m = s.metrics();
        want.iter()
            .all(|(r, n)| counter(&m, &format!("sixboot_ra_ignored_total{{reason=\"{r}\"}}")) >= *n)
    });
    assert!(settled, "not all counted:\n{}", s.metrics());
    assert_counted(&s, "ra_ignored_total", &want);
    let out = common::cmd_in(&s.client, "timeout")
        .args(["30", "rdisc6", "-1", "-r", "10", "-w", "2000", "eth0"])
        .output()
        .expect("run rdisc6");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("fd00:1::/64"),
        "rdisc6 got no RA"
    );
    s.firmware_is_served();
    assert!(s.alive(), "sixboot died");
    assert!(s.stop_cleanly(), "sixboot did not stop cleanly");
}
