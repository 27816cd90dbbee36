//! A real headless Chromium in a lab namespace, driven over the DevTools protocol: tests
//! load the dashboard, read its DOM as a user would see it, and save screenshots.
//!
//! The DevTools client is tungstenite over a socket opened inside the namespace; each
//! command waits (bounded) for its own answer.
//!
//! Watching a boot (what the burn-in e2e test does): open the page first, boot, then
//!
//! ```ignore
//! let mut b = Browser::open(&lab.ns, "http://[fd00:1::1]:8080/");
//! // ... start the VM ...
//! let row = b.wait_row("52:54:00:12:34:56", "pass", Duration::from_secs(600));
//! b.screenshot(&artifacts_dir().join("burnin.png"));
//! assert!(row.is_ok(), "never PASS: {row:?}");
//! ```

use super::{cmd_in, in_netns, wait_until};
use base64::Engine;
use serde_json::{Value, json};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

/// DevTools port inside the namespace (each lab has its own namespace, so no clash).
const DEVTOOLS_PORT: u16 = 9222;
/// Longest one DevTools command may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);

pub struct Browser {
    child: Child,
    ws: WebSocket<TcpStream>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

/// Where tests put what a person should be able to look at afterwards (screenshots):
/// `target/test-artifacts/`.
pub fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    /// Starts headless Chromium in namespace `ns` showing `url`, and connects to that page.
    pub fn open(ns: &str, url: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(profile.path().join("chromium.log")).unwrap();
        let child = cmd_in(ns, "chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1280,720",
                &format!("--remote-debugging-port={DEVTOOLS_PORT}"),
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(log)
            // Its own process group, so Drop ends Chromium's helpers with it.
            .process_group(0)
            .spawn()
            .expect("start chromium (scripts/deps.sh test installs it)");
        let mut page = None;
        let found = wait_until(Duration::from_secs(60), || {
            page = page_socket_url(ns);
            page.is_some()
        });
        let log = std::fs::read_to_string(profile.path().join("chromium.log")).unwrap_or_default();
        assert!(found, "chromium showed no page over DevTools:\n{log}");
        let page = page.unwrap();
        let ws = in_netns(ns, move || {
            let tcp = TcpStream::connect(("127.0.0.1", DEVTOOLS_PORT)).expect("devtools tcp");
            tcp.set_read_timeout(Some(COMMAND_LIMIT)).unwrap();
            tungstenite::client(page.as_str(), tcp)
                .expect("devtools websocket")
                .0
        });
        Browser {
            child,
            ws,
            next_id: 0,
            _profile: profile,
        }
    }

    /// Sends one DevTools command and returns its `result`; panics on an error answer.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws.send(Message::text(msg)).expect("devtools send");
        let deadline = Instant::now() + COMMAND_LIMIT;
        while Instant::now() < deadline {
            let Message::Text(text) = self.ws.read().expect("devtools read") else {
                continue;
            };
            let v: Value = serde_json::from_str(&text).expect("devtools JSON");
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method} failed: {v}");
                return v["result"].clone();
            }
        }
        panic!("{method}: no answer in {COMMAND_LIMIT:?}");
    }

    /// Evaluates `expr` in the page and returns its value (JSON-able values only).
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true }),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// The dashboard row of `mac` as the page shows it now: `{state, result, stage,
    /// step, plan, pipeline, batch, serial, spec, selected, hidden}` (`step` is the running
    /// step's progress or null, `plan` the next action or pipeline as written, `pipeline`
    /// its steps or null), or null when there is no such row.
    pub fn row(&mut self, mac: &str) -> Value {
        self.eval(&format!(
            r#"(function () {{
                var tr = document.querySelector('#machines tr[data-mac="{mac}"]');
                if (!tr) return null;
                function text(sel) {{ var e = tr.querySelector(sel); return e && e.textContent; }}
                var pipe = tr.querySelectorAll('td.step .pipe span');
                return {{ state: tr.dataset.state, result: text('td.result .label'),
                          stage: text('td.stage .what'), step: text('td.step .progress'),
                          plan: text('td.step .plan'),
                          pipeline: pipe.length ? Array.prototype.map.call(pipe, function (s) {{ return s.textContent; }}) : null,
                          batch: text('td.batch'), serial: text('td.serial'), spec: text('td.spec'),
                          selected: tr.querySelector('td.sel input').checked, hidden: tr.hidden }};
            }})()"#
        ))
    }

    /// Waits (polling the live DOM, never reloading) until `mac`'s dashboard row is in
    /// `state` (`running`, `pass`, `fail`, `none`); returns the row as last seen.
    pub fn wait_row(&mut self, mac: &str, state: &str, limit: Duration) -> Result<Value, Value> {
        self.wait_for(limit, |b| {
            let row = b.row(mac);
            (row["state"] == state, row)
        })
    }

    /// Polls `probe` every 200 ms until it says done or `limit` passes; returns what it
    /// saw last, as `Ok` when done.
    pub fn wait_for(
        &mut self,
        limit: Duration,
        mut probe: impl FnMut(&mut Browser) -> (bool, Value),
    ) -> Result<Value, Value> {
        let deadline = Instant::now() + limit;
        loop {
            let (done, seen) = probe(self);
            if done {
                return Ok(seen);
            }
            if Instant::now() >= deadline {
                return Err(seen);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the text of the element `selector` contains `want`; returns the text
    /// last seen.
    pub fn wait_text(
        &mut self,
        selector: &str,
        want: &str,
        limit: Duration,
    ) -> Result<String, String> {
        let got = self.wait_for(limit, |b| {
            let t = b.text(selector);
            (t.contains(want), Value::String(t))
        });
        got.map(|v| v.as_str().unwrap_or_default().to_string())
            .map_err(|v| v.as_str().unwrap_or_default().to_string())
    }

    /// The text of the element `selector` (empty when there is none).
    pub fn text(&mut self, selector: &str) -> String {
        let sel = json!(selector);
        self.eval(&format!(
            "(document.querySelector({sel}) || {{}}).textContent || ''"
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Runs `js` with `e` bound to the element `selector`, which must exist.
    fn on(&mut self, selector: &str, js: &str) -> Value {
        let sel = json!(selector);
        let r = self.eval(&format!(
            "(function (e) {{ if (!e) return 'missing'; {js} }})(document.querySelector({sel}))"
        ));
        assert_ne!(r, "missing", "no element {selector}");
        r
    }

    /// Clicks the element `selector`, as a person would (its handlers and default action).
    pub fn click(&mut self, selector: &str) {
        self.on(selector, "e.click(); return true;");
    }

    /// Types `value` into the input or picks it in the select `selector`, firing the
    /// `input` and `change` events a person's edit fires.
    pub fn fill(&mut self, selector: &str, value: &str) {
        let v = json!(value);
        let r = self.on(
            selector,
            &format!(
                "e.value = {v}; e.dispatchEvent(new Event('input', {{bubbles: true}})); \
                 e.dispatchEvent(new Event('change', {{bubbles: true}})); return e.value;"
            ),
        );
        assert_eq!(r, value, "{selector} did not take {value}");
    }

    /// Whether the element `selector` exists and takes up room on the page, as the
    /// styles lay it out (an element with `hidden` that a style shows counts as shown).
    pub fn visible(&mut self, selector: &str) -> bool {
        let sel = json!(selector);
        self.eval(&format!(
            "(function (e) {{ return !!e && e.getClientRects().length > 0 \
              && getComputedStyle(e).visibility !== 'hidden'; }})(document.querySelector({sel}))"
        )) == true
    }

    /// Saves a PNG of what the page shows now.
    pub fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("screenshot data"))
            .expect("base64 PNG");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.ws.close(None);
        // The process group this browser leads (set at spawn): Chromium and its helpers.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The DevTools WebSocket URL of the first page, once Chromium serves its list.
fn page_socket_url(ns: &str) -> Option<String> {
    let out = cmd_in(ns, "curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{DEVTOOLS_PORT}/json/list"))
        .output()
        .ok()?;
    let list: Value = serde_json::from_slice(&out.stdout).ok()?;
    list.as_array()?
        .iter()
        .find(|t| t["type"] == "page")
        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        .map(str::to_string)
}
