//! A DHCPv6 client for tests: firmware- and OS-shaped messages built with dhcproto (an
//! encoder independent of sixboot's), sent from a client namespace over a real socket.

use super::in_netns;
use dhcproto::v6::{self, DhcpOption, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};
use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::time::Duration;

/// A DUID-UUID with the all-zero UUID QEMU gives without `-uuid`.
pub fn duid_uuid() -> Vec<u8> {
    let mut d = vec![0, 4];
    d.extend_from_slice(&[0; 16]);
    d
}

pub fn duid_llt(mac_last: u8) -> Vec<u8> {
    vec![
        0, 1, 0, 1, 0x2e, 0xc1, 0x22, 0x33, 0x52, 0x54, 0, 0x12, 0x34, mac_last,
    ]
}

/// A client message as a firmware would build it, with a fresh transaction id.
pub fn message(
    t: v6::MessageType,
    duid: &[u8],
    iaid: u32,
    extra: impl IntoIterator<Item = DhcpOption>,
) -> v6::Message {
    let xid = fastrand::u32(..).to_be_bytes();
    let mut m = v6::Message::new_with_id(t, [xid[1], xid[2], xid[3]]);
    let o = m.opts_mut();
    o.insert(DhcpOption::ClientId(duid.to_vec()));
    o.insert(DhcpOption::ElapsedTime(0));
    o.insert(DhcpOption::IANA(v6::IANA {
        id: iaid,
        t1: 0,
        t2: 0,
        opts: v6::DhcpOptions::new(),
    }));
    for e in extra {
        o.insert(e);
    }
    m
}

/// A Request, Renew or Rebind for `addr` in IA `iaid`, naming `server` when given.
pub fn follow_up(
    t: v6::MessageType,
    duid: &[u8],
    iaid: u32,
    addr: Ipv6Addr,
    server: Option<Vec<u8>>,
    extras: Vec<DhcpOption>,
) -> v6::Message {
    let mut m = message(t, duid, iaid, extras);
    let mut ia_opts = v6::DhcpOptions::new();
    ia_opts.insert(DhcpOption::IAAddr(v6::IAAddr {
        addr,
        preferred_life: 0,
        valid_life: 0,
        opts: v6::DhcpOptions::new(),
    }));
    m.opts_mut().insert(DhcpOption::IANA(v6::IANA {
        id: iaid,
        t1: 0,
        t2: 0,
        opts: ia_opts,
    }));
    if let Some(s) = server {
        m.opts_mut().insert(DhcpOption::ServerId(s));
    }
    m
}

/// Option 15 or 16 with one class instance, written raw: dhcproto 0.15 encodes these two
/// with the instance count as the option length.
pub fn class(code: OptionCode, enterprise: Option<u32>, data: &[u8]) -> DhcpOption {
    let mut v = enterprise
        .map(u32::to_be_bytes)
        .unwrap_or_default()
        .to_vec();
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    DhcpOption::Unknown(v6::UnknownOption::new(code, v))
}

pub fn ipxe_extras() -> Vec<DhcpOption> {
    vec![
        DhcpOption::ORO(v6::ORO {
            opts: vec![
                OptionCode::DomainNameServers,
                OptionCode::DomainSearchList,
                OptionCode::OptBootfileUrl,
                OptionCode::OptBootfileParam,
            ],
        }),
        class(
            OptionCode::VendorClass,
            Some(343),
            b"PXEClient:Arch:00007:UNDI:003010",
        ),
        class(OptionCode::UserClass, None, b"iPXE"),
    ]
}

pub fn edk2_extras() -> Vec<DhcpOption> {
    vec![
        DhcpOption::ORO(v6::ORO {
            opts: vec![
                OptionCode::OptBootfileUrl,
                OptionCode::OptBootfileParam,
                OptionCode::VendorClass,
            ],
        }),
        DhcpOption::ClientArchType(vec![dhcproto::v4::Architecture::from(7u16)]),
        class(
            OptionCode::VendorClass,
            Some(343),
            b"PXEClient:Arch:00007:UNDI:003016",
        ),
    ]
}

/// Sends `m` to ff02::1:2 from port 546 in namespace `ns` and returns the first answer
/// with its transaction id; sends again each second, `tries` times.
pub fn try_exchange(ns: &str, m: &v6::Message, tries: u32) -> Option<v6::Message> {
    let bytes = m.to_vec().expect("encode");
    let xid = m.xid();
    in_netns(ns, move || {
        let sock = UdpSocket::bind("[::]:546").expect("bind client port");
        sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let index = nix::net::if_::if_nametoindex("eth0").expect("eth0");
        let to = SocketAddrV6::new("ff02::1:2".parse().unwrap(), 547, 0, index);
        let mut buf = [0u8; 2048];
        for _ in 0..tries {
            sock.send_to(&bytes, to).expect("send");
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                let r = v6::Message::decode(&mut Decoder::new(&buf[..n])).expect("decode reply");
                if r.xid() == xid {
                    return Some(r);
                }
            }
        }
        None
    })
}

/// [`try_exchange`] with 8 tries that must get an answer (the server may still be starting).
pub fn exchange(ns: &str, m: &v6::Message) -> v6::Message {
    try_exchange(ns, m, 8).expect("no DHCPv6 answer in 8 s")
}

pub fn boot_url(m: &v6::Message) -> Option<String> {
    match m.opts().get(OptionCode::OptBootfileUrl) {
        Some(DhcpOption::Unknown(u)) => Some(String::from_utf8_lossy(u.data()).into_owned()),
        _ => None,
    }
}

/// The first address of the message's IA_NA with its valid lifetime, if any.
pub fn try_address(m: &v6::Message) -> Option<(Ipv6Addr, u32)> {
    let Some(DhcpOption::IANA(ia)) = m.opts().get(OptionCode::IANA) else {
        return None;
    };
    match ia.opts.get(OptionCode::IAAddr) {
        Some(DhcpOption::IAAddr(a)) => Some((a.addr, a.valid_life)),
        _ => None,
    }
}

pub fn address(m: &v6::Message) -> Ipv6Addr {
    try_address(m)
        .unwrap_or_else(|| panic!("no address in {m}"))
        .0
}

pub fn server_id(m: &v6::Message) -> Vec<u8> {
    match m.opts().get(OptionCode::ServerId) {
        Some(DhcpOption::ServerId(s)) => s.clone(),
        _ => panic!("no server id in {m}"),
    }
}

/// Solicit, then Request what was advertised, each sent `tries` times at most; the Reply,
/// or what went wrong.
pub fn try_lease(
    ns: &str,
    duid: &[u8],
    iaid: u32,
    extras: Vec<DhcpOption>,
    tries: u32,
) -> Result<v6::Message, String> {
    let solicit = message(v6::MessageType::Solicit, duid, iaid, extras.clone());
    let adv = try_exchange(ns, &solicit, tries).ok_or("no Advertise")?;
    if adv.msg_type() != v6::MessageType::Advertise {
        return Err(format!("expected Advertise, got {adv}"));
    }
    let (offered, _) = try_address(&adv).ok_or_else(|| format!("no address in {adv}"))?;
    let req = follow_up(
        v6::MessageType::Request,
        duid,
        iaid,
        offered,
        Some(server_id(&adv)),
        extras,
    );
    let reply = try_exchange(ns, &req, tries).ok_or("no Reply")?;
    match try_address(&reply) {
        Some((a, valid)) if reply.msg_type() == v6::MessageType::Reply && valid > 0 => {
            if a == offered {
                Ok(reply)
            } else {
                Err(format!("advertised {offered}, replied {a}"))
            }
        }
        _ => Err(format!("expected a Reply with an address, got {reply}")),
    }
}

/// A Solicit/Request that must succeed; returns the Reply.
pub fn lease(ns: &str, duid: &[u8], iaid: u32, extras: Vec<DhcpOption>) -> v6::Message {
    try_lease(ns, duid, iaid, extras, 8).unwrap_or_else(|e| panic!("SARR: {e}"))
}
