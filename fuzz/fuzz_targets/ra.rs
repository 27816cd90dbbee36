//! RA/RS parsing and the RA schedule: a sequence of ICMPv6 messages into the `ra::Sender`
//! built from the example config, the clock moving `delta` × 10 ms before each and every
//! RA that falls due being sent.
//!
//! Beyond "no panic": a parsed RA emits and parses back to itself, and however many RSs
//! arrive, two RAs are never closer than MIN_DELAY_BETWEEN_RAS (the rate limit RFC 4861
//! §6.2.6 asks for, which is what keeps an RS flood from becoming an RA flood).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sixboot::ra::sender::{MIN_DELAY_BETWEEN_RAS, Sender, advert};
use sixboot::ra::wire::{HOP_LIMIT, Message};
use sixboot_fuzz::{CLIENT6, example_config, records};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

const MAC: [u8; 6] = [0x12, 0x6f, 0xf0, 0xf8, 0x82, 0x67];

fuzz_target!(|data: &[u8]| {
    let cfg = example_config()
        .ipv6
        .as_ref()
        .expect("example config has [ipv6]");
    let mut now = Instant::now();
    let mut sender = Sender::new(now, advert(cfg, Some(MAC)));
    let mut last_sent: Option<Instant> = None;
    for (delta, packet) in records(data) {
        if let Ok(Message::RouterAdvert(ra)) = Message::parse(packet) {
            assert_eq!(Message::parse(&ra.emit()), Ok(Message::RouterAdvert(ra)));
        }
        now += Duration::from_millis(u64::from(delta) * 10);
        // Bit 0: from the unspecified address (a host without one yet); bit 1: a hop
        // limit that says the packet crossed a router.
        let from = if delta & 1 == 1 {
            Ipv6Addr::UNSPECIFIED
        } else {
            CLIENT6
        };
        let hop_limit = if delta & 2 == 2 { 64 } else { HOP_LIMIT };
        drain(&mut sender, now, &mut last_sent);
        let _ = sender.handle(now, packet, from, hop_limit, f64::from(delta) / 256.0);
        drain(&mut sender, now, &mut last_sent);
    }
});

/// Sends every RA due by `now`, each at the moment it fell due, as the shell's timer does.
fn drain(sender: &mut Sender, now: Instant, last_sent: &mut Option<Instant>) {
    while sender.poll_timeout() <= now {
        let at = sender.poll_timeout();
        assert!(
            sender.poll_transmit(at, 0.5).is_some(),
            "due at {at:?}, nothing sent"
        );
        if let Some(prev) = *last_sent {
            assert!(
                at >= prev + MIN_DELAY_BETWEEN_RAS,
                "RAs {:?} apart",
                at - prev
            );
        }
        *last_sent = Some(at);
    }
}
