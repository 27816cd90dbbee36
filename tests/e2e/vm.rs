//! QEMU VMs for the end-to-end suite: real firmware (SeaBIOS with QEMU's iPXE NIC ROM, and
//! OVMF with EDK2's own network stack) on a tap in the lab namespace, with the serial
//! console in a file. A VM is killed when it drops, so a failing test leaves none behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which firmware boots, and how its network boot is set up (DESIGN.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS + e1000; the NIC ROM is iPXE.
    SeaBiosIpxeRom,
    /// OVMF with virtio-net and `romfile=` empty: EDK2's own PXE over IPv4 (and IPv6).
    OvmfPxe,
    /// OVMF with IPv4 PXE switched off: PXE over IPv6 only.
    OvmfPxe6Only,
    /// OVMF with both PXE switches off and an RNG: UEFI HTTP boot.
    OvmfHttp,
}

/// Hardware beyond the defaults (512 MiB, one vCPU, no disks, QEMU ends at a reboot).
#[derive(Debug, Clone, Default)]
pub struct Hardware {
    pub memory_mib: Option<u32>,
    pub cpus: Option<u32>,
    /// Let the guest reboot (a pipeline boots again for each step).
    pub reboot: bool,
    /// More QEMU arguments: disks, SMBIOS strings.
    pub extra: Vec<String>,
}

pub struct Vm {
    child: Child,
    pub serial: PathBuf,
    pub started: Instant,
}

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

impl Vm {
    /// Starts a VM on `tap` (in namespace `ns`) with `mac` and `hw`; files go into
    /// `dir`. `uuid` sets the SMBIOS UUID (QEMU's default is all zero).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        ns: &str,
        dir: &Path,
        name: &str,
        fw: Firmware,
        tap: &str,
        mac: &str,
        uuid: Option<&str>,
        hw: &Hardware,
    ) -> Vm {
        let serial = dir.join(format!("{name}.serial.log"));
        let mut args: Vec<String> = vec!["-accel".into(), "tcg".into(), "-nographic".into()];
        if !hw.reboot {
            args.push("-no-reboot".into());
        }
        let memory = hw.memory_mib.unwrap_or(512).to_string();
        args.extend(["-smp".into(), hw.cpus.unwrap_or(1).to_string()]);
        let netdev = format!("tap,id=n0,ifname={tap},script=no,downscript=no");
        match fw {
            Firmware::SeaBiosIpxeRom => {
                // Enough for the burn-in image too: its initrd unpacks into RAM.
                args.extend(["-m".into(), memory.clone(), "-boot".into(), "n".into()]);
                args.extend([
                    "-netdev".into(),
                    netdev,
                    "-device".into(),
                    format!("e1000,netdev=n0,mac={mac}"),
                ]);
            }
            _ => {
                let vars = dir.join(format!("{name}.vars.fd"));
                std::fs::copy(OVMF_VARS, &vars).expect("copy OVMF vars");
                args.extend(["-m".into(), memory.clone(), "-machine".into(), "q35".into()]);
                args.push("-drive".into());
                args.push(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"));
                args.push("-drive".into());
                args.push(format!("if=pflash,format=raw,file={}", vars.display()));
                args.extend([
                    "-netdev".into(),
                    netdev,
                    "-device".into(),
                    format!("virtio-net-pci,netdev=n0,mac={mac},romfile="),
                ]);
                if matches!(fw, Firmware::OvmfPxe6Only | Firmware::OvmfHttp) {
                    args.extend(
                        ["-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=no"]
                            .map(String::from),
                    );
                }
                if fw == Firmware::OvmfHttp {
                    args.extend(
                        ["-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=no"]
                            .map(String::from),
                    );
                    args.extend(["-device", "virtio-rng-pci"].map(String::from));
                }
            }
        }
        if let Some(u) = uuid {
            args.extend(["-uuid".into(), u.into()]);
        }
        args.extend(hw.extra.iter().cloned());
        args.extend([
            "-serial".into(),
            format!("file:{}", serial.display()),
            "-monitor".into(),
            "none".into(),
            "-display".into(),
            "none".into(),
        ]);
        let log = std::fs::File::create(dir.join(format!("{name}.qemu.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "qemu-system-x86_64"])
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start qemu-system-x86_64");
        Vm {
            child,
            serial,
            started: Instant::now(),
        }
    }

    /// The serial console so far, without ANSI escapes.
    pub fn console(&self) -> String {
        strip_ansi(&String::from_utf8_lossy(
            &std::fs::read(&self.serial).unwrap_or_default(),
        ))
    }

    /// Waits until the console shows `text`; the time since start when it did.
    pub fn wait_for(&mut self, text: &str, limit: Duration) -> Option<Duration> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.console().contains(text) {
                return Some(self.started.elapsed());
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return self
                    .console()
                    .contains(text)
                    .then(|| self.started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        None
    }

    /// Waits (bounded) for the VM to end on its own (with `-no-reboot`, a power-off or a
    /// reboot ends QEMU); its exit status, or None if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        None
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes ANSI escape sequences (CSI and single-character escapes) from console output.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if it.peek() == Some(&'[') {
            it.next();
            for d in it.by_ref() {
                if ('@'..='~').contains(&d) {
                    break;
                }
            }
        } else {
            it.next();
        }
    }
    out
}
