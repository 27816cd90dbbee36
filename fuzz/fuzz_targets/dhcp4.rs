//! DHCPv4 parse plus decide: a sequence of datagrams into one `dhcp4::Server` serving the
//! example config on 192.168.1.1, the clock moving `delta` seconds before each.
//!
//! Beyond "no panic": every OFFER and ACK hands out a pool address that the lease table
//! then records for the same client, and every reply is a BOOTREPLY echoing the xid.
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
        if let Some(l) = &out.persist {
            assert_eq!(l.addr, reply.yiaddr);
            assert_eq!(server.leases().get(l.addr), Some(l));
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
