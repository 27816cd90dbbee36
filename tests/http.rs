//! The HTTP stage over real sockets: sixboot runs in a lab namespace and a real `curl`
//! talks to it over IPv6 (and IPv4) from a client namespace, as iPXE would.

mod common;

use common::curl::{curl, ipxe_expand};
use common::{Lab, SERVER_V6, cmd_in, in_netns, wait_until};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CLIENT_V6: &str = "fd00:1::10";
const MAC: &str = "52:54:00:12:34:56";

fn base() -> String {
    format!("http://[{SERVER_V6}]:8080")
}

/// The lab's HTTP root, TFTP root and config; `http_extra` goes into `[http]`, `extra` at
/// the end.
fn config(lab: &Lab, http_extra: &str, extra: &str) -> PathBuf {
    lab.write("http/memtest86+x64.bin", b"memtest for BIOS");
    lab.write("http/memtest86+x64.efi", b"memtest for EFI");
    lab.write("tftp/snponly.efi", b"efi nbp");
    // An empty template folder, for `templates = "tpl"`.
    std::fs::create_dir_all(lab.dir.path().join("tpl")).unwrap();
    let text = format!(
        r#"interface = "br0"
state_dir = "state"

[boot]
uefi_x64 = "snponly.efi"

[tftp]
root = "tftp"

[http]
listen = ["[{SERVER_V6}]:8080", "192.168.1.1:8080"]
root = "http"
{http_extra}

[menu]
default = "memtest"
timeout = 5

[[menu.item]]
id = "memtest"
title = "Memtest86+ \"6.10\" ${{x}}"
bios = "memtest86+x64.bin"
efi = "memtest86+x64.efi"
args = "console=ttyS0,115200"
{extra}"#
    );
    lab.write("sixboot.toml", text)
}

/// A lab with one client (`fd00:1::10`, `192.168.1.20`) and sixboot answering /healthz.
fn started(test: &str, http_extra: &str, extra: &str) -> (Lab, String, u32) {
    let mut lab = Lab::new(test);
    let c = lab.client(
        "c",
        Some("192.168.1.20/24"),
        Some(&format!("{CLIENT_V6}/64")),
    );
    let cfg = config(&lab, http_extra, extra);
    let pid = lab.start_sixboot(&cfg);
    let ready = wait_until(Duration::from_secs(15), || {
        curl(&lab, &c, &format!("{}/healthz", base()), &[]).status == 200
    });
    assert!(ready, "sixboot never became ready:\n{}", lab.log());
    (lab, c, pid)
}

#[test]
fn boot_ipxe_chains_to_the_per_machine_script_and_its_utility() {
    let (mut lab, c, pid) = started("httpchain", "", "");
    let entry = curl(&lab, &c, &format!("{}/boot.ipxe", base()), &["-6"]);
    assert_eq!(entry.status, 200);
    let script = String::from_utf8(entry.body).unwrap();
    assert!(script.starts_with("#!ipxe\n"), "{script}");
    let chain = script
        .lines()
        .find_map(|l| l.strip_prefix("chain "))
        .and_then(|l| l.split_whitespace().next())
        .expect("boot.ipxe chains");
    assert!(chain.starts_with(&format!("{}/ipxe?", base())), "{chain}");
    // What iPXE on BIOS would send: uristring-encoded values, a missing SMBIOS field empty.
    let url = ipxe_expand(
        chain,
        &[
            ("mac:hexhyp", "52-54-00-12-34-56"),
            ("platform:uristring", "pcbios"),
            ("buildarch:uristring", "i386"),
            ("uuid", "8c4d0f3a-6b1e-4f4e-9d7e-3c2a1b0f9e8d"),
            ("serial:uristring", "SN%2042%2Fx"),
            ("product:uristring", "Standard%20PC"),
        ],
    );
    assert!(url.contains("&manufacturer=&"), "{url}");
    let machine = curl(&lab, &c, &url, &["-6"]);
    assert_eq!(machine.status, 200);
    assert_eq!(machine.header("cache-control"), Some("no-store"));
    let script = String::from_utf8(machine.body).unwrap();
    assert!(
        script.contains("menu sixboot: Standard PC serial SN 42/x\n"),
        "{script}"
    );
    assert!(
        script.contains("item item-memtest Memtest86+ \"6.10\" $ {x}\n"),
        "{script}"
    );
    let kernel = script
        .lines()
        .find_map(|l| l.strip_prefix("kernel "))
        .expect("a kernel line");
    let (kernel_url, args) = kernel.split_once(' ').unwrap();
    assert_eq!(kernel_url, format!("{}/memtest86+x64.bin", base()));
    assert!(args.starts_with("console=ttyS0,115200"), "{args}");
    assert!(
        lab.log().contains(&format!(
            "request client={CLIENT_V6} mac={MAC} method=GET path=\"/ipxe\" status=200 decision=\"menu\""
        )),
        "{}",
        lab.log()
    );
    // The utility, fetched as iPXE would; its log line names the machine.
    let util = curl(&lab, &c, kernel_url, &["-6"]);
    assert_eq!(util.body, b"memtest for BIOS");
    assert!(
        lab.wait_log(
            &format!(
                "request client={CLIENT_V6} mac={MAC} method=GET path=\"/memtest86+x64.bin\" status=200"
            ),
            5
        ),
        "{}",
        lab.log()
    );
    // Both steps are on the machine's timeline, next to what DHCP did for it.
    for step in [
        "stage=script detail=menu on pcbios",
        "stage=served detail=/memtest86+x64.bin",
    ] {
        let line = format!("mac={MAC} ip={CLIENT_V6} protocol=http {step}");
        assert!(lab.wait_log(&line, 5), "{line}\n{}", lab.log());
    }
    // The IPv4 listener serves the same, with URLs for the address the client used.
    let v4 = curl(&lab, &c, "http://192.168.1.1:8080/boot.ipxe", &["-4"]);
    assert!(
        String::from_utf8_lossy(&v4.body).contains("chain http://192.168.1.1:8080/ipxe?"),
        "{}",
        String::from_utf8_lossy(&v4.body)
    );
    let st = lab.stop(pid).expect("sixboot stops");
    assert!(
        st.success(),
        "sixboot exit on SIGTERM: {st:?}\n{}",
        lab.log()
    );
}

#[test]
fn files_support_head_ranges_and_conditional_requests() {
    let (lab, c, _) = started("httpfiles", "", "");
    let data: Vec<u8> = (0..102_400u32).map(|i| (i * 7 % 251) as u8).collect();
    lab.write("http/img/disk.bin", &data);
    lab.write("http/notes.txt", "hello\n");
    let url = format!("{}/img/disk.bin", base());

    let head = curl(&lab, &c, &url, &["-6", "-I"]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("102400"));
    assert_eq!(
        head.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(head.header("accept-ranges"), Some("bytes"));
    // curl -I cannot show whether a body followed; a raw request can.
    let raw = in_netns(&c, || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect((SERVER_V6, 8080)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"HEAD /img/disk.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        out
    });
    assert!(raw.ends_with(b"\r\n\r\n"), "HEAD sent a body: {raw:?}");
    let etag = head.header("etag").expect("an ETag").to_string();
    let modified = head
        .header("last-modified")
        .expect("Last-Modified")
        .to_string();

    let part = curl(&lab, &c, &url, &["-6", "-H", "Range: bytes=100-199"]);
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some("bytes 100-199/102400"));
    assert_eq!(part.header("content-length"), Some("100"));
    assert_eq!(part.body, &data[100..200]);
    let tail = curl(&lab, &c, &url, &["-6", "-H", "Range: bytes=-10"]);
    assert_eq!((tail.status, tail.body.as_slice()), (206, &data[102_390..]));

    let past = curl(&lab, &c, &url, &["-6", "-H", "Range: bytes=200000-"]);
    assert_eq!(past.status, 416);
    assert_eq!(past.header("content-range"), Some("bytes */102400"));

    let inm = format!("If-None-Match: {etag}");
    let not_modified = curl(&lab, &c, &url, &["-6", "-H", &inm]);
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    let ims = format!("If-Modified-Since: {modified}");
    assert_eq!(curl(&lab, &c, &url, &["-6", "-H", &ims]).status, 304);
    // A different ETag wins over a matching date (RFC 9110 §13.1.3).
    let other = curl(
        &lab,
        &c,
        &url,
        &["-6", "-H", "If-None-Match: \"other\"", "-H", &ims],
    );
    assert_eq!((other.status, other.body.len()), (200, data.len()));

    let txt = curl(&lab, &c, &format!("{}/notes.txt", base()), &["-6"]);
    assert!(
        txt.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        txt.headers
    );
    let nbp = curl(&lab, &c, &format!("{}/boot/snponly.efi", base()), &["-6"]);
    assert_eq!((nbp.status, nbp.body.as_slice()), (200, &b"efi nbp"[..]));
    assert_eq!(
        curl(&lab, &c, &format!("{}/nope", base()), &["-6"]).status,
        404
    );
    assert_eq!(curl(&lab, &c, &url, &["-6", "-X", "POST"]).status, 405);
}

#[test]
fn traversal_nul_and_escaping_symlinks_are_refused_and_counted() {
    let (lab, c, _) = started("httprefuse", "", "");
    lab.write("secret.txt", "outside the root");
    std::os::unix::fs::symlink("../secret.txt", lab.dir.path().join("http/escape")).unwrap();
    std::os::unix::fs::symlink("memtest86+x64.bin", lab.dir.path().join("http/inside")).unwrap();
    let status = |path: &str| {
        let r = curl(
            &lab,
            &c,
            &format!("{}{path}", base()),
            &["-6", "--path-as-is"],
        );
        assert!(
            !String::from_utf8_lossy(&r.body).contains("outside the root"),
            "{path} leaked the secret"
        );
        r.status
    };
    assert_eq!(status("/../secret.txt"), 403);
    assert_eq!(status("/%2e%2e/secret.txt"), 403);
    assert_eq!(status("/boot/%2E%2E/secret.txt"), 403);
    assert_eq!(status("/memtest86+x64.bin%00.txt"), 403);
    assert_eq!(status("/escape"), 403);
    assert_eq!(status("/inside"), 200, "a symlink inside the root is fine");
    for reason in ["traversal", "nul_byte", "outside_root"] {
        assert!(
            lab.log().contains(&format!(
                "path refused client={CLIENT_V6} path=\"/{}",
                match reason {
                    "traversal" => "../secret.txt\" reason=traversal",
                    "nul_byte" => "memtest86+x64.bin%00.txt\" reason=nul_byte",
                    _ => "escape\" reason=outside_root",
                }
            )),
            "{reason} not logged:\n{}",
            lab.log()
        );
    }
    let metrics =
        String::from_utf8(curl(&lab, &c, &format!("{}/metrics", base()), &["-6"]).body).unwrap();
    for line in [
        "sixboot_http_refused_total{reason=\"traversal\"} 3",
        "sixboot_http_refused_total{reason=\"nul_byte\"} 1",
        "sixboot_http_refused_total{reason=\"outside_root\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
}

/// A sparse 1 GiB file with random blocks spread through it, so `cmp` checks real
/// offsets without writing a whole gigabyte.
fn big_file(path: &Path) -> u64 {
    use std::io::{Seek, SeekFrom, Write};
    const SIZE: u64 = 1 << 30;
    let mut f = std::fs::File::create(path).unwrap();
    f.set_len(SIZE).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; 64 * 1024];
    for i in 0..16u64 {
        for b in block.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        // Odd offsets, so chunk boundaries fall inside the blocks; the last ends the file.
        let at = (SIZE / 16 * i + 12_345).min(SIZE - block.len() as u64);
        let at = if i == 15 {
            SIZE - block.len() as u64
        } else {
            at
        };
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&block).unwrap();
    }
    SIZE
}

#[test]
fn a_1_gib_image_streams_intact() {
    let (lab, c, _) = started("httpbig", "", "");
    let file = lab.dir.path().join("http/big.img");
    let size = big_file(&file);
    let t = Instant::now();
    let out = cmd_in(&c, "sh")
        .arg("-c")
        .arg(format!(
            "curl -sS -g -6 --max-time 300 {}/big.img | cmp - {}",
            base(),
            file.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "download differs: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("1 GiB in {:?}", t.elapsed());
    let metrics =
        String::from_utf8(curl(&lab, &c, &format!("{}/metrics", base()), &["-6"]).body).unwrap();
    assert!(
        metrics.contains(&format!(
            "sixboot_http_sent_bytes_total{{route=\"/*\"}} {size}"
        )),
        "{metrics}"
    );
}

#[test]
fn metrics_parse_as_prometheus_text_with_every_protocol() {
    let others = r#"
[dhcp4]
subnet = "192.168.1.0/24"
pool = ["192.168.1.100", "192.168.1.199"]

[ipv6]
prefix = "fd00:1::/64"
pool = ["fd00:1::100", "fd00:1::1ff"]
"#;
    let (lab, c, _) = started("httpmetrics", "", others);
    assert_eq!(
        curl(&lab, &c, &format!("{}/boot.ipxe", base()), &["-6"]).status,
        200
    );
    let r = curl(&lab, &c, &format!("{}/metrics", base()), &["-6"]);
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        r.headers
    );
    let text = lab.write("metrics.txt", &r.body);
    // Both of prometheus_client's parsers: the strict OpenMetrics one and the classic
    // Prometheus text one. Each prints the families it read.
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
from prometheus_client.parser import text_string_to_metric_families as prom
text = open(sys.argv[1]).read()
strict = {f.name for f in om(text)}
classic = {f.name for f in prom(text)}
print(" ".join(sorted(strict)))
print(" ".join(sorted(classic)))
"#;
    let out = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(&text)
        .output()
        .expect("run python3");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "metrics do not parse: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&r.body)
    );
    for family in [
        "sixboot_http_requests",
        "sixboot_http_sent_bytes",
        "sixboot_dhcp4_pool_size",
        "sixboot_dhcp4_leases_active",
        "sixboot_dhcp6_store_failures",
        "sixboot_ra_sent",
    ] {
        assert!(printed.contains(family), "{family} missing: {printed}");
    }
    assert!(
        String::from_utf8_lossy(&r.body)
            .contains("sixboot_http_requests_total{route=\"/boot.ipxe\",status=\"200\"} 1"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let health = curl(&lab, &c, &format!("{}/healthz", base()), &["-6"]);
    assert_eq!((health.status, health.body.as_slice()), (200, &b"ok\n"[..]));
}

#[test]
fn operator_templates_take_effect_without_a_restart() {
    let (lab, c, _) = started("httptpl", "templates = \"tpl\"", "");
    let url = format!("{}/ipxe?mac=52-54-00-12-34-56&platform=efi", base());
    let get = || curl(&lab, &c, &url, &["-6"]);
    assert!(String::from_utf8_lossy(&get().body).contains("\nchoose "));
    lab.write(
        "tpl/machine.ipxe",
        "#!ipxe\necho {{ machine.mac }} {{ boot.kind }}\n",
    );
    assert_eq!(get().body, format!("#!ipxe\necho {MAC} menu\n").as_bytes());
    // A broken override answers 500 and says where; removing it brings the built-in back.
    lab.write("tpl/machine.ipxe", "#!ipxe\n{% if %}\n");
    assert_eq!(get().status, 500);
    assert!(lab.log().contains("machine.ipxe:2"), "{}", lab.log());
    std::fs::remove_file(lab.dir.path().join("tpl/machine.ipxe")).unwrap();
    assert!(String::from_utf8_lossy(&get().body).contains("\nchoose "));
}
