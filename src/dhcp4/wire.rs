//! DHCPv4/BOOTP packets as a borrowed typed view (smoltcp `wire` style): parse into a
//! [`Packet`], decide, emit with [`ReplyWriter`].
//!
//! Hand-written rather than dhcproto because a boot server must say *why* it refuses a
//! packet: dhcproto's option decoder stops at the first bad option and still returns Ok,
//! and it allocates a map per packet on the hot path. This parser walks the options once,
//! keeps borrowed slices of the first occurrence of each code in a fixed table (no
//! allocation), honours option overload (52) into `file` and `sname`, and reports every
//! malformation as a [`ParseError`].
//!
//! Every read of received bytes goes through `get`, `split_first` or `split_at_checked`,
//! never an index, so no input and no new caller can make a view panic; the lint below
//! keeps it so. [`ReplyWriter`] indexes only the header it sized itself.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::ops::Range;

/// Field offsets of the fixed BOOTP header (RFC 2131 §2).
pub mod field {
    use std::ops::Range;
    pub const OP: usize = 0;
    pub const HTYPE: usize = 1;
    pub const HLEN: usize = 2;
    pub const HOPS: usize = 3;
    pub const XID: Range<usize> = 4..8;
    pub const SECS: Range<usize> = 8..10;
    pub const FLAGS: Range<usize> = 10..12;
    pub const CIADDR: Range<usize> = 12..16;
    pub const YIADDR: Range<usize> = 16..20;
    pub const SIADDR: Range<usize> = 20..24;
    pub const GIADDR: Range<usize> = 24..28;
    pub const CHADDR: Range<usize> = 28..44;
    pub const SNAME: Range<usize> = 44..108;
    pub const FILE: Range<usize> = 108..236;
    pub const MAGIC: Range<usize> = 236..240;
    pub const OPTIONS: usize = 240;
}

/// The magic cookie that starts the options (RFC 2131 §3).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
pub const OP_BOOTREQUEST: u8 = 1;
pub const OP_BOOTREPLY: u8 = 2;
/// Ethernet hardware type.
pub const HTYPE_ETHERNET: u8 = 1;
/// The broadcast bit of `flags`.
pub const FLAG_BROADCAST: u16 = 0x8000;
/// Old BOOTP clients drop replies shorter than a BOOTP packet (RFC 1542 §3.3).
pub const MIN_REPLY_LEN: usize = 300;
pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;

/// Option codes (RFC 2132 and the PXE/UEFI additions).
pub mod opt {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const VENDOR_CLASS: u8 = 60;
    pub const CLIENT_ID: u8 = 61;
    pub const TFTP_SERVER_NAME: u8 = 66;
    pub const BOOTFILE_NAME: u8 = 67;
    pub const USER_CLASS: u8 = 77;
    pub const CLIENT_ARCH: u8 = 93;
    pub const CLIENT_NDI: u8 = 94;
    pub const CLIENT_UUID: u8 = 97;
    /// iPXE's encapsulated options: only iPXE sends it.
    pub const IPXE_ENCAP: u8 = 175;
    pub const END: u8 = 255;
}

/// DHCP message types (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
    Inform = 8,
}

impl MessageType {
    pub fn from_u8(v: u8) -> Option<MessageType> {
        use MessageType::*;
        Some(match v {
            1 => Discover,
            2 => Offer,
            3 => Request,
            4 => Decline,
            5 => Ack,
            6 => Nak,
            7 => Release,
            8 => Inform,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use MessageType::*;
        match self {
            Discover => "DISCOVER",
            Offer => "OFFER",
            Request => "REQUEST",
            Decline => "DECLINE",
            Ack => "ACK",
            Nak => "NAK",
            Release => "RELEASE",
            Inform => "INFORM",
        }
    }
}

/// Why bytes are not a DHCP request we can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the BOOTP header plus magic cookie.
    Truncated,
    BadMagic,
    /// `op` is not BOOTREQUEST (a reply from another server, or junk).
    NotRequest,
    /// `hlen` over 16 would read past `chaddr`.
    BadHlen,
    /// An option's length runs past the end of its area.
    OptionOverrun,
    /// Option 52 appears inside `file`/`sname`, or has a bad value.
    BadOverload,
    /// No option 53: plain BOOTP, which sixboot does not serve.
    NoMessageType,
    BadMessageType,
    /// A fixed-size option (50, 51, 53, 54, 57, 93) with the wrong length.
    BadOptionLength(u8),
}

impl ParseError {
    pub fn as_str(self) -> &'static str {
        match self {
            ParseError::Truncated => "truncated",
            ParseError::BadMagic => "bad_magic",
            ParseError::NotRequest => "not_request",
            ParseError::BadHlen => "bad_hlen",
            ParseError::OptionOverrun => "option_overrun",
            ParseError::BadOverload => "bad_overload",
            ParseError::NoMessageType => "no_message_type",
            ParseError::BadMessageType => "bad_message_type",
            ParseError::BadOptionLength(_) => "bad_option_length",
        }
    }
}

/// The options of one packet: the first occurrence of each code, borrowed.
#[derive(Clone)]
pub struct Options<'a> {
    slots: [Option<&'a [u8]>; 256],
}

impl<'a> Options<'a> {
    pub fn get(&self, code: u8) -> Option<&'a [u8]> {
        self.slots.get(usize::from(code)).copied().flatten()
    }

    /// Walks one option area, filling empty slots. Returns the overload value if the area
    /// carried option 52.
    fn walk(
        &mut self,
        mut area: &'a [u8],
        overload_allowed: bool,
    ) -> Result<Option<u8>, ParseError> {
        let mut overload = None;
        while let Some((&code, rest)) = area.split_first() {
            match code {
                opt::PAD => area = rest,
                opt::END => break,
                _ => {
                    let (&len, rest) = rest.split_first().ok_or(ParseError::OptionOverrun)?;
                    let (value, rest) = rest
                        .split_at_checked(usize::from(len))
                        .ok_or(ParseError::OptionOverrun)?;
                    if code == opt::OVERLOAD {
                        overload = match value {
                            [o @ 1..=3] if overload_allowed => Some(*o),
                            _ => return Err(ParseError::BadOverload),
                        };
                    }
                    if let Some(slot) = self.slots.get_mut(usize::from(code)) {
                        slot.get_or_insert(value);
                    }
                    area = rest;
                }
            }
        }
        Ok(overload)
    }
}

/// A parsed client request. Everything borrows from the datagram.
#[derive(Clone)]
pub struct Packet<'a> {
    pub message_type: MessageType,
    pub htype: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    /// `hlen` bytes of `chaddr`.
    pub chaddr: &'a [u8],
    pub options: Options<'a>,
}

/// Header field `r`; `Truncated` when the datagram ends first.
fn slice(b: &[u8], r: Range<usize>) -> Result<&[u8], ParseError> {
    b.get(r).ok_or(ParseError::Truncated)
}

/// Header field `r` as an array; `Truncated` when the datagram ends first.
fn array<const N: usize>(b: &[u8], r: Range<usize>) -> Result<[u8; N], ParseError> {
    slice(b, r)?.try_into().map_err(|_| ParseError::Truncated)
}

/// The header byte at `at`; `Truncated` when the datagram ends first.
fn byte(b: &[u8], at: usize) -> Result<u8, ParseError> {
    b.get(at).copied().ok_or(ParseError::Truncated)
}

impl<'a> Packet<'a> {
    /// Parses a BOOTREQUEST. Rejects anything we would have to guess about.
    pub fn parse(b: &'a [u8]) -> Result<Packet<'a>, ParseError> {
        // The length check: a datagram without the whole header is Truncated before
        // anything else is said about it. The field reads below check again as they go.
        let area = b.get(field::OPTIONS..).ok_or(ParseError::Truncated)?;
        if array(b, field::MAGIC)? != MAGIC_COOKIE {
            return Err(ParseError::BadMagic);
        }
        if byte(b, field::OP)? != OP_BOOTREQUEST {
            return Err(ParseError::NotRequest);
        }
        let hlen = usize::from(byte(b, field::HLEN)?);
        let chaddr = slice(b, field::CHADDR)?
            .get(..hlen)
            .ok_or(ParseError::BadHlen)?;
        let mut options = Options { slots: [None; 256] };
        let overload = options.walk(area, true)?;
        if let Some(o) = overload {
            // RFC 2131 §4.1: `file` first, then `sname`.
            if o & 1 != 0 {
                options.walk(slice(b, field::FILE)?, false)?;
            }
            if o & 2 != 0 {
                options.walk(slice(b, field::SNAME)?, false)?;
            }
        }
        let mt = options
            .get(opt::MESSAGE_TYPE)
            .ok_or(ParseError::NoMessageType)?;
        let message_type = match mt {
            [v] => MessageType::from_u8(*v).ok_or(ParseError::BadMessageType)?,
            _ => return Err(ParseError::BadOptionLength(opt::MESSAGE_TYPE)),
        };
        type LengthRule = (u8, fn(usize) -> bool);
        let fixed: [LengthRule; 5] = [
            (opt::REQUESTED_IP, |n| n == 4),
            (opt::SERVER_ID, |n| n == 4),
            (opt::LEASE_TIME, |n| n == 4),
            (opt::MAX_MESSAGE_SIZE, |n| n == 2),
            (opt::CLIENT_ARCH, |n| n >= 2 && n % 2 == 0),
        ];
        for (code, ok) in fixed {
            if options.get(code).is_some_and(|v| !ok(v.len())) {
                return Err(ParseError::BadOptionLength(code));
            }
        }
        let addr = |r| array::<4>(b, r).map(Ipv4Addr::from);
        Ok(Packet {
            message_type,
            htype: byte(b, field::HTYPE)?,
            hops: byte(b, field::HOPS)?,
            xid: u32::from_be_bytes(array(b, field::XID)?),
            secs: u16::from_be_bytes(array(b, field::SECS)?),
            flags: u16::from_be_bytes(array(b, field::FLAGS)?),
            ciaddr: addr(field::CIADDR)?,
            yiaddr: addr(field::YIADDR)?,
            siaddr: addr(field::SIADDR)?,
            giaddr: addr(field::GIADDR)?,
            chaddr,
            options,
        })
    }

    pub fn broadcast(&self) -> bool {
        self.flags & FLAG_BROADCAST != 0
    }

    /// A four-byte option; [`Packet::parse`] refuses other lengths for the codes read here.
    fn opt4(&self, code: u8) -> Option<[u8; 4]> {
        self.options.get(code)?.try_into().ok()
    }

    fn opt_addr(&self, code: u8) -> Option<Ipv4Addr> {
        self.opt4(code).map(Ipv4Addr::from)
    }

    pub fn requested_ip(&self) -> Option<Ipv4Addr> {
        self.opt_addr(opt::REQUESTED_IP)
    }

    pub fn server_id(&self) -> Option<Ipv4Addr> {
        self.opt_addr(opt::SERVER_ID)
    }

    pub fn lease_time(&self) -> Option<u32> {
        self.opt4(opt::LEASE_TIME).map(u32::from_be_bytes)
    }

    /// Whether option 55 lists `code`.
    pub fn requests(&self, code: u8) -> bool {
        self.options
            .get(opt::PARAMETER_REQUEST_LIST)
            .is_some_and(|l| l.contains(&code))
    }
}

/// Builds a BOOTREPLY in a caller-owned buffer, so the hot path reuses one allocation.
pub struct ReplyWriter<'b> {
    buf: &'b mut Vec<u8>,
}

#[allow(
    clippy::indexing_slicing,
    reason = "writes fields of the header `new` sized; chaddr comes from a parsed request"
)]
impl<'b> ReplyWriter<'b> {
    /// Starts a reply to `req`: copies xid, flags, giaddr, htype/hlen/chaddr; sets the
    /// message type option.
    pub fn new(buf: &'b mut Vec<u8>, req: &Packet, mt: MessageType) -> ReplyWriter<'b> {
        buf.clear();
        buf.resize(field::OPTIONS, 0);
        buf[field::OP] = OP_BOOTREPLY;
        buf[field::HTYPE] = req.htype;
        buf[field::HLEN] = req.chaddr.len() as u8;
        buf[field::XID].copy_from_slice(&req.xid.to_be_bytes());
        buf[field::FLAGS].copy_from_slice(&req.flags.to_be_bytes());
        buf[field::GIADDR].copy_from_slice(&req.giaddr.octets());
        buf[field::CHADDR][..req.chaddr.len()].copy_from_slice(req.chaddr);
        buf[field::MAGIC].copy_from_slice(&MAGIC_COOKIE);
        let mut w = ReplyWriter { buf };
        w.option(opt::MESSAGE_TYPE, &[mt as u8]);
        w
    }

    pub fn yiaddr(&mut self, a: Ipv4Addr) -> &mut Self {
        self.buf[field::YIADDR].copy_from_slice(&a.octets());
        self
    }

    pub fn ciaddr(&mut self, a: Ipv4Addr) -> &mut Self {
        self.buf[field::CIADDR].copy_from_slice(&a.octets());
        self
    }

    pub fn siaddr(&mut self, a: Ipv4Addr) -> &mut Self {
        self.buf[field::SIADDR].copy_from_slice(&a.octets());
        self
    }

    /// Sets the `file` field; a name that does not fit (127 bytes + NUL) is refused by
    /// the caller's config checks, and cut here rather than overflowing.
    pub fn file(&mut self, name: &[u8]) -> &mut Self {
        let n = name.len().min(field::FILE.len() - 1);
        self.buf[field::FILE][..n].copy_from_slice(&name[..n]);
        self
    }

    /// Appends an option, splitting values over 255 bytes into repeated options (RFC 3396).
    pub fn option(&mut self, code: u8, value: &[u8]) -> &mut Self {
        let mut chunks = value.chunks(255).peekable();
        if chunks.peek().is_none() {
            self.buf.extend_from_slice(&[code, 0]);
        }
        for c in chunks {
            self.buf.push(code);
            self.buf.push(c.len() as u8);
            self.buf.extend_from_slice(c);
        }
        self
    }

    pub fn option_u32(&mut self, code: u8, v: u32) -> &mut Self {
        self.option(code, &v.to_be_bytes())
    }

    pub fn option_addr(&mut self, code: u8, a: Ipv4Addr) -> &mut Self {
        self.option(code, &a.octets())
    }

    /// Ends the options and pads to the BOOTP minimum.
    pub fn finish(self) {
        self.buf.push(opt::END);
        if self.buf.len() < MIN_REPLY_LEN {
            self.buf.resize(MIN_REPLY_LEN, 0);
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, reason = "tests")]
pub(crate) mod tests {
    use super::*;

    /// A BOOTREQUEST header with `chaddr` = `mac`, followed by `options` (which must end
    /// with 255). Test fixtures are built from real option bytes on top of this.
    pub fn request(mac: [u8; 6], options: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; field::OPTIONS];
        b[field::OP] = OP_BOOTREQUEST;
        b[field::HTYPE] = HTYPE_ETHERNET;
        b[field::HLEN] = 6;
        b[field::XID].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        b[field::CHADDR][..6].copy_from_slice(&mac);
        b[field::MAGIC].copy_from_slice(&MAGIC_COOKIE);
        b.extend_from_slice(options);
        b
    }

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    #[test]
    fn parses_message_type_and_first_occurrence() {
        let b = request(
            MAC,
            &[53, 1, 1, 60, 3, b'a', b'b', b'c', 60, 1, b'z', 0, 0, 255],
        );
        let p = Packet::parse(&b).unwrap();
        assert_eq!(p.message_type, MessageType::Discover);
        assert_eq!(p.options.get(opt::VENDOR_CLASS), Some(&b"abc"[..]));
        assert_eq!(p.chaddr, &MAC);
    }

    #[test]
    fn refuses_malformed_headers_and_options() {
        assert_eq!(Packet::parse(&[1; 100]).err(), Some(ParseError::Truncated));
        let mut b = request(MAC, &[53, 1, 1, 255]);
        b[field::MAGIC.start] = 0;
        assert_eq!(Packet::parse(&b).err(), Some(ParseError::BadMagic));
        let mut b = request(MAC, &[53, 1, 1, 255]);
        b[field::HLEN] = 17;
        assert_eq!(Packet::parse(&b).err(), Some(ParseError::BadHlen));
        let mut b = request(MAC, &[53, 1, 1, 255]);
        b[field::OP] = OP_BOOTREPLY;
        assert_eq!(Packet::parse(&b).err(), Some(ParseError::NotRequest));
        let b = request(MAC, &[53, 1, 1, 60, 9, b'P']);
        assert_eq!(Packet::parse(&b).err(), Some(ParseError::OptionOverrun));
        let b = request(MAC, &[53, 1, 1, 60]);
        assert_eq!(Packet::parse(&b).err(), Some(ParseError::OptionOverrun));
        let b = request(MAC, &[60, 1, b'P', 255]);
        assert_eq!(Packet::parse(&b).err(), Some(ParseError::NoMessageType));
        let b = request(MAC, &[53, 1, 99, 255]);
        assert_eq!(Packet::parse(&b).err(), Some(ParseError::BadMessageType));
        let b = request(MAC, &[53, 0, 255]);
        assert_eq!(
            Packet::parse(&b).err(),
            Some(ParseError::BadOptionLength(53))
        );
        let b = request(MAC, &[53, 1, 1, 93, 1, 0, 255]);
        assert_eq!(
            Packet::parse(&b).err(),
            Some(ParseError::BadOptionLength(93))
        );
        let b = request(MAC, &[53, 1, 1, 50, 3, 1, 2, 3, 255]);
        assert_eq!(
            Packet::parse(&b).err(),
            Some(ParseError::BadOptionLength(50))
        );
    }

    #[test]
    fn overload_reads_file_then_sname_and_never_loops() {
        let mut b = request(MAC, &[52, 1, 3, 255]);
        b[field::FILE][..4].copy_from_slice(&[53, 1, 3, 255]);
        b[field::SNAME][..5].copy_from_slice(&[60, 1, b'X', 255, 0]);
        let p = Packet::parse(&b).unwrap();
        assert_eq!(p.message_type, MessageType::Request);
        assert_eq!(p.options.get(opt::VENDOR_CLASS), Some(&b"X"[..]));
        // Option 52 inside the overloaded area is refused, not followed.
        let mut b = request(MAC, &[52, 1, 1, 255]);
        b[field::FILE][..7].copy_from_slice(&[52, 1, 1, 53, 1, 1, 255]);
        assert_eq!(Packet::parse(&b).err(), Some(ParseError::BadOverload));
        let b = request(MAC, &[52, 1, 9, 53, 1, 1, 255]);
        assert_eq!(Packet::parse(&b).err(), Some(ParseError::BadOverload));
    }

    #[test]
    fn reply_is_padded_and_reparses_with_an_independent_parser() {
        use dhcproto::{Decodable, Decoder, v4};
        let b = request(MAC, &[53, 1, 1, 255]);
        let req = Packet::parse(&b).unwrap();
        let mut buf = Vec::new();
        let mut w = ReplyWriter::new(&mut buf, &req, MessageType::Offer);
        w.yiaddr(Ipv4Addr::new(192, 168, 1, 10))
            .siaddr(Ipv4Addr::new(192, 168, 1, 1))
            .file(b"undionly.kpxe");
        w.option_addr(opt::SUBNET_MASK, Ipv4Addr::new(255, 255, 255, 0))
            .option_u32(opt::LEASE_TIME, 600);
        w.finish();
        assert_eq!(buf.len(), MIN_REPLY_LEN);
        let m = v4::Message::decode(&mut Decoder::new(&buf)).unwrap();
        assert_eq!(m.opcode(), v4::Opcode::BootReply);
        assert_eq!(m.yiaddr(), Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(m.siaddr(), Ipv4Addr::new(192, 168, 1, 1));
        assert_eq!(m.xid(), 0x1234_5678);
        assert_eq!(m.fname().unwrap(), b"undionly.kpxe\0"); // dhcproto keeps the NUL
        assert_eq!(m.chaddr(), &MAC);
        assert_eq!(m.opts().msg_type(), Some(v4::MessageType::Offer));
        assert_eq!(
            m.opts().get(v4::OptionCode::AddressLeaseTime),
            Some(&v4::DhcpOption::AddressLeaseTime(600))
        );
    }

    #[test]
    fn long_options_are_split() {
        let b = request(MAC, &[53, 1, 1, 255]);
        let req = Packet::parse(&b).unwrap();
        let mut buf = Vec::new();
        let mut w = ReplyWriter::new(&mut buf, &req, MessageType::Offer);
        w.option(opt::BOOTFILE_NAME, &[b'a'; 300]);
        w.finish();
        let o = field::OPTIONS + 3;
        assert_eq!(&buf[o..o + 2], &[67, 255]);
        assert_eq!(&buf[o + 257..o + 259], &[67, 45]);
    }

    use proptest::prelude::*;
    use proptest::sample::select;

    /// Real DISCOVERs and a REQUEST (tests/fixtures/README.md).
    const CAPTURES: [&[u8]; 5] = [
        include_bytes!("../../tests/fixtures/dhcp4/dhclient-discover.bin"),
        include_bytes!("../../tests/fixtures/dhcp4/ipxe-rom-bios-discover.bin"),
        include_bytes!("../../tests/fixtures/dhcp4/ipxe-snponly-efi-discover.bin"),
        include_bytes!("../../tests/fixtures/dhcp4/ovmf-pxe-x64-discover.bin"),
        include_bytes!("../../tests/fixtures/dhcp4/ovmf-pxe-x64-request.bin"),
    ];

    /// Codes with a length rule or an accessor, PAD and END, and one nobody reads.
    const CODES: [u8; 12] = [
        opt::PAD,
        opt::REQUESTED_IP,
        opt::LEASE_TIME,
        opt::OVERLOAD,
        opt::MESSAGE_TYPE,
        opt::SERVER_ID,
        opt::PARAMETER_REQUEST_LIST,
        opt::MAX_MESSAGE_SIZE,
        opt::CLIENT_ID,
        opt::CLIENT_ARCH,
        opt::END,
        200,
    ];

    /// An option area: half the time a value has the length its code asks for (and for 52
    /// and 53 a value in range), else any; PAD and END are the bare byte.
    fn area() -> impl Strategy<Value = Vec<u8>> {
        let option =
            (select(&CODES[..]), any::<bool>(), 0usize..12).prop_flat_map(|(code, fits, n)| {
                let n = match code {
                    opt::PAD | opt::END => 0,
                    _ if !fits => n,
                    opt::OVERLOAD | opt::MESSAGE_TYPE => 1,
                    opt::MAX_MESSAGE_SIZE | opt::CLIENT_ARCH => 2,
                    opt::REQUESTED_IP | opt::LEASE_TIME | opt::SERVER_ID => 4,
                    _ => n,
                };
                (
                    Just(code),
                    Just(fits),
                    proptest::collection::vec(any::<u8>(), n),
                )
            });
        proptest::collection::vec(option, 0..8).prop_map(|os| {
            let mut b = Vec::new();
            for (code, fits, mut v) in os {
                b.push(code);
                if matches!(code, opt::PAD | opt::END) {
                    continue;
                }
                if let (true, opt::OVERLOAD | opt::MESSAGE_TYPE) = (fits, code) {
                    v[0] = v[0] % 3 + 1;
                }
                b.push(v.len() as u8);
                b.extend(v);
            }
            b
        })
    }

    /// Requests built from random header fields (`hlen` up to 20) and option areas,
    /// overloaded into `file` and `sname` half the time; real captures with bytes
    /// overwritten and maybe cut short; and plain junk.
    fn datagram() -> impl Strategy<Value = Vec<u8>> {
        let built = (
            any::<[u8; 6]>(),
            prop_oneof![Just(6u8), 0u8..=20],
            proptest::collection::vec(any::<u8>(), field::CHADDR.start - field::XID.start),
            (1u8..=8, proptest::option::of(1u8..=3), area()),
            area(),
            area(),
        )
            .prop_map(|(mac, hlen, fields, (t, overload, main), file, sname)| {
                let mut options = vec![opt::MESSAGE_TYPE, 1, t];
                if let Some(o) = overload {
                    options.extend([opt::OVERLOAD, 1, o]);
                }
                options.extend(main);
                let mut b = request(mac, &options);
                b[field::HLEN] = hlen;
                b[field::XID.start..field::CHADDR.start].copy_from_slice(&fields);
                for (r, o) in [(field::FILE, file), (field::SNAME, sname)] {
                    let n = o.len().min(r.len());
                    b[r][..n].copy_from_slice(&o[..n]);
                }
                b
            });
        let mutated = crate::wire_testing::mutated(CAPTURES.iter().map(|c| c.to_vec()).collect());
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            mutated,
            built
        ]
    }

    proptest! {
        /// Any datagram parses or gets a reason, never a panic, and so does every accessor.
        /// A reply to what parses, carrying its options, parses back (as a request) to the
        /// same message type, header fields a reply echoes, and options.
        #[test]
        fn prop_views_never_panic_and_replies_round_trip(b in datagram()) {
            let Ok(p) = Packet::parse(&b) else { return Ok(()) };
            let _ = (p.broadcast(), p.requested_ip(), p.server_id(), p.lease_time());
            let mut buf = Vec::new();
            let mut w = ReplyWriter::new(&mut buf, &p, p.message_type);
            w.ciaddr(p.ciaddr).yiaddr(p.yiaddr).siaddr(p.siaddr);
            for code in 0..=u8::MAX {
                let _ = p.requests(code);
                if let (Some(v), false) = (p.options.get(code), code == opt::MESSAGE_TYPE) {
                    w.option(code, v);
                }
            }
            w.finish();
            buf[field::OP] = OP_BOOTREQUEST;
            let q = Packet::parse(&buf).unwrap();
            prop_assert_eq!(q.message_type, p.message_type);
            prop_assert_eq!((q.htype, q.xid, q.flags, q.chaddr), (p.htype, p.xid, p.flags, p.chaddr));
            prop_assert_eq!([q.ciaddr, q.yiaddr, q.siaddr, q.giaddr], [p.ciaddr, p.yiaddr, p.siaddr, p.giaddr]);
            for code in 0..=u8::MAX {
                prop_assert_eq!(q.options.get(code), p.options.get(code), "option {}", code);
            }
        }
    }
}
