//! `sixboot explain`: what sixboot would answer one kind of client at each protocol, and
//! why, from the same policy the servers ask. It touches no network; with a MAC, it reads
//! that machine's next action from the store, read-only.

mod fetch;

use crate::config::Config;
use crate::policy::{Arch, Client, Hints, Method, Platform, Policy, classify};
use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

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
    /// UEFI PXE also boots over IPv6 (PXEv6); a legacy BIOS ROM only over IPv4.
    pub pxe6: bool,
    /// iPXE's `${platform}`, for the script it gets.
    pub platform: Platform,
}

pub fn sample(kind: &str) -> Option<Sample> {
    let h = |vc: &'static [u8], arch, ipxe: bool| Hints {
        vendor_class: Some(vc),
        user_class: ipxe.then_some(&b"iPXE"[..]),
        arch: Some(arch),
        ipxe_options: ipxe,
    };
    let (pxe6, platform) = match kind {
        "uefi-x64" | "uefi-arm64" => (true, Platform::Unknown),
        "ipxe-bios" => (false, Platform::Pcbios),
        "ipxe-efi" => (false, Platform::Efi),
        _ => (false, Platform::Unknown),
    };
    Some(match kind {
        "bios" => Sample {
            kind: "bios",
            about: "legacy BIOS PXE ROM",
            hints: h(b"PXEClient:Arch:00000:UNDI:002001", 0, false),
            pxe6,
            platform,
        },
        "uefi-x64" => Sample {
            kind: "uefi-x64",
            about: "x64 UEFI PXE",
            hints: h(b"PXEClient:Arch:00007:UNDI:003000", 7, false),
            pxe6,
            platform,
        },
        "uefi-arm64" => Sample {
            kind: "uefi-arm64",
            about: "ARM64 UEFI PXE",
            hints: h(b"PXEClient:Arch:00011:UNDI:003000", 11, false),
            pxe6,
            platform,
        },
        "ipxe-bios" => Sample {
            kind: "ipxe-bios",
            about: "iPXE on BIOS (undionly.kpxe or a NIC ROM)",
            hints: h(b"PXEClient:Arch:00000:UNDI:002001", 0, true),
            pxe6,
            platform,
        },
        "ipxe-efi" => Sample {
            kind: "ipxe-efi",
            about: "iPXE on x64 UEFI (snponly.efi)",
            hints: h(b"PXEClient:Arch:00007:UNDI:003010", 7, true),
            pxe6,
            platform,
        },
        "http-x64" => Sample {
            kind: "http-x64",
            about: "x64 UEFI HTTP boot",
            hints: h(b"HTTPClient:Arch:00016:UNDI:003001", 16, false),
            pxe6,
            platform,
        },
        "os" => Sample {
            kind: "os",
            about: "an OS DHCP client (dhclient, installer, live image)",
            hints: Hints::default(),
            pxe6,
            platform,
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

/// The explanation for one client kind, one line per protocol (the HTTP stage may take a
/// few); `mac` picks one machine, for its `[[host]]` pin and next action.
pub fn explain(cfg: &Config, s: &Sample, mac: Option<[u8; 6]>) -> String {
    let policy = Policy::new(cfg);
    let mut out = String::new();
    match mac {
        Some(m) => {
            let _ = writeln!(
                out,
                "client {} {}: {}",
                s.kind,
                crate::mac::Mac(&m),
                s.about
            );
        }
        None => {
            let _ = writeln!(out, "client {}: {}", s.kind, s.about);
        }
    }
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
    let _ = writeln!(out, "  RA:     {}", ra(cfg));
    let _ = writeln!(out, "  DHCPv6: {}", dhcp6(cfg, &policy, &s.hints));
    let _ = writeln!(out, "  TFTP:   {}", fetch::tftp(cfg, &policy, s));
    let _ = writeln!(
        out,
        "  HTTP:   {}",
        fetch::http(cfg, &policy, s, mac).join("\n          ")
    );
    out
}

/// How `explain` names the unspecified address in a URL: the interface's own address,
/// which a listener on `[::]` or `0.0.0.0` and DHCPv6 stand for, known only when serving.
fn unspecified(cfg: &Config) -> String {
    format!("{}'s address", cfg.interface)
}

/// The router advertisement every client on the link sees (the same for all kinds).
fn ra(cfg: &Config) -> String {
    let Some(v6) = &cfg.ipv6 else {
        return "off: no [ipv6] table".into();
    };
    if !v6.router_advertisements {
        return "off ([ipv6] router_advertisements = false): iPXE starts DHCPv6 only after \
                some router's RA with M or O set"
            .into();
    }
    let a = crate::ra::sender::advert(v6, None);
    let on = |b: bool| if b { "on" } else { "off" };
    let mut s = format!(
        "M={} O={}, prefix {} on-link, autonomous {}, router lifetime {} s",
        u8::from(a.managed),
        u8::from(a.other),
        v6.prefix,
        on(v6.autonomous),
        a.router_lifetime
    );
    if let Some(r) = &a.rdnss {
        let _ = write!(s, ", RDNSS {}", list(&r.servers));
    }
    s
}

fn list(addrs: &[Ipv6Addr]) -> String {
    addrs
        .iter()
        .map(Ipv6Addr::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What DHCPv6 gives this kind. Nobody is refused on v6: a client without a boot URL
/// still gets an address and DNS.
fn dhcp6(cfg: &Config, policy: &Policy, h: &Hints) -> String {
    let Some(v6) = &cfg.ipv6 else {
        return "off: no [ipv6] table, so no DHCPv6 socket is opened".into();
    };
    // The server's own address is only known on the running interface.
    let b = policy.dhcp6(h, Ipv6Addr::UNSPECIFIED);
    let boot = match b.url_showing(Some(&unspecified(cfg))) {
        Ok(url) => format!(
            "boot URL (option 59) \"{url}\"{}",
            if b.echoes_http_client() {
                ", vendor class HTTPClient echoed"
            } else {
                ""
            }
        ),
        Err(r) => format!("no boot URL (reason {}): {r}", r.as_str()),
    };
    let dns = if v6.dns.is_empty() {
        String::new()
    } else {
        format!(", DNS {}", list(&v6.dns))
    };
    format!(
        "Advertise/Reply an address from {}-{}, valid {} s{dns}, {boot}",
        v6.pool.0, v6.pool.1, v6.lease_time
    )
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
            b.target.file_field(Some(&unspecified(cfg))),
            if b.target.echoes_http_client() {
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
