//! What the shells need to know about the served interface: its index (for scope ids and
//! multicast joins), its MAC (DUID, RA source link-layer option) and its IPv4 and IPv6
//! addresses (server identifier, URLs).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

pub struct Link {
    pub index: u32,
    pub mac: Option<[u8; 6]>,
    pub v4: Vec<Ipv4Addr>,
    pub v6: Vec<Ipv6Addr>,
}

impl Link {
    /// Reads the interface `name` in the calling thread's network namespace.
    pub fn get(name: &str) -> io::Result<Link> {
        let index = nix::net::if_::if_nametoindex(name).map_err(|e| {
            io::Error::new(io::ErrorKind::NotFound, format!("interface {name}: {e}"))
        })?;
        let mut link = Link {
            index,
            mac: None,
            v4: Vec::new(),
            v6: Vec::new(),
        };
        for ifa in nix::ifaddrs::getifaddrs()?.filter(|i| i.interface_name == name) {
            let Some(a) = ifa.address else { continue };
            if let Some(mac) = a.as_link_addr().and_then(|l| l.addr()) {
                link.mac = Some(mac);
            } else if let Some(v4) = a.as_sockaddr_in() {
                link.v4.push(v4.ip());
            } else if let Some(v6) = a.as_sockaddr_in6() {
                link.v6.push(v6.ip());
            }
        }
        Ok(link)
    }

    /// This server's address for clients on the link: one inside `prefix`, else any
    /// address that is not link-local (a URL cannot carry a zone index for firmware).
    pub fn address_in(&self, prefix: &ipnet::Ipv6Net) -> Option<Ipv6Addr> {
        let global = |a: &&Ipv6Addr| !a.is_unicast_link_local() && !a.is_loopback();
        self.v6
            .iter()
            .find(|a| prefix.contains(*a))
            .or_else(|| self.v6.iter().find(global))
            .copied()
    }

    /// This server's IPv4 address for clients on the link: one inside `subnet`, else the
    /// first it has.
    pub fn address_v4_in(&self, subnet: &ipnet::Ipv4Net) -> Option<Ipv4Addr> {
        self.v4
            .iter()
            .find(|a| subnet.contains(*a))
            .or(self.v4.first())
            .copied()
    }
}

/// Receive buffer asked for on the DHCP sockets: room for a few thousand requests.
const DHCP_RECEIVE_BUFFER: usize = 4 << 20;

/// Gives a DHCP socket a receive buffer that rides out a boot storm: while the server
/// thread is off the CPU (a commit, a neighbour's process), requests queue in the kernel
/// instead of being dropped. Past `net.core.rmem_max` only with CAP_NET_ADMIN
/// (SO_RCVBUFFORCE); without it the kernel's cap applies. Best effort: a smaller buffer
/// costs drops under load, not correctness.
pub fn grow_receive_buffer(sock: &socket2::Socket) {
    use nix::sys::socket::{setsockopt, sockopt::RcvBufForce};
    if setsockopt(sock, RcvBufForce, &DHCP_RECEIVE_BUFFER).is_err()
        && let Err(e) = sock.set_recv_buffer_size(DHCP_RECEIVE_BUFFER)
    {
        tracing::debug!(error = %e, "cannot grow the DHCP receive buffer");
    }
}
