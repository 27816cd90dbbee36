//! The tokio shell of the DHCPv6 server: one UDP socket on port 547 bound to the served
//! interface and joined to ff02::1:2 there, the server DUID made and kept, and DHCPv6's
//! metrics and timeline steps. The receive loop is the shared one in [`crate::datagram`]:
//! a reply leaves only once its lease changes are durable, so a lease a client was told
//! about survives a crash.

use super::server::{Destination, Outcome, Reply, Server};
use super::wire::{ALL_SERVERS_AND_RELAYS, MessageType, SERVER_PORT, duid};
use crate::config::Ipv6;
use crate::datagram::{self, Failure, LocalAddress, Service};
use crate::metrics::{Dhcp6Metrics, inc};
use crate::netif::Link;
use crate::policy::Policy;
use crate::step::Protocol;
use crate::store::{Change, Lease6, Writer};
use crate::timeline::{Event, Stage, Timeline};
use socket2::{Domain, Socket, Type};
use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// The store's meta key for the server DUID, made once and kept for good: clients
/// remember which server gave them their lease by it.
pub const SERVER_DUID_KEY: &str = "server_duid";

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

fn socket(link: &Link, interface: &str) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(socket2::Protocol::UDP))?;
    s.set_only_v6(true)?;
    s.bind_device(Some(interface.as_bytes()))?;
    s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, SERVER_PORT)).into())?;
    s.join_multicast_v6(&ALL_SERVERS_AND_RELAYS, link.index)?;
    crate::netif::grow_receive_buffer(&s);
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

/// Serves DHCPv6 on the context's interface until `shutdown` turns true, through the
/// shared datagram loop ([`datagram::serve`]).
pub async fn run(ctx: Dhcp6Context, shutdown: watch::Receiver<bool>) -> io::Result<()> {
    let link = Link::get(&ctx.interface)?;
    let server_duid = match ctx.server_duid {
        Some(d) => d,
        None => {
            let mac = link.mac.ok_or_else(|| {
                io::Error::other(format!("interface {} has no MAC for a DUID", ctx.interface))
            })?;
            let d = duid::llt(mac, datagram::unix_now());
            ctx.writer
                .submit(vec![Change::Meta {
                    key: SERVER_DUID_KEY.into(),
                    value: d.clone(),
                }])
                .await
                .map_err(io::Error::other)?;
            tracing::info!(duid = %hex::encode(&d), "made and stored a new DHCPv6 server DUID");
            d
        }
    };
    let sock = socket(&link, &ctx.interface)?;
    let (interface, prefix) = (ctx.interface.clone(), ctx.cfg.prefix);
    // One in the prefix, else any routable one: a URL cannot carry a link-local zone.
    let mut local = LocalAddress::new(move || Link::get(&interface).ok()?.address_in(&prefix));
    match local.get() {
        Some(address) => {
            tracing::info!(interface = %ctx.interface, %address, "DHCPv6 server listening on [ff02::1:2]:547")
        }
        None => tracing::warn!(
            interface = %ctx.interface,
            "DHCPv6 server listening on [ff02::1:2]:547, but the interface has no IPv6 address to put in boot URLs (want one in {prefix}): nothing is answered until it has one",
        ),
    }
    let service = Dhcp6 {
        local,
        server: Server::new(ctx.cfg, ctx.policy, server_duid, ctx.leases),
        metrics: ctx.metrics,
        timeline: ctx.timeline,
    };
    datagram::serve("DHCPv6", service, &sock, ctx.writer, shutdown).await
}

/// The DHCPv6 core as the datagram loop sees it.
struct Dhcp6 {
    local: LocalAddress<Ipv6Addr>,
    server: Server,
    metrics: Dhcp6Metrics,
    timeline: Arc<Timeline>,
}

impl Service for Dhcp6 {
    type Decision = Outcome;

    fn decide(&mut self, now: u64, datagram: &[u8], from: SocketAddr) -> (Outcome, Vec<Change>) {
        // Without an address there is no boot URL to give; the core refuses.
        let local = self.local.get().unwrap_or(Ipv6Addr::UNSPECIFIED);
        let mut out = self.server.handle(now, local, datagram, v6(from));
        let request = out.request.map_or("unknown", MessageType::as_str);
        inc(&self.metrics.received, "type", request);
        let changes = out
            .result
            .as_mut()
            .map(|r| std::mem::take(&mut r.changes))
            .unwrap_or_default();
        (out, changes)
    }

    fn reply<'d>(&mut self, _sock: &UdpSocket, out: &'d Outcome) -> Option<(&'d [u8], SocketAddr)> {
        let r = out.result.as_ref().ok()?;
        Some((&r.bytes, to(r).into()))
    }

    fn done(&mut self, out: Outcome, from: SocketAddr) {
        let reply = match out.result {
            Ok(reply) => reply,
            Err(why) => {
                tracing::debug!(%from, reason = why.as_str(), "DHCPv6 ignored: {why}");
                inc(&self.metrics.ignored, "reason", why.as_str());
                return;
            }
        };
        let client = reply.client.label();
        if let Some(mac) = reply.mac {
            for &a in &reply.addrs {
                self.timeline.learn(a.into(), mac);
            }
            if let Some((duid, iaid)) = reply.identity.clone() {
                self.timeline.identify6(mac, duid, iaid);
            }
        }
        let given = match &reply.boot {
            Ok(url) => format!("url={url}"),
            Err(why) => format!("no boot URL ({})", why.as_str()),
        };
        let detail = format!(
            "{} {client} {:?} {given}",
            reply.answered.as_str(),
            reply.addrs
        );
        stage(&self.timeline, reply.mac, from, Stage::Answered, detail);
        let to = to(&reply);
        match &reply.boot {
            Ok(url) => {
                tracing::info!(%to, request = reply.answered.as_str(), client, addrs = ?reply.addrs, boot_url = %url, "DHCPv6 reply")
            }
            Err(why) => {
                tracing::info!(%to, request = reply.answered.as_str(), client, addrs = ?reply.addrs, "DHCPv6 reply, no boot URL: {why}")
            }
        }
        self.metrics
            .replies
            .get_or_create(&[("type", reply.answered.as_str()), ("client", client)])
            .inc();
    }

    fn failed(&mut self, out: Outcome, from: SocketAddr, why: &Failure) {
        tracing::debug!(%from, reason = why.as_str(), "DHCPv6 not answered: {why}");
        inc(&self.metrics.ignored, "reason", why.as_str());
        if let Failure::Store(_) = why {
            self.metrics.store_failures.inc();
        }
        let mac = out.result.ok().and_then(|r| r.mac);
        stage(&self.timeline, mac, from, Stage::Refused, why.to_string());
    }
}

/// Where the core said the reply goes.
fn to(reply: &Reply) -> SocketAddrV6 {
    let (Destination::Client(to) | Destination::Relay(to)) = reply.dest;
    to
}

/// The socket is IPv6-only, so every source is an IPv6 one; an IPv4 one is taken as
/// IPv4-mapped rather than given a path of its own.
fn v6(from: SocketAddr) -> SocketAddrV6 {
    match from {
        SocketAddr::V6(a) => a,
        SocketAddr::V4(a) => SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0),
    }
}

/// Puts one DHCPv6 step on the machine's timeline: every stage this shell records goes
/// through here.
fn stage(
    timeline: &Timeline,
    mac: Option<[u8; 6]>,
    from: SocketAddr,
    stage: Stage,
    detail: String,
) {
    timeline.record(Event {
        mac,
        ip: Some(from.ip()),
        protocol: Protocol::Dhcp6,
        stage,
        detail,
        file: None,
    });
}
