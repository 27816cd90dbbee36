//! The DHCPv6 server core (RFC 8415), sans-IO: the time, the interface's address, a
//! datagram and its source go in; an [`Outcome`] comes out: a [`Reply`] (bytes, where they
//! go, and the lease changes to persist first) or the [`Refusal`] that explains the
//! silence. No sockets, no clock, no globals.
//!
//! What a client gets besides its address is the policy's call ([`Policy::dhcp6`]); this
//! module only applies it. Relay-forward messages are unwrapped (at most
//! [`HOP_COUNT_LIMIT`] deep) and the reply wrapped back in Relay-reply.

use super::leases::{Identity, Leases};
use super::wire::{
    CLIENT_PORT, HOP_COUNT_LIMIT, IaNa, Message, MessageType, MessageWriter, Packet, ParseError,
    Relay, Status, duid, opt,
};
use crate::config::Ipv6;
use crate::policy::{self, Client, Hints, NoBootUrl, Policy};
use crate::store::{Change, Lease6, LeaseState};
use std::fmt;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::sync::Arc;

/// Seconds an advertised address is held for the client's Request.
const OFFER_HOLD: u64 = 60;
/// Seconds a declined address stays out of the pool.
const DECLINE_HOLD: u64 = 3600;

/// Why a datagram gets no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Parse(ParseError),
    /// More than [`HOP_COUNT_LIMIT`] relays, or a hop count at the limit.
    RelayTooDeep,
    /// Advertise, Reply or Reconfigure: only servers send those.
    FromServer(MessageType),
    /// A message that must identify its client does not.
    NoClientId,
    /// Request, Renew, Release and Decline name the server they are for.
    MissingServerId,
    /// Solicit, Rebind and Confirm go to every server and must not name one.
    UnexpectedServerId,
    /// Meant for another server.
    OtherServer,
    /// A Confirm with no address to confirm gets no reply (RFC 8415 §18.3.3).
    ConfirmWithoutAddresses,
    /// The interface has no address to put in boot URLs (yet): answering without one
    /// would hand out URLs that lead nowhere.
    NoAddress,
}

impl Refusal {
    /// Stable label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Parse(e) => e.as_str(),
            Refusal::RelayTooDeep => "relay_too_deep",
            Refusal::FromServer(_) => "server_message",
            Refusal::NoClientId => "no_client_id",
            Refusal::MissingServerId => "missing_server_id",
            Refusal::UnexpectedServerId => "unexpected_server_id",
            Refusal::OtherServer => "other_server",
            Refusal::ConfirmWithoutAddresses => "confirm_without_addresses",
            Refusal::NoAddress => "no_address_on_interface",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Parse(ParseError::BadOptionLength(c)) => {
                write!(f, "malformed: option {c} has an impossible length")
            }
            Refusal::Parse(e) => write!(f, "malformed: {}", e.as_str()),
            Refusal::RelayTooDeep => write!(f, "relayed more than {HOP_COUNT_LIMIT} times"),
            Refusal::FromServer(t) => write!(f, "{} is sent by servers, not to them", t.as_str()),
            Refusal::NoClientId => write!(f, "no client identifier"),
            Refusal::MissingServerId => write!(f, "no server identifier"),
            Refusal::UnexpectedServerId => {
                write!(f, "carries a server identifier it must not have")
            }
            Refusal::OtherServer => write!(f, "meant for another server"),
            Refusal::ConfirmWithoutAddresses => write!(f, "Confirm without addresses"),
            Refusal::NoAddress => write!(f, "the interface has no IPv6 address for boot URLs"),
        }
    }
}

/// Where a reply goes: decided here, so the shell only sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Straight to the client: the address (and scope) it sent from, port 546.
    Client(SocketAddrV6),
    /// Back through the relay it came by, to the address and port the relay sent from.
    Relay(SocketAddrV6),
}

/// A reply to send once `changes` are durable.
#[derive(Debug)]
pub struct Reply {
    pub bytes: Vec<u8>,
    pub dest: Destination,
    pub changes: Vec<Change>,
    /// What is answered, for logs and metrics.
    pub answered: MessageType,
    pub client: Client,
    /// The client's Ethernet address, when known (EUI-64 source or option 79).
    pub mac: Option<[u8; 6]>,
    pub addrs: Vec<Ipv6Addr>,
    pub boot: Result<String, NoBootUrl>,
    /// The client's DUID and IAID when this reply touches one of its leases, so the
    /// machine record can name them.
    pub identity: Option<(Vec<u8>, u32)>,
}

/// The decision for one datagram.
#[derive(Debug)]
pub struct Outcome {
    /// The datagram's message type (its outermost, so Relay-forward for a relayed one),
    /// when it names one: what the shell counts as received.
    pub request: Option<MessageType>,
    pub result: Result<Reply, Refusal>,
}

pub struct Server {
    cfg: Ipv6,
    policy: Arc<Policy>,
    duid: Vec<u8>,
    leases: Leases,
}

/// The Ethernet address inside an EUI-64 interface identifier (RFC 4291 appendix A), or
/// empty when the identifier is not one (privacy and stable-privacy addresses).
pub fn eui64_mac(a: Ipv6Addr) -> Vec<u8> {
    let o = a.octets();
    if o[11] != 0xff || o[12] != 0xfe {
        return Vec::new();
    }
    vec![o[8] ^ 0x02, o[9], o[10], o[13], o[14], o[15]]
}

impl Server {
    pub fn new(cfg: Ipv6, policy: Arc<Policy>, duid: Vec<u8>, stored: Vec<Lease6>) -> Server {
        let leases = Leases::new(cfg.pool, stored);
        Server {
            cfg,
            policy,
            duid,
            leases,
        }
    }

    /// Decides one datagram from `from` (the client or a relay) at Unix time `now`, on an
    /// interface whose address for boot URLs is `local` (unspecified when it has none).
    pub fn handle(
        &mut self,
        now: u64,
        local: Ipv6Addr,
        datagram: &[u8],
        from: SocketAddrV6,
    ) -> Outcome {
        Outcome {
            request: datagram.first().copied().and_then(MessageType::from_u8),
            result: self.decide(now, local, datagram, from),
        }
    }

    fn decide(
        &mut self,
        now: u64,
        local: Ipv6Addr,
        datagram: &[u8],
        from: SocketAddrV6,
    ) -> Result<Reply, Refusal> {
        let (msg, relays) = unwrap_relays(datagram)?;
        if local.is_unspecified() {
            return Err(Refusal::NoAddress);
        }
        let dest = if relays.is_empty() {
            let mut to = from;
            to.set_port(CLIENT_PORT);
            Destination::Client(to)
        } else {
            Destination::Relay(from)
        };
        let link = match relays.last() {
            Some(r) => r
                .options
                .get(opt::CLIENT_LINKLAYER_ADDR)
                .and_then(super::wire::ethernet_linklayer)
                .map_or_else(|| eui64_mac(r.peer_address), <[u8]>::to_vec),
            None => eui64_mac(*from.ip()),
        };
        let inner = self.answer(now, local, &msg, &link, dest)?;
        let mut bytes = inner.bytes;
        for r in relays.iter().rev() {
            let mut out = Vec::with_capacity(bytes.len() + 64);
            let mut w = MessageWriter::relay_reply(&mut out, r);
            if let Some(id) = r.options.get(opt::INTERFACE_ID) {
                w.option(opt::INTERFACE_ID, id);
            }
            w.option(opt::RELAY_MSG, &bytes);
            bytes = out;
        }
        Ok(Reply { bytes, ..inner })
    }

    fn answer(
        &mut self,
        now: u64,
        local: Ipv6Addr,
        msg: &Message,
        link: &[u8],
        dest: Destination,
    ) -> Result<Reply, Refusal> {
        use MessageType::*;
        let t = msg.msg_type;
        if matches!(t, Advertise | Reply | Reconfigure) {
            return Err(Refusal::FromServer(t));
        }
        let client_id = msg.options.get(opt::CLIENTID);
        if client_id.is_none() && t != InformationRequest {
            return Err(Refusal::NoClientId);
        }
        let client_id = client_id.unwrap_or_default();
        let server_id = msg.options.get(opt::SERVERID);
        match (t, server_id) {
            (Request | Renew | Release | Decline, None) => return Err(Refusal::MissingServerId),
            (Solicit | Rebind | Confirm, Some(_)) => return Err(Refusal::UnexpectedServerId),
            (_, Some(s)) if s != self.duid => return Err(Refusal::OtherServer),
            _ => {}
        }
        let ias = msg
            .options
            .all(opt::IA_NA)
            .map(IaNa::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Refusal::Parse)?;
        let status = match t {
            Confirm => Some(self.confirm(&ias)?),
            Release | Decline => Some(Status::Success),
            _ => None,
        };

        let vendor_class = msg
            .options
            .get(opt::VENDOR_CLASS)
            .and_then(super::wire::vendor_class)
            .filter(|(enterprise, _)| *enterprise == policy::PXE_ENTERPRISE)
            .and_then(|(_, data)| data);
        let hints = Hints {
            vendor_class,
            user_class: msg.options.get(opt::USER_CLASS),
            arch: msg
                .options
                .get(opt::CLIENT_ARCH_TYPE)
                .and_then(|v| super::wire::u16s(v).next()),
            ipxe_options: false,
        };
        let boot = self.policy.dhcp6(&hints, local);
        let url = boot.url();

        let rapid = t == Solicit && msg.options.get(opt::RAPID_COMMIT).is_some();
        let out_type = if t == Solicit && !rapid {
            Advertise
        } else {
            Reply
        };
        let mut bytes = Vec::with_capacity(256);
        let mut changes = Vec::new();
        let mut addrs = Vec::new();
        let mut w = MessageWriter::new(&mut bytes, out_type, msg.xid);
        w.option(opt::SERVERID, &self.duid);
        if !client_id.is_empty() {
            w.option(opt::CLIENTID, client_id);
        }
        if rapid {
            w.option(opt::RAPID_COMMIT, &[]);
        }
        if out_type == Advertise {
            // 255 lets clients take this offer at once instead of collecting others for a
            // full retransmission time (EDK2 waits about 4 s without it; RFC 8415 §18.2.1).
            w.option(opt::PREFERENCE, &[self.cfg.preference]);
        }
        let configures = matches!(t, Solicit | Request | Renew | Rebind | InformationRequest);
        for ia in &ias {
            let id = Identity {
                duid: client_id.to_vec(),
                iaid: ia.iaid,
                link: link.to_vec(),
            };
            match t {
                Solicit | Request | Renew | Rebind => {
                    let state = if t == Solicit && !rapid {
                        LeaseState::Offered
                    } else {
                        LeaseState::Bound
                    };
                    let (addr, change) = self.assign(now, &mut w, ia, &id, state);
                    addrs.extend(addr);
                    changes.extend(change);
                }
                Release | Decline => changes.extend(self.give_back(now, ia, &id, t)),
                _ => {}
            }
        }
        if let Some(s) = status {
            w.status(s, "");
        }
        if configures {
            if !self.cfg.dns.is_empty() {
                let dns: Vec<u8> = self.cfg.dns.iter().flat_map(|a| a.octets()).collect();
                w.option(opt::DNS_SERVERS, &dns);
            }
            if let Ok(url) = &url {
                w.option(opt::BOOTFILE_URL, url.as_bytes());
            }
            if boot.echoes_http_client() {
                w.vendor_class(policy::PXE_ENTERPRISE, policy::HTTP_CLIENT);
            }
        }
        let identity = changes.iter().find_map(|c| match c {
            Change::Lease6(l) => Some((l.duid.clone(), l.iaid)),
            _ => None,
        });
        Ok(self::Reply {
            bytes,
            dest,
            identity,
            changes,
            answered: t,
            client: boot.client,
            mac: link.try_into().ok(),
            addrs,
            boot: url,
        })
    }

    /// Confirm: are the client's addresses still on this link?
    fn confirm(&self, ias: &[IaNa]) -> Result<Status, Refusal> {
        let mut addrs = ias.iter().flat_map(IaNa::addresses).peekable();
        if addrs.peek().is_none() {
            return Err(Refusal::ConfirmWithoutAddresses);
        }
        Ok(if addrs.all(|a| self.cfg.prefix.contains(&a)) {
            Status::Success
        } else {
            Status::NotOnLink
        })
    }

    /// Writes one IA_NA with the address `id` gets (or NoAddrsAvail), and returns the
    /// address and the lease change. Addresses the client listed that it does not get
    /// go back with zero lifetimes, so it stops using them.
    fn assign(
        &mut self,
        now: u64,
        w: &mut MessageWriter,
        ia: &IaNa,
        id: &Identity,
        state: LeaseState,
    ) -> (Option<Ipv6Addr>, Option<Change>) {
        let held = self.leases.of_client(id).cloned();
        if held.is_none()
            && let Some(other) = self.leases.same_duid_elsewhere(now, id)
        {
            let what = if id.duid.starts_with(&duid::UUID.to_be_bytes()) {
                "duplicate SMBIOS UUID"
            } else {
                "duplicate DUID"
            };
            tracing::warn!(
                duid = %hex::encode(&id.duid),
                link = %hex::encode(&id.link),
                other_link = %hex::encode(&other.link),
                other_addr = %other.addr,
                "{what}: one client identifier from two link-layer addresses; treating them as two machines"
            );
        }
        let lt = self.cfg.lease_time;
        let Some(addr) = self.leases.choose(now, id, ia.addresses().next()) else {
            let at = w.ia_na(ia.iaid, 0, 0);
            w.status(Status::NoAddrsAvail, "pool exhausted");
            w.close(at);
            return (None, None);
        };
        // Advertising an address already bound to this client must not shorten it.
        let offer = state == LeaseState::Offered;
        let keep = offer
            && held
                .is_some_and(|l| l.addr == addr && l.state == LeaseState::Bound && l.expires > now);
        // An Advertise is held in memory only (it grants nothing until the Reply, whose
        // lease is on disk first), so it leaves without waiting for a commit.
        let change = (!keep)
            .then(|| {
                let hold = if offer { OFFER_HOLD } else { u64::from(lt) };
                self.leases.put(Lease6 {
                    addr,
                    duid: id.duid.clone(),
                    iaid: id.iaid,
                    link: id.link.clone(),
                    state,
                    expires: now + hold,
                })
            })
            .filter(|_| !offer);
        let at = w.ia_na(ia.iaid, lt / 2, lt / 5 * 4);
        w.iaaddr(addr, lt, lt);
        for other in ia.addresses().filter(|&a| a != addr) {
            w.iaaddr(other, 0, 0);
        }
        w.close(at);
        (Some(addr), change)
    }

    /// Release or Decline: the addresses of `ia` that `id` holds.
    fn give_back(&mut self, now: u64, ia: &IaNa, id: &Identity, t: MessageType) -> Vec<Change> {
        let Some(held) = self.leases.of_client(id).cloned() else {
            return Vec::new();
        };
        if !ia.addresses().any(|a| a == held.addr) {
            return Vec::new();
        }
        let lease = if t == MessageType::Decline {
            tracing::warn!(addr = %held.addr, link = %hex::encode(&id.link), "address declined: something else uses it; out of the pool for {DECLINE_HOLD} s");
            Lease6 {
                duid: Vec::new(),
                iaid: 0,
                link: Vec::new(),
                state: LeaseState::Declined,
                expires: now + DECLINE_HOLD,
                ..held
            }
        } else {
            Lease6 {
                state: LeaseState::Released,
                expires: now,
                ..held
            }
        };
        vec![self.leases.put(lease)]
    }
}

/// Peels Relay-forward layers off a datagram; returns the client message and the relays,
/// outermost first.
fn unwrap_relays(datagram: &[u8]) -> Result<(Message<'_>, Vec<Relay<'_>>), Refusal> {
    let mut relays = Vec::new();
    let mut bytes = datagram;
    loop {
        match Packet::parse(bytes).map_err(Refusal::Parse)? {
            Packet::Client(m) => return Ok((m, relays)),
            Packet::Relay(r) => {
                if r.hop_count >= HOP_COUNT_LIMIT || relays.len() >= HOP_COUNT_LIMIT as usize {
                    return Err(Refusal::RelayTooDeep);
                }
                bytes = r
                    .options
                    .get(opt::RELAY_MSG)
                    .ok_or(Refusal::Parse(ParseError::NoRelayMessage))?;
                relays.push(r);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::wire::tests::fixtures::*;
    use super::*;
    use dhcproto::{Decodable, Decoder, v6};

    /// The lab's config, shared with the namespace tests.
    const CONFIG: &str = include_str!("../../tests/common/lab-v6.toml");

    const SERVER_ADDR: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);
    const SERVER_DUID: [u8; 14] = [0, 1, 0, 1, 0x2e, 0x1f, 0, 0, 2, 0, 0, 0, 0, 1];
    const NOW: u64 = 1_795_000_000;

    fn server() -> Server {
        server_with(&SERVER_DUID, Vec::new())
    }

    /// A server with `duid` (that of a captured exchange's server, to replay it) and
    /// `stored` leases.
    fn server_with(duid: &[u8], stored: Vec<Lease6>) -> Server {
        let cfg = crate::config::parse(
            CONFIG,
            "test.toml",
            std::path::Path::new("."),
            crate::config::Checks::FileOnly,
        )
        .unwrap();
        let policy = Arc::new(Policy::new(&cfg));
        Server::new(cfg.ipv6.unwrap(), policy, duid.to_vec(), stored)
    }

    /// A client's source address: `a`, port 546.
    fn sent_from(a: Ipv6Addr) -> SocketAddrV6 {
        SocketAddrV6::new(a, CLIENT_PORT, 0, 0)
    }

    /// What `s`, at the lab's address, makes of `datagram` from the client at `from`.
    fn ask(s: &mut Server, now: u64, datagram: &[u8], from: Ipv6Addr) -> Result<Reply, Refusal> {
        s.handle(now, SERVER_ADDR, datagram, sent_from(from)).result
    }

    /// The EUI-64 link-local address of MAC 52:54:00:12:34:<last>.
    fn ll(last: u8) -> Ipv6Addr {
        Ipv6Addr::new(
            0xfe80,
            0,
            0,
            0,
            0x5054,
            0x00ff,
            0xfe12,
            0x3400 | last as u16,
        )
    }

    /// EDK2 HTTP boot over IPv6, written from DESIGN.md §2 (no capture yet): arch 16,
    /// vendor class 343 `HTTPClient:Arch:00016:...`.
    const HTTP_SOLICIT: &[u8] = &[
        0x01, 0x44, 0x55, 0x66, //
        0x00, 0x01, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x01, 0x2e, 0xc1, 0x22, 0x34, 0x52, 0x54, 0x00,
        0x12, 0x34, 0x58, // client id
        0x00, 0x03, 0x00, 0x0c, 0x00, 0x12, 0x34, 0x58, 0, 0, 0, 0, 0, 0, 0, 0, // IA_NA
        0x00, 0x06, 0x00, 0x06, 0x00, 0x3b, 0x00, 0x10, 0x00, 0x17, // ORO 59 16 23
        0x00, 0x3d, 0x00, 0x02, 0x00, 0x10, // arch: x64 HTTP
        0x00, 0x10, 0x00, 0x27, 0x00, 0x00, 0x01, 0x57, 0x00, 0x21, // vendor class 343
        b'H', b'T', b'T', b'P', b'C', b'l', b'i', b'e', b'n', b't', b':', b'A', b'r', b'c', b'h',
        b':', b'0', b'0', b'0', b'1', b'6', b':', b'U', b'N', b'D', b'I', b':', b'0', b'0', b'3',
        b'0', b'0', b'1',
    ];

    /// dhclient's link-local address (MAC 02:00:00:fc:00:01) and IAID in the capture.
    const DHCLIENT_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfefc, 1);
    const DHCLIENT_IAID: u32 = 0x00fc_0001;
    /// iPXE's IAID in the capture.
    const IPXE_IAID: u32 = 0xaa55_b0df;

    fn option(code: u16, value: &[u8]) -> Vec<u8> {
        let mut o = code.to_be_bytes().to_vec();
        o.extend_from_slice(&(value.len() as u16).to_be_bytes());
        o.extend_from_slice(value);
        o
    }

    /// `base` with its message type changed and `extra` options appended.
    fn rewrite(base: &[u8], t: MessageType, extra: &[Vec<u8>]) -> Vec<u8> {
        let mut b = base.to_vec();
        b[0] = t as u8;
        for e in extra {
            b.extend_from_slice(e);
        }
        b
    }

    /// `base` with its IA_NA replaced by one holding `addr`, plus a server id.
    fn follow_up(base: &[u8], t: MessageType, iaid: u32, addr: Ipv6Addr) -> Vec<u8> {
        let Ok(Packet::Client(m)) = Packet::parse(base) else {
            panic!("fixture does not parse")
        };
        let mut b = vec![t as u8, 9, 9, 9];
        for (code, v) in m.options.iter().filter(|(c, _)| *c != opt::IA_NA) {
            b.extend(option(code, v));
        }
        let mut iaaddr = addr.octets().to_vec();
        iaaddr.extend_from_slice(&[0; 8]);
        let mut ia = iaid.to_be_bytes().to_vec();
        ia.extend_from_slice(&[0; 8]);
        ia.extend(option(opt::IAADDR, &iaaddr));
        b.extend(option(opt::IA_NA, &ia));
        if t != MessageType::Rebind {
            b.extend(option(opt::SERVERID, &SERVER_DUID));
        }
        b
    }

    fn decode(r: &Reply) -> v6::Message {
        v6::Message::decode(&mut Decoder::new(&r.bytes)).expect("dhcproto decodes our reply")
    }

    /// The first IA_NA's first address and valid lifetime, if any.
    fn ia_addr(m: &v6::Message) -> Option<(Ipv6Addr, u32)> {
        ia_addrs(m).first().copied()
    }

    /// Every address in the first IA_NA, with its valid lifetime.
    fn ia_addrs(m: &v6::Message) -> Vec<(Ipv6Addr, u32)> {
        let Some(v6::DhcpOption::IANA(ia)) = m.opts().get(v6::OptionCode::IANA) else {
            return Vec::new();
        };
        ia.opts
            .iter()
            .filter_map(|o| match o {
                v6::DhcpOption::IAAddr(a) => Some((a.addr, a.valid_life)),
                _ => None,
            })
            .collect()
    }

    fn status(m: &v6::Message) -> Option<v6::Status> {
        match m.opts().get(v6::OptionCode::StatusCode) {
            Some(v6::DhcpOption::StatusCode(st)) => Some(st.status),
            _ => None,
        }
    }

    fn url(m: &v6::Message) -> Option<String> {
        match m.opts().get(v6::OptionCode::OptBootfileUrl) {
            Some(v6::DhcpOption::Unknown(u)) => Some(String::from_utf8(u.data().to_vec()).unwrap()),
            _ => None,
        }
    }

    fn vendor_echo(m: &v6::Message) -> Option<Vec<u8>> {
        match m.opts().get(v6::OptionCode::VendorClass) {
            Some(v6::DhcpOption::VendorClass(vc)) => Some(vc.data.concat()),
            _ => None,
        }
    }

    #[test]
    fn ipxe_solicit_and_request_get_the_script_url() {
        let mut s = server_with(DNSMASQ_BIOS, Vec::new());
        let r = ask(&mut s, NOW, IPXE_SOLICIT, ll(0x56)).unwrap();
        let m = decode(&r);
        assert_eq!(m.msg_type(), v6::MessageType::Advertise);
        assert_eq!(m.xid(), [0x4b, 0x2b, 0xa8]);
        let (addr, valid) = ia_addr(&m).unwrap();
        assert_eq!((addr, valid), ("fd00:1::100".parse().unwrap(), 3600));
        assert_eq!(
            url(&m).as_deref(),
            Some("http://[fd00:1::1]:8080/boot.ipxe")
        );
        assert_eq!(vendor_echo(&m), None);
        assert_eq!(r.client, Client::Ipxe);
        let Some(v6::DhcpOption::DomainNameServers(dns)) =
            m.opts().get(v6::OptionCode::DomainNameServers)
        else {
            panic!("no DNS")
        };
        assert_eq!(dns, &["fd00:1::53".parse::<Ipv6Addr>().unwrap()]);
        // The advertised address is held in memory, not written: no commit to wait for.
        assert!(
            r.changes.is_empty(),
            "an Advertise is not persisted: {:?}",
            r.changes
        );
        assert_eq!(
            m.opts().get(v6::OptionCode::Preference),
            Some(&v6::DhcpOption::Preference(255)),
            "an Advertise carries preference 255, so clients need not wait for others"
        );

        // The captured REQUEST asks for the address dnsmasq offered (fd00:1::163): it
        // gets the one advertised here, and the other with zero lifetimes.
        let r = ask(&mut s, NOW + 1, IPXE_REQUEST, ll(0x56)).unwrap();
        let m = decode(&r);
        assert_eq!(m.msg_type(), v6::MessageType::Reply);
        assert_eq!(m.opts().get(v6::OptionCode::Preference), None);
        assert_eq!(
            ia_addrs(&m),
            [(addr, 3600), ("fd00:1::163".parse().unwrap(), 0)]
        );
        assert_eq!(
            url(&m).as_deref(),
            Some("http://[fd00:1::1]:8080/boot.ipxe")
        );
        let [Change::Lease6(l)] = &r.changes[..] else {
            panic!("one lease change")
        };
        assert_eq!(
            (l.state, l.expires, &l.link[..]),
            (
                LeaseState::Bound,
                NOW + 1 + 3600,
                &[0x52, 0x54, 0, 0x12, 0x34, 0x56][..]
            )
        );
    }

    /// A lease of the captured OVMF client, as if this server had given it.
    fn ovmf_lease(iaid: u32, addr: &str) -> Lease6 {
        Lease6 {
            addr: addr.parse().unwrap(),
            duid: OVMF_SOLICIT_LLT[8..22].to_vec(),
            iaid,
            link: vec![0x52, 0x54, 0, 0x12, 0x34, 0x58],
            state: LeaseState::Offered,
            expires: NOW + 60,
        }
    }

    #[test]
    fn ovmf_pxe6_replays_address_only_then_tftp_url() {
        // The capture's server offered fd00:1::1f5 to the first exchange and fd00:1::1fd to
        // the second; stored, they replay the whole conversation.
        let stored = vec![
            ovmf_lease(0x77b6_dcf7, "fd00:1::1f5"),
            ovmf_lease(0x7ed0_5eff, "fd00:1::1fd"),
        ];
        let mut s = server_with(DNSMASQ_OVMF, stored);
        let from = ll(0x58);
        let first = decode(&ask(&mut s, NOW, OVMF_SOLICIT_LLT, from).unwrap());
        assert_eq!(
            ia_addr(&first).map(|a| a.0),
            Some("fd00:1::1f5".parse().unwrap())
        );
        assert_eq!(url(&first), None);
        let r = ask(&mut s, NOW, OVMF_REQUEST_LLT, from).unwrap();
        assert_eq!(r.client, Client::Os);
        assert!(matches!(&r.changes[..], [Change::Lease6(l)] if l.state == LeaseState::Bound));
        assert_eq!(url(&decode(&r)), None);

        let pxe = decode(&ask(&mut s, NOW, OVMF_SOLICIT_PXE, from).unwrap());
        assert_eq!(
            ia_addr(&pxe).map(|a| a.0),
            Some("fd00:1::1fd".parse().unwrap())
        );
        assert_eq!(url(&pxe).as_deref(), Some("tftp://[fd00:1::1]/snponly.efi"));
        let r = ask(&mut s, NOW, OVMF_REQUEST_PXE, from).unwrap();
        assert!(matches!(r.client, Client::Firmware { .. }));
        assert_eq!(
            ia_addr(&decode(&r)),
            Some(("fd00:1::1fd".parse().unwrap(), 3600))
        );
        assert_eq!(
            url(&decode(&r)).as_deref(),
            Some("tftp://[fd00:1::1]/snponly.efi")
        );

        let r = ask(&mut s, NOW, OVMF_RELEASE, from).unwrap();
        let [Change::Lease6(l)] = &r.changes[..] else {
            panic!("one lease change")
        };
        assert_eq!(
            (l.addr, l.state),
            ("fd00:1::1f5".parse().unwrap(), LeaseState::Released)
        );
        assert_eq!(status(&decode(&r)), Some(v6::Status::Success));
    }

    #[test]
    fn http_boot_gets_the_efi_url_and_the_vendor_class_echo() {
        let r = ask(&mut server(), NOW, HTTP_SOLICIT, ll(0x58)).unwrap();
        let m = decode(&r);
        assert_eq!(
            url(&m).as_deref(),
            Some("http://[fd00:1::1]:8080/boot/snponly.efi")
        );
        assert_eq!(vendor_echo(&m).as_deref(), Some(&b"HTTPClient"[..]));
        assert!(ia_addr(&m).is_some());
    }

    #[test]
    fn os_client_gets_address_and_dns_only() {
        let mut s = server_with(DNSMASQ_DHCLIENT, Vec::new());
        for fixture in [DHCLIENT_SOLICIT, DHCLIENT_REQUEST] {
            let r = ask(&mut s, NOW, fixture, DHCLIENT_LL).unwrap();
            let m = decode(&r);
            assert!(ia_addr(&m).is_some());
            assert!(m.opts().get(v6::OptionCode::DomainNameServers).is_some());
            assert_eq!(url(&m), None);
            assert_eq!(r.boot, Err(NoBootUrl::Os));
        }
    }

    #[test]
    fn duplicate_smbios_uuids_on_two_machines_get_two_addresses() {
        let mut s = server();
        let mut got = Vec::new();
        for mac_last in [0x56, 0x60] {
            let r = ask(&mut s, NOW, IPXE_SOLICIT, ll(mac_last)).unwrap();
            let (a, _) = ia_addr(&decode(&r)).unwrap();
            let req = follow_up(IPXE_SOLICIT, MessageType::Request, IPXE_IAID, a);
            let r = ask(&mut s, NOW, &req, ll(mac_last)).unwrap();
            got.push(ia_addr(&decode(&r)).unwrap().0);
        }
        assert_ne!(got[0], got[1]);
        // The second machine asking for the first one's address does not get it.
        let req = follow_up(IPXE_SOLICIT, MessageType::Request, IPXE_IAID, got[0]);
        let r = ask(&mut s, NOW, &req, ll(0x60)).unwrap();
        assert_eq!(ia_addrs(&decode(&r)), [(got[1], 3600), (got[0], 0)]);
    }

    #[test]
    fn rapid_commit_binds_at_once() {
        let solicit = rewrite(
            IPXE_SOLICIT,
            MessageType::Solicit,
            &[option(opt::RAPID_COMMIT, &[])],
        );
        let r = ask(&mut server(), NOW, &solicit, ll(0x56)).unwrap();
        let m = decode(&r);
        assert_eq!(m.msg_type(), v6::MessageType::Reply);
        assert!(m.opts().get(v6::OptionCode::RapidCommit).is_some());
        assert!(matches!(&r.changes[..], [Change::Lease6(l)] if l.state == LeaseState::Bound));
    }

    #[test]
    fn renew_rebind_release_decline_confirm() {
        let mut s = server();
        let r = ask(&mut s, NOW, DHCLIENT_SOLICIT, DHCLIENT_LL).unwrap();
        let (a, _) = ia_addr(&decode(&r)).unwrap();
        let iaid = DHCLIENT_IAID;
        for t in [
            MessageType::Request,
            MessageType::Renew,
            MessageType::Rebind,
        ] {
            let r = ask(
                &mut s,
                NOW + 10,
                &follow_up(DHCLIENT_SOLICIT, t, iaid, a),
                DHCLIENT_LL,
            )
            .unwrap();
            assert_eq!(ia_addr(&decode(&r)), Some((a, 3600)), "{t:?}");
            assert!(matches!(&r.changes[..], [Change::Lease6(l)] if l.expires == NOW + 3610));
        }
        let confirm = rewrite(
            &follow_up(DHCLIENT_SOLICIT, MessageType::Rebind, iaid, a),
            MessageType::Confirm,
            &[],
        );
        let m = decode(&ask(&mut s, NOW, &confirm, DHCLIENT_LL).unwrap());
        assert_eq!(status(&m), Some(v6::Status::Success));
        let elsewhere = follow_up(
            DHCLIENT_SOLICIT,
            MessageType::Rebind,
            iaid,
            "fd00:2::1".parse().unwrap(),
        );
        let m = decode(
            &ask(
                &mut s,
                NOW,
                &rewrite(&elsewhere, MessageType::Confirm, &[]),
                DHCLIENT_LL,
            )
            .unwrap(),
        );
        assert_eq!(status(&m), Some(v6::Status::NotOnLink));

        let r = ask(
            &mut s,
            NOW + 20,
            &follow_up(DHCLIENT_SOLICIT, MessageType::Release, iaid, a),
            DHCLIENT_LL,
        )
        .unwrap();
        assert!(matches!(&r.changes[..], [Change::Lease6(l)] if l.state == LeaseState::Released));
        // A released address comes back to the same client.
        let r = ask(&mut s, NOW + 30, DHCLIENT_SOLICIT, DHCLIENT_LL).unwrap();
        assert_eq!(ia_addr(&decode(&r)).map(|x| x.0), Some(a));
        let r = ask(
            &mut s,
            NOW + 40,
            &follow_up(DHCLIENT_SOLICIT, MessageType::Decline, iaid, a),
            DHCLIENT_LL,
        )
        .unwrap();
        assert!(
            matches!(&r.changes[..], [Change::Lease6(l)] if l.state == LeaseState::Declined && l.duid.is_empty())
        );
        let r = ask(&mut s, NOW + 50, DHCLIENT_SOLICIT, DHCLIENT_LL).unwrap();
        assert_ne!(ia_addr(&decode(&r)).map(|x| x.0), Some(a));
    }

    #[test]
    fn information_request_gets_the_url_but_no_address() {
        let info = rewrite(IPXE_SOLICIT, MessageType::InformationRequest, &[]);
        let r = ask(&mut server(), NOW, &info, ll(0x56)).unwrap();
        let m = decode(&r);
        assert_eq!(m.msg_type(), v6::MessageType::Reply);
        assert_eq!(ia_addr(&m), None);
        assert!(r.changes.is_empty());
        assert_eq!(
            url(&m).as_deref(),
            Some("http://[fd00:1::1]:8080/boot.ipxe")
        );
    }

    #[test]
    fn misaddressed_messages_are_ignored_with_reasons() {
        let mut s = server();
        let a: Ipv6Addr = "fd00:1::100".parse().unwrap();
        let with_sid = rewrite(
            IPXE_SOLICIT,
            MessageType::Solicit,
            &[option(opt::SERVERID, &SERVER_DUID)],
        );
        assert_eq!(
            ask(&mut s, NOW, &with_sid, ll(1)).err(),
            Some(Refusal::UnexpectedServerId)
        );
        let mut other = follow_up(IPXE_SOLICIT, MessageType::Request, 1, a);
        let n = other.len();
        other[n - 1] ^= 0xff;
        assert_eq!(
            ask(&mut s, NOW, &other, ll(1)).err(),
            Some(Refusal::OtherServer)
        );
        let no_sid = follow_up(IPXE_SOLICIT, MessageType::Rebind, 1, a);
        assert_eq!(
            ask(
                &mut s,
                NOW,
                &rewrite(&no_sid, MessageType::Renew, &[]),
                ll(1)
            )
            .err(),
            Some(Refusal::MissingServerId)
        );
        assert_eq!(
            ask(
                &mut s,
                NOW,
                &rewrite(IPXE_SOLICIT, MessageType::Advertise, &[]),
                ll(1)
            )
            .err(),
            Some(Refusal::FromServer(MessageType::Advertise))
        );
        assert_eq!(
            ask(&mut s, NOW, &[1, 0, 0, 0, 0, 8, 0, 2, 0, 0], ll(1)).err(),
            Some(Refusal::NoClientId)
        );
        let confirm = rewrite(DHCLIENT_SOLICIT, MessageType::Confirm, &[]);
        assert_eq!(
            ask(&mut s, NOW, &confirm, ll(1)).err(),
            Some(Refusal::ConfirmWithoutAddresses)
        );
    }

    /// Wraps `inner` in a Relay-forward with `hop_count`, an Interface-Id and, optionally,
    /// the client's link-layer address (option 79).
    fn relay(inner: &[u8], hop_count: u8, lladdr: Option<[u8; 6]>) -> Vec<u8> {
        let mut b = vec![12, hop_count];
        b.extend_from_slice(&"fd00:2::1".parse::<Ipv6Addr>().unwrap().octets());
        b.extend_from_slice(&ll(0x70).octets());
        b.extend(option(opt::INTERFACE_ID, b"eth7"));
        if let Some(mac) = lladdr {
            let mut v = duid::HW_ETHERNET.to_be_bytes().to_vec();
            v.extend_from_slice(&mac);
            b.extend(option(opt::CLIENT_LINKLAYER_ADDR, &v));
        }
        b.extend(option(opt::RELAY_MSG, inner));
        b
    }

    #[test]
    fn relayed_messages_are_answered_through_the_relays() {
        let mut s = server();
        let relay_addr = SocketAddrV6::new("fd00:1::2".parse().unwrap(), 547, 0, 0);
        let once = relay(IPXE_SOLICIT, 0, Some([2, 0, 0, 0, 0, 0x70]));
        let twice = relay(&once, 1, None);
        let r = s
            .handle(NOW, SERVER_ADDR, &twice, relay_addr)
            .result
            .unwrap();
        assert_eq!(r.dest, Destination::Relay(relay_addr));
        // dhcproto decodes every Relay Message option as a relay message, so the relay
        // layers are walked here by hand and only the innermost reply goes to dhcproto.
        let mut layer = &r.bytes[..];
        for hop_count in [1, 0] {
            assert_eq!(layer[..2], [MessageType::RelayRepl as u8, hop_count]);
            assert_eq!(layer[18..34], ll(0x70).octets());
            let o = super::super::wire::Options::parse(&layer[34..]).unwrap();
            assert_eq!(o.get(opt::INTERFACE_ID), Some(&b"eth7"[..]));
            layer = o.get(opt::RELAY_MSG).unwrap();
        }
        let adv = v6::Message::decode(&mut Decoder::new(layer)).unwrap();
        assert_eq!(adv.msg_type(), v6::MessageType::Advertise);
        assert_eq!(
            url(&adv).as_deref(),
            Some("http://[fd00:1::1]:8080/boot.ipxe")
        );
        // The link-layer address comes from option 79, not from the relay's peer address:
        // the Request's lease (an Advertise is not written) carries it.
        let (offered, _) = ia_addr(&adv).expect("an address advertised");
        let request = follow_up(IPXE_SOLICIT, MessageType::Request, IPXE_IAID, offered);
        let once = relay(&request, 0, Some([2, 0, 0, 0, 0, 0x70]));
        let r = s
            .handle(NOW, SERVER_ADDR, &relay(&once, 1, None), relay_addr)
            .result
            .unwrap();
        assert!(
            matches!(&r.changes[..], [Change::Lease6(l)] if l.addr == offered && l.link == [2, 0, 0, 0, 0, 0x70]),
            "{:?}",
            r.changes
        );

        let mut deep = IPXE_SOLICIT.to_vec();
        for hop in 0..=HOP_COUNT_LIMIT {
            deep = relay(&deep, hop.min(HOP_COUNT_LIMIT - 1), None);
        }
        assert_eq!(
            s.handle(NOW, SERVER_ADDR, &deep, relay_addr).result.err(),
            Some(Refusal::RelayTooDeep)
        );
        let at_limit = relay(IPXE_SOLICIT, HOP_COUNT_LIMIT, None);
        assert_eq!(
            s.handle(NOW, SERVER_ADDR, &at_limit, relay_addr)
                .result
                .err(),
            Some(Refusal::RelayTooDeep)
        );
    }

    #[test]
    fn the_core_names_the_message_and_where_its_reply_goes() {
        let mut s = server();
        // Straight from a client: back to its address and scope, on port 546.
        let o = s.handle(
            NOW,
            SERVER_ADDR,
            IPXE_SOLICIT,
            SocketAddrV6::new(ll(0x56), 40000, 0, 2),
        );
        assert_eq!(o.request, Some(MessageType::Solicit));
        let to = SocketAddrV6::new(ll(0x56), CLIENT_PORT, 0, 2);
        assert_eq!(o.result.unwrap().dest, Destination::Client(to));
        // Relayed: counted as what arrived, the Relay-forward.
        let o = s.handle(
            NOW,
            SERVER_ADDR,
            &relay(IPXE_SOLICIT, 0, None),
            sent_from(ll(1)),
        );
        assert_eq!(o.request, Some(MessageType::RelayForw));
        // No address on the interface yet: no boot URL to give, so no answer.
        let o = s.handle(
            NOW,
            Ipv6Addr::UNSPECIFIED,
            IPXE_SOLICIT,
            sent_from(ll(0x56)),
        );
        assert_eq!(o.result.err(), Some(Refusal::NoAddress));
    }

    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Arbitrary bytes, and real captures with bytes overwritten, get a reply or a
        /// reason; never a panic.
        #[test]
        fn prop_bad_input_never_panics(
            junk in proptest::collection::vec(any::<u8>(), 0..200),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            which in 0usize..4,
        ) {
            let mut s = server();
            let _ = ask(&mut s, NOW, &junk, ll(1));
            let mut b = [IPXE_SOLICIT, IPXE_REQUEST, OVMF_SOLICIT_PXE, DHCLIENT_REQUEST][which].to_vec();
            for (at, v) in edits {
                let n = b.len();
                b[at % n] = v;
            }
            let _ = ask(&mut s, NOW, &b, ll(1));
            let _ = ask(&mut s, NOW, &relay(&b, 0, None), ll(1));
        }

        /// Machines sharing one DUID-UUID and IAID on different links come and go; by
        /// what is persisted, an address is never given to one while another still holds it.
        #[test]
        fn prop_one_duid_on_many_links_never_shares_an_address(
            ops in proptest::collection::vec((0usize..4, 0x50u8..0x54, 0u64..100), 1..60),
        ) {
            let mut s = server();
            let mut now = NOW;
            // What the store would hold: address -> (link, state, expires).
            let mut stored: HashMap<Ipv6Addr, (Vec<u8>, LeaseState, u64)> = HashMap::new();
            let mut held: HashMap<u8, Ipv6Addr> = HashMap::new();
            for (op, mac, dt) in ops {
                now += dt;
                let t = [MessageType::Solicit, MessageType::Request, MessageType::Renew, MessageType::Release][op];
                let msg = match held.get(&mac) {
                    Some(&a) if t != MessageType::Solicit => follow_up(IPXE_SOLICIT, t, IPXE_IAID, a),
                    _ => IPXE_SOLICIT.to_vec(),
                };
                let Ok(r) = ask(&mut s, now, &msg, ll(mac)) else { continue };
                for c in r.changes {
                    let Change::Lease6(l) = c else { continue };
                    if matches!(l.state, LeaseState::Offered | LeaseState::Bound) {
                        if let Some((link, state, expires)) = stored.get(&l.addr) {
                            let live = *expires > now && matches!(state, LeaseState::Offered | LeaseState::Bound);
                            prop_assert!(!live || *link == l.link, "{} given away while held", l.addr);
                        }
                        held.insert(mac, l.addr);
                    }
                    stored.insert(l.addr, (l.link, l.state, l.expires));
                }
            }
        }
    }

    #[test]
    fn eui64_link_local_gives_the_mac_and_others_nothing() {
        assert_eq!(eui64_mac(ll(0x56)), [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert!(eui64_mac("fe80::1234:5678:9abc:def0".parse().unwrap()).is_empty());
    }
}
