//! Hostile input over real sockets: malformed and lying packets, and floods. After each
//! barrage sixboot must be alive, still answer a valid firmware DISCOVER, and have logged
//! a reason for every packet it refused.

mod common;

use common::Lab;
use common::dhcp4_client::*;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

fn config(lab: &Lab) -> std::path::PathBuf {
    lab.write("tftp/undionly.kpxe", b"nbp");
    lab.write(
        "sixboot.toml",
        r#"interface = "br0"
[dhcp4]
subnet = "192.168.1.0/24"
pool = ["192.168.1.10", "192.168.1.254"]
[boot]
bios = "undionly.kpxe"
[tftp]
root = "tftp"
"#,
    )
}

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x66, 0, 1];

/// A packet with a valid header and these raw option bytes (no END appended).
fn raw(opts: &[u8]) -> Vec<u8> {
    let mut p = packet(MAC, true, Ipv4Addr::UNSPECIFIED, &[]);
    p.pop();
    p.extend_from_slice(opts);
    p
}

/// A BIOS PXE DISCOVER carrying `extra` as its only other option.
fn firmware_with(extra: Vec<u8>) -> Vec<u8> {
    let o = [
        tlv(53, &[1]),
        tlv(60, b"PXEClient:Arch:00000:UNDI:002001"),
        extra,
    ];
    packet(MAC, true, Ipv4Addr::UNSPECIFIED, &o)
}

#[test]
fn malformed_dhcp4_is_refused_with_reasons_and_valid_firmware_still_served() {
    let mut lab = Lab::new("hostile4");
    let c = lab.client("c", None, None);
    let cfg = config(&lab);
    let pid = lab.start_sixboot(&cfg);
    assert!(lab.wait_log("DHCPv4 listening", 20));
    let s = client_socket(&c, Ipv4Addr::UNSPECIFIED, 68);

    let mut hlen17 = firmware_with(tlv(12, b"x"));
    hlen17[2] = 17;
    let mut hlen255 = hlen17.clone();
    hlen255[2] = 255;
    let mut overload_loop = raw(&[52, 1, 1, 255]);
    overload_loop[108..115].copy_from_slice(&[52, 1, 1, 53, 1, 1, 255]);
    let mut bad_magic = firmware_with(tlv(12, b"x"));
    bad_magic[236] = 0;
    let junk: Vec<u8> = (0..576u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    // (packet, reason label it must be refused with)
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![1u8; 100], "truncated"),
        (raw(&[]), "no_message_type"),
        (bad_magic, "bad_magic"),
        (raw(&[53, 1, 1, 60, 200, b'P', 255]), "option_overrun"),
        (raw(&[53, 1, 1, 60]), "option_overrun"),
        (raw(&[53, 1, 1, 61, 255, 1, 2, 3]), "option_overrun"),
        (overload_loop, "bad_overload"),
        (raw(&[53, 1, 1, 52, 1, 7, 255]), "bad_overload"),
        (raw(&[53, 0, 255]), "bad_option_length"),
        (raw(&[53, 2, 1, 1, 255]), "bad_option_length"),
        (raw(&[53, 1, 77, 255]), "bad_message_type"),
        (firmware_with(tlv(93, &[])), "bad_option_length"),
        (firmware_with(tlv(93, &[0, 0, 7])), "bad_option_length"),
        (firmware_with(tlv(50, &[1, 2, 3])), "bad_option_length"),
        (hlen17, "bad_hlen"),
        (hlen255, "bad_hlen"),
        (
            packet(
                MAC,
                true,
                Ipv4Addr::UNSPECIFIED,
                &[tlv(53, &[1]), tlv(60, &[])],
            ),
            "not_firmware",
        ),
        (
            packet(
                MAC,
                true,
                Ipv4Addr::UNSPECIFIED,
                &[tlv(53, &[1]), tlv(60, &[b'X'; 255])],
            ),
            "not_firmware",
        ),
        (
            packet(
                MAC,
                true,
                Ipv4Addr::UNSPECIFIED,
                &[tlv(53, &[1]), tlv(61, &[7; 255])],
            ),
            "not_firmware",
        ),
        (firmware_with(tlv(77, b"iPXE")), "ipxe"),
        (junk, "bad_magic"),
    ];
    for (i, (pkt, _)) in cases.iter().enumerate() {
        assert!(ask(&s, BCAST, pkt, 1).is_none(), "case {i} was answered");
    }
    let log = lab.log();
    for (i, (_, reason)) in cases.iter().enumerate() {
        assert!(
            log.contains(&format!("reason={reason}")),
            "case {i}: no `reason={reason}` logged:\n{log}"
        );
    }
    // Valid odd values are served: a 255-byte client id, empty user class, long vendor class.
    let mut id = vec![0u8; 255];
    id[0] = 0xff;
    for extra in [tlv(61, &id), tlv(77, &[]), tlv(12, &[b'h'; 255])] {
        let r =
            ask(&s, BCAST, &firmware_with(extra), 3).expect("valid firmware DISCOVER not answered");
        assert_eq!(decode(&r).0, 2);
    }
    assert!(
        lab.stop(pid).is_some_and(|st| st.success()),
        "sixboot did not survive"
    );
}

#[test]
fn ipxe_flood_gets_no_reply_and_firmware_is_still_served() {
    let mut lab = Lab::new("flood4");
    let c = lab.client("c", None, None);
    let cfg = config(&lab);
    lab.start_sixboot(&cfg);
    assert!(lab.wait_log("DHCPv4 listening", 20));
    let s = client_socket(&c, Ipv4Addr::UNSPECIFIED, 68);
    s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let mut buf = [0u8; 1500];
    let mut replies = 0;
    let started = Instant::now();
    for i in 0..10_000u32 {
        let mut mac = MAC;
        mac[3..].copy_from_slice(&i.to_be_bytes()[1..]);
        let p = packet(mac, true, Ipv4Addr::UNSPECIFIED, &ipxe_opts(1));
        s.send_to(&p, BCAST).unwrap();
        if i % 64 == 0 {
            while let Ok((n, _)) = s.recv_from(&mut buf) {
                replies += usize::from(n >= 240 && buf[0] == 2);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "flood did not finish in time"
        );
    }
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    while let Ok((n, _)) = s.recv_from(&mut buf) {
        replies += usize::from(n >= 240 && buf[0] == 2);
    }
    assert_eq!(replies, 0, "iPXE DISCOVERs were answered");
    let r = ask(
        &s,
        BCAST,
        &packet(MAC, true, Ipv4Addr::UNSPECIFIED, &firmware_opts(1, 0, &[])),
        5,
    );
    assert_eq!(
        r.map(|r| decode(&r).0),
        Some(2),
        "firmware not served after the flood"
    );
}
