//! Writes the seed corpus of every fuzz target into `<dir>/<target>/seed-*`, from the
//! captured firmware packets in tests/fixtures/ and the configs the tests use, framed as
//! the targets read them (see `sixboot_fuzz::records`). Usage: `seeds <dir>`.
//!
//! Besides each fixture alone, the seeds hold the exchanges the cores keep state across
//! (DISCOVER then REQUEST, Solicit then Request, RRQ then its ACKs), DHCPv6 relay chains
//! up to and past the 32-hop limit, and the HTTP paths the unit tests check.

use sixboot::ra::sender::advert;
use sixboot_fuzz::{EXAMPLE_CONFIG, SERVER_DUID, example_config, record};
use std::path::{Path, PathBuf};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures");

/// Named seed inputs of one target.
type Seeds = Vec<(String, Vec<u8>)>;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(FIXTURES).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every captured packet in one folder, by file stem.
fn fixtures(dir: &str) -> Seeds {
    files(dir, "bin")
}

/// Every file of one folder with extension `ext`, by file stem.
fn files(dir: &str, ext: &str) -> Seeds {
    let mut out: Vec<_> = std::fs::read_dir(Path::new(FIXTURES).join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .map(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            (stem, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// Records `(delta, bytes)` as one input.
fn seq(parts: &[(u8, &[u8])]) -> Vec<u8> {
    parts.iter().flat_map(|(d, b)| record(*d, b)).collect()
}

/// A DHCPv6 Relay-forward from fd00:1::2 around `inner`, with an Interface-ID and, on
/// the innermost layer, the client's link-layer address (option 79).
fn relay_forward(inner: &[u8], hop_count: u8, innermost: bool) -> Vec<u8> {
    let mut b = vec![12, hop_count];
    b.extend_from_slice(&[0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    b.extend_from_slice(&[
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x54, 0, 0xff, 0xfe, 0x12, 0x34, 0x58,
    ]);
    let mut option = |code: u16, v: &[u8]| {
        b.extend_from_slice(&code.to_be_bytes());
        b.extend_from_slice(&(v.len() as u16).to_be_bytes());
        b.extend_from_slice(v);
    };
    option(18, b"eth0");
    if innermost {
        option(79, &[0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x58]);
    }
    option(9, inner);
    b
}

fn relayed(msg: &[u8], depth: u8) -> Vec<u8> {
    (0..depth).fold(msg.to_vec(), |m, hop| relay_forward(&m, hop, hop == 0))
}

fn tftp_ack(block: u16) -> Vec<u8> {
    let mut b = vec![0, 4];
    b.extend_from_slice(&block.to_be_bytes());
    b
}

/// A TFTP input: file size, then records.
fn tftp_input(size: u32, parts: &[(u8, &[u8])]) -> Vec<u8> {
    let mut b = size.to_be_bytes().to_vec();
    b.extend(seq(parts));
    b
}

fn dhcp4() -> Seeds {
    let mut out: Vec<_> = fixtures("dhcp4")
        .into_iter()
        .map(|(n, b)| (n, record(0, &b)))
        .collect();
    let discover = fixture("dhcp4/ovmf-pxe-x64-discover.bin");
    // The capture's REQUEST asks for what dnsmasq offered; ask for what sixboot offers
    // first (the pool's start), so the exchange reaches the ACK.
    let mut request = fixture("dhcp4/ovmf-pxe-x64-request.bin");
    let at = 240
        + request[240..]
            .windows(2)
            .position(|w| w == [50, 4])
            .unwrap();
    request[at + 2..at + 6].copy_from_slice(&[192, 168, 1, 10]);
    out.push((
        "ovmf-exchange".into(),
        seq(&[(0, &discover), (1, &request)]),
    ));
    // The same client releasing what it got: message type 7 with ciaddr set.
    let mut release = request.clone();
    release[12..16].copy_from_slice(&[192, 168, 1, 10]);
    let at = 240
        + release[240..]
            .windows(3)
            .position(|w| w == [53, 1, 3])
            .unwrap();
    release[at + 2] = 7;
    out.push((
        "ovmf-exchange-release".into(),
        seq(&[(0, &discover), (1, &request), (5, &release)]),
    ));
    // A REQUEST whose options continue in `file` (option 52 = 1).
    let mut overload = fixture("dhcp4/dhclient-discover.bin");
    let end = overload[240..].iter().rposition(|&b| b == 255).unwrap() + 240;
    overload.splice(end..end, [52, 1, 1]);
    overload[108..112].copy_from_slice(&[93, 2, 0, 7]);
    overload[112] = 255;
    out.push(("overload-file".into(), record(0, &overload)));
    out
}

fn dhcp6() -> Seeds {
    let mut out: Vec<_> = fixtures("dhcp6")
        .into_iter()
        .map(|(n, b)| (n, record(0, &b)))
        .collect();
    let solicit = fixture("dhcp6/ovmf-pxe6-solicit-vendor.bin");
    let request = fixture("dhcp6/ovmf-pxe6-request.bin");
    let release = fixture("dhcp6/ovmf-pxe6-release.bin");
    assert!(request.windows(SERVER_DUID.len()).any(|w| w == SERVER_DUID));
    out.push((
        "ovmf6-exchange".into(),
        seq(&[(0, &solicit), (2, &request), (10, &release)]),
    ));
    for depth in [1, 2, 31, 32, 33] {
        let s = relayed(&solicit, depth);
        let r = relayed(&request, depth);
        // Odd deltas: the datagram comes from the relay's address.
        out.push((format!("relay-{depth}"), seq(&[(1, &s), (3, &r)])));
    }
    out
}

fn ra() -> Seeds {
    let mut out: Vec<_> = fixtures("icmp6")
        .into_iter()
        .map(|(n, b)| (n, record(0, &b)))
        .collect();
    let mut v6 = example_config().ipv6.clone().unwrap();
    v6.dns = vec!["fd00:1::53".parse().unwrap(), "fd00:1::54".parse().unwrap()];
    let ra = advert(&v6, Some([0x12, 0x6f, 0xf0, 0xf8, 0x82, 0x67])).emit();
    out.push(("own-advert".into(), record(0, &ra)));
    let rs = fixture("icmp6/ipxe-router-solicit.bin");
    let flood: Vec<(u8, &[u8])> = (0..40)
        .map(|i| (if i % 2 == 0 { 4 } else { 50 }, &rs[..]))
        .collect();
    out.push(("rs-flood".into(), seq(&flood)));
    out
}

fn tftp() -> Seeds {
    let mut out = Vec::new();
    for (n, b) in fixtures("tftp") {
        out.push((n, tftp_input(1_000_000, &[(0, &b)])));
    }
    let probe = fixture("tftp/ovmf-rrq-tsize-probe.bin");
    let abort = fixture("tftp/ovmf-error-abort.bin");
    out.push((
        "ovmf-probe-abort".into(),
        tftp_input(1_000_000, &[(0, &probe), (1, &abort)]),
    ));
    // blksize 1468, windowsize 4, 10000 bytes: OACK, then blocks 1-4 and 5-7.
    let rrq = fixture("tftp/ovmf-rrq.bin");
    let acks: Vec<Vec<u8>> = [0, 4, 7].into_iter().map(tftp_ack).collect();
    out.push((
        "ovmf-windowed".into(),
        tftp_input(
            10_000,
            &[(0, &rrq), (1, &acks[0]), (1, &acks[1]), (1, &acks[2])],
        ),
    ));
    // Lost window: the timer fires (60 × 20 ms) and the client acks half of it.
    let half = tftp_ack(2);
    out.push((
        "ovmf-timeout".into(),
        tftp_input(
            10_000,
            &[(0, &rrq), (1, &acks[0]), (60, &half), (1, &acks[2])],
        ),
    ));
    // No options: DATA at once, lock-step, a 512-byte file needs an empty last block.
    let plain = b"\x00\x01undionly.kpxe\x00octet\x00";
    let (a1, a2) = (tftp_ack(1), tftp_ack(2));
    out.push((
        "plain".into(),
        tftp_input(512, &[(0, plain), (1, &a1), (1, &a2)]),
    ));
    // A second request from another port of the same client (top bit of delta).
    out.push((
        "second-rrq".into(),
        tftp_input(512, &[(0, plain), (0x81, &rrq), (1, &a1)]),
    ));
    out
}

fn config() -> Seeds {
    let lab = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/common/lab-v6.toml");
    vec![
        ("example".into(), EXAMPLE_CONFIG.as_bytes().to_vec()),
        ("lab-v6".into(), std::fs::read(lab).unwrap()),
    ]
}

fn http_path() -> Seeds {
    [
        "/memtest86+x64.bin",
        "/boot/snponly.efi",
        "/a/./b//c",
        "/with%20space",
        "/a%2fb",
        "/sub/file",
        "/in",
        "/out",
        "/up/secret",
        "/loop",
        "/boot/across",
        "/../etc/passwd",
        "/a/%2e%2e/%2E%2E/x",
        "/a%2f..%2fb",
        "/x%00.bin",
        "/..a/b..",
        "/ipxe?mac=52:54:00:12:34:56&platform=efi",
    ]
    .iter()
    .enumerate()
    .map(|(i, p)| (format!("path-{i}"), p.as_bytes().to_vec()))
    .collect()
}

/// Every report fixture (tests/fixtures/report/*.json): reports as the image sent them.
fn report() -> Seeds {
    files("report", "json")
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: seeds <dir>"));
    let targets = [
        ("dhcp4", dhcp4 as fn() -> Seeds),
        ("dhcp6", dhcp6),
        ("ra", ra),
        ("tftp", tftp),
        ("config", config),
        ("http_path", http_path),
        ("report", report),
    ];
    for (target, seeds) in targets {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).unwrap();
        let seeds = seeds();
        for (name, bytes) in &seeds {
            std::fs::write(d.join(format!("seed-{name}")), bytes).unwrap();
        }
        println!("{target}: {} seeds", seeds.len());
    }
}
