//! One read transfer as a sans-IO state machine.
//!
//! The shell feeds it datagrams from the client ([`Session::handle`]) and the passing of
//! time ([`Session::handle_timeout`]), and drains what to send ([`Session::poll_transmit`])
//! and when to wake up next ([`Session::poll_timeout`]). It never reads a clock, a socket
//! or a file: DATA comes out as "block N is bytes [offset, offset+len) of the file", so the
//! shell can copy them from memory or disk straight behind the header.
//!
//! Blocks are counted internally as a `u64` index (0 is the OACK, 1 the first DATA) and put
//! on the wire modulo 65536, so block numbers roll over from 65535 to 0 as iPXE and EDK2
//! expect, and an ACK is mapped back to the one index it can mean inside the window.

use std::time::{Duration, Instant};

use super::wire::{self, BLKSIZE_MAX, BLKSIZE_MIN, DEFAULT_BLKSIZE, ErrorCode, Options, Packet};

/// Window sizes above this would make a 16-bit block number ambiguous within a window.
pub const WINDOWSIZE_CEILING: u16 = 1 << 15;

/// What the server allows for one transfer; the shell fills it from the config and the
/// MTU of the interface the request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest DATA payload that fits the path MTU.
    pub max_blksize: u16,
    /// Largest RFC 7440 window the server grants.
    pub max_windowsize: u16,
    /// Retransmission timeout unless the client negotiates one (RFC 2349).
    pub timeout: Duration,
    /// Retransmissions of one window before the transfer is given up.
    pub max_retries: u32,
}

/// IPv4 (20) + UDP (8) + TFTP DATA header (4) bytes around each block.
pub const IPV4_OVERHEAD: u32 = 32;
/// IPv6 (40) + UDP (8) + TFTP DATA header (4) bytes around each block.
pub const IPV6_OVERHEAD: u32 = 52;

/// The largest blksize whose DATA packets fit an interface MTU unfragmented: firmware
/// stacks often cannot reassemble fragments, and IPv6 routers never fragment.
pub fn blksize_for_mtu(mtu: u32, ipv6: bool) -> u16 {
    let overhead = if ipv6 { IPV6_OVERHEAD } else { IPV4_OVERHEAD };
    mtu.saturating_sub(overhead)
        .clamp(BLKSIZE_MIN.into(), BLKSIZE_MAX.into()) as u16
}

/// Something to put on the wire, to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A complete packet (OACK or ERROR).
    Control(Vec<u8>),
    /// DATA block `block`, whose payload is `len` file bytes from `offset`.
    Data { block: u16, offset: u64, len: usize },
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The client acknowledged the last block.
    Complete,
    /// The client sent ERROR (for example EDK2 aborting its tsize probe).
    ClientError { code: u16, message: String },
    /// No progress after the last retransmission.
    TimedOut,
    /// The client sent something other than ACK or ERROR; it got ERROR 4.
    IllegalPacket,
}

impl Outcome {
    /// Label for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::ClientError { .. } => "client_error",
            Outcome::TimedOut => "timeout",
            Outcome::IllegalPacket => "illegal_packet",
        }
    }
}

/// The options the server grants: what goes in the OACK. Unrequested options stay `None`.
///
/// tsize is left out for an empty file: curl (7.88 and later) treats `tsize 0` in an OACK
/// as an illegal operation and aborts, while leaving it out is always allowed (RFC 2347).
pub fn negotiate(requested: &Options, size: u64, limits: &Limits) -> Options {
    Options {
        blksize: requested
            .blksize
            .map(|b| b.min(limits.max_blksize).max(BLKSIZE_MIN)),
        tsize: requested.tsize.and((size > 0).then_some(size)),
        timeout: requested.timeout,
        windowsize: requested
            .windowsize
            .map(|w| w.clamp(1, limits.max_windowsize.clamp(1, WINDOWSIZE_CEILING))),
    }
}

/// State of one read transfer; see the module documentation.
#[derive(Debug)]
pub struct Session {
    blksize: u64,
    windowsize: u64,
    timeout: Duration,
    max_retries: u32,
    size: u64,
    /// Index of the last DATA block (the first one shorter than `blksize`).
    last: u64,
    /// Lowest index the client has not acknowledged.
    base: u64,
    /// Next index to hand out from `poll_transmit`.
    next: u64,
    /// One past the highest index ever sent: anything below is a retransmission.
    sent_end: u64,
    oack: Option<Vec<u8>>,
    retries: u32,
    deadline: Instant,
    pending: Option<Vec<u8>>,
    outcome: Option<Outcome>,
    retransmits: u64,
    bytes_sent: u64,
}

impl Session {
    /// Starts a transfer of a `size`-byte file for a request carrying `requested` options.
    pub fn new(now: Instant, requested: &Options, size: u64, limits: &Limits) -> Session {
        let granted = negotiate(requested, size, limits);
        let blksize = u64::from(granted.blksize.unwrap_or(DEFAULT_BLKSIZE));
        let timeout = granted
            .timeout
            .map_or(limits.timeout, |t| Duration::from_secs(t.into()));
        // RFC 2347: with no option granted the server answers with DATA straight away.
        let oack = (!granted.is_empty()).then(|| {
            let mut buf = Vec::new();
            Packet::Oack(granted).emit(&mut buf);
            buf
        });
        let first = if oack.is_some() { 0 } else { 1 };
        Session {
            blksize,
            windowsize: u64::from(granted.windowsize.unwrap_or(1)),
            timeout,
            max_retries: limits.max_retries,
            size,
            last: size / blksize + 1,
            base: first,
            next: first,
            sent_end: first,
            oack,
            retries: 0,
            deadline: now + timeout,
            pending: None,
            outcome: None,
            retransmits: 0,
            bytes_sent: 0,
        }
    }

    /// A datagram from the client's address and port.
    pub fn handle(&mut self, now: Instant, datagram: &[u8]) {
        if self.outcome.is_some() {
            return;
        }
        match Packet::parse(datagram) {
            Ok(Packet::Ack { block }) => self.on_ack(now, block),
            Ok(Packet::Error { code, message }) => {
                let message = String::from_utf8_lossy(message).into_owned();
                self.outcome = Some(Outcome::ClientError { code, message });
            }
            _ => self.fail(
                Outcome::IllegalPacket,
                ErrorCode::IllegalOperation,
                "expected ACK",
            ),
        }
    }

    /// Call when `now` has reached [`Session::poll_timeout`]: resend the window or give up.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outcome.is_some() || now < self.deadline {
            return;
        }
        if self.retries >= self.max_retries {
            self.fail(Outcome::TimedOut, ErrorCode::NotDefined, "timed out");
            return;
        }
        self.retries += 1;
        self.next = self.base;
        self.deadline = now + self.timeout;
    }

    /// The next datagram to send, if any. Drain until `None` after every event.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(p) = self.pending.take() {
            return Some(Transmit::Control(p));
        }
        if self.outcome.is_some() || self.next >= self.window_end() {
            return None;
        }
        let index = self.next;
        self.next += 1;
        if index < self.sent_end {
            self.retransmits += 1;
        } else {
            self.sent_end = index + 1;
        }
        if index == 0 {
            return self.oack.clone().map(Transmit::Control);
        }
        let offset = (index - 1) * self.blksize;
        let len = self.blksize.min(self.size - offset) as usize;
        self.bytes_sent += len as u64;
        Some(Transmit::Data {
            block: index as u16,
            offset,
            len,
        })
    }

    /// When to call [`Session::handle_timeout`]; `None` once the transfer is over.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outcome.is_none().then_some(self.deadline)
    }

    /// Set once the transfer is over; the shell drops the session after draining transmits.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// Packets sent again (after a timeout or an RFC 7440 window restart).
    pub fn retransmits(&self) -> u64 {
        self.retransmits
    }

    /// File bytes sent in DATA packets, retransmissions included.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Negotiated block size, for the shell's buffers and logs.
    pub fn blksize(&self) -> usize {
        self.blksize as usize
    }

    /// Negotiated window size, for logs.
    pub fn windowsize(&self) -> u64 {
        self.windowsize
    }

    fn window_end(&self) -> u64 {
        if self.base == 0 {
            1 // the OACK is a window of its own
        } else {
            (self.base + self.windowsize).min(self.last + 1)
        }
    }

    fn on_ack(&mut self, now: Instant, block: u16) {
        let Some(top) = self.sent_end.checked_sub(1) else {
            return; // nothing sent yet: nothing to acknowledge
        };
        let distance = u64::from((top as u16).wrapping_sub(block));
        let Some(acked) = top.checked_sub(distance) else {
            return;
        };
        if acked < self.base {
            // A duplicate or stale ACK. Answering it would double every later block
            // (Sorcerer's Apprentice); only the timer retransmits.
            return;
        }
        if acked == self.last {
            self.outcome = Some(Outcome::Complete);
            return;
        }
        // The whole window, or (RFC 7440) part of it: either way continue after `acked`.
        self.base = acked + 1;
        self.next = self.base;
        self.retries = 0;
        self.deadline = now + self.timeout;
    }

    fn fail(&mut self, outcome: Outcome, code: ErrorCode, message: &str) {
        self.pending = Some(wire::error_packet(code, message));
        self.outcome = Some(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_blksize: 1468,
        max_windowsize: 64,
        timeout: Duration::from_secs(1),
        max_retries: 3,
    };

    fn opts(blksize: Option<u16>, tsize: Option<u64>, windowsize: Option<u16>) -> Options {
        Options {
            blksize,
            tsize,
            timeout: None,
            windowsize,
        }
    }

    fn ack(block: u16) -> Vec<u8> {
        let mut b = Vec::new();
        Packet::Ack { block }.emit(&mut b);
        b
    }

    /// What the session sends, as (block, len) for DATA; OACK/ERROR are parsed.
    #[derive(Debug, PartialEq)]
    enum Sent {
        Data(u16, usize),
        Oack(Options),
        Error(u16),
    }

    fn drain(s: &mut Session) -> Vec<Sent> {
        let mut out = Vec::new();
        // Bounded: one window plus one control packet at most.
        for _ in 0..=WINDOWSIZE_CEILING as usize + 1 {
            let Some(t) = s.poll_transmit() else {
                return out;
            };
            out.push(match t {
                Transmit::Data { block, offset, len } => {
                    assert_eq!(offset % s.blksize, 0);
                    assert_eq!((offset / s.blksize + 1) as u16, block);
                    Sent::Data(block, len)
                }
                Transmit::Control(p) => match Packet::parse(&p).unwrap() {
                    Packet::Oack(o) => Sent::Oack(o),
                    Packet::Error { code, .. } => Sent::Error(code),
                    other => panic!("unexpected {other:?}"),
                },
            });
        }
        panic!("session never stopped transmitting");
    }

    fn data(blocks: std::ops::RangeInclusive<u16>, len: usize) -> Vec<Sent> {
        blocks.map(|b| Sent::Data(b, len)).collect()
    }

    #[test]
    fn blksize_fits_the_mtu() {
        assert_eq!(blksize_for_mtu(1500, false), 1468);
        assert_eq!(blksize_for_mtu(1500, true), 1448);
        assert_eq!(blksize_for_mtu(9000, true), 8948);
        assert_eq!(blksize_for_mtu(65536, false), BLKSIZE_MAX);
        assert_eq!(blksize_for_mtu(20, false), BLKSIZE_MIN);
    }

    #[test]
    fn lockstep_without_options() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, &Options::default(), 1200, &LIMITS);
        assert_eq!(drain(&mut s), vec![Sent::Data(1, 512)]);
        s.handle(t0, &ack(1));
        assert_eq!(drain(&mut s), vec![Sent::Data(2, 512)]);
        s.handle(t0, &ack(2));
        assert_eq!(drain(&mut s), vec![Sent::Data(3, 176)]);
        assert_eq!(s.outcome(), None);
        s.handle(t0, &ack(3));
        assert_eq!(s.outcome(), Some(&Outcome::Complete));
        assert_eq!(
            (s.poll_timeout(), s.bytes_sent(), s.retransmits()),
            (None, 1200, 0)
        );
    }

    #[test]
    fn empty_file_and_exact_multiple_end_with_short_block() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, &Options::default(), 0, &LIMITS);
        assert_eq!(drain(&mut s), vec![Sent::Data(1, 0)]);
        s.handle(t0, &ack(1));
        assert_eq!(s.outcome(), Some(&Outcome::Complete));

        let mut s = Session::new(t0, &Options::default(), 512, &LIMITS);
        assert_eq!(drain(&mut s), vec![Sent::Data(1, 512)]);
        s.handle(t0, &ack(1));
        assert_eq!(drain(&mut s), vec![Sent::Data(2, 0)]);
        s.handle(t0, &ack(2));
        assert_eq!(s.outcome(), Some(&Outcome::Complete));
    }

    #[test]
    fn duplicate_ack_sends_nothing() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, &Options::default(), 2000, &LIMITS);
        drain(&mut s);
        s.handle(t0, &ack(1));
        assert_eq!(drain(&mut s), vec![Sent::Data(2, 512)]);
        // The client's own retransmission of ACK 1 arrives late: no second DATA 2.
        s.handle(t0, &ack(1));
        s.handle(t0, &ack(1));
        assert_eq!(drain(&mut s), vec![]);
        s.handle(t0, &ack(2));
        assert_eq!(drain(&mut s), vec![Sent::Data(3, 512)]);
        assert_eq!(s.retransmits(), 0);
    }

    #[test]
    fn ack_never_sent_is_ignored() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, &Options::default(), 2000, &LIMITS);
        s.handle(t0, &ack(1)); // before anything went out
        drain(&mut s);
        s.handle(t0, &ack(7));
        s.handle(t0, &ack(0));
        assert_eq!(drain(&mut s), vec![]);
        assert_eq!(s.outcome(), None);
    }

    #[test]
    fn lost_data_is_resent_on_timeout_then_gives_up() {
        let t0 = Instant::now();
        let sec = Duration::from_secs(1);
        let mut s = Session::new(t0, &Options::default(), 2000, &LIMITS);
        drain(&mut s); // DATA 1 lost
        assert_eq!(s.poll_timeout(), Some(t0 + sec));
        s.handle_timeout(t0 + sec / 2); // early wake-up: nothing
        assert_eq!(drain(&mut s), vec![]);
        for i in 1..=3 {
            s.handle_timeout(t0 + sec * i);
            assert_eq!(drain(&mut s), vec![Sent::Data(1, 512)]);
        }
        assert_eq!(s.retransmits(), 3);
        s.handle_timeout(t0 + sec * 4);
        assert_eq!(s.outcome(), Some(&Outcome::TimedOut));
        assert_eq!(drain(&mut s), vec![Sent::Error(0)]);
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn progress_resets_retries() {
        let t0 = Instant::now();
        let sec = Duration::from_secs(1);
        let mut s = Session::new(t0, &Options::default(), 5000, &LIMITS);
        drain(&mut s);
        s.handle_timeout(t0 + sec);
        s.handle_timeout(t0 + sec * 2);
        s.handle_timeout(t0 + sec * 3);
        s.handle(t0 + sec * 3, &ack(1));
        drain(&mut s);
        for i in 4..=6 {
            s.handle_timeout(t0 + sec * i);
            assert_eq!(drain(&mut s), vec![Sent::Data(2, 512)]);
        }
        assert_eq!(s.outcome(), None);
    }

    #[test]
    fn options_are_negotiated_and_clamped() {
        let t0 = Instant::now();
        let req = Options {
            blksize: Some(9000),
            tsize: Some(0),
            timeout: Some(3),
            windowsize: Some(500),
        };
        let mut s = Session::new(t0, &req, 100_000, &LIMITS);
        let granted = Options {
            blksize: Some(1468),
            tsize: Some(100_000),
            timeout: Some(3),
            windowsize: Some(64),
        };
        assert_eq!(drain(&mut s), vec![Sent::Oack(granted)]);
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(3)));
        assert_eq!((s.blksize(), s.windowsize()), (1468, 64));
    }

    #[test]
    fn empty_file_gets_no_tsize() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, &opts(Some(1468), Some(0), None), 0, &LIMITS);
        assert_eq!(
            drain(&mut s),
            vec![Sent::Oack(opts(Some(1468), None, None))]
        );
        // tsize alone: nothing left to acknowledge, so DATA comes straight away.
        let mut s = Session::new(t0, &opts(None, Some(0), None), 0, &LIMITS);
        assert_eq!(drain(&mut s), vec![Sent::Data(1, 0)]);
    }

    #[test]
    fn unknown_options_only_means_no_oack() {
        // "multicast" was dropped by the parser, leaving no option to acknowledge.
        let mut s = Session::new(Instant::now(), &Options::default(), 10, &LIMITS);
        assert_eq!(drain(&mut s), vec![Sent::Data(1, 10)]);
    }

    #[test]
    fn lost_oack_is_resent_and_ack0_starts_data() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, &opts(Some(1024), None, None), 3000, &LIMITS);
        let oack = Sent::Oack(opts(Some(1024), None, None));
        assert_eq!(drain(&mut s), vec![oack]);
        s.handle_timeout(t0 + Duration::from_secs(1));
        assert!(matches!(drain(&mut s)[..], [Sent::Oack(_)]));
        s.handle(t0, &ack(0));
        assert_eq!(drain(&mut s), vec![Sent::Data(1, 1024)]);
        s.handle(t0, &ack(0)); // duplicate ACK of the OACK
        assert_eq!(drain(&mut s), vec![]);
    }

    /// EDK2: RRQ with tsize=0, OACK, then ERROR from the client. Nothing may remain.
    #[test]
    fn tsize_probe_then_abort_frees_everything() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, &opts(Some(1468), Some(0), None), 1_048_576, &LIMITS);
        let oack = Sent::Oack(opts(Some(1468), Some(1_048_576), None));
        assert_eq!(drain(&mut s), vec![oack]);
        s.handle(t0, b"\x00\x05\x00\x08\x00");
        assert_eq!(
            s.outcome(),
            Some(&Outcome::ClientError {
                code: 8,
                message: String::new()
            })
        );
        assert_eq!((s.poll_timeout(), drain(&mut s)), (None, vec![]));
        // Late packets and timers change nothing.
        s.handle(t0, &ack(0));
        s.handle_timeout(t0 + Duration::from_secs(60));
        assert_eq!(drain(&mut s), vec![]);
    }

    #[test]
    fn error_mid_transfer_ends_it() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, &opts(None, None, Some(8)), 100_000, &LIMITS);
        drain(&mut s);
        s.handle(t0, &ack(0));
        assert_eq!(drain(&mut s).len(), 8);
        s.handle(t0, b"\x00\x05\x00\x00disk full\x00");
        let end = Outcome::ClientError {
            code: 0,
            message: "disk full".into(),
        };
        assert_eq!(s.outcome(), Some(&end));
        assert_eq!(drain(&mut s), vec![]);
    }

    #[test]
    fn illegal_packet_gets_error_4() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, &Options::default(), 100, &LIMITS);
        drain(&mut s);
        s.handle(t0, b"\x00\x03\x00\x01xx");
        assert_eq!(s.outcome(), Some(&Outcome::IllegalPacket));
        assert_eq!(drain(&mut s), vec![Sent::Error(4)]);
    }

    fn windowed(size: u64, w: u16, t0: Instant) -> Session {
        let mut s = Session::new(t0, &opts(None, None, Some(w)), size, &LIMITS);
        drain(&mut s);
        s.handle(t0, &ack(0));
        s
    }

    /// RFC 7440 §4, first example: window of 4, every window acknowledged.
    #[test]
    fn rfc7440_window_without_loss() {
        let t0 = Instant::now();
        let mut s = windowed(512 * 9 + 100, 4, t0);
        assert_eq!(drain(&mut s), data(1..=4, 512));
        s.handle(t0, &ack(4));
        assert_eq!(drain(&mut s), data(5..=8, 512));
        s.handle(t0, &ack(8));
        assert_eq!(drain(&mut s), vec![Sent::Data(9, 512), Sent::Data(10, 100)]);
        s.handle(t0, &ack(10));
        assert_eq!(s.outcome(), Some(&Outcome::Complete));
        assert_eq!(s.retransmits(), 0);
    }

    /// RFC 7440 §4, loss example: DATA 6 lost; the client acknowledges 5 on seeing 7 out
    /// of order and the server restarts the window at 6. The client's later repeats of
    /// ACK 5 must not restart it again.
    #[test]
    fn rfc7440_lost_data_restarts_window_after_ack() {
        let t0 = Instant::now();
        let mut s = windowed(512 * 20, 4, t0);
        drain(&mut s);
        s.handle(t0, &ack(4));
        assert_eq!(drain(&mut s), data(5..=8, 512)); // 6 is lost on the way
        s.handle(t0, &ack(5));
        assert_eq!(drain(&mut s), data(6..=9, 512));
        assert_eq!(s.retransmits(), 3); // 6, 7, 8
        s.handle(t0, &ack(5));
        assert_eq!(drain(&mut s), vec![]);
        s.handle(t0, &ack(9));
        assert_eq!(drain(&mut s), data(10..=13, 512));
    }

    /// The ACK closing a window is lost: the timer resends the whole window, and the
    /// client's ACK of its end moves on.
    #[test]
    fn rfc7440_lost_ack_resends_window_on_timeout() {
        let t0 = Instant::now();
        let mut s = windowed(512 * 20, 4, t0);
        assert_eq!(drain(&mut s), data(1..=4, 512));
        s.handle_timeout(t0 + Duration::from_secs(1));
        assert_eq!(drain(&mut s), data(1..=4, 512));
        s.handle(t0 + Duration::from_secs(1), &ack(4));
        assert_eq!(drain(&mut s), data(5..=8, 512));
    }

    /// Duplicated DATA at the client and duplicated ACKs back: no extra DATA.
    #[test]
    fn windowed_duplicate_acks_are_ignored() {
        let t0 = Instant::now();
        let mut s = windowed(512 * 20, 4, t0);
        drain(&mut s);
        s.handle(t0, &ack(4));
        s.handle(t0, &ack(4));
        assert_eq!(drain(&mut s), data(5..=8, 512));
        s.handle(t0, &ack(2)); // stale, from before
        s.handle(t0, &ack(4));
        assert_eq!(drain(&mut s), vec![]);
    }

    /// An ACK arriving while the window is still being sent restarts it right there.
    #[test]
    fn mid_window_ack_while_sending() {
        let t0 = Instant::now();
        let mut s = windowed(512 * 20, 8, t0);
        assert_eq!(
            s.poll_transmit(),
            Some(Transmit::Data {
                block: 1,
                offset: 0,
                len: 512
            })
        );
        assert_eq!(
            s.poll_transmit(),
            Some(Transmit::Data {
                block: 2,
                offset: 512,
                len: 512
            })
        );
        s.handle(t0, &ack(1));
        assert_eq!(drain(&mut s), data(2..=9, 512));
    }

    /// 8-byte blocks make a 600 000-byte file 75 001 blocks: numbers go 65535, 0, 1.
    #[test]
    fn rollover_lockstep() {
        let t0 = Instant::now();
        let size = 8 * 75_000;
        let mut s = Session::new(t0, &opts(Some(8), None, None), size, &LIMITS);
        drain(&mut s);
        s.handle(t0, &ack(0));
        let mut seen = Vec::new();
        for _ in 0..80_000 {
            let Some(Transmit::Data { block, offset, len }) = s.poll_transmit() else {
                break;
            };
            assert_eq!(s.poll_transmit(), None);
            if (65_534..=65_538).contains(&(offset / 8)) {
                seen.push(block);
            }
            assert_eq!(len, if offset == size { 0 } else { 8 });
            s.handle(t0, &ack(block));
        }
        assert_eq!(seen, vec![65535, 0, 1, 2, 3]);
        assert_eq!(s.outcome(), Some(&Outcome::Complete));
        assert_eq!(s.bytes_sent(), size);
    }

    /// A window straddling the rollover, with a loss right after block 0.
    #[test]
    fn rollover_windowed_with_loss() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, &opts(Some(8), None, Some(16)), 8 * 70_000, &LIMITS);
        drain(&mut s);
        s.handle(t0, &ack(0));
        for _ in 0..4095 {
            let sent = drain(&mut s);
            let Some(Sent::Data(last, _)) = sent.last() else {
                panic!()
            };
            s.handle(t0, &ack(*last));
        }
        // Blocks 65521..65535 and 0 went; 0 reached the client, 1 did not.
        assert_eq!(
            drain(&mut s),
            (65521..=65535)
                .chain(0..=0)
                .map(|b| Sent::Data(b, 8))
                .collect::<Vec<_>>()
        );
        s.handle(t0, &ack(65535));
        assert_eq!(drain(&mut s), data(0..=15, 8));
        s.handle(t0, &ack(0));
        assert_eq!(drain(&mut s), data(1..=16, 8));
        s.handle(t0, &ack(65535)); // stale
        assert_eq!(drain(&mut s), vec![]);
    }
}
