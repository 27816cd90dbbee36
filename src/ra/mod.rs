//! Router advertisements (RFC 4861) for `[ipv6]`: M=1 O=1 so clients (iPXE first) ask
//! DHCPv6 for their address and boot URL, the prefix on-link, router lifetime 0 unless
//! configured (sixboot is not a router). `wire` is the packet format, `sender` the
//! sans-IO schedule, `shell` the raw socket.
pub mod sender;
pub mod shell;
pub mod wire;

pub use crate::metrics::RaMetrics;
pub use shell::run;
