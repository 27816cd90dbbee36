//! The burn-in image (`make assets`) booted for real: QEMU (TCG) loads its kernel and
//! initramfs directly, on a tap in a lab namespace where sixboot sends RAs and answers
//! DHCPv6. The VM has three disks with serials (NVMe, SATA on AHCI, virtio), a BMC and
//! SMBIOS strings of its own. The agent burns for 15 s, then POSTs its report to a receiver
//! in this test, which answers 503 once (as a restarting sixboot would) and then 200 with
//! `then: poweroff`. The test reads the report through the shared schema, checks what it
//! says of each part against the VM's set-up, the token header, the console lines and that
//! the VM powers off.

mod common;

use common::{Lab, SERVER_V6, in_netns, wait_until};
use sixboot_report::{CheckName, Component, DiskKind, Report, SelfTest, Transport};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const KERNEL: &str = "assets/burnin/vmlinuz";
const INITRD: &str = "assets/burnin/initrd.img";
const MAC: &str = "52:54:00:b0:00:01";
const RECEIVER_PORT: u16 = 9090;
const DISK_BYTES: u64 = 64 << 20;
const READ_BYTES: u64 = 32 << 20;
const DURATION_S: u64 = 15;
const SYSTEM_SERIAL: &str = "SYS-B0042";
/// (serial, QEMU device options, kind, transport) of each disk.
const DISKS: [(&str, &str, DiskKind, Transport); 3] = [
    ("NVME-B001", "nvme", DiskKind::Nvme, Transport::Nvme),
    // rotation_rate=1: the drive says it does not spin.
    (
        "SATA-B002",
        "ide-hd,bus=a0.0,rotation_rate=1",
        DiskKind::Ssd,
        Transport::Sata,
    ),
    (
        "VIRTIO-B003",
        "virtio-blk-pci",
        DiskKind::Hdd,
        Transport::Virtio,
    ),
];

/// One HTTP request as the receiver read it.
struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads one request (head, then Content-Length bytes of body); bounded by a read timeout.
fn read_request(s: &mut TcpStream) -> Option<Request> {
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 1 << 20 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut req = Request {
        head,
        body: buf[end..].to_vec(),
    };
    let len: usize = req.header("content-length")?.parse().ok()?;
    while req.body.len() < len {
        let n = s.read(&mut chunk).ok().filter(|&n| n > 0)?;
        req.body.extend_from_slice(&chunk[..n]);
    }
    Some(req)
}

/// The report endpoint stand-in: answers the first request 503 and the next ones 200 with
/// sixboot's answer, and hands every request to the test. Runs until the test drops the receiving end.
fn receiver(ns: &str) -> mpsc::Receiver<Request> {
    let listener = in_netns(ns, || {
        TcpListener::bind(format!("[{SERVER_V6}]:{RECEIVER_PORT}")).expect("bind receiver")
    });
    listener.set_nonblocking(true).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut answered = 0;
        // Bounded: the test gives up on the VM long before this.
        let deadline = Instant::now() + Duration::from_secs(900);
        while Instant::now() < deadline {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            s.set_nonblocking(false).unwrap();
            let Some(req) = read_request(&mut s) else {
                continue;
            };
            let reply: &[u8] = if answered == 0 {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 49\r\nConnection: close\r\n\r\n{\"stored\":true,\"result\":\"PASS\",\"then\":\"poweroff\"}"
            };
            answered += 1;
            let _ = s.write_all(reply);
            if tx.send(req).is_err() {
                return;
            }
        }
    });
    rx
}

/// sixboot with only what the image needs from it: RAs (managed) and DHCPv6 addresses.
fn start_sixboot(lab: &mut Lab) {
    std::fs::create_dir_all(lab.dir.path().join("http")).unwrap();
    let cfg = lab.write(
        "sixboot.toml",
        format!(
            r#"interface = "br0"
state_dir = "state"

[ipv6]
prefix = "fd00:1::/64"
router_advertisements = true
pool = ["fd00:1::100", "fd00:1::1ff"]

[http]
listen = ["[{SERVER_V6}]:8080"]
root = "http"
"#
        ),
    );
    lab.start_sixboot(&cfg);
    assert!(
        lab.wait_log("listening", 20),
        "sixboot did not start:\n{}",
        lab.log()
    );
}

/// The VM, killed on drop so a failing test leaves none behind.
struct Vm(Child);

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_vm(lab: &Lab, append: &str, serial: &Path) -> Vm {
    let mut disks = Vec::new();
    for (i, (disk_serial, device, ..)) in DISKS.iter().enumerate() {
        let img = lab.dir.path().join(format!("disk{i}.img"));
        std::fs::File::create(&img)
            .unwrap()
            .set_len(DISK_BYTES)
            .unwrap();
        disks.push("-drive".to_string());
        disks.push(format!("file={},if=none,id=d{i},format=raw", img.display()));
        disks.push("-device".to_string());
        disks.push(format!("{device},drive=d{i},serial={disk_serial}"));
    }
    let log = std::fs::File::create(lab.dir.path().join("qemu.log")).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &lab.ns, "qemu-system-x86_64"])
        .args([
            "-accel",
            "tcg",
            "-m",
            "1024",
            "-smp",
            "2",
            "-nographic",
            "-no-reboot",
        ])
        .args(["-kernel", KERNEL, "-initrd", INITRD, "-append", append])
        .args([
            "-smbios",
            &format!("type=1,manufacturer=Sixboot-Lab,product=Burnin-VM,serial={SYSTEM_SERIAL}"),
        ])
        .args(["-netdev", "tap,id=n0,ifname=tapb,script=no,downscript=no"])
        .args(["-device", &format!("virtio-net-pci,netdev=n0,mac={MAC}")])
        .args(["-device", "ahci,id=a0"])
        .args(&disks)
        .args([
            "-device",
            "ipmi-bmc-sim,id=bmc0",
            "-device",
            "isa-ipmi-kcs,bmc=bmc0",
        ])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .args(["-monitor", "none", "-display", "none"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start qemu-system-x86_64");
    Vm(child)
}

/// 32 lowercase hex characters, different on every run, as sixboot's per-boot tokens are.
fn token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:032x}", nanos ^ (u128::from(std::process::id()) << 64))
}

/// The image `make assets` builds. Missing, the test fails rather than passing without
/// having booted anything: `make test` builds it first, so a missing image is a broken build.
fn assert_assets_built() {
    for f in [KERNEL, INITRD] {
        assert!(
            Path::new(f).is_file(),
            "{f} is missing: run `make assets` (`make test` does) to build the burn-in image"
        );
    }
}

#[test]
fn burnin_image_burns_reports_over_ipv6_and_powers_off() {
    assert_assets_built();
    let mut lab = Lab::new("burnin");
    lab.tap("tapb");
    start_sixboot(&mut lab);
    let requests = receiver(&lab.ns);

    let token = token();
    let url = format!("http://[{SERVER_V6}]:{RECEIVER_PORT}/api/v1/machines/{MAC}/report");
    let append = format!(
        "console=ttyS0,115200 sixboot.duration={DURATION_S} sixboot.read_bytes={READ_BYTES} \
         sixboot.report={url} sixboot.token={token}"
    );
    let serial: PathBuf = lab.dir.path().join("burnin.serial.log");
    let started = Instant::now();
    let mut vm = start_vm(&lab, &append, &serial);
    let console =
        || String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).into_owned();

    // Boot, address, inventory, a 15 s burn, one refused POST and a retry 3 s later,
    // power-off.
    let limit = Duration::from_secs(420);
    let mut status = None;
    wait_until(limit, || {
        status = vm.0.try_wait().unwrap();
        status.is_some()
    });
    let took = started.elapsed();
    let out = console();
    assert!(
        status.is_some(),
        "the VM did not power off within {limit:?}\n--- console:\n{out}"
    );
    for line in [
        &format!("sixboot-burnin: starting {DURATION_S}s burn"),
        "sixboot-burnin: report: {",
        "sixboot-burnin: report accepted (HTTP 200)",
        "sixboot-burnin: RESULT PASS",
        "sixboot-burnin: powering off",
    ] {
        assert!(out.contains(line), "console lacks {line:?}:\n{out}");
    }
    // The address came from sixboot's DHCPv6 pool.
    let addr = out
        .lines()
        .find_map(|l| l.strip_prefix("sixboot-burnin: address: "))
        .unwrap_or_else(|| panic!("no address line:\n{out}"));
    assert!(
        addr.starts_with("fd00:1::1"),
        "address {addr} not from the pool"
    );

    let got: Vec<Request> = requests.try_iter().collect();
    assert_eq!(got.len(), 2, "one 503, then one accepted POST:\n{out}");
    let req = &got[1];
    assert!(
        req.head
            .starts_with(&format!("POST /api/v1/machines/{MAC}/report HTTP/1.")),
        "request line: {}",
        req.head
    );
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(got[0].body, req.body, "the retry sends the same report");
    let body = String::from_utf8_lossy(&req.body);
    assert!(
        out.lines()
            .any(|l| l.trim_end() == format!("sixboot-burnin: report: {body}")),
        "the console's report line is not the posted body"
    );

    let r = Report::parse(&req.body).unwrap_or_else(|e| panic!("report refused ({e}): {body}"));
    check_report(&r);
    eprintln!(
        "burn-in: VM start to power-off {:.1} s; console:\n{}",
        took.as_secs_f64(),
        out.lines()
            .filter(
                |l| l.starts_with("sixboot-burnin:") && !l.starts_with("sixboot-burnin: report: ")
            )
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// What the report must say of the VM `start_vm` made.
fn check_report(r: &Report) {
    assert_eq!(r.step, sixboot_report::Step::Burnin);
    assert!(
        (DURATION_S..DURATION_S + 60).contains(&r.duration_s),
        "duration_s {}",
        r.duration_s
    );
    let inv = &r.inventory;
    assert_eq!(inv.system.serial.as_deref(), Some(SYSTEM_SERIAL));
    assert_eq!(inv.system.manufacturer.as_deref(), Some("Sixboot-Lab"));
    assert_eq!(inv.system.product.as_deref(), Some("Burnin-VM"));
    assert_eq!(
        inv.cpus.iter().map(|c| c.threads).sum::<u32>(),
        2,
        "{:?}",
        inv.cpus
    );
    assert!(
        inv.cpus.iter().all(|c| !c.model.is_empty()),
        "{:?}",
        inv.cpus
    );
    assert_eq!(inv.memory.bytes, 1 << 30, "{:?}", inv.memory);
    assert_eq!(inv.nics.len(), 1, "{:?}", inv.nics);
    assert_eq!(inv.nics[0].mac, MAC);
    assert_eq!(inv.nics[0].driver.as_deref(), Some("virtio_net"));
    assert!(inv.bmc.present, "{:?}", inv.bmc);
    assert_eq!(inv.bmc.firmware.as_deref(), Some("0.0"));

    assert_eq!(inv.disks.len(), DISKS.len(), "{:?}", inv.disks);
    for (disk_serial, _, kind, transport) in DISKS {
        let d = inv
            .disks
            .iter()
            .find(|d| d.serial.as_deref() == Some(disk_serial))
            .unwrap_or_else(|| panic!("no disk {disk_serial}: {:?}", inv.disks));
        assert_eq!(
            (d.bytes, d.kind, d.transport),
            (DISK_BYTES, kind, transport),
            "{d:?}"
        );
        // SMART where the bus has it: QEMU's NVMe says 50 C, its ATA disk 31 C.
        match transport {
            Transport::Virtio => assert_eq!(d.smart, None),
            _ => {
                let s = d
                    .smart
                    .as_ref()
                    .unwrap_or_else(|| panic!("no SMART: {d:?}"));
                assert_eq!(s.healthy, Some(true), "{d:?}");
                assert!(s.temperature_c.is_some(), "{d:?}");
            }
        }
    }

    let check = |component: &Component, name: CheckName| {
        r.checks
            .iter()
            .find(|c| c.component == *component && c.name == name)
            .unwrap_or_else(|| panic!("no {component} {name:?} check: {:#?}", r.checks))
    };
    for component in [Component::Cpu, Component::Memory] {
        let s = &check(&component, CheckName::Stress).values;
        assert_eq!(
            (s.exit_code, s.errors),
            (Some(0), Some(0)),
            "{component}: {s:?}"
        );
        let secs = s.seconds.unwrap();
        assert!(secs >= DURATION_S as f64, "{component} stressed {secs} s");
    }
    assert!(
        check(&Component::Memory, CheckName::Stress)
            .values
            .bytes
            .unwrap()
            > 256 << 20
    );
    assert_eq!(
        check(&Component::Cpu, CheckName::Mce).values.events,
        Some(0)
    );
    assert_eq!(
        check(&Component::Cpu, CheckName::Throttle).values.events,
        Some(0)
    );
    let edac = &check(&Component::Memory, CheckName::Edac).values;
    assert_eq!((edac.corrected, edac.uncorrected), (Some(0), Some(0)));
    for (disk_serial, _, _, transport) in DISKS {
        let component = Component::Disk(disk_serial.into());
        let read = &check(&component, CheckName::Read).values;
        assert_eq!(
            (read.bytes, read.errors),
            (Some(READ_BYTES), Some(0)),
            "{component}"
        );
        assert!(
            read.mb_per_s.is_some_and(|m| m > 0.0),
            "{component}: {read:?}"
        );
        // QEMU's ATA disk runs a short self-test (done at once); its NVMe has none, nor virtio.
        let want = match transport {
            Transport::Sata => SelfTest::Passed,
            _ => SelfTest::Unsupported,
        };
        assert_eq!(
            check(&component, CheckName::SelfTest).values.status,
            Some(want),
            "{component}"
        );
    }
}
