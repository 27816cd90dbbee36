//! Floods against a real `sixboot serve`, each bounded in count and time: 10k iPXE
//! DISCOVERs, 10k Router Solicitations, 1k TFTP requests from different ports, and slow
//! HTTP clients past the connection cap. Each asserts the server's resident memory stays
//! bounded, what the limits promise, that every packet is accounted for (counted by
//! sixboot, or dropped by the kernel and counted there), and that valid clients are served.

mod common;

use common::dhcp4_client::*;
use common::served::{CLIENT_V4, Served, counter, icmpv6_socket, pattern};
use common::{cmd_in, exec_in, in_netns, wait_until};
use socket2::{Domain, SockAddr, Socket, Type};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// Growth of the server's resident memory a flood may cause. The iPXE floods use 10k
/// distinct MACs, and each one gets a machine record with its "dhcp4 refused" stage: the
/// registry holds at most 10k records (`machines::MAX_MACHINES`, about 2.5 KiB each), so
/// that is the bound being checked, with room for the allocator.
const RSS_GROWTH_KIB: u64 = 40 * 1024;
/// Resident memory the server may have at any point of these tests.
const RSS_CEILING_KIB: u64 = 128 * 1024;

fn assert_memory_bounded(what: &str, before: u64, after: u64) {
    eprintln!("{what}: VmRSS {before} KiB before, {after} KiB after");
    assert!(
        after <= before + RSS_GROWTH_KIB && after <= RSS_CEILING_KIB,
        "{what}: VmRSS grew from {before} KiB to {after} KiB"
    );
}

const IPXE: &str = "sixboot_dhcp4_ignored_total{reason=\"ipxe\"}";
const DISCOVERS: &str = "sixboot_dhcp4_received_total{type=\"DISCOVER\"}";
const OFFERS: &str = "sixboot_dhcp4_replies_total{type=\"OFFER\"}";

#[test]
fn ten_thousand_ipxe_discovers_get_no_reply_and_each_is_counted_or_dropped() {
    const N: u32 = 10_000;
    let s = Served::start("floodipxe", "", "");
    s.firmware_is_served();
    let sock = client_socket(&s.client, Ipv4Addr::UNSPECIFIED, 68);
    sock.set_nonblocking(true).unwrap();
    // Firmware asking in the middle of the flood, from its own socket on port 68.
    let fw = client_socket(&s.client, Ipv4Addr::UNSPECIFIED, 68);
    let fw_discover = packet(
        [0x52, 0x54, 0, 0x77, 0, 2],
        true,
        Ipv4Addr::UNSPECIFIED,
        &firmware_opts(1, 0, &[]),
    );
    let m0 = s.metrics();
    let (rss0, drops0) = (s.rss_kib(), s.udp_rcvbuf_errors());
    let (ipxe0, discovers0, offers0) = (
        counter(&m0, IPXE),
        counter(&m0, DISCOVERS),
        counter(&m0, OFFERS),
    );
    // Flood xids are 0xf1000000 + i; any reply with one is a reply to the flood.
    let flood_xid = |x: u32| (0xf100_0000..0xf100_0000 + N).contains(&x);
    let mut buf = [0u8; 1500];
    let mut replies = 0;
    let mut drain = |sock: &UdpSocket| {
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            if n >= 240
                && buf[0] == 2
                && flood_xid(u32::from_be_bytes(buf[4..8].try_into().unwrap()))
            {
                replies += 1;
            }
        }
    };
    let mut fw_sent = 0u64;
    let mut fw_answered_after = None;
    let started = Instant::now();
    for i in 0..N {
        let mut mac = [0x52, 0x54, 0, 0, 0, 0];
        mac[3..].copy_from_slice(&i.to_be_bytes()[1..]);
        let mut p = packet(mac, true, Ipv4Addr::UNSPECIFIED, &ipxe_opts(1));
        p[4..8].copy_from_slice(&(0xf100_0000 + i).to_be_bytes());
        sock.send_to(&p, BCAST).unwrap();
        if i % 64 == 0 {
            drain(&sock);
        }
        if i == N / 2 {
            // Like firmware, send again each second until answered (10 tries).
            for _ in 0..10 {
                fw_sent += 1;
                if let Some(r) = ask(&fw, BCAST, &fw_discover, 1) {
                    assert_eq!(decode(&r).0, 2);
                    fw_answered_after = Some(fw_sent);
                    break;
                }
            }
            assert!(
                fw_answered_after.is_some(),
                "firmware not answered during the flood"
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "flood did not finish in time"
        );
    }
    let sent_in = started.elapsed();
    // Every datagram to port 67 is either read by sixboot (counted as received) or dropped
    // by the kernel because the socket's receive buffer was full (RcvbufErrors); nothing
    // else in the namespace sends there. Of those read, the firmware's got OFFERs and
    // every iPXE one was refused with reason=ipxe.
    let total = u64::from(N) + fw_sent;
    let (mut read, mut dropped, mut refused, mut offers) = (0, 0, 0, 0);
    let settled = wait_until(Duration::from_secs(20), || {
        let m = s.metrics();
        read = counter(&m, DISCOVERS) - discovers0;
        refused = counter(&m, IPXE) - ipxe0;
        offers = counter(&m, OFFERS) - offers0;
        dropped = s.udp_rcvbuf_errors() - drops0;
        read + dropped >= total && refused + offers >= read
    });
    std::thread::sleep(Duration::from_millis(300));
    drain(&sock);
    eprintln!(
        "iPXE flood: {N} sent in {sent_in:?} (+{fw_sent} firmware DISCOVERs, answered on try {fw_answered_after:?}); \
         {read} read by sixboot, {refused} of them refused and counted (reason=ipxe), {offers} OFFERs to the firmware; \
         {dropped} dropped by the kernel; {replies} replies to iPXE"
    );
    assert!(
        settled,
        "only {read} read + {dropped} dropped of {total}, {refused} refused + {offers} offers"
    );
    assert_eq!(read + dropped, total);
    assert_eq!(refused + offers, read);
    assert_eq!(replies, 0, "iPXE DISCOVERs were answered");
    assert!(s.lab.log().contains("reason=ipxe"), "refusals not logged");
    s.firmware_is_served();
    assert_memory_bounded("iPXE flood", rss0, s.rss_kib());
    assert!(s.alive());
}

/// The same 10k iPXE DISCOVERs, sent in bursts of 100 no faster than sixboot reads them
/// (each burst waits for the socket's queue to empty): nothing is dropped, so the
/// refusal counter must rise by exactly 10k, and 10k distinct MACs' worth of per-client
/// state must still fit the memory bound.
#[test]
fn ten_thousand_ipxe_discovers_at_reading_pace_are_all_refused_and_counted() {
    const N: u32 = 10_000;
    let s = Served::start("paceipxe", "", "");
    let sock = client_socket(&s.client, Ipv4Addr::UNSPECIFIED, 68);
    sock.set_nonblocking(true).unwrap();
    let m0 = s.metrics();
    let (rss0, drops0, ipxe0) = (s.rss_kib(), s.udp_rcvbuf_errors(), counter(&m0, IPXE));
    let started = Instant::now();
    let mut replies = 0;
    let mut buf = [0u8; 1500];
    for i in 0..N {
        let mut mac = [0x52, 0x54, 1, 0, 0, 0];
        mac[3..].copy_from_slice(&i.to_be_bytes()[1..]);
        sock.send_to(
            &packet(mac, true, Ipv4Addr::UNSPECIFIED, &ipxe_opts(1)),
            BCAST,
        )
        .unwrap();
        if i % 100 == 99 {
            let drained = wait_until(Duration::from_secs(10), || s.udp_rx_queue(67) == 0);
            assert!(drained, "sixboot stopped reading");
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                replies += usize::from(n >= 240 && buf[0] == 2);
            }
        }
        assert!(started.elapsed() < Duration::from_secs(180), "too slow");
    }
    let mut counted = 0;
    let all = wait_until(Duration::from_secs(10), || {
        counted = counter(&s.metrics(), IPXE) - ipxe0;
        counted >= u64::from(N)
    });
    let dropped = s.udp_rcvbuf_errors() - drops0;
    eprintln!(
        "paced iPXE flood: {N} sent in {:?}, {counted} refused and counted, {dropped} dropped, {replies} replies",
        started.elapsed()
    );
    assert!(all, "only {counted} of {N} counted ({dropped} dropped)");
    assert_eq!((counted, dropped, replies), (u64::from(N), 0, 0));
    s.firmware_is_served();
    assert_memory_bounded("paced iPXE flood", rss0, s.rss_kib());
    assert!(s.alive());
}

#[test]
fn ten_thousand_router_solicitations_and_the_ra_rate_limit_holds() {
    const N: u64 = 10_000;
    /// RFC 4861 MIN_DELAY_BETWEEN_RAS: no two RAs closer than this.
    const MIN_GAP: Duration = Duration::from_secs(3);
    const LISTEN_AFTER: Duration = Duration::from_secs(8);
    let s = Served::start("floodrs", "", "");
    // The kernels' own solicitations would be counted with ours: no more of those.
    exec_in(
        &s.client,
        &["sysctl", "-qw", "net.ipv6.conf.eth0.router_solicitations=0"],
    );
    exec_in(
        &s.lab.ns,
        &["sysctl", "-qw", "net.ipv6.conf.br0.router_solicitations=0"],
    );
    let (sock, ifindex) = icmpv6_socket(&s.client, 255);
    let all_routers = SockAddr::from(SocketAddrV6::new(
        "ff02::2".parse::<Ipv6Addr>().unwrap(),
        0,
        0,
        ifindex,
    ));
    let metrics = s.metrics();
    let sent_series = |m: &str| {
        counter(m, "sixboot_ra_sent_total{kind=\"solicited\"}")
            + counter(m, "sixboot_ra_sent_total{kind=\"unsolicited\"}")
    };
    let (rss0, rs0, ra_sent0, drops0) = (
        s.rss_kib(),
        counter(&metrics, "sixboot_ra_solicitations_total"),
        sent_series(&metrics),
        s.raw6_drops(),
    );
    // RS with a source link-layer address option; the kernel fills in the checksum.
    let rs = [133u8, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0x52, 0x54, 0, 0x66, 0, 2];
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
    let mut ras = Vec::new();
    let mut drain = |sock: &Socket, ras: &mut Vec<Instant>| {
        while let Ok(n) = sock.recv(&mut buf) {
            // SAFETY: recv initialised the first n bytes.
            if n > 0 && unsafe { buf[0].assume_init() } == 134 {
                ras.push(Instant::now());
            }
        }
    };
    let t0 = Instant::now();
    for i in 0..N {
        sock.send_to(&rs, &all_routers).unwrap();
        if i % 64 == 0 {
            drain(&sock, &mut ras);
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "flood too slow");
    }
    let flood = t0.elapsed();
    while t0.elapsed() < flood + LISTEN_AFTER {
        drain(&sock, &mut ras);
        std::thread::sleep(Duration::from_millis(20));
    }
    let window = t0.elapsed();
    let metrics = s.metrics();
    let answered = counter(&metrics, "sixboot_ra_solicitations_total") - rs0;
    let dropped = s.raw6_drops() - drops0;
    let ra_sent = sent_series(&metrics) - ra_sent0;
    let allowed = (window.as_millis() / MIN_GAP.as_millis()) as usize + 1;
    eprintln!(
        "RS flood: {N} sent in {flood:?}; {answered} counted, {dropped} dropped by the kernel; {} RAs seen in {window:?} (rate limit allows {allowed}), {ra_sent} sent",
        ras.len()
    );
    assert!(!ras.is_empty(), "no RA answered the flood");
    assert!(ras.len() <= allowed, "RA rate limit broken");
    for w in ras.windows(2) {
        // A little slack for scheduling between the server's send and our receive.
        assert!(
            w[1] - w[0] >= MIN_GAP - Duration::from_millis(500),
            "two RAs {:?} apart",
            w[1] - w[0]
        );
    }
    assert!(ra_sent >= ras.len() as u64);
    assert_eq!(answered + dropped, N, "RS neither counted nor dropped");
    // A real client still gets its RA.
    let out = cmd_in(&s.client, "timeout")
        .args(["30", "rdisc6", "-1", "-r", "10", "-w", "2000", "eth0"])
        .output()
        .expect("run rdisc6");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("fd00:1::/64"),
        "rdisc6 got no RA after the flood: {said}"
    );
    s.firmware_is_served();
    assert_memory_bounded("RS flood", rss0, s.rss_kib());
    assert!(s.alive());
}

#[test]
fn a_thousand_tftp_requests_from_different_ports_hit_the_session_caps() {
    const N: usize = 1000;
    const MAX_TRANSFERS: usize = 32;
    const MAX_PER_CLIENT: usize = 8;
    const ADDRESSES: usize = 10;
    let s = Served::start(
        "floodtftp",
        &format!("max_transfers = {MAX_TRANSFERS}\nmax_per_client = {MAX_PER_CLIENT}"),
        "",
    );
    let ips: Vec<Ipv4Addr> = (0..ADDRESSES as u8)
        .map(|i| Ipv4Addr::new(192, 168, 1, 20 + i))
        .collect();
    for ip in &ips[1..] {
        exec_in(
            &s.client,
            &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
        );
    }
    let errors = |m: &str, reason: &str| {
        counter(
            m,
            &format!("sixboot_tftp_errors_total{{reason=\"{reason}\"}}"),
        )
    };
    let m0 = s.metrics();
    let (rss0, drops0) = (s.rss_kib(), s.udp_rcvbuf_errors());
    let (busy0, per_client0) = (
        errors(&m0, "too_many_transfers"),
        errors(&m0, "too_many_for_client"),
    );
    let server: SocketAddr = "192.168.1.1:69".parse().unwrap();
    // The first 100 requests come from one address (the per-client cap), the rest from
    // the other nine in turn (the total cap). A session lives about 6 s without ACKs (1 s
    // timeout, 5 retries), so the whole flood must be sent well within that for "at most
    // MAX_TRANSFERS at once" to mean "at most MAX_TRANSFERS admitted".
    let from = {
        let ips = ips.clone();
        move |i: usize| {
            if i < 100 {
                ips[0]
            } else {
                ips[1 + i % (ADDRESSES - 1)]
            }
        }
    };
    let client = s.client.clone();
    let started = Instant::now();
    let (admitted, busy, per_client, silent, held) = in_netns(&client, move || {
        let mut held: Vec<(Ipv4Addr, UdpSocket)> = Vec::new();
        let (mut busy, mut per_client, mut silent) = (0, 0, 0);
        for batch in (0..N).collect::<Vec<_>>().chunks(100) {
            let socks: Vec<(Ipv4Addr, UdpSocket)> = batch
                .iter()
                .map(|&i| {
                    let u = UdpSocket::bind((from(i), 0)).unwrap();
                    u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    u.send_to(b"\x00\x01undionly.kpxe\x00octet\x00", server)
                        .unwrap();
                    (from(i), u)
                })
                .collect();
            for (ip, u) in socks {
                let mut buf = [0u8; 1600];
                match u.recv_from(&mut buf) {
                    Ok(_) if buf[..2] == [0, 3] => held.push((ip, u)),
                    Ok((n, _)) if buf[..4] == [0, 5, 0, 0] => {
                        let msg = String::from_utf8_lossy(&buf[4..n]).into_owned();
                        if msg.contains("from this client") {
                            per_client += 1;
                        } else {
                            assert!(msg.contains("server busy"), "{msg}");
                            busy += 1;
                        }
                    }
                    Ok((n, _)) => panic!("unexpected reply {:?}", &buf[..n]),
                    Err(_) => silent += 1,
                }
            }
        }
        let admitted = held.len();
        let per_ip: Vec<usize> = ips
            .iter()
            .map(|ip| held.iter().filter(|(a, _)| a == ip).count())
            .collect();
        (admitted, busy, per_client, silent, per_ip)
    });
    let flood = started.elapsed();
    eprintln!(
        "TFTP flood: {N} RRQs in {flood:?} from {ADDRESSES} addresses: {admitted} admitted (per address {held:?}), {busy} refused busy, {per_client} refused per-client, {silent} unanswered"
    );
    assert!(
        flood < Duration::from_secs(5),
        "flood took {flood:?}: sessions may have ended during it"
    );
    assert_eq!(admitted, MAX_TRANSFERS, "total cap");
    assert!(
        held.iter().all(|&n| n <= MAX_PER_CLIENT),
        "per-client cap: {held:?}"
    );
    assert_eq!(held[0], MAX_PER_CLIENT);
    let m = s.metrics();
    let dropped = s.udp_rcvbuf_errors() - drops0;
    assert_eq!(errors(&m, "too_many_transfers") - busy0, busy as u64);
    assert_eq!(
        errors(&m, "too_many_for_client") - per_client0,
        per_client as u64
    );
    assert_eq!(admitted + busy + per_client + silent, N);
    assert!(
        silent as u64 <= dropped,
        "{silent} unanswered but {dropped} dropped by the kernel"
    );
    let log = s.lab.log();
    for reason in ["too_many_transfers", "too_many_for_client"] {
        assert!(log.contains(reason), "refusal {reason} not logged");
    }
    // The held sessions time out (they never ACK), freeing their slots.
    let timed_out = wait_until(Duration::from_secs(20), || {
        counter(
            &s.metrics(),
            "sixboot_tftp_transfers_total{family=\"ipv4\",outcome=\"timeout\"}",
        ) == MAX_TRANSFERS as u64
    });
    assert!(
        timed_out,
        "held sessions did not time out:\n{}",
        s.metrics()
    );
    // A valid client gets its file.
    let out = cmd_in(&s.client, "curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "--interface",
            CLIENT_V4,
            "tftp://192.168.1.1/undionly.kpxe",
        ])
        .output()
        .expect("run curl");
    assert!(
        out.stdout == pattern(3000),
        "curl tftp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_memory_bounded("TFTP flood", rss0, s.rss_kib());
    assert!(s.alive());
}

#[test]
fn slow_http_clients_are_closed_after_the_timeout_and_the_cap_holds() {
    const CAP: usize = 4;
    const TIMEOUT: Duration = Duration::from_secs(2);
    const SLOW: usize = 2 * CAP;
    let mut s = Served::start(
        "floodhttp",
        "",
        &format!(
            "max_connections = {CAP}\nrequest_timeout = {}",
            TIMEOUT.as_secs()
        ),
    );
    let rss0 = s.rss_kib();
    let client = s.client.clone();
    let t0 = Instant::now();
    // Half send part of a request head and stop; half connect and say nothing.
    let conns: Vec<TcpStream> = in_netns(&client, || {
        (0..SLOW)
            .map(|i| {
                let mut c = TcpStream::connect("192.168.1.1:8080").unwrap();
                if i % 2 == 0 {
                    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 192.168.1.1\r\nX-Slow: ")
                        .unwrap();
                }
                c
            })
            .collect()
    });
    // A normal client arriving behind them, while the cap is full.
    let curl_ns = client.clone();
    let normal = std::thread::spawn(move || {
        let t = Instant::now();
        let out = cmd_in(&curl_ns, "curl")
            .args(["-sS", "--max-time", "30", "http://192.168.1.1:8080/healthz"])
            .output()
            .expect("run curl");
        (out, t.elapsed())
    });
    let closers: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            std::thread::spawn(move || {
                c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut buf = [0u8; 512];
                let r = c.read(&mut buf);
                (r.map_err(|e| e.kind()), t0.elapsed())
            })
        })
        .collect();
    let mut closed_at = Vec::new();
    for h in closers {
        let (r, at) = h.join().unwrap();
        assert!(
            matches!(r, Ok(0) | Err(std::io::ErrorKind::ConnectionReset)),
            "slow connection not closed: {r:?} after {at:?}"
        );
        closed_at.push(at);
    }
    let (out, took) = normal.join().unwrap();
    eprintln!(
        "slow HTTP: {SLOW} slow connections, cap {CAP}, timeout {TIMEOUT:?}: closed after {closed_at:?}; a normal /healthz waited {took:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok"),
        "normal client not served: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // None closed before the timeout; all closed within two rounds of it (the second
    // half waited for a slot), with slack for a slow machine.
    assert!(
        closed_at
            .iter()
            .all(|&t| t >= TIMEOUT - Duration::from_millis(300)),
        "{closed_at:?}"
    );
    assert!(
        closed_at
            .iter()
            .all(|&t| t <= 2 * TIMEOUT + Duration::from_secs(3)),
        "{closed_at:?}"
    );
    // The cap holds, and is not lower than set: exactly CAP were served in the first round.
    let first_round = closed_at
        .iter()
        .filter(|&&t| t < TIMEOUT + TIMEOUT / 2)
        .count();
    assert_eq!(first_round, CAP, "{closed_at:?}");
    let m = s.metrics();
    assert_eq!(
        counter(
            &m,
            "sixboot_http_connections_dropped_total{reason=\"header_timeout\"}"
        ),
        SLOW as u64,
        "{m}"
    );
    assert!(
        counter(&m, "sixboot_http_connections_capped_total") >= 1,
        "{m}"
    );
    let log = s.lab.log();
    assert!(
        log.contains("no complete request head in time"),
        "timeouts not logged"
    );
    assert!(
        log.contains("HTTP connection cap reached"),
        "cap not logged"
    );
    // Soon only the connection asking for /metrics is open (curl's close may still be on
    // its way).
    assert!(
        wait_until(Duration::from_secs(5), || {
            counter(&s.metrics(), "sixboot_http_connections_open") == 1
        }),
        "connections left open"
    );
    assert!(s.healthz());
    assert_memory_bounded("slow HTTP", rss0, s.rss_kib());
    assert!(s.alive());
    // A stop is not held up by a client that is still slow at it.
    let _slow = in_netns(&client, || {
        let mut c = TcpStream::connect("192.168.1.1:8080").unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
        c
    });
    std::thread::sleep(Duration::from_millis(200));
    let asked = Instant::now();
    assert!(s.stop_cleanly(), "sixboot did not stop cleanly");
    eprintln!(
        "slow HTTP: stopped {:?} after SIGTERM with a slow client connected",
        asked.elapsed()
    );
}

#[test]
fn a_client_that_stops_reading_is_closed_after_the_send_timeout() {
    const SEND_TIMEOUT: Duration = Duration::from_secs(2);
    let s = Served::start(
        "floodslowread",
        "",
        &format!("send_timeout = {}", SEND_TIMEOUT.as_secs()),
    );
    // Far more than the socket buffers on both ends hold.
    s.lab.write("http/big.bin", pattern(32 << 20));
    let rss0 = s.rss_kib();
    let t0 = Instant::now();
    let reader = in_netns(&s.client, || {
        let c = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        c.set_recv_buffer_size(4096).unwrap();
        c.connect(&SockAddr::from(
            "192.168.1.1:8080".parse::<SocketAddr>().unwrap(),
        ))
        .unwrap();
        let mut c: TcpStream = c.into();
        c.write_all(b"GET /big.bin HTTP/1.1\r\nHost: 192.168.1.1\r\n\r\n")
            .unwrap();
        c
    });
    let series = "sixboot_http_connections_dropped_total{reason=\"send_timeout\"}";
    let closed = wait_until(Duration::from_secs(30), || {
        counter(&s.metrics(), series) == 1
    });
    let took = t0.elapsed();
    eprintln!("slow reader: closed after {took:?} (send_timeout {SEND_TIMEOUT:?})");
    assert!(closed, "a client that stopped reading was not closed");
    assert!(took >= SEND_TIMEOUT, "closed before the timeout: {took:?}");
    // The server's end is gone: reading on drains what was buffered, then ends.
    let mut reader = reader;
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let end = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => got += n,
            Err(e) => break Err(e.kind()),
        }
    };
    assert!(
        matches!(end, Ok(()) | Err(std::io::ErrorKind::ConnectionReset)),
        "{end:?}"
    );
    assert!(got < 32 << 20, "the whole file arrived: {got} bytes");
    assert!(
        s.lab
            .log()
            .contains("the client stopped taking the response")
    );
    assert!(s.healthz());
    assert_memory_bounded("slow reader", rss0, s.rss_kib());
    assert!(s.alive());
}
