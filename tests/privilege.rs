//! Least privilege: `sixboot serve` runs as `nobody` with only the three capabilities
//! dist/sixboot.service grants (CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_NET_ADMIN), and
//! still answers firmware with a unicast OFFER (a neighbour entry: CAP_NET_ADMIN), a lease
//! and a TFTP file, sends router advertisements (a raw ICMPv6 socket: CAP_NET_RAW), leases
//! over DHCPv6 and serves HTTP, reading roots it cannot write.

mod common;

use common::dhcp4_client::*;
use common::dhcp6_client::{self as d6, duid_uuid, ipxe_extras};
use common::{Lab, cmd_in, exec_in};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const CAPS: &str = "+net_bind_service,+net_raw,+net_admin";
/// CapEff of a process holding exactly those: bits 10, 12 and 13.
const CAP_EFF: &str = "0000000000003400";

/// A line of /proc/PID/status, such as `Uid:`.
fn status(pid: u32, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

#[test]
fn serves_every_protocol_as_nobody_with_three_capabilities() {
    let mut lab = Lab::new("nobody");
    // The first pool address, so the client's kernel accepts the unicast OFFER.
    let c = lab.client("c", Some("192.168.1.10/24"), None);
    exec_in(
        &c,
        &["ip", "link", "set", "eth0", "address", "52:54:00:12:34:56"],
    );
    let nbp = lab.write("tftp/undionly.kpxe", b"bios nbp for nobody");
    lab.write("http/hello.txt", b"served as nobody");
    let cfg = lab.write(
        "sixboot.toml",
        r#"interface = "br0"
state_dir = "state"

[dhcp4]
subnet = "192.168.1.0/24"
pool = ["192.168.1.10", "192.168.1.254"]

[boot]
bios = "undionly.kpxe"

[tftp]
root = "tftp"

[ipv6]
prefix = "fd00:1::/64"
pool = ["fd00:1::100", "fd00:1::1ff"]

[http]
listen = ["[::]:8080"]
root = "http"
"#,
    );
    // As the unit's StateDirectory= does: the state folder is the service user's, the rest
    // (config, roots) root's and only readable.
    let state = lab.dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    nix::unistd::chown(&state, Some(nobody.uid), Some(nobody.gid)).unwrap();
    std::fs::set_permissions(lab.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    let pid = lab.start_sixboot_under(
        &[
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            &format!("--inh-caps={CAPS}"),
            &format!("--ambient-caps={CAPS}"),
        ],
        &cfg,
    );
    assert!(
        [
            "DHCPv4 listening",
            "tftp: listening",
            "DHCPv6 server listening",
            "HTTP listening"
        ]
        .iter()
        .all(|l| lab.wait_log(l, 30)),
        "sixboot did not start as nobody:\n{}",
        lab.log()
    );
    assert_eq!(
        status(pid, "Uid:").split_whitespace().collect::<Vec<_>>(),
        ["65534"; 4]
    );
    assert_eq!(status(pid, "CapEff:"), CAP_EFF);

    let s = client_socket(&c, Ipv4Addr::UNSPECIFIED, 68);
    let discover = packet(MAC, false, Ipv4Addr::UNSPECIFIED, &firmware_opts(1, 0, &[]));
    let offer = ask(&s, BCAST, &discover, 10).expect("no unicast OFFER");
    assert_eq!(decode(&offer).1, Ipv4Addr::new(192, 168, 1, 10));
    let neigh =
        String::from_utf8(lab.exec_ok(&["ip", "neigh", "show", "192.168.1.10"]).stdout).unwrap();
    assert!(
        neigh.contains("52:54:00:12:34:56"),
        "no neighbour entry: {neigh}\n{}",
        lab.log()
    );
    let (addr, file) = dora(&s, MAC, 0);
    assert_eq!(
        (addr, file.as_str()),
        (Ipv4Addr::new(192, 168, 1, 10), "undionly.kpxe")
    );

    let got = lab.dir.path().join("got");
    let out = cmd_in(&c, "tftp")
        .args([
            "-4",
            "-m",
            "binary",
            "192.168.1.1",
            "-c",
            "get",
            "undionly.kpxe",
        ])
        .arg(&got)
        .output()
        .unwrap();
    assert_eq!(
        std::fs::read(&got).ok(),
        std::fs::read(&nbp).ok(),
        "TFTP get failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ra = cmd_in(&c, "timeout")
        .args(["20", "rdisc6", "-1", "-r", "5", "-w", "2000", "eth0"])
        .output()
        .unwrap();
    let ra = String::from_utf8_lossy(&ra.stdout);
    assert!(ra.contains("fd00:1::/64"), "no RA: {ra}\n{}", lab.log());
    let reply = d6::lease(&c, &duid_uuid(), 1, ipxe_extras());
    assert_eq!(
        d6::boot_url(&reply).as_deref(),
        Some("http://[fd00:1::1]:8080/boot.ipxe")
    );
    let out = cmd_in(&c, "curl")
        .args([
            "-sS",
            "-g",
            "--max-time",
            "20",
            "http://[fd00:1::1]:8080/hello.txt",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "served as nobody");

    let db = std::fs::metadata(state.join("leases.sqlite")).expect("lease store made");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&db),
        nobody.uid.as_raw()
    );
    let log = lab.log();
    assert!(!log.contains("CAP_NET_ADMIN"), "{log}");
    // The roots belong to root: nothing to warn about.
    assert!(!log.contains("sixboot can write"), "{log}");
}

/// The values of `key=` lines in the unit, space-separated values split.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .flat_map(|v| v.split_whitespace().map(str::to_string))
        .collect()
}

#[test]
fn the_unit_grants_the_tested_capabilities_and_verifies() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/sixboot.service");
    let unit = std::fs::read_to_string(path).unwrap();
    let tested: Vec<String> = CAPS
        .split(',')
        .map(|c| format!("CAP_{}", c.trim_start_matches('+').to_uppercase()))
        .collect();
    for key in ["AmbientCapabilities", "CapabilityBoundingSet"] {
        assert_eq!(unit_values(&unit, key), tested, "{key}");
    }
    for (key, want) in [
        ("User", "sixboot"),
        ("ProtectSystem", "strict"),
        ("StateDirectory", "sixboot"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "yes"),
    ] {
        assert_eq!(unit_values(&unit, key), [want], "{key}");
    }
    assert!(
        unit_values(&unit, "ReadWritePaths").is_empty(),
        "state only under StateDirectory="
    );
    // systemd-analyze checks the unit against the real unit set, in a scratch root that
    // holds the binary where the unit expects it.
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("usr/local/bin");
    let units = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&units).unwrap();
    std::fs::create_dir_all(root.path().join("usr/lib/systemd")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_sixboot"), bin.join("sixboot")).unwrap();
    std::fs::copy(path, units.join("sixboot.service")).unwrap();
    common::run(
        std::process::Command::new("cp")
            .args(["-a", "/lib/systemd/system"])
            .arg(root.path().join("usr/lib/systemd")),
    );
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .arg(units.join("sixboot.service"))
        .output()
        .expect("systemd-analyze (scripts/deps.sh test installs systemd)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
