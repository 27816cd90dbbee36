//! DHCPv4, for PXE firmware only: `wire` parses and emits packets, `leases` is the
//! in-memory lease table, `server` is the sans-IO decision core, `shell` binds the socket
//! and accounts what was answered; the receive loop is [`crate::datagram`].
pub mod leases;
pub mod server;
pub mod shell;
pub mod wire;
