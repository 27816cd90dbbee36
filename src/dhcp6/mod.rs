//! DHCPv6 (RFC 8415): addresses from `[ipv6] pool` and, by client class, a boot URL in
//! option 59. `wire` parses and emits, `leases` keeps the lease table, `server` is the
//! sans-IO core, `shell` moves datagrams and waits for the disk.
pub mod leases;
pub mod server;
pub mod shell;
pub mod wire;

pub use crate::metrics::Dhcp6Metrics;
pub use shell::{Dhcp6Context, SERVER_DUID_KEY, run, server_duid};
