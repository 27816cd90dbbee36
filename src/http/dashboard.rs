//! The dashboard: every machine on one page at `/`, one machine's timeline and report at
//! `/machines/{mac}`. Both are rendered on the server from overridable templates; a few
//! lines of plain JavaScript in them follow the live updates (`/api/v1/events`).
//!
//! `/` claims no file (the static fallback serves no folder index), and a
//! `/machines/...` path that is not a MAC still reaches the static files.

use super::api::url_mac;
use super::routes::Peer;
use super::templates::{self, Templates};
use super::{AppState, files};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::context;
use minijinja::value::Serde;
use serde_json::Value;
use std::sync::Arc;
use tracing::error;

pub(super) const DASHBOARD: &str = "/";
pub(super) const MACHINE: &str = "/machines/{mac}";
const MACHINE_PREFIX: &str = "/machines/";

/// The dashboard's filters: `state` values of a machine, and what the button says.
const FILTERS: [(&str, &str); 5] = [
    ("all", "All"),
    ("running", "Running"),
    ("pass", "Pass"),
    ("fail", "Fail"),
    ("none", "No result"),
];

fn page(name: &str, rendered: Result<String, minijinja::Error>) -> Response {
    match rendered {
        Ok(html) => ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(e) => {
            error!(template = name, error = %e, "cannot render page");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The filter asked for in `?state=`, or `all`.
fn filter_of(uri: &Uri) -> &'static str {
    let asked = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("state="));
    FILTERS
        .iter()
        .map(|f| f.0)
        .find(|f| Some(*f) == asked)
        .unwrap_or("all")
}

/// The batch names these machines carry, sorted, each once: the batch filter's choices.
fn batches(machines: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = machines
        .iter()
        .filter_map(|m| m.get("batch").and_then(Value::as_str).map(str::to_string))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The dashboard page for these machine summaries, showing `filter`.
pub(super) fn dashboard_page(
    t: &Templates,
    machines: Vec<Value>,
    filter: &str,
) -> Result<String, minijinja::Error> {
    let filters: Vec<_> = FILTERS
        .iter()
        .map(|&(id, title)| context! { id, title })
        .collect();
    let batches = batches(&machines);
    let now = crate::machines::now_ms();
    let ctx = context! { machines => Serde(machines), filter, filters, batches, now };
    t.render(templates::DASHBOARD, ctx)
}

/// One machine's page, from its detail view (summary, timeline, report).
pub(super) fn machine_page(t: &Templates, m: &Value) -> Result<String, minijinja::Error> {
    let report = m
        .get("report")
        .filter(|r| !r.is_null())
        .map(|r| serde_json::to_string_pretty(r).unwrap_or_default());
    t.render(templates::MACHINE_PAGE, context! { m => Serde(m), report })
}

pub(super) async fn dashboard(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
    page(
        templates::DASHBOARD,
        dashboard_page(&st.templates, st.machines.list(), filter_of(&uri)),
    )
}

pub(super) async fn machine(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: Request,
) -> Response {
    let rest = req.uri().path().strip_prefix(MACHINE_PREFIX).unwrap_or("");
    let Some(mac) = url_mac(rest) else {
        return files::serve(State(st), ConnectInfo(peer), req).await;
    };
    let Some(m) = st.machines.get(mac) else {
        return (StatusCode::NOT_FOUND, Html(format!("<!doctype html><title>sixboot</title><p>No machine {rest}. <a href=\"/\">All machines</a></p>"))).into_response();
    };
    page(templates::MACHINE_PAGE, machine_page(&st.templates, &m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Untrusted text as a machine could send it (SMBIOS serial, disk serial, model).
    const EVIL: &str = "<img src=x onerror=alert(1)>";

    /// A newest report as `GET /api/v1/machines/{mac}` shows it; its inventory is read
    /// back through the shared schema, so these pages follow the image's field names.
    fn report() -> Value {
        let inventory = json!({
            "system": {"manufacturer": "Dell Inc.", "product": "PowerEdge R630", "serial": EVIL,
                "uuid": null, "bios_version": "2.17.0", "bios_date": "2023-01-01",
                "board": {"manufacturer": "Dell Inc.", "product": "02C2CP", "serial": null},
                "chassis": {"type": "Rack Mount Chassis", "serial": null}},
            "cpus": [{"model": "Intel Xeon E5-2630 v4", "cores": 10, "threads": 20,
                "max_mhz": 3100, "microcode": "0xb000040"}],
            "memory": {"bytes": 137_438_953_472u64, "dimms": [{"slot": "A1",
                "bytes": 17_179_869_184u64, "type": "DDR4", "speed_mts": 2400,
                "manufacturer": "Samsung", "part": "M393A2K40BB1", "serial": "DIMMSER1",
                "ecc": true}]},
            "disks": [{"name": "sda", "model": EVIL, "serial": "DSK-1", "bytes": 960_197_124_096u64,
                "kind": "ssd", "transport": "sata", "smart": {"healthy": true,
                "power_on_hours": 41000, "reallocated_sectors": 0, "pending_sectors": 0,
                "media_errors": null, "percentage_used": null, "temperature_c": 31}},
                {"name": "vda", "model": null, "serial": null, "bytes": 1_073_741_824u64,
                "kind": "hdd", "transport": "virtio", "smart": null}],
            "nics": [{"name": "eno1", "mac": "52:54:00:12:34:56", "driver": "ixgbe",
                "speed_mbps": 10000, "link": true}],
            "pci": [{"address": "0000:00:1f.2", "id": "8086:2922", "class": "storage",
                "class_code": "010601", "driver": "ahci"}],
            "bmc": {"present": true, "firmware": "2.81", "ipv4": "10.0.0.9", "ipv6": null}
        });
        let parsed: sixboot_report::Inventory =
            serde_json::from_value(inventory.clone()).expect("the report schema's names");
        assert_eq!(parsed.disks[0].id(), "DSK-1");
        json!({"step": "burnin", "at": 1_800_000_000_000u64, "duration_s": 1800,
            "inventory": inventory,
            "checks": [
                {"component": "cpu", "name": "stress", "ok": true, "detail": "",
                 "values": {"exit_code": 0, "errors": 0, "seconds": 1800.2, "bytes": null},
                 "limit": "errors = 0"},
                {"component": "disk:DSK-1", "name": "self_test", "ok": false, "detail": EVIL,
                 "values": {"status": "failed"}, "limit": null}]})
    }

    /// A machine with every field of the summary and the detail filled in.
    fn full() -> Value {
        let now = crate::machines::now_ms();
        json!({"mac": "52:54:00:12:34:56", "stage": "<script>x</script>", "stage_detail": "\"",
            "first_seen": 0, "last_seen": now, "addresses": ["fd00:1::100"], "state": "fail",
            "result": "FAIL disk:DSK-1 self_test", "next": "burnin", "next_from": "api",
            "duid": "0004aa", "iaid": 0, "uuid": "", "serial": "SN-IPXE", "manufacturer": "QEMU",
            "product": "Standard PC", "platform": "efi", "buildarch": "x86_64",
            "batch": "<i>rack-1</i>",
            "pipeline": {"steps": ["inventory", "burnin", "poweroff"], "at": 1},
            "step": {"name": "burnin", "started": now - 12 * 60_000 - 30_000, "duration_s": 1800},
            "inventory": {"serial": EVIL, "model": "PowerEdge <R630>",
                "cpu": "2 × Intel Xeon E5-2630 v4", "threads": 40,
                "memory_bytes": 137_438_953_472u64, "dimms": 8,
                "disks": [{"id": "DSK-1", "bytes": 960_197_124_096u64, "kind": "ssd"},
                          {"id": "DSK-2", "bytes": 960_197_124_096u64, "kind": "ssd"}]},
            "verdict": {"result": "fail", "parts": [{"component": "cpu", "ok": true},
                {"component": "disk:<b>DSK-1</b>", "ok": false}], "spec": false},
            "timeline": [{"at": 0, "protocol": "http", "stage": "served", "detail": "<script>t"}],
            "report": report(), "reports": [report()],
            "spec": {"cpu_model": "Xeon", "cpus": 2, "memory_bytes": 137_438_953_472u64,
                "disks": 3, "disk_min_bytes": 900_000_000_000u64},
            "spec_from": "batch"})
    }

    fn render_both(m: &Value) -> (String, String) {
        let t = Templates::new(None);
        let list = dashboard_page(&t, vec![m.clone()], "all").expect("dashboard renders");
        let report = m
            .get("report")
            .filter(|r| !r.is_null())
            .map(|r| r.to_string());
        let one = t
            .render(templates::MACHINE_PAGE, context! { m => Serde(m), report })
            .expect("machine page renders");
        (list, one)
    }

    #[test]
    fn pages_escape_what_machines_send() {
        let (list, one) = render_both(&full());
        for html in [&list, &one] {
            assert!(!html.contains("<img"), "{html}");
            assert!(!html.contains("<script>x") && !html.contains("<script>t"));
            assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        }
        assert!(list.contains("&lt;i&gt;rack-1&lt;&#x2f;i&gt;"), "{list}");
        assert!(
            list.contains("disk:&lt;b&gt;DSK-1&lt;&#x2f;b&gt;"),
            "{list}"
        );
    }

    #[test]
    fn the_dashboard_row_sums_up_the_machine() {
        let (list, _) = render_both(&full());
        for want in [
            r#"data-batch="&lt;i&gt;rack-1&lt;&#x2f;i&gt;""#,
            "PowerEdge &lt;R630&gt;",
            "2 × Intel Xeon E5-2630 v4<small>40 threads · 128 GiB · 8 DIMMs</small>",
            "2 × 960 GB SSD",
            "burn-in 12&#x2f;30 min",
            r#"<span class="done">inventory</span><span class="at">burnin</span><span class="">poweroff</span>"#,
            r#"<span class="label">FAIL disk:DSK-1 self_test</span>"#,
            r#"<span class="part ok" title="cpu: ok">cpu</span>"#,
            "✗ differs",
            r#"<option value="&lt;i&gt;rack-1&lt;&#x2f;i&gt;">"#,
        ] {
            assert!(list.contains(want), "{want} missing:\n{list}");
        }
    }

    #[test]
    fn the_machine_page_shows_inventory_checks_and_reports() {
        let (_, one) = render_both(&full());
        for want in [
            "PowerEdge R630",
            "Intel Xeon E5-2630 v4</td><td>10</td><td>20</td><td>3100</td>",
            "<td>A1</td><td>16 GiB</td><td>DDR4</td><td>2400</td>",
            "<td>sda</td><td>DSK-1</td>",
            "<td>960 GB</td><td>ssd</td><td>sata</td>",
            "healthy</td><td>41000</td><td>0</td><td>0</td><td>—</td><td>—</td><td>31</td>",
            "<td colspan=\"7\">no SMART</td>",
            "<td>eno1</td><td>52:54:00:12:34:56</td><td>ixgbe</td><td>10000</td><td>up</td>",
            "<td>0000:00:1f.2</td><td>8086:2922</td><td>storage</td>",
            "<td>10.0.0.9</td>",
            "exit_code <b>0</b>",
            "<td>errors = 0</td>",
            "FAILED",
            "1 of 2 checks failed",
            "(from the batch)",
            "CPU model has Xeon, 2 CPUs, 128 GiB memory, 3 disks, disks of 900 GB or more",
            "<th>Board</th><td>Dell Inc. 02C2CP</td>",
            "<th>Chassis</th><td>Rack Mount Chassis</td>",
            "burn-in 12&#x2f;30 min",
        ] {
            assert!(one.contains(want), "{want} missing:\n{one}");
        }
        assert!(!one.contains("bytes <b>"), "null values are left out");
    }

    #[test]
    fn pages_render_a_machine_nothing_is_known_of() {
        let m = json!({"mac": "52:54:00:12:34:56", "stage": "", "stage_detail": "",
            "first_seen": 0, "last_seen": 0, "addresses": [], "state": "none", "result": null,
            "next": "menu", "next_from": "default", "duid": "", "iaid": null, "uuid": "",
            "serial": "", "manufacturer": "", "product": "", "platform": "", "buildarch": "",
            "batch": null, "pipeline": null, "step": null, "inventory": null, "verdict": null,
            "timeline": [], "report": null, "reports": [], "spec": null, "spec_from": null});
        let (list, one) = render_both(&m);
        assert!(list.contains("next menu"), "{list}");
        assert!(one.contains("No report yet."), "{one}");
        // A null printed as minijinja writes it.
        assert!(!list.contains("none<") && !one.contains(">none<"));
    }

    #[test]
    fn unknown_filters_show_everything() {
        let f = |q: &str| filter_of(&q.parse::<Uri>().unwrap());
        assert_eq!(f("/?state=fail"), "fail");
        assert_eq!(f("/?x=1&state=running"), "running");
        assert_eq!(f("/?state=%3Cb%3E"), "all");
        assert_eq!(f("/"), "all");
    }

    #[test]
    fn batch_choices_are_sorted_and_once() {
        let ms = [
            serde_json::json!({"batch": "rack-2"}),
            serde_json::json!({"batch": null}),
            serde_json::json!({}),
            serde_json::json!({"batch": "rack-1"}),
            serde_json::json!({"batch": "rack-2"}),
        ];
        assert_eq!(batches(&ms), ["rack-1", "rack-2"]);
    }
}
