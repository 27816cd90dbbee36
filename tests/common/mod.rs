//! Lab for integration tests: network namespaces, a bridge and veth clients, made per test
//! and removed on drop (even when the test panics). Names carry the test's name, the
//! process id and a counter, so tests run in parallel without colliding.
#![allow(dead_code)] // each test binary uses a different part of the lab

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub mod browser;
pub mod capture;
pub mod curl;
pub mod dhcp4_client;
pub mod dhcp6_client;
pub mod machines;
pub mod served;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Server-side IPv4 address on the lab bridge.
pub const SERVER_V4: &str = "192.168.1.1";
/// Server-side IPv6 address on the lab bridge.
pub const SERVER_V6: &str = "fd00:1::1";

/// Runs `cmd` and panics with its output when it fails: lab set-up must not fail quietly.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

/// A server namespace with bridge `br0` (192.168.1.1/24, fd00:1::1/64) and any number of
/// client namespaces, each joined to the bridge by a veth pair whose client end is `eth0`.
pub struct Lab {
    pub ns: String,
    clients: Vec<String>,
    children: Vec<Child>,
    pub dir: tempfile::TempDir,
}

impl Lab {
    pub fn new(test: &str) -> Lab {
        assert!(
            nix_is_root(),
            "lab tests need root (network namespaces); run them through `make test`"
        );
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let short: String = test
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(12)
            .collect();
        let ns = format!("sb-{short}-{}-{n}", std::process::id());
        ip(&["netns", "add", &ns]);
        let lab = Lab {
            ns,
            clients: Vec::new(),
            children: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        lab.exec_ok(&["ip", "link", "set", "lo", "up"]);
        lab.exec_ok(&["ip", "link", "add", "br0", "type", "bridge"]);
        lab.exec_ok(&["ip", "link", "set", "br0", "up"]);
        lab.exec_ok(&[
            "ip",
            "addr",
            "add",
            &format!("{SERVER_V4}/24"),
            "dev",
            "br0",
        ]);
        lab.exec_ok(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{SERVER_V6}/64"),
            "dev",
            "br0",
            "nodad",
        ]);
        lab
    }

    /// Adds a client namespace joined to the bridge; returns its name. The client's `eth0`
    /// is up with only a link-local IPv6 address (no DAD), and optionally `v4`/`v6` (with
    /// prefix length) addresses.
    pub fn client(&mut self, name: &str, v4: Option<&str>, v6: Option<&str>) -> String {
        let cns = format!("{}-{name}", self.ns);
        ip(&["netns", "add", &cns]);
        self.clients.push(cns.clone());
        let host_end = format!("v{}", self.clients.len());
        self.exec_ok(&[
            "ip", "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &cns,
        ]);
        self.exec_ok(&["ip", "link", "set", &host_end, "master", "br0"]);
        self.exec_ok(&["ip", "link", "set", &host_end, "up"]);
        let c = |args: &[&str]| exec_in(&cns, args);
        c(&["sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0"]);
        c(&["ip", "link", "set", "lo", "up"]);
        c(&["ip", "link", "set", "eth0", "up"]);
        if let Some(a) = v4 {
            c(&["ip", "addr", "add", a, "dev", "eth0"]);
        }
        if let Some(a) = v6 {
            c(&["ip", "-6", "addr", "add", a, "dev", "eth0", "nodad"]);
        }
        // The kernel adds the link-local address once the veth has carrier; sending to a
        // multicast group before then fails, so wait for it (bounded).
        let has_ll = || {
            let out = exec_in(
                &cns,
                &["ip", "-6", "addr", "show", "dev", "eth0", "scope", "link"],
            );
            String::from_utf8_lossy(&out.stdout).contains("inet6 fe80::")
        };
        assert!(
            wait_until(Duration::from_secs(10), has_ll),
            "{cns}: eth0 got no link-local address"
        );
        cns
    }

    /// Adds a tap device on the bridge, for a QEMU VM started inside the server namespace.
    pub fn tap(&self, name: &str) {
        self.exec_ok(&["ip", "tuntap", "add", name, "mode", "tap"]);
        self.exec_ok(&["ip", "link", "set", name, "master", "br0"]);
        self.exec_ok(&["ip", "link", "set", name, "up"]);
    }

    /// Runs a command inside the server namespace and panics if it fails.
    pub fn exec_ok(&self, args: &[&str]) -> Output {
        exec_in(&self.ns, args)
    }

    /// Writes `text` to a file in the lab's temporary folder and returns its path.
    pub fn write(&self, rel: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Starts `sixboot serve --config CONFIG` in the server namespace, logging at debug to
    /// `<lab dir>/sixboot.log`. The process is killed when the lab drops.
    pub fn start_sixboot(&mut self, config: &Path) -> u32 {
        self.start_sixboot_under(&[], config)
    }

    /// [`Lab::start_sixboot`] through a wrapper command that execs the command after it,
    /// such as `setpriv` dropping root: the pid is sixboot's once the wrapper has exec'd.
    pub fn start_sixboot_under(&mut self, wrapper: &[&str], config: &Path) -> u32 {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(wrapper)
            .args([env!("CARGO_BIN_EXE_sixboot"), "serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "sixboot=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sixboot");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Sends SIGKILL to a process this lab started and reaps it.
    pub fn kill9(&mut self, pid: u32) {
        if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
            let mut c = self.children.remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM to a process this lab started and waits (bounded) for it to exit.
    pub fn stop(&mut self, pid: u32) -> Option<std::process::ExitStatus> {
        let i = self.children.iter().position(|c| c.id() == pid)?;
        let mut c = self.children.remove(i);
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        c.wait().ok()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("sixboot.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits until the server log contains `needle`, at most `secs` seconds.
    pub fn wait_log(&self, needle: &str, secs: u64) -> bool {
        wait_until(Duration::from_secs(secs), || self.log().contains(needle))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- sixboot log ({}):\n{}", self.ns, self.log());
        }
        for ns in self.clients.iter().chain(std::iter::once(&self.ns)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs a command in namespace `ns` and panics if it fails.
pub fn exec_in(ns: &str, args: &[&str]) -> Output {
    run(Command::new("ip").args(["netns", "exec", ns]).args(args))
}

/// A command prefixed to run in namespace `ns`.
pub fn cmd_in(ns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]);
    c
}

/// Polls `f` every 50 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `f` on a thread that has entered namespace `ns`; sockets made there stay in that
/// namespace, so a test can talk from a client namespace with plain std sockets.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("netns thread panicked")
}

fn nix_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A server task running in-process inside a namespace, on its own thread with a
/// current-thread tokio runtime; [`InProcess::stop`] asks it to shut down and waits.
pub struct InProcess<T> {
    shutdown: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<T>>,
}

impl<T: Send + 'static> InProcess<T> {
    /// Starts `task(shutdown)` inside namespace `ns`. Sockets it opens live there.
    pub fn start<F, Fut>(ns: &str, task: F) -> InProcess<T>
    where
        F: FnOnce(tokio::sync::watch::Receiver<bool>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T>,
    {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let ns = ns.to_string();
        let thread = std::thread::spawn(move || {
            in_netns(&ns, move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(task(rx))
            })
        });
        InProcess {
            shutdown: tx,
            thread: Some(thread),
        }
    }

    /// Signals shutdown and returns what the task returned.
    pub fn stop(mut self) -> T {
        let _ = self.shutdown.send(true);
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("server thread panicked")
    }
}

impl<T> Drop for InProcess<T> {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
