//! DHCPv4, for PXE firmware only: `wire` parses and emits packets, `leases` is the
//! in-memory lease table, `server` is the sans-IO decision core, `shell` moves datagrams.
pub mod leases;
pub mod server;
pub mod shell;
pub mod wire;
