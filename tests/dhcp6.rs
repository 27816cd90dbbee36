//! DHCPv6 in a lab namespace: the server runs in-process on the bridge; clients are real
//! `dhclient -6` and SOLICITs built with dhcproto (an encoder independent of ours), sent
//! over real UDP sockets from client namespaces.

mod common;

use common::{InProcess, Lab, cmd_in, in_netns, wait_until};
use dhcproto::v6::{self, DhcpOption, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};
use sixboot::config::{self, Checks};
use sixboot::dhcp6::{self, Dhcp6Context, Dhcp6Metrics};
use sixboot::policy::Policy;
use sixboot::store::{SqliteStore, Store, Writer};
use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const CONFIG: &str = include_str!("common/lab-v6.toml");

fn config(lab: &Lab) -> config::Config {
    let path = lab.write("sixboot.toml", CONFIG);
    config::load(&path, Checks::FileOnly).expect("lab config loads")
}

/// Starts the DHCPv6 server in the lab's namespace, on the config's state dir.
fn start(lab: &Lab, metrics: Dhcp6Metrics) -> InProcess<std::io::Result<()>> {
    // The server's log shows with a failing test's output.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("sixboot=debug")
        .try_init();
    let cfg = config(lab);
    InProcess::start(&lab.ns, move |shutdown| async move {
        let mut store = SqliteStore::open(&cfg.state_dir).expect("open store");
        let snap = store.load().expect("load store");
        let ctx = Dhcp6Context {
            cfg: cfg.ipv6.clone().expect("[ipv6]"),
            policy: Arc::new(Policy::new(&cfg)),
            interface: cfg.interface.clone(),
            writer: Writer::start(Box::new(store)),
            leases: snap.leases6,
            server_duid: dhcp6::server_duid(&snap.meta),
            metrics,
            timeline: Default::default(),
        };
        dhcp6::run(ctx, shutdown).await
    })
}

/// A DUID-UUID with the all-zero UUID QEMU gives without `-uuid`.
fn duid_uuid() -> Vec<u8> {
    let mut d = vec![0, 4];
    d.extend_from_slice(&[0; 16]);
    d
}

fn duid_llt(mac_last: u8) -> Vec<u8> {
    vec![
        0, 1, 0, 1, 0x2e, 0xc1, 0x22, 0x33, 0x52, 0x54, 0, 0x12, 0x34, mac_last,
    ]
}

/// A client message as a firmware would build it.
fn message(
    t: v6::MessageType,
    duid: &[u8],
    iaid: u32,
    extra: impl IntoIterator<Item = DhcpOption>,
) -> v6::Message {
    let mut m = v6::Message::new_with_id(t, [1, 2, 3]);
    let o = m.opts_mut();
    o.insert(DhcpOption::ClientId(duid.to_vec()));
    o.insert(DhcpOption::ElapsedTime(0));
    o.insert(DhcpOption::IANA(v6::IANA {
        id: iaid,
        t1: 0,
        t2: 0,
        opts: v6::DhcpOptions::new(),
    }));
    for e in extra {
        o.insert(e);
    }
    m
}

/// Option 15 or 16 with one class instance, written raw: dhcproto 0.15 encodes these two
/// with the instance count as the option length.
fn class(code: OptionCode, enterprise: Option<u32>, data: &[u8]) -> DhcpOption {
    let mut v = enterprise
        .map(u32::to_be_bytes)
        .unwrap_or_default()
        .to_vec();
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    DhcpOption::Unknown(v6::UnknownOption::new(code, v))
}

fn ipxe_extras() -> Vec<DhcpOption> {
    vec![
        DhcpOption::ORO(v6::ORO {
            opts: vec![
                OptionCode::DomainNameServers,
                OptionCode::DomainSearchList,
                OptionCode::OptBootfileUrl,
                OptionCode::OptBootfileParam,
            ],
        }),
        class(
            OptionCode::VendorClass,
            Some(343),
            b"PXEClient:Arch:00007:UNDI:003010",
        ),
        class(OptionCode::UserClass, None, b"iPXE"),
    ]
}

fn edk2_extras() -> Vec<DhcpOption> {
    vec![
        DhcpOption::ORO(v6::ORO {
            opts: vec![
                OptionCode::OptBootfileUrl,
                OptionCode::OptBootfileParam,
                OptionCode::VendorClass,
            ],
        }),
        DhcpOption::ClientArchType(vec![dhcproto::v4::Architecture::from(7u16)]),
        class(
            OptionCode::VendorClass,
            Some(343),
            b"PXEClient:Arch:00007:UNDI:003016",
        ),
    ]
}

/// Sends `m` to ff02::1:2 from port 546 in namespace `ns` and returns the first answer
/// with its transaction id; retries (the server may still be starting), 8 tries of 1 s.
fn exchange(ns: &str, m: &v6::Message) -> v6::Message {
    let bytes = m.to_vec().expect("encode");
    let xid = m.xid();
    in_netns(ns, move || {
        let sock = UdpSocket::bind("[::]:546").expect("bind client port");
        sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let index = nix::net::if_::if_nametoindex("eth0").expect("eth0");
        let to = SocketAddrV6::new("ff02::1:2".parse().unwrap(), 547, 0, index);
        let mut buf = [0u8; 2048];
        for _ in 0..8 {
            sock.send_to(&bytes, to).expect("send");
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                let r = v6::Message::decode(&mut Decoder::new(&buf[..n])).expect("decode reply");
                if r.xid() == xid {
                    return r;
                }
            }
        }
        panic!("no DHCPv6 answer in 8 s");
    })
}

fn boot_url(m: &v6::Message) -> Option<String> {
    match m.opts().get(OptionCode::OptBootfileUrl) {
        Some(DhcpOption::Unknown(u)) => Some(String::from_utf8_lossy(u.data()).into_owned()),
        _ => None,
    }
}

fn address(m: &v6::Message) -> Ipv6Addr {
    let Some(DhcpOption::IANA(ia)) = m.opts().get(OptionCode::IANA) else {
        panic!("no IA_NA in {m}")
    };
    let Some(DhcpOption::IAAddr(a)) = ia.opts.get(OptionCode::IAAddr) else {
        panic!("no address in {m}")
    };
    a.addr
}

fn server_id(m: &v6::Message) -> Vec<u8> {
    match m.opts().get(OptionCode::ServerId) {
        Some(DhcpOption::ServerId(s)) => s.clone(),
        _ => panic!("no server id in {m}"),
    }
}

/// Solicit, then Request what was advertised; returns the Reply.
fn lease(ns: &str, duid: &[u8], iaid: u32, extras: Vec<DhcpOption>) -> v6::Message {
    let adv = exchange(
        ns,
        &message(v6::MessageType::Solicit, duid, iaid, extras.clone()),
    );
    assert_eq!(adv.msg_type(), v6::MessageType::Advertise);
    let mut req = message(v6::MessageType::Request, duid, iaid, extras);
    let mut ia_opts = v6::DhcpOptions::new();
    ia_opts.insert(DhcpOption::IAAddr(v6::IAAddr {
        addr: address(&adv),
        preferred_life: 0,
        valid_life: 0,
        opts: v6::DhcpOptions::new(),
    }));
    req.opts_mut().insert(DhcpOption::IANA(v6::IANA {
        id: iaid,
        t1: 0,
        t2: 0,
        opts: ia_opts,
    }));
    req.opts_mut().insert(DhcpOption::ServerId(server_id(&adv)));
    let reply = exchange(ns, &req);
    assert_eq!(reply.msg_type(), v6::MessageType::Reply);
    reply
}

fn in_pool(a: Ipv6Addr) -> bool {
    let a = u128::from(a);
    (u128::from("fd00:1::100".parse::<Ipv6Addr>().unwrap())
        ..=u128::from("fd00:1::1ff".parse::<Ipv6Addr>().unwrap()))
        .contains(&a)
}

#[test]
fn crafted_ipxe_edk2_and_http_solicits_get_their_boot_urls() {
    let mut lab = Lab::new("dhcp6urls");
    let c = lab.client("c1", None, None);
    let _server = start(&lab, Dhcp6Metrics::default());

    let reply = lease(&c, &duid_uuid(), 0x5634_1200, ipxe_extras());
    assert_eq!(
        boot_url(&reply).as_deref(),
        Some("http://[fd00:1::1]:8080/boot.ipxe")
    );
    assert!(in_pool(address(&reply)));

    // EDK2 PXEv6: first without a vendor class (address only), then with it.
    let first = exchange(
        &c,
        &message(v6::MessageType::Solicit, &duid_llt(0x57), 9, []),
    );
    assert_eq!(boot_url(&first), None);
    let adv = exchange(
        &c,
        &message(v6::MessageType::Solicit, &duid_llt(0x57), 9, edk2_extras()),
    );
    assert_eq!(
        boot_url(&adv).as_deref(),
        Some("tftp://[fd00:1::1]/snponly.efi")
    );
    assert_eq!(address(&adv), address(&first));

    let http = exchange(
        &c,
        &message(
            v6::MessageType::Solicit,
            &duid_llt(0x58),
            10,
            [
                DhcpOption::ClientArchType(vec![dhcproto::v4::Architecture::from(16u16)]),
                class(
                    OptionCode::VendorClass,
                    Some(343),
                    b"HTTPClient:Arch:00016:UNDI:003001",
                ),
            ],
        ),
    );
    assert_eq!(
        boot_url(&http).as_deref(),
        Some("http://[fd00:1::1]:8080/boot/snponly.efi")
    );
    assert!(matches!(
        http.opts().get(OptionCode::VendorClass),
        Some(DhcpOption::VendorClass(v)) if v.data == [b"HTTPClient".to_vec()]
    ));
}

#[test]
fn dhclient_gets_an_address_from_the_pool_and_no_boot_url() {
    let mut lab = Lab::new("dhcp6dhclient");
    let c = lab.client("c1", None, None);
    let metrics = Dhcp6Metrics::default();
    let _server = start(&lab, metrics.clone());
    let leases = lab.dir.path().join("dhclient6.leases");
    let pid = lab.dir.path().join("dhclient6.pid");
    let mut dhclient = cmd_in(&c, "timeout")
        .args([
            "30",
            "dhclient",
            "-6",
            "-1",
            "-d",
            "-v",
            "-sf",
            "/bin/true",
            "-lf",
        ])
        .arg(&leases)
        .arg("-pf")
        .arg(&pid)
        .arg("eth0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start dhclient");
    let got = wait_until(Duration::from_secs(25), || {
        std::fs::read_to_string(&leases).is_ok_and(|l| l.contains("iaaddr"))
    });
    // `timeout` passes SIGTERM on to dhclient.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &dhclient.id().to_string()])
        .status();
    let _ = dhclient.wait();
    let text = std::fs::read_to_string(&leases).unwrap_or_default();
    assert!(got, "dhclient got no lease:\n{text}");
    let addr: Ipv6Addr = text
        .split("iaaddr ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("an iaaddr in the lease file");
    assert!(in_pool(addr), "{addr} is outside the pool");
    assert!(text.contains("fd00:1::53"), "no DNS server in:\n{text}");
    assert!(
        !text.contains("snponly") && !text.contains("boot.ipxe"),
        "{text}"
    );
    let replied_os = metrics
        .replies
        .get_or_create(&[("type", "request"), ("client", "os")])
        .get();
    assert!(replied_os >= 1, "no Reply to an OS client was counted");
}

#[test]
fn leases_and_server_duid_survive_a_restart() {
    let mut lab = Lab::new("dhcp6restart");
    let c = lab.client("c1", None, None);
    let server = start(&lab, Dhcp6Metrics::default());
    let first = lease(&c, &duid_uuid(), 1, ipxe_extras());
    server.stop().expect("server stops cleanly");

    let _server = start(&lab, Dhcp6Metrics::default());
    // Another machine first: it must not be given the stored lease.
    let other = exchange(
        &c,
        &message(v6::MessageType::Solicit, &duid_llt(0x61), 1, []),
    );
    assert_ne!(address(&other), address(&first));
    let again = exchange(
        &c,
        &message(v6::MessageType::Solicit, &duid_uuid(), 1, ipxe_extras()),
    );
    assert_eq!(address(&again), address(&first));
    assert_eq!(server_id(&again), server_id(&first));
    let state: PathBuf = config(&lab).state_dir;
    assert!(state.join("leases.sqlite").is_file());
}

#[test]
fn sixboot_serve_answers_dhcpv6_and_router_solicitations() {
    let mut lab = Lab::new("dhcp6serve");
    let c = lab.client("c1", None, None);
    lab.write("tftp/undionly.kpxe", "x");
    lab.write("tftp/snponly.efi", "x");
    lab.write("http/.keep", "");
    let path = lab.write("sixboot.toml", CONFIG);
    lab.start_sixboot(&path);
    let reply = lease(&c, &duid_uuid(), 7, ipxe_extras());
    assert_eq!(
        boot_url(&reply).as_deref(),
        Some("http://[fd00:1::1]:8080/boot.ipxe")
    );
    let out = cmd_in(&c, "timeout")
        .args(["20", "rdisc6", "-1", "-r", "5", "-w", "2000", "eth0"])
        .output()
        .expect("run rdisc6");
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(
        seen.contains("fd00:1::/64"),
        "rdisc6 saw no RA from serve: {seen}"
    );
    assert!(lab.wait_log("DHCPv6 reply", 5), "no reply in the log");
    // The machine's timeline shows its RA and DHCPv6 stages under its MAC.
    let log = lab.log();
    let stage = |p: &str| {
        log.lines()
            .any(|l| l.contains("sixboot::timeline") && l.contains(&format!("protocol={p} ")))
    };
    assert!(
        stage("dhcp6") && stage("ra"),
        "no RA/DHCPv6 timeline entries:\n{log}"
    );
}
