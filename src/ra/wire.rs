//! Router Solicitation and Router Advertisement (RFC 4861 §4.1–4.2) with the options
//! sixboot sends: source link-layer address, prefix information (§4.6.2) and RDNSS
//! (RFC 8106). smoltcp `wire` style: parse into a [`Message`], emit a [`RouterAdvert`].
//!
//! The ICMPv6 checksum is left zero: the kernel computes and checks it for raw ICMPv6
//! sockets (RFC 3542 §3.1), since it needs the IPv6 pseudo-header the shell never sees.
//!
//! Every read of received bytes goes through `get` or `split_at_checked`, never an index,
//! so no input can make the parser panic; the lint below keeps it so.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use ipnet::Ipv6Net;
use std::net::Ipv6Addr;
use std::ops::Range;

pub const ROUTER_SOLICIT: u8 = 133;
pub const ROUTER_ADVERT: u8 = 134;
/// Neighbour Discovery packets are sent and accepted only with this hop limit, which
/// proves they did not cross a router (RFC 4861 §6.1).
pub const HOP_LIMIT: u8 = 255;
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// Field offsets in the ICMPv6 message.
mod field {
    use std::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CUR_HOP_LIMIT: usize = 4;
    pub const FLAGS: usize = 5;
    pub const ROUTER_LIFETIME: Range<usize> = 6..8;
    pub const REACHABLE_TIME: Range<usize> = 8..12;
    pub const RETRANS_TIMER: Range<usize> = 12..16;
    /// Options start here in a Router Solicitation (after 4 reserved bytes)...
    pub const RS_OPTIONS: usize = 8;
    /// ...and here in a Router Advertisement.
    pub const RA_OPTIONS: usize = 16;
    /// In a source link-layer address option, after its type and length.
    pub const LL_ADDR: Range<usize> = 2..8;
    /// In a prefix information option (RFC 4861 §4.6.2).
    pub const PREFIX_LEN: usize = 2;
    pub const PREFIX_FLAGS: usize = 3;
    pub const VALID_LIFETIME: Range<usize> = 4..8;
    pub const PREFERRED_LIFETIME: Range<usize> = 8..12;
    pub const PREFIX: Range<usize> = 16..32;
    /// In an RDNSS option (RFC 8106 §5.1), after its type, length and 2 reserved bytes.
    pub const RDNSS_LIFETIME: Range<usize> = 4..8;
}

/// RA flag bits (RFC 4861 §4.2).
pub const FLAG_MANAGED: u8 = 0x80;
pub const FLAG_OTHER: u8 = 0x40;
/// Prefix information flag bits (RFC 4861 §4.6.2).
pub const PREFIX_ON_LINK: u8 = 0x80;
pub const PREFIX_AUTONOMOUS: u8 = 0x40;

/// Option types; option lengths count [`OPTION_UNIT`]s.
pub mod opt {
    pub const SOURCE_LL_ADDR: u8 = 1;
    pub const PREFIX_INFO: u8 = 3;
    pub const RDNSS: u8 = 25;
}
const OPTION_UNIT: usize = 8;
const PREFIX_INFO_LEN: usize = 32;
/// RDNSS: the lifetime and what comes before it; the servers follow, 16 bytes each.
const RDNSS_HEADER: usize = 8;

/// Why bytes are not an RS or RA we can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than its fixed header.
    Truncated,
    /// Not type 133 or 134 (the socket filter should have dropped it).
    NotRouterDiscovery,
    /// ICMP code other than 0.
    BadCode,
    /// An option of length 0, or one that runs past the end (RFC 4861 §4.6: discard).
    BadOption,
}

impl ParseError {
    pub fn as_str(self) -> &'static str {
        match self {
            ParseError::Truncated => "truncated",
            ParseError::NotRouterDiscovery => "not_router_discovery",
            ParseError::BadCode => "bad_code",
            ParseError::BadOption => "bad_option",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixInfo {
    pub prefix: Ipv6Net,
    pub on_link: bool,
    pub autonomous: bool,
    /// Seconds.
    pub valid_lifetime: u32,
    /// Seconds.
    pub preferred_lifetime: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rdnss {
    /// Seconds.
    pub lifetime: u32,
    pub servers: Vec<Ipv6Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterAdvert {
    /// 0 means unspecified: hosts keep their own default.
    pub cur_hop_limit: u8,
    pub managed: bool,
    pub other: bool,
    /// Seconds; 0 means "not a default router".
    pub router_lifetime: u16,
    /// Milliseconds; 0 means unspecified.
    pub reachable_time: u32,
    /// Milliseconds; 0 means unspecified.
    pub retrans_timer: u32,
    pub source_ll: Option<[u8; 6]>,
    pub prefixes: Vec<PrefixInfo>,
    pub rdnss: Option<Rdnss>,
}

/// A parsed Router Solicitation or Router Advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    RouterSolicit { source_ll: Option<[u8; 6]> },
    RouterAdvert(RouterAdvert),
}

/// Walks the options, `(type, whole option including its 2-byte header)`.
fn options(mut b: &[u8]) -> Result<Vec<(u8, &[u8])>, ParseError> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let [t, units, ..] = *b else {
            return Err(ParseError::BadOption);
        };
        let len = usize::from(units) * OPTION_UNIT;
        if len == 0 {
            return Err(ParseError::BadOption);
        }
        let (o, rest) = b.split_at_checked(len).ok_or(ParseError::BadOption)?;
        out.push((t, o));
        b = rest;
    }
    Ok(out)
}

/// Bytes `r` of `b` as an array, or `None` when `b` ends first: every multi-byte field is
/// read this way.
fn array<const N: usize>(b: &[u8], r: Range<usize>) -> Option<[u8; N]> {
    b.get(r)?.try_into().ok()
}

fn u32_at(b: &[u8], r: Range<usize>) -> Option<u32> {
    array(b, r).map(u32::from_be_bytes)
}

/// The Ethernet address in a source link-layer address option, if it is one.
fn ethernet(o: &[u8]) -> Option<[u8; 6]> {
    array(o, field::LL_ADDR)
}

/// A prefix information option, header included. `None` for one of another size, or
/// with a prefix length over 128: that is junk from the sender, and the option is
/// skipped. Bits past the length are ignored (RFC 4861 §4.6.2).
fn prefix_info(o: &[u8]) -> Option<PrefixInfo> {
    if o.len() != PREFIX_INFO_LEN {
        return None;
    }
    let prefix = Ipv6Net::new(
        array::<16>(o, field::PREFIX)?.into(),
        *o.get(field::PREFIX_LEN)?,
    )
    .ok()?;
    let flags = *o.get(field::PREFIX_FLAGS)?;
    Some(PrefixInfo {
        prefix: prefix.trunc(),
        on_link: flags & PREFIX_ON_LINK != 0,
        autonomous: flags & PREFIX_AUTONOMOUS != 0,
        valid_lifetime: u32_at(o, field::VALID_LIFETIME)?,
        preferred_lifetime: u32_at(o, field::PREFERRED_LIFETIME)?,
    })
}

/// An RDNSS option, header included; `None` unless whole servers follow the header.
fn rdnss(o: &[u8]) -> Option<Rdnss> {
    let (servers, rest) = o.get(RDNSS_HEADER..)?.as_chunks::<16>();
    if servers.is_empty() || !rest.is_empty() {
        return None;
    }
    Some(Rdnss {
        lifetime: u32_at(o, field::RDNSS_LIFETIME)?,
        servers: servers.iter().copied().map(Ipv6Addr::from).collect(),
    })
}

impl Message {
    pub fn parse(b: &[u8]) -> Result<Message, ParseError> {
        let truncated = ParseError::Truncated;
        let t = *b.first().ok_or(truncated)?;
        let opts_at = match t {
            ROUTER_SOLICIT => field::RS_OPTIONS,
            ROUTER_ADVERT => field::RA_OPTIONS,
            _ => return Err(ParseError::NotRouterDiscovery),
        };
        // The length check: the options start where the fixed header ends.
        let opts = b.get(opts_at..).ok_or(truncated)?;
        if b.get(field::CODE) != Some(&0) {
            return Err(ParseError::BadCode);
        }
        let opts = options(opts)?;
        let source_ll = opts
            .iter()
            .find(|(t, _)| *t == opt::SOURCE_LL_ADDR)
            .and_then(|(_, o)| ethernet(o));
        if t == ROUTER_SOLICIT {
            return Ok(Message::RouterSolicit { source_ll });
        }
        let flags = *b.get(field::FLAGS).ok_or(truncated)?;
        let mut ra = RouterAdvert {
            cur_hop_limit: *b.get(field::CUR_HOP_LIMIT).ok_or(truncated)?,
            managed: flags & FLAG_MANAGED != 0,
            other: flags & FLAG_OTHER != 0,
            router_lifetime: array(b, field::ROUTER_LIFETIME)
                .map(u16::from_be_bytes)
                .ok_or(truncated)?,
            reachable_time: u32_at(b, field::REACHABLE_TIME).ok_or(truncated)?,
            retrans_timer: u32_at(b, field::RETRANS_TIMER).ok_or(truncated)?,
            source_ll,
            prefixes: Vec::new(),
            rdnss: None,
        };
        for (t, o) in opts {
            match t {
                opt::PREFIX_INFO => ra.prefixes.extend(prefix_info(o)),
                opt::RDNSS => {
                    if let Some(r) = rdnss(o) {
                        ra.rdnss = Some(r);
                    }
                }
                _ => {}
            }
        }
        Ok(Message::RouterAdvert(ra))
    }
}

impl RouterAdvert {
    /// The ICMPv6 message, checksum zero (the kernel fills it in).
    pub fn emit(&self) -> Vec<u8> {
        // The fixed header as an array: constant offsets into it need no length check.
        let mut h = [0u8; field::RA_OPTIONS];
        h[field::TYPE] = ROUTER_ADVERT;
        h[field::CUR_HOP_LIMIT] = self.cur_hop_limit;
        h[field::FLAGS] =
            if self.managed { FLAG_MANAGED } else { 0 } | if self.other { FLAG_OTHER } else { 0 };
        h[field::ROUTER_LIFETIME].copy_from_slice(&self.router_lifetime.to_be_bytes());
        h[field::REACHABLE_TIME].copy_from_slice(&self.reachable_time.to_be_bytes());
        h[field::RETRANS_TIMER].copy_from_slice(&self.retrans_timer.to_be_bytes());
        let mut b = h.to_vec();
        if let Some(mac) = self.source_ll {
            b.extend_from_slice(&[opt::SOURCE_LL_ADDR, 1]);
            b.extend_from_slice(&mac);
        }
        for p in &self.prefixes {
            let flags = if p.on_link { PREFIX_ON_LINK } else { 0 }
                | if p.autonomous { PREFIX_AUTONOMOUS } else { 0 };
            b.extend_from_slice(&[opt::PREFIX_INFO, (PREFIX_INFO_LEN / OPTION_UNIT) as u8]);
            b.extend_from_slice(&[p.prefix.prefix_len(), flags]);
            b.extend_from_slice(&p.valid_lifetime.to_be_bytes());
            b.extend_from_slice(&p.preferred_lifetime.to_be_bytes());
            b.extend_from_slice(&[0; 4]);
            b.extend_from_slice(&p.prefix.network().octets());
        }
        if let Some(r) = self.rdnss.as_ref().filter(|r| !r.servers.is_empty()) {
            let units = (RDNSS_HEADER + 16 * r.servers.len()) / OPTION_UNIT;
            // RFC 8106 allows up to 127 servers in one option; config lists are short.
            b.extend_from_slice(&[opt::RDNSS, units.min(255) as u8, 0, 0]);
            b.extend_from_slice(&r.lifetime.to_be_bytes());
            for s in r.servers.iter().take(127) {
                b.extend_from_slice(&s.octets());
            }
        }
        b
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, reason = "tests")]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn lab_advert() -> RouterAdvert {
        RouterAdvert {
            cur_hop_limit: 0,
            managed: true,
            other: true,
            router_lifetime: 0,
            reachable_time: 0,
            retrans_timer: 0,
            source_ll: Some([0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]),
            prefixes: vec![PrefixInfo {
                prefix: "fd00:1::/64".parse().unwrap(),
                on_link: true,
                autonomous: false,
                valid_lifetime: 2_592_000,
                preferred_lifetime: 604_800,
            }],
            rdnss: Some(Rdnss {
                lifetime: 1800,
                servers: vec!["fd00:1::53".parse().unwrap()],
            }),
        }
    }

    #[test]
    fn advert_bytes_and_an_independent_parse() {
        use etherparse::{Icmpv6Slice, Icmpv6Type};
        let b = lab_advert().emit();
        assert_eq!(
            &b[..16],
            &[134, 0, 0, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        // Options: SLLAO (8), prefix information (32), RDNSS with one server (24).
        assert_eq!(b.len(), 16 + 8 + 32 + 24);
        assert_eq!(&b[24..28], &[3, 4, 64, 0x80]);
        assert_eq!(&b[56..60], &[25, 3, 0, 0]);
        let icmp = Icmpv6Slice::from_slice(&b).unwrap();
        let Icmpv6Type::RouterAdvertisement(h) = icmp.icmp_type() else {
            panic!("etherparse does not see an RA: {:?}", icmp.icmp_type())
        };
        assert!(h.managed_address_config && h.other_config);
        assert_eq!((h.cur_hop_limit, h.router_lifetime), (0, 0));
        // etherparse's RA header is 8 bytes: reachable time and retrans timer (zero)
        // lead its payload, then the options.
        assert_eq!(icmp.payload().len(), 8 + 8 + 32 + 24);
        assert_eq!(icmp.payload()[..8], [0; 8]);
        assert_eq!(
            icmp.payload()[8..16],
            [1, 1, 0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]
        );
        // And our own parser gives back what was emitted.
        assert_eq!(Message::parse(&b), Ok(Message::RouterAdvert(lab_advert())));
    }

    /// Real solicitations captured from QEMU firmware (tests/fixtures/README.md): iPXE's
    /// with its link-layer address, OVMF's from :: with no options.
    pub(crate) const IPXE_RS: &[u8] =
        include_bytes!("../../tests/fixtures/icmp6/ipxe-router-solicit.bin");
    pub(crate) const OVMF_RS: &[u8] =
        include_bytes!("../../tests/fixtures/icmp6/ovmf-router-solicit.bin");

    use proptest::prelude::*;
    use proptest::sample::select;

    /// One option: half the time with the length its type asks for (and a prefix length
    /// up to 130, so some are junk), else 1 to 4 units; its bytes past the header random.
    fn option() -> impl Strategy<Value = Vec<u8>> {
        let types = vec![opt::SOURCE_LL_ADDR, opt::PREFIX_INFO, opt::RDNSS, 99];
        (select(types), any::<bool>(), 1u8..=4, 0u8..=130).prop_flat_map(
            |(t, fits, units, prefix_len)| {
                let units = match t {
                    _ if !fits => units,
                    opt::SOURCE_LL_ADDR => 1,
                    opt::PREFIX_INFO => (PREFIX_INFO_LEN / OPTION_UNIT) as u8,
                    opt::RDNSS => 2 * units - 1,
                    _ => units,
                };
                let rest = usize::from(units) * OPTION_UNIT - 2;
                proptest::collection::vec(any::<u8>(), rest).prop_map(move |rest| {
                    let mut o = vec![t, units];
                    o.extend(rest);
                    if t == opt::PREFIX_INFO {
                        o[field::PREFIX_LEN] = prefix_len;
                    }
                    o
                })
            },
        )
    }

    /// Solicitations and advertisements built from random headers and those options, the
    /// same with random bodies, real captures and an emitted advert with bytes overwritten
    /// and maybe cut short, and plain junk.
    fn datagram() -> impl Strategy<Value = Vec<u8>> {
        let t = prop_oneof![Just(ROUTER_SOLICIT), Just(ROUTER_ADVERT)];
        let built = (
            t.clone(),
            any::<[u8; field::RA_OPTIONS - 2]>(),
            proptest::collection::vec(option(), 0..5),
        )
            .prop_map(|(t, header, options)| {
                let mut b = vec![t, 0];
                let opts_at = if t == ROUTER_ADVERT {
                    field::RA_OPTIONS
                } else {
                    field::RS_OPTIONS
                };
                b.extend(&header[..opts_at - 2]);
                b.extend(options.concat());
                b
            });
        let body = (t, proptest::collection::vec(any::<u8>(), 0..120)).prop_map(|(t, body)| {
            let mut b = vec![t, 0];
            b.extend(body);
            b
        });
        let mutated = crate::wire_testing::mutated(vec![
            IPXE_RS.to_vec(),
            OVMF_RS.to_vec(),
            lab_advert().emit(),
        ]);
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            body,
            mutated,
            built
        ]
    }

    proptest! {
        /// Any bytes parse as an RS or RA or get a reason, never a panic, and what parses
        /// as an RA emits and parses back the same.
        #[test]
        fn prop_parse_never_panics_and_adverts_round_trip(b in datagram()) {
            if let Ok(Message::RouterAdvert(ra)) = Message::parse(&b) {
                prop_assert_eq!(Message::parse(&ra.emit()), Ok(Message::RouterAdvert(ra)));
            }
        }
    }

    #[test]
    fn solicits_and_malformed_packets() {
        assert_eq!(
            Message::parse(IPXE_RS),
            Ok(Message::RouterSolicit {
                source_ll: Some([0x52, 0x54, 0, 0x12, 0x34, 0x56])
            })
        );
        assert_eq!(
            Message::parse(OVMF_RS),
            Ok(Message::RouterSolicit { source_ll: None })
        );
        let rs: [u8; 16] = IPXE_RS.try_into().unwrap();
        assert_eq!(Message::parse(&rs[..4]), Err(ParseError::Truncated));
        assert_eq!(
            Message::parse(&[128, 0, 0, 0]),
            Err(ParseError::NotRouterDiscovery)
        );
        let mut bad = rs;
        bad[1] = 1;
        assert_eq!(Message::parse(&bad), Err(ParseError::BadCode));
        let mut zero_len = rs;
        zero_len[9] = 0;
        assert_eq!(Message::parse(&zero_len), Err(ParseError::BadOption));
        let mut overrun = rs;
        overrun[9] = 2;
        assert_eq!(Message::parse(&overrun), Err(ParseError::BadOption));
    }
}
