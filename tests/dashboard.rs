//! The dashboard in a real headless Chromium: rows change live (Server-Sent Events) as a
//! machine boots, burns and reports, with no reload; an operator signs in, selects
//! machines and changes them in one go; the page stays usable at phone width.
//! Screenshots go to target/test-artifacts/.

mod common;

use common::browser::{Browser, artifacts_dir};
use common::curl::curl;
use common::machines::*;
use serde_json::{Value, json};
use std::time::Duration;

const LIVE: Duration = Duration::from_secs(15);

#[test]
fn rows_change_live_through_burn_in_and_report() {
    let api = format!("\n[api]\nadmin_token = \"{ADMIN}\"\n");
    let (mut lab, c, _, pid) = started("dashlive", &api);
    let other = "52:54:00:00:00:02";
    script(&lab, &c, other, "");
    wait_step(&lab, &c, other, "http script");

    let mut b = Browser::open(&lab.ns, &format!("{}/", base()));
    let loaded = common::wait_until(LIVE, || {
        b.eval("(document.getElementById('live') || {}).textContent") == "live"
    });
    assert!(loaded, "the page never went live");
    // Rendered by the server: the machine seen before the page loaded.
    assert_eq!(b.row(other)["state"], "none");
    // Anything that reloads the page would lose this.
    b.eval("window.sixbootMarker = 42");

    // A new machine appears, is set to burn in, fetches its image and reports.
    assert_eq!(
        put_next(&lab, &c, MAC, r#"{"next":"burnin"}"#, Some(ADMIN)).status,
        200
    );
    let row = b
        .wait_row(MAC, "none", LIVE)
        .expect("the new machine's row");
    assert_eq!(row["result"], "—");
    let (_, token) = burnin_args(&script(&lab, &c, MAC, "")).expect("burn-in args");
    let kernel = curl(&lab, &c, &format!("{}/burnin/vmlinuz", base()), &[]);
    assert_eq!(kernel.status, 200);
    let row = b.wait_row(MAC, "running", LIVE).expect("running");
    assert_eq!(row["result"], "running");
    assert_eq!(row["stage"], "http served");
    let posted = post_report(
        &lab,
        &c,
        MAC,
        report("burnin", None).as_bytes(),
        Some(&token),
    );
    assert_eq!(posted.status, 200);
    let row = b
        .wait_row(MAC, "pass", LIVE)
        .unwrap_or_else(|r| panic!("never PASS: {r}"));
    assert_eq!(row["result"], "PASS");
    assert_eq!(row["stage"], "api report");
    assert_eq!(b.eval("window.sixbootMarker"), 42, "the page reloaded");

    // Filters hide the other rows, without a reload either.
    b.eval("document.querySelector('nav a[data-filter=pass]').click()");
    assert_eq!(b.row(other)["hidden"], true);
    assert_eq!(b.row(MAC)["hidden"], false);
    b.eval("document.querySelector('nav a[data-filter=all]').click()");
    assert_eq!(b.row(other)["hidden"], false);

    // A second machine fails: its row says which check.
    let third = "52:54:00:00:00:03";
    put_next(&lab, &c, third, r#"{"next":"burnin"}"#, Some(ADMIN));
    let (_, t3) = burnin_args(&script(&lab, &c, third, "")).unwrap();
    let failed = report("burnin", Some("edac"));
    assert_eq!(
        post_report(&lab, &c, third, failed.as_bytes(), Some(&t3)).status,
        200
    );
    let row = b.wait_row(third, "fail", LIVE).expect("FAIL");
    assert_eq!(row["result"], "FAIL memory edac");
    assert_eq!(b.eval("window.sixbootMarker"), 42, "the page reloaded");
    // A fourth starts burning while the page watches.
    let fourth = "52:54:00:00:00:04";
    put_next(&lab, &c, fourth, r#"{"next":"burnin"}"#, Some(ADMIN));
    script(&lab, &c, fourth, "");
    curl(&lab, &c, &format!("{}/burnin/vmlinuz", base()), &[]);
    let row = b.wait_row(fourth, "running", LIVE).expect("running");
    assert_eq!(row["result"], "running");
    // Once the rows' highlight has faded.
    let faded = b.wait_for(LIVE, |b| {
        let n = b.eval("document.getAnimations().length");
        (n == 0, n)
    });
    assert!(faded.is_ok(), "still animating: {faded:?}");
    b.screenshot(&artifacts_dir().join("dashboard.png"));

    // Phone width: one column, no table header, nothing wider than the screen.
    b.call(
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    );
    let narrow = b.eval(
        "[getComputedStyle(document.querySelector('thead')).display, \
          document.documentElement.scrollWidth <= window.innerWidth]",
    );
    assert_eq!(narrow, serde_json::json!(["none", true]));
    b.screenshot(&artifacts_dir().join("dashboard-phone.png"));

    // The machine's own page: its report check by check, and its timeline.
    b.call(
        "Page.navigate",
        serde_json::json!({"url": format!("{}/machines/{MAC}", base())}),
    );
    let page = common::wait_until(LIVE, || {
        b.eval("(document.querySelector('h1') || {}).textContent") == MAC
    });
    assert!(page, "the machine page never showed");
    let text = b
        .eval("document.body.innerText")
        .as_str()
        .unwrap()
        .to_string();
    for want in [
        "PASS",
        "stress",
        "api report",
        "http served",
        "/burnin/vmlinuz",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    b.screenshot(&artifacts_dir().join("machine.png"));

    // Open live streams do not hold up a stop.
    let t = std::time::Instant::now();
    let st = lab.stop(pid).expect("sixboot stops");
    assert!(st.success(), "{st:?}");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "stop took {:?}",
        t.elapsed()
    );
}

/// Each row as `[mac, [[td class, text] ...]]`, sorted by MAC, leaving out what moves
/// with the clock (times since, progress): how a live-updated page and a fresh load of
/// it are compared.
const ROWS: &str = r#"Array.prototype.map.call(document.querySelectorAll('#machines tbody tr'), function (tr) {
    return [tr.dataset.mac, [tr.dataset.state, tr.dataset.batch, tr.dataset.serial],
        Array.prototype.map.call(tr.cells, function (td) {
            var c = td.cloneNode(true);
            c.querySelectorAll('.seen, .progress, progress').forEach(function (e) { e.remove(); });
            return [td.className, c.textContent];
        })];
}).sort(function (a, b) { return a[0] < b[0] ? -1 : 1; })"#;

const TOKEN_KEPT: &str = "sessionStorage.getItem('sixboot-admin-token')";

#[test]
fn an_operator_signs_in_and_sets_a_pipeline_for_two_machines() {
    let api = format!("\n[api]\nadmin_token = \"{ADMIN}\"\n");
    let (mut lab, c, _, pid) = started("dashbulk", &api);
    let one = "52:54:00:00:01:01";
    let two = "52:54:00:00:01:02";
    let three = "52:54:00:00:01:03";
    let hostile = "<img src=x onerror=window.pwned=1>-0103";
    // Three machines burned before: their inventories and verdicts fill the columns.
    for (mac, serial, failing) in [
        (three, hostile, Some("self_test")),
        (two, "SRV-0102", None),
        (one, "SRV-0101", None),
    ] {
        put_next(&lab, &c, mac, r#"{"next":"burnin"}"#, Some(ADMIN));
        let (_, token) = burnin_args(&script(&lab, &c, mac, "")).expect("burn-in args");
        let body = step_report("burnin", mac, serial, failing);
        let r = post_report(&lab, &c, mac, body.as_bytes(), Some(&token));
        assert_eq!(r.status, 200, "{}", r.text());
    }

    let mut b = Browser::open(&lab.ns, &format!("{}/", base()));
    let loaded = common::wait_until(LIVE, || b.text("#live") == "live");
    assert!(loaded, "the page never went live");
    b.eval("window.sixbootMarker = 7");
    // A serial is shown as text, never run as markup.
    assert_eq!(b.row(three)["serial"], hostile);
    assert_eq!(b.row(three)["result"], "FAIL disk:DSK-0103 self_test");
    assert_eq!(
        b.eval("[!!document.querySelector('#machines img'), window.pwned || 0]"),
        json!([false, 0])
    );
    assert_eq!(b.row(one)["serial"], "SRV-0101");
    assert!(
        b.text(&format!("tr[data-mac=\"{one}\"] td.disks"))
            .contains("960 GB SSD")
    );
    // Reads are open; changing needs signing in.
    assert!(!b.visible("#bulk"));
    assert!(!b.visible(&format!("tr[data-mac=\"{one}\"] td.sel input")));

    // A wrong token is refused in the form, and not kept.
    b.fill("#token", "not-the-token");
    b.click("#signin button[type=submit]");
    let said = b.wait_text("#auth-msg", "Wrong token", LIVE);
    assert!(said.is_ok(), "no refusal shown: {said:?}");
    assert!(!b.visible("#bulk"));
    assert_eq!(b.eval(TOKEN_KEPT), Value::Null);

    // The right one signs in for this tab's session.
    b.fill("#token", ADMIN);
    b.click("#signin button[type=submit]");
    let signed = b.wait_for(LIVE, |b| (b.visible("#bulk"), b.text("#auth-msg").into()));
    assert!(signed.is_ok(), "never signed in: {signed:?}");
    assert_eq!(b.eval(TOKEN_KEPT), ADMIN);
    assert!(b.visible("#signout") && !b.visible("#signin"));

    // Two machines, one pipeline, one request.
    b.click(&format!("tr[data-mac=\"{one}\"] td.sel input"));
    b.click(&format!("tr[data-mac=\"{two}\"] td.sel input"));
    assert_eq!(b.text("#selected"), "2 selected");
    let pickers = b.wait_for(LIVE, |b| {
        let n = b.eval("document.querySelectorAll('#pipe-step option').length");
        (n.as_u64() > Some(0), n)
    });
    assert!(
        pickers.is_ok(),
        "the pipeline picker never filled: {}",
        b.text("#bulk-msg")
    );
    b.fill("#pipe-step", "inventory");
    b.click("#pipe-add");
    b.fill("#pipe-step", "burnin");
    b.click("#pipe-add");
    b.fill("#pipe-end", "poweroff");
    b.click("#set-pipeline button[type=submit]");
    let msg = b.wait_text("#bulk-msg", "changed 2", LIVE);
    assert!(msg.is_ok(), "no 'changed 2': {msg:?}");
    let want = json!(["inventory", "burnin", "poweroff"]);
    for mac in [one, two] {
        let m = json(&machine(&lab, &c, mac));
        assert_eq!(m["pipeline"], json!({"steps": want, "at": 0}), "{mac}: {m}");
    }
    assert_ne!(json(&machine(&lab, &c, three))["pipeline"]["steps"], want);
    // The rows follow live.
    for mac in [one, two] {
        let row = b.wait_for(LIVE, |b| {
            let r = b.row(mac);
            (r["pipeline"] == want, r)
        });
        assert!(
            row.is_ok(),
            "{mac}'s row never showed the pipeline: {row:?}"
        );
    }

    // Machine one boots into its first step: its script, then the burn-in kernel.
    let s = script(&lab, &c, one, "");
    assert!(
        burnin_args(&s).is_some(),
        "the inventory step runs the image:\n{s}"
    );
    let kernel = curl(&lab, &c, &format!("{}/burnin/vmlinuz", base()), &[]);
    assert_eq!(kernel.status, 200);
    let row = b.wait_row(one, "running", LIVE).expect("running");
    assert!(
        row["step"]
            .as_str()
            .unwrap_or_default()
            .starts_with("inventory"),
        "{row}"
    );
    assert_eq!(row["result"], "running");
    assert_eq!(b.row(two)["state"], "pass");
    assert_eq!(b.eval("window.sixbootMarker"), 7, "the page reloaded");

    // A batch for both; then the filters: batch, verdict, search by serial or MAC.
    b.fill("#batch-name", "rack-7");
    b.click("#set-batch button[type=submit]");
    let msg = b.wait_text("#bulk-msg", "batch rack-7", LIVE);
    assert!(msg.is_ok() && msg.unwrap().contains("changed 2"));
    let batched = b.wait_for(LIVE, |b| {
        let r = b.row(two);
        (r["batch"] == "rack-7", r)
    });
    assert!(batched.is_ok(), "{batched:?}");
    // An expected spec for both, through its form: their rows say they match it.
    b.click("#spec-box summary");
    for (field, value) in [
        ("#spec-cpu-model", "QEMU"),
        ("#spec-cpus", "1"),
        ("#spec-memory", "4"),
        ("#spec-disks", "1"),
        ("#spec-disk-min", "900"),
    ] {
        b.fill(field, value);
    }
    b.click("#set-spec button[type=submit]");
    let msg = b.wait_text("#bulk-msg", "expected spec", LIVE);
    assert!(msg.is_ok() && msg.unwrap().contains("changed 2"));
    let spec = json!({"cpu_model": "QEMU", "cpus": 1, "memory_bytes": 4u64 << 30, "disks": 1,
        "disk_min_bytes": 900_000_000_000u64});
    let m = json(&machine(&lab, &c, two));
    assert_eq!(
        (&m["spec"], &m["spec_from"]),
        (&spec, &json!("machine")),
        "{m}"
    );
    for mac in [one, two] {
        let row = b.wait_for(LIVE, |b| {
            let r = b.row(mac);
            (r["spec"] == "✓ matches", r)
        });
        assert!(row.is_ok(), "{mac}: {row:?}");
    }
    assert_eq!(b.row(three)["spec"], "—");
    b.click("#spec-box summary");

    let shown = |b: &mut Browser| [one, two, three].map(|m| b.row(m)["hidden"] == false);
    b.fill("#batch-filter", "rack-7");
    assert_eq!(shown(&mut b), [true, true, false]);
    b.fill("#batch-filter", "All batches");
    b.click("nav a[data-filter=fail]");
    assert_eq!(shown(&mut b), [false, false, true]);
    b.click("nav a[data-filter=all]");
    b.fill("#search", "srv-0102");
    assert_eq!(shown(&mut b), [false, true, false]);
    b.fill("#search", "00-01-03");
    assert_eq!(shown(&mut b), [false, false, true]);
    // "Select all shown" takes only the rows shown.
    b.click("#select-all");
    assert_eq!(b.text("#selected"), "3 selected (2 not shown)");
    b.click("#select-all");
    b.fill("#search", "");
    assert_eq!(shown(&mut b), [true, true, true]);
    assert_eq!(b.text("#selected"), "2 selected");
    assert_eq!(b.eval("window.sixbootMarker"), 7, "the page reloaded");
    // Once the rows' highlight has faded.
    let faded = b.wait_for(LIVE, |b| {
        let n = b.eval("document.getAnimations().length");
        (n == 0, n)
    });
    assert!(faded.is_ok(), "still animating: {faded:?}");
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false}),
    );
    b.screenshot(&artifacts_dir().join("dashboard-operator.png"));

    // Phone width, signed in: cards with their checkboxes, nothing wider than the screen.
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    );
    let narrow = b.eval("document.documentElement.scrollWidth <= window.innerWidth");
    assert_eq!(narrow, true);
    assert!(b.visible(&format!("tr[data-mac=\"{one}\"] td.sel input")));
    b.screenshot(&artifacts_dir().join("dashboard-operator-phone.png"));
    b.call("Emulation.clearDeviceMetricsOverride", json!({}));

    // What the live page shows is what a fresh load shows; the session survives it.
    let live_rows = b.eval(ROWS);
    b.call("Page.reload", json!({}));
    let reloaded = common::wait_until(LIVE, || {
        b.eval("window.sixbootMarker === undefined") == true && b.text("#live") == "live"
    });
    assert!(reloaded, "the page never came back");
    assert_eq!(b.eval(ROWS), live_rows);
    assert!(b.visible("#bulk"), "signed out by a reload");

    // Signing out forgets the token.
    b.click("#signout");
    assert!(!b.visible("#bulk") && b.visible("#signin"));
    assert_eq!(b.eval(TOKEN_KEPT), Value::Null);

    // Machine one's page follows its step live: the inventory report arrives, no reload.
    let (_, token) = burnin_args(&s).unwrap();
    b.call(
        "Page.navigate",
        json!({"url": format!("{}/machines/{one}", base())}),
    );
    let page = common::wait_until(LIVE, || b.text("h1") == one && b.text("#live") == "live");
    assert!(page, "machine one's page never went live");
    b.eval("window.sixbootMarker = 9");
    assert!(!b.text("main").contains("none running"), "the step runs");
    let body = step_report("inventory", one, "SRV-0101", None);
    let r = post_report(&lab, &c, one, body.as_bytes(), Some(&token));
    assert_eq!(r.status, 200, "{}", r.text());
    let swapped = b.wait_text("main", "From the inventory report", LIVE);
    assert!(
        swapped.is_ok(),
        "the page never showed the new report: {swapped:?}"
    );
    assert_eq!(b.eval("window.sixbootMarker"), 9, "the page reloaded");
    let text = b.eval("document.querySelector('main').innerText");
    let text = text.as_str().unwrap();
    for want in [
        "SRV-0101",
        "QEMU Virtual CPU version 2.5+",
        "DIMM 1\t2 GiB\tDDR4\t2400",
        "sda\tDSK-0101\tQEMU HARDDISK\t960 GB\tssd\tsata\thealthy\t1200",
        "eth0\t52:54:00:00:01:01\te1000\t1000\tup",
        "cpu\tstress\tok\terrors 0 exit_code 0 seconds 20.0",
        "exit code 0 and no verification errors",
        "disk:DSK-0101\tself_test\tok\tstatus passed",
        "inventory · ",
        "burnin · ",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    // Tall enough for the inventory below the checks.
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1280, "height": 1500, "deviceScaleFactor": 1, "mobile": false}),
    );
    b.screenshot(&artifacts_dir().join("machine-operator.png"));
    b.call("Emulation.clearDeviceMetricsOverride", json!({}));

    // Machine three's page: its serial is text there too, its failing disk says so.
    b.call(
        "Page.navigate",
        json!({"url": format!("{}/machines/{three}", base())}),
    );
    let page = common::wait_until(LIVE, || b.text("h1") == three);
    assert!(page, "machine three's page never showed");
    assert!(b.text("#subtitle").contains(hostile));
    assert!(b.text("main").contains("FAILED"));
    assert_eq!(
        b.eval("[!!document.querySelector('main img, #subtitle img'), window.pwned || 0]"),
        json!([false, 0])
    );

    let st = lab.stop(pid).expect("sixboot stops");
    assert!(st.success(), "{st:?}");
}

#[test]
fn without_an_admin_token_the_sign_in_says_changes_are_disabled() {
    let (mut lab, _c, _, pid) = started("dashnoadmin", "");
    let mut b = Browser::open(&lab.ns, &format!("{}/", base()));
    let loaded = common::wait_until(LIVE, || b.text("#live") == "live");
    assert!(loaded, "the page never went live");
    b.fill("#token", ADMIN);
    b.click("#signin button[type=submit]");
    let said = b.wait_text("#auth-msg", "Changes are disabled", LIVE);
    assert!(said.is_ok(), "no explanation: {said:?}");
    assert!(!b.visible("#bulk"));
    assert_eq!(b.eval(TOKEN_KEPT), Value::Null);
    let st = lab.stop(pid).expect("sixboot stops");
    assert!(st.success(), "{st:?}");
}
