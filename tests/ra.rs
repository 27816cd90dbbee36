//! Router advertisements in a lab namespace: the sender runs in-process on the bridge;
//! `rdisc6` (ndisc6) in a client namespace solicits and reports what it received.

mod common;

use common::{InProcess, Lab, cmd_in, in_netns, wait_until};
use sixboot::config::{self, Checks};
use sixboot::ra::{self, RaMetrics};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

const BASE: &str = r#"
interface = "br0"
[ipv6]
prefix = "fd00:1::/64"
pool = ["fd00:1::100", "fd00:1::1ff"]
"#;

/// Starts the RA sender in the lab's namespace once br0's link-local address is usable
/// (RAs must come from it).
fn start(lab: &Lab, extra: &str, metrics: RaMetrics) -> InProcess<std::io::Result<()>> {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("sixboot=debug")
        .try_init();
    let ready = wait_until(Duration::from_secs(10), || {
        let out = lab.exec_ok(&["ip", "-6", "addr", "show", "dev", "br0", "scope", "link"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("fe80") && !text.contains("tentative")
    });
    assert!(ready, "br0 has no usable link-local address");
    let path = lab.write("sixboot.toml", format!("{BASE}{extra}"));
    let cfg = config::load(&path, Checks::FileOnly).expect("lab config loads");
    InProcess::start(&lab.ns, move |shutdown| {
        ra::run(
            cfg.ipv6.expect("[ipv6]"),
            cfg.interface,
            metrics,
            Default::default(),
            shutdown,
        )
    })
}

/// What rdisc6 printed for one solicitation, spaces squeezed ("Prefix : fd00:1::/64").
fn rdisc6(ns: &str) -> String {
    let out = cmd_in(ns, "timeout")
        .args(["20", "rdisc6", "-1", "-r", "5", "-w", "2000", "eth0"])
        .output()
        .expect("run rdisc6");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "rdisc6 saw no RA: {text}");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn rdisc6_sees_the_default_flags_prefix_and_dns() {
    let mut lab = Lab::new("radefaults");
    let c = lab.client("c1", None, None);
    let metrics = RaMetrics::default();
    let _ra = start(&lab, "dns = [\"fd00:1::53\"]\n", metrics.clone());
    let seen = rdisc6(&c);
    for want in [
        "Stateful address conf. : Yes",
        "Stateful other conf. : Yes",
        "Router lifetime : 0 (0x00000000) seconds",
        "Prefix : fd00:1::/64",
        "On-link : Yes",
        "Autonomous address conf.: No",
        "Recursive DNS server : fd00:1::53",
    ] {
        assert!(seen.contains(want), "rdisc6 output lacks `{want}`:\n{seen}");
    }
    assert!(metrics.solicitations.get() >= 1);
}

#[test]
fn rdisc6_sees_a_configured_router_lifetime_and_autonomous_flag() {
    let mut lab = Lab::new("raconfigured");
    let c = lab.client("c1", None, None);
    let _ra = start(
        &lab,
        "autonomous = true\nrouter_lifetime = 1800\n",
        RaMetrics::default(),
    );
    let seen = rdisc6(&c);
    for want in [
        "Router lifetime : 1800 (0x00000708) seconds",
        "Autonomous address conf.: Yes",
    ] {
        assert!(seen.contains(want), "rdisc6 output lacks `{want}`:\n{seen}");
    }
    assert!(!seen.contains("Recursive DNS server"), "{seen}");
}

/// Sends `packet` as ICMPv6 from the client's eth0 to `to` with `hops`, every 200 ms
/// until `done` holds, at most 5 s.
fn send_until(
    ns: &str,
    packet: &'static [u8],
    to: Ipv6Addr,
    hops: u32,
    done: impl Fn() -> bool + Send + 'static,
) -> bool {
    in_netns(ns, move || {
        let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).expect("raw socket");
        s.set_multicast_hops_v6(hops).unwrap();
        let index = nix::net::if_::if_nametoindex("eth0").expect("eth0");
        let to = SockAddr::from(SocketAddrV6::new(to, 0, 0, index));
        for _ in 0..25 {
            s.send_to(packet, &to).expect("send");
            if wait_until(Duration::from_millis(200), &done) {
                return true;
            }
        }
        false
    })
}

#[test]
fn off_link_solicitations_are_ignored_and_conflicting_advertisements_counted() {
    let mut lab = Lab::new("rapeers");
    let c = lab.client("c1", None, None);
    let metrics = RaMetrics::default();
    let _ra = start(&lab, "", metrics.clone());
    let all_routers: Ipv6Addr = "ff02::2".parse().unwrap();
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();

    // An RS that crossed a router (hop limit 64) is not answered.
    const RS: &[u8] = &[133, 0, 0, 0, 0, 0, 0, 0];
    let m = metrics.clone();
    let ignored = send_until(&c, RS, all_routers, 64, move || {
        m.ignored.get_or_create(&[("reason", "hop_limit")]).get() >= 1
    });
    assert!(ignored, "an RS with hop limit 64 was not refused");
    assert_eq!(metrics.solicitations.get(), 0);

    // A SLAAC-only router (M=0 O=0) on the same link is reported.
    const SLAAC_RA: &[u8] = &[134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    let m = metrics.clone();
    let reported = send_until(&c, SLAAC_RA, all_nodes, 255, move || m.conflicts.get() >= 1);
    assert!(reported, "a conflicting RA was not reported");
}
