//! TFTP packets (RFC 1350) and options (RFC 2347, 2348, 2349, 7440) as typed views.
//!
//! smoltcp style: [`Packet::parse`] turns a datagram into a [`Packet`] that borrows from it,
//! the core decides, and [`Packet::emit`] writes the reply. Opcodes, error codes and option
//! names live here once, as named constants.
//!
//! Fields are split off with patterns and `splitn`, never an index, so no datagram can
//! make the parser panic; the lint below keeps it so.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use thiserror::Error;

/// Read request.
pub const OP_RRQ: u16 = 1;
/// Write request.
pub const OP_WRQ: u16 = 2;
/// A block of file data.
pub const OP_DATA: u16 = 3;
/// Acknowledgement of a block (or of an OACK, as block 0).
pub const OP_ACK: u16 = 4;
/// Error; ends the transfer.
pub const OP_ERROR: u16 = 5;
/// Option acknowledgement (RFC 2347).
pub const OP_OACK: u16 = 6;

/// Bytes before the payload of a DATA packet: opcode and block number.
pub const DATA_HEADER_LEN: usize = 4;

/// Mode names, compared without regard to case (RFC 1350).
pub const MODE_OCTET: &str = "octet";
pub const MODE_NETASCII: &str = "netascii";

/// Option names (RFC 2348, 2349, 7440), compared without regard to case.
pub const OPT_BLKSIZE: &str = "blksize";
pub const OPT_TSIZE: &str = "tsize";
pub const OPT_TIMEOUT: &str = "timeout";
pub const OPT_WINDOWSIZE: &str = "windowsize";

/// Block size without the blksize option (RFC 1350).
pub const DEFAULT_BLKSIZE: u16 = 512;
/// Smallest and largest blksize RFC 2348 allows.
pub const BLKSIZE_MIN: u16 = 8;
pub const BLKSIZE_MAX: u16 = 65464;

/// Error codes (RFC 1350, RFC 2347 for 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    NotDefined = 0,
    FileNotFound = 1,
    AccessViolation = 2,
    DiskFull = 3,
    IllegalOperation = 4,
    UnknownTid = 5,
    FileExists = 6,
    NoSuchUser = 7,
    OptionRefused = 8,
}

/// Transfer mode of a request. RFC 1350's obsolete `mail` mode is refused as unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Octet,
    Netascii,
}

impl Mode {
    fn parse(name: &[u8]) -> Option<Mode> {
        [(MODE_OCTET, Mode::Octet), (MODE_NETASCII, Mode::Netascii)]
            .into_iter()
            .find(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
            .map(|(_, m)| m)
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Octet => MODE_OCTET,
            Mode::Netascii => MODE_NETASCII,
        }
    }
}

/// Every option this server implements, in the order [`Ignored`] numbers them.
const KNOWN_OPTIONS: [&str; 4] = [OPT_BLKSIZE, OPT_TSIZE, OPT_TIMEOUT, OPT_WINDOWSIZE];

/// Known options a request carried with a value that is not a number or is outside the
/// RFC range (blksize below 8, timeout or windowsize 0). They are left out of the OACK,
/// which is how RFC 2347 lets a server decline an option: the transfer goes on with the
/// default, where an ERROR 8 would stop a firmware's boot over one bad value.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ignored(u8);

impl Ignored {
    fn add(&mut self, name: &str) {
        if let Some(i) = KNOWN_OPTIONS.iter().position(|n| *n == name) {
            self.0 |= 1 << i;
        }
    }

    /// The option names, for metrics and logs.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        KNOWN_OPTIONS
            .into_iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| n)
    }
}

/// The options this server understands. Unknown options and unusable values are dropped
/// while parsing, which is how RFC 2347 says to ignore them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub blksize: Option<u16>,
    pub tsize: Option<u64>,
    pub timeout: Option<u8>,
    pub windowsize: Option<u16>,
}

impl Options {
    pub fn is_empty(&self) -> bool {
        *self == Options::default()
    }

    /// Reads `name\0value\0` pairs; the first occurrence of a name wins. Also returns the
    /// known options whose value was unusable, so the caller can count them.
    fn parse(mut rest: &[u8]) -> Result<(Options, Ignored), ParseError> {
        let mut o = Options::default();
        let mut ignored = Ignored::default();
        while !rest.is_empty() {
            let (name, tail) = split_nul(rest)?;
            let (value, tail) = split_nul(tail)?;
            rest = tail;
            let Some(known) = KNOWN_OPTIONS
                .into_iter()
                .find(|n| name.eq_ignore_ascii_case(n.as_bytes()))
            else {
                continue; // an option this server does not implement (RFC 2347)
            };
            let in_range = |v: &u64| match known {
                OPT_BLKSIZE => *v >= u64::from(BLKSIZE_MIN),
                OPT_TIMEOUT => (1..=255).contains(v),
                OPT_WINDOWSIZE => (1..=65535).contains(v),
                _ => true,
            };
            let Some(v) = std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .filter(in_range)
            else {
                ignored.add(known);
                continue;
            };
            match known {
                // Larger than the RFC maximum: clamp rather than drop, as RFC 2348 lets a
                // server answer a smaller size; the session clamps to the MTU anyway.
                OPT_BLKSIZE => o.blksize = o.blksize.or(Some(v.min(u64::from(BLKSIZE_MAX)) as u16)),
                OPT_TSIZE => o.tsize = o.tsize.or(Some(v)),
                OPT_TIMEOUT => o.timeout = o.timeout.or(Some(v as u8)),
                _ => o.windowsize = o.windowsize.or(Some(v as u16)),
            }
        }
        Ok((o, ignored))
    }

    fn emit(&self, buf: &mut Vec<u8>) {
        let mut put = |name: &str, v: Option<u64>| {
            if let Some(v) = v {
                put_str(buf, name);
                put_str(buf, &v.to_string());
            }
        };
        put(OPT_BLKSIZE, self.blksize.map(u64::from));
        put(OPT_TSIZE, self.tsize);
        put(OPT_TIMEOUT, self.timeout.map(u64::from));
        put(OPT_WINDOWSIZE, self.windowsize.map(u64::from));
    }
}

/// A read or write request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// Raw bytes as sent; [`super::paths`] decides what they mean.
    pub filename: &'a [u8],
    pub mode: Mode,
    pub options: Options,
    /// Known options dropped for their value.
    pub ignored: Ignored,
}

/// One TFTP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Read(Request<'a>),
    Write(Request<'a>),
    Data { block: u16, data: &'a [u8] },
    Ack { block: u16 },
    Error { code: u16, message: &'a [u8] },
    Oack(Options),
}

/// Why a datagram is not a TFTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("datagram too short")]
    Truncated,
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    #[error("string field without NUL terminator")]
    Unterminated,
    #[error("request without a transfer mode")]
    NoMode,
    #[error("unknown transfer mode")]
    BadMode,
}

impl<'a> Packet<'a> {
    pub fn parse(b: &'a [u8]) -> Result<Packet<'a>, ParseError> {
        let (op, rest) = take_u16(b)?;
        Ok(match op {
            OP_RRQ | OP_WRQ => {
                let (filename, rest) = split_nul(rest)?;
                if rest.is_empty() {
                    return Err(ParseError::NoMode);
                }
                let (mode, rest) = split_nul(rest)?;
                let mode = Mode::parse(mode).ok_or(ParseError::BadMode)?;
                let (options, ignored) = Options::parse(rest)?;
                let req = Request {
                    filename,
                    mode,
                    options,
                    ignored,
                };
                if op == OP_RRQ {
                    Packet::Read(req)
                } else {
                    Packet::Write(req)
                }
            }
            OP_DATA => {
                let (block, data) = take_u16(rest)?;
                Packet::Data { block, data }
            }
            OP_ACK => Packet::Ack {
                block: take_u16(rest)?.0,
            },
            OP_ERROR => {
                let (code, rest) = take_u16(rest)?;
                // Some clients omit the final NUL of the message; accept that.
                let message = rest.split(|&c| c == 0).next().unwrap_or_default();
                Packet::Error { code, message }
            }
            OP_OACK => Packet::Oack(Options::parse(rest)?.0),
            other => return Err(ParseError::UnknownOpcode(other)),
        })
    }

    /// Appends the packet's bytes to `buf`.
    pub fn emit(&self, buf: &mut Vec<u8>) {
        match self {
            Packet::Read(r) | Packet::Write(r) => {
                let op = if matches!(self, Packet::Read(_)) {
                    OP_RRQ
                } else {
                    OP_WRQ
                };
                buf.extend_from_slice(&op.to_be_bytes());
                buf.extend_from_slice(r.filename);
                buf.push(0);
                put_str(buf, r.mode.name());
                r.options.emit(buf);
            }
            Packet::Data { block, data } => {
                buf.extend_from_slice(&data_header(*block));
                buf.extend_from_slice(data);
            }
            Packet::Ack { block } => {
                buf.extend_from_slice(&OP_ACK.to_be_bytes());
                buf.extend_from_slice(&block.to_be_bytes());
            }
            Packet::Error { code, message } => {
                buf.extend_from_slice(&OP_ERROR.to_be_bytes());
                buf.extend_from_slice(&code.to_be_bytes());
                buf.extend_from_slice(message);
                buf.push(0);
            }
            Packet::Oack(o) => {
                buf.extend_from_slice(&OP_OACK.to_be_bytes());
                o.emit(buf);
            }
        }
    }
}

/// The header of a DATA packet; the shell appends file bytes straight after it.
pub fn data_header(block: u16) -> [u8; DATA_HEADER_LEN] {
    let [o0, o1] = OP_DATA.to_be_bytes();
    let [b0, b1] = block.to_be_bytes();
    [o0, o1, b0, b1]
}

/// An ERROR packet as bytes.
pub fn error_packet(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(5 + message.len());
    Packet::Error {
        code: code as u16,
        message: message.as_bytes(),
    }
    .emit(&mut buf);
    buf
}

fn take_u16(b: &[u8]) -> Result<(u16, &[u8]), ParseError> {
    match b {
        [h, l, rest @ ..] => Ok((u16::from_be_bytes([*h, *l]), rest)),
        _ => Err(ParseError::Truncated),
    }
}

/// Splits `b` at its first NUL: the string before it and the bytes after.
fn split_nul(b: &[u8]) -> Result<(&[u8], &[u8]), ParseError> {
    let mut parts = b.splitn(2, |&c| c == 0);
    match (parts.next(), parts.next()) {
        (Some(s), Some(rest)) => Ok((s, rest)),
        _ => Err(ParseError::Unterminated),
    }
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(s.as_bytes());
    buf.push(0);
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    /// EDK2's size probe as captured from OVMF: tsize 0 and blksize 1468.
    const EDK2_PROBE: &[u8] = b"\x00\x01snponly.efi\x00octet\x00tsize\x000\x00blksize\x001468\x00";

    #[test]
    fn parses_edk2_probe() {
        let Packet::Read(r) = Packet::parse(EDK2_PROBE).unwrap() else {
            panic!("not RRQ")
        };
        assert_eq!(r.filename, b"snponly.efi");
        assert_eq!(r.mode, Mode::Octet);
        assert_eq!(
            r.options,
            Options {
                blksize: Some(1468),
                tsize: Some(0),
                ..Options::default()
            }
        );
    }

    #[test]
    fn request_roundtrips() {
        let mut buf = Vec::new();
        Packet::parse(EDK2_PROBE).unwrap().emit(&mut buf);
        // Emission orders options blksize, tsize, ...; parse again to compare meaning.
        assert_eq!(
            Packet::parse(&buf).unwrap(),
            Packet::parse(EDK2_PROBE).unwrap()
        );
    }

    #[test]
    fn mode_and_options_ignore_case_and_unknowns() {
        let b =
            b"\x00\x01f\x00NetASCII\x00BLKSIZE\x001024\x00multicast\x00\x00WindowSize\x0016\x00";
        let Packet::Read(r) = Packet::parse(b).unwrap() else {
            panic!()
        };
        assert_eq!(r.mode, Mode::Netascii);
        assert_eq!(r.options.blksize, Some(1024));
        assert_eq!(r.options.windowsize, Some(16));
    }

    #[test]
    fn out_of_range_options_are_dropped_and_named() {
        let b = b"\x00\x01f\x00octet\x00blksize\x007\x00timeout\x000\x00windowsize\x0070000\x00tsize\x00x\x00";
        let Packet::Read(r) = Packet::parse(b).unwrap() else {
            panic!()
        };
        assert!(r.options.is_empty());
        assert_eq!(
            r.ignored.names().collect::<Vec<_>>(),
            [OPT_BLKSIZE, OPT_TSIZE, OPT_TIMEOUT, OPT_WINDOWSIZE]
        );
        // A bad first occurrence is ignored and counted; a good later one is taken.
        let b = b"\x00\x01f\x00octet\x00blksize\x000\x00BLKSIZE\x001024\x00windowsize\x000\x00";
        let Packet::Read(r) = Packet::parse(b).unwrap() else {
            panic!()
        };
        assert_eq!(r.options.blksize, Some(1024));
        assert_eq!(
            r.ignored.names().collect::<Vec<_>>(),
            [OPT_BLKSIZE, OPT_WINDOWSIZE]
        );
        let b = b"\x00\x01f\x00octet\x00blksize\x0099999\x00";
        let Packet::Read(r) = Packet::parse(b).unwrap() else {
            panic!()
        };
        assert_eq!(r.options.blksize, Some(BLKSIZE_MAX));
    }

    #[test]
    fn write_request_parses_as_write() {
        let b = b"\x00\x02upload.bin\x00octet\x00";
        assert!(matches!(Packet::parse(b), Ok(Packet::Write(_))));
    }

    #[test]
    fn refuses_malformed() {
        assert_eq!(Packet::parse(b"\x00"), Err(ParseError::Truncated));
        assert_eq!(
            Packet::parse(b"\x00\x09"),
            Err(ParseError::UnknownOpcode(9))
        );
        assert_eq!(
            Packet::parse(b"\x00\x01file"),
            Err(ParseError::Unterminated)
        );
        assert_eq!(Packet::parse(b"\x00\x01file\x00"), Err(ParseError::NoMode));
        assert_eq!(
            Packet::parse(b"\x00\x01file\x00oct"),
            Err(ParseError::Unterminated)
        );
        assert_eq!(
            Packet::parse(b"\x00\x01file\x00binary\x00"),
            Err(ParseError::BadMode)
        );
        assert_eq!(
            Packet::parse(b"\x00\x01f\x00octet\x00blksize\x00"),
            Err(ParseError::Unterminated)
        );
        assert_eq!(Packet::parse(b"\x00\x04\x00"), Err(ParseError::Truncated));
    }

    #[test]
    fn ack_data_error_fixtures() {
        assert_eq!(
            Packet::parse(b"\x00\x04\xff\xff"),
            Ok(Packet::Ack { block: 65535 })
        );
        assert_eq!(
            Packet::parse(b"\x00\x03\x00\x01ab"),
            Ok(Packet::Data {
                block: 1,
                data: b"ab"
            })
        );
        // EDK2 aborts its tsize probe with code 8 and no trailing NUL in some builds.
        assert_eq!(
            Packet::parse(b"\x00\x05\x00\x08abort"),
            Ok(Packet::Error {
                code: 8,
                message: b"abort"
            })
        );
    }

    #[test]
    fn emits_oack_and_error() {
        let mut buf = Vec::new();
        let o = Options {
            blksize: Some(1468),
            tsize: Some(123),
            timeout: None,
            windowsize: Some(16),
        };
        Packet::Oack(o).emit(&mut buf);
        assert_eq!(
            buf,
            b"\x00\x06blksize\x001468\x00tsize\x00123\x00windowsize\x0016\x00"
        );
        assert_eq!(
            error_packet(ErrorCode::AccessViolation, "no"),
            b"\x00\x05\x00\x02no\x00"
        );
        assert_eq!(data_header(0x1234), [0, 3, 0x12, 0x34]);
    }

    use proptest::prelude::*;
    use proptest::sample::select;

    /// Read requests and an ERROR captured from OVMF (tests/fixtures/README.md), and
    /// EDK2's probe as the tests above spell it.
    const CAPTURES: [&[u8]; 6] = [
        include_bytes!("../../tests/fixtures/tftp/ovmf-error-abort.bin"),
        include_bytes!("../../tests/fixtures/tftp/ovmf-pxe6-rrq-tsize-probe.bin"),
        include_bytes!("../../tests/fixtures/tftp/ovmf-pxe6-rrq.bin"),
        include_bytes!("../../tests/fixtures/tftp/ovmf-rrq-tsize-probe.bin"),
        include_bytes!("../../tests/fixtures/tftp/ovmf-rrq.bin"),
        EDK2_PROBE,
    ];

    const MODES: [&str; 3] = [MODE_OCTET, MODE_NETASCII, "mail"];
    const NAMES: [&str; 5] = [
        OPT_BLKSIZE,
        OPT_TSIZE,
        OPT_TIMEOUT,
        OPT_WINDOWSIZE,
        "multicast",
    ];
    /// In and out of every option's range, and not numbers.
    const VALUES: [&str; 8] = [
        "0",
        "7",
        "1468",
        "65535",
        "99999",
        "+5",
        "18446744073709551616",
        "x",
    ];

    /// A string field: one of `words`, upper-cased half the time, or random bytes.
    fn string(words: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
        let word = (select(words), any::<bool>()).prop_map(|(w, upper)| {
            if upper {
                w.to_uppercase()
            } else {
                w.to_owned()
            }
            .into_bytes()
        });
        prop_oneof![3 => word, 1 => proptest::collection::vec(any::<u8>(), 0..8)]
    }

    /// Opcodes 0 to 7 (mostly RRQ, WRQ and OACK) followed by a filename and mode (but for
    /// OACK) and option pairs, the last string now and then unterminated; real captures with
    /// bytes overwritten and maybe cut short; and plain junk.
    fn datagram() -> impl Strategy<Value = Vec<u8>> {
        let built = (
            prop_oneof![Just(OP_RRQ), Just(OP_WRQ), Just(OP_OACK), 0u16..=7],
            proptest::collection::vec(any::<u8>(), 0..8),
            string(&MODES[..]),
            proptest::collection::vec((string(&NAMES[..]), string(&VALUES[..])), 0..5),
            proptest::bool::weighted(0.8),
        )
            .prop_map(|(op, filename, mode, options, terminated)| {
                let mut strings = Vec::new();
                if op != OP_OACK {
                    strings.extend([filename, mode]);
                }
                strings.extend(options.into_iter().flat_map(<[_; 2]>::from));
                let mut b = op.to_be_bytes().to_vec();
                for s in strings {
                    b.extend(s);
                    b.push(0);
                }
                if !terminated {
                    b.pop();
                }
                b
            });
        let mutated = crate::wire_testing::mutated(CAPTURES.iter().map(|c| c.to_vec()).collect());
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            mutated,
            built
        ]
    }

    /// The packet as emitted: dropped option values are not written back.
    fn without_ignored(p: Packet) -> Packet {
        match p {
            Packet::Read(r) => Packet::Read(Request {
                ignored: Ignored::default(),
                ..r
            }),
            Packet::Write(r) => Packet::Write(Request {
                ignored: Ignored::default(),
                ..r
            }),
            other => other,
        }
    }

    proptest! {
        /// Any datagram parses or gets a reason, never a panic, and what parses emits and
        /// parses back the same, but for the option values it dropped.
        #[test]
        fn prop_parse_never_panics_and_round_trips(b in datagram()) {
            let Ok(p) = Packet::parse(&b) else { return Ok(()) };
            if let Packet::Read(r) | Packet::Write(r) = &p {
                let _ = (r.options.is_empty(), r.ignored.names().count());
            }
            let mut buf = Vec::new();
            p.emit(&mut buf);
            prop_assert_eq!(Packet::parse(&buf), Ok(without_ignored(p)));
        }
    }
}
