//! A whole `sixboot serve` in a lab (DHCPv4, TFTP, RA, DHCPv6, HTTP on one bridge), and
//! the ways a test looks inside it from outside: `/metrics` over HTTP, the process's
//! resident memory, and the kernel's per-namespace drop counters.

use super::{Lab, cmd_in, exec_in, wait_until};
use std::time::Duration;

/// The client's addresses: `eth0` has both, and the TFTP flood adds more IPv4 ones.
pub const CLIENT_V4: &str = "192.168.1.20";
pub const CLIENT_V6: &str = "fd00:1::20";
/// Where `/metrics` and `/healthz` are asked.
pub const HTTP_BASE: &str = "http://192.168.1.1:8080";

/// A running server and the client namespace next to it.
pub struct Served {
    pub lab: Lab,
    pub client: String,
    pub pid: u32,
}

/// The lab's config: every protocol on, a firmware file in the TFTP root. `tftp` and `http`
/// are added to their tables.
fn config(lab: &Lab, tftp: &str, http: &str) -> std::path::PathBuf {
    lab.write("tftp/undionly.kpxe", pattern(3000));
    lab.write("http/hello.txt", b"hello");
    lab.write(
        "sixboot.toml",
        format!(
            r#"interface = "br0"
state_dir = "state"

[dhcp4]
subnet = "192.168.1.0/24"
pool = ["192.168.1.100", "192.168.1.254"]

[boot]
bios = "undionly.kpxe"

[tftp]
root = "tftp"
{tftp}

[ipv6]
prefix = "fd00:1::/64"
pool = ["fd00:1::100", "fd00:1::1ff"]

[http]
listen = ["192.168.1.1:8080", "[fd00:1::1]:8080"]
root = "http"
{http}
"#
        ),
    )
}

/// Deterministic bytes that are not all alike, so a short or shifted download shows.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

impl Served {
    /// Starts sixboot with the lab config and waits until DHCPv4, TFTP, DHCPv6 and HTTP
    /// all say they listen.
    pub fn start(test: &str, tftp: &str, http: &str) -> Served {
        let mut lab = Lab::new(test);
        let client = lab.client(
            "c",
            Some(&format!("{CLIENT_V4}/24")),
            Some(&format!("{CLIENT_V6}/64")),
        );
        let cfg = config(&lab, tftp, http);
        let pid = lab.start_sixboot(&cfg);
        for needle in [
            "DHCPv4 listening",
            "tftp: listening",
            "DHCPv6 server listening",
            "HTTP listening",
        ] {
            assert!(lab.wait_log(needle, 20), "no `{needle}`:\n{}", lab.log());
        }
        let s = Served { lab, client, pid };
        assert!(
            wait_until(Duration::from_secs(10), || s.healthz()),
            "no /healthz"
        );
        s
    }

    /// `curl` from the client namespace; the body, or `None` when curl failed.
    pub fn curl(&self, path: &str, max_secs: u32) -> Option<String> {
        let out = cmd_in(&self.client, "curl")
            .args(["-sSf", "--max-time", &max_secs.to_string()])
            .arg(format!("{HTTP_BASE}{path}"))
            .output()
            .expect("run curl");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A firmware DISCOVER from a fresh socket gets an OFFER.
    pub fn firmware_is_served(&self) {
        use super::dhcp4_client::*;
        let sock = client_socket(&self.client, std::net::Ipv4Addr::UNSPECIFIED, 68);
        let d = packet(
            [0x52, 0x54, 0, 0x77, 0, 1],
            true,
            std::net::Ipv4Addr::UNSPECIFIED,
            &firmware_opts(1, 0, &[]),
        );
        let r = ask(&sock, BCAST, &d, 5).expect("valid firmware DISCOVER not answered");
        assert_eq!(decode(&r).0, 2, "not an OFFER");
    }

    pub fn healthz(&self) -> bool {
        self.curl("/healthz", 5).is_some_and(|b| b.contains("ok"))
    }

    /// The Prometheus text of `/metrics`.
    pub fn metrics(&self) -> String {
        self.curl("/metrics", 20).expect("GET /metrics")
    }

    /// Resident memory of the server, in KiB (VmRSS).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("sixboot is not running");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Stops the server with SIGTERM; whether it exited cleanly (within the lab's bound).
    pub fn stop_cleanly(&mut self) -> bool {
        self.lab.stop(self.pid).is_some_and(|st| st.success())
    }

    /// Whether the server process still runs (not a zombie).
    pub fn alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .is_ok_and(|s| !s.contains(") Z "))
    }

    /// UDP datagrams the kernel dropped in the server's namespace because a socket's
    /// receive buffer was full (`Udp: RcvbufErrors` of /proc/net/snmp).
    pub fn udp_rcvbuf_errors(&self) -> u64 {
        let out = exec_in(&self.lab.ns, &["cat", "/proc/net/snmp"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
        let (names, values) = (udp.next().unwrap(), udp.next().unwrap());
        let at = names
            .split_whitespace()
            .position(|n| n == "RcvbufErrors")
            .expect("RcvbufErrors column");
        values.split_whitespace().nth(at).unwrap().parse().unwrap()
    }

    /// Bytes waiting in the receive queues of the server's IPv4 UDP sockets on `port`
    /// (`rx_queue` of /proc/PID/net/udp, which shows the process's own namespace).
    pub fn udp_rx_queue(&self, port: u16) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/net/udp", self.pid))
            .expect("sixboot is not running");
        let port = format!(":{port:04X}");
        text.lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f[1].ends_with(&port)
                    .then(|| u64::from_str_radix(f[4].split(':').nth(1)?, 16).ok())?
            })
            .sum()
    }

    /// Packets dropped on the server's raw ICMPv6 sockets (the `drops` column of
    /// /proc/net/raw6), all sockets together.
    pub fn raw6_drops(&self) -> u64 {
        let out = exec_in(&self.lab.ns, &["cat", "/proc/net/raw6"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum()
    }
}

/// The value of one series in Prometheus text, e.g.
/// `sixboot_dhcp4_ignored_total{reason="ipxe"}`; 0 when absent.
pub fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |v| {
            v.split_whitespace()
                .next()
                .and_then(|n| n.parse::<f64>().ok())
                .expect("a number") as u64
        })
}

/// A raw ICMPv6 socket on `ns`'s eth0 that sends multicast with `hop_limit` (RS and RA
/// must carry 255), and eth0's interface index for scoped addresses.
pub fn icmpv6_socket(ns: &str, hop_limit: u32) -> (socket2::Socket, u32) {
    use socket2::{Domain, Protocol, Socket, Type};
    super::in_netns(ns, move || {
        let ifindex = nix::net::if_::if_nametoindex("eth0").unwrap();
        let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).unwrap();
        s.bind_device(Some(b"eth0")).unwrap();
        s.set_multicast_if_v6(ifindex).unwrap();
        s.set_multicast_hops_v6(hop_limit).unwrap();
        s.set_nonblocking(true).unwrap();
        (s, ifindex)
    })
}
