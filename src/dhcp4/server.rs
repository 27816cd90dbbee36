//! The DHCPv4 decision core, sans-IO: bytes, the receiving interface's address and `now`
//! go in; an [`Outcome`] comes out, carrying the reply (if any), where it must go, the
//! lease change to make durable *before* sending, and otherwise the reason for silence.
//!
//! Authoritative like the seed's ISC dhcpd, but only for firmware: the policy module says
//! who may have an address at all; this core only handles leases and the protocol.

use super::leases::Leases;
use super::wire::{MessageType, Packet, ParseError, ReplyWriter, opt};
use crate::config::Dhcp4;
use crate::policy::{self, Boot4, Hints, Policy};
use crate::store::{Lease4, LeaseState};
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// Seconds an OFFER holds its address for the client's REQUEST.
pub const OFFER_HOLD: u64 = 60;

/// Where a reply goes (RFC 2131 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// 255.255.255.255:68 on the receiving interface.
    Broadcast,
    /// To `ip`:68 although the client has no address yet: the shell adds a neighbour entry
    /// for `mac` first, or falls back to broadcast.
    Unicast { ip: Ipv4Addr, mac: [u8; 6] },
    /// To the relay agent, port 67.
    Relay(Ipv4Addr),
    /// To a configured client's address, port 68 (renewals).
    Client(Ipv4Addr),
}

/// Why a packet got no reply. Every variant is counted and logged by label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed(ParseError),
    /// The policy refused this client (iPXE, an OS, no file for its arch...).
    Policy(policy::Refusal),
    /// Relayed from a giaddr outside every configured subnet.
    UnknownRelay(Ipv4Addr),
    /// Not relayed, and the receiving interface has no address in the subnet.
    NoSubnet,
    /// A REQUEST choosing another server's offer.
    OtherServer,
    PoolExhausted,
    /// DHCPINFORM: sixboot gives firmware nothing beyond its lease.
    Inform,
    /// A server message (OFFER, ACK, NAK) sent to the server port.
    NotClientMessage(MessageType),
    /// A REQUEST with neither option 50 nor ciaddr.
    NoAddressRequested,
    /// RELEASE processed: no reply by design.
    Released,
    /// DECLINE processed, address quarantined: no reply by design.
    Declined,
    /// RELEASE or DECLINE of an address this client does not hold.
    NotHeld,
}

impl Refusal {
    /// Stable label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Malformed(e) => e.as_str(),
            Refusal::Policy(r) => r.as_str(),
            Refusal::UnknownRelay(_) => "unknown_relay",
            Refusal::NoSubnet => "no_subnet_on_interface",
            Refusal::OtherServer => "other_server_chosen",
            Refusal::PoolExhausted => "pool_exhausted",
            Refusal::Inform => "inform_not_served",
            Refusal::NotClientMessage(_) => "not_client_message",
            Refusal::NoAddressRequested => "no_address_requested",
            Refusal::Released => "released",
            Refusal::Declined => "declined",
            Refusal::NotHeld => "not_held",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Malformed(e) => write!(f, "malformed packet: {}", e.as_str()),
            Refusal::Policy(r) => write!(f, "{r}"),
            Refusal::UnknownRelay(a) => write!(f, "relay {a} is outside every configured subnet"),
            Refusal::NoSubnet => write!(f, "the interface has no address in the configured subnet"),
            Refusal::OtherServer => write!(f, "the client chose another server"),
            Refusal::PoolExhausted => write!(f, "the address pool is exhausted"),
            Refusal::Inform => write!(f, "DHCPINFORM is not served"),
            Refusal::NotClientMessage(m) => write!(f, "{} is a server message", m.name()),
            Refusal::NoAddressRequested => write!(f, "REQUEST names no address"),
            Refusal::Released => write!(f, "lease released"),
            Refusal::Declined => write!(f, "address declined and quarantined"),
            Refusal::NotHeld => write!(f, "the client does not hold that address"),
        }
    }
}

/// A reply to send once `Outcome::persist` is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub kind: MessageType,
    pub dest: Destination,
    pub yiaddr: Ipv4Addr,
    pub packet: Vec<u8>,
}

/// The decision for one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The request's message type, when it parsed.
    pub request: Option<MessageType>,
    /// The client's hardware address, when it parsed.
    pub mac: Option<[u8; 6]>,
    /// The firmware's arch and boot file, when the policy answered.
    pub boot: Option<Boot4>,
    pub result: Result<Reply, Refusal>,
    /// Lease state to write before the reply leaves (or, with no reply, at all).
    pub persist: Option<Lease4>,
}

/// One DISCOVER or REQUEST being decided: when, on which address, from whom, and what the
/// policy lets the client boot.
#[derive(Clone, Copy)]
struct Exchange<'x, 'a> {
    now: u64,
    local: Ipv4Addr,
    p: &'x Packet<'a>,
    client: &'x [u8],
    boot: &'x Boot4,
}

impl Exchange<'_, '_> {
    /// The lease this client would hold at `addr`.
    fn lease(&self, addr: Ipv4Addr, state: LeaseState, expires: u64) -> Lease4 {
        Lease4 {
            addr,
            client: self.client.to_vec(),
            mac: self.p.chaddr.to_vec(),
            state,
            expires,
        }
    }
}

/// The DHCPv4 server state for one subnet.
pub struct Server {
    cfg: Dhcp4,
    policy: Arc<Policy>,
    leases: Leases,
}

/// What identifies a client: option 61, else hardware type + chaddr (RFC 2131 §4.2).
/// An option 61 shorter than RFC 2132's minimum of two bytes (a type and at least one byte
/// of identifier) identifies nobody: firmware that sent a bare type byte would otherwise
/// all share one lease.
fn client_key(p: &Packet) -> Vec<u8> {
    match p.options.get(opt::CLIENT_ID) {
        Some(id) if id.len() >= 2 => id.to_vec(),
        _ => std::iter::once(p.htype)
            .chain(p.chaddr.iter().copied())
            .collect(),
    }
}

fn hints<'a>(p: &Packet<'a>) -> Hints<'a> {
    Hints {
        vendor_class: p.options.get(opt::VENDOR_CLASS),
        user_class: p.options.get(opt::USER_CLASS),
        arch: p
            .options
            .get(opt::CLIENT_ARCH)
            .and_then(|a| a.first_chunk())
            .map(|a| u16::from_be_bytes(*a)),
        ipxe_options: p.options.get(opt::IPXE_ENCAP).is_some(),
    }
}

fn mac_of(p: &Packet) -> Option<[u8; 6]> {
    p.chaddr.try_into().ok()
}

impl Server {
    pub fn new(cfg: Dhcp4, policy: Arc<Policy>, stored: Vec<Lease4>) -> Server {
        let mut leases = Leases::new(cfg.pool.0, cfg.pool.1);
        leases.load(stored);
        Server {
            cfg,
            policy,
            leases,
        }
    }

    pub fn subnet(&self) -> ipnet::Ipv4Net {
        self.cfg.subnet
    }

    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// Decides what to do with one datagram received on an interface whose IPv4 address
    /// is `local`, at unix time `now`.
    pub fn handle(&mut self, now: u64, local: Ipv4Addr, bytes: &[u8]) -> Outcome {
        let p = match Packet::parse(bytes) {
            Ok(p) => p,
            Err(e) => {
                return Outcome {
                    request: None,
                    mac: None,
                    boot: None,
                    result: Err(Refusal::Malformed(e)),
                    persist: None,
                };
            }
        };
        let mut out = Outcome {
            request: Some(p.message_type),
            mac: mac_of(&p),
            boot: None,
            result: Err(Refusal::Inform),
            persist: None,
        };
        out.result = self.decide(now, local, &p, &mut out.boot, &mut out.persist);
        out
    }

    fn decide(
        &mut self,
        now: u64,
        local: Ipv4Addr,
        p: &Packet,
        boot: &mut Option<Boot4>,
        persist: &mut Option<Lease4>,
    ) -> Result<Reply, Refusal> {
        let unspecified = Ipv4Addr::UNSPECIFIED;
        if p.giaddr != unspecified {
            if !self.cfg.subnet.contains(&p.giaddr) {
                return Err(Refusal::UnknownRelay(p.giaddr));
            }
        } else if !self.cfg.subnet.contains(&local) {
            return Err(Refusal::NoSubnet);
        }
        let client = client_key(p);
        match p.message_type {
            MessageType::Discover | MessageType::Request => {
                let b = self
                    .policy
                    .dhcp4(&hints(p), local)
                    .map_err(Refusal::Policy)?;
                let x = Exchange {
                    now,
                    local,
                    p,
                    client: &client,
                    boot: &b,
                };
                let r = if p.message_type == MessageType::Discover {
                    self.discover(&x)
                } else {
                    self.request(&x, persist)
                };
                *boot = Some(b);
                r
            }
            MessageType::Decline => {
                let r = p.requested_ip().ok_or(Refusal::NotHeld)?;
                let l = self.held(r, &client).ok_or(Refusal::NotHeld)?;
                let expires = now + u64::from(self.cfg.decline_time);
                *persist = Some(self.leases.put(Lease4 {
                    client: Vec::new(),
                    state: LeaseState::Declined,
                    expires,
                    ..l
                }));
                Err(Refusal::Declined)
            }
            MessageType::Release => {
                let l = self.held(p.ciaddr, &client).ok_or(Refusal::NotHeld)?;
                *persist = Some(self.leases.put(Lease4 {
                    state: LeaseState::Released,
                    expires: now,
                    ..l
                }));
                Err(Refusal::Released)
            }
            MessageType::Inform => Err(Refusal::Inform),
            m @ (MessageType::Offer | MessageType::Ack | MessageType::Nak) => {
                Err(Refusal::NotClientMessage(m))
            }
        }
    }

    /// The lease at `a` if `client` holds it (offered or bound).
    fn held(&self, a: Ipv4Addr, client: &[u8]) -> Option<Lease4> {
        self.leases
            .get(a)
            .filter(|l| {
                l.client == client && matches!(l.state, LeaseState::Offered | LeaseState::Bound)
            })
            .cloned()
    }

    /// An offer is held in memory only, for [`OFFER_HOLD`] seconds: it grants nothing until
    /// the ACK, and the ACK's lease is what goes to disk before its reply (ISC dhcpd's
    /// `ack_lease` too commits only for an ACK). So an OFFER leaves at once, without
    /// waiting for a commit. A restart forgets open offers; the client's REQUEST for one is
    /// then NAKed and it starts over, and no address is ever ACKed to two clients.
    fn discover(&mut self, x: &Exchange) -> Result<Reply, Refusal> {
        let (now, local, p, client, b) = (x.now, x.local, x.p, x.client, x.boot);
        let addr = self
            .leases
            .choose(now, client, p.requested_ip())
            .ok_or(Refusal::PoolExhausted)?;
        let still_bound = self
            .held(addr, client)
            .is_some_and(|l| l.state == LeaseState::Bound && l.expires > now);
        if !still_bound {
            self.leases
                .put(x.lease(addr, LeaseState::Offered, now + OFFER_HOLD));
        }
        Ok(self.reply(p, MessageType::Offer, addr, local, b))
    }

    fn request(&mut self, x: &Exchange, persist: &mut Option<Lease4>) -> Result<Reply, Refusal> {
        let (now, local, p, client, b) = (x.now, x.local, x.p, x.client, x.boot);
        let unspecified = Ipv4Addr::UNSPECIFIED;
        let wanted = p
            .requested_ip()
            .or((p.ciaddr != unspecified).then_some(p.ciaddr));
        let grant = match p.server_id() {
            Some(sid) if sid != local => {
                // SELECTING another server: free what we offered (in memory, like the offer).
                if let Some(l) = self
                    .leases
                    .of_client(client)
                    .filter(|l| l.state == LeaseState::Offered)
                    .cloned()
                {
                    self.leases.put(Lease4 {
                        state: LeaseState::Released,
                        expires: now,
                        ..l
                    });
                }
                return Err(Refusal::OtherServer);
            }
            // SELECTING us: only the address we offered (or it already holds).
            Some(_) => wanted.filter(|&w| self.held(w, client).is_some()),
            // INIT-REBOOT, RENEWING, REBINDING: any address that is free for it.
            None => {
                let w = wanted.ok_or(Refusal::NoAddressRequested)?;
                Some(w).filter(|&w| {
                    self.cfg.subnet.contains(&w) && self.leases.available(now, w, client)
                })
            }
        };
        let Some(addr) = grant else {
            return Ok(self.nak(p, local));
        };
        let expires = now + u64::from(self.lease_secs(p));
        *persist = Some(self.leases.put(x.lease(addr, LeaseState::Bound, expires)));
        Ok(self.reply(p, MessageType::Ack, addr, local, b))
    }

    /// The client's asked-for time capped at `max_lease_time`, else `lease_time`.
    fn lease_secs(&self, p: &Packet) -> u32 {
        p.lease_time().map_or(self.cfg.lease_time, |t| {
            t.clamp(60, self.cfg.max_lease_time)
        })
    }

    fn reply(
        &self,
        p: &Packet,
        kind: MessageType,
        addr: Ipv4Addr,
        local: Ipv4Addr,
        b: &Boot4,
    ) -> Reply {
        let next_server = self.cfg.next_server.unwrap_or(local);
        let secs = self.lease_secs(p);
        let file = b.target.file_field(None);
        let mut packet = Vec::with_capacity(400);
        let mut w = ReplyWriter::new(&mut packet, p, kind);
        w.yiaddr(addr)
            .siaddr(next_server)
            .ciaddr(p.ciaddr)
            .file(file.as_bytes());
        w.option_addr(opt::SERVER_ID, local)
            .option_u32(opt::LEASE_TIME, secs)
            .option_u32(opt::RENEWAL_TIME, secs / 2)
            .option_u32(opt::REBINDING_TIME, secs / 8 * 7)
            .option_addr(opt::SUBNET_MASK, self.cfg.subnet.netmask());
        if let Some(r) = self.cfg.router {
            w.option_addr(opt::ROUTER, r);
        }
        if !self.cfg.dns.is_empty() {
            let v: Vec<u8> = self.cfg.dns.iter().flat_map(|a| a.octets()).collect();
            w.option(opt::DNS, &v);
        }
        if p.requests(opt::TFTP_SERVER_NAME) {
            w.option(opt::TFTP_SERVER_NAME, next_server.to_string().as_bytes());
        }
        if p.requests(opt::BOOTFILE_NAME) {
            w.option(opt::BOOTFILE_NAME, file.as_bytes());
        }
        if b.target.echoes_http_client() {
            w.option(opt::VENDOR_CLASS, crate::policy::HTTP_CLIENT);
        }
        w.finish();
        Reply {
            kind,
            dest: destination(p, addr),
            yiaddr: addr,
            packet,
        }
    }

    fn nak(&self, p: &Packet, local: Ipv4Addr) -> Reply {
        let mut packet = Vec::with_capacity(300);
        let mut w = ReplyWriter::new(&mut packet, p, MessageType::Nak);
        w.option_addr(opt::SERVER_ID, local);
        w.finish();
        let dest = if p.giaddr != Ipv4Addr::UNSPECIFIED {
            // Relays broadcast a NAK on the client's segment when the flag is set.
            packet[super::wire::field::FLAGS.start] |= 0x80;
            Destination::Relay(p.giaddr)
        } else {
            Destination::Broadcast
        };
        Reply {
            kind: MessageType::Nak,
            dest,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            packet,
        }
    }
}

fn destination(p: &Packet, yiaddr: Ipv4Addr) -> Destination {
    let unspecified = Ipv4Addr::UNSPECIFIED;
    if p.giaddr != unspecified {
        Destination::Relay(p.giaddr)
    } else if p.ciaddr != unspecified {
        Destination::Client(p.ciaddr)
    } else if p.broadcast() {
        Destination::Broadcast
    } else {
        match mac_of(p) {
            Some(mac) if p.htype == super::wire::HTYPE_ETHERNET => {
                Destination::Unicast { ip: yiaddr, mac }
            }
            _ => Destination::Broadcast,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Boot;
    use crate::dhcp4::wire::tests::request;
    use proptest::prelude::*;

    const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const NOW: u64 = 1_800_000_000;

    pub(crate) fn cfg() -> Dhcp4 {
        Dhcp4 {
            subnet: "192.168.1.0/24".parse().unwrap(),
            pool: ([192, 168, 1, 10].into(), [192, 168, 1, 254].into()),
            lease_time: 600,
            max_lease_time: 7200,
            next_server: None,
            router: None,
            dns: vec![],
            decline_time: 3600,
        }
    }

    pub(crate) fn policy() -> Arc<Policy> {
        let boot = Boot {
            bios: Some("undionly.kpxe".into()),
            uefi_x64: Some("snponly.efi".into()),
            ..Boot::default()
        };
        Arc::new(crate::policy::tests_support::policy(boot, None))
    }

    fn server() -> Server {
        Server::new(cfg(), policy(), vec![])
    }

    /// Options in the order and shape sent by the firmware and clients of DESIGN.md §2.
    fn with(head: &[u8], rest: &[&[u8]]) -> Vec<u8> {
        let mut o = head.to_vec();
        for r in rest {
            o.extend_from_slice(r);
        }
        o.push(255);
        o
    }
    fn tlv(code: u8, v: &[u8]) -> Vec<u8> {
        let mut o = vec![code, v.len() as u8];
        o.extend_from_slice(v);
        o
    }
    fn seabios_ipxe_rom(mt: u8) -> Vec<u8> {
        let o = with(
            &[53, 1, mt],
            &[
                &tlv(57, &[5, 220]),
                &tlv(93, &[0, 0]),
                &tlv(94, &[1, 2, 1]),
                &tlv(60, b"PXEClient:Arch:00000:UNDI:002001"),
                &tlv(77, b"iPXE"),
                &tlv(
                    55,
                    &[
                        1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132,
                        133, 134, 135, 175, 203,
                    ],
                ),
                &tlv(
                    175,
                    &[
                        177, 5, 1, 128, 134, 16, 14, 235, 3, 1, 0, 0, 23, 1, 1, 34, 1, 1, 19, 1, 1,
                        17, 1, 1,
                    ],
                ),
                &tlv(61, &[1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]),
                &tlv(97, &[0; 17]),
            ],
        );
        request(MAC, &o)
    }
    fn ovmf_pxe_x64(mt: u8, extra: &[&[u8]]) -> Vec<u8> {
        let mut parts: Vec<&[u8]> = extra.to_vec();
        let fixed = [
            tlv(57, &[5, 192]),
            tlv(
                55,
                &[
                    1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54,
                    58, 59, 60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135,
                ],
            ),
            tlv(97, &[0; 17]),
            tlv(94, &[1, 3, 0]),
            tlv(93, &[0, 7]),
            tlv(60, b"PXEClient:Arch:00007:UNDI:003000"),
        ];
        parts.extend(fixed.iter().map(|v| v.as_slice()));
        request(MAC, &with(&[53, 1, mt], &parts))
    }
    fn snponly_efi() -> Vec<u8> {
        let o = with(
            &[53, 1, 1],
            &[
                &tlv(57, &[5, 220]),
                &tlv(93, &[0, 7]),
                &tlv(94, &[1, 3, 16]),
                &tlv(60, b"PXEClient:Arch:00007:UNDI:003010"),
                &tlv(77, b"iPXE"),
                &tlv(61, &[1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            ],
        );
        request(MAC, &o)
    }
    fn dhclient(mt: u8) -> Vec<u8> {
        request(
            MAC,
            &with(
                &[53, 1, mt],
                &[
                    &tlv(12, b"debian"),
                    &tlv(55, &[1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42]),
                ],
            ),
        )
    }

    fn reply(o: &Outcome) -> &Reply {
        o.result
            .as_ref()
            .unwrap_or_else(|r| panic!("no reply: {r}"))
    }

    fn parsed(r: &Reply) -> dhcproto::v4::Message {
        use dhcproto::{Decodable, Decoder};
        dhcproto::v4::Message::decode(&mut Decoder::new(&r.packet)).unwrap()
    }

    /// DISCOVER then REQUEST (selecting us) from the same client; returns the ACK.
    fn dora(s: &mut Server, discover: &[u8], now: u64) -> Reply {
        let offer = reply(&s.handle(now, LOCAL, discover)).clone();
        let mut req = discover.to_vec();
        let at = req.iter().rposition(|&b| b == 255).unwrap();
        req.truncate(at);
        let mt = crate::dhcp4::wire::field::OPTIONS + 2;
        req[mt] = 3;
        req.extend_from_slice(&tlv(50, &offer.yiaddr.octets()));
        req.extend_from_slice(&tlv(54, &LOCAL.octets()));
        req.push(255);
        reply(&s.handle(now, LOCAL, &req)).clone()
    }

    /// Real packets captured from QEMU firmware (tests/fixtures/README.md).
    const ROM_IPXE: &[u8] = include_bytes!("../../tests/fixtures/dhcp4/ipxe-rom-bios-discover.bin");
    const SNPONLY: &[u8] =
        include_bytes!("../../tests/fixtures/dhcp4/ipxe-snponly-efi-discover.bin");
    const DHCLIENT: &[u8] = include_bytes!("../../tests/fixtures/dhcp4/dhclient-discover.bin");
    const OVMF_DISCOVER: &[u8] =
        include_bytes!("../../tests/fixtures/dhcp4/ovmf-pxe-x64-discover.bin");
    const OVMF_REQUEST: &[u8] =
        include_bytes!("../../tests/fixtures/dhcp4/ovmf-pxe-x64-request.bin");

    #[test]
    fn client_ids_shorter_than_two_bytes_fall_back_to_the_mac() {
        let mut s = server();
        let mut got = Vec::new();
        for (last, id) in [(1u8, &[][..]), (2, &[1][..]), (3, &[1][..])] {
            let mut mac = MAC;
            mac[5] = last;
            let o = with(
                &[53, 1, 1],
                &[
                    &tlv(93, &[0, 0]),
                    &tlv(60, b"PXEClient:Arch:00000:UNDI:002001"),
                    &tlv(61, id),
                ],
            );
            got.push(reply(&s.handle(NOW, LOCAL, &request(mac, &o))).yiaddr);
        }
        got.dedup();
        assert_eq!(got.len(), 3, "two machines shared an address: {got:?}");
    }

    #[test]
    fn captured_ipxe_and_dhclient_discovers_are_refused() {
        let mut s = server();
        assert_eq!(
            s.handle(NOW, LOCAL, ROM_IPXE).result,
            Err(Refusal::Policy(policy::Refusal::Ipxe))
        );
        assert_eq!(
            s.handle(NOW, LOCAL, SNPONLY).result,
            Err(Refusal::Policy(policy::Refusal::Ipxe))
        );
        assert_eq!(
            s.handle(NOW, LOCAL, DHCLIENT).result,
            Err(Refusal::Policy(policy::Refusal::NotFirmware))
        );
    }

    #[test]
    fn captured_ovmf_discover_and_request_get_offer_and_ack() {
        // The captured REQUEST asks for what the reference server offered; start the pool
        // there so our OFFER names the same address.
        let wanted = Packet::parse(OVMF_REQUEST).unwrap().requested_ip().unwrap();
        let mut c = cfg();
        c.pool = (wanted, Ipv4Addr::new(192, 168, 1, 254));
        let mut s = Server::new(c, policy(), vec![]);
        let o = s.handle(NOW, LOCAL, OVMF_DISCOVER);
        let offer = reply(&o);
        assert_eq!(
            (offer.kind, offer.yiaddr, offer.dest),
            (MessageType::Offer, wanted, Destination::Broadcast)
        );
        assert_eq!(
            o.boot.as_ref().unwrap().target,
            crate::policy::Target::Tftp {
                file: "snponly.efi".into()
            }
        );
        let o = s.handle(NOW, LOCAL, OVMF_REQUEST);
        let ack = reply(&o);
        assert_eq!((ack.kind, ack.yiaddr), (MessageType::Ack, wanted));
        assert_eq!(parsed(ack).fname().unwrap(), b"snponly.efi\0");
        assert_eq!(o.persist.unwrap().state, LeaseState::Bound);
    }

    #[test]
    fn bios_firmware_gets_undionly_with_only_the_seed_options() {
        // A BIOS PXE ROM that is not iPXE: plain PXEClient arch 0.
        let bios = request(
            MAC,
            &with(
                &[53, 1, 1],
                &[
                    &tlv(93, &[0, 0]),
                    &tlv(60, b"PXEClient:Arch:00000:UNDI:002001"),
                ],
            ),
        );
        let mut s = server();
        let o = s.handle(NOW, LOCAL, &bios);
        let r = reply(&o);
        assert_eq!(r.kind, MessageType::Offer);
        assert_eq!(r.yiaddr, Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(
            r.dest,
            Destination::Unicast {
                ip: r.yiaddr,
                mac: MAC
            }
        );
        let m = parsed(r);
        assert_eq!(m.fname().unwrap(), b"undionly.kpxe\0");
        assert_eq!(m.siaddr(), LOCAL);
        use dhcproto::v4::OptionCode as C;
        let codes: Vec<C> = m.opts().iter().map(|(c, _)| *c).collect();
        for c in [
            C::MessageType,
            C::ServerIdentifier,
            C::AddressLeaseTime,
            C::Renewal,
            C::Rebinding,
            C::SubnetMask,
        ] {
            assert!(codes.contains(&c), "{c:?} missing");
        }
        for c in [
            C::Router,
            C::DomainNameServer,
            C::TFTPServerName,
            C::BootfileName,
            C::ClassIdentifier,
        ] {
            assert!(!codes.contains(&c), "{c:?} must not be sent unasked");
        }
        // The offer is held in memory, not written: it leaves without waiting for a commit.
        assert!(
            o.persist.is_none(),
            "an OFFER is not persisted: {:?}",
            o.persist
        );
        assert_eq!(
            s.leases().get(r.yiaddr).map(|l| l.state),
            Some(LeaseState::Offered)
        );
    }

    #[test]
    fn ovmf_x64_gets_snponly_and_options_66_67_when_asked() {
        let mut s = server();
        let ack = dora(&mut s, &ovmf_pxe_x64(1, &[]), NOW);
        assert_eq!(ack.kind, MessageType::Ack);
        let m = parsed(&ack);
        assert_eq!(m.fname().unwrap(), b"snponly.efi\0");
        use dhcproto::v4::{DhcpOption, OptionCode as C};
        assert_eq!(
            m.opts().get(C::BootfileName),
            Some(&DhcpOption::BootfileName(b"snponly.efi".to_vec()))
        );
        assert_eq!(
            m.opts().get(C::TFTPServerName),
            Some(&DhcpOption::TFTPServerName(b"192.168.1.1".to_vec()))
        );
        assert_eq!(
            m.opts().get(C::AddressLeaseTime),
            Some(&DhcpOption::AddressLeaseTime(600))
        );
        assert_eq!(m.opts().get(C::Renewal), Some(&DhcpOption::Renewal(300)));
        assert_eq!(s.leases().get(ack.yiaddr).unwrap().state, LeaseState::Bound);
    }

    #[test]
    fn ipxe_rom_snponly_and_dhclient_never_get_an_answer() {
        let mut s = server();
        for (pkt, why) in [
            (seabios_ipxe_rom(1), policy::Refusal::Ipxe),
            (seabios_ipxe_rom(3), policy::Refusal::Ipxe),
            (snponly_efi(), policy::Refusal::Ipxe),
            (dhclient(1), policy::Refusal::NotFirmware),
            (dhclient(3), policy::Refusal::NotFirmware),
        ] {
            let o = s.handle(NOW, LOCAL, &pkt);
            assert_eq!(o.result, Err(Refusal::Policy(why)));
            assert_eq!(o.persist, None);
        }
        assert_eq!(s.leases().active(NOW), 0);
    }

    #[test]
    fn broadcast_flag_relay_and_unknown_relay() {
        let mut s = server();
        let mut b = ovmf_pxe_x64(1, &[]);
        b[10] = 0x80;
        assert_eq!(
            reply(&s.handle(NOW, LOCAL, &b)).dest,
            Destination::Broadcast
        );
        let mut relayed = ovmf_pxe_x64(1, &[]);
        relayed[24..28].copy_from_slice(&[192, 168, 1, 2]);
        assert_eq!(
            reply(&s.handle(NOW, LOCAL, &relayed)).dest,
            Destination::Relay([192, 168, 1, 2].into())
        );
        relayed[24..28].copy_from_slice(&[10, 9, 9, 9]);
        assert_eq!(
            s.handle(NOW, LOCAL, &relayed).result,
            Err(Refusal::UnknownRelay([10, 9, 9, 9].into()))
        );
        // Not relayed, and received where we have no address in the subnet.
        assert_eq!(
            s.handle(NOW, [10, 0, 0, 1].into(), &b).result,
            Err(Refusal::NoSubnet)
        );
    }

    #[test]
    fn same_client_same_address_and_lease_time_capped() {
        let mut s = server();
        let a1 = dora(&mut s, &ovmf_pxe_x64(1, &[]), NOW);
        let a2 = dora(&mut s, &ovmf_pxe_x64(1, &[]), NOW + 10);
        assert_eq!(a1.yiaddr, a2.yiaddr);
        let long = tlv(51, &100_000u32.to_be_bytes());
        let a3 = dora(&mut s, &ovmf_pxe_x64(1, &[&long]), NOW + 20);
        use dhcproto::v4::{DhcpOption, OptionCode as C};
        assert_eq!(
            parsed(&a3).opts().get(C::AddressLeaseTime),
            Some(&DhcpOption::AddressLeaseTime(7200))
        );
    }

    #[test]
    fn naks_for_wrong_subnet_taken_address_and_unoffered_selection() {
        let mut s = server();
        let mut other = ovmf_pxe_x64(1, &[]);
        other[28 + 5] = 0x99; // another MAC
        let held = dora(&mut s, &other, NOW).yiaddr;
        for (req, note) in [
            (ovmf_pxe_x64(3, &[&tlv(50, &[10, 0, 0, 5])]), "wrong subnet"),
            (
                ovmf_pxe_x64(3, &[&tlv(50, &held.octets())]),
                "held by another client",
            ),
            (
                ovmf_pxe_x64(3, &[&tlv(50, &[192, 168, 1, 2])]),
                "outside the pool",
            ),
            (
                ovmf_pxe_x64(
                    3,
                    &[&tlv(50, &[192, 168, 1, 77]), &tlv(54, &LOCAL.octets())],
                ),
                "never offered",
            ),
        ] {
            let o = s.handle(NOW, LOCAL, &req);
            assert_eq!(reply(&o).kind, MessageType::Nak, "{note}");
            assert_eq!(reply(&o).dest, Destination::Broadcast, "{note}");
            assert_eq!(o.persist, None, "{note}");
        }
        // INIT-REBOOT of a free in-pool address is granted (authoritative).
        let o = s.handle(
            NOW,
            LOCAL,
            &ovmf_pxe_x64(3, &[&tlv(50, &[192, 168, 1, 77])]),
        );
        assert_eq!(reply(&o).kind, MessageType::Ack);
    }

    #[test]
    fn request_for_another_server_frees_our_offer() {
        let mut s = server();
        let offer = reply(&s.handle(NOW, LOCAL, &ovmf_pxe_x64(1, &[]))).yiaddr;
        let o = s.handle(
            NOW,
            LOCAL,
            &ovmf_pxe_x64(3, &[&tlv(50, &offer.octets()), &tlv(54, &[192, 168, 1, 5])]),
        );
        assert_eq!(o.result, Err(Refusal::OtherServer));
        // The offer was only ever in memory, and so is freeing it.
        assert_eq!(o.persist, None);
        assert_eq!(
            s.leases().get(offer).map(|l| l.state),
            Some(LeaseState::Released)
        );
        assert!(s.leases().available(NOW, offer, b"\x01other"));
    }

    #[test]
    fn decline_quarantines_and_release_frees() {
        let mut s = server();
        let a = dora(&mut s, &ovmf_pxe_x64(1, &[]), NOW).yiaddr;
        let o = s.handle(NOW, LOCAL, &ovmf_pxe_x64(4, &[&tlv(50, &a.octets())]));
        assert_eq!(o.result, Err(Refusal::Declined));
        assert_eq!(o.persist.as_ref().unwrap().state, LeaseState::Declined);
        let b = dora(&mut s, &ovmf_pxe_x64(1, &[]), NOW).yiaddr;
        assert_ne!(a, b, "a declined address is not offered again");
        let mut rel = ovmf_pxe_x64(7, &[]);
        rel[12..16].copy_from_slice(&b.octets());
        assert_eq!(s.handle(NOW, LOCAL, &rel).result, Err(Refusal::Released));
        assert_eq!(s.handle(NOW, LOCAL, &rel).result, Err(Refusal::NotHeld));
    }

    #[test]
    fn pool_exhaustion_is_a_reason() {
        let mut c = cfg();
        c.pool = ([192, 168, 1, 10].into(), [192, 168, 1, 10].into());
        let mut s = Server::new(c, policy(), vec![]);
        dora(&mut s, &ovmf_pxe_x64(1, &[]), NOW);
        let mut other = ovmf_pxe_x64(1, &[]);
        other[28 + 5] = 0x99;
        assert_eq!(
            s.handle(NOW, LOCAL, &other).result,
            Err(Refusal::PoolExhausted)
        );
    }

    #[test]
    fn a_restart_forgets_open_offers_so_their_request_is_naked_and_the_client_starts_over() {
        let mut s = server();
        let offered = reply(&s.handle(NOW, LOCAL, &ovmf_pxe_x64(1, &[]))).yiaddr;
        // Nothing was written for the offer, so the restarted server starts empty.
        let mut s = server();
        let selecting = [tlv(50, &offered.octets()), tlv(54, &LOCAL.octets())];
        let req = ovmf_pxe_x64(3, &[&selecting[0], &selecting[1]]);
        assert_eq!(
            reply(&s.handle(NOW + 1, LOCAL, &req)).kind,
            MessageType::Nak
        );
        // Starting over, the client gets the same address (stable per client) and keeps it.
        let o = s.handle(NOW + 2, LOCAL, &ovmf_pxe_x64(1, &[]));
        assert_eq!(reply(&o).yiaddr, offered);
        let o = s.handle(NOW + 3, LOCAL, &req);
        assert_eq!(reply(&o).kind, MessageType::Ack);
        assert_eq!(o.persist.map(|l| l.addr), Some(offered));
    }

    #[test]
    fn http_boot_firmware_gets_a_url_and_the_echo() {
        let boot = Boot {
            uefi_x64: Some("snponly.efi".into()),
            ..Boot::default()
        };
        let p = Arc::new(crate::policy::tests_support::policy(
            boot,
            Some("192.168.1.1:8080"),
        ));
        let mut s = Server::new(cfg(), p, vec![]);
        let pkt = request(
            MAC,
            &with(
                &[53, 1, 1],
                &[
                    &tlv(93, &[0, 16]),
                    &tlv(60, b"HTTPClient:Arch:00016:UNDI:003001"),
                ],
            ),
        );
        let m = parsed(reply(&s.handle(NOW, LOCAL, &pkt)));
        assert_eq!(
            m.fname().unwrap(),
            b"http://192.168.1.1:8080/boot/snponly.efi\0"
        );
        use dhcproto::v4::{DhcpOption, OptionCode as C};
        assert_eq!(
            m.opts().get(C::ClassIdentifier),
            Some(&DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()))
        );
    }

    #[test]
    fn inform_and_server_messages_are_refused_with_reasons() {
        let mut s = server();
        assert_eq!(
            s.handle(NOW, LOCAL, &ovmf_pxe_x64(8, &[])).result,
            Err(Refusal::Inform)
        );
        assert_eq!(
            s.handle(NOW, LOCAL, &ovmf_pxe_x64(2, &[])).result,
            Err(Refusal::NotClientMessage(MessageType::Offer))
        );
        assert_eq!(
            s.handle(NOW, LOCAL, &[0u8; 10]).result,
            Err(Refusal::Malformed(ParseError::Truncated))
        );
    }

    fn any_options() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
        let code = (1u8..=254).prop_filter("not 52/53/60/77/175", |c| {
            ![52, 53, 60, 77, 175].contains(c)
        });
        proptest::collection::vec((code, proptest::collection::vec(any::<u8>(), 0..20)), 0..8)
    }

    fn packet(mt: u8, opts: &[(u8, Vec<u8>)], extra: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut o = vec![53, 1, mt];
        for (c, v) in opts.iter().chain(extra) {
            o.extend_from_slice(&tlv(*c, v));
        }
        o.push(255);
        request(MAC, &o)
    }

    proptest! {
        #[test]
        fn prop_ipxe_user_class_is_never_answered(
            mt in prop_oneof![Just(1u8), Just(3u8)],
            opts in any_options(),
            prefixed in any::<bool>(),
            arch in prop_oneof![Just(0u16), Just(7), Just(9), Just(16)],
            vc in prop_oneof![Just(&b"PXEClient:Arch:00000:UNDI:002001"[..]), Just(&b"HTTPClient"[..])],
        ) {
            let uc = if prefixed { b"\x04iPXE".to_vec() } else { b"iPXE".to_vec() };
            let extra = vec![(60, vc.to_vec()), (77, uc), (93, arch.to_be_bytes().to_vec())];
            let mut s = server();
            let o = s.handle(NOW, LOCAL, &packet(mt, &opts, &extra));
            prop_assert!(o.result.is_err());
            prop_assert!(o.persist.is_none());
        }

        #[test]
        fn prop_no_firmware_vendor_class_is_never_answered(
            mt in prop_oneof![Just(1u8), Just(3u8)],
            opts in any_options(),
            vc in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        ) {
            let vc = vc.filter(|v| !v.starts_with(b"PXEClient") && !v.starts_with(b"HTTPClient"));
            let extra: Vec<(u8, Vec<u8>)> = vc.into_iter().map(|v| (60, v)).collect();
            let mut s = server();
            let o = s.handle(NOW, LOCAL, &packet(mt, &opts, &extra));
            prop_assert!(matches!(o.result, Err(Refusal::Policy(_)) | Err(Refusal::Malformed(_))));
        }

        #[test]
        fn prop_no_two_clients_ever_hold_one_address(ops in proptest::collection::vec((0u8..7, 0usize..6, 0u8..8), 1..120)) {
            let mut c = cfg();
            c.pool = ([192, 168, 1, 10].into(), [192, 168, 1, 13].into());
            let mut disk: std::collections::HashMap<Ipv4Addr, Lease4> = Default::default();
            let mut s = Server::new(c.clone(), policy(), vec![]);
            // The model: who was ACKed which address, until when.
            let mut acked: std::collections::HashMap<Ipv4Addr, (usize, u64)> = Default::default();
            let mut now = NOW;
            for (op, who, arg) in ops {
                let pkt = |mt: u8, extra: &[&[u8]]| {
                    let mut b = ovmf_pxe_x64(mt, extra);
                    b[28 + 5] = who as u8;
                    b
                };
                let addr = [192, 168, 1, 10 + arg % 5];
                let o = match op {
                    0 => s.handle(now, LOCAL, &pkt(1, &[])),
                    1 => s.handle(now, LOCAL, &pkt(3, &[&tlv(50, &addr), &tlv(54, &LOCAL.octets())])),
                    2 => s.handle(now, LOCAL, &pkt(3, &[&tlv(50, &addr)])),
                    3 => { let mut b = pkt(7, &[]); b[12..16].copy_from_slice(&addr); s.handle(now, LOCAL, &b) }
                    4 => s.handle(now, LOCAL, &pkt(4, &[&tlv(50, &addr)])),
                    5 => { now += u64::from(arg) * 200; continue }
                    _ => { s = Server::new(c.clone(), policy(), disk.values().cloned().collect()); continue }
                };
                if let Some(l) = &o.persist {
                    disk.insert(l.addr, l.clone());
                }
                match (&o.result, op) {
                    (Ok(r), _) if r.kind == MessageType::Ack => {
                        if let Some(&(holder, until)) = acked.get(&r.yiaddr) {
                            prop_assert!(holder == who || until <= now, "{} ACKed to {who} while held by {holder}", r.yiaddr);
                        }
                        let until = o.persist.as_ref().unwrap().expires;
                        acked.retain(|_, (h, _)| *h != who);
                        acked.insert(r.yiaddr, (who, until));
                    }
                    (Ok(r), _) if r.kind == MessageType::Offer => {
                        if let Some(&(holder, until)) = acked.get(&r.yiaddr) {
                            prop_assert!(holder == who || until <= now, "{} offered to {who} while held by {holder}", r.yiaddr);
                        }
                    }
                    (Err(Refusal::Released | Refusal::Declined), _) => { acked.retain(|a, (h, _)| !(*h == who && a.octets() == addr)); }
                    _ => {}
                }
            }
        }
    }
}
