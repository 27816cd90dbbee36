//! The one receive loop of the DHCP servers (v4 and v6), so the two cannot drift apart:
//! drain the socket, let the protocol's core decide each datagram, hand the lease changes
//! of all of them to the store writer as one batch, and only once that batch is durable
//! send its replies and account them.
//!
//! The order "lease durable, then reply sent, then answered (timeline, metrics, log)" is
//! kept here and nowhere else: a protocol only says what to send where ([`Service::reply`])
//! and how to account a decision once it is carried out ([`Service::done`]) or could not
//! be ([`Service::failed`]); it never decides when. A decision with nothing to make
//! durable (an OFFER, an Advertise, a NAK, a refusal) is carried out at once.
//!
//! Router advertisements do not go through here: they come from a raw ICMPv6 socket on a
//! timer, and have nothing to store.

use crate::store::{Change, Outbox, StoreError, Writer};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tracing::warn;

/// Most datagrams read in one go before their changes are handed to the writer.
const MAX_DRAIN: usize = 256;
/// Decisions waiting for the disk at once (or their changes, if more); past this the
/// socket is left to the kernel's buffer until a commit releases some.
const MAX_HELD: usize = 8192;
/// How often the interface's address is looked up again, so an address added or changed
/// after start is used without a restart.
const ADDRESS_REFRESH: Duration = Duration::from_secs(5);
/// How often [`Service::tick`] runs.
const TICK: Duration = Duration::from_secs(1);
/// Room for the largest UDP payload, so no datagram is read cut short.
const MAX_DATAGRAM: usize = 65_536;

/// Unix time in seconds, what the cores and the lease store count in.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The interface's own address as a core needs it (server identifier, boot URLs): looked
/// up again every 5 s (`ADDRESS_REFRESH`), and at every datagram while there is none, so an
/// address added or changed after start is used without a restart.
pub struct LocalAddress<A> {
    lookup: Box<dyn Fn() -> Option<A> + Send>,
    current: Option<A>,
    looked_up: Instant,
}

impl<A: Copy> LocalAddress<A> {
    /// Looks the address up with `lookup`, now and whenever it is due again.
    pub fn new(lookup: impl Fn() -> Option<A> + Send + 'static) -> LocalAddress<A> {
        LocalAddress {
            current: lookup(),
            lookup: Box::new(lookup),
            looked_up: Instant::now(),
        }
    }

    /// The address, looked up again first if that is due.
    pub fn get(&mut self) -> Option<A> {
        if self.current.is_none() || self.looked_up.elapsed() > ADDRESS_REFRESH {
            self.current = (self.lookup)();
            self.looked_up = Instant::now();
        }
        self.current
    }
}

/// A protocol served by [`serve`]: its sans-IO core behind an adapter that knows the
/// protocol's addresses, metrics and timeline.
pub trait Service {
    /// One decision of the core, kept from its datagram until it is accounted.
    type Decision;

    /// Decides one datagram from `from` at Unix time `now` and counts it as received.
    /// Returns the decision and the changes that must be durable before it is carried out.
    fn decide(
        &mut self,
        now: u64,
        datagram: &[u8],
        from: SocketAddr,
    ) -> (Self::Decision, Vec<Change>);

    /// The decision's reply and its socket address, if it has a reply. Asked only once the
    /// decision's changes are durable, right before sending.
    fn reply<'d>(
        &mut self,
        sock: &UdpSocket,
        decision: &'d Self::Decision,
    ) -> Option<(&'d [u8], SocketAddr)>;

    /// Logs, counts and puts on the timeline a decision that was carried out: its reply,
    /// if it had one, has left.
    fn done(&mut self, decision: Self::Decision, from: SocketAddr);

    /// The same for a decision that could not be carried out: the client got nothing.
    fn failed(&mut self, decision: Self::Decision, from: SocketAddr, why: &Failure);

    /// Runs once a second, for gauges too costly to keep per packet.
    fn tick(&mut self, _now: u64) {}
}

/// Why a decided reply never reached the client: found by the shell, after the core.
#[derive(Debug)]
pub enum Failure {
    /// The decision's changes could not be made durable, so its reply was withheld: a
    /// client must never be told of a lease the server could forget.
    Store(StoreError),
    /// The socket would not take the reply.
    Send(io::Error),
}

impl Failure {
    /// Stable label for metrics, beside the cores' own refusal labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Failure::Store(_) => "store_failed",
            Failure::Send(_) => "send_failed",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Store(e) => write!(f, "the lease could not be stored ({e})"),
            Failure::Send(e) => write!(f, "the reply could not be sent ({e})"),
        }
    }
}

/// Serves `service` on `sock` until `shutdown` changes; `name` is the protocol's, for logs.
///
/// One loop: when the socket is readable it drains every queued datagram (up to
/// `MAX_DRAIN`), decides each, and hands the changes of all of them to the writer as one
/// batch; when a batch is durable it carries out all of that batch's decisions at once.
/// The loop never waits for the disk itself: at tens of thousands of requests a second,
/// one wake-up per batch instead of per packet is what keeps up.
pub async fn serve<S: Service>(
    name: &'static str,
    mut service: S,
    sock: &UdpSocket,
    writer: Writer,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut outbox: Outbox<(S::Decision, SocketAddr)> = Outbox::new(writer);
    let mut changes = Vec::new();
    let mut held = Vec::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut ticks = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            (result, batch) = outbox.released() => match result {
                Ok(()) => {
                    for (d, from) in batch {
                        carry_out(name, &mut service, sock, d, from).await;
                    }
                }
                Err(e) => {
                    warn!(error = %e, decisions = batch.len(), "{name}: leases not durable; replies withheld");
                    let why = Failure::Store(e);
                    for (d, from) in batch {
                        service.failed(d, from, &why);
                    }
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
                    let (d, mut durable_first) = service.decide(unix_now(), &buf[..n], from);
                    if durable_first.is_empty() {
                        carry_out(name, &mut service, sock, d, from).await;
                    } else {
                        changes.append(&mut durable_first);
                        held.push((d, from));
                    }
                }
                if !held.is_empty() {
                    outbox.hold(std::mem::take(&mut changes), std::mem::take(&mut held));
                }
            }
            _ = ticks.tick() => service.tick(unix_now()),
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// Sends a decision's reply, if it has one, then has the decision accounted: the only
/// place that calls [`Service::done`], so nothing is "answered" before it has left.
async fn carry_out<S: Service>(
    name: &'static str,
    service: &mut S,
    sock: &UdpSocket,
    d: S::Decision,
    from: SocketAddr,
) {
    let Some((bytes, to)) = service.reply(sock, &d) else {
        return service.done(d, from);
    };
    // Without waiting unless the socket buffer is full.
    let sent = match sock.try_send_to(bytes, to) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => sock.send_to(bytes, to).await,
        other => other,
    };
    match sent {
        Ok(_) => service.done(d, from),
        Err(e) => {
            warn!(error = %e, %to, "{name} reply not sent");
            service.failed(d, from, &Failure::Send(e));
        }
    }
}
