//! TFTP against real clients (tftp-hpa, curl, atftp) over IPv4 and IPv6, plus raw-socket
//! clients that play firmware: EDK2's tsize probe, a stale port, link-local addresses.
//!
//! The server runs in-process on a thread inside the lab's server namespace; files live on
//! tmpfs so the 100 MiB transfers (which cross block-number rollover) measure the server.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{Lab, SERVER_V4, SERVER_V6, cmd_in, exec_in, in_netns, wait_until};
use prometheus_client::registry::Registry;
use sixboot::tftp::{TftpConfig, TftpMetrics};
use sixboot::timeline::{Observed, Timeline};
use tokio::sync::{mpsc, watch};

const MIB: usize = 1 << 20;
/// 100 MiB: 204 800 blocks at blksize 512 and 71 431 at 1468, so both roll over.
const BIG: usize = 100 * MIB;
/// Sizes around block boundaries for the blksizes the clients use (512; 1468 on IPv4 and
/// its MTU clamp 1448 on IPv6): empty, exactly one block, exactly N blocks, one byte more.
const SIZES: &[usize] = &[
    0,
    512,
    1448,
    1468,
    512 * 16,
    1448 * 16,
    1468 * 16,
    1468 * 16 + 1,
];

/// The TFTP server running inside a lab's server namespace, stopped on drop.
struct Served {
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    metrics: TftpMetrics,
    /// The machine timeline the server reports to, and what it passed on.
    timeline: Arc<Timeline>,
    observed: Mutex<mpsc::Receiver<Observed>>,
}

impl Served {
    fn start(lab: &Lab, cfg: TftpConfig) -> Served {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "sixboot=info".into()),
            )
            .with_test_writer()
            .try_init();
        let (stop, rx) = watch::channel(false);
        let metrics = TftpMetrics::default();
        let m = metrics.clone();
        let (tx, observed) = mpsc::channel(1024);
        let timeline = Arc::new(Timeline::with_sink(tx, Default::default()));
        let t = timeline.clone();
        let path = format!("/run/netns/{}", lab.ns);
        let thread = std::thread::spawn(move || {
            let ns = std::fs::File::open(&path)?;
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(sixboot::tftp::run(cfg, "br0".into(), m, t, rx))
        });
        let served = Served {
            stop,
            thread: Some(thread),
            metrics,
            timeline,
            observed: Mutex::new(observed),
        };
        let listening = wait_until(Duration::from_secs(10), || {
            let out = exec_in(&lab.ns, &["ss", "-Hlun", "sport = :69"]);
            String::from_utf8_lossy(&out.stdout).lines().count() >= 2
        });
        assert!(listening, "tftp server did not start listening");
        served
    }

    /// The counters as Prometheus text, for asserting on.
    fn metrics_text(&self) -> String {
        let mut r = Registry::default();
        self.metrics.register(&mut r);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        out
    }

    /// The first `n` stages put on known machines' timelines, as "stage detail", waiting
    /// for them at most 5 s (the server counts a transfer a moment before it reports it).
    fn stages(&self, n: usize) -> Vec<String> {
        let mut rx = self.observed.lock().unwrap();
        let mut got = Vec::new();
        wait_until(Duration::from_secs(5), || {
            while let Ok(o) = rx.try_recv() {
                if let Observed::Stage { event, .. } = o {
                    got.push(format!("{} {}", event.stage, event.detail));
                }
            }
            got.len() >= n
        });
        got
    }

    /// Waits (at most 5 s) until the counters contain every `needle`, and returns them.
    /// The client finishes as soon as it sends its last ACK; the server counts the
    /// transfer when that ACK arrives, a moment later.
    fn metrics_with(&self, needles: &[&str]) -> String {
        let mut text = String::new();
        let ok = wait_until(Duration::from_secs(5), || {
            text = self.metrics_text();
            needles.iter().all(|n| text.contains(n))
        });
        assert!(ok, "metrics never showed {needles:?}:\n{text}");
        text
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let r = t.join().expect("tftp server thread panicked");
            if !std::thread::panicking() {
                r.expect("tftp server failed");
            }
        }
    }
}

/// Deterministic, incompressible-looking bytes (xorshift), different per `seed`.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A lab with one client (`eth0`: 192.168.1.10, fd00:1::10), a served root on tmpfs and a
/// tmpfs folder for downloads.
struct Bench {
    served: Served,
    client: String,
    root: tempfile::TempDir,
    downloads: tempfile::TempDir,
    lab: Lab,
}

impl Bench {
    fn new(test: &str, cfg: impl FnOnce(PathBuf) -> TftpConfig) -> Bench {
        let mut lab = Lab::new(test);
        let client = lab.client("c", Some("192.168.1.10/24"), Some("fd00:1::10/64"));
        let root = tempfile::tempdir_in("/dev/shm").unwrap();
        let downloads = tempfile::tempdir_in("/dev/shm").unwrap();
        let served = Served::start(&lab, cfg(root.path().to_path_buf()));
        Bench {
            served,
            client,
            root,
            downloads,
            lab,
        }
    }

    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.root.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        p
    }

    /// The standard files: one per size in `SIZES`, plus `big.bin` if asked.
    fn files(&self, big: bool) -> Vec<String> {
        let mut names = Vec::new();
        for (i, &n) in SIZES.iter().enumerate() {
            let name = format!("f{n}.bin");
            self.file(&name, &pattern(n, i as u64));
            names.push(name);
        }
        if big {
            self.file("big.bin", &pattern(BIG, 99));
            names.push("big.bin".into());
        }
        names
    }

    /// Runs a client command (bounded by `timeout`) in the client namespace.
    fn client_cmd(&self, args: &[&str]) -> std::process::Output {
        let mut c = cmd_in(&self.client, "timeout");
        c.arg("300").args(args).current_dir(self.downloads.path());
        c.output().expect("spawn client")
    }

    /// Asserts the download `local` is byte-identical to the served `name`, with cmp.
    fn assert_same(&self, name: &str, local: &str, out: &std::process::Output) {
        let st = Command::new("cmp")
            .arg(self.root.path().join(name))
            .arg(self.downloads.path().join(local))
            .status()
            .unwrap();
        assert!(
            st.success(),
            "{name} differs; client said: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_file(self.downloads.path().join(local));
    }
}

fn host(v6: bool) -> &'static str {
    if v6 { SERVER_V6 } else { SERVER_V4 }
}

fn tftp_hpa(v6: bool) {
    let b = Bench::new(if v6 { "hpa6" } else { "hpa4" }, TftpConfig::new);
    for name in b.files(true) {
        let fam = if v6 { "-6" } else { "-4" };
        let out = b.client_cmd(&[
            "tftp",
            fam,
            "-v",
            "-m",
            "binary",
            host(v6),
            "-c",
            "get",
            &name,
            "got",
        ]);
        b.assert_same(&name, "got", &out);
    }
    b.served.metrics_with(&["outcome=\"complete\"} 9"]);
}

#[test]
fn tftp_hpa_ipv4() {
    tftp_hpa(false);
}

#[test]
fn tftp_hpa_ipv6() {
    tftp_hpa(true);
}

fn curl(v6: bool) {
    let b = Bench::new(if v6 { "curl6" } else { "curl4" }, TftpConfig::new);
    let host = if v6 {
        format!("[{SERVER_V6}]")
    } else {
        SERVER_V4.to_string()
    };
    for name in b.files(true) {
        let url = format!("tftp://{host}/{name}");
        let out = b.client_cmd(&["curl", "-sS", "--tftp-blksize", "1468", "-o", "got", &url]);
        b.assert_same(&name, "got", &out);
    }
}

#[test]
fn curl_ipv4() {
    curl(false);
}

#[test]
fn curl_ipv6() {
    curl(true);
}

fn atftp(v6: bool) {
    let b = Bench::new(if v6 { "atftp6" } else { "atftp4" }, TftpConfig::new);
    for name in b.files(true) {
        let out = b.client_cmd(&[
            "atftp",
            "--option",
            "blksize 1468",
            "--option",
            "windowsize 16",
            "-g",
            "-r",
            &name,
            "-l",
            "got",
            host(v6),
        ]);
        b.assert_same(&name, "got", &out);
    }
}

#[test]
fn atftp_windowsize_ipv4() {
    atftp(false);
}

#[test]
fn atftp_windowsize_ipv6() {
    atftp(true);
}

/// Names as PXE ROMs send them (leading `/`, `\`), and netascii mode.
#[test]
fn name_forms_and_netascii() {
    let b = Bench::new("names", TftpConfig::new);
    b.file("efi/boot/bootx64.efi", &pattern(3000, 1));
    b.file("text.txt", b"line one\nline two\r\nbare\rcr\n");
    for name in [
        "/efi/boot/bootx64.efi",
        "\\efi\\boot\\bootx64.efi",
        "efi//boot/./bootx64.efi",
    ] {
        let out = b.client_cmd(&[
            "tftp", "-v", "-m", "binary", SERVER_V4, "-c", "get", name, "got",
        ]);
        b.assert_same("efi/boot/bootx64.efi", "got", &out);
    }
    let out = b.client_cmd(&[
        "tftp", "-v", "-m", "netascii", SERVER_V4, "-c", "get", "text.txt", "got",
    ]);
    b.assert_same("text.txt", "got", &out);
}

/// A raw client for byte-level scenarios, run inside the client namespace.
struct Raw {
    sock: UdpSocket,
}

impl Raw {
    fn new(bind: &str) -> Raw {
        let sock = UdpSocket::bind(bind).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        Raw { sock }
    }

    fn send(&self, to: SocketAddr, bytes: &[u8]) {
        self.sock.send_to(bytes, to).unwrap();
    }

    fn recv(&self) -> (Vec<u8>, SocketAddr) {
        let mut buf = vec![0u8; 70_000];
        let (n, from) = self.sock.recv_from(&mut buf).expect("no reply within 3 s");
        buf.truncate(n);
        (buf, from)
    }

    /// Sends `rrq` to `server`, then acknowledges every block; returns the file and the TID.
    fn fetch(&self, server: SocketAddr, rrq: &[u8], blksize: usize) -> (Vec<u8>, SocketAddr) {
        self.send(server, rrq);
        let (first, tid) = self.recv();
        let mut data = Vec::new();
        let mut packet = first;
        for _ in 0..1_000_000 {
            match packet[..2] {
                [0, 6] => self.send(tid, &[0, 4, 0, 0]),
                [0, 3] => {
                    data.extend_from_slice(&packet[4..]);
                    self.send(tid, &[0, 4, packet[2], packet[3]]);
                    if packet.len() - 4 < blksize {
                        return (data, tid);
                    }
                }
                _ => panic!("unexpected packet {packet:?}"),
            }
            let (p, from) = self.recv();
            assert_eq!(from, tid, "reply from a different TID");
            packet = p;
        }
        panic!("transfer did not end");
    }
}

fn error_code(packet: &[u8]) -> u16 {
    assert_eq!(packet[..2], [0, 5], "expected ERROR, got {packet:?}");
    u16::from_be_bytes([packet[2], packet[3]])
}

/// EDK2: RRQ with tsize=0, OACK, ERROR from the client, then the real RRQ from the same
/// port. The probe must end at once (no zombie holding the per-client slot), and the fetch
/// must work.
#[test]
fn edk2_tsize_probe_then_fetch_from_same_port() {
    let b = Bench::new("edk2", |root| TftpConfig {
        max_per_client: 1,
        ..TftpConfig::new(root)
    });
    let data = pattern(200_000, 5);
    b.file("snponly.efi", &data);
    let server: SocketAddr = format!("[{SERVER_V6}]:69").parse().unwrap();
    // As if DHCPv6 had tied the client's address to its MAC: the transfers reach its timeline.
    let mac = [0x52, 0x54, 0, 0xed, 0x4b, 0x02];
    b.served.timeline.learn("fd00:1::10".parse().unwrap(), mac);
    let got = in_netns(&b.client, move || {
        let raw = Raw::new("[fd00:1::10]:0");
        let rrq = b"\x00\x01snponly.efi\x00octet\x00tsize\x000\x00blksize\x001448\x00";
        raw.send(server, rrq);
        let (oack, tid) = raw.recv();
        assert_eq!(oack, b"\x00\x06blksize\x001448\x00tsize\x00200000\x00");
        raw.send(tid, b"\x00\x05\x00\x08tsize probe done\x00");
        // Same port again, at once; max_per_client = 1, so a zombie would refuse this.
        raw.fetch(server, rrq, 1448).0
    });
    assert!(got == data, "fetched file differs");
    b.served.metrics_with(&[
        "tftp_transfers_total{family=\"ipv6\",outcome=\"client_error\"} 1",
        "tftp_transfers_total{family=\"ipv6\",outcome=\"complete\"} 1",
    ]);
    // The probe reads as the client's own abort, not as a failure, then the fetch as served.
    assert_eq!(
        b.served.stages(2),
        [
            "ended snponly.efi aborted by the client (error 8)",
            "served snponly.efi 200000 bytes"
        ]
    );
}

/// A client that vanished after the OACK and restarts from the same port replaces its
/// stale transfer instead of being refused or left waiting.
#[test]
fn new_request_replaces_stale_transfer() {
    let b = Bench::new("stale", |root| TftpConfig {
        max_per_client: 1,
        ..TftpConfig::new(root)
    });
    let data = pattern(5000, 6);
    b.file("undionly.kpxe", &data);
    let server: SocketAddr = format!("{SERVER_V4}:69").parse().unwrap();
    let got = in_netns(&b.client, move || {
        let raw = Raw::new("192.168.1.10:0");
        let rrq = b"\x00\x01undionly.kpxe\x00octet\x00blksize\x001024\x00";
        raw.send(server, rrq);
        let (_oack, stale_tid) = raw.recv();
        let (got, tid) = raw.fetch(server, rrq, 1024);
        assert_ne!(tid, stale_tid);
        got
    });
    assert!(got == data, "fetched file differs");
    b.served.metrics_with(&["outcome=\"replaced\"} 1"]);
}

/// Replies come from the exact address the request went to: a second IPv4 address and
/// the bridge's link-local IPv6 address (with scope), not whatever routing would pick.
#[test]
fn replies_from_the_address_asked() {
    let b = Bench::new("local", TftpConfig::new);
    let data = pattern(3000, 7);
    b.file("ipxe.efi", &data);
    b.lab
        .exec_ok(&["ip", "addr", "add", "192.168.1.2/24", "dev", "br0"]);
    let ll = wait_link_local(&b.lab.ns, "br0");
    for server in ["192.168.1.2".to_string(), ll.clone()] {
        let data = data.clone();
        let (got, tid) = in_netns(&b.client, move || {
            let ip: std::net::IpAddr = server.parse().unwrap();
            let (server, bind) = match ip {
                std::net::IpAddr::V4(a) => (SocketAddr::from((a, 69)), "0.0.0.0:0"),
                std::net::IpAddr::V6(a) => {
                    let scope = nix::net::if_::if_nametoindex("eth0").unwrap();
                    (
                        SocketAddr::V6(std::net::SocketAddrV6::new(a, 69, 0, scope)),
                        "[::]:0",
                    )
                }
            };
            let raw = Raw::new(bind);
            let (got, tid) = raw.fetch(server, b"\x00\x01ipxe.efi\x00octet\x00", 512);
            assert_eq!(tid.ip(), server.ip());
            (got, tid)
        });
        assert!(got == data, "fetched file differs from {tid}");
    }
    // And a real client over link-local, with the scope in the URL.
    let url = format!("tftp://[{ll}%25eth0]/ipxe.efi");
    let out = b.client_cmd(&["curl", "-sS", "--tftp-blksize", "1468", "-o", "got", &url]);
    b.assert_same("ipxe.efi", "got", &out);
}

/// The bridge's link-local address once DAD is done (a tentative one cannot be bound).
fn wait_link_local(ns: &str, dev: &str) -> String {
    let mut found = String::new();
    let ok = wait_until(Duration::from_secs(10), || {
        let out = exec_in(
            ns,
            &[
                "ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "link",
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("tentative") {
            return false;
        }
        let addr = text.split_whitespace().skip_while(|w| *w != "inet6").nth(1);
        match addr.and_then(|a| a.split('/').next()) {
            Some(a) => {
                found = a.to_string();
                true
            }
            None => false,
        }
    });
    assert!(ok, "no usable link-local address on {dev}");
    found
}

/// Every refusal: an ERROR packet with the right code, and a counter by reason.
#[test]
fn refusals_get_error_packets_and_counters() {
    let b = Bench::new("refuse", TftpConfig::new);
    b.file("ok.bin", b"fine");
    let outside = b
        .root
        .path()
        .parent()
        .unwrap()
        .join(format!("outside-{}", std::process::id()));
    std::fs::write(&outside, b"secret").unwrap();
    std::os::unix::fs::symlink(&outside, b.root.path().join("leak")).unwrap();
    std::fs::create_dir(b.root.path().join("dir")).unwrap();
    let server: SocketAddr = format!("{SERVER_V4}:69").parse().unwrap();
    let cases: Vec<(&[u8], u16)> = vec![
        (b"\x00\x02ok.bin\x00octet\x00", 2),           // write request
        (b"\x00\x01../../etc/passwd\x00octet\x00", 2), // .. out of the root
        (b"\x00\x01leak\x00octet\x00", 2),             // symlink out of the root
        (b"\x00\x01missing\x00octet\x00", 1),          // not there
        (b"\x00\x01dir\x00octet\x00", 2),              // a directory
        (b"\x00\x01ok.bin\x00mail\x00", 4),            // unsupported mode
        (b"\x00\x04\x00\x01", 4),                      // ACK to port 69
    ];
    in_netns(&b.client, move || {
        let raw = Raw::new("192.168.1.10:0");
        for (req, code) in cases {
            raw.send(server, req);
            assert_eq!(error_code(&raw.recv().0), code, "for {req:?}");
        }
    });
    let _ = std::fs::remove_file(&outside);
    let expected: Vec<String> = [
        "write_request",
        "path_escape",
        "path_symlink_escape",
        "not_found",
        "not_a_file",
        "bad_mode",
        "not_a_request",
    ]
    .iter()
    .map(|reason| format!("tftp_errors_total{{reason=\"{reason}\"}} 1"))
    .collect();
    b.served
        .metrics_with(&expected.iter().map(String::as_str).collect::<Vec<_>>());
    // Real client: tftp-hpa's put is refused with "access violation" (code 2).
    b.file("upload", b"");
    let out = b.client_cmd(&[
        "tftp",
        "-v",
        SERVER_V4,
        "-c",
        "put",
        "/etc/hostname",
        "upload",
    ]);
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("code 2"), "tftp put: {said}");
    assert_eq!(std::fs::read(b.root.path().join("upload")).unwrap(), b"");
}

/// Past the per-client cap, a clear error; other clients still get served.
#[test]
fn per_client_limit() {
    let b = Bench::new("limit", |root| TftpConfig {
        max_per_client: 2,
        ..TftpConfig::new(root)
    });
    b.file("f", &pattern(10_000, 8));
    let server: SocketAddr = format!("{SERVER_V4}:69").parse().unwrap();
    in_netns(&b.client, move || {
        let held: Vec<Raw> = (0..2).map(|_| Raw::new("192.168.1.10:0")).collect();
        for r in &held {
            r.send(server, b"\x00\x01f\x00octet\x00");
            assert_eq!(r.recv().0[..2], [0, 3]);
        }
        let third = Raw::new("192.168.1.10:0");
        third.send(server, b"\x00\x01f\x00octet\x00");
        let (p, _) = third.recv();
        assert_eq!(error_code(&p), 0);
        assert!(p.ends_with(b"too many transfers from this client\0"));
    });
}

/// A client that stops acknowledging gets the block again on every timeout, then an
/// ERROR, and its slot is freed.
#[test]
fn silent_client_gets_retransmissions_then_error() {
    let b = Bench::new("silent", |root| TftpConfig {
        timeout: Duration::from_millis(200),
        max_retries: 2,
        max_per_client: 1,
        ..TftpConfig::new(root)
    });
    b.file("f", &pattern(2000, 9));
    let server: SocketAddr = format!("{SERVER_V4}:69").parse().unwrap();
    in_netns(&b.client, move || {
        let raw = Raw::new("192.168.1.10:0");
        raw.send(server, b"\x00\x01f\x00octet\x00");
        for _ in 0..3 {
            let (p, _) = raw.recv();
            assert_eq!(p[..4], [0, 3, 0, 1], "DATA 1 (again)");
        }
        assert_eq!(error_code(&raw.recv().0), 0);
        // The slot is free again: a new request from another port is served.
        let again = Raw::new("192.168.1.10:0");
        assert_eq!(
            again.fetch(server, b"\x00\x01f\x00octet\x00", 512).0.len(),
            2000
        );
    });
    b.served.metrics_with(&[
        "tftp_retransmits_total{family=\"ipv4\"} 2",
        "outcome=\"timeout\"} 1",
    ]);
}
