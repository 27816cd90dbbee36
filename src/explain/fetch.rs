//! The fetch stages of `explain`: which file a client loads over TFTP, and what it gets
//! over HTTP (iPXE's script, UEFI HTTP boot's EFI file). Every answer is the policy's;
//! this only reads it out, with the refusal reasons logs and metrics use.

use super::{Sample, unspecified};
use crate::config::Config;
use crate::mac::Mac;
use crate::pipeline::BURNIN_ITEM;
use crate::policy::{
    Boot4, Client, Fetch, IpxeBoot, Launch, Method, NoBootUrl, Platform, Policy, Refusal, Target,
    classify,
};
use crate::tftp::paths;
use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// The TFTP stage: the first-stage file PXE firmware was told to fetch, over which IP
/// versions, and whether the TFTP server would find it. Read off the DHCP targets the
/// policy decides, so "over TFTP or not" is the policy's answer, not decided again here.
pub(super) fn tftp(cfg: &Config, policy: &Policy, s: &Sample) -> String {
    let v4 = cfg
        .dhcp4
        .as_ref()
        .map(|d| policy.dhcp4(&s.hints, d.next_server.unwrap_or(Ipv4Addr::UNSPECIFIED)));
    let v6 = cfg
        .ipv6
        .as_ref()
        .map(|_| policy.dhcp6(&s.hints, Ipv6Addr::UNSPECIFIED).target);
    let mut over: Vec<(&str, &str)> = Vec::new();
    if let Some(Ok(Boot4 {
        target: Target::Tftp { file },
        ..
    })) = &v4
    {
        over.push(("IPv4", file));
    }
    // Legacy BIOS PXE ROMs speak only IPv4; UEFI PXE also fetches over IPv6.
    if let Some(Ok(Target::Tftp { file })) = &v6
        && s.pxe6
    {
        over.push(("IPv6", file));
    }
    if over.is_empty() {
        return not_over_tftp(v4, v6, s.pxe6);
    }
    let Some(t) = &cfg.tftp else {
        return "off: no [tftp] table, so nothing answers the request".into();
    };
    let mut files: Vec<&str> = over.iter().map(|(_, f)| *f).collect();
    files.dedup();
    let lines: Vec<String> = files
        .iter()
        .map(|file| {
            let families: Vec<&str> = over
                .iter()
                .filter(|(_, f)| f == file)
                .map(|(fam, _)| *fam)
                .collect();
            format!(
                "RRQ \"{file}\" over {} from [tftp] root {}: {}",
                families.join(" and "),
                t.root.display(),
                in_root(&t.root, file)
            )
        })
        .collect();
    lines.join("; ")
}

/// The TFTP line of a client whose next stage comes over HTTP.
const IPXE_OVER_HTTP: &str = "not used: iPXE fetches its script over HTTP";
const HTTP_BOOT_OVER_HTTP: &str = "not used: UEFI HTTP boot fetches its first stage over HTTP";

/// Why a client fetches nothing over TFTP, from the targets and refusals DHCP gives it.
fn not_over_tftp(
    v4: Option<Result<Boot4, Refusal>>,
    v6: Option<Result<Target, NoBootUrl>>,
    pxe6: bool,
) -> String {
    let v4_target = v4.as_ref().and_then(|r| r.as_ref().ok()).map(|b| &b.target);
    let v6_target = v6.as_ref().and_then(|r| r.as_ref().ok());
    for t in [v4_target, v6_target].into_iter().flatten() {
        match t {
            Target::Http {
                fetch: Fetch::IpxeScript,
                ..
            } => return IPXE_OVER_HTTP.into(),
            Target::Http {
                fetch: Fetch::BootFile(_),
                ..
            } => return HTTP_BOOT_OVER_HTTP.into(),
            Target::Tftp { .. } => {}
        }
    }
    match (v4, v6) {
        (Some(Err(Refusal::Ipxe)), _) => IPXE_OVER_HTTP.into(),
        // Refused for want of an HTTP listener: it would fetch over HTTP, not TFTP.
        (Some(Err(Refusal::HttpBootDisabled | Refusal::NoHttpV4Listener)), _) => {
            HTTP_BOOT_OVER_HTTP.into()
        }
        (Some(Err(Refusal::NotFirmware)), _) | (_, Some(Err(NoBootUrl::Os))) => {
            "not used: not boot firmware".into()
        }
        (Some(Err(r)), _) => format!("nothing to fetch (reason {}): {r}", r.as_str()),
        (_, Some(Err(r))) => format!("nothing to fetch (reason {}): {r}", r.as_str()),
        _ if pxe6 => "not reached: no [dhcp4] or [ipv6] table gives it a file name".into(),
        _ => "not reached: no [dhcp4] table gives it a file name (legacy BIOS PXE speaks only \
              IPv4)"
            .into(),
    }
}

/// Whether the TFTP server (and `/boot/` over HTTP, from the same root) would serve
/// `file`: the same path rules, with the same refusal reasons.
fn in_root(root: &Path, file: &str) -> String {
    let root = match std::fs::canonicalize(root) {
        Ok(r) => r,
        Err(e) => return format!("the root cannot be read ({e})"),
    };
    match paths::normalize(file.as_bytes()).and_then(|rel| paths::resolve(&root, &rel)) {
        Ok(r) => format!("present, {} bytes", r.meta.len()),
        Err(e) => format!("refused (reason {}): {}", e.as_str(), e.message()),
    }
}

/// The HTTP stage, one entry per output line.
pub(super) fn http(cfg: &Config, policy: &Policy, s: &Sample, mac: Option<[u8; 6]>) -> Vec<String> {
    match classify(&s.hints) {
        Client::Ipxe => ipxe(cfg, policy, s.platform, mac),
        Client::Firmware {
            method: Method::Http,
            arch,
        } => http_boot(cfg, policy, s, arch),
        Client::Firmware { .. } => vec![
            "not used by the firmware; the iPXE it loads fetches its script (see ipxe-bios, \
             ipxe-efi)"
                .into(),
        ],
        Client::Os => vec!["no boot file: an OS gets an address and DNS only".into()],
    }
}

/// UEFI HTTP boot: the EFI file URL it got from DHCP, and whether the file is there.
fn http_boot(cfg: &Config, policy: &Policy, s: &Sample, arch: crate::policy::Arch) -> Vec<String> {
    let mut out = Vec::new();
    let shown = unspecified(cfg);
    let mut gets = false;
    if let Some(d) = &cfg.dhcp4 {
        out.push(
            match policy.dhcp4(&s.hints, d.next_server.unwrap_or(Ipv4Addr::UNSPECIFIED)) {
                Ok(b) => {
                    gets = true;
                    format!("IPv4: GET {}", b.target.file_field(Some(&shown)))
                }
                Err(r) => format!("IPv4: no URL (reason {}): {r}", r.as_str()),
            },
        );
    }
    if cfg.ipv6.is_some() {
        out.push(
            match policy
                .dhcp6(&s.hints, Ipv6Addr::UNSPECIFIED)
                .url_showing(Some(&shown))
            {
                Ok(url) => {
                    gets = true;
                    format!("IPv6: GET {url}")
                }
                Err(r) => format!("IPv6: no URL (reason {}): {r}", r.as_str()),
            },
        );
    }
    if out.is_empty() {
        out.push("not reached: no [dhcp4] or [ipv6] table gives it a URL".into());
    }
    if let (Some(file), Some(t)) = (policy.boot_file(arch), &cfg.tftp)
        && gets
    {
        out.push(format!(
            "\"{file}\" from [tftp] root {} (served under /boot/): {}",
            t.root.display(),
            in_root(&t.root, file)
        ));
    }
    out
}

/// iPXE: the entry script, and the per-machine script the policy decides for `platform`
/// (and for `mac`, with its pin and next action).
fn ipxe(cfg: &Config, policy: &Policy, platform: Platform, mac: Option<[u8; 6]>) -> Vec<String> {
    let hints = crate::policy::Hints {
        user_class: Some(b"iPXE"),
        ..Default::default()
    };
    let boot = policy.dhcp6(&hints, Ipv6Addr::UNSPECIFIED);
    let url = match (&cfg.ipv6, boot.url_showing(Some(&unspecified(cfg)))) {
        (None, _) => {
            return vec!["not reached: no [ipv6] table, so iPXE gets no script URL".into()];
        }
        (_, Err(r)) => return vec![format!("not reached (reason {}): {r}", r.as_str())],
        (_, Ok(url)) => url,
    };
    let mut out = vec![format!(
        "GET {url}: chains to /ipxe?mac=${{mac:hexhyp}}&platform={}&… (the machine's own script)",
        platform.name()
    )];
    let (next, note) = match mac {
        None => (
            None,
            "a machine with no [[host]] pin and no next action".to_string(),
        ),
        Some(m) => match crate::machines::stored_next(&cfg.state_dir, m) {
            Ok(Some(n)) => (
                Some(n.clone()),
                format!("next action `{n}` from its pipeline (read from the store)"),
            ),
            Ok(None) => (
                None,
                match policy.host_boot(m) {
                    Some(pin) => format!("[[host]] pin `{pin}`, no next action in the store"),
                    None => "no [[host]] pin, no next action in the store".into(),
                },
            ),
            Err(e) => (
                None,
                format!(
                    "the store cannot be read ({e}): a next action set through the API is \
                     not shown (GET /api/v1/machines/{})",
                    Mac(&m)
                ),
            ),
        },
    };
    let d = policy.ipxe(mac, platform, next.as_ref());
    out.push(format!("for {note}:"));
    match &d.boot {
        IpxeBoot::Menu {
            items,
            default,
            timeout,
        } => {
            out.push(format!(
                "  the menu on {} (decision `{}`), {} item(s):",
                platform.name(),
                d.why,
                items.len()
            ));
            for l in items {
                out.push(format!("    {}", launch(l)));
            }
            let hidden: Vec<&str> = cfg
                .menu
                .items
                .iter()
                .map(|i| i.id.as_str())
                .filter(|id| !items.iter().any(|l| l.id == *id))
                .collect();
            if !hidden.is_empty() {
                out.push(format!(
                    "  hidden on {} (no variant for it): {}",
                    platform.name(),
                    hidden.join(", ")
                ));
            }
            out.push(if *timeout == 0 {
                format!("  default `{default}`; timeout 0: the menu waits for a choice")
            } else {
                format!("  default `{default}`, booted after {timeout} s")
            });
        }
        IpxeBoot::Item(l) => {
            out.push(format!(
                "  no menu (decision `{}`): boots {}",
                d.why,
                launch(l)
            ));
            if let Some(run) = &d.step {
                out.push(format!("  runs the step with \"{}\"", run.kernel_args()));
            }
        }
        IpxeBoot::Poweroff => out.push(format!(
            "  no menu (decision `{}`): powers off (iPXE's poweroff, else the local disk)",
            d.why
        )),
        IpxeBoot::Local => out.push(format!(
            "  no menu (decision `{}`): boots the local disk",
            d.why
        )),
    }
    if mac.is_none() {
        out.push(
            "--mac MAC shows one machine: its [[host]] pin and the next action the API set \
             (live: GET /api/v1/machines/{mac})"
                .into(),
        );
    }
    out
}

/// One item as the script boots it.
fn launch(l: &Launch) -> String {
    let mut s = format!("{} \"{}\": {}", l.id, l.title, l.kernel);
    if let Some(i) = l.initrd {
        let _ = write!(s, ", initrd {i}");
    }
    if let Some(a) = l.args {
        let _ = write!(s, ", args \"{a}\"");
    }
    if l.id == BURNIN_ITEM {
        s.push_str(", plus its step's run, sixboot.report= and a fresh sixboot.token= per script");
    }
    s
}
