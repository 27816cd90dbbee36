//! The configuration: one TOML file whose keys are a contract (tests and operators outside
//! this repo write them), loaded with every problem reported by line and column.
//!
//! Relative paths resolve against the config file's folder. Optional tables switch whole
//! protocols off: without `[dhcp4]`, no DHCPv4 socket is opened at all (IPv6-only mode).

mod load;
mod reader;
pub mod roots;

pub use load::{Checks, load, parse};
pub use reader::{Problem, Problems};

use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Config {
    /// The interface sixboot serves on; every socket is bound to it.
    pub interface: String,
    /// Leases and machine records live here (SQLite).
    pub state_dir: PathBuf,
    pub dhcp4: Option<Dhcp4>,
    pub boot: Boot,
    pub tftp: Option<Tftp>,
    pub ipv6: Option<Ipv6>,
    pub http: Option<Http>,
    pub menu: Menu,
    pub hosts: Vec<Host>,
    pub api: Api,
    pub steps: Steps,
    /// `[verdict]`: the limits each part of a machine is held to.
    pub verdict: crate::verdict::Thresholds,
    /// `[[batch]]`: groups of machines with the spec they are sold with.
    pub batches: Vec<Batch>,
    /// Things that work but deserve the operator's attention, as `FILE:LINE:COL: warning:
    /// message` lines (only with system checks, such as a root sixboot itself can write).
    pub warnings: Vec<String>,
}

/// DHCPv4, for PXE firmware only.
#[derive(Debug, Clone)]
pub struct Dhcp4 {
    pub subnet: Ipv4Net,
    /// Inclusive range of addresses handed out.
    pub pool: (Ipv4Addr, Ipv4Addr),
    /// Seconds, when the client asks for nothing.
    pub lease_time: u32,
    /// Seconds; a longer time asked for by the client is capped to this.
    pub max_lease_time: u32,
    /// `siaddr` in replies; `None` means the interface's own IPv4 address.
    pub next_server: Option<Ipv4Addr>,
    /// Sent as option 3 only when set: the seed sends no gateway.
    pub router: Option<Ipv4Addr>,
    /// Sent as option 6 only when non-empty.
    pub dns: Vec<Ipv4Addr>,
    /// Seconds a DECLINEd address stays out of the pool.
    pub decline_time: u32,
}

/// First-stage boot files per firmware architecture, relative to the TFTP root.
#[derive(Debug, Clone, Default)]
pub struct Boot {
    pub bios: Option<String>,
    pub uefi_x64: Option<String>,
    pub uefi_ia32: Option<String>,
    pub uefi_arm64: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Tftp {
    pub root: PathBuf,
    /// Concurrent transfers in total; past it, requests get a "server busy" error.
    pub max_transfers: usize,
    /// Concurrent transfers per client address.
    pub max_per_client: usize,
}

#[derive(Debug, Clone)]
pub struct Ipv6 {
    pub prefix: Ipv6Net,
    pub router_advertisements: bool,
    /// The A flag of the prefix option; off by default, so addresses come from DHCPv6.
    pub autonomous: bool,
    /// Seconds; 0 (the default) because sixboot is not a router.
    pub router_lifetime: u16,
    pub pool: (Ipv6Addr, Ipv6Addr),
    pub dns: Vec<Ipv6Addr>,
    /// Seconds, the valid lifetime of a DHCPv6 address.
    pub lease_time: u32,
    /// DHCPv6 Preference (option 7) in Advertise; 255 makes clients take it at once.
    pub preference: u8,
}

#[derive(Debug, Clone)]
pub struct Http {
    pub listen: Vec<SocketAddr>,
    pub root: PathBuf,
    /// Operator overrides of the iPXE script templates, if any.
    pub templates: Option<PathBuf>,
    /// Connections served at once, all listeners together; past it new connections wait
    /// in the kernel's backlog, so slow or idle clients cannot take every socket.
    pub max_connections: usize,
    /// How long a client has to send a complete request head, on a new connection and
    /// between requests on a kept-alive one; a slow or idle client is closed after it.
    pub request_timeout: std::time::Duration,
    /// How long one write of a response may wait for the client to take more; a client
    /// that stops reading is closed after it instead of holding its connection.
    pub send_timeout: std::time::Duration,
}

#[derive(Debug, Clone, Default)]
pub struct Menu {
    pub default: Option<String>,
    /// Seconds the menu waits before booting `default`.
    pub timeout: u32,
    pub items: Vec<MenuItem>,
}

/// One utility in the boot menu. Each variant path is relative to the HTTP root; an item
/// with no variant for a platform is hidden there.
#[derive(Debug, Clone, Default)]
pub struct MenuItem {
    pub id: String,
    pub title: String,
    pub bios: Option<String>,
    pub efi: Option<String>,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub args: Option<String>,
}

/// A machine pinned to one menu item (or `local`), skipping the menu.
#[derive(Debug, Clone)]
pub struct Host {
    pub mac: [u8; 6],
    pub boot: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Api {
    /// Bearer token for endpoints that change state; without it they are disabled.
    pub admin_token: Option<String>,
}

/// `[steps]`: how the burn-in image's steps run, and the pipeline new machines get.
#[derive(Debug, Clone, PartialEq)]
pub struct Steps {
    /// Seconds of every test in the quick `inventory` step.
    pub inventory_seconds: u32,
    /// Seconds of the full `burnin` step.
    pub burnin_seconds: u32,
    /// Bytes the `burnin` step reads from each disk (`inventory` reads at most 64 MiB).
    pub read_bytes: u64,
    /// Whether `burnin` runs each drive's short self-test.
    pub self_test: bool,
    /// The pipeline a machine never seen before starts with; `None` leaves it at the menu.
    pub pipeline: Option<crate::pipeline::Pipeline>,
}

impl Default for Steps {
    fn default() -> Steps {
        Steps {
            inventory_seconds: 10,
            burnin_seconds: 1800,
            read_bytes: 1 << 30,
            self_test: true,
            pipeline: None,
        }
    }
}

/// A batch: machines racked together and sold as one spec. Machines join by MAC here or
/// through the API.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub name: String,
    pub macs: Vec<[u8; 6]>,
    pub spec: crate::verdict::Spec,
}
