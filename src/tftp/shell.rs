//! The tokio shell: sockets, files and timers around the sans-IO cores.
//!
//! Two listeners on port 69 (IPv4 and IPv6, bound to the interface with SO_BINDTODEVICE)
//! learn from IP_PKTINFO / IPV6_PKTINFO which local address each request was sent to.
//! [`Server`] admits it, and every transfer then runs as its own task with its own
//! ephemeral socket bound to exactly that address (with the interface as scope for
//! link-local IPv6), so the client sees replies from the address it asked.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nix::libc;
use nix::sys::socket::{self as nsock, ControlMessageOwned, MsgFlags, SockaddrStorage, sockopt};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tracing::{debug, info, warn};

use super::TftpConfig;
use super::batch::Batch;
use super::cache::{Cache, FileStamp};
use super::metrics::TftpMetrics;
use super::netascii;
use super::paths;
use super::server::{Decision, Refusal, Server, TransferId};
use super::session::{self, Limits, Session, Transmit};
use super::wire::{self, DATA_HEADER_LEN, ErrorCode, Mode, Options};
use crate::timeline::{Event, Stage, Timeline};

/// The well-known TFTP port.
pub const TFTP_PORT: u16 = 69;
/// netascii is converted in memory; larger files must be fetched in octet mode.
const NETASCII_MAX: u64 = 16 << 20;
/// Files not cached are read in chunks of this size.
const READ_CHUNK: usize = 1 << 20;
/// Room for any datagram a client sends (requests with options, ACKs, ERRORs).
const RECV_BUF: usize = 2048;
/// Queue between the listeners and the admission loop.
const REQUEST_QUEUE: usize = 1024;

/// Serves `cfg.root` over TFTP on `interface` (IPv4 and IPv6, link-local included) until
/// `shutdown` turns true or its sender is dropped.
pub async fn run(
    cfg: TftpConfig,
    interface: String,
    metrics: TftpMetrics,
    timeline: Arc<Timeline>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let root = cfg
        .root
        .canonicalize()
        .map_err(|e| annotate(e, &cfg.root))?;
    let ifindex = nix::net::if_::if_nametoindex(interface.as_str()).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("interface {interface}: {e}"),
        )
    })?;
    let (req_tx, mut req_rx) = mpsc::channel(REQUEST_QUEUE);
    let mut listeners = Vec::new();
    for ipv6 in [false, true] {
        match listener(ipv6, &interface) {
            Ok(sock) => listeners.push(tokio::spawn(listen(sock, req_tx.clone()))),
            Err(e) => warn!(%interface, ipv6, error = %e, "tftp: cannot listen"),
        }
    }
    drop(req_tx);
    if listeners.is_empty() {
        return Err(io::Error::other(format!(
            "tftp: no listener on {interface}"
        )));
    }
    info!(%interface, root = %root.display(), "tftp: listening on port {TFTP_PORT}");
    let mut server = Server::new(cfg.max_transfers, cfg.max_per_client);
    let shared = Arc::new(Shared {
        cache: Mutex::new(Cache::new(cfg.cache_max_file, cfg.cache_max_total)),
        root,
        cfg,
        interface,
        ifindex,
        metrics,
        timeline,
    });
    let mut tasks = JoinSet::new();
    let mut running: HashMap<TransferId, AbortHandle> = HashMap::new();
    while !*shutdown.borrow() {
        // Biased: finished transfers free their slots before new requests are admitted.
        tokio::select! {
            biased;
            changed = shutdown.changed() => if changed.is_err() { break },
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                // Aborted (replaced) tasks were already released when they were replaced.
                if let Ok(id) = done {
                    running.remove(&id);
                    server.finished(id);
                }
            }
            Some(req) = req_rx.recv() => {
                let decision = server.on_request(req.peer, &req.datagram);
                admit(&shared, req, decision, &mut tasks, &mut running);
            }
        }
    }
    for l in listeners {
        l.abort();
    }
    tasks.shutdown().await;
    info!("tftp: stopped");
    Ok(())
}

/// What every transfer task needs.
struct Shared {
    cfg: TftpConfig,
    root: PathBuf,
    interface: String,
    ifindex: u32,
    metrics: TftpMetrics,
    timeline: Arc<Timeline>,
    cache: Mutex<Cache>,
}

impl Shared {
    /// Puts a TFTP step on the timeline of the machine behind `peer`.
    fn stage(&self, peer: SocketAddr, stage: Stage, detail: String) {
        self.timeline.record(Event::at(
            peer.ip(),
            crate::step::Protocol::Tftp,
            stage,
            detail,
        ));
    }
}

/// A datagram to port 69, with the local address it was sent to.
struct Request {
    peer: SocketAddr,
    local: IpAddr,
    datagram: Vec<u8>,
}

fn admit(
    shared: &Arc<Shared>,
    req: Request,
    decision: Decision,
    tasks: &mut JoinSet<TransferId>,
    running: &mut HashMap<TransferId, AbortHandle>,
) {
    match decision {
        Decision::Refuse(r) => {
            refuse(shared, r, req.peer);
            if let Err(e) = reply_socket(req.local, shared.ifindex)
                .and_then(|s| s.send_to(&r.reply(), req.peer))
            {
                debug!(peer = %req.peer, error = %e, "tftp: cannot send refusal");
            }
        }
        Decision::Ignore(r) => refuse(shared, r, req.peer),
        Decision::Start {
            id,
            replaces,
            path,
            mode,
            options,
            ignored,
        } => {
            for option in ignored.names() {
                debug!(peer = %req.peer, option, "tftp: option ignored: value not a number or out of range");
                crate::metrics::inc(&shared.metrics.options_ignored, "option", option);
            }
            if let Some(old) = replaces.and_then(|old| running.remove(&old)) {
                old.abort();
                info!(peer = %req.peer, "tftp: new request from the same port replaces its transfer");
                shared.metrics.transfer(family(req.peer), "replaced");
            }
            let t = Transfer {
                peer: req.peer,
                local: req.local,
                path,
                mode,
                options,
            };
            let handle = tasks.spawn(t.run(shared.clone(), id));
            running.insert(id, handle);
        }
    }
}

fn refuse(shared: &Shared, r: Refusal, peer: SocketAddr) {
    debug!(%peer, reason = r.as_str(), "tftp: request refused");
    shared.metrics.error(r.as_str());
    shared.stage(peer, Stage::Refused, r.as_str().to_string());
}

/// One admitted read request.
struct Transfer {
    peer: SocketAddr,
    local: IpAddr,
    path: PathBuf,
    mode: Mode,
    options: Options,
}

impl Transfer {
    async fn run(self, shared: Arc<Shared>, id: TransferId) -> TransferId {
        if let Err(e) = self.serve(&shared).await {
            warn!(peer = %self.peer, file = %self.path.display(), error = %e, "tftp: transfer failed");
            shared.metrics.error("io_error");
            shared.metrics.transfer(family(self.peer), "io_error");
        }
        id
    }

    async fn serve(&self, shared: &Arc<Shared>) -> io::Result<()> {
        let sock = UdpSocket::from_std(reply_socket(self.local, shared.ifindex)?)?;
        let opened = {
            let (shared, path, mode) = (shared.clone(), self.path.clone(), self.mode);
            tokio::task::spawn_blocking(move || open(&shared, &path, mode))
                .await
                .map_err(io::Error::other)?
        };
        let mut source = match opened {
            Ok(s) => s,
            Err(r) => {
                refuse(shared, r, self.peer);
                sock.send_to(&r.reply(), self.peer).await?;
                return Ok(());
            }
        };
        let ipv6 = self.peer.is_ipv6();
        let mtu = interface_mtu(sock.as_raw_fd(), &shared.interface).unwrap_or_else(|e| {
            debug!(interface = %shared.interface, error = %e, "tftp: MTU unknown, assuming 1500");
            1500
        });
        let limits = Limits {
            max_blksize: session::blksize_for_mtu(mtu, ipv6),
            max_windowsize: shared.cfg.max_windowsize,
            timeout: shared.cfg.timeout,
            max_retries: shared.cfg.max_retries,
        };
        let started = Instant::now();
        let mut s = Session::new(started, &self.options, source.len(), &limits);
        debug!(peer = %self.peer, file = %self.path.display(), blksize = s.blksize(),
            windowsize = s.windowsize(), "tftp: transfer starts");
        let mut batch = Batch::new(DATA_HEADER_LEN + s.blksize());
        let mut inbuf = [0u8; RECV_BUF];
        // Armed lazily: every ACK moves the session's deadline later, and resetting a tokio
        // timer per packet is measurable at lockstep speed. An early wake-up re-arms instead.
        let timer = tokio::time::sleep_until(started.into());
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        let outcome = loop {
            while let Some(t) = s.poll_transmit() {
                match t {
                    Transmit::Control(p) => {
                        batch.flush(&sock, self.peer).await?;
                        sock.send_to(&p, self.peer).await?;
                    }
                    Transmit::Data { block, offset, len } => {
                        let packet = batch.push(DATA_HEADER_LEN + len);
                        packet[..DATA_HEADER_LEN].copy_from_slice(&wire::data_header(block));
                        source.copy(offset, &mut packet[DATA_HEADER_LEN..]).await?;
                        if batch.is_closed() {
                            batch.flush(&sock, self.peer).await?;
                        }
                    }
                }
            }
            batch.flush(&sock, self.peer).await?;
            if let Some(o) = s.outcome() {
                break o.clone();
            }
            let Some(deadline) = s.poll_timeout() else {
                continue;
            };
            if armed.is_none_or(|a| deadline < a) {
                timer.as_mut().reset(deadline.into());
                armed = Some(deadline);
            }
            tokio::select! {
                r = sock.recv_from(&mut inbuf) => {
                    let (n, from) = r?;
                    if from.ip() == self.peer.ip() && from.port() == self.peer.port() {
                        s.handle(Instant::now(), &inbuf[..n]);
                    } else {
                        // RFC 1350: a stranger gets ERROR 5, the transfer goes on.
                        let _ = sock.try_send_to(&wire::error_packet(ErrorCode::UnknownTid, "unknown transfer ID"), from);
                    }
                }
                _ = &mut timer => {
                    armed = None;
                    s.handle_timeout(Instant::now());
                }
            }
        };
        let m = &shared.metrics;
        m.sent(family(self.peer), s.bytes_sent(), s.retransmits());
        m.transfer(family(self.peer), outcome.as_str());
        if outcome != session::Outcome::Complete {
            m.error(outcome.as_str());
        }
        let file = self
            .path
            .strip_prefix(&shared.root)
            .unwrap_or(&self.path)
            .display();
        match outcome {
            session::Outcome::Complete => shared.stage(
                self.peer,
                Stage::Served,
                format!("{file} {} bytes", s.bytes_sent()),
            ),
            // EDK2 aborts its tsize probe this way before every real fetch: say who ended it,
            // so an operator does not read a failure into it.
            session::Outcome::ClientError { code, .. } => shared.stage(
                self.peer,
                Stage::Ended,
                format!("{file} aborted by the client (error {code})"),
            ),
            _ => shared.stage(
                self.peer,
                Stage::Ended,
                format!("{file} {}", outcome.as_str()),
            ),
        }
        info!(peer = %self.peer, file = %self.path.display(), outcome = outcome.as_str(),
            detail = ?outcome, bytes = s.bytes_sent(), retransmits = s.retransmits(),
            blksize = s.blksize(), windowsize = s.windowsize(),
            ms = started.elapsed().as_millis() as u64, "tftp: transfer ended");
        Ok(())
    }
}

fn family(peer: SocketAddr) -> &'static str {
    if peer.is_ipv4() { "ipv4" } else { "ipv6" }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn annotate(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Where DATA payloads come from.
enum Source {
    /// Cached, or converted to netascii.
    Memory(Arc<[u8]>),
    /// Read from disk a chunk at a time, off the async threads.
    Disk {
        file: Arc<std::fs::File>,
        len: u64,
        chunk: Vec<u8>,
        chunk_at: u64,
    },
}

impl Source {
    fn len(&self) -> u64 {
        match self {
            Source::Memory(d) => d.len() as u64,
            Source::Disk { len, .. } => *len,
        }
    }

    /// Fills `out` with file bytes from `offset`.
    async fn copy(&mut self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let (data, start) = match self {
            Source::Memory(d) => (&d[..], offset),
            Source::Disk {
                file,
                chunk,
                chunk_at,
                ..
            } => {
                let covered = offset >= *chunk_at
                    && offset + out.len() as u64 <= *chunk_at + chunk.len() as u64;
                if !covered {
                    let (file, mut buf) = (file.clone(), std::mem::take(chunk));
                    let (buf, read) = tokio::task::spawn_blocking(move || {
                        buf.resize(READ_CHUNK, 0);
                        let r = read_at_most(&file, &mut buf, offset);
                        (buf, r)
                    })
                    .await
                    .map_err(io::Error::other)?;
                    *chunk = buf;
                    chunk.truncate(read?);
                    *chunk_at = offset;
                }
                (&chunk[..], offset - *chunk_at)
            }
        };
        let start = start as usize;
        let src = data.get(start..start + out.len()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank during the transfer",
            )
        })?;
        out.copy_from_slice(src);
        Ok(())
    }
}

/// Reads from `offset` until `buf` is full or the file ends; returns the bytes read.
fn read_at_most(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Resolves, opens and (for small files) caches what a request names. Blocking.
fn open(shared: &Shared, rel: &Path, mode: Mode) -> Result<Source, Refusal> {
    let found = paths::resolve(&shared.root, rel).map_err(Refusal::Path)?;
    let stamp = FileStamp::of(&found.meta);
    let read_all = |file: &std::fs::File| -> Result<Vec<u8>, Refusal> {
        let mut data = vec![0; stamp.len as usize];
        let n = read_at_most(file, &mut data, 0)
            .map_err(|e| Refusal::Path(paths::PathError::from_io(e)))?;
        data.truncate(n);
        Ok(data)
    };
    if mode == Mode::Netascii {
        if stamp.len > NETASCII_MAX {
            return Err(Refusal::NetasciiTooLarge);
        }
        return Ok(Source::Memory(
            netascii::encode(&read_all(&found.file)?).into(),
        ));
    }
    if let Some(d) = lock(&shared.cache).get(&found.path, &stamp) {
        return Ok(Source::Memory(d));
    }
    if lock(&shared.cache).wants(&found.path, &stamp) {
        let data: Arc<[u8]> = read_all(&found.file)?.into();
        lock(&shared.cache).insert(found.path, stamp, data.clone());
        return Ok(Source::Memory(data));
    }
    Ok(Source::Disk {
        file: Arc::new(found.file),
        len: stamp.len,
        chunk: Vec::new(),
        chunk_at: 0,
    })
}

/// A non-blocking UDP socket bound to `local` with an ephemeral port: the new TID.
fn reply_socket(local: IpAddr, ifindex: u32) -> io::Result<std::net::UdpSocket> {
    let (domain, addr) = match local {
        IpAddr::V4(a) => (Domain::IPV4, SocketAddr::new(a.into(), 0)),
        IpAddr::V6(a) => {
            let scope = if a.is_unicast_link_local() {
                ifindex
            } else {
                0
            };
            (
                Domain::IPV6,
                SocketAddr::V6(SocketAddrV6::new(a, 0, 0, scope)),
            )
        }
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// A port-69 socket for one family on `interface`, reporting each datagram's destination.
fn listener(ipv6: bool, interface: &str) -> io::Result<UdpSocket> {
    let domain = if ipv6 { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(interface.as_bytes()))?;
    let any = if ipv6 {
        s.set_only_v6(true)?;
        nsock::setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true)?;
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        nsock::setsockopt(&s, sockopt::Ipv4PacketInfo, &true)?;
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    s.bind(&SocketAddr::new(any, TFTP_PORT).into())?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

/// Receives requests on one listener and queues them for admission.
async fn listen(sock: UdpSocket, queue: mpsc::Sender<Request>) {
    let mut buf = [0u8; RECV_BUF];
    loop {
        let r = sock
            .async_io(Interest::READABLE, || {
                recv_with_destination(sock.as_raw_fd(), &mut buf)
            })
            .await;
        match r {
            Ok((n, peer, local)) => {
                let req = Request {
                    peer,
                    local,
                    datagram: buf[..n].to_vec(),
                };
                if queue.send(req).await.is_err() {
                    return; // the admission loop is gone: shutting down
                }
            }
            Err(e) => {
                warn!(error = %e, "tftp: receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// recvmsg(2) returning (length, sender, local address the datagram was sent to).
fn recv_with_destination(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, IpAddr)> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(libc::in_pktinfo, libc::in6_pktinfo);
    let msg = nsock::recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())?;
    let peer = msg.address.and_then(|a| {
        a.as_sockaddr_in()
            .map(|v4| SocketAddr::from(*v4))
            .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6)))
    });
    let mut local = None;
    for c in msg.cmsgs()? {
        match c {
            ControlMessageOwned::Ipv4PacketInfo(pi) => {
                let dst = Ipv4Addr::from(u32::from_be(pi.ipi_addr.s_addr));
                // A broadcast request: answer from the address routing picked instead.
                let spec = Ipv4Addr::from(u32::from_be(pi.ipi_spec_dst.s_addr));
                local = Some(IpAddr::V4(if dst.is_broadcast() || dst.is_multicast() {
                    spec
                } else {
                    dst
                }));
            }
            ControlMessageOwned::Ipv6PacketInfo(pi) => {
                local = Some(IpAddr::V6(Ipv6Addr::from(pi.ipi6_addr.s6_addr)))
            }
            _ => {}
        }
    }
    match (peer, local) {
        (Some(p), Some(l)) => Ok((msg.bytes, p, l)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "datagram without sender or destination",
        )),
    }
}

/// The interface's MTU (SIOCGIFMTU), asked through any socket.
fn interface_mtu(fd: RawFd, interface: &str) -> io::Result<u32> {
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = interface.as_bytes();
    if name.len() >= req.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFMTU reads ifr_name and writes ifr_mtu inside the ifreq we own.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFMTU, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled the ifru_mtu member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok(u32::try_from(mtu).unwrap_or(0))
}
