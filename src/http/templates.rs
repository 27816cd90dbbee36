//! The iPXE script and dashboard templates: built into the binary, and overridable by the operator
//! from the `[http] templates` folder without a rebuild. A file there with a built-in
//! template's name replaces it; any other file there can be included. minijinja's
//! auto-reload checks the files on each use, so an edit, a new override or a removed one
//! takes effect on the next request.

use minijinja::{Environment, TemplateSource};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
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
    fn pages_escape_what_machines_send() {
        let t = Templates::new(None);
        let m = serde_json::json!({"mac": "52:54:00:12:34:56", "stage": "<script>x</script>",
            "stage_detail": "\"", "last_seen": 0, "first_seen": 0, "addresses": [], "state": "none",
            "result": null, "next": "menu", "timeline": [], "report": null});
        let html = t
            .render(
                DASHBOARD,
                minijinja::context! { machines => minijinja::value::Serde(vec![&m]), filter => "all", filters => Vec::<()>::new() },
            )
            .unwrap();
        assert!(html.contains("&lt;script&gt;x&lt;"), "{html}");
        assert!(!html.contains("<script>x"), "{html}");
        let mut m = m;
        m["report_at"] = 0.into();
        m["report"] = serde_json::json!({"result": "fail", "duration_s": 20,
            "cpu": {"model": "<b>cpu</b>", "count": 2}, "memory_bytes": 2147483648u64,
            "disks": [{"name": "vda", "bytes": 1073741824}],
            "checks": [{"name": "edac", "ok": false, "detail": "1 CE"}]});
        let page = t
            .render(
                MACHINE_PAGE,
                minijinja::context! { m => minijinja::value::Serde(&m), report => "{}" },
            )
            .unwrap();
        assert!(page.contains("&lt;script&gt;"), "{page}");
        assert!(page.contains("2 × &lt;b&gt;cpu&lt;&#x2f;b&gt;"), "{page}");
        assert!(
            page.contains("2048 MiB") && page.contains("vda (1024 MiB)"),
            "{page}"
        );
        assert!(page.contains("FAILED</span> 1 CE"), "{page}");
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
