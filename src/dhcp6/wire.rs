//! DHCPv6 messages (RFC 8415) as borrowed typed views, smoltcp `wire` style: parse into a
//! [`Message`] or [`Relay`], decide, emit with [`MessageWriter`].
//!
//! Hand-written rather than dhcproto, for the same reasons as `dhcp4::wire` and two more:
//! dhcproto 0.15's decoder is lenient (it stops at a bad option and still returns Ok, so
//! a refusal could not say why), and option 59 (boot file URL), the one option this server
//! exists to send, only round-trips through it as an unknown option. Options are kept as
//! one validated byte range and walked on demand, so parsing allocates nothing. dhcproto
//! stays in the tests as an independent parser of what we emit.
//!
//! Every read of received bytes goes through `get`, `split_first_chunk` or
//! `split_at_checked`, never an index, so no input and no new caller can make a view panic;
//! the lint below keeps it so. The writers index only buffers they sized themselves.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv6Addr;
use std::ops::Range;

pub const SERVER_PORT: u16 = 547;
pub const CLIENT_PORT: u16 = 546;
/// All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1).
pub const ALL_SERVERS_AND_RELAYS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// Most Relay-forward layers the server unwraps, and the hop count at which it stops.
/// This is RFC 3315's HOP_COUNT_LIMIT. RFC 8415 §7.6 lowered the relays' own limit to 8,
/// but relays built to RFC 3315 still forward up to 32 deep and a server has no reason
/// to refuse them; the bound only keeps a forged nest from costing work.
pub const HOP_COUNT_LIMIT: u8 = 32;

/// Message types (RFC 8415 §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Solicit = 1,
    Advertise = 2,
    Request = 3,
    Confirm = 4,
    Renew = 5,
    Rebind = 6,
    Reply = 7,
    Release = 8,
    Decline = 9,
    Reconfigure = 10,
    InformationRequest = 11,
    RelayForw = 12,
    RelayRepl = 13,
}

impl MessageType {
    pub fn from_u8(v: u8) -> Option<MessageType> {
        use MessageType::*;
        Some(match v {
            1 => Solicit,
            2 => Advertise,
            3 => Request,
            4 => Confirm,
            5 => Renew,
            6 => Rebind,
            7 => Reply,
            8 => Release,
            9 => Decline,
            10 => Reconfigure,
            11 => InformationRequest,
            12 => RelayForw,
            13 => RelayRepl,
            _ => return None,
        })
    }

    /// Stable label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        use MessageType::*;
        match self {
            Solicit => "solicit",
            Advertise => "advertise",
            Request => "request",
            Confirm => "confirm",
            Renew => "renew",
            Rebind => "rebind",
            Reply => "reply",
            Release => "release",
            Decline => "decline",
            Reconfigure => "reconfigure",
            InformationRequest => "information_request",
            RelayForw => "relay_forw",
            RelayRepl => "relay_repl",
        }
    }
}

/// Option codes (RFC 8415 §21, RFC 5970, RFC 6939).
pub mod opt {
    pub const CLIENTID: u16 = 1;
    pub const SERVERID: u16 = 2;
    pub const IA_NA: u16 = 3;
    pub const IAADDR: u16 = 5;
    pub const ORO: u16 = 6;
    pub const PREFERENCE: u16 = 7;
    pub const ELAPSED_TIME: u16 = 8;
    pub const RELAY_MSG: u16 = 9;
    pub const STATUS_CODE: u16 = 13;
    pub const RAPID_COMMIT: u16 = 14;
    pub const USER_CLASS: u16 = 15;
    pub const VENDOR_CLASS: u16 = 16;
    pub const INTERFACE_ID: u16 = 18;
    pub const DNS_SERVERS: u16 = 23;
    pub const BOOTFILE_URL: u16 = 59;
    pub const CLIENT_ARCH_TYPE: u16 = 61;
    pub const CLIENT_LINKLAYER_ADDR: u16 = 79;
}

/// Status codes (RFC 8415 §21.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success = 0,
    NoAddrsAvail = 2,
    NotOnLink = 4,
}

/// DUID types (RFC 8415 §11, RFC 6355).
pub mod duid {
    pub const LLT: u16 = 1;
    pub const UUID: u16 = 4;
    /// Hardware type Ethernet (IANA ARP hardware types), in DUID-LLT/LL and option 79.
    pub const HW_ETHERNET: u16 = 1;
    /// DUID-LLT time counts seconds from 2000-01-01 00:00 UTC; this is that in Unix time.
    pub const EPOCH_2000: u64 = 946_684_800;

    /// A DUID-LLT for an Ethernet interface, made at Unix time `now`.
    pub fn llt(mac: [u8; 6], now: u64) -> Vec<u8> {
        let t = now.saturating_sub(EPOCH_2000) as u32;
        let mut d = Vec::with_capacity(14);
        d.extend_from_slice(&LLT.to_be_bytes());
        d.extend_from_slice(&HW_ETHERNET.to_be_bytes());
        d.extend_from_slice(&t.to_be_bytes());
        d.extend_from_slice(&mac);
        d
    }
}

/// Field offsets (RFC 8415 §8, §9, §21.4, §21.6).
mod field {
    use std::ops::Range;
    /// Client message: msg-type, transaction-id, then options.
    pub const XID: Range<usize> = 1..4;
    /// Relay message: msg-type, hop-count, link-address, peer-address, then options.
    pub const HOP_COUNT: usize = 1;
    pub const LINK_ADDRESS: Range<usize> = 2..18;
    pub const PEER_ADDRESS: Range<usize> = 18..34;
    /// IA_NA option value: IAID, T1, T2, then IA_NA-options.
    pub const IAID: Range<usize> = 0..4;
    pub const T1: Range<usize> = 4..8;
    pub const T2: Range<usize> = 8..12;
    /// IAADDR option value: the address leads.
    pub const IAADDR_ADDRESS: Range<usize> = 0..16;
}

/// Header sizes: where a message's options start...
const CLIENT_HEADER: usize = 4;
const RELAY_HEADER: usize = 34;
/// ...where an option's value starts, after its code and length...
const OPTION_HEADER: usize = 4;
/// ...and the fixed part of a value, before its options (IA_NA, IAADDR), its
/// vendor-class-data instances (16) or its link-layer address (79).
const IA_NA_HEADER: usize = 12;
const IAADDR_HEADER: usize = 24;
const VENDOR_CLASS_HEADER: usize = 4;
const LINKLAYER_HEADER: usize = 2;

/// Why bytes are not a DHCPv6 message we can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than a message header.
    Truncated,
    BadMessageType,
    /// An option's length runs past the end of its message.
    OptionOverrun,
    /// A fixed-size option (IA_NA, IAADDR, ORO, 61, 79, ...) with an impossible length.
    BadOptionLength(u16),
    /// A Relay-forward without a Relay Message option.
    NoRelayMessage,
    /// A Relay-reply: only servers send those.
    RelayReply,
}

impl ParseError {
    pub fn as_str(self) -> &'static str {
        match self {
            ParseError::Truncated => "truncated",
            ParseError::BadMessageType => "bad_message_type",
            ParseError::OptionOverrun => "option_overrun",
            ParseError::BadOptionLength(_) => "bad_option_length",
            ParseError::NoRelayMessage => "no_relay_message",
            ParseError::RelayReply => "relay_reply",
        }
    }
}

/// A validated run of options: every length was checked once, so iteration cannot fail.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    bytes: &'a [u8],
}

/// The minimum (and for some, exact) option lengths checked at parse time, so a message
/// with an impossible one is refused with its reason. The accessors check again as they
/// read, so they stay safe on values that never went through this.
fn length_ok(code: u16, len: usize) -> bool {
    match code {
        opt::IA_NA => len >= IA_NA_HEADER,
        opt::IAADDR => len >= IAADDR_HEADER,
        opt::ORO | opt::CLIENT_ARCH_TYPE => len.is_multiple_of(2),
        opt::ELAPSED_TIME => len == 2,
        opt::VENDOR_CLASS => len >= VENDOR_CLASS_HEADER,
        opt::CLIENT_LINKLAYER_ADDR => len >= LINKLAYER_HEADER,
        opt::STATUS_CODE => len >= 2,
        _ => true,
    }
}

/// Splits the first option off `b` as `(code, value, rest)`; `None` when its header or
/// value runs past the end. Parsing and iterating share it, so they cannot disagree.
fn split_option(b: &[u8]) -> Option<(u16, &[u8], &[u8])> {
    let ([c0, c1, l0, l1], rest) = b.split_first_chunk::<OPTION_HEADER>()?;
    let len = u16::from_be_bytes([*l0, *l1]);
    let (value, rest) = rest.split_at_checked(usize::from(len))?;
    Some((u16::from_be_bytes([*c0, *c1]), value, rest))
}

/// Bytes `r` of `b` as an array, or `None` when `b` ends first: every fixed-size field is
/// read this way.
fn array<const N: usize>(b: &[u8], r: Range<usize>) -> Option<[u8; N]> {
    b.get(r)?.try_into().ok()
}

impl<'a> Options<'a> {
    /// Checks every option header and the sizes [`length_ok`] knows.
    pub fn parse(bytes: &'a [u8]) -> Result<Options<'a>, ParseError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let (code, value, tail) = split_option(rest).ok_or(ParseError::OptionOverrun)?;
            if !length_ok(code, value.len()) {
                return Err(ParseError::BadOptionLength(code));
            }
            rest = tail;
        }
        Ok(Options { bytes })
    }

    /// Every option as `(code, value)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &'a [u8])> + use<'a> {
        let mut rest = self.bytes;
        std::iter::from_fn(move || {
            let (code, value, tail) = split_option(rest)?;
            rest = tail;
            Some((code, value))
        })
    }

    /// The first option with `code`.
    pub fn get(&self, code: u16) -> Option<&'a [u8]> {
        self.iter().find(|(c, _)| *c == code).map(|(_, v)| v)
    }

    pub fn all(&self, code: u16) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        self.iter().filter(move |(c, _)| *c == code).map(|(_, v)| v)
    }
}

/// A client message (anything but Relay-forward/-reply).
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub msg_type: MessageType,
    pub xid: [u8; 3],
    pub options: Options<'a>,
}

/// A Relay-forward (RFC 8415 §9.1).
#[derive(Debug, Clone, Copy)]
pub struct Relay<'a> {
    pub hop_count: u8,
    pub link_address: Ipv6Addr,
    pub peer_address: Ipv6Addr,
    pub options: Options<'a>,
}

/// A datagram sent to a server.
#[derive(Debug, Clone, Copy)]
pub enum Packet<'a> {
    Client(Message<'a>),
    Relay(Relay<'a>),
}

impl<'a> Packet<'a> {
    pub fn parse(b: &'a [u8]) -> Result<Packet<'a>, ParseError> {
        let &t = b.first().ok_or(ParseError::Truncated)?;
        let msg_type = MessageType::from_u8(t).ok_or(ParseError::BadMessageType)?;
        if msg_type == MessageType::RelayRepl {
            return Err(ParseError::RelayReply);
        }
        let truncated = ParseError::Truncated;
        if msg_type == MessageType::RelayForw {
            let options = Options::parse(b.get(RELAY_HEADER..).ok_or(truncated)?)?;
            if options.get(opt::RELAY_MSG).is_none() {
                return Err(ParseError::NoRelayMessage);
            }
            return Ok(Packet::Relay(Relay {
                hop_count: *b.get(field::HOP_COUNT).ok_or(truncated)?,
                link_address: array(b, field::LINK_ADDRESS).ok_or(truncated)?.into(),
                peer_address: array(b, field::PEER_ADDRESS).ok_or(truncated)?.into(),
                options,
            }));
        }
        let xid = array(b, field::XID).ok_or(truncated)?;
        Ok(Packet::Client(Message {
            msg_type,
            xid,
            options: Options::parse(b.get(CLIENT_HEADER..).ok_or(truncated)?)?,
        }))
    }
}

/// An IA_NA option's contents.
#[derive(Debug, Clone, Copy)]
pub struct IaNa<'a> {
    pub iaid: u32,
    pub t1: u32,
    pub t2: u32,
    pub options: Options<'a>,
}

impl<'a> IaNa<'a> {
    /// Parses the value of an IA_NA option. One shorter than its header gets the error
    /// [`Options::parse`] gives it inside a message, so any caller may pass any value.
    pub fn parse(v: &'a [u8]) -> Result<IaNa<'a>, ParseError> {
        let short = ParseError::BadOptionLength(opt::IA_NA);
        let u32_at = |r| array(v, r).map(u32::from_be_bytes).ok_or(short);
        Ok(IaNa {
            iaid: u32_at(field::IAID)?,
            t1: u32_at(field::T1)?,
            t2: u32_at(field::T2)?,
            options: Options::parse(v.get(IA_NA_HEADER..).ok_or(short)?)?,
        })
    }

    /// The addresses the client put in this IA.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv6Addr> + use<'a> {
        self.options
            .all(opt::IAADDR)
            .filter_map(|v| array(v, field::IAADDR_ADDRESS))
            .map(Ipv6Addr::from)
    }
}

/// Option 16's enterprise number and first vendor-class-data instance; `None` for a value
/// too short to hold the number.
pub fn vendor_class(v: &[u8]) -> Option<(u32, Option<&[u8]>)> {
    let (enterprise, data) = v.split_first_chunk::<VENDOR_CLASS_HEADER>()?;
    Some((u32::from_be_bytes(*enterprise), first_instance(data)))
}

/// The first instance of a list of `u16`-length-prefixed opaque data (options 15 and 16).
fn first_instance(b: &[u8]) -> Option<&[u8]> {
    let (len, data) = b.split_first_chunk::<2>()?;
    data.get(..usize::from(u16::from_be_bytes(*len)))
}

/// The `u16` values of a list option (ORO, client architecture types); an odd last byte
/// is left out.
pub fn u16s(v: &[u8]) -> impl Iterator<Item = u16> + '_ {
    v.as_chunks::<2>().0.iter().map(|c| u16::from_be_bytes(*c))
}

/// The link-layer address of option 79 when it is Ethernet.
pub fn ethernet_linklayer(v: &[u8]) -> Option<&[u8]> {
    let (hw, addr) = v.split_first_chunk::<LINKLAYER_HEADER>()?;
    (u16::from_be_bytes(*hw) == duid::HW_ETHERNET && addr.len() == 6).then_some(addr)
}

/// Builds a message in a caller-owned buffer. Options that contain options (IA_NA,
/// IAADDR, Relay-message) are opened with [`MessageWriter::open`] and closed with
/// [`MessageWriter::close`], which patches their length.
pub struct MessageWriter<'b> {
    buf: &'b mut Vec<u8>,
}

#[allow(
    clippy::indexing_slicing,
    reason = "writes the server's own values into a buffer it grows itself"
)]
impl<'b> MessageWriter<'b> {
    /// Starts a message of type `t` with transaction id `xid`.
    pub fn new(buf: &'b mut Vec<u8>, t: MessageType, xid: [u8; 3]) -> MessageWriter<'b> {
        buf.clear();
        buf.push(t as u8);
        buf.extend_from_slice(&xid);
        MessageWriter { buf }
    }

    /// Starts a Relay-reply header; the caller then adds Interface-Id and the Relay
    /// Message around the inner reply.
    pub fn relay_reply(buf: &'b mut Vec<u8>, r: &Relay) -> MessageWriter<'b> {
        buf.clear();
        buf.push(MessageType::RelayRepl as u8);
        buf.push(r.hop_count);
        buf.extend_from_slice(&r.link_address.octets());
        buf.extend_from_slice(&r.peer_address.octets());
        MessageWriter { buf }
    }

    pub fn option(&mut self, code: u16, value: &[u8]) -> &mut Self {
        // Values come from our own config and lease tables, far below 64 KiB.
        let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&code.to_be_bytes());
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(&value[..len as usize]);
        self
    }

    /// Opens an option whose value follows; returns where its length goes.
    pub fn open(&mut self, code: u16) -> usize {
        self.buf.extend_from_slice(&code.to_be_bytes());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.len()
    }

    /// Closes an option opened at `start`.
    pub fn close(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u16;
        self.buf[start - 2..start].copy_from_slice(&len.to_be_bytes());
    }

    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    pub fn ia_na(&mut self, iaid: u32, t1: u32, t2: u32) -> usize {
        let at = self.open(opt::IA_NA);
        for v in [iaid, t1, t2] {
            self.buf.extend_from_slice(&v.to_be_bytes());
        }
        at
    }

    pub fn iaaddr(&mut self, a: Ipv6Addr, preferred: u32, valid: u32) -> &mut Self {
        let at = self.open(opt::IAADDR);
        self.buf.extend_from_slice(&a.octets());
        self.buf.extend_from_slice(&preferred.to_be_bytes());
        self.buf.extend_from_slice(&valid.to_be_bytes());
        self.close(at);
        self
    }

    pub fn status(&mut self, s: Status, message: &str) -> &mut Self {
        let at = self.open(opt::STATUS_CODE);
        self.buf.extend_from_slice(&(s as u16).to_be_bytes());
        self.buf.extend_from_slice(message.as_bytes());
        self.close(at);
        self
    }

    /// Option 16 with one vendor-class-data instance.
    pub fn vendor_class(&mut self, enterprise: u32, data: &[u8]) -> &mut Self {
        let at = self.open(opt::VENDOR_CLASS);
        self.buf.extend_from_slice(&enterprise.to_be_bytes());
        self.buf
            .extend_from_slice(&(data.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(data);
        self.close(at);
        self
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, reason = "tests")]
pub(crate) mod tests {
    use super::*;

    /// Real packets captured from QEMU firmware and dhclient (tests/fixtures/README.md).
    pub(crate) mod fixtures {
        /// iPXE (SeaBIOS NIC ROM, MAC 52:54:00:12:34:56): DUID-UUID of the all-zero SMBIOS
        /// UUID, IA_NA, ORO 23 24 59 60, vendor class 343, arch 0, NII, user class `iPXE`.
        pub const IPXE_SOLICIT: &[u8] =
            include_bytes!("../../tests/fixtures/dhcp6/ipxe-solicit.bin");
        /// Its REQUEST for fd00:1::163, to the capture's server [`DNSMASQ_BIOS`].
        pub const IPXE_REQUEST: &[u8] =
            include_bytes!("../../tests/fixtures/dhcp6/ipxe-request.bin");
        pub const DNSMASQ_BIOS: &[u8] = &[
            0, 1, 0, 1, 0x32, 0x98, 0xf7, 0xcc, 0x12, 0x6f, 0xf0, 0xf8, 0x82, 0x67,
        ];
        /// OVMF PXEv6 (MAC 52:54:00:12:34:58): first the IPv6 stack's own exchange, DUID-LLT
        /// and no vendor class...
        pub const OVMF_SOLICIT_LLT: &[u8] =
            include_bytes!("../../tests/fixtures/dhcp6/ovmf-pxe6-solicit-llt.bin");
        pub const OVMF_REQUEST_LLT: &[u8] =
            include_bytes!("../../tests/fixtures/dhcp6/ovmf-pxe6-request-llt.bin");
        pub const OVMF_RELEASE: &[u8] =
            include_bytes!("../../tests/fixtures/dhcp6/ovmf-pxe6-release.bin");
        /// ...then PXE's, with another IAID, arch 7 and vendor class `PXEClient:...`.
        pub const OVMF_SOLICIT_PXE: &[u8] =
            include_bytes!("../../tests/fixtures/dhcp6/ovmf-pxe6-solicit-vendor.bin");
        pub const OVMF_REQUEST_PXE: &[u8] =
            include_bytes!("../../tests/fixtures/dhcp6/ovmf-pxe6-request.bin");
        pub const DNSMASQ_OVMF: &[u8] = &[
            0, 1, 0, 1, 0x32, 0x98, 0xf7, 0xe5, 0x12, 0x6f, 0xf0, 0xf8, 0x82, 0x67,
        ];
        /// ISC dhclient -6 (MAC 02:00:00:fc:00:01): DUID-LLT, ORO 23 24 39 31, IA_NA.
        pub const DHCLIENT_SOLICIT: &[u8] =
            include_bytes!("../../tests/fixtures/dhcp6/dhclient6-solicit.bin");
        pub const DHCLIENT_REQUEST: &[u8] =
            include_bytes!("../../tests/fixtures/dhcp6/dhclient6-request.bin");
        pub const DNSMASQ_DHCLIENT: &[u8] = &[
            0, 1, 0, 1, 0x32, 0x98, 0xf7, 0xfa, 0x12, 0x6f, 0xf0, 0xf8, 0x82, 0x67,
        ];
    }
    use fixtures::IPXE_SOLICIT;

    #[test]
    fn parses_the_ipxe_solicit() {
        let Packet::Client(m) = Packet::parse(IPXE_SOLICIT).unwrap() else {
            panic!("not a client message")
        };
        assert_eq!(m.msg_type, MessageType::Solicit);
        assert_eq!(m.xid, [0x4b, 0x2b, 0xa8]);
        let cid = m.options.get(opt::CLIENTID).unwrap();
        assert_eq!(&cid[..2], &duid::UUID.to_be_bytes());
        let ia = IaNa::parse(m.options.get(opt::IA_NA).unwrap()).unwrap();
        assert_eq!(ia.iaid, 0xaa55_b0df);
        assert_eq!(ia.addresses().count(), 0);
        let oro: Vec<u16> = u16s(m.options.get(opt::ORO).unwrap()).collect();
        assert_eq!(oro, [23, 24, 59, 60]);
        let (ent, vc) = vendor_class(m.options.get(opt::VENDOR_CLASS).unwrap()).unwrap();
        assert_eq!(ent, 343);
        assert_eq!(vc, Some(&b"PXEClient:Arch:00000:UNDI:002001"[..]));
        assert_eq!(m.options.get(opt::CLIENT_ARCH_TYPE), Some(&[0, 0][..]));
        assert_eq!(m.options.get(opt::USER_CLASS), Some(&b"\0\x04iPXE"[..]));
    }

    #[test]
    fn refuses_malformed_messages() {
        assert_eq!(Packet::parse(&[]).err(), Some(ParseError::Truncated));
        assert_eq!(Packet::parse(&[1, 2]).err(), Some(ParseError::Truncated));
        assert_eq!(
            Packet::parse(&[99, 0, 0, 0]).err(),
            Some(ParseError::BadMessageType)
        );
        assert_eq!(
            Packet::parse(&[1, 0, 0, 0, 0, 1, 0, 9, 1]).err(),
            Some(ParseError::OptionOverrun)
        );
        assert_eq!(
            Packet::parse(&[1, 0, 0, 0, 0, 1]).err(),
            Some(ParseError::OptionOverrun)
        );
        assert_eq!(
            Packet::parse(&[1, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 1]).err(),
            Some(ParseError::BadOptionLength(opt::IA_NA))
        );
        assert_eq!(
            Packet::parse(&[1, 0, 0, 0, 0, 6, 0, 1, 0]).err(),
            Some(ParseError::BadOptionLength(opt::ORO))
        );
        // A relay-forward must carry a relayed message.
        let mut relay = vec![12, 0];
        relay.extend_from_slice(&[0; 32]);
        assert_eq!(
            Packet::parse(&relay).err(),
            Some(ParseError::NoRelayMessage)
        );
        relay.truncate(20);
        assert_eq!(Packet::parse(&relay).err(), Some(ParseError::Truncated));
    }

    #[test]
    fn ia_na_with_a_malformed_inner_option_is_refused() {
        let ia = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 4, 1, 2, 3, 4];
        assert_eq!(
            IaNa::parse(&ia).err(),
            Some(ParseError::BadOptionLength(opt::IAADDR))
        );
    }

    #[test]
    fn written_reply_reparses_with_dhcproto() {
        use dhcproto::{Decodable, Decoder, v6};
        let mut buf = Vec::new();
        let mut w = MessageWriter::new(&mut buf, MessageType::Reply, [1, 2, 3]);
        w.option(opt::SERVERID, &[0, 3, 0, 1, 2, 0, 0, 0, 0, 1]);
        let ia = w.ia_na(7, 1800, 2880);
        w.iaaddr("fd00:1::100".parse().unwrap(), 3600, 3600);
        w.close(ia);
        w.status(Status::Success, "ok")
            .vendor_class(343, b"HTTPClient")
            .option(opt::BOOTFILE_URL, b"tftp://[fd00:1::1]/snponly.efi");
        let m = v6::Message::decode(&mut Decoder::new(&buf)).unwrap();
        assert_eq!(m.msg_type(), v6::MessageType::Reply);
        assert_eq!(m.xid(), [1, 2, 3]);
        let Some(v6::DhcpOption::IANA(ia)) = m.opts().get(v6::OptionCode::IANA) else {
            panic!("no IA_NA")
        };
        assert_eq!((ia.id, ia.t1, ia.t2), (7, 1800, 2880));
        let Some(v6::DhcpOption::IAAddr(a)) = ia.opts.get(v6::OptionCode::IAAddr) else {
            panic!("no IAADDR")
        };
        assert_eq!(a.addr, "fd00:1::100".parse::<Ipv6Addr>().unwrap());
        assert_eq!((a.preferred_life, a.valid_life), (3600, 3600));
        let Some(v6::DhcpOption::VendorClass(vc)) = m.opts().get(v6::OptionCode::VendorClass)
        else {
            panic!("no vendor class")
        };
        assert_eq!(vc.num, 343);
        assert_eq!(vc.data, vec![b"HTTPClient".to_vec()]);
        let Some(v6::DhcpOption::Unknown(u)) = m.opts().get(v6::OptionCode::OptBootfileUrl) else {
            panic!("no option 59")
        };
        assert_eq!(u.data(), b"tftp://[fd00:1::1]/snponly.efi");
    }

    use proptest::prelude::*;
    use proptest::sample::select;

    /// Codes the accessors read, a Relay Message, and one nobody reads.
    const CODES: [u16; 9] = [
        opt::CLIENTID,
        opt::IA_NA,
        opt::IAADDR,
        opt::ORO,
        opt::RELAY_MSG,
        opt::VENDOR_CLASS,
        opt::CLIENT_ARCH_TYPE,
        opt::CLIENT_LINKLAYER_ADDR,
        99,
    ];

    fn encode(options: impl IntoIterator<Item = (u16, Vec<u8>)>) -> Vec<u8> {
        let mut b = Vec::new();
        for (code, v) in options {
            b.extend(code.to_be_bytes());
            b.extend((v.len() as u16).to_be_bytes());
            b.extend(v);
        }
        b
    }

    /// One option: half the time its value has the shape its code asks for (an IA_NA's
    /// or IAADDR's fixed part, an even list, an Ethernet link-layer address), else any.
    fn option() -> impl Strategy<Value = (u16, Vec<u8>)> {
        let code_and_value =
            (select(&CODES[..]), any::<bool>(), 0usize..30).prop_flat_map(|(code, fits, n)| {
                let n = match code {
                    _ if !fits => n,
                    opt::IA_NA => IA_NA_HEADER,
                    opt::IAADDR => IAADDR_HEADER,
                    opt::ORO | opt::CLIENT_ARCH_TYPE => n & !1,
                    opt::CLIENT_LINKLAYER_ADDR => LINKLAYER_HEADER + 6,
                    _ => n,
                };
                (
                    Just(code),
                    Just(fits),
                    proptest::collection::vec(any::<u8>(), n),
                )
            });
        code_and_value.prop_map(|(code, fits, mut v)| {
            if fits && code == opt::CLIENT_LINKLAYER_ADDR {
                v[..LINKLAYER_HEADER].copy_from_slice(&duid::HW_ETHERNET.to_be_bytes());
            }
            (code, v)
        })
    }

    /// Options whose IA_NA and IAADDR values carry options of their own.
    fn options() -> impl Strategy<Value = Vec<u8>> {
        let inner = proptest::collection::vec(option(), 0..3).prop_map(encode);
        proptest::collection::vec((option(), inner), 0..6).prop_map(|os| {
            encode(os.into_iter().map(|((code, mut v), inner)| {
                if matches!(code, opt::IA_NA | opt::IAADDR) {
                    v.extend(inner);
                }
                (code, v)
            }))
        })
    }

    /// Client messages and Relay-forwards of those options, real captures with bytes
    /// overwritten and maybe cut short, and plain junk.
    fn datagram() -> impl Strategy<Value = Vec<u8>> {
        let fixtures: &[&[u8]] = &[
            fixtures::IPXE_SOLICIT,
            fixtures::IPXE_REQUEST,
            fixtures::OVMF_SOLICIT_LLT,
            fixtures::OVMF_REQUEST_LLT,
            fixtures::OVMF_RELEASE,
            fixtures::OVMF_SOLICIT_PXE,
            fixtures::OVMF_REQUEST_PXE,
            fixtures::DHCLIENT_SOLICIT,
            fixtures::DHCLIENT_REQUEST,
        ];
        let mutated = crate::wire_testing::mutated(fixtures.iter().map(|c| c.to_vec()).collect());
        let client = (0u8..=14, any::<[u8; 3]>(), options()).prop_map(|(t, xid, o)| {
            let mut b = vec![t];
            b.extend(xid);
            b.extend(o);
            b
        });
        let relay = (any::<[u8; RELAY_HEADER - 1]>(), options()).prop_map(|(h, o)| {
            let mut b = vec![MessageType::RelayForw as u8];
            b.extend(h);
            b.extend(o);
            b
        });
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            mutated,
            client,
            relay
        ]
    }

    /// Every public accessor on `v` as if it were any option's value (a new caller may
    /// pass the wrong one); those with a writer must give back what they read.
    fn every_accessor(v: &[u8]) {
        if let Ok(ia) = IaNa::parse(v) {
            ia.addresses().for_each(drop);
            let mut buf = Vec::new();
            let mut w = MessageWriter::new(&mut buf, MessageType::Reply, [0; 3]);
            let at = w.ia_na(ia.iaid, ia.t1, ia.t2);
            for (code, x) in ia.options.iter() {
                w.option(code, x);
            }
            w.close(at);
            assert_eq!(&buf[CLIENT_HEADER + OPTION_HEADER..], v);
        }
        if let Some((enterprise, Some(data))) = vendor_class(v) {
            let mut buf = Vec::new();
            MessageWriter::new(&mut buf, MessageType::Reply, [0; 3]).vendor_class(enterprise, data);
            let Ok(Packet::Client(m)) = Packet::parse(&buf) else {
                panic!("a written vendor class does not parse")
            };
            let again = m.options.get(opt::VENDOR_CLASS).and_then(vendor_class);
            assert_eq!(again, Some((enterprise, Some(data))));
        }
        u16s(v).for_each(drop);
        let _ = ethernet_linklayer(v);
        if let Ok(o) = Options::parse(v) {
            let _ = o.get(opt::RELAY_MSG);
            o.all(opt::IA_NA).for_each(drop);
            o.iter().for_each(|(_, x)| every_accessor(x));
        }
    }

    proptest! {
        /// Any datagram parses or gets a reason, never a panic, and so does every accessor
        /// on it and on every option value in it. What parses is written back byte for
        /// byte, so parse, emit, parse gives the same message.
        #[test]
        fn prop_views_never_panic_and_messages_round_trip(b in datagram()) {
            every_accessor(&b);
            let Ok(p) = Packet::parse(&b) else { return Ok(()) };
            let mut again = Vec::new();
            let (mut w, options) = match p {
                Packet::Client(m) => (MessageWriter::new(&mut again, m.msg_type, m.xid), m.options),
                Packet::Relay(r) => (MessageWriter::relay_reply(&mut again, &r), r.options),
            };
            for (code, v) in options.iter() {
                every_accessor(v);
                w.option(code, v);
            }
            if let Packet::Relay(_) = p {
                // The writer only makes Relay-replies; the layout is the same.
                again[0] = MessageType::RelayForw as u8;
            }
            prop_assert_eq!(again, b);
        }
    }
}
