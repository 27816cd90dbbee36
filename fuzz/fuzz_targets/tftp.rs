//! TFTP request parsing and one read transfer: the input is a file size (u32 BE), then
//! records. The first record is an RRQ for port 69; if admitted, the others go to its
//! session as the client's ACK/ERROR/junk, the clock moving `delta` × 20 ms before each
//! (with the retransmission timer firing when due), except that records whose `delta`
//! has the top bit set are further requests to port 69 from other client ports.
//!
//! Beyond "no panic": DATA blocks stay inside the file and the negotiated blksize, carry
//! the block number of their offset (mod 65536), never more than a window per event; a
//! transfer only completes once every block was sent; the per-client cap holds; every
//! refusal is a well-formed ERROR.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sixboot::tftp::server::{Decision, Server};
use sixboot::tftp::session::{Limits, Outcome, Session, Transmit, blksize_for_mtu};
use sixboot::tftp::wire::Packet;
use sixboot_fuzz::records;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 244);
const MAX_PER_CLIENT: usize = 2;

fn refused(reply: &[u8]) {
    assert!(matches!(Packet::parse(reply), Ok(Packet::Error { .. })));
}

/// Drains what the session sends after one event, checking each packet.
fn drain(s: &mut Session, size: u64) {
    let mut sent = 0;
    while let Some(t) = s.poll_transmit() {
        sent += 1;
        assert!(sent <= s.windowsize() + 1, "more than a window at once");
        match t {
            Transmit::Control(p) => {
                assert!(matches!(
                    Packet::parse(&p),
                    Ok(Packet::Oack(_) | Packet::Error { .. })
                ));
            }
            Transmit::Data { block, offset, len } => {
                let blksize = s.blksize() as u64;
                assert!(len as u64 <= blksize && offset + len as u64 <= size);
                assert_eq!(offset % blksize, 0);
                assert_eq!(block, (offset / blksize + 1) as u16);
            }
        }
    }
    if s.outcome() == Some(&Outcome::Complete) {
        assert!(
            s.bytes_sent() >= size,
            "complete after {} of {size} bytes",
            s.bytes_sent()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((size, data)) = data.split_first_chunk::<4>() else {
        return;
    };
    let size = u64::from(u32::from_be_bytes(*size));
    let mut records = records(data);
    let Some((_, rrq)) = records.next() else {
        return;
    };
    let mut admission = Server::new(4, MAX_PER_CLIENT);
    let options = match admission.on_request(SocketAddr::from((CLIENT, 1556)), rrq) {
        Decision::Start { options, .. } => options,
        Decision::Refuse(r) => return refused(&r.reply()),
        Decision::Ignore(_) => return,
    };
    let limits = Limits {
        max_blksize: blksize_for_mtu(1500, false),
        max_windowsize: 64,
        timeout: Duration::from_secs(1),
        max_retries: 5,
    };
    let mut now = Instant::now();
    let mut s = Session::new(now, &options, size, &limits);
    drain(&mut s, size);
    for (delta, datagram) in records {
        if delta & 0x80 != 0 {
            let port = 1556 + u16::from(delta & 7);
            if let Decision::Refuse(r) =
                admission.on_request(SocketAddr::from((CLIENT, port)), datagram)
            {
                refused(&r.reply());
            }
            assert!(admission.active() <= MAX_PER_CLIENT);
            continue;
        }
        now += Duration::from_millis(u64::from(delta) * 20);
        // Each expiry in turn, at its own time, as the shell's timer fires them.
        while let Some(due) = s.poll_timeout().filter(|&t| t <= now) {
            s.handle_timeout(due);
            drain(&mut s, size);
        }
        s.handle(now, datagram);
        drain(&mut s, size);
    }
});
