//! TFTP server: how legacy PXE and UEFI firmware load their first stage (`undionly.kpxe`,
//! `snponly.efi`), over IPv4 and, for PXEv6, over IPv6.
//!
//! Existing crates mishandle what real firmware does (an ERROR after OACK, EDK2's tsize
//! probe, a new RRQ from a busy port), so the protocol lives in sans-IO cores that tests
//! drive byte by byte with a fake clock:
//!
//! - [`wire`]: packets and options, parse and emit.
//! - [`session`]: one read transfer: negotiation, windows (RFC 7440), rollover, retries.
//! - [`server`]: admission of requests on port 69: refusals, limits, stale transfers.
//! - [`paths`]: request names to files inside the root.
//! - [`cache`], [`netascii`]: what gets served, from memory where that helps.
//!
//! [`run`] is the tokio shell that moves the datagrams and file bytes, sending each window
//! of DATA with UDP GSO where the kernel allows.

mod batch;
pub mod cache;
pub mod metrics;
pub mod netascii;
pub mod paths;
pub mod server;
pub mod session;
mod shell;
pub mod wire;

use std::path::PathBuf;
use std::time::Duration;

pub use metrics::TftpMetrics;
pub use shell::{TFTP_PORT, run};

/// What `[tftp]` in the config sets, with defaults sized for a few hundred machines
/// booting at once on a small VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TftpConfig {
    /// Everything served lives under here; see [`paths`].
    pub root: PathBuf,
    /// Transfers running at once, all clients together.
    pub max_transfers: usize,
    /// Transfers running at once from one IP address.
    pub max_per_client: usize,
    /// Retransmission timeout unless the client negotiates one.
    pub timeout: Duration,
    /// Retransmissions of a window before giving up.
    pub max_retries: u32,
    /// Largest RFC 7440 window granted.
    pub max_windowsize: u16,
    /// Files up to this size are kept in memory once read.
    pub cache_max_file: u64,
    /// Memory for cached files, all together.
    pub cache_max_total: u64,
}

impl TftpConfig {
    /// Defaults for everything but the root.
    pub fn new(root: impl Into<PathBuf>) -> TftpConfig {
        TftpConfig {
            root: root.into(),
            max_transfers: 512,
            max_per_client: 8,
            timeout: Duration::from_secs(1),
            max_retries: 5,
            max_windowsize: 64,
            cache_max_file: 16 << 20,
            cache_max_total: 128 << 20,
        }
    }
}
