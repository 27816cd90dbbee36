//! The schema walk: reads every contract key, checks values and cross-references (pool in
//! subnet, boot files present, menu default names an item), and returns either a [`Config`]
//! or every problem found.

use super::reader::{Problems, Reader, Spanned, Table};
use super::*;
use std::path::Path;
use toml_edit::{ImDocument, Item};

/// Which checks look outside the file. `explain` runs without them, so it works on a
/// machine that lacks the interface or the boot files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// Also check that the interface exists and that roots and boot files are present.
    System,
    /// Only the file itself.
    FileOnly,
}

/// Reads and checks a config file.
pub fn load(path: &Path, checks: Checks) -> Result<Config, Problems> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Problems {
        file: file.clone(),
        source: String::new(),
        list: vec![super::Problem {
            span: 0..0,
            message: format!("cannot read config: {e}"),
        }],
    })?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parse(&text, &file, base, checks)
}

/// Checks config text; `base` is the folder relative paths resolve against.
pub fn parse(text: &str, file: &str, base: &Path, checks: Checks) -> Result<Config, Problems> {
    let fail = |list| Problems {
        file: file.to_string(),
        source: text.to_string(),
        list,
    };
    let doc = ImDocument::parse(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let msg = e.message().trim().to_string();
        fail(vec![super::Problem {
            span,
            message: format!("TOML syntax: {msg}"),
        }])
    })?;
    let mut r = Reader::default();
    let root_item = Item::Table(doc.as_table().clone());
    let cfg = {
        let mut top = r
            .table("", &root_item, 0..0)
            .expect("document root is a table");
        let cfg = walk(&mut r, &mut top, base, checks);
        r.finish(top);
        cfg
    };
    match cfg {
        Some(mut c) if r.problems.is_empty() => {
            c.warnings = fail(std::mem::take(&mut r.warnings)).lines();
            Ok(c)
        }
        _ => {
            r.problems.sort_by_key(|p| p.span.start);
            Err(fail(r.problems))
        }
    }
}

fn walk(r: &mut Reader, top: &mut Table, base: &Path, checks: Checks) -> Option<Config> {
    let interface = r.string(top, "interface");
    if interface.is_none() && !top.has("interface") {
        r.problem(
            0..0,
            "missing key `interface`: the network interface to serve on",
        );
    }
    if let (Some(i), Checks::System) = (&interface, checks)
        && nix::net::if_::if_nametoindex(i.value.as_str()).is_err()
    {
        r.problem(
            i.span.clone(),
            format!("interface `{}` does not exist", i.value),
        );
    }
    let state_dir = r
        .string(top, "state_dir")
        .map_or_else(|| base.join("state"), |s| base.join(s.value));

    let tftp = r.sub(top, "tftp").map(|t| tftp(r, t, base, checks));
    let boot = r
        .sub(top, "boot")
        .map(|t| boot(r, t, tftp.as_ref(), checks))
        .unwrap_or_default();
    let dhcp4 = r.sub(top, "dhcp4").and_then(|t| dhcp4(r, t));
    let ipv6 = r.sub(top, "ipv6").and_then(|t| ipv6(r, t));
    let http = r.sub(top, "http").and_then(|t| http(r, t, base, checks));
    let menu = menu(r, top, http.as_ref(), checks);
    let hosts = r
        .tables(top, "host")
        .into_iter()
        .filter_map(|t| host(r, t, &menu))
        .collect();
    let api = r.sub(top, "api").map(|mut t| {
        let admin_token = r.string(&mut t, "admin_token");
        if let Some(tok) = admin_token.as_ref().filter(|s| s.value.trim().is_empty()) {
            r.problem(
                tok.span.clone(),
                "api.admin_token is empty; leave it out to disable the API's changes",
            );
        }
        let admin_token = admin_token.map(|s| s.value);
        r.finish(t);
        Api { admin_token }
    });
    let steps_table = r.sub(top, "steps");
    let steps = steps(r, steps_table, &menu);
    let verdict = r
        .sub(top, "verdict")
        .map(|t| verdict(r, t))
        .unwrap_or_default();
    let mut batches: Vec<Batch> = Vec::new();
    for t in r.tables(top, "batch") {
        if let Some(b) = batch(r, t, &batches) {
            batches.push(b);
        }
    }

    Some(Config {
        interface: interface?.value,
        state_dir,
        dhcp4,
        boot,
        tftp,
        ipv6,
        http,
        menu,
        hosts,
        api: api.unwrap_or_default(),
        steps,
        verdict,
        batches,
        warnings: Vec::new(),
    })
}

fn dhcp4(r: &mut Reader, mut t: Table) -> Option<Dhcp4> {
    let subnet = r.parsed::<ipnet::Ipv4Net>(&mut t, "subnet", "an IPv4 subnet like 192.168.1.0/24");
    let pool = pool::<Ipv4Addr>(r, &mut t, "IPv4");
    let lease_time = r
        .int(&mut t, "lease_time", 60..(u32::MAX as i64))
        .map_or(600, |v| v.value as u32);
    let max = r.int(&mut t, "max_lease_time", 60..(u32::MAX as i64));
    let next_server = r.parsed::<Ipv4Addr>(&mut t, "next_server", "an IPv4 address");
    let router = r.parsed::<Ipv4Addr>(&mut t, "router", "an IPv4 address");
    let dns = r.parsed_list::<Ipv4Addr>(&mut t, "dns", "an IPv4 address");
    let decline_time = r
        .int(&mut t, "decline_time", 0..(u32::MAX as i64))
        .map_or(3600, |v| v.value as u32);
    let max_lease_time = match max {
        Some(m) if (m.value as u32) < lease_time => {
            r.problem(
                m.span,
                format!(
                    "dhcp4.max_lease_time ({}) is shorter than lease_time ({lease_time})",
                    m.value
                ),
            );
            lease_time
        }
        Some(m) => m.value as u32,
        None => lease_time.max(7200),
    };
    if subnet.is_none() && !t.has("subnet") {
        r.problem(t.span.clone(), "[dhcp4] needs `subnet`");
    }
    r.finish(t);
    let subnet = subnet?;
    let net = subnet.value.trunc();
    let pool = pool?;
    for a in [&pool.0, &pool.1] {
        if !net.contains(&a.value) {
            r.problem(
                a.span.clone(),
                format!("pool address {} is outside subnet {net}", a.value),
            );
        } else if a.value == net.network() || a.value == net.broadcast() {
            r.problem(
                a.span.clone(),
                format!(
                    "pool address {} is the network or broadcast address of {net}",
                    a.value
                ),
            );
        }
    }
    for a in next_server.iter().chain(router.iter()) {
        if a.value.is_unspecified() || a.value.is_broadcast() || a.value.is_multicast() {
            r.problem(
                a.span.clone(),
                format!("{} cannot be used as a server address", a.value),
            );
        }
    }
    Some(Dhcp4 {
        subnet: net,
        pool: (pool.0.value, pool.1.value),
        lease_time,
        max_lease_time,
        next_server: next_server.map(|s| s.value),
        router: router.map(|s| s.value),
        dns: dns
            .map(|l| l.value.into_iter().map(|s| s.value).collect())
            .unwrap_or_default(),
        decline_time,
    })
}

/// Reads `pool = [first, last]`, checking the order; the caller checks the range.
fn pool<A: std::str::FromStr + PartialOrd + Copy + std::fmt::Display>(
    r: &mut Reader,
    t: &mut Table,
    family: &str,
) -> Option<(Spanned<A>, Spanned<A>)> {
    let list = r.parsed_list::<A>(t, "pool", &format!("an {family} address"));
    let Some(list) = list else {
        if !t.has("pool") {
            r.problem(
                t.span.clone(),
                format!("{} needs `pool = [first, last]`", t.name),
            );
        }
        return None;
    };
    let mut v = list.value.into_iter();
    match (v.next(), v.next(), v.next()) {
        (Some(a), Some(b), None) if a.value <= b.value => Some((a, b)),
        (Some(a), Some(b), None) => {
            r.problem(
                b.span,
                format!("pool ends ({}) before it starts ({})", b.value, a.value),
            );
            None
        }
        _ => {
            r.problem(
                list.span,
                "pool must be [first, last]: exactly two addresses",
            );
            None
        }
    }
}

fn boot(r: &mut Reader, mut t: Table, tftp: Option<&Tftp>, checks: Checks) -> Boot {
    let mut file = |r: &mut Reader, key| {
        let s = r.string(&mut t, key)?;
        if relative_inside(&s.value).is_none() {
            r.problem(
                s.span.clone(),
                format!(
                    "boot.{key}: `{}` must be a relative path inside the tftp root",
                    s.value
                ),
            );
            return None;
        }
        match (tftp, checks) {
            (None, _) => r.problem(
                s.span.clone(),
                format!("boot.{key} is set but there is no [tftp] root to serve it from"),
            ),
            (Some(tf), Checks::System) if !tf.root.join(&s.value).is_file() => r.problem(
                s.span.clone(),
                format!(
                    "boot.{key}: `{}` is missing from the tftp root {}",
                    s.value,
                    tf.root.display()
                ),
            ),
            _ => {}
        }
        Some(s.value)
    };
    let boot = Boot {
        bios: file(r, "bios"),
        uefi_x64: file(r, "uefi_x64"),
        uefi_ia32: file(r, "uefi_ia32"),
        uefi_arm64: file(r, "uefi_arm64"),
    };
    r.finish(t);
    boot
}

fn tftp(r: &mut Reader, mut t: Table, base: &Path, checks: Checks) -> Tftp {
    let root = dir(r, &mut t, "root", base, checks).unwrap_or_else(|| base.join("tftp"));
    let max_transfers = r
        .int(&mut t, "max_transfers", 1..100_000)
        .map_or(512, |v| v.value as usize);
    let max_per_client = r
        .int(&mut t, "max_per_client", 1..1000)
        .map_or(8, |v| v.value as usize);
    r.finish(t);
    Tftp {
        root,
        max_transfers,
        max_per_client,
    }
}

/// A served folder key, resolved against `base`. With system checks it must exist and be
/// writable by nobody but root and sixboot (see [`super::roots`]); that sixboot itself can
/// write it is a warning.
fn dir(
    r: &mut Reader,
    t: &mut Table,
    key: &'static str,
    base: &Path,
    checks: Checks,
) -> Option<PathBuf> {
    let s = r.string(t, key)?;
    let p = base.join(&s.value);
    let name = format!("{}.{key}", t.name.trim_matches(['[', ']']));
    if checks == Checks::System {
        if !p.is_dir() {
            r.problem(
                s.span,
                format!("{name}: folder {} does not exist", p.display()),
            );
        } else if let Some(why) = roots::writable_by_others(&p) {
            r.problem(
                s.span,
                format!(
                    "{name}: refusing to serve {}: {why}; whoever can write it decides what \
                     machines boot",
                    p.display()
                ),
            );
        } else if roots::writable_by_self(&p) {
            r.warning(
                s.span,
                format!(
                    "{name}: sixboot can write {}; serve it read-only (run as a user that \
                     does not own it, see dist/sixboot.service)",
                    p.display()
                ),
            );
        }
    }
    Some(p)
}

fn ipv6(r: &mut Reader, mut t: Table) -> Option<Ipv6> {
    let prefix = r.parsed::<ipnet::Ipv6Net>(&mut t, "prefix", "an IPv6 prefix like fd00:1::/64");
    let router_advertisements = r.bool(&mut t, "router_advertisements").unwrap_or(true);
    let autonomous = r.bool(&mut t, "autonomous").unwrap_or(false);
    let router_lifetime = r
        .int(&mut t, "router_lifetime", 0..9001)
        .map_or(0, |v| v.value as u16);
    let pool = pool::<Ipv6Addr>(r, &mut t, "IPv6");
    let dns = r.parsed_list::<Ipv6Addr>(&mut t, "dns", "an IPv6 address");
    let lease_time = r
        .int(&mut t, "lease_time", 60..(u32::MAX as i64))
        .map_or(3600, |v| v.value as u32);
    let preference = r
        .int(&mut t, "preference", 0..256)
        .map_or(255, |v| v.value as u8);
    if prefix.is_none() && !t.has("prefix") {
        r.problem(t.span.clone(), "[ipv6] needs `prefix`");
    }
    r.finish(t);
    let prefix = prefix?.value.trunc();
    let pool = pool?;
    for a in [&pool.0, &pool.1] {
        if !prefix.contains(&a.value) {
            r.problem(
                a.span.clone(),
                format!("pool address {} is outside prefix {prefix}", a.value),
            );
        }
    }
    Some(Ipv6 {
        prefix,
        router_advertisements,
        autonomous,
        router_lifetime,
        pool: (pool.0.value, pool.1.value),
        dns: dns
            .map(|l| l.value.into_iter().map(|s| s.value).collect())
            .unwrap_or_default(),
        lease_time,
        preference,
    })
}

fn http(r: &mut Reader, mut t: Table, base: &Path, checks: Checks) -> Option<Http> {
    let listen = r.parsed_list::<SocketAddr>(
        &mut t,
        "listen",
        "an address with port like \"[fd00:1::1]:8080\"",
    );
    let root = dir(r, &mut t, "root", base, checks).unwrap_or_else(|| base.join("http"));
    let templates = dir(r, &mut t, "templates", base, checks);
    let max_connections = r
        .int(&mut t, "max_connections", 1..1_000_001)
        .map_or(1024, |v| v.value as usize);
    let request_timeout = r
        .int(&mut t, "request_timeout", 1..3601)
        .map_or(10, |v| v.value as u64);
    let send_timeout = r
        .int(&mut t, "send_timeout", 1..3601)
        .map_or(60, |v| v.value as u64);
    let listen: Vec<SocketAddr> = listen
        .map(|l| l.value.into_iter().map(|s| s.value).collect())
        .unwrap_or_default();
    if listen.is_empty() {
        r.problem(
            t.span.clone(),
            "[http] needs `listen = [\"[addr]:port\", ...]` with at least one address",
        );
    }
    r.finish(t);
    Some(Http {
        listen,
        root,
        templates,
        max_connections,
        request_timeout: std::time::Duration::from_secs(request_timeout),
        send_timeout: std::time::Duration::from_secs(send_timeout),
    })
}

fn menu(r: &mut Reader, top: &mut Table, http: Option<&Http>, checks: Checks) -> Menu {
    let Some(mut t) = r.sub(top, "menu") else {
        return Menu {
            timeout: 5,
            ..Menu::default()
        };
    };
    let default = r.string(&mut t, "default");
    let timeout = r
        .int(&mut t, "timeout", 0..86_400)
        .map_or(5, |v| v.value as u32);
    let mut items: Vec<MenuItem> = Vec::new();
    for mut it in r.tables(&mut t, "item") {
        let id = r.string(&mut it, "id");
        let title = r.string(&mut it, "title");
        let mut file = |r: &mut Reader, key| {
            let s = r.string(&mut it, key)?;
            if relative_inside(&s.value).is_none() {
                r.problem(
                    s.span.clone(),
                    format!(
                        "menu.item.{key}: `{}` must be a relative path inside the http root",
                        s.value
                    ),
                );
            } else if let (Some(h), Checks::System) = (http, checks)
                && !h.root.join(&s.value).is_file()
            {
                r.problem(
                    s.span.clone(),
                    format!(
                        "menu.item.{key}: `{}` is missing from the http root {}",
                        s.value,
                        h.root.display()
                    ),
                );
            }
            Some(s.value)
        };
        let (bios, efi, kernel, initrd) = (
            file(r, "bios"),
            file(r, "efi"),
            file(r, "kernel"),
            file(r, "initrd"),
        );
        let args = r.string(&mut it, "args").map(|s| s.value);
        match &id {
            None => r.problem(it.span.clone(), "menu item needs `id`"),
            Some(i) if !valid_id(&i.value) => r.problem(
                i.span.clone(),
                format!(
                    "menu item id `{}` must be letters, digits, `-` or `_`",
                    i.value
                ),
            ),
            Some(i) if ["local", "menu", "shell", "reboot"].contains(&i.value.as_str()) => r
                .problem(
                    i.span.clone(),
                    format!(
                        "menu item id `{}` is reserved for a built-in entry",
                        i.value
                    ),
                ),
            Some(i) if items.iter().any(|x| x.id == i.value) => r.problem(
                i.span.clone(),
                format!("menu item id `{}` is used twice", i.value),
            ),
            _ => {}
        }
        if bios.is_none() && efi.is_none() && kernel.is_none() {
            r.problem(
                it.span.clone(),
                "menu item needs at least one of `bios`, `efi` or `kernel`",
            );
        }
        if http.is_none() {
            r.problem(
                it.span.clone(),
                "menu items need an [http] table to be served from",
            );
        }
        r.finish(it);
        if let Some(id) = id {
            let title = title.map_or_else(|| id.value.clone(), |t| t.value);
            items.push(MenuItem {
                id: id.value,
                title,
                bios,
                efi,
                kernel,
                initrd,
                args,
            });
        }
    }
    if let Some(d) = &default
        && !items.iter().any(|i| i.id == d.value)
        && !["local", "shell"].contains(&d.value.as_str())
    {
        r.problem(
            d.span.clone(),
            format!("menu.default `{}` names no menu item", d.value),
        );
    }
    r.finish(t);
    Menu {
        default: default.map(|d| d.value),
        timeout,
        items,
    }
}

fn host(r: &mut Reader, mut t: Table, menu: &Menu) -> Option<Host> {
    let mac = r.string(&mut t, "mac");
    let boot = r.string(&mut t, "boot");
    if let Some(b) = &boot
        && !menu.items.iter().any(|i| i.id == b.value)
        && !["local", "menu"].contains(&b.value.as_str())
    {
        r.problem(
            b.span.clone(),
            format!(
                "host.boot `{}` names no menu item (or `local`, `menu`)",
                b.value
            ),
        );
    }
    if mac.is_none() && !t.has("mac") {
        r.problem(t.span.clone(), "[[host]] needs `mac`");
    }
    r.finish(t);
    let mac = mac?;
    match crate::mac::parse(&mac.value) {
        Some(m) => Some(Host {
            mac: m,
            boot: boot.map(|b| b.value),
        }),
        None => {
            r.problem(
                mac.span,
                format!(
                    "`{}` is not a MAC address like 52:54:00:12:34:56",
                    mac.value
                ),
            );
            None
        }
    }
}

/// `[steps]`, or its defaults. `burnin_seconds` defaults to the `sixboot.duration=` in the
/// burn-in item's args when there is one, so a config written before steps existed keeps
/// its burn-in length.
fn steps(r: &mut Reader, t: Option<Table>, menu: &Menu) -> Steps {
    let mut d = Steps::default();
    if let Some(n) = menu
        .items
        .iter()
        .find(|i| i.id == crate::pipeline::BURNIN_ITEM)
        .and_then(|i| i.args.as_deref())
        .and_then(|a| {
            a.split_whitespace()
                .find_map(|w| w.strip_prefix("sixboot.duration="))
        })
        .and_then(|n| n.parse().ok())
    {
        d.burnin_seconds = n;
    }
    let Some(mut t) = t else {
        return d;
    };
    let secs = |r: &mut Reader, t: &mut Table, key, range: std::ops::Range<i64>, def: u32| {
        r.int(t, key, range).map_or(def, |v| v.value as u32)
    };
    let inventory_seconds = secs(r, &mut t, "inventory_seconds", 1..3601, d.inventory_seconds);
    let burnin_seconds = secs(
        r,
        &mut t,
        "burnin_seconds",
        10..7 * 86_400 + 1,
        d.burnin_seconds,
    );
    let read_bytes = r
        .int(&mut t, "read_bytes", 0..(1 << 50) + 1)
        .map_or(d.read_bytes, |v| v.value as u64);
    let self_test = r.bool(&mut t, "self_test").unwrap_or(d.self_test);
    let pipeline = r
        .parsed_list::<String>(&mut t, "pipeline", "a step name")
        .and_then(|l| {
            let names: Vec<&str> = l.value.iter().map(|s| s.value.as_str()).collect();
            let items: Vec<&str> = menu.items.iter().map(|i| i.id.as_str()).collect();
            crate::pipeline::Pipeline::parse(&names, &items)
                .map_err(|e| r.problem(l.span.clone(), format!("steps.pipeline: {e}")))
                .ok()
        });
    r.finish(t);
    Steps {
        inventory_seconds,
        burnin_seconds,
        read_bytes,
        self_test,
        pipeline,
    }
}

fn verdict(r: &mut Reader, mut t: Table) -> crate::verdict::Thresholds {
    let d = crate::verdict::Thresholds::default();
    let mut count = |r: &mut Reader, key, def: u64| {
        r.int(&mut t, key, 0..(1 << 32))
            .map_or(def, |v| v.value as u64)
    };
    let th = crate::verdict::Thresholds {
        disk_reallocated_max: count(r, "disk_reallocated_max", d.disk_reallocated_max),
        disk_pending_max: count(r, "disk_pending_max", d.disk_pending_max),
        disk_media_errors_max: count(r, "disk_media_errors_max", d.disk_media_errors_max),
        memory_corrected_max: count(r, "memory_corrected_max", d.memory_corrected_max),
        cpu_throttle_max: count(r, "cpu_throttle_max", d.cpu_throttle_max),
        disk_percentage_used_max: r
            .int(&mut t, "disk_percentage_used_max", 0..256)
            .map_or(d.disk_percentage_used_max, |v| v.value as u16),
        disk_temperature_max_c: r
            .int(&mut t, "disk_temperature_max_c", 0..201)
            .map_or(d.disk_temperature_max_c, |v| v.value as i32),
        disk_read_min_mb_s: r
            .int(&mut t, "disk_read_min_mb_s", 0..100_001)
            .map_or(d.disk_read_min_mb_s, |v| v.value as f64),
        nic_min_speed_mbps: r
            .int(&mut t, "nic_min_speed_mbps", 0..10_000_001)
            .map_or(d.nic_min_speed_mbps, |v| v.value as u32),
    };
    r.finish(t);
    th
}

fn batch(r: &mut Reader, mut t: Table, before: &[Batch]) -> Option<Batch> {
    let name = r.string(&mut t, "name");
    let macs = r
        .parsed_list::<crate::mac::MacText>(&mut t, "macs", "a MAC address like 52:54:00:12:34:56")
        .map_or_else(Vec::new, |l| {
            l.value.into_iter().map(|m| m.value.0).collect()
        });
    let mut spec = crate::verdict::Spec {
        cpu_model: r.string(&mut t, "cpu_model").map(|s| s.value),
        ..Default::default()
    };
    spec.cpus = r.int(&mut t, "cpus", 1..65).map(|v| v.value as u32);
    spec.memory_bytes = r
        .int(&mut t, "memory_bytes", (1 << 20)..(1 << 56) + 1)
        .map(|v| v.value as u64);
    spec.disks = r.int(&mut t, "disks", 0..1025).map(|v| v.value as u32);
    spec.disk_min_bytes = r
        .int(&mut t, "disk_min_bytes", 0..(1 << 56) + 1)
        .map(|v| v.value as u64);
    if let Err(e) = spec.check() {
        r.problem(t.span.clone(), format!("[[batch]] {e}"));
    }
    if name.is_none() && !t.has("name") {
        r.problem(t.span.clone(), "[[batch]] needs `name`");
    }
    r.finish(t);
    let name = name?;
    if !valid_id(&name.value) {
        r.problem(
            name.span,
            format!(
                "batch name `{}` must be letters, digits, `-` or `_`",
                name.value
            ),
        );
        return None;
    }
    if before.iter().any(|b| b.name == name.value) {
        r.problem(
            name.span,
            format!("batch `{}` is defined twice", name.value),
        );
        return None;
    }
    Some(Batch {
        name: name.value,
        macs,
        spec,
    })
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `Some(path)` when `p` is relative and never climbs out of its root.
fn relative_inside(p: &str) -> Option<&Path> {
    let path = Path::new(p);
    let ok = !p.is_empty()
        && path.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
    ok.then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract example, with an interface every machine has.
    fn contract() -> String {
        include_str!("../../examples/sixboot.toml")
            .replace("interface = \"br0\"", "interface = \"lo\"")
    }

    fn errors(text: &str) -> String {
        parse(text, "x.toml", Path::new("/etc/sixboot"), Checks::FileOnly)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn contract_config_parses_with_paths_resolved() {
        let c = parse(
            &contract(),
            "x.toml",
            Path::new("/etc/sixboot"),
            Checks::FileOnly,
        )
        .unwrap();
        let d = c.dhcp4.unwrap();
        assert_eq!(
            d.pool,
            (
                Ipv4Addr::new(192, 168, 1, 10),
                Ipv4Addr::new(192, 168, 1, 254)
            )
        );
        assert_eq!((d.lease_time, d.max_lease_time), (600, 7200));
        assert_eq!(c.tftp.unwrap().root, Path::new("/etc/sixboot/tftp"));
        assert_eq!(c.state_dir, Path::new("/etc/sixboot/state"));
        assert_eq!(c.boot.uefi_x64.as_deref(), Some("snponly.efi"));
        assert_eq!(
            c.http.unwrap().listen,
            vec!["[fd00:1::1]:8080".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            c.menu.items[0].args.as_deref(),
            Some("console=ttyS0,115200")
        );
        assert_eq!(
            c.ipv6.unwrap().pool.1,
            "fd00:1::1ff".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn no_dhcp4_table_means_ipv6_only() {
        let text = contract().replace("[dhcp4]", "[unused]");
        // The rest of the dhcp4 keys now sit in an unknown table; drop it instead.
        let c = contract();
        let start = c.find("[dhcp4]").unwrap();
        let end = c.find("[boot]").unwrap();
        let v6only = format!("{}{}", &c[..start], &c[end..]);
        assert!(errors(&text).contains("unknown key `unused`"));
        let c = parse(&v6only, "x.toml", Path::new("."), Checks::FileOnly).unwrap();
        assert!(c.dhcp4.is_none());
    }

    #[test]
    fn every_problem_is_reported_with_line_and_column() {
        let text = contract()
            .replace("lease_time = 600", "lease_tme = 600")
            .replace("\"192.168.1.254\"", "\"192.168.2.5\"")
            .replace(
                "next_server = \"192.168.1.1\"",
                "next_server = \"192.168.1.300\"",
            );
        let out = errors(&text);
        assert!(
            out.contains("x.toml:9:1: unknown key `lease_tme` in [dhcp4]"),
            "{out}"
        );
        assert!(
            out.contains("x.toml:8:25: pool address 192.168.2.5 is outside subnet 192.168.1.0/24"),
            "{out}"
        );
        assert!(
            out.contains("x.toml:11:15: dhcp4.next_server: `192.168.1.300` is not an IPv4 address"),
            "{out}"
        );
        assert_eq!(out.lines().count(), 3, "{out}");
    }

    #[test]
    fn http_connection_limits_default_and_are_range_checked() {
        let h = parse(&contract(), "x.toml", Path::new("."), Checks::FileOnly)
            .unwrap()
            .http
            .unwrap();
        assert_eq!(h.max_connections, 1024);
        assert_eq!(h.request_timeout, std::time::Duration::from_secs(10));
        assert_eq!(h.send_timeout, std::time::Duration::from_secs(60));
        let set = contract().replace(
            "root = \"http\"",
            "root = \"http\"\nmax_connections = 16\nrequest_timeout = 3\nsend_timeout = 5",
        );
        let h = parse(&set, "x.toml", Path::new("."), Checks::FileOnly)
            .unwrap()
            .http
            .unwrap();
        assert_eq!(h.max_connections, 16);
        assert_eq!(h.request_timeout, std::time::Duration::from_secs(3));
        assert_eq!(h.send_timeout, std::time::Duration::from_secs(5));
        let bad = contract().replace(
            "root = \"http\"",
            "root = \"http\"\nmax_connections = 0\nrequest_timeout = \"5s\"\nsend_timeout = 0",
        );
        let out = errors(&bad);
        assert!(out.contains("max_connections = 0 is out of range"), "{out}");
        assert!(out.contains("request_timeout must be an integer"), "{out}");
        assert!(out.contains("send_timeout = 0 is out of range"), "{out}");
    }

    #[test]
    fn steps_verdict_and_batches_are_read_and_checked() {
        let c = parse(&contract(), "x.toml", Path::new("."), Checks::FileOnly).unwrap();
        assert_eq!(
            c.steps.burnin_seconds, 20,
            "the burnin item's sixboot.duration"
        );
        assert_eq!(c.steps.pipeline, None);
        assert_eq!(c.verdict, crate::verdict::Thresholds::default());
        let text = contract()
            + r#"
[steps]
pipeline = ["inventory", "burnin", "poweroff"]
burnin_seconds = 600
self_test = false

[verdict]
disk_percentage_used_max = 90

[[batch]]
name = "lot-7"
macs = ["52:54:00:12:34:56"]
memory_bytes = 2147483648
"#;
        let c = parse(&text, "x.toml", Path::new("."), Checks::FileOnly).unwrap();
        assert_eq!(
            c.steps.pipeline.unwrap().names(),
            ["inventory", "burnin", "poweroff"]
        );
        assert_eq!((c.steps.burnin_seconds, c.steps.self_test), (600, false));
        assert_eq!(c.verdict.disk_percentage_used_max, 90);
        assert_eq!(c.batches[0].macs, [[0x52, 0x54, 0, 0x12, 0x34, 0x56]]);
        assert_eq!(c.batches[0].spec.memory_bytes, Some(2 << 30));
        let bad = contract()
            + "\n[steps]\npipeline = [\"local\", \"burnin\"]\n\n[[batch]]\nname = \"a b\"\ncpus = 0\n";
        let out = errors(&bad);
        assert!(
            out.contains("steps.pipeline: `local` ends a pipeline"),
            "{out}"
        );
        assert!(
            out.contains("batch.cpus = 0 is out of range 1..=64"),
            "{out}"
        );
        assert!(out.contains("batch name `a b` must be letters"), "{out}");
    }

    #[test]
    fn syntax_errors_point_at_the_spot() {
        let out = errors("interface = \"br0\"\n[dhcp4\n");
        assert!(out.starts_with("x.toml:2:"), "{out}");
        assert!(out.contains("TOML syntax"), "{out}");
    }

    #[test]
    fn menu_cross_references_are_checked() {
        let text = contract().replace("default = \"memtest\"", "default = \"cpuburn\"")
            + "\n[[host]]\nmac = \"52:54:00:zz:34:56\"\n";
        let out = errors(&text);
        assert!(
            out.contains("menu.default `cpuburn` names no menu item"),
            "{out}"
        );
        assert!(out.contains("is not a MAC address"), "{out}");
    }

    #[test]
    fn an_empty_admin_token_is_refused() {
        let out = errors(&(contract() + "\n[api]\nadmin_token = \" \"\n"));
        assert!(out.contains("api.admin_token is empty"), "{out}");
        let c = parse(
            &(contract() + "\n[api]\nadmin_token = \"t0ken\"\n"),
            "x.toml",
            Path::new("."),
            Checks::FileOnly,
        )
        .unwrap();
        assert_eq!(c.api.admin_token.as_deref(), Some("t0ken"));
    }

    #[test]
    fn boot_paths_may_not_leave_the_root() {
        let out = errors(&contract().replace("\"undionly.kpxe\"", "\"../etc/passwd\""));
        assert!(
            out.contains("boot.bios: `../etc/passwd` must be a relative path"),
            "{out}"
        );
    }

    #[test]
    fn system_checks_refuse_roots_others_can_write_and_warn_about_own() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "tftp/undionly.kpxe",
            "tftp/snponly.efi",
            "http/memtest86+x64.bin",
            "http/burnin/vmlinuz",
            "http/burnin/initrd.img",
        ] {
            std::fs::create_dir_all(dir.path().join(f).parent().unwrap()).unwrap();
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        std::fs::write(dir.path().join("http/memtest86+x64.efi"), b"x").unwrap();
        let cfg = parse(&contract(), "x.toml", dir.path(), Checks::System).unwrap();
        // The test owns its tempdir, so sixboot could write both roots.
        assert_eq!(cfg.warnings.len(), 2, "{:?}", cfg.warnings);
        assert!(
            cfg.warnings[0].starts_with("x.toml:") && cfg.warnings[0].contains(": warning: "),
            "{:?}",
            cfg.warnings
        );
        let http = dir.path().join("http");
        std::fs::set_permissions(&http, std::fs::Permissions::from_mode(0o777)).unwrap();
        let out = parse(&contract(), "x.toml", dir.path(), Checks::System)
            .unwrap_err()
            .to_string();
        assert!(
            out.contains(": http.root: refusing to serve") && out.contains("(mode 0777)"),
            "{out}"
        );
        assert_eq!(out.lines().count(), 1, "{out}");
    }

    #[test]
    fn system_checks_find_missing_interface_and_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tftp")).unwrap();
        std::fs::create_dir_all(dir.path().join("http")).unwrap();
        std::fs::write(dir.path().join("tftp/undionly.kpxe"), b"x").unwrap();
        std::fs::write(dir.path().join("http/memtest86+x64.bin"), b"x").unwrap();
        std::fs::write(dir.path().join("http/memtest86+x64.efi"), b"x").unwrap();
        std::fs::create_dir_all(dir.path().join("http/burnin")).unwrap();
        std::fs::write(dir.path().join("http/burnin/vmlinuz"), b"x").unwrap();
        std::fs::write(dir.path().join("http/burnin/initrd.img"), b"x").unwrap();
        let text = contract().replace("interface = \"lo\"", "interface = \"nosuch0\"");
        let out = parse(&text, "x.toml", dir.path(), Checks::System)
            .unwrap_err()
            .to_string();
        assert!(
            out.contains("x.toml:3:13: interface `nosuch0` does not exist"),
            "{out}"
        );
        assert!(
            out.contains("boot.uefi_x64: `snponly.efi` is missing from the tftp root"),
            "{out}"
        );
        assert_eq!(out.lines().count(), 2, "{out}");
    }
}
