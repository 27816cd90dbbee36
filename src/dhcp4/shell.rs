//! The tokio shell around the DHCPv4 core: one socket on port 67 bound to the interface
//! (SO_BINDTODEVICE, so replies never leave on another interface), a neighbour entry for
//! unicast to clients without an address, and the durable-before-reply rule.

use super::server::{Destination, Outcome, Refusal, Reply, Server};
use super::wire::{CLIENT_PORT, MessageType, SERVER_PORT};
use crate::mac::Mac;
use crate::metrics::{Dhcp4Metrics, inc};
use crate::netif::Link;
use crate::store::{Change, Outbox, Writer};
use crate::timeline::{Event, Timeline};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Everything the DHCPv4 task needs.
pub struct Context {
    pub interface: String,
    pub server: Server,
    pub writer: Writer,
    pub metrics: Dhcp4Metrics,
    pub timeline: Arc<Timeline>,
}

/// How often the interface's IPv4 address is looked up again.
const ADDRESS_REFRESH: Duration = Duration::from_secs(5);
/// How often the lease gauges are recomputed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

fn bind(interface: &str) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(interface.as_bytes())).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("bind DHCPv4 socket to interface {interface}: {e}"),
        )
    })?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, SERVER_PORT)).into())
        .map_err(|e| io::Error::new(e.kind(), format!("bind DHCPv4 port {SERVER_PORT}: {e}")))?;
    crate::netif::grow_receive_buffer(&s);
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

/// The interface's IPv4 address, preferring one inside `subnet`.
fn interface_v4(interface: &str, subnet: &ipnet::Ipv4Net) -> Option<Ipv4Addr> {
    Link::get(interface).ok()?.address_v4_in(subnet)
}

/// Writes a permanent-until-replaced ARP entry so a unicast reply can reach a client that
/// has no address yet (what dnsmasq does with SIOCSARP).
fn set_neighbour(sock: &UdpSocket, interface: &str, ip: Ipv4Addr, mac: [u8; 6]) -> io::Result<()> {
    // SAFETY: `arpreq` is plain old data; every field we read is written first, and the
    // ioctl only reads the struct we pass.
    unsafe {
        let mut req: libc::arpreq = std::mem::zeroed();
        let pa = &mut req.arp_pa as *mut libc::sockaddr as *mut libc::sockaddr_in;
        (*pa).sin_family = libc::AF_INET as libc::sa_family_t;
        (*pa).sin_addr.s_addr = u32::from(ip).to_be();
        req.arp_ha.sa_family = libc::ARPHRD_ETHER;
        for (d, s) in req.arp_ha.sa_data.iter_mut().zip(mac) {
            *d = s as libc::c_char;
        }
        req.arp_flags = libc::ATF_COM;
        for (d, s) in req.arp_dev.iter_mut().zip(interface.bytes().take(15)) {
            *d = s as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSARP, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Most datagrams read in one go before their leases are handed to the writer.
const MAX_DRAIN: usize = 256;
/// Replies (or reply-less changes) waiting for the disk at once; past this the socket is
/// left to the kernel's buffer until a commit releases some.
const MAX_HELD: usize = 8192;

/// Serves DHCPv4 until `shutdown` turns true.
///
/// One loop: when the socket is readable it drains every queued datagram (up to
/// [`MAX_DRAIN`]), decides each, and hands all their leases to the writer as one batch;
/// when a batch is durable it sends all of that batch's replies at once. The loop never
/// waits for the disk itself.
pub async fn run(mut ctx: Context, mut shutdown: watch::Receiver<bool>) -> io::Result<()> {
    let sock = bind(&ctx.interface)?;
    let subnet = ctx.server.subnet();
    let mut local = interface_v4(&ctx.interface, &subnet);
    let mut looked_up = Instant::now();
    ctx.metrics
        .pool_size
        .set(ctx.server.leases().pool_size() as i64);
    info!(interface = %ctx.interface, address = ?local, "DHCPv4 listening on port 67 (firmware only)");
    let mut neighbour_ok = true;
    let mut buf = vec![0u8; 4096];
    let mut gauges = tokio::time::interval(GAUGE_INTERVAL);
    let mut outbox: Outbox<Reply> = Outbox::new(ctx.writer.clone());
    let mut changes = Vec::new();
    let mut replies = Vec::new();
    loop {
        tokio::select! {
            (result, batch) = outbox.released() => match result {
                Ok(()) => {
                    for r in batch {
                        send(&sock, &ctx, &mut neighbour_ok, r).await;
                    }
                }
                Err(e) => {
                    ctx.metrics.store_failures.inc_by(batch.len() as u64);
                    warn!(error = %e, replies = batch.len(), "leases not durable; replies withheld");
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
                    if local.is_none() || looked_up.elapsed() > ADDRESS_REFRESH {
                        local = interface_v4(&ctx.interface, &subnet);
                        looked_up = Instant::now();
                    }
                    let out = ctx
                        .server
                        .handle(unix_now(), local.unwrap_or(Ipv4Addr::UNSPECIFIED), &buf[..n]);
                    account(&ctx.metrics, &ctx.timeline, &out, from);
                    let Outcome { result, persist, .. } = out;
                    match (persist, result) {
                        (Some(l), reply) => {
                            changes.push(Change::Lease4(l));
                            replies.extend(reply.ok());
                        }
                        // Nothing to make durable: it may leave at once.
                        (None, Ok(reply)) => send(&sock, &ctx, &mut neighbour_ok, reply).await,
                        (None, Err(_)) => {}
                    }
                }
                if !changes.is_empty() {
                    outbox.hold(std::mem::take(&mut changes), std::mem::take(&mut replies));
                }
            }
            _ = gauges.tick() => {
                // Counting active leases walks the table: once a second, not per packet.
                ctx.metrics.leases_active.set(ctx.server.leases().active(unix_now()) as i64);
            }
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// Sends one reply where the core said, without waiting unless the socket buffer is full.
async fn send(sock: &UdpSocket, ctx: &Context, neighbour_ok: &mut bool, r: Reply) {
    let to = match r.dest {
        Destination::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT),
        Destination::Relay(g) => SocketAddrV4::new(g, SERVER_PORT),
        Destination::Client(c) => SocketAddrV4::new(c, CLIENT_PORT),
        Destination::Unicast { ip, mac } => match set_neighbour(sock, &ctx.interface, ip, mac) {
            Ok(()) => SocketAddrV4::new(ip, CLIENT_PORT),
            Err(e) => {
                if std::mem::replace(neighbour_ok, false) {
                    warn!(error = %e, "cannot add neighbour entries (needs CAP_NET_ADMIN); broadcasting replies instead");
                }
                SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
            }
        },
    };
    let sent = match sock.try_send_to(&r.packet, to.into()) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => sock.send_to(&r.packet, to).await,
        other => other,
    };
    match sent {
        Ok(_) => inc(&ctx.metrics.replies, "type", r.kind.name()),
        Err(e) => warn!(error = %e, %to, "sending DHCPv4 reply failed"),
    }
}

/// Logs and counts one decision, and puts what the machine got on its timeline.
fn account(m: &Dhcp4Metrics, timeline: &Timeline, out: &Outcome, from: SocketAddr) {
    // Formatted only if a log line is written: no string per packet.
    let mac = Mac(out.mac.as_ref().map_or(&[][..], |m| &m[..]));
    let msg = out.request.map_or("?", MessageType::name);
    inc(&m.received, "type", msg);
    let arch = out.boot.as_ref().map(|b| b.arch.name()).unwrap_or_default();
    let file = out
        .boot
        .as_ref()
        .map(|b| b.file.as_str())
        .unwrap_or_default();
    let stage = |stage, detail: String| Event {
        mac: out.mac,
        ip: None,
        protocol: "dhcp4",
        stage,
        detail,
    };
    match &out.result {
        Ok(r) if r.kind == MessageType::Ack => {
            if let Some(mac) = out.mac {
                timeline.learn(r.yiaddr.into(), mac);
            }
            timeline.record(stage(
                "answered",
                format!("{} arch={arch} file={file}", r.yiaddr),
            ));
        }
        Err(Refusal::Policy(why)) => {
            timeline.record(stage("refused", why.as_str().to_string()));
        }
        _ => {}
    }
    match &out.result {
        Ok(r) => {
            info!(%mac, %from, request = %msg, reply = %r.kind.name(), yiaddr = %r.yiaddr, %arch, %file, "dhcp4 answered")
        }
        Err(Refusal::PoolExhausted) => {
            inc(&m.ignored, "reason", Refusal::PoolExhausted.as_str());
            warn!(%mac, %from, request = %msg, reason = "pool_exhausted", "dhcp4 not answered: the address pool is exhausted");
        }
        Err(reason) => {
            inc(&m.ignored, "reason", reason.as_str());
            debug!(%mac, %from, request = %msg, reason = %reason.as_str(), detail = %reason, "dhcp4 not answered");
        }
    }
}
