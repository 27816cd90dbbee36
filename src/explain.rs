//! `sixboot explain`: what sixboot would answer one kind of client at each protocol, and
//! why, from the same policy the servers ask. It touches no network.

use crate::config::Config;
use crate::policy::{Arch, Client, Hints, Method, Policy, classify};
use std::fmt::Write;
use std::net::Ipv4Addr;

/// The client kinds `explain` knows, with what such a client sends.
pub const KINDS: &[&str] = &[
    "bios",
    "uefi-x64",
    "uefi-arm64",
    "ipxe-bios",
    "ipxe-efi",
    "http-x64",
    "os",
];

/// A client kind as the option bytes it sends (DESIGN.md §2).
pub struct Sample {
    pub kind: &'static str,
    pub about: &'static str,
    pub hints: Hints<'static>,
}

pub fn sample(kind: &str) -> Option<Sample> {
    let h = |vc: &'static [u8], arch, ipxe: bool| Hints {
        vendor_class: Some(vc),
        user_class: ipxe.then_some(&b"iPXE"[..]),
        arch: Some(arch),
        ipxe_options: ipxe,
    };
    Some(match kind {
        "bios" => Sample {
            kind: "bios",
            about: "legacy BIOS PXE ROM",
            hints: h(b"PXEClient:Arch:00000:UNDI:002001", 0, false),
        },
        "uefi-x64" => Sample {
            kind: "uefi-x64",
            about: "x64 UEFI PXE",
            hints: h(b"PXEClient:Arch:00007:UNDI:003000", 7, false),
        },
        "uefi-arm64" => Sample {
            kind: "uefi-arm64",
            about: "ARM64 UEFI PXE",
            hints: h(b"PXEClient:Arch:00011:UNDI:003000", 11, false),
        },
        "ipxe-bios" => Sample {
            kind: "ipxe-bios",
            about: "iPXE on BIOS (undionly.kpxe or a NIC ROM)",
            hints: h(b"PXEClient:Arch:00000:UNDI:002001", 0, true),
        },
        "ipxe-efi" => Sample {
            kind: "ipxe-efi",
            about: "iPXE on x64 UEFI (snponly.efi)",
            hints: h(b"PXEClient:Arch:00007:UNDI:003010", 7, true),
        },
        "http-x64" => Sample {
            kind: "http-x64",
            about: "x64 UEFI HTTP boot",
            hints: h(b"HTTPClient:Arch:00016:UNDI:003001", 16, false),
        },
        "os" => Sample {
            kind: "os",
            about: "an OS DHCP client (dhclient, installer, live image)",
            hints: Hints::default(),
        },
        _ => return None,
    })
}

fn describe(h: &Hints) -> String {
    let mut s = String::new();
    if let Some(vc) = h.vendor_class {
        let _ = write!(s, "vendor class \"{}\"", String::from_utf8_lossy(vc));
    }
    if let Some(a) = h.arch {
        let _ = write!(s, ", arch {a} ({})", Arch::from_code(a).name());
    }
    if h.user_class.is_some() {
        s.push_str(", user class \"iPXE\"");
    }
    if s.is_empty() {
        "no vendor or user class".into()
    } else {
        s
    }
}

/// The explanation for one client kind, one line per protocol.
pub fn explain(cfg: &Config, s: &Sample) -> String {
    let policy = Policy::new(cfg);
    let mut out = String::new();
    let _ = writeln!(out, "client {}: {}", s.kind, s.about);
    let _ = writeln!(out, "  sends:  {}", describe(&s.hints));
    let class = match classify(&s.hints) {
        Client::Firmware {
            method: Method::Pxe,
            arch,
        } => format!("PXE firmware, {}", arch.name()),
        Client::Firmware {
            method: Method::Http,
            arch,
        } => format!("UEFI HTTP boot firmware, {}", arch.name()),
        Client::Ipxe => "iPXE".into(),
        Client::Os => "an OS (not boot firmware)".into(),
    };
    let _ = writeln!(out, "  class:  {class}");
    let _ = writeln!(out, "  DHCPv4: {}", dhcp4(cfg, &policy, &s.hints));
    out
}

fn dhcp4(cfg: &Config, policy: &Policy, h: &Hints) -> String {
    let Some(d) = &cfg.dhcp4 else {
        return "off: no [dhcp4] table, so no DHCPv4 socket is opened (IPv6-only mode)".into();
    };
    let server = d.next_server.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let next = d
        .next_server
        .map_or_else(|| format!("{}'s address", cfg.interface), |a| a.to_string());
    match policy.dhcp4(h, server) {
        Ok(b) => format!(
            "OFFER/ACK an address from {}-{}/{}, next-server {next}, file \"{}\"{}, lease {} s (at most {} s)",
            d.pool.0,
            d.pool.1,
            d.subnet.prefix_len(),
            b.file,
            if b.http_client {
                ", vendor class HTTPClient echoed"
            } else {
                ""
            },
            d.lease_time,
            d.max_lease_time
        ),
        Err(r) => format!("no answer (reason {}): {r}", r.as_str()),
    }
}
