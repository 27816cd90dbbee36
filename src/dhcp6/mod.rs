//! DHCPv6 (RFC 8415): addresses from `[ipv6] pool` and, by client class, a boot URL in
//! option 59. `wire` parses and emits, `leases` keeps the lease table, `server` is the
//! sans-IO core, `shell` moves datagrams.
pub mod leases;
pub mod server;
pub mod wire;
