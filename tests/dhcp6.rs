//! DHCPv6 in a lab namespace: the server runs in-process on the bridge; clients are real
//! `dhclient -6` and SOLICITs built with dhcproto (an encoder independent of ours), sent
//! over real UDP sockets from client namespaces.

mod common;

use common::dhcp6_client::*;
use common::{InProcess, Lab, cmd_in, wait_until};
use dhcproto::v6::{self, DhcpOption, OptionCode};
use sixboot::config::{self, Checks};
use sixboot::dhcp6::{self, Dhcp6Context, Dhcp6Metrics};
use sixboot::policy::Policy;
use sixboot::store::{SqliteStore, Store, Writer};
use std::net::Ipv6Addr;
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
