//! The tokio shell of the DHCPv6 server: one UDP socket on port 547 bound to the served
//! interface and joined to ff02::1:2 there. It feeds datagrams to the [`Server`] core,
//! persists each reply's lease changes through the group-commit [`Writer`] and only then
//! sends the reply, so a lease a client was told about survives a crash.

use super::server::{Destination, Refusal, Reply, Server, hex};
use super::wire::{ALL_SERVERS_AND_RELAYS, MessageType, SERVER_PORT, duid};
use crate::config::Ipv6;
use crate::metrics::{Dhcp6Metrics, inc};
use crate::netif::Link;
use crate::policy::Policy;
use crate::store::{Change, Lease6, Outbox, Writer};
use crate::timeline::{Event, Timeline};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// The store's meta key for the server DUID, made once and kept for good: clients
/// remember which server gave them their lease by it.
pub const SERVER_DUID_KEY: &str = "server_duid";

/// Most datagrams read in one go before their leases are handed to the writer.
const MAX_DRAIN: usize = 256;
/// Replies (or reply-less changes) waiting for the disk at once; past this the socket is
/// left to the kernel's buffer until a commit releases some.
const MAX_HELD: usize = 8192;

/// Everything `run` needs; built by `serve` from the config and the store snapshot.
pub struct Dhcp6Context {
    pub cfg: Ipv6,
    pub policy: Arc<Policy>,
    pub interface: String,
    pub writer: Writer,
    /// The v6 leases from the store snapshot.
    pub leases: Vec<Lease6>,
    /// The persisted server DUID ([`server_duid`] of the snapshot's meta); `None` on the
    /// first start, when one is made from the interface's MAC and persisted.
    pub server_duid: Option<Vec<u8>>,
    pub metrics: Dhcp6Metrics,
    pub timeline: Arc<Timeline>,
}

/// The persisted server DUID in a store snapshot's meta, if any.
pub fn server_duid(meta: &[(String, Vec<u8>)]) -> Option<Vec<u8>> {
    meta.iter()
        .find(|(k, _)| k == SERVER_DUID_KEY)
        .map(|(_, v)| v.clone())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn socket(link: &Link, interface: &str) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
    s.bind_device(Some(interface.as_bytes()))?;
    s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, SERVER_PORT)).into())?;
    s.join_multicast_v6(&ALL_SERVERS_AND_RELAYS, link.index)?;
    crate::netif::grow_receive_buffer(&s);
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

/// Serves DHCPv6 on the context's interface until `shutdown` turns true.
pub async fn run(ctx: Dhcp6Context, mut shutdown: watch::Receiver<bool>) -> io::Result<()> {
    let link = Link::get(&ctx.interface)?;
    let address = link.address_in(&ctx.cfg.prefix).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!(
                "interface {} has no IPv6 address to put in boot URLs (want one in {})",
                ctx.interface, ctx.cfg.prefix
            ),
        )
    })?;
    let server_duid = match ctx.server_duid {
        Some(d) => d,
        None => {
            let mac = link.mac.ok_or_else(|| {
                io::Error::other(format!("interface {} has no MAC for a DUID", ctx.interface))
            })?;
            let d = duid::llt(mac, unix_now());
            ctx.writer
                .submit(vec![Change::Meta {
                    key: SERVER_DUID_KEY.into(),
                    value: d.clone(),
                }])
                .await
                .map_err(io::Error::other)?;
            tracing::info!(duid = %hex(&d), "made and stored a new DHCPv6 server DUID");
            d
        }
    };
    let sock = socket(&link, &ctx.interface)?;
    let mut server = Server::new(ctx.cfg, ctx.policy, server_duid, ctx.leases);
    tracing::info!(interface = %ctx.interface, %address, "DHCPv6 server listening on [ff02::1:2]:547");
    // One loop, as in DHCPv4: drain the socket, decide each datagram, hand the batch's
    // changes to the writer at once; send a batch's replies when it is durable.
    let mut outbox: Outbox<(Reply, SocketAddrV6)> = Outbox::new(ctx.writer.clone());
    let mut changes = Vec::new();
    let mut replies = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            (result, batch) = outbox.released() => match result {
                Ok(()) => {
                    for (reply, from) in batch {
                        send(&sock, &ctx.metrics, &ctx.timeline, reply, from).await;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, replies = batch.len(), "DHCPv6 replies withheld: leases not stored");
                    ctx.metrics.store_failures.inc_by(batch.len() as u64);
                }
            },
            r = sock.readable(), if outbox.held() < MAX_HELD => {
                r?;
                for _ in 0..MAX_DRAIN {
                    let (n, from) = match sock.try_recv_from(&mut buf) {
                        Ok(got) => got,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    };
                    let SocketAddr::V6(from) = from else { continue };
                    let bytes = &buf[..n];
                    let message = bytes
                        .first()
                        .and_then(|&t| MessageType::from_u8(t))
                        .map_or("unknown", MessageType::as_str);
                    inc(&ctx.metrics.received, "type", message);
                    match server.handle(unix_now(), address, bytes, from).result {
                        Ok(reply) if reply.changes.is_empty() => {
                            send(&sock, &ctx.metrics, &ctx.timeline, reply, from).await;
                        }
                        Ok(mut reply) => {
                            changes.append(&mut reply.changes);
                            replies.push((reply, from));
                        }
                        Err(why) => ignored(&ctx.metrics, from, why),
                    }
                }
                if !changes.is_empty() {
                    outbox.hold(std::mem::take(&mut changes), std::mem::take(&mut replies));
                }
            }
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

fn ignored(metrics: &Dhcp6Metrics, from: SocketAddrV6, why: Refusal) {
    tracing::debug!(%from, reason = why.as_str(), "DHCPv6 ignored: {why}");
    inc(&metrics.ignored, "reason", why.as_str());
}

/// Sends a reply whose changes are durable: to the client's port 546, or back to the
/// relay it came through. Then logs, counts and puts it on the machine's timeline.
async fn send(
    sock: &UdpSocket,
    metrics: &Dhcp6Metrics,
    timeline: &Timeline,
    reply: Reply,
    from: SocketAddrV6,
) {
    let (Destination::Client(to) | Destination::Relay(to)) = reply.dest;
    let sent = match sock.try_send_to(&reply.bytes, to.into()) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => sock.send_to(&reply.bytes, to).await,
        other => other,
    };
    if let Err(e) = sent {
        tracing::warn!(%to, error = %e, "DHCPv6 reply not sent");
        inc(&metrics.ignored, "reason", "send_failed");
        return;
    }
    let client = reply.client.label();
    if let Some(mac) = reply.mac {
        for &a in &reply.addrs {
            timeline.learn(a.into(), mac);
        }
        if let Some((duid, iaid)) = reply.identity.clone() {
            timeline.identify6(mac, duid, iaid);
        }
    }
    let given = match &reply.boot {
        Ok(url) => format!("url={url}"),
        Err(why) => format!("no boot URL ({})", why.as_str()),
    };
    timeline.record(Event {
        mac: reply.mac,
        ip: Some((*from.ip()).into()),
        protocol: "dhcp6",
        stage: "answered",
        detail: format!(
            "{} {client} {:?} {given}",
            reply.answered.as_str(),
            reply.addrs
        ),
    });
    match &reply.boot {
        Ok(url) => {
            tracing::info!(%to, request = reply.answered.as_str(), client, addrs = ?reply.addrs, boot_url = %url, "DHCPv6 reply")
        }
        Err(why) => {
            tracing::info!(%to, request = reply.answered.as_str(), client, addrs = ?reply.addrs, "DHCPv6 reply, no boot URL: {why}")
        }
    }
    metrics
        .replies
        .get_or_create(&[("type", reply.answered.as_str()), ("client", client)])
        .inc();
}
