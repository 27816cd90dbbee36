//! The tokio shell around the DHCPv4 core: one socket on port 67 bound to the interface
//! (SO_BINDTODEVICE, so replies never leave on another interface), a neighbour entry for
//! unicast to clients without an address, and DHCPv4's metrics and timeline steps. The
//! receive loop, and with it the durable-before-reply rule, is the shared one in
//! [`crate::datagram`].

use super::server::{Destination, Outcome, Refusal, Server};
use super::wire::{CLIENT_PORT, MessageType, SERVER_PORT};
use crate::datagram::{self, Failure, LocalAddress, Service};
use crate::mac::Mac;
use crate::metrics::{Dhcp4Metrics, inc};
use crate::netif::Link;
use crate::step::Protocol;
use crate::store::{Change, Writer};
use crate::timeline::{Event, Stage, Timeline};
use socket2::{Domain, Socket, Type};
use std::borrow::Cow;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::Arc;
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

fn bind(interface: &str) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(socket2::Protocol::UDP))?;
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

/// Serves DHCPv4 until `shutdown` turns true, through the shared datagram loop
/// ([`datagram::serve`]).
pub async fn run(ctx: Context, shutdown: watch::Receiver<bool>) -> io::Result<()> {
    let sock = bind(&ctx.interface)?;
    let (interface, subnet) = (ctx.interface.clone(), ctx.server.subnet());
    // Preferring an address inside the subnet.
    let mut local = LocalAddress::new(move || Link::get(&interface).ok()?.address_v4_in(&subnet));
    info!(interface = %ctx.interface, address = ?local.get(), "DHCPv4 listening on port 67 (firmware only)");
    ctx.metrics
        .pool_size
        .set(ctx.server.leases().pool_size() as i64);
    let service = Dhcp4 {
        interface: ctx.interface,
        local,
        server: ctx.server,
        metrics: ctx.metrics,
        timeline: ctx.timeline,
        neighbour_ok: true,
    };
    datagram::serve("DHCPv4", service, &sock, ctx.writer, shutdown).await
}

/// The DHCPv4 core as the datagram loop sees it.
struct Dhcp4 {
    interface: String,
    local: LocalAddress<Ipv4Addr>,
    server: Server,
    metrics: Dhcp4Metrics,
    timeline: Arc<Timeline>,
    /// Cleared after the first failed neighbour entry, so the fallback is logged once.
    neighbour_ok: bool,
}

impl Service for Dhcp4 {
    type Decision = Outcome;

    fn decide(&mut self, now: u64, datagram: &[u8], _from: SocketAddr) -> (Outcome, Vec<Change>) {
        // Without an address only relayed requests can be served; the core says so.
        let local = self.local.get().unwrap_or(Ipv4Addr::UNSPECIFIED);
        let mut out = self.server.handle(now, local, datagram);
        let request = out.request.map_or("?", MessageType::name);
        inc(&self.metrics.received, "type", request);
        let changes = out.persist.take().map(Change::Lease4).into_iter().collect();
        (out, changes)
    }

    fn reply<'d>(&mut self, sock: &UdpSocket, out: &'d Outcome) -> Option<(&'d [u8], SocketAddr)> {
        let r = out.result.as_ref().ok()?;
        let to = match r.dest {
            Destination::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT),
            Destination::Relay(g) => SocketAddrV4::new(g, SERVER_PORT),
            Destination::Client(c) => SocketAddrV4::new(c, CLIENT_PORT),
            Destination::Unicast { ip, mac } => self.unicast(sock, ip, mac),
        };
        Some((&r.packet, to.into()))
    }

    fn done(&mut self, out: Outcome, from: SocketAddr) {
        let m = &self.metrics;
        let (mac, request) = (mac_of(&out), out.request.map_or("?", MessageType::name));
        let (arch, file) = boot_of(&out);
        match &out.result {
            Ok(r) => {
                inc(&m.replies, "type", r.kind.name());
                if r.kind == MessageType::Ack {
                    if let Some(mac) = out.mac {
                        self.timeline.learn(r.yiaddr.into(), mac);
                    }
                    stage(
                        &self.timeline,
                        out.mac,
                        Stage::Answered,
                        format!("{} arch={arch} file={file}", r.yiaddr),
                    );
                }
                info!(%mac, %from, %request, reply = %r.kind.name(), yiaddr = %r.yiaddr, %arch, %file, "dhcp4 answered");
            }
            Err(Refusal::PoolExhausted) => {
                inc(&m.ignored, "reason", Refusal::PoolExhausted.as_str());
                warn!(%mac, %from, %request, reason = "pool_exhausted", "dhcp4 not answered: the address pool is exhausted");
            }
            Err(why) => {
                inc(&m.ignored, "reason", why.as_str());
                if let Refusal::Policy(p) = why {
                    stage(
                        &self.timeline,
                        out.mac,
                        Stage::Refused,
                        p.as_str().to_string(),
                    );
                }
                debug!(%mac, %from, %request, reason = %why.as_str(), detail = %why, "dhcp4 not answered");
            }
        }
    }

    fn failed(&mut self, out: Outcome, from: SocketAddr, why: &Failure) {
        let (mac, request) = (mac_of(&out), out.request.map_or("?", MessageType::name));
        inc(&self.metrics.ignored, "reason", why.as_str());
        if let Failure::Store(_) = why {
            self.metrics.store_failures.inc();
        }
        stage(&self.timeline, out.mac, Stage::Refused, why.to_string());
        debug!(%mac, %from, %request, reason = %why.as_str(), detail = %why, "dhcp4 not answered");
    }

    fn tick(&mut self, now: u64) {
        // Counting active leases walks the table: once a second, not per packet.
        let active = self.server.leases().active(now);
        self.metrics.leases_active.set(active as i64);
    }
}

impl Dhcp4 {
    /// `ip`:68 for a client that has no address yet, reachable once `mac` is its
    /// neighbour entry; broadcast when the entry cannot be written.
    fn unicast(&mut self, sock: &UdpSocket, ip: Ipv4Addr, mac: [u8; 6]) -> SocketAddrV4 {
        match set_neighbour(sock, &self.interface, ip, mac) {
            Ok(()) => SocketAddrV4::new(ip, CLIENT_PORT),
            Err(e) => {
                if std::mem::replace(&mut self.neighbour_ok, false) {
                    warn!(error = %e, "cannot add neighbour entries (needs CAP_NET_ADMIN); broadcasting replies instead");
                }
                SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
            }
        }
    }
}

/// The client's hardware address for logs; formatted only if a line is written.
fn mac_of(out: &Outcome) -> Mac<'_> {
    Mac(out.mac.as_ref().map_or(&[][..], |m| &m[..]))
}

/// The firmware's arch and boot file, when the policy answered.
fn boot_of(out: &Outcome) -> (String, Cow<'_, str>) {
    out.boot.as_ref().map_or_else(Default::default, |b| {
        (b.arch.name(), b.target.file_field(None))
    })
}

/// Puts one DHCPv4 step on the machine's timeline: every stage this shell records goes
/// through here.
fn stage(timeline: &Timeline, mac: Option<[u8; 6]>, stage: Stage, detail: String) {
    timeline.record(Event {
        mac,
        ip: None,
        protocol: Protocol::Dhcp4,
        stage,
        detail,
        file: None,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::store::{Snapshot, Store, StoreError};
    use crate::timeline::Observed;
    use prometheus_client::metrics::counter::Counter;
    use std::time::Duration;
    use tokio::sync::mpsc;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    /// The renewing client's address: its ACK goes there, port 68, over loopback.
    const CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);

    /// A store whose commits succeed or, with `fail`, all fail (a full or vanished disk).
    struct Disk {
        fail: bool,
    }

    impl Store for Disk {
        fn load(&mut self) -> Result<Snapshot, StoreError> {
            Ok(Snapshot::default())
        }
        fn commit(&mut self, _: &[Change]) -> Result<(), StoreError> {
            if self.fail {
                return Err(StoreError::Commit("disk full".into()));
            }
            Ok(())
        }
    }

    /// The core's test server, serving loopback.
    fn server() -> Server {
        let cfg = config::Dhcp4 {
            subnet: "127.0.0.0/8".parse().unwrap(),
            pool: (CLIENT, Ipv4Addr::new(127, 0, 0, 9)),
            ..crate::dhcp4::server::tests::cfg()
        };
        Server::new(cfg, crate::dhcp4::server::tests::policy(), vec![])
    }

    /// OVMF renewing `CLIENT` (ciaddr set, no server id): granted, so its lease must be
    /// stored before the ACK may leave.
    fn renewal() -> Vec<u8> {
        let mut o = vec![53, 1, 3, 93, 2, 0, 7, 60, 32];
        o.extend_from_slice(b"PXEClient:Arch:00007:UNDI:003000");
        o.push(255);
        let mut p = crate::dhcp4::wire::tests::request(MAC, &o);
        p[12..16].copy_from_slice(&CLIENT.octets());
        p
    }

    /// Serves one renewal through the shared loop on loopback over `disk`; returns the
    /// metrics and the timeline stages it left.
    async fn renew_over(disk: Disk) -> (Dhcp4Metrics, Vec<Event>) {
        let metrics = Dhcp4Metrics::default();
        let (tx, mut steps) = mpsc::channel(16);
        let service = Dhcp4 {
            interface: "lo".into(),
            local: LocalAddress::new(|| Some(Ipv4Addr::LOCALHOST)),
            server: server(),
            metrics: metrics.clone(),
            timeline: Arc::new(Timeline::with_sink(tx, Counter::default())),
            neighbour_ok: true,
        };
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = sock.local_addr().unwrap();
        let (stop, shutdown) = watch::channel(false);
        let writer = Writer::start(Box::new(disk));
        let serving = tokio::spawn(async move {
            datagram::serve("DHCPv4", service, &sock, writer, shutdown).await
        });
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(&renewal(), to).await.unwrap();
        let settled = || {
            metrics
                .ignored
                .get_or_create(&[("reason", "store_failed")])
                .get()
                + metrics.replies.get_or_create(&[("type", "ACK")]).get()
        };
        for _ in 0..500 {
            if settled() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(true).unwrap();
        serving.await.unwrap().unwrap();
        let mut stages = Vec::new();
        while let Ok(o) = steps.try_recv() {
            if let Observed::Stage { event, .. } = o {
                stages.push(event);
            }
        }
        (metrics, stages)
    }

    /// ACKs sent, refusals for `store_failed`, and store failures.
    fn counts(m: &Dhcp4Metrics) -> (u64, u64, u64) {
        let acks = m.replies.get_or_create(&[("type", "ACK")]).get();
        let refused = m.ignored.get_or_create(&[("reason", "store_failed")]).get();
        (acks, refused, m.store_failures.get())
    }

    #[tokio::test]
    async fn a_lease_that_cannot_be_stored_withholds_the_ack_and_is_refused_not_answered() {
        let (m, stages) = renew_over(Disk { fail: true }).await;
        assert_eq!(counts(&m), (0, 1, 1));
        // Refused, and nothing else: never "answered".
        let [refused] = &stages[..] else {
            panic!("one step expected: {stages:?}")
        };
        assert_eq!((refused.stage, refused.mac), (Stage::Refused, Some(MAC)));
        assert!(
            refused.detail.starts_with("the lease could not be stored"),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_stored_lease_is_acked_then_answered() {
        let (m, stages) = renew_over(Disk { fail: false }).await;
        assert_eq!(counts(&m), (1, 0, 0));
        let stages: Vec<_> = stages.iter().map(|e| e.stage).collect();
        assert_eq!(stages, [Stage::Answered]);
    }
}
