//! What the fuzz targets share: how one fuzz input becomes a sequence of datagrams, and
//! the fixed server setup they are fed to (the example config, the lab's addresses).
//!
//! A protocol core keeps state between datagrams (leases, a transfer's window), so each
//! input is a *sequence* of records rather than one packet: `[delta u8][len u16 BE][bytes]`,
//! where `delta` moves the fake clock before the datagram arrives. The last record takes
//! whatever is left when its length runs past the end, so a bare packet with a 3-byte
//! prefix is a valid input and libFuzzer's mutations rarely fall off the format.

use sixboot::config::{self, Checks, Config};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::OnceLock;

/// Records per input: bounds the work per exec, enough for DISCOVER-REQUEST-RELEASE or a
/// window of ACKs with retransmissions.
pub const MAX_RECORDS: usize = 64;

/// The records of one input, in order, at most [`MAX_RECORDS`].
pub fn records(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&delta, rest) = data.split_first()?;
        let (len, rest) = match rest {
            [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
            _ => (0, &[][..]),
        };
        let (bytes, rest) = rest.split_at(len.min(rest.len()));
        data = rest;
        Some((delta, bytes))
    })
    .take(MAX_RECORDS)
}

/// One record in the [`records`] format, for building seeds.
pub fn record(delta: u8, bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).expect("a datagram fits 64 KiB");
    let mut out = vec![delta];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

/// The example config every target serves with: DHCPv4 on 192.168.1.0/24, RA and DHCPv6
/// on fd00:1::/64, HTTP on [fd00:1::1]:8080, one menu item.
pub const EXAMPLE_CONFIG: &str = include_str!("../../examples/sixboot.toml");

/// [`EXAMPLE_CONFIG`], loaded once, without looking at the system.
pub fn example_config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        config::parse(
            EXAMPLE_CONFIG,
            "sixboot.toml",
            Path::new("/etc/sixboot"),
            Checks::FileOnly,
        )
        .expect("the example config loads")
    })
}

/// The lab server's addresses, as in tests/fixtures/README.md.
pub const SERVER4: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
pub const SERVER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);
/// The DUID of the server the OVMF PXEv6 capture talked to, so its Request and Release
/// fixtures are addressed to the fuzzed server and get past the server-id check.
pub const SERVER_DUID: [u8; 14] = [
    0x00, 0x01, 0x00, 0x01, 0x32, 0x98, 0xf7, 0xe5, 0x12, 0x6f, 0xf0, 0xf8, 0x82, 0x67,
];
/// OVMF's link-local address in the capture (EUI-64 of 52:54:00:12:34:58).
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0x00ff, 0xfe12, 0x3458);
/// Unix time the fake clocks start at.
pub const START: u64 = 1_800_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_the_last_one_takes_the_rest() {
        let mut data = record(3, b"abc");
        data.extend(record(0, b""));
        data.extend([7, 0, 200, b'x', b'y']);
        let got: Vec<_> = records(&data).collect();
        assert_eq!(got, [(3, &b"abc"[..]), (0, b""), (7, b"xy")]);
        assert_eq!(records(&[9]).collect::<Vec<_>>(), [(9, &b""[..])]);
    }

    #[test]
    fn the_example_config_has_every_protocol() {
        let c = example_config();
        assert!(c.dhcp4.is_some() && c.ipv6.is_some() && c.http.is_some());
    }
}
