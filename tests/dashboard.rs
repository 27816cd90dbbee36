//! The dashboard in a real headless Chromium: rows change live (Server-Sent Events) as a
//! machine boots, burns and reports, with no reload; the page stays usable at phone
//! width. Screenshots go to target/test-artifacts/.

mod common;

use common::browser::{Browser, artifacts_dir};
use common::curl::curl;
use common::machines::*;
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
    std::thread::sleep(Duration::from_secs(2));
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
