//! The iPXE script and dashboard templates: built into the binary, and overridable by the operator
//! from the `[http] templates` folder without a rebuild. A file there with a built-in
//! template's name replaces it; any other file there can be included. minijinja's
//! auto-reload checks the files on each use, so an edit, a new override or a removed one
//! takes effect on the next request.

use minijinja::value::Serde;
use minijinja::{Environment, TemplateSource};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::Deserialize;
use std::path::PathBuf;

pub(super) const ENTRY: &str = "boot.ipxe";
pub(super) const MACHINE: &str = "machine.ipxe";
/// HTML pages; minijinja escapes every value in a `.html` template.
pub(super) const DASHBOARD: &str = "dashboard.html";
pub(super) const MACHINE_PAGE: &str = "machine.html";

const BUILTIN: [(&str, &str); 4] = [
    (ENTRY, include_str!("templates/boot.ipxe")),
    (MACHINE, include_str!("templates/machine.ipxe")),
    (DASHBOARD, include_str!("templates/dashboard.html")),
    (MACHINE_PAGE, include_str!("templates/machine.html")),
];

pub(super) struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub(super) fn new(dir: Option<PathBuf>) -> Templates {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .expect("the default delimiters are valid");
        env.set_syntax(syntax);
        let overrides = dir.clone().map(minijinja::path_loader);
        env.set_loader(move |name| {
            if let Some(found) = overrides
                .as_ref()
                .map(|load| load(name))
                .transpose()?
                .flatten()
            {
                return Ok(Some(found));
            }
            let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name) else {
                return Ok(None);
            };
            let builtin = TemplateSource::new(*text);
            // The built-in stands until the operator drops an override next to it.
            Ok(Some(match &dir {
                Some(d) => {
                    let path = d.join(name);
                    builtin.with_uptodate_check(move || !path.exists())
                }
                None => builtin,
            }))
        });
        env.add_filter("ipxe_text", ipxe_text);
        env.add_filter("ipxe_line", ipxe_line);
        env.add_filter("urlpath", urlpath);
        env.add_filter("ago", ago);
        env.add_filter("utc", utc);
        env.add_filter("size", size);
        env.add_filter("binsize", binsize);
        env.add_filter("disks", disks);
        env.add_filter("progress", progress);
        Templates { env }
    }

    /// For `check`: errors then name the undefined expression and carry their span.
    pub(super) fn debugging(mut self) -> Templates {
        self.env.set_debug(true);
        self
    }

    /// Loads and compiles template `name` without rendering it.
    pub(super) fn compile(&self, name: &str) -> Result<(), minijinja::Error> {
        self.env.get_template(name).map(drop)
    }

    /// Renders template `name` with `ctx`. An operator's broken template is an error
    /// (with its file and line), never a panic.
    pub(super) fn render(
        &self,
        name: &str,
        ctx: minijinja::Value,
    ) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }
}

/// Text for the rest of an iPXE command line, such as a menu title or a machine's serial.
/// iPXE splits a line on whitespace with no quoting at all, expands `${...}` anywhere,
/// ends the line at a word starting with `#`, and treats the words `||`, `&&` and `;` as
/// command separators. So: control characters become spaces, `${` becomes `$ {`, and
/// such words are shown in single quotes, which iPXE prints as they are.
pub(super) fn ipxe_text(s: &str) -> String {
    ipxe_line(s)
        .replace("${", "$ {")
        .split(' ')
        .map(|w| {
            if w.starts_with('#') || ["||", "&&", ";"].contains(&w) {
                format!("'{w}'")
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value that must stay on its line (kernel arguments, which are iPXE syntax on
/// purpose, so `${ip}` still expands): control characters, newlines above all, become
/// spaces.
pub(super) fn ipxe_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// How long ago a Unix-milliseconds time was, as the dashboard shows it (its script
/// keeps the same words up to date).
fn ago(ms: u64) -> String {
    let s = crate::machines::now_ms().saturating_sub(ms) / 1000;
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// A Unix-milliseconds time as an HTTP date (UTC), for timelines.
fn utc(ms: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

/// `n` in the largest of `units` (each `base` times the one before) that keeps it at
/// least 1: one decimal below 10 (`1.9 TB`), whole above (`960 GB`). The dashboard's
/// script formats live updates with the same rule, so a row reads the same either way.
fn scaled(n: u64, base: u32, units: &[&str]) -> String {
    let mut v = n as f64;
    let mut unit = 0;
    while v >= f64::from(base) && unit + 1 < units.len() {
        v /= f64::from(base);
        unit += 1;
    }
    let number = if v < 10.0 {
        let one = format!("{v:.1}");
        one.strip_suffix(".0").unwrap_or(&one).to_string()
    } else {
        format!("{}", v.round())
    };
    format!("{number} {}", units[unit])
}

/// A disk's size as its label says it, in decimal units (`960 GB`, `4 TB`).
fn size(bytes: u64) -> String {
    scaled(bytes, 1000, &["B", "kB", "MB", "GB", "TB", "PB", "EB"])
}

/// Memory as the system counts it, in binary units (`512 MiB`, `128 GiB`).
fn binsize(bytes: u64) -> String {
    scaled(
        bytes,
        1024,
        &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"],
    )
}

/// A disk of a machine summary's inventory.
#[derive(Deserialize)]
struct DiskSummary {
    bytes: u64,
    kind: String,
}

/// A summary's disks, alike ones counted once: `2 × 960 GB SSD, 4 TB HDD` (an operator
/// reads a twelve-bay server at a glance), `none` for none.
fn disks(list: Serde<Vec<DiskSummary>>) -> String {
    let mut groups: Vec<(String, usize)> = Vec::new();
    for d in list.iter() {
        let kind = match d.kind.as_str() {
            "hdd" => "HDD",
            "ssd" => "SSD",
            "nvme" => "NVMe",
            other => other,
        };
        let label = format!("{} {kind}", size(d.bytes));
        match groups.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => groups.push((label, 1)),
        }
    }
    if groups.is_empty() {
        return "none".into();
    }
    let shown: Vec<String> = groups
        .into_iter()
        .map(|(l, n)| if n > 1 { format!("{n} × {l}") } else { l })
        .collect();
    shown.join(", ")
}

/// The step a machine is running, as a summary's `step` has it.
#[derive(Deserialize)]
struct RunningStep {
    name: String,
    started: Option<u64>,
    duration_s: Option<u64>,
}

/// How a step is named on the pages.
fn step_title(name: &str) -> &str {
    match name {
        "burnin" => "burn-in",
        other => other,
    }
}

/// How far the running step is: `burn-in 12/30 min`, in seconds for a step under two
/// minutes; just the elapsed time when its length is unknown.
fn progress(step: Serde<RunningStep>) -> String {
    progress_at(&step, crate::machines::now_ms())
}

fn progress_at(s: &RunningStep, now: u64) -> String {
    let name = step_title(&s.name);
    let Some(started) = s.started else {
        return name.to_string();
    };
    let elapsed = now.saturating_sub(started) / 1000;
    let (div, unit) = if s.duration_s.unwrap_or(elapsed) >= 120 {
        (60, "min")
    } else {
        (1, "s")
    };
    match s.duration_s {
        Some(d) => format!("{name} {}/{} {unit}", elapsed / div, d.div_ceil(div)),
        None => format!("{name} {} {unit}", elapsed / div),
    }
}

/// Bytes percent-encoded in a URL path: everything that would end the path, split an
/// iPXE word or start an iPXE expansion.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'$')
    .add(b'%')
    .add(b'\'')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A relative file path as a URL path: each byte outside the safe set percent-encoded,
/// `/` kept.
pub(super) fn urlpath(s: &str) -> String {
    utf8_percent_encode(s, PATH).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cannot_break_an_ipxe_line() {
        assert_eq!(ipxe_text("Memtest86+ \"v6\" 'x'"), "Memtest86+ \"v6\" 'x'");
        assert_eq!(ipxe_text("a\nreboot"), "a reboot");
        assert_eq!(ipxe_text("cost ${net0/mac}"), "cost $ {net0/mac}");
        assert_eq!(
            ipxe_text("Test #1 ; x || y && z"),
            "Test '#1' ';' x '||' y '&&' z"
        );
        assert_eq!(
            ipxe_line("console=ttyS0 ip=${ip}\r\n"),
            "console=ttyS0 ip=${ip}  "
        );
        assert_eq!(urlpath("memtest86+x64.bin"), "memtest86+x64.bin");
        assert_eq!(urlpath("dir/a b${x}.efi"), "dir/a%20b%24%7Bx%7D.efi");
        assert_eq!(utc(1_800_000_000_000), "Fri, 15 Jan 2027 08:00:00 GMT");
        assert_eq!(ago(crate::machines::now_ms() - 90_000), "1 min ago");
    }

    #[test]
    fn sizes_read_as_labels_do() {
        assert_eq!(size(960_197_124_096), "960 GB");
        assert_eq!(size(1_920_383_410_176), "1.9 TB");
        assert_eq!(size(4_000_787_030_016), "4 TB");
        assert_eq!(size(512), "512 B");
        assert_eq!(size(9_960_000_000), "10 GB");
        assert_eq!(binsize(1 << 30), "1 GiB");
        assert_eq!(binsize(256 << 20), "256 MiB");
        assert_eq!(binsize(137_438_953_472), "128 GiB");
        assert_eq!(binsize(3 << 29), "1.5 GiB");
        let disk = |bytes, kind: &str| DiskSummary {
            bytes,
            kind: kind.into(),
        };
        let list = vec![
            disk(960_197_124_096, "ssd"),
            disk(4_000_787_030_016, "hdd"),
            disk(960_197_124_096, "ssd"),
            disk(1_000_204_886_016, "nvme"),
        ];
        assert_eq!(disks(Serde(list)), "2 × 960 GB SSD, 4 TB HDD, 1 TB NVMe");
        assert_eq!(disks(Serde(Vec::new())), "none");
    }

    #[test]
    fn progress_counts_in_the_steps_unit() {
        let step = |name: &str, started, duration_s| RunningStep {
            name: name.into(),
            started,
            duration_s,
        };
        let t0 = 1_800_000_000_000;
        let now = t0 + 12 * 60_000 + 59_000;
        assert_eq!(
            progress_at(&step("burnin", Some(t0), Some(1800)), now),
            "burn-in 12/30 min"
        );
        assert_eq!(
            progress_at(&step("inventory", Some(t0), Some(20)), t0 + 7_500),
            "inventory 7/20 s"
        );
        assert_eq!(
            progress_at(&step("memtest", Some(t0), None), now),
            "memtest 12 min"
        );
        assert_eq!(
            progress_at(&step("burnin", None, Some(1800)), now),
            "burn-in"
        );
        assert_eq!(
            progress_at(&step("burnin", Some(now + 5), Some(150)), now),
            "burn-in 0/3 min"
        );
    }

    #[test]
    fn an_override_replaces_a_builtin_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let t = Templates::new(Some(dir.path().to_path_buf()));
        let ctx = || minijinja::context! { base => "http://h", machine_path => "/ipxe" };
        assert!(
            t.render(ENTRY, ctx())
                .unwrap()
                .contains("chain http://h/ipxe?")
        );
        std::fs::write(dir.path().join(ENTRY), "#!ipxe\necho {{ base }}\n").unwrap();
        assert_eq!(t.render(ENTRY, ctx()).unwrap(), "#!ipxe\necho http://h\n");
        std::fs::write(dir.path().join(ENTRY), "#!ipxe\n{% if %}\n").unwrap();
        let err = t.render(ENTRY, ctx()).unwrap_err().to_string();
        assert!(err.contains("boot.ipxe:2"), "{err}");
        std::fs::remove_file(dir.path().join(ENTRY)).unwrap();
        assert!(
            t.render(ENTRY, ctx())
                .unwrap()
                .contains("chain http://h/ipxe?")
        );
    }
}
