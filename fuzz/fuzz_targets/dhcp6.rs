//! DHCPv6 parse plus decide, relays included: a sequence of datagrams into one
//! `dhcp6::Server` serving the example config as fd00:1::1, the clock moving `delta`
//! seconds before each. Odd deltas come from a relay's global address, even ones from
//! the OVMF client's link-local address.
//!
//! Beyond "no panic": a reply goes back wrapped in exactly as many Relay-reply layers as
//! the request came in Relay-forward layers (never more than 32), it answers with
//! Advertise or Reply inside, and every address handed out is in the pool.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sixboot::dhcp6::server::{Destination, Server};
use sixboot::dhcp6::wire::{HOP_COUNT_LIMIT, MessageType, opt};
use sixboot::policy::Policy;
use sixboot_fuzz::{CLIENT6, SERVER_DUID, SERVER6, START, example_config, records};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::sync::{Arc, OnceLock};

const RELAY: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 2);
/// msg-type, hop-count, link-address, peer-address (RFC 8415 §9).
const RELAY_HEADER: usize = 34;

fn policy() -> Arc<Policy> {
    static POLICY: OnceLock<Arc<Policy>> = OnceLock::new();
    POLICY
        .get_or_init(|| Arc::new(Policy::new(example_config())))
        .clone()
}

/// Peels relay layers of type `relay` (each one's first Relay Message option), written
/// independently of the server's parser: how many, and the message inside. `None` when
/// a layer is too malformed to say.
fn layers(mut b: &[u8], relay: MessageType) -> Option<(usize, &[u8])> {
    let mut depth = 0;
    while *b.first()? == relay as u8 {
        let mut opts = b.get(RELAY_HEADER..)?;
        b = loop {
            let code = u16::from_be_bytes([*opts.first()?, *opts.get(1)?]);
            let len = usize::from(u16::from_be_bytes([*opts.get(2)?, *opts.get(3)?]));
            let value = opts.get(4..4 + len)?;
            if code == opt::RELAY_MSG {
                break value;
            }
            opts = &opts[4 + len..];
        };
        depth += 1;
    }
    Some((depth, b))
}

fuzz_target!(|data: &[u8]| {
    let cfg = example_config()
        .ipv6
        .clone()
        .expect("example config has [ipv6]");
    let pool = cfg.pool.0..=cfg.pool.1;
    let mut server = Server::new(cfg, policy(), SERVER_DUID.to_vec(), Vec::new());
    let mut now = START;
    for (delta, datagram) in records(data) {
        now += u64::from(delta);
        let from = if delta & 1 == 1 { RELAY } else { CLIENT6 };
        let from = SocketAddrV6::new(from, 546, 0, 0);
        let Ok(reply) = server.handle(now, SERVER6, datagram, from).result else {
            continue;
        };
        for a in &reply.addrs {
            assert!(pool.contains(a), "{a} outside the pool");
        }
        let (asked, _) = layers(datagram, MessageType::RelayForw).expect("a parsable request");
        let (answered, inner) =
            layers(&reply.bytes, MessageType::RelayRepl).expect("a well-formed reply");
        assert!(asked <= usize::from(HOP_COUNT_LIMIT), "{asked} relays");
        assert_eq!(answered, asked);
        assert_eq!(matches!(reply.dest, Destination::Relay(_)), asked > 0);
        let t = inner[0];
        assert!(
            t == MessageType::Advertise as u8 || t == MessageType::Reply as u8,
            "type {t}"
        );
    }
});
