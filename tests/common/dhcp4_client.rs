//! A DHCPv4 client for tests: firmware-, iPXE- and OS-shaped packets sent from a client
//! namespace over a real socket.

use super::in_netns;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

pub fn tlv(code: u8, v: &[u8]) -> Vec<u8> {
    let mut o = vec![code, v.len() as u8];
    o.extend_from_slice(v);
    o
}

/// A BOOTREQUEST with the given flags, giaddr and options (END appended), and a fresh
/// transaction id so a late answer to an earlier request is never taken for this one's.
pub fn packet(mac: [u8; 6], broadcast: bool, giaddr: Ipv4Addr, opts: &[Vec<u8>]) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&fastrand::u32(..).to_be_bytes());
    if broadcast {
        b[10] = 0x80;
    }
    b[24..28].copy_from_slice(&giaddr.octets());
    b[28..34].copy_from_slice(&mac);
    b[236..240].copy_from_slice(&[99, 130, 83, 99]);
    for o in opts {
        b.extend_from_slice(o);
    }
    b.push(255);
    b
}

/// Options of OVMF's PXE (x64) or a plain BIOS PXE ROM, per DESIGN.md §2.
pub fn firmware_opts(mt: u8, arch: u16, extra: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let vc = format!("PXEClient:Arch:{arch:05}:UNDI:003000");
    let mut o = vec![
        tlv(53, &[mt]),
        tlv(57, &[5, 192]),
        tlv(55, &[1, 3, 6, 43, 60, 66, 67, 97, 128, 129, 130]),
        tlv(97, &[0; 17]),
        tlv(94, &[1, 3, 0]),
        tlv(93, &arch.to_be_bytes()),
        tlv(60, vc.as_bytes()),
    ];
    o.extend_from_slice(extra);
    o
}

pub fn ipxe_opts(mt: u8) -> Vec<Vec<u8>> {
    vec![
        tlv(53, &[mt]),
        tlv(93, &[0, 0]),
        tlv(60, b"PXEClient:Arch:00000:UNDI:002001"),
        tlv(77, b"iPXE"),
        tlv(175, &[177, 5, 1, 128, 134, 16, 14]),
    ]
}

/// A client socket in `ns` on port `port`, bound to eth0 so broadcasts leave there.
pub fn client_socket(ns: &str, bind: Ipv4Addr, port: u16) -> UdpSocket {
    in_netns(ns, move || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        s.set_reuse_address(true).unwrap();
        s.set_broadcast(true).unwrap();
        s.bind_device(Some(b"eth0")).unwrap();
        s.bind(&SocketAddr::from((bind, port)).into()).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s.into()
    })
}

/// Sends `pkt` to `to` and waits up to `secs` for a reply with our xid and chaddr; resends
/// each second like a real client.
pub fn ask(s: &UdpSocket, to: SocketAddr, pkt: &[u8], secs: u64) -> Option<Vec<u8>> {
    let mut buf = [0u8; 1500];
    for _ in 0..secs {
        s.send_to(pkt, to).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while std::time::Instant::now() < deadline {
            if let Ok((n, _)) = s.recv_from(&mut buf)
                && n >= 240
                && buf[0] == 2
                && buf[4..8] == pkt[4..8]
                && buf[28..44] == pkt[28..44]
            {
                return Some(buf[..n].to_vec());
            }
        }
    }
    None
}

/// (message type, yiaddr, file) of a reply.
pub fn decode(r: &[u8]) -> (u8, Ipv4Addr, String) {
    let yiaddr = Ipv4Addr::new(r[16], r[17], r[18], r[19]);
    let file = String::from_utf8_lossy(&r[108..236])
        .trim_end_matches('\0')
        .to_string();
    let mut i = 240;
    let mut mt = 0;
    while i + 1 < r.len() && r[i] != 255 {
        if r[i] == 0 {
            i += 1;
            continue;
        }
        if r[i] == 53 {
            mt = r[i + 2];
        }
        i += 2 + r[i + 1] as usize;
    }
    (mt, yiaddr, file)
}

pub const BCAST: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::BROADCAST, 67));

/// DISCOVER then REQUEST, waiting `secs` for each answer; the ACKed address and file, or
/// what went wrong.
pub fn try_dora(
    s: &UdpSocket,
    mac: [u8; 6],
    arch: u16,
    secs: u64,
) -> Result<(Ipv4Addr, String), String> {
    let none = Ipv4Addr::UNSPECIFIED;
    let discover = packet(mac, true, none, &firmware_opts(1, arch, &[]));
    let offer = ask(s, BCAST, &discover, secs).ok_or("no OFFER")?;
    let (mt, addr, file) = decode(&offer);
    if mt != 2 {
        return Err(format!("expected OFFER, got message type {mt}"));
    }
    let extra = [tlv(50, &addr.octets()), tlv(54, &[192, 168, 1, 1])];
    let request = packet(mac, true, none, &firmware_opts(3, arch, &extra));
    let ack = ask(s, BCAST, &request, secs).ok_or("no ACK")?;
    match decode(&ack) {
        (5, acked, f) if acked == addr && f == file => Ok((addr, file)),
        other => Err(format!("expected ACK of {addr} {file}, got {other:?}")),
    }
}

/// A DORA that must succeed.
pub fn dora(s: &UdpSocket, mac: [u8; 6], arch: u16) -> (Ipv4Addr, String) {
    try_dora(s, mac, arch, 10).unwrap_or_else(|e| panic!("DORA for {mac:02x?}: {e}"))
}
