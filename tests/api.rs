//! The machines API over real sockets: sixboot runs in a lab namespace, and `curl` in a
//! client namespace plays iPXE (fetching per-machine scripts), the burn-in image
//! (posting reports) and the operator (setting next actions).

mod common;

use common::curl::curl;
use common::machines::*;
use common::wait_until;
use serde_json::Value;
use std::time::Duration;

#[test]
fn next_actions_need_the_admin_token_and_steer_the_script() {
    let api = format!(
        "\n[api]\nadmin_token = \"{ADMIN}\"\n\n[[host]]\nmac = \"{MAC}\"\nboot = \"memtest\"\n"
    );
    let (lab, c, _, _) = started("apinext", &api);
    // The host pin is the default until the API says otherwise.
    let s = script(&lab, &c, MAC, "");
    assert!(s.contains("\ngoto item-memtest\n"), "{s}");
    assert!(burnin_args(&s).is_none(), "{s}");

    let body = r#"{"next":"burnin"}"#;
    assert_eq!(put_next(&lab, &c, MAC, body, None).status, 401);
    let wrong = put_next(&lab, &c, MAC, body, Some("nope"));
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.header("www-authenticate"), Some("Bearer"));
    let unknown = put_next(&lab, &c, MAC, r#"{"next":"doom"}"#, Some(ADMIN));
    assert_eq!(unknown.status, 422);
    assert_eq!(
        json(&unknown)["error"],
        "unknown step `doom`; steps: inventory, burnin, memtest; ends: local, menu, poweroff",
        "{}",
        unknown.text()
    );
    let bad_pipeline = put_next(
        &lab,
        &c,
        MAC,
        r#"{"pipeline":["inventory","local","burnin"]}"#,
        Some(ADMIN),
    );
    assert_eq!(bad_pipeline.status, 422);
    assert_eq!(
        json(&bad_pipeline)["error"],
        "`local` ends a pipeline: it can only come last"
    );
    assert_eq!(
        put_next(&lab, &c, MAC, r#"{"nxt":1}"#, Some(ADMIN)).status,
        422
    );
    assert_eq!(put_next(&lab, &c, MAC, "{", Some(ADMIN)).status, 400);
    assert_eq!(
        put_next(&lab, &c, "52-54-00-12-34-56", body, Some(ADMIN)).status,
        400
    );
    assert_eq!(
        put_next(&lab, &c, "52:54:00:12:34:5G", body, Some(ADMIN)).status,
        400
    );

    let set = put_next(&lab, &c, MAC, body, Some(ADMIN));
    assert_eq!(set.status, 200, "{}", set.text());
    assert_eq!(json(&set)["next"], "burnin");
    assert_eq!(json(&set)["next_from"], "api");
    let s = script(&lab, &c, MAC, "");
    assert!(s.contains("\ngoto item-burnin\n"), "{s}");
    let (url, token) = burnin_args(&s).expect("burn-in args");
    assert_eq!(url, format!("{}/api/v1/machines/{MAC}/report", base()));
    assert!(
        token.len() == 32
            && token
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{token}"
    );
    // Each script that can boot the burn-in gets a new token.
    let (_, again) = burnin_args(&script(&lab, &c, MAC, "")).unwrap();
    assert_ne!(token, again);

    assert_eq!(
        put_next(&lab, &c, MAC, r#"{"next":"local"}"#, Some(ADMIN)).status,
        200
    );
    let s = script(&lab, &c, MAC, "");
    assert!(
        s.contains("\ngoto local\n") && !s.contains("\nchoose"),
        "{s}"
    );
    assert!(s.contains(":local\nexit\n"), "local boot on EFI: {s}");

    assert_eq!(
        put_next(&lab, &c, MAC, r#"{"next":"menu"}"#, Some(ADMIN)).status,
        200
    );
    let s = script(&lab, &c, MAC, "");
    assert!(
        s.contains("\nchoose --timeout 5000 --default item-memtest"),
        "{s}"
    );
    // From the menu, the burn-in entry still carries a token of its own.
    assert!(burnin_args(&s).is_some(), "{s}");

    // A machine never seen can be set up front.
    let other = "52:54:00:00:00:99";
    assert_eq!(put_next(&lab, &c, other, body, Some(ADMIN)).status, 200);
    let v = wait_step(&lab, &c, MAC, "http script");
    let next_steps: Vec<&str> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["stage"] == "next")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        next_steps,
        [
            "burnin (was unset)",
            "local (was burnin)",
            "menu (was local)"
        ]
    );
}

#[test]
fn pipelines_specs_and_bulk_changes_are_checked_whole() {
    let admin = format!("\n[api]\nadmin_token = \"{ADMIN}\"\n");
    let (lab, c, _, _) = started("apibulk", &admin);
    let other = "52:54:00:00:00:42";
    let post =
        |path: &str, body: &str, token: Option<&str>| api(&lab, &c, "POST", path, body, token);
    let bulk = |body: &str| post("/api/v1/machines/bulk", body, Some(ADMIN));
    assert_eq!(post("/api/v1/machines/bulk", "{}", None).status, 401);
    let steps =
        format!(r#"{{"macs":["{MAC}","{other}"],"pipeline":["inventory","burnin","fry"]}}"#);
    let r = bulk(&steps);
    assert_eq!(r.status, 422);
    assert!(
        json(&r)["error"]
            .as_str()
            .unwrap()
            .starts_with("unknown step `fry`; steps: inventory")
    );
    let r = bulk(&format!(
        r#"{{"macs":["{MAC}","nope"],"next":"inventory"}}"#
    ));
    assert_eq!(
        (
            r.status,
            json(&r)["error"].as_str().unwrap().starts_with("macs[1]:")
        ),
        (422, true)
    );
    let r = bulk(&format!(
        r#"{{"macs":["{MAC}"],"spec":{{"memory_bytes":-4}}}}"#
    ));
    assert_eq!(r.status, 422);
    assert!(
        json(&r)["error"]
            .as_str()
            .unwrap()
            .starts_with("spec.memory_bytes:"),
        "{}",
        r.text()
    );
    let r = bulk(&format!(r#"{{"macs":["{MAC}"],"spec":{{"cpus":100000}}}}"#));
    assert_eq!(r.status, 422);
    // None of the refused changes made a record.
    assert_eq!(
        json(&curl(&lab, &c, &format!("{}/api/v1/machines", base()), &[])),
        serde_json::json!([])
    );

    let r = bulk(&format!(
        r#"{{"macs":["{MAC}","{other}"],"pipeline":["inventory","burnin","poweroff"],"batch":"lot-7","spec":{{"memory_bytes":2147483648}}}}"#
    ));
    assert_eq!(
        (r.status, json(&r)["changed"].as_u64()),
        (200, Some(2)),
        "{}",
        r.text()
    );
    let v = json(&machine(&lab, &c, other));
    assert_eq!(
        v["pipeline"],
        serde_json::json!({"steps": ["inventory", "burnin", "poweroff"], "at": 0})
    );
    assert_eq!(
        (&v["batch"], &v["next"]),
        (&"lot-7".into(), &"inventory".into())
    );
    assert_eq!(v["spec"]["memory_bytes"], 2147483648u64);

    // The inventory step boots the burn-in image with its own run; its report moves the
    // pipeline on and is judged against the spec.
    let s = script(&lab, &c, MAC, "");
    assert!(
        s.contains(" sixboot.step=inventory sixboot.duration=10 "),
        "{s}"
    );
    let (_, token) = burnin_args(&s).unwrap();
    let r = post_report(
        &lab,
        &c,
        MAC,
        report("inventory", None).as_bytes(),
        Some(&token),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (&json(&r)["result"], &json(&r)["then"]),
        (&"FAIL system spec".into(), &"reboot".into())
    );
    let v = json(&machine(&lab, &c, MAC));
    assert_eq!(
        (&v["next"], &v["verdict"]["spec"]),
        (&"burnin".into(), &false.into())
    );
    assert!(
        v["report"]["checks"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("memory 4 GiB, expected 2 GiB")
    );
    let s = script(&lab, &c, MAC, "");
    assert!(
        s.contains(" sixboot.step=burnin sixboot.duration=20 "),
        "{s}"
    );

    // The spec fixed through the API: the same report is judged again at once.
    let put = put_spec(
        &lab,
        &c,
        MAC,
        r#"{"memory_bytes":4294967296,"disks":1}"#,
        Some(ADMIN),
    );
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(json(&put)["result"], "PASS");
    let r = curl(
        &lab,
        &c,
        &format!("{}/api/v1/auth", base()),
        &["-H", &format!("Authorization: Bearer {ADMIN}")],
    );
    assert_eq!(r.status, 204);
    let r = curl(&lab, &c, &format!("{}/api/v1/actions", base()), &[]);
    assert_eq!(
        json(&r)["steps"],
        serde_json::json!(["inventory", "burnin", "memtest"])
    );
}

#[test]
fn without_an_admin_token_next_actions_are_disabled() {
    let (lab, c, _, _) = started("apinoadmin", "");
    let r = put_next(&lab, &c, MAC, r#"{"next":"burnin"}"#, Some("anything"));
    assert_eq!(r.status, 403);
    assert!(
        json(&r)["error"]
            .as_str()
            .unwrap()
            .contains("[api] admin_token"),
        "{}",
        r.text()
    );
}

#[test]
fn reports_are_checked_stored_and_survive_kill_9() {
    let api = format!("\n[api]\nadmin_token = \"{ADMIN}\"\n");
    let (mut lab, c, cfg, pid) = started("apireport", &api);
    assert_eq!(
        put_next(&lab, &c, MAC, r#"{"next":"burnin"}"#, Some(ADMIN)).status,
        200
    );
    let zero = "00000000-0000-0000-0000-000000000000";
    let (_, token) = burnin_args(&script(&lab, &c, MAC, zero)).expect("burn-in args");
    let good = report("burnin", None);

    let unknown = post_report(&lab, &c, "52:54:00:00:00:77", good.as_bytes(), Some(&token));
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    assert_eq!(
        post_report(&lab, &c, MAC, good.as_bytes(), None).status,
        401
    );
    let wrong = post_report(&lab, &c, MAC, good.as_bytes(), Some(&"0".repeat(32)));
    assert_eq!(wrong.status, 401);
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(300 << 10));
    assert_eq!(
        post_report(&lab, &c, MAC, big.as_bytes(), Some(&token)).status,
        413
    );
    let malformed = post_report(&lab, &c, MAC, b"{\"step\": pa", Some(&token));
    assert_eq!(malformed.status, 400);
    assert!(
        json(&malformed)["error"]
            .as_str()
            .unwrap()
            .contains("malformed JSON")
    );
    let missing = post_report(&lab, &c, MAC, br#"{"step":"burnin"}"#, Some(&token));
    assert_eq!(missing.status, 422);
    assert!(
        json(&missing)["error"]
            .as_str()
            .unwrap()
            .contains("duration_s"),
        "{}",
        missing.text()
    );
    // Each refusal names the field's path: unknown component, wrong type, out of range.
    let mut v: Value = serde_json::from_str(&good).unwrap();
    v["checks"][0]["component"] = "gpu".into();
    let unknown_part = post_report(&lab, &c, MAC, v.to_string().as_bytes(), Some(&token));
    assert_eq!(unknown_part.status, 422);
    assert_eq!(json(&unknown_part)["path"], "checks[0].component");
    let mut v: Value = serde_json::from_str(&good).unwrap();
    v["inventory"]["memory"]["bytes"] = "1 GiB".into();
    let wrong_type = post_report(&lab, &c, MAC, v.to_string().as_bytes(), Some(&token));
    assert_eq!(json(&wrong_type)["path"], "inventory.memory.bytes");
    let mut v: Value = serde_json::from_str(&good).unwrap();
    v["inventory"]["disks"][0]["smart"]["temperature_c"] = 5000.into();
    let range = post_report(&lab, &c, MAC, v.to_string().as_bytes(), Some(&token));
    assert_eq!(range.status, 422);
    assert_eq!(
        json(&range)["path"],
        "inventory.disks[0].smart.temperature_c"
    );
    assert!(
        json(&range)["error"]
            .as_str()
            .unwrap()
            .contains("5000 is out of range"),
        "{}",
        range.text()
    );
    assert_eq!(
        post_report(&lab, &c, "52-54-00-12-34-56", good.as_bytes(), Some(&token)).status,
        400
    );
    // Nothing bad was stored.
    assert_eq!(json(&machine(&lab, &c, MAC))["result"], Value::Null);

    let ok = post_report(&lab, &c, MAC, good.as_bytes(), Some(&token));
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(json(&ok)["stored"], true);
    assert_eq!(json(&ok)["then"], "stay", "a burn-in run by hand");
    let v = json(&machine(&lab, &c, MAC));
    assert_eq!(
        (&v["result"], &v["state"]),
        (&"PASS".into(), &"pass".into())
    );
    assert_eq!(v["report"]["inventory"]["disks"][0]["serial"], "DSK-3456");
    assert_eq!(v["report"]["checks"][0]["component"], "cpu");
    assert_eq!(v["report"]["checks"][0]["ok"], true);
    assert_eq!(v["verdict"]["result"], "pass");
    assert_eq!(v["uuid"], zero);
    assert!(v.get("token").is_none(), "tokens are never shown: {v}");
    assert!(stages(&v).contains(&"api report".to_string()), "{v}");
    wait_step(&lab, &c, MAC, "http script");

    // A second machine with the same all-zero UUID is a record of its own.
    let twin = "52:54:00:12:34:57";
    script(&lab, &c, twin, zero);
    let list = json(&curl(&lab, &c, &format!("{}/api/v1/machines", base()), &[]));
    let macs: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mac"].as_str().unwrap())
        .collect();
    assert!(macs.contains(&MAC) && macs.contains(&twin), "{macs:?}");
    assert_eq!(macs.len(), 2, "{macs:?}");

    // Protocol steps are written in batches, shortly after the answer: wait (bounded)
    // until the script step is in the database, as sqlite3 reads it.
    let db = lab.dir.path().join("state/leases.sqlite");
    let written = wait_until(Duration::from_secs(5), || {
        let out = std::process::Command::new("sqlite3")
            .arg(&db)
            .arg("SELECT count(*) FROM machine_events WHERE stage = 'script'")
            .output()
            .expect("run sqlite3");
        String::from_utf8_lossy(&out.stdout).trim() == "2"
    });
    assert!(written, "the script steps never reached the database");

    // kill -9, then a restart: the record, its report, next action and token are there.
    lab.kill9(pid);
    lab.start_sixboot(&cfg);
    assert!(ready(&lab, &c), "no restart:\n{}", lab.log());
    let v = json(&machine(&lab, &c, MAC));
    // The pipeline of one step is done: the machine is back at the menu.
    assert_eq!((&v["result"], &v["next"]), (&"PASS".into(), &"menu".into()));
    let st = stages(&v);
    for want in ["api next", "http script", "api report"] {
        assert!(
            st.iter().any(|s| s == want),
            "{want} missing after restart: {st:?}"
        );
    }
    // The image retries after a restart: the token it booted with still works.
    let failed = report("burnin", Some("edac"));
    let again = post_report(&lab, &c, MAC, failed.as_bytes(), Some(&token));
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(json(&machine(&lab, &c, MAC))["result"], "FAIL memory edac");
    assert!(script(&lab, &c, MAC, zero).contains("\nchoose "));
}

#[test]
fn read_endpoints_are_open_and_unknown_machines_are_404() {
    let (lab, c, _, _) = started("apiread", "");
    let list = curl(&lab, &c, &format!("{}/api/v1/machines", base()), &[]);
    assert_eq!(list.status, 200);
    assert_eq!(list.header("content-type"), Some("application/json"));
    assert_eq!(json(&list), serde_json::json!([]));
    assert_eq!(machine(&lab, &c, MAC).status, 404);
    assert_eq!(machine(&lab, &c, "52:54:00:12:34:5").status, 400);
    script(&lab, &c, MAC, "");
    let v = wait_step(&lab, &c, MAC, "http script");
    assert_eq!(
        (&v["platform"], &v["product"], &v["next"], &v["next_from"]),
        (
            &"efi".into(),
            &"Standard PC".into(),
            &"menu".into(),
            &"default".into()
        )
    );
    // The dashboard lists it; the static files are still served beside it.
    let page = curl(&lab, &c, &format!("{}/", base()), &[]);
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains(&format!("data-mac=\"{MAC}\"")),
        "{}",
        page.text()
    );
    assert!(page.text().contains("name=\"viewport\""));
    let one = curl(&lab, &c, &format!("{}/machines/{MAC}", base()), &[]);
    assert_eq!(one.status, 200);
    assert!(one.text().contains("http script"), "{}", one.text());
    let file = curl(&lab, &c, &format!("{}/burnin/vmlinuz", base()), &[]);
    assert_eq!((file.status, file.body.as_slice()), (200, &b"kernel"[..]));
}

#[test]
fn dhcpv6_fills_in_the_record_duid_iaid_and_address() {
    let v6 = "\n[ipv6]\nprefix = \"fd00:1::/64\"\npool = [\"fd00:1::100\", \"fd00:1::1ff\"]\n";
    let (lab, c, _, _) = started("apidhcp6", v6);
    let link =
        String::from_utf8(common::exec_in(&c, &["cat", "/sys/class/net/eth0/address"]).stdout)
            .unwrap();
    let mac = link.trim();
    let leases = lab.dir.path().join("dhclient6.leases");
    let pid = lab.dir.path().join("dhclient6.pid");
    let mut dhclient = common::cmd_in(&c, "timeout")
        .args([
            "30",
            "dhclient",
            "-6",
            "-1",
            "-d",
            "-sf",
            "/bin/true",
            "-lf",
        ])
        .arg(&leases)
        .arg("-pf")
        .arg(&pid)
        .arg("eth0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start dhclient");
    let got = wait_until(Duration::from_secs(25), || {
        std::fs::read_to_string(&leases).is_ok_and(|l| l.contains("iaaddr"))
    });
    // `timeout` passes SIGTERM on to dhclient.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &dhclient.id().to_string()])
        .status();
    let _ = dhclient.wait();
    assert!(got, "dhclient got no lease");
    let v = wait_step(&lab, &c, mac, "dhcp6 answered");
    let addr = std::fs::read_to_string(&leases).unwrap();
    let addr = addr
        .split("iaaddr ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("an iaaddr");
    assert!(
        v["addresses"].as_array().unwrap().iter().any(|a| a == addr),
        "{addr} not among {}",
        v["addresses"]
    );
    let duid = v["duid"].as_str().unwrap();
    assert!(
        duid.len() >= 8 && duid.bytes().all(|b| b.is_ascii_hexdigit()),
        "{v}"
    );
    assert!(v["iaid"].is_u64(), "{v}");
}
