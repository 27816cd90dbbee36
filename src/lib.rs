//! sixboot as a library: the binary is a thin shell over these modules, and the
//! integration tests drive the same code.
//!
//! Layout: one folder per protocol (`dhcp4`, `tftp`, ...), each with a sans-IO core fed
//! bytes plus `now`, and a tokio shell that only moves datagrams; DHCPv4 and DHCPv6 share
//! one receive loop, `datagram`, which sends no reply before its lease is durable.
//! `policy` is the one place that decides who gets what at which stage; `store` keeps
//! leases and machine records durable; `machines` turns every stage into a per-machine
//! record and timeline.

pub mod cli;
pub mod config;
pub mod datagram;
pub mod dhcp4;
pub mod dhcp6;
pub mod explain;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod mac;
pub mod machines;
pub mod metrics;
pub mod netif;
pub mod pipeline;
pub mod policy;
pub mod ra;
pub mod serve;
pub mod step;
pub mod store;
pub mod tftp;
pub mod timeline;
pub mod verdict;
#[cfg(test)]
mod wire_testing;
