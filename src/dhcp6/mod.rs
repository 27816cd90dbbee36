//! DHCPv6 (RFC 8415): addresses from `[ipv6] pool` and, by client class, a boot URL in
//! option 59. `wire` parses and emits, `leases` keeps the lease table, `server` is the
//! sans-IO core, `shell` binds the socket and accounts what was answered; the receive loop
//! that waits for the disk is [`crate::datagram`].
pub mod leases;
pub mod server;
pub mod shell;
pub mod wire;

pub use crate::metrics::Dhcp6Metrics;
pub use shell::{Dhcp6Context, SERVER_DUID_KEY, run, server_duid};
