//! DHCPv4 parse plus decide: a sequence of datagrams into one `dhcp4::Server` serving the
//! example config on 192.168.1.1, the clock moving `delta` seconds before each.
//!
//! Beyond "no panic": every OFFER and ACK hands out a pool address that the lease table
//! then records for the same client, every ACK's lease is persisted (an OFFER's is held in
//! memory only), and every reply is a BOOTREPLY echoing the xid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sixboot::dhcp4::server::{Outcome, Server};
use sixboot::dhcp4::wire::{MessageType, OP_BOOTREPLY, field};
use sixboot::policy::Policy;
use sixboot_fuzz::{SERVER4, START, example_config, records};
use std::sync::{Arc, OnceLock};

fn policy() -> Arc<Policy> {
    static POLICY: OnceLock<Arc<Policy>> = OnceLock::new();
    POLICY
        .get_or_init(|| Arc::new(Policy::new(example_config())))
        .clone()
}

fn check(server: &Server, request: &[u8], out: &Outcome) {
    let Ok(reply) = &out.result else { return };
    assert_eq!(reply.packet[field::OP], OP_BOOTREPLY);
    assert_eq!(reply.packet[field::XID], request[field::XID]);
    if matches!(reply.kind, MessageType::Offer | MessageType::Ack) {
        assert!(server.leases().in_pool(reply.yiaddr), "{out:?}");
        let held = server.leases().get(reply.yiaddr);
        assert!(held.is_some(), "the table does not record {out:?}");
        match (&out.persist, reply.kind) {
            (Some(l), MessageType::Ack) => assert_eq!(Some(l), held),
            (None, MessageType::Offer) => {}
            _ => panic!("an ACK is persisted, an OFFER is not: {out:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let cfg = example_config()
        .dhcp4
        .clone()
        .expect("example config has [dhcp4]");
    let mut server = Server::new(cfg, policy(), Vec::new());
    let mut now = START;
    for (delta, datagram) in records(data) {
        now += u64::from(delta);
        let out = server.handle(now, SERVER4, datagram);
        check(&server, datagram, &out);
    }
});
