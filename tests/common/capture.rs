//! A tcpdump capture of the DHCP traffic on the lab bridge, and the leases the server
//! granted in it: what clients were actually told, independent of sixboot's own records.
//! Classic pcap is read by hand (a 24-byte header, then a 16-byte header per packet):
//! it is the format tcpdump writes, and too small to need a crate.

use super::wait_until;
use dhcproto::{Decodable, Decoder, v4, v6};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running tcpdump on `br0` of a lab's server namespace, writing to a pcap file.
pub struct Capture {
    child: Option<Child>,
    pub file: PathBuf,
    stderr: PathBuf,
}

impl Capture {
    /// Starts capturing DHCPv4 and DHCPv6 on `br0` in `ns`; returns once tcpdump listens.
    pub fn start(ns: &str, dir: &Path) -> Capture {
        let file = dir.join("dhcp.pcap");
        let stderr = dir.join("tcpdump.err");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "tcpdump", "-i", "br0", "-U", "-n"])
            // Stay root: the lab folder is root's alone.
            .args(["-Z", "root", "-B", "8192", "-s", "0", "-w"])
            .arg(&file)
            .arg("udp and (port 67 or port 68 or port 546 or port 547)")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start tcpdump (scripts/deps.sh test installs it)");
        let c = Capture {
            child: Some(child),
            file,
            stderr,
        };
        assert!(
            wait_until(Duration::from_secs(20), || c.err().contains("listening on")),
            "tcpdump did not start: {}",
            c.err()
        );
        c
    }

    fn err(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Stops tcpdump (SIGTERM, bounded wait) and returns how many packets the kernel
    /// dropped before tcpdump saw them.
    pub fn stop(&mut self) -> u64 {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let exited = wait_until(Duration::from_secs(10), || {
                matches!(c.try_wait(), Ok(Some(_)))
            });
            if !exited {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        self.err()
            .lines()
            .find_map(|l| l.strip_suffix(" packets dropped by kernel"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Who a lease was granted to: a DHCPv4 hardware address, or a DHCPv6 DUID and IAID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Holder {
    Mac(Vec<u8>),
    Duid(Vec<u8>, u32),
}

/// One lease a server granted on the wire: a DHCPACK, or an address in a DHCPv6 Reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub holder: Holder,
    pub addr: IpAddr,
    /// Capture time, unix seconds.
    pub at: u64,
    pub lifetime: u32,
}

impl Grant {
    pub fn expires(&self) -> u64 {
        self.at + u64::from(self.lifetime)
    }
}

/// The (timestamp, frame) records of a classic little-endian pcap file.
fn frames(bytes: &[u8]) -> Vec<(u64, &[u8])> {
    assert!(bytes.len() >= 24, "pcap file too short");
    let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    assert!(
        magic == 0xa1b2_c3d4 || magic == 0xa1b2_3c4d,
        "not a little-endian pcap file: magic {magic:#x}"
    );
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    assert_eq!(u32_at(20), 1, "link type is not Ethernet");
    let mut out = Vec::new();
    let mut i = 24;
    while i + 16 <= bytes.len() {
        let (secs, len) = (u32_at(i), u32_at(i + 8) as usize);
        // A frame cut short by the end of the file is one tcpdump was still writing.
        let Some(frame) = bytes.get(i + 16..i + 16 + len) else {
            break;
        };
        out.push((u64::from(secs), frame));
        i += 16 + len;
    }
    out
}

/// Every lease granted in a capture: DHCPACKs from port 67, and addresses with a
/// non-zero valid lifetime in DHCPv6 Replies from port 547.
pub fn grants(pcap: &Path) -> Vec<Grant> {
    let bytes = std::fs::read(pcap).unwrap_or_else(|e| panic!("read {}: {e}", pcap.display()));
    let mut out = Vec::new();
    for (at, frame) in frames(&bytes) {
        let Ok(p) = etherparse::SlicedPacket::from_ethernet(frame) else {
            continue;
        };
        let Some(etherparse::TransportSlice::Udp(udp)) = p.transport else {
            continue;
        };
        match udp.source_port() {
            67 => out.extend(grant4(at, udp.payload())),
            547 => out.extend(grants6(at, udp.payload())),
            _ => {}
        }
    }
    out
}

fn grant4(at: u64, payload: &[u8]) -> Option<Grant> {
    let m = v4::Message::decode(&mut Decoder::new(payload)).ok()?;
    if m.opcode() != v4::Opcode::BootReply || m.opts().msg_type() != Some(v4::MessageType::Ack) {
        return None;
    }
    let lifetime = match m.opts().get(v4::OptionCode::AddressLeaseTime) {
        Some(v4::DhcpOption::AddressLeaseTime(t)) => *t,
        _ => return None,
    };
    Some(Grant {
        holder: Holder::Mac(m.chaddr().iter().take(6).copied().collect()),
        addr: m.yiaddr().into(),
        at,
        lifetime,
    })
}

fn grants6(at: u64, payload: &[u8]) -> Vec<Grant> {
    let Ok(m) = v6::Message::decode(&mut Decoder::new(payload)) else {
        return Vec::new();
    };
    if m.msg_type() != v6::MessageType::Reply {
        return Vec::new();
    }
    let Some(v6::DhcpOption::ClientId(duid)) = m.opts().get(v6::OptionCode::ClientId) else {
        return Vec::new();
    };
    m.opts()
        .get_all(v6::OptionCode::IANA)
        .into_iter()
        .flatten()
        .filter_map(|o| match o {
            v6::DhcpOption::IANA(ia) => Some(ia),
            _ => None,
        })
        .flat_map(|ia| {
            ia.opts
                .get_all(v6::OptionCode::IAAddr)
                .into_iter()
                .flatten()
                .filter_map(move |o| match o {
                    v6::DhcpOption::IAAddr(a) if a.valid_life > 0 => Some(Grant {
                        holder: Holder::Duid(duid.clone(), ia.id),
                        addr: a.addr.into(),
                        at,
                        lifetime: a.valid_life,
                    }),
                    _ => None,
                })
        })
        .collect()
}
