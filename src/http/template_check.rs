//! `check` and `serve` try the operator's template overrides before anything is served:
//! every file in `[http] templates` is compiled, and every template is rendered the way
//! the server would render it (both platforms, with and without a host pin, the pages
//! with a machine). A broken override is then a config problem, `FILE:LINE:COL: message`,
//! rather than a 500 the first time a machine boots.

use super::dashboard::{dashboard_page, machine_page};
use super::scripts::{Machine, entry_script, machine_script, report_args};
use super::templates::{self, Templates};
use crate::config::{Config, Http};
use crate::policy::{IpxeBoot, IpxeDecision, Platform, Policy};
use std::path::{Path, PathBuf};

/// Folder levels looked into below `[http] templates`, and files compiled at most: the
/// folder is the operator's, but `check` must end.
const MAX_DEPTH: usize = 8;
const MAX_FILES: usize = 1000;

/// A machine as iPXE would describe it, for the per-machine script.
const SAMPLE_QUERY: &str = "mac=52-54-00-12-34-56&buildarch=x86_64\
    &uuid=a1b2c3d4-0000-1111-2222-333344445555&serial=SN42&manufacturer=QEMU\
    &product=Standard%20PC";

/// Every problem in the operator's templates, one `FILE:LINE:COL: message` line each;
/// empty when there are no overrides or all of them work.
pub fn check_templates(cfg: &Config) -> Vec<String> {
    let Some(http) = &cfg.http else {
        return Vec::new();
    };
    let Some(dir) = &http.templates else {
        return Vec::new();
    };
    let t = Templates::new(Some(dir.clone())).debugging();
    let mut found = Problems::default();
    for name in files(dir) {
        if let Err(e) = t.compile(&name) {
            found.add(dir, &e, None);
        }
    }
    for (what, rendered) in renders(&t, http, cfg) {
        if let Err(e) = rendered {
            found.add(dir, &e, Some(&what));
        }
    }
    found.lines
}

/// Each template rendered as the server would, with what it was rendered for.
fn renders(
    t: &Templates,
    http: &Http,
    cfg: &Config,
) -> Vec<(String, Result<String, minijinja::Error>)> {
    let base = match http.listen.first() {
        Some(a) => format!("http://{a}"),
        None => "http://[fd00:1::1]".into(),
    };
    let policy = Policy::new(cfg);
    let mut out = vec![(templates::ENTRY.to_string(), entry_script(t, &base))];
    let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    let report = report_args(&base, mac, &"0".repeat(32));
    for platform in [Platform::Pcbios, Platform::Efi] {
        let query = format!("{SAMPLE_QUERY}&platform={}", platform.name());
        let (machine, _) = Machine::from_query(&query);
        let pinned = |boot, why| IpxeDecision {
            boot,
            why,
            step: None,
        };
        let mut decisions = vec![("menu", policy.ipxe(None, platform, None))];
        if let Some(l) = cfg
            .menu
            .items
            .iter()
            .find_map(|i| policy.launch(i, platform))
        {
            let why = "host pinned to an item";
            decisions.push((why, pinned(IpxeBoot::Item(l), why)));
        }
        let why = "host pinned to local disk";
        decisions.push((why, pinned(IpxeBoot::Local, why)));
        for (what, d) in decisions {
            let r = machine_script(t, &base, &machine, platform, &d, Some(&report));
            out.push((
                format!("{}, {}, {what}", templates::MACHINE, platform.name()),
                r,
            ));
        }
    }
    let mut m = crate::machines::Machine::new(crate::machines::now_ms());
    m.record.platform = "efi".into();
    m.record.manufacturer = "QEMU".into();
    m.record.addresses = vec!["fd00:1::100".parse().expect("an IPv6 address")];
    let text = crate::mac::Mac(&mac).to_string();
    let rules = crate::verdict::Rules::new(cfg);
    let view = crate::machines::View {
        mac: &text,
        mac_bytes: mac,
        host_pin: policy.host_boot(mac),
        rules: &rules,
    };
    out.push((
        templates::DASHBOARD.into(),
        dashboard_page(t, vec![m.summary(&view)], "all"),
    ));
    out.push((
        templates::MACHINE_PAGE.into(),
        machine_page(t, &m.detail(&view)),
    ));
    out
}

/// The template files below `dir`, as the names templates load them by (`/`-separated);
/// hidden files (editor leftovers) and names that are not UTF-8 are skipped.
fn files(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut todo: Vec<(PathBuf, usize)> = vec![(PathBuf::new(), 0)];
    while let Some((rel, depth)) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(dir.join(&rel)) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name.starts_with('.') || names.len() >= MAX_FILES {
                continue;
            }
            let path = rel.join(&name);
            match e.file_type() {
                Ok(t) if t.is_dir() && depth < MAX_DEPTH => todo.push((path, depth + 1)),
                Ok(_) if e.path().is_file() => {
                    names.push(path.to_string_lossy().into_owned());
                }
                _ => {}
            }
        }
    }
    names.sort();
    names
}

/// Located problems, each reported once however many renders hit it.
#[derive(Default)]
struct Problems {
    seen: Vec<String>,
    lines: Vec<String>,
}

impl Problems {
    /// Adds `e`, located in the innermost template that has a line (an error in an
    /// included file is reported there, not at the `include`).
    fn add(&mut self, dir: &Path, e: &minijinja::Error, rendering: Option<&str>) {
        let inner = innermost(e);
        let name = inner.name().unwrap_or_default();
        let path = dir.join(name);
        let file = if path.is_file() {
            path.display().to_string()
        } else {
            format!("built-in {name}")
        };
        let line = inner.line().unwrap_or(1);
        let col = inner
            .range()
            .and_then(|r| column(&std::fs::read_to_string(&path).ok()?, r.start))
            .unwrap_or(1);
        let message = match inner.detail() {
            Some(d) => format!("{}: {d}", inner.kind()),
            None => inner.kind().to_string(),
        };
        let at = format!("{file}:{line}:{col}: {message}");
        if self.seen.contains(&at) {
            return;
        }
        self.seen.push(at.clone());
        self.lines.push(match rendering {
            Some(what) => format!("{at} (rendering {what})"),
            None => at,
        });
    }
}

/// The deepest template error in the chain that names its template.
fn innermost(e: &minijinja::Error) -> &minijinja::Error {
    let mut best = e;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = cur {
        if let Some(m) = s.downcast_ref::<minijinja::Error>()
            && m.name().is_some()
        {
            best = m;
        }
        cur = s.source();
    }
    best
}

/// The 1-based column (in characters) of byte `offset` in `text`.
fn column(text: &str, offset: usize) -> Option<usize> {
    let before = text.get(..offset)?;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    Some(before[start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Checks, parse};

    fn config(dir: &Path) -> Config {
        let text = format!(
            "interface = \"lo\"\n[http]\nlisten = [\"[fd00:1::1]:8080\"]\ntemplates = \"{}\"\n\
             [[menu.item]]\nid = \"memtest\"\nbios = \"mt.bin\"\nefi = \"mt.efi\"\n",
            dir.display()
        );
        parse(&text, "x.toml", Path::new("."), Checks::FileOnly).unwrap()
    }

    #[test]
    fn the_builtins_and_a_good_override_pass() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(check_templates(&config(d.path())), Vec::<String>::new());
        std::fs::write(
            d.path().join("machine.ipxe"),
            "#!ipxe\n{% include \"parts/head.ipxe\" %}\n{% for i in boot.items %}echo {{ i.title|ipxe_text }}\n{% endfor %}",
        )
        .unwrap();
        std::fs::create_dir(d.path().join("parts")).unwrap();
        std::fs::write(d.path().join("parts/head.ipxe"), "# {{ platform }}\n").unwrap();
        std::fs::write(d.path().join(".machine.ipxe.swp"), [0xff, 0xfe]).unwrap();
        assert_eq!(check_templates(&config(d.path())), Vec::<String>::new());
    }

    #[test]
    fn syntax_render_and_include_errors_are_located() {
        let d = tempfile::tempdir().unwrap();
        let p = |n: &str| d.path().join(n).display().to_string();
        std::fs::write(d.path().join("boot.ipxe"), "#!ipxe\necho {{ base }\n").unwrap();
        std::fs::write(
            d.path().join("machine.ipxe"),
            "#!ipxe\n{% include \"part.ipxe\" %}\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("part.ipxe"),
            "echo\n  {{ machine.nope.deeper }}\n",
        )
        .unwrap();
        let got = check_templates(&config(d.path()));
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(
            got[0].starts_with(&format!(
                "{}:2:14: syntax error: unexpected `}}`",
                p("boot.ipxe")
            )),
            "{got:#?}"
        );
        assert!(
            got[1].starts_with(&format!(
                "{}:2:13: undefined value: `machine.nope` is undefined",
                p("part.ipxe")
            )),
            "{got:#?}"
        );
        assert!(
            got[1].contains("(rendering machine.ipxe, pcbios, menu)"),
            "{got:#?}"
        );
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(column("ab\nxé{{", 6), Some(3));
        assert_eq!(column("{{", 0), Some(1));
        assert_eq!(column("é", 1), None);
    }
}
