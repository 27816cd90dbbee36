//! Admission of requests arriving on port 69, sans-IO.
//!
//! [`Server::on_request`] parses a datagram, refuses what must be refused (write requests,
//! bad names, too many transfers), and otherwise hands out a [`TransferId`]. Transfers are
//! tracked by the client's address and port: a new RRQ from a port that already has a
//! transfer means the client gave up on the old one (EDK2 reuses its port after the tsize
//! probe, and a client that lost our first packet asks again), so the old one is replaced
//! rather than left to block the port or time out as a zombie.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::paths::{self, PathError};
use super::wire::{self, ErrorCode, Ignored, Mode, Options, Packet, ParseError};

/// Names one admitted transfer until [`Server::finished`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransferId(pub u64);

/// Why a request was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed(ParseError),
    /// WRQ: this server never changes a file.
    WriteRequest,
    /// DATA, ACK or OACK sent to port 69 instead of to a transfer.
    NotARequest,
    /// An ERROR sent to port 69; never answered, to avoid error ping-pong.
    StrayError,
    Path(PathError),
    TooManyTransfers,
    TooManyForClient,
    /// A netascii request for a file larger than the server converts in memory.
    NetasciiTooLarge,
}

impl Refusal {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Malformed(ParseError::BadMode) => "bad_mode",
            Refusal::Malformed(ParseError::NoMode) => "no_mode",
            Refusal::Malformed(ParseError::Truncated) => "truncated",
            Refusal::Malformed(ParseError::Unterminated) => "unterminated",
            Refusal::Malformed(ParseError::UnknownOpcode(_)) => "unknown_opcode",
            Refusal::WriteRequest => "write_request",
            Refusal::NotARequest => "not_a_request",
            Refusal::StrayError => "stray_error",
            Refusal::Path(p) => p.as_str(),
            Refusal::TooManyTransfers => "too_many_transfers",
            Refusal::TooManyForClient => "too_many_for_client",
            Refusal::NetasciiTooLarge => "netascii_too_large",
        }
    }

    /// The ERROR packet the client gets.
    pub fn reply(self) -> Vec<u8> {
        let (code, message) = match self {
            Refusal::Malformed(ParseError::BadMode) => {
                (ErrorCode::IllegalOperation, "unsupported mode")
            }
            Refusal::Malformed(_) | Refusal::NotARequest | Refusal::StrayError => {
                (ErrorCode::IllegalOperation, "illegal operation")
            }
            Refusal::WriteRequest => (ErrorCode::AccessViolation, "read-only server"),
            Refusal::Path(p) => (p.code(), p.message()),
            Refusal::TooManyTransfers => (ErrorCode::NotDefined, "server busy: too many transfers"),
            Refusal::TooManyForClient => {
                (ErrorCode::NotDefined, "too many transfers from this client")
            }
            Refusal::NetasciiTooLarge => (
                ErrorCode::NotDefined,
                "file too large for netascii, use octet",
            ),
        };
        wire::error_packet(code, message)
    }
}

/// What to do with a datagram that arrived on port 69.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Serve it; if `replaces` is set, stop that transfer first (same client port).
    Start {
        id: TransferId,
        replaces: Option<TransferId>,
        path: PathBuf,
        mode: Mode,
        options: Options,
        /// Options left out of the OACK for their value; counted by the shell.
        ignored: Ignored,
    },
    /// Answer with [`Refusal::reply`].
    Refuse(Refusal),
    /// Answer nothing (count and log only).
    Ignore(Refusal),
}

/// Admission state: who has transfers running.
#[derive(Debug)]
pub struct Server {
    max_total: usize,
    max_per_client: usize,
    next_id: u64,
    by_port: HashMap<SocketAddr, TransferId>,
    by_id: HashMap<TransferId, SocketAddr>,
    per_host: HashMap<IpAddr, usize>,
}

impl Server {
    pub fn new(max_total: usize, max_per_client: usize) -> Server {
        Server {
            max_total,
            max_per_client,
            next_id: 0,
            by_port: HashMap::new(),
            by_id: HashMap::new(),
            per_host: HashMap::new(),
        }
    }

    /// Decides about one datagram from `peer` to port 69.
    pub fn on_request(&mut self, peer: SocketAddr, datagram: &[u8]) -> Decision {
        let req = match Packet::parse(datagram) {
            Ok(Packet::Read(r)) => r,
            Ok(Packet::Write(_)) => return Decision::Refuse(Refusal::WriteRequest),
            Ok(Packet::Error { .. }) => return Decision::Ignore(Refusal::StrayError),
            Ok(_) => return Decision::Refuse(Refusal::NotARequest),
            Err(e) => return Decision::Refuse(Refusal::Malformed(e)),
        };
        let path = match paths::normalize(req.filename) {
            Ok(p) => p,
            Err(e) => return Decision::Refuse(Refusal::Path(e)),
        };
        let peer = key(peer);
        let replaces = self.by_port.get(&peer).copied();
        if let Some(old) = replaces {
            self.finished(old);
        }
        if self.by_id.len() >= self.max_total {
            return Decision::Refuse(Refusal::TooManyTransfers);
        }
        let count = self.per_host.entry(peer.ip()).or_default();
        if *count >= self.max_per_client {
            return Decision::Refuse(Refusal::TooManyForClient);
        }
        *count += 1;
        let id = TransferId(self.next_id);
        self.next_id += 1;
        self.by_port.insert(peer, id);
        self.by_id.insert(id, peer);
        Decision::Start {
            id,
            replaces,
            path,
            mode: req.mode,
            options: req.options,
            ignored: req.ignored,
        }
    }

    /// Releases a transfer's slot; unknown or already released ids are ignored.
    pub fn finished(&mut self, id: TransferId) {
        let Some(peer) = self.by_id.remove(&id) else {
            return;
        };
        self.by_port.remove(&peer);
        if let Some(n) = self.per_host.get_mut(&peer.ip()) {
            *n -= 1;
            if *n == 0 {
                self.per_host.remove(&peer.ip());
            }
        }
    }

    /// Transfers admitted and not yet finished.
    pub fn active(&self) -> usize {
        self.by_id.len()
    }
}

/// The flow label may change between packets; address, port and scope name the client.
fn key(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V6(mut a) => {
            a.set_flowinfo(0);
            SocketAddr::V6(a)
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RRQ: &[u8] = b"\x00\x01/undionly.kpxe\x00octet\x00";

    fn peer(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn start(d: Decision) -> (TransferId, Option<TransferId>) {
        match d {
            Decision::Start {
                id,
                replaces,
                path,
                mode,
                ..
            } => {
                assert_eq!((path, mode), (PathBuf::from("undionly.kpxe"), Mode::Octet));
                (id, replaces)
            }
            other => panic!("not started: {other:?}"),
        }
    }

    #[test]
    fn write_requests_are_refused_with_access_violation() {
        let mut s = Server::new(10, 10);
        let d = s.on_request(peer("192.168.1.10:2000"), b"\x00\x02x\x00octet\x00");
        assert_eq!(d, Decision::Refuse(Refusal::WriteRequest));
        assert_eq!(
            Refusal::WriteRequest.reply(),
            b"\x00\x05\x00\x02read-only server\x00"
        );
        assert_eq!(s.active(), 0);
    }

    #[test]
    fn path_refusals_reach_the_client() {
        let mut s = Server::new(10, 10);
        let p = peer("[fe80::1%2]:2000");
        let d = s.on_request(p, b"\x00\x01../../etc/shadow\x00octet\x00");
        assert_eq!(d, Decision::Refuse(Refusal::Path(PathError::Escape)));
        assert_eq!(
            &Refusal::Path(PathError::Escape).reply()[..4],
            b"\x00\x05\x00\x02"
        );
        assert_eq!(Refusal::Path(PathError::Escape).as_str(), "path_escape");
    }

    #[test]
    fn other_packets_on_port_69() {
        let mut s = Server::new(10, 10);
        let p = peer("192.168.1.10:2000");
        assert_eq!(
            s.on_request(p, b"\x00\x04\x00\x01"),
            Decision::Refuse(Refusal::NotARequest)
        );
        assert_eq!(
            s.on_request(p, b"\x00\x05\x00\x00x\x00"),
            Decision::Ignore(Refusal::StrayError)
        );
        assert_eq!(
            s.on_request(p, b"\x00\x01f\x00mail\x00"),
            Decision::Refuse(Refusal::Malformed(ParseError::BadMode))
        );
        assert_eq!(
            s.on_request(p, b"\x00"),
            Decision::Refuse(Refusal::Malformed(ParseError::Truncated))
        );
        for (datagram, reason) in [
            (&b"\x00"[..], "truncated"),
            (b"\x00\x01no-nul", "unterminated"),
            (b"\x00\x01file\x00", "no_mode"),
            (b"\x00\x09", "unknown_opcode"),
        ] {
            match s.on_request(p, datagram) {
                Decision::Refuse(r) => {
                    assert_eq!(r.as_str(), reason);
                    assert_eq!(&r.reply()[..4], b"\x00\x05\x00\x04");
                }
                other => panic!("{datagram:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn same_port_replaces_stale_transfer() {
        let mut s = Server::new(10, 1);
        let p = peer("[fd00:1::10]:1234");
        let (first, none) = start(s.on_request(p, RRQ));
        assert_eq!(none, None);
        // EDK2 after its aborted tsize probe, or a client that restarted: same port again.
        let (second, replaced) = start(s.on_request(p, RRQ));
        assert_eq!(replaced, Some(first));
        assert_eq!(s.active(), 1);
        s.finished(first); // the old task reporting late changes nothing
        assert_eq!(s.active(), 1);
        s.finished(second);
        assert_eq!(s.active(), 0);
    }

    #[test]
    fn caps_per_client_and_total() {
        let mut s = Server::new(3, 2);
        let (a, _) = start(s.on_request(peer("192.168.1.10:1000"), RRQ));
        start(s.on_request(peer("192.168.1.10:1001"), RRQ));
        let d = s.on_request(peer("192.168.1.10:1002"), RRQ);
        assert_eq!(d, Decision::Refuse(Refusal::TooManyForClient));
        start(s.on_request(peer("192.168.1.11:1000"), RRQ));
        let d = s.on_request(peer("192.168.1.12:1000"), RRQ);
        assert_eq!(d, Decision::Refuse(Refusal::TooManyTransfers));
        assert!(
            Refusal::TooManyTransfers
                .reply()
                .ends_with(b"too many transfers\0")
        );
        s.finished(a);
        start(s.on_request(peer("192.168.1.12:1000"), RRQ));
        assert_eq!(s.active(), 3);
    }

    #[test]
    fn flow_label_does_not_split_a_client() {
        let mut s = Server::new(10, 10);
        let mut a: std::net::SocketAddrV6 = "[fd00:1::10]:1234".parse().unwrap();
        let (first, _) = start(s.on_request(SocketAddr::V6(a), RRQ));
        a.set_flowinfo(0x12345);
        let (_, replaced) = start(s.on_request(SocketAddr::V6(a), RRQ));
        assert_eq!(replaced, Some(first));
    }
}
