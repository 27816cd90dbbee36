//! sixboot as a library: the binary is a thin shell over these modules, and the
//! integration tests drive the same code.
//!
//! Layout: one folder per protocol (`dhcp4`, `tftp`, ...), each with a sans-IO core fed
//! bytes plus `now`, and a tokio shell that only moves datagrams. `policy` is the one place
//! that decides who gets what at which stage; `store` keeps leases durable.

pub mod cli;
pub mod tftp;
