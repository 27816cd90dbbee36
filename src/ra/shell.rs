//! The tokio shell of the RA sender: a raw ICMPv6 socket bound to the interface, joined
//! to all-routers (ff02::2) to hear solicitations, with a kernel filter that passes only
//! RS and RA. Hop limit 255 goes out on every RA and is checked on every packet in
//! (IPV6_RECVHOPLIMIT), so nothing from off-link is believed.

use super::sender::{Handled, Sender, advert};
use super::wire::{ALL_NODES, ALL_ROUTERS, HOP_LIMIT, ROUTER_ADVERT, ROUTER_SOLICIT};
use crate::config::Ipv6;
use crate::metrics::{RaMetrics, inc};
use crate::netif::Link;
use crate::timeline::{Event, Timeline};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn6, recvmsg, setsockopt, sockopt};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

/// `ICMP6_FILTER` (RFC 3542 §3.2); libc does not define it.
const ICMP6_FILTER: libc::c_int = 1;

/// Lets only RS and RA up from the kernel: the filter is a bitmap of types to block.
fn pass_only_router_discovery(s: &Socket) -> io::Result<()> {
    let mut filter = [u32::MAX; 8];
    for t in [ROUTER_SOLICIT, ROUTER_ADVERT] {
        filter[(t >> 5) as usize] &= !(1u32 << (t & 31));
    }
    // SAFETY: a valid socket and a pointer to an 8-word filter, the size the kernel expects.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_ICMPV6,
            ICMP6_FILTER,
            filter.as_ptr().cast(),
            std::mem::size_of_val(&filter) as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn socket(link: &Link, interface: &str) -> io::Result<Socket> {
    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    s.bind_device(Some(interface.as_bytes()))?;
    s.set_multicast_if_v6(link.index)?;
    s.set_multicast_hops_v6(HOP_LIMIT.into())?;
    s.set_unicast_hops_v6(HOP_LIMIT.into())?;
    s.set_multicast_loop_v6(false)?;
    s.join_multicast_v6(&ALL_ROUTERS, link.index)?;
    setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true)?;
    pass_only_router_discovery(&s)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// One datagram with its source and hop limit; `None` hop limit if the kernel gave none.
fn receive(s: &Socket, buf: &mut [u8]) -> io::Result<(usize, Ipv6Addr, Option<u8>)> {
    let mut cmsg = nix::cmsg_space!(libc::c_int);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn6>(s.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty())?;
    let hop_limit = msg.cmsgs()?.find_map(|c| match c {
        ControlMessageOwned::Ipv6HopLimit(h) => u8::try_from(h).ok(),
        _ => None,
    });
    let from = msg.address.map_or(Ipv6Addr::UNSPECIFIED, |a| a.ip());
    Ok((msg.bytes, from, hop_limit))
}

/// Sends router advertisements on `interface` until `shutdown` turns true. With
/// `[ipv6] router_advertisements = false` it sends nothing and just waits for shutdown.
pub async fn run(
    cfg: Ipv6,
    interface: String,
    metrics: RaMetrics,
    timeline: Arc<Timeline>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    if !cfg.router_advertisements {
        tracing::info!("router advertisements are off ([ipv6] router_advertisements = false)");
        let _ = shutdown.wait_for(|stop| *stop).await;
        return Ok(());
    }
    let link = Link::get(&interface)?;
    // SAFETY: a socket2 Socket owns its descriptor until dropped, and `as_raw_fd` always
    // returns that one; the AsyncFd owns the Socket.
    let sock = unsafe { AsyncFd::register(socket(&link, &interface)?) }
        .map_err(|e| io::Error::other(e.to_string()))?;
    let to = SockAddr::from(SocketAddrV6::new(ALL_NODES, 0, 0, link.index));
    let mut sender = Sender::new(Instant::now(), advert(&cfg, link.mac));
    tracing::info!(%interface, prefix = %cfg.prefix, "sending router advertisements (M=1 O=1)");
    let mut buf = vec![0u8; 1500];
    while !*shutdown.borrow() {
        let wake = tokio::time::Instant::from_std(sender.poll_timeout());
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep_until(wake) => {
                if let Some((bytes, kind)) = sender.poll_transmit(Instant::now(), fastrand::f64()) {
                    match sock.get_ref().send_to(bytes, &to) {
                        Ok(_) => {
                            inc(&metrics.sent, "kind", kind.as_str());
                        }
                        // The link-local address may still be tentative at start; the next
                        // RA or an RS answer goes out later.
                        Err(e) => {
                            tracing::warn!(error = %e, kind = kind.as_str(), "router advertisement not sent");
                        }
                    }
                }
            }
            ready = sock.readable() => {
                let mut guard = ready?;
                let Ok(got) = guard.try_io(|s| receive(s.get_ref(), &mut buf)) else { continue };
                let (n, from, hop_limit) = got?;
                // No hop limit from the kernel cannot be checked, so it counts as wrong.
                let hop_limit = hop_limit.unwrap_or(0);
                match sender.handle(Instant::now(), &buf[..n], from, hop_limit, fastrand::f64()) {
                    Ok(Handled::Solicited { mac, at, coalesced }) => {
                        let delay = at.saturating_duration_since(Instant::now());
                        tracing::debug!(%from, coalesced, ?delay, "router solicitation");
                        metrics.solicitations.inc();
                        timeline.record(Event {
                            mac,
                            ip: (!from.is_unspecified()).then_some(from.into()),
                            protocol: crate::step::Protocol::Ra,
                            stage: crate::step::Stage::Solicited,
                            detail: "router advertisement scheduled".into(),
                            file: None,
                        });
                    }
                    Ok(Handled::PeerAdvert) => {}
                    Ok(Handled::Conflict { from, managed, other }) => {
                        let ours = sender.advert();
                        tracing::warn!(
                            sender = %from,
                            "another router advertisement on the link has conflicting flags: {from} sends M={} O={}, sixboot sends M={} O={}; iPXE obeys only the first RA it sees",
                            u8::from(managed), u8::from(other), u8::from(ours.managed), u8::from(ours.other)
                        );
                        metrics.conflicts.inc();
                    }
                    Err(why) => {
                        tracing::debug!(%from, reason = why.as_str(), "ICMPv6 ignored: {why}");
                        inc(&metrics.ignored, "reason", why.as_str());
                    }
                }
            }
        }
    }
    Ok(())
}
