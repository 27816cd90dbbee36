//! iPXE scripts. `GET /boot.ipxe` is the entry point: a short script that chains to the
//! per-machine URL, letting iPXE fill in its own variables (the matchbox pattern).
//! `GET /ipxe?mac=…&platform=…` renders that machine's script from what `policy`
//! decides for it: the menu, or straight to one item or the local disk, following the
//! machine's next action. A script that can boot the burn-in item carries a fresh
//! per-boot token for it, stored before the script leaves (see [`machine`]).

use super::AppState;
use super::routes::{MACHINE, Peer};
use super::templates::{self, Templates};
use crate::mac::Mac;
use crate::pipeline::BURNIN_ITEM;
use crate::policy::{IpxeBoot, IpxeDecision, Launch, Platform, StepRun};
use crate::timeline::Stage;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use minijinja::value::Serde;
use percent_encoding::percent_decode_str;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::{debug, error, warn};

/// Longest value kept from the query; SMBIOS strings are far shorter.
const MAX_VALUE: usize = 256;

/// What iPXE told us about the machine, uri-decoded; a field iPXE had no value for (a
/// missing SMBIOS string) is empty.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub(super) struct Machine {
    /// As `52:54:00:12:34:56`; empty when absent or not a MAC.
    pub mac: String,
    pub platform: String,
    pub buildarch: String,
    pub uuid: String,
    pub serial: String,
    pub manufacturer: String,
    pub product: String,
}

impl Machine {
    /// Reads the query of the per-machine URL. Only `%XX` is decoded, not `+`: iPXE's
    /// `uristring` follows RFC 3986, where `+` is itself. Unknown keys are ignored, bad
    /// escapes kept as written; nothing here fails.
    pub(super) fn from_query(query: &str) -> (Machine, Option<[u8; 6]>) {
        let mut m = Machine::default();
        let mut mac = None;
        for pair in query.split('&') {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let mut value =
                String::from_utf8_lossy(&percent_decode_str(raw).collect::<Vec<u8>>()).into_owned();
            if value.len() > MAX_VALUE {
                let cut = (0..=MAX_VALUE).rev().find(|i| value.is_char_boundary(*i));
                value.truncate(cut.unwrap_or(0));
            }
            match key {
                "mac" => mac = crate::mac::parse(&value),
                "platform" => m.platform = value,
                "buildarch" => m.buildarch = value,
                "uuid" => m.uuid = value,
                "serial" => m.serial = value,
                "manufacturer" => m.manufacturer = value,
                "product" => m.product = value,
                _ => {}
            }
        }
        m.mac = mac.map(|b| Mac(&b).to_string()).unwrap_or_default();
        (m, mac)
    }
}

/// `http://authority` for the URLs in a script: the Host the client asked for (iPXE
/// sends the authority of the URL it fetched, `[addr]:port` for IPv6), or the address it
/// reached us on when Host is missing or holds anything but address characters.
pub(super) fn base_url(headers: &HeaderMap, local: SocketAddr) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
    match host {
        Some(h) => format!("http://{h}"),
        None => format!("http://{local}"),
    }
}

/// The entry script, which chains to [`MACHINE`] on the same server.
pub(super) fn entry_script(t: &Templates, base: &str) -> Result<String, minijinja::Error> {
    t.render(templates::ENTRY, context! { base, machine_path => MACHINE })
}

/// One item as the script shows it: the policy's launch, and for the burn-in item the
/// step's run and the report URL and token appended to its kernel arguments (the
/// contract with the image).
#[derive(Debug, Serialize)]
struct Shown<'a> {
    id: &'a str,
    title: &'a str,
    kernel: &'a str,
    initrd: Option<&'a str>,
    args: Option<String>,
}

impl<'a> Shown<'a> {
    fn new(l: &Launch<'a>, step: Option<&StepRun>, report: Option<&str>) -> Shown<'a> {
        let args = match step.filter(|_| l.id == BURNIN_ITEM) {
            Some(run) => {
                let args = run.with_item_args(l.args);
                Some(match report {
                    Some(r) => format!("{args} {r}"),
                    None => args,
                })
            }
            None => l.args.map(str::to_string),
        };
        Shown {
            id: l.id,
            title: l.title,
            kernel: l.kernel,
            initrd: l.initrd,
            args,
        }
    }
}

/// The kernel arguments that let the burn-in image report back: where, and with which
/// token.
pub(super) fn report_args(base: &str, mac: [u8; 6], token: &str) -> String {
    format!(
        "sixboot.report={base}{}/{}/report sixboot.token={token}",
        super::api::MACHINES,
        Mac(&mac)
    )
}

/// The per-machine script for what the policy decided; `report` (see [`report_args`])
/// goes onto the burn-in item's kernel line.
pub(super) fn machine_script(
    t: &Templates,
    base: &str,
    machine: &Machine,
    platform: Platform,
    decision: &IpxeDecision,
    report: Option<&str>,
) -> Result<String, minijinja::Error> {
    let boot = match &decision.boot {
        IpxeBoot::Menu {
            items,
            default,
            timeout,
        } => {
            let items: Vec<Shown> = items
                .iter()
                .map(|l| Shown::new(l, decision.step.as_ref(), report))
                .collect();
            context! { kind => "menu", items => Serde(items), default => *default, timeout }
        }
        IpxeBoot::Item(item) => {
            let item = Shown::new(item, decision.step.as_ref(), report);
            context! { kind => "item", items => Serde([&item]), item => Serde(&item) }
        }
        IpxeBoot::Local => context! { kind => "local", items => () },
        IpxeBoot::Poweroff => context! { kind => "poweroff", items => () },
    };
    let ctx = context! { base, machine => Serde(machine), platform => platform.name(), boot, why => decision.why };
    t.render(templates::MACHINE, ctx)
}

/// What the policy decided for a per-machine script, for the request's log line.
#[derive(Debug, Clone, Copy)]
pub(super) struct Decision(pub &'static str);

/// A rendered script as a response; a template error is logged with its file and line.
fn script(name: &str, rendered: Result<String, minijinja::Error>) -> Response {
    match rendered {
        Ok(text) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                // Decisions change with the config: never reuse an old script.
                (header::CACHE_CONTROL, "no-store"),
            ],
            text,
        )
            .into_response(),
        Err(e) => {
            error!(template = name, error = %e, "cannot render iPXE script");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

pub(super) async fn entry(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Response {
    let base = base_url(&headers, peer.local);
    script(templates::ENTRY, entry_script(&st.templates, &base))
}

/// The per-machine script. It follows the machine's next action, and records what iPXE
/// said about the machine. When it can boot the burn-in item (straight away or from its
/// menu), it gets a new token, on disk before the script is sent: minting here rather than
/// behind a second URL for the menu entry keeps one round trip and one place where tokens
/// are made, and a token the operator's menu choice leaves unused costs nothing.
pub(super) async fn machine(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let (machine, mac) = Machine::from_query(uri.query().unwrap_or(""));
    if let Some(m) = mac {
        st.timeline.learn(peer.remote.ip(), m);
    }
    let base = base_url(&headers, peer.local);
    let platform = Platform::from_ipxe(&machine.platform);
    let next = mac.and_then(|m| st.machines.next_of(m));
    let decision = st.policy.ipxe(mac, platform, next.as_ref());
    let why = decision.why;
    let mut report = None;
    if let Some(m) = mac {
        let mint = decision.can_boot(BURNIN_ITEM);
        let facts = machine.clone();
        let update = move |r: &mut crate::machines::Record| {
            r.uuid = facts.uuid;
            r.serial = facts.serial;
            r.manufacturer = facts.manufacturer;
            r.product = facts.product;
            r.platform = facts.platform;
            r.buildarch = facts.buildarch;
        };
        match st.machines.script_served(m, update, mint).await {
            Ok(token) => report = token.map(|t| report_args(&base, m, &t)),
            Err(e) => {
                error!(mac = %machine.mac, error = %e, "burn-in token not stored; script withheld");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "machine record not stored\n",
                )
                    .into_response();
            }
        }
    } else if decision.can_boot(BURNIN_ITEM) {
        warn!(client = %peer.remote.ip(), "script without a MAC: its burn-in cannot report back");
    }
    let rendered = machine_script(
        &st.templates,
        &base,
        &machine,
        platform,
        &decision,
        report.as_deref(),
    );
    // The request line (info) names the client, its MAC and this decision; the rest of
    // what iPXE said about the machine is here for debugging.
    debug!(
        client = %peer.remote.ip(),
        mac = %if machine.mac.is_empty() { "-" } else { &machine.mac },
        platform = machine.platform,
        buildarch = machine.buildarch,
        uuid = machine.uuid,
        serial = machine.serial,
        manufacturer = machine.manufacturer,
        product = machine.product,
        decision = why,
        "per-machine script"
    );
    st.stage(
        peer.remote.ip(),
        Stage::Script,
        format!("{} on {}", why, platform.name()),
    );
    let mut res = script(templates::MACHINE, rendered);
    res.extensions_mut().insert(Decision(why));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Checks, parse};
    use crate::policy::Policy;
    use std::collections::HashSet;
    use std::path::Path;

    const CONFIG: &str = r#"interface = "lo"

[http]
listen = ["[fd00:1::1]:8080"]
root = "http"

[menu]
default = "memtest"
timeout = 5

[[menu.item]]
id = "memtest"
title = "Memtest86+"
bios = "memtest86+x64.bin"
efi = "memtest86+x64.efi"
args = "console=ttyS0,115200"

[[menu.item]]
id = "odd"
title = "Burn-in \"quick\" 'n' ${net0/mac} #2 ; reboot || shell"
kernel = "burn in/vmlinuz"
initrd = "burn in/initrd.img"
args = "quiet ip=${net0/ip}"

[[menu.item]]
id = "dos"
title = "DOS flash tool"
bios = "dos/flash.bin"

[[menu.item]]
id = "burnin"
title = "CPU burn-in"
kernel = "burnin/vmlinuz"
initrd = "burnin/initrd.img"
args = "console=ttyS0,115200 sixboot.duration=20"

[[host]]
mac = "52:54:00:00:00:01"
boot = "memtest"

[[host]]
mac = "52:54:00:00:00:02"
boot = "local"
"#;

    const BASE: &str = "http://[fd00:1::1]:8080";

    fn policy() -> Policy {
        Policy::new(&parse(CONFIG, "x.toml", Path::new("."), Checks::FileOnly).unwrap())
    }

    /// Renders the per-machine script for the URL query iPXE would send, with the
    /// machine's API-set next action and burn-in token.
    fn render_with(query: &str, next: Option<&str>, token: Option<&str>) -> String {
        let (m, mac) = Machine::from_query(query);
        let policy = policy();
        let platform = Platform::from_ipxe(&m.platform);
        let next = next.map(crate::pipeline::Action::from_name);
        let decision = policy.ipxe(mac, platform, next.as_ref());
        let report = token.map(|t| report_args(BASE, mac.unwrap(), t));
        machine_script(
            &Templates::new(None),
            BASE,
            &m,
            platform,
            &decision,
            report.as_deref(),
        )
        .unwrap()
    }

    fn render(query: &str) -> String {
        render_with(query, None, None)
    }

    /// Compares with `tests/golden/NAME`; `UPDATE_GOLDEN=1` rewrites the file instead.
    fn golden(name: &str, got: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, got).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        assert_eq!(got, want, "{name} differs from the golden file");
    }

    /// What would break the script when iPXE reads it, line by line as iPXE does: it
    /// splits on whitespace with no quoting, ends a line at a word starting with `#`,
    /// runs `||`, `&&` and `;` as separators and expands every `${...}`.
    fn ipxe_hazards(script: &str, expansions: &[&str]) -> Vec<String> {
        let labels: HashSet<&str> = script.lines().filter_map(|l| l.strip_prefix(':')).collect();
        let mut found = Vec::new();
        for (n, line) in script.lines().enumerate().skip(1) {
            let words: Vec<&str> = line.split_whitespace().collect();
            if line.trim_start().starts_with('#') || line.starts_with(':') || words.is_empty() {
                continue;
            }
            let mut rest = line;
            while let Some(at) = rest.find("${") {
                let name = &rest[at + 2..rest[at..].find('}').map_or(rest.len(), |e| at + e)];
                if !expansions.contains(&name) {
                    found.push(format!("line {}: expands ${{{name}}}", n + 1));
                }
                rest = &rest[at + 2..];
            }
            for (i, w) in words.iter().enumerate() {
                let next = words.get(i + 1..).unwrap_or_default();
                match *w {
                    "||" => match next {
                        ["goto", label] if labels.contains(label) => {}
                        other => found.push(format!("line {}: `|| {}`", n + 1, other.join(" "))),
                    },
                    ";" | "&&" => found.push(format!("line {}: separator `{w}`", n + 1)),
                    w if w.starts_with('#') => found.push(format!("line {}: comment `{w}`", n + 1)),
                    _ => {}
                }
            }
            if let ["goto", label] = words.as_slice()
                && !label.starts_with("${")
                && !labels.contains(label)
            {
                found.push(format!("line {}: no label {label}", n + 1));
            }
        }
        found
    }

    /// `${selected}` is the menu's own choice; kernel args are iPXE syntax on purpose.
    const OURS: &[&str] = &["selected", "net0/ip"];

    /// Renders the script for `query`, checks that iPXE would read it as meant, and
    /// compares it with its golden file.
    fn golden_script(name: &str, query: &str) -> String {
        let s = render(query);
        assert_eq!(ipxe_hazards(&s, OURS), Vec::<String>::new(), "{s}");
        golden(name, &s);
        s
    }

    #[test]
    fn golden_pcbios_menu() {
        golden_script(
            "machine-pcbios-menu.ipxe",
            "mac=52-54-00-12-34-56&platform=pcbios&buildarch=i386&uuid=a1b2c3d4-0000-1111-2222-333344445555&serial=SN%20%2242%22&manufacturer=QEMU&product=Standard%20PC%20(i440FX%20%2B%20PIIX%2C%201996)",
        );
    }

    #[test]
    fn golden_efi_menu_with_missing_smbios_fields() {
        // iPXE sends every key; SMBIOS fields it lacks arrive empty.
        let s = golden_script(
            "machine-efi-menu-missing-smbios.ipxe",
            "mac=52-54-00-12-34-57&platform=efi&buildarch=x86_64&uuid=&serial=&manufacturer=&product=",
        );
        assert!(
            !s.contains("dos/flash.bin"),
            "a BIOS-only item is hidden on efi"
        );
    }

    #[test]
    fn golden_efi_host_pinned_to_an_item() {
        let s = golden_script(
            "machine-efi-host-pinned.ipxe",
            "mac=52-54-00-00-00-01&platform=efi&buildarch=x86_64",
        );
        assert!(!s.contains("\nchoose"), "a pinned host gets no menu");
    }

    #[test]
    fn golden_pcbios_host_pinned_to_local_disk() {
        golden_script(
            "machine-pcbios-host-local.ipxe",
            "mac=52-54-00-00-00-02&platform=pcbios",
        );
    }

    #[test]
    fn golden_burnin_next_action_carries_report_url_and_token() {
        let q = "mac=52-54-00-12-34-56&platform=efi&buildarch=x86_64";
        let token = "0123456789abcdef0123456789abcdef";
        let s = render_with(q, Some("burnin"), Some(token));
        assert_eq!(ipxe_hazards(&s, OURS), Vec::<String>::new(), "{s}");
        golden("machine-efi-next-burnin.ipxe", &s);
        // The item's own sixboot.duration is the step's length (no [steps] here).
        assert!(s.contains(&format!(
            "kernel {BASE}/burnin/vmlinuz initrd=initrd.img console=ttyS0,115200 sixboot.step=burnin sixboot.duration=20 sixboot.read_bytes=1073741824 sixboot.self_test=1 sixboot.report={BASE}/api/v1/machines/52:54:00:12:34:56/report sixboot.token={token} || goto failed"
        )), "{s}");
        let inventory = render_with(q, Some("inventory"), Some(token));
        assert!(inventory.contains(" console=ttyS0,115200 sixboot.step=inventory sixboot.duration=10 sixboot.read_bytes=67108864 sixboot.self_test=0 sixboot.report="), "{inventory}");
        let off = render_with(q, Some("poweroff"), None);
        assert!(off.contains("\npoweroff || goto local\n"), "{off}");
        // From the menu, only the burn-in entry gets them.
        let menu = render_with(q, Some("menu"), Some(token));
        assert_eq!(menu.matches("sixboot.token=").count(), 1, "{menu}");
        assert!(menu.contains("\nchoose "), "{menu}");
        // `local` boots the disk with no menu; the API's choice beats the host pin.
        let local = render_with("mac=52-54-00-00-00-01&platform=pcbios", Some("local"), None);
        assert!(
            local.contains("\ngoto local\n") && !local.contains("\nchoose"),
            "{local}"
        );
    }

    #[test]
    fn golden_entry_script() {
        let s = entry_script(&Templates::new(None), BASE).unwrap();
        let vars = [
            "mac:hexhyp",
            "platform:uristring",
            "buildarch:uristring",
            "uuid",
            "serial:uristring",
            "manufacturer:uristring",
            "product:uristring",
        ];
        assert_eq!(ipxe_hazards(&s, &vars), Vec::<String>::new(), "{s}");
        golden("boot.ipxe", &s);
    }

    #[test]
    fn hostile_machine_values_stay_on_their_line() {
        let s = render(
            "mac=zz&platform=pcbios&manufacturer=%0Areboot%0A&product=%24%7Bnet0%2Fmac%7D&serial=%23x%20%3B%20shell",
        );
        assert_eq!(ipxe_hazards(&s, OURS), Vec::<String>::new(), "{s}");
        let commands: Vec<&str> = s.lines().map(str::trim).collect();
        assert_eq!(
            commands.iter().filter(|l| **l == "reboot").count(),
            1,
            "only the built-in reboot entry runs reboot: {s}"
        );
        assert!(s.contains("# sixboot: no MAC, pcbios"), "{s}");
    }

    #[test]
    fn queries_are_read_leniently() {
        let (m, mac) = Machine::from_query("mac=52-54-00-AB-cd-01&serial=a+b%2Bc%zz&junk&=x");
        assert_eq!(mac, Some([0x52, 0x54, 0, 0xab, 0xcd, 1]));
        assert_eq!(
            (m.mac.as_str(), m.serial.as_str()),
            ("52:54:00:ab:cd:01", "a+b+c%zz")
        );
        let long = format!("serial={}", "é".repeat(300));
        assert!(Machine::from_query(&long).0.serial.len() <= MAX_VALUE);
        assert_eq!(Machine::from_query("").0, Machine::default());
    }

    #[test]
    fn urls_use_the_host_the_client_asked_for() {
        let local: SocketAddr = "[fd00:1::1]:8080".parse().unwrap();
        let with = |h: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, h.parse().unwrap());
            base_url(&m, local)
        };
        assert_eq!(with("[fd00:1::1]:8080"), "http://[fd00:1::1]:8080");
        assert_eq!(with("boot.example:80"), "http://boot.example:80");
        assert_eq!(with("x${y}"), "http://[fd00:1::1]:8080");
        assert_eq!(with("a b"), "http://[fd00:1::1]:8080");
        assert_eq!(
            base_url(&HeaderMap::new(), local),
            "http://[fd00:1::1]:8080"
        );
    }
}
