//! The command line as an operator uses it: `check` pinpoints problems, `explain` tells
//! what each client would get, `serve` refuses a bad config and stops cleanly.

use std::process::Command;

fn sixboot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sixboot"))
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

const GOOD: &str = r#"interface = "lo"
state_dir = "state"

[dhcp4]
subnet = "192.168.1.0/24"
pool = ["192.168.1.10", "192.168.1.254"]

[boot]
bios = "undionly.kpxe"
uefi_x64 = "snponly.efi"

[tftp]
root = "tftp"
"#;

fn good_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "tftp/undionly.kpxe", "x");
    write(d.path(), "tftp/snponly.efi", "x");
    d
}

#[test]
fn check_accepts_a_good_config() {
    let d = good_dir();
    let cfg = write(d.path(), "ok.toml", GOOD);
    let out = sixboot()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_prints_every_problem_with_line_and_column_and_exits_1() {
    let d = good_dir();
    std::fs::remove_file(d.path().join("tftp/snponly.efi")).unwrap();
    let bad = GOOD
        .replace("interface = \"lo\"", "interface = \"nosuch9\"")
        .replace("\"192.168.1.254\"", "\"192.168.2.254\"")
        .replace("[tftp]", "colour = \"blue\"\n[tftp]")
        .replace(
            "subnet = \"192.168.1.0/24\"",
            "subnet = \"192.168.1.0/24\"\nnext_server = \"192.168.1.999\"",
        );
    let cfg = write(d.path(), "bad.toml", &bad);
    let out = sixboot()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    let f = cfg.display().to_string();
    for want in [
        format!("{f}:1:13: interface `nosuch9` does not exist"),
        format!("{f}:6:15: dhcp4.next_server: `192.168.1.999` is not an IPv4 address"),
        format!("{f}:7:25: pool address 192.168.2.254 is outside subnet 192.168.1.0/24"),
        format!("{f}:11:12: boot.uefi_x64: `snponly.efi` is missing from the tftp root"),
        format!("{f}:13:1: unknown key `colour` in [boot]"),
    ] {
        assert!(err.contains(&want), "missing `{want}` in:\n{err}");
    }
    assert_eq!(err.lines().count(), 5, "{err}");
}

/// `sixboot explain --config CFG --client KIND`, run.
fn explain(cfg: &std::path::Path, kind: &str) -> std::process::Output {
    sixboot()
        .args(["explain", "--config"])
        .arg(cfg)
        .args(["--client", kind])
        .output()
        .unwrap()
}

#[test]
fn explain_covers_every_client_kind() {
    let d = good_dir();
    let cfg = write(d.path(), "ok.toml", GOOD);
    let run = |kind: &str| {
        let out = explain(&cfg, kind);
        assert!(
            out.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(run("bios").contains("file \"undionly.kpxe\""));
    assert!(run("uefi-x64").contains("file \"snponly.efi\""));
    assert!(run("uefi-arm64").contains("no answer (reason no_boot_file_for_arch)"));
    assert!(run("ipxe-bios").contains("no answer (reason ipxe)"));
    assert!(run("ipxe-efi").contains("no answer (reason ipxe)"));
    assert!(run("http-x64").contains("no answer (reason http_boot_disabled)"));
    assert!(run("os").contains("no answer (reason not_firmware)"));
    let out = explain(&cfg, "toaster");
    assert!(!out.status.success());
}

#[test]
fn explain_says_when_dhcp4_is_off() {
    let d = good_dir();
    let v6only = GOOD.replace(
        "[dhcp4]\nsubnet = \"192.168.1.0/24\"\npool = [\"192.168.1.10\", \"192.168.1.254\"]\n",
        "",
    );
    let cfg = write(d.path(), "v6.toml", &v6only);
    let out = explain(&cfg, "bios");
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("DHCPv4: off")
    );
}

#[test]
fn serve_refuses_a_bad_config_with_the_problems() {
    let d = good_dir();
    let cfg = write(d.path(), "bad.toml", &GOOD.replace("[tftp]", "[tfpt]"));
    let out = sixboot()
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("unknown key `tfpt`")
    );
}

#[test]
fn explain_covers_dhcpv6_and_router_advertisements() {
    let d = good_dir();
    let v6 = format!(
        "{GOOD}\n[ipv6]\nprefix = \"fd00:1::/64\"\npool = [\"fd00:1::100\", \"fd00:1::1ff\"]\n\
         dns = [\"fd00:1::53\"]\n\n[http]\nlisten = [\"[::]:8080\"]\nroot = \"tftp\"\n"
    );
    let cfg = write(d.path(), "v6.toml", &v6);
    let run = |kind: &str| {
        let text = String::from_utf8(explain(&cfg, kind).stdout).unwrap();
        let line = |p: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(p))
                .unwrap_or_else(|| panic!("{kind}: no {p} line in\n{text}"))
                .to_string()
        };
        (line("RA:"), line("DHCPv6:"))
    };
    let (ra, v6) = run("ipxe-bios");
    assert!(ra.contains("M=1 O=1, prefix fd00:1::/64 on-link, autonomous off, router lifetime 0 s, RDNSS fd00:1::53"), "{ra}");
    assert!(
        v6.contains("an address from fd00:1::100-fd00:1::1ff"),
        "{v6}"
    );
    assert!(
        v6.contains("\"http://[lo's address]:8080/boot.ipxe\""),
        "{v6}"
    );
    assert!(run("ipxe-efi").1.contains("/boot.ipxe\""));
    assert!(
        run("uefi-x64")
            .1
            .contains("\"tftp://[lo's address]/snponly.efi\"")
    );
    assert!(
        run("bios")
            .1
            .contains("\"tftp://[lo's address]/undionly.kpxe\"")
    );
    assert!(
        run("uefi-arm64")
            .1
            .contains("no boot URL (reason no_boot_file_for_arch)")
    );
    let http = run("http-x64").1;
    assert!(
        http.contains(
            "\"http://[lo's address]:8080/boot/snponly.efi\", vendor class HTTPClient echoed"
        ),
        "{http}"
    );
    let os = run("os").1;
    assert!(
        os.contains("DNS fd00:1::53") && os.contains("no boot URL (reason os)"),
        "{os}"
    );
}

#[test]
fn check_and_serve_refuse_a_root_other_users_can_write() {
    use std::os::unix::fs::PermissionsExt;
    let d = good_dir();
    let cfg = write(d.path(), "ok.toml", GOOD);
    let tftp = d.path().join("tftp");
    std::fs::set_permissions(&tftp, std::fs::Permissions::from_mode(0o777)).unwrap();
    let f = cfg.display().to_string();
    let want = format!(
        "{f}:13:8: tftp.root: refusing to serve {}: {} is writable by every user (mode 0777)",
        tftp.display(),
        tftp.canonicalize().unwrap().display()
    );
    for cmd in ["check", "serve"] {
        let out = sixboot()
            .args([cmd, "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
        assert!(err.contains(&want), "{cmd}: missing `{want}` in:\n{err}");
    }
}

#[test]
fn check_warns_about_a_root_sixboot_itself_can_write() {
    let d = good_dir();
    let cfg = write(d.path(), "ok.toml", GOOD);
    let out = sixboot()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{err}");
    // These tests run as root (or as the tempdir's owner): sixboot can write the root.
    let want = format!(
        "{}:13:8: warning: tftp.root: sixboot can write {}",
        cfg.display(),
        d.path().join("tftp").display()
    );
    assert!(err.contains(&want), "missing `{want}` in:\n{err}");
}

/// GOOD plus an `[http]` table whose templates folder is `templates`.
fn with_templates(d: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(d.join("http")).unwrap();
    std::fs::create_dir_all(d.join("templates")).unwrap();
    let text = format!(
        "{GOOD}\n[http]\nlisten = [\"[::1]:8080\"]\nroot = \"http\"\ntemplates = \"templates\"\n"
    );
    write(d, "t.toml", &text)
}

#[test]
fn check_and_serve_refuse_a_broken_template_with_its_file_and_line() {
    let d = good_dir();
    let cfg = with_templates(d.path());
    let tpl = write(
        d.path(),
        "templates/machine.ipxe",
        "#!ipxe\n# {{ platform }}\n{% for item in boot.items %}\necho {{ item.title }\n{% endfor %}\n",
    );
    let want = format!(
        "{}:4:20: syntax error: unexpected `}}`, expected end of variable block",
        tpl.display()
    );
    for cmd in ["check", "serve"] {
        let out = sixboot()
            .args([cmd, "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
        assert!(err.contains(&want), "{cmd}: missing `{want}` in:\n{err}");
        assert_eq!(
            err.lines().filter(|l| l.contains("error")).count(),
            1,
            "{err}"
        );
    }
    // A render error in an included file points into that file.
    write(
        d.path(),
        "templates/machine.ipxe",
        "#!ipxe\n{% include \"menu/head.ipxe\" %}\n",
    );
    let head = write(
        d.path(),
        "templates/menu/head.ipxe",
        "echo {{ boot.nosuch|upper }} {{ 1 / 0 }}\n",
    );
    let out = sixboot()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    let want = format!("{}:1:", head.display());
    assert!(err.starts_with(&want), "missing `{want}` in:\n{err}");
}

#[test]
fn check_accepts_a_good_template_override() {
    let d = good_dir();
    let cfg = with_templates(d.path());
    write(
        d.path(),
        "templates/machine.ipxe",
        "#!ipxe\n# {{ machine.mac }} {{ platform }}: {{ why|ipxe_text }}\n{% include \"items.ipxe\" %}\n",
    );
    write(
        d.path(),
        "templates/items.ipxe",
        "{% for item in boot.items %}\necho {{ item.title|ipxe_text }} {{ base }}/{{ item.kernel|urlpath }}\n{% endfor %}\nexit\n",
    );
    let out = sixboot()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(": ok\n"));
}

/// GOOD with IPv6, HTTP on both families, a menu and one pinned host.
const FULL: &str = r#"
[ipv6]
prefix = "fd00:1::/64"
pool = ["fd00:1::100", "fd00:1::1ff"]

[http]
listen = ["[::]:8080", "0.0.0.0:8080"]
root = "http"

[menu]
default = "memtest"
timeout = 5

[[menu.item]]
id = "memtest"
title = "Memtest86+"
bios = "memtest86+x64.bin"
efi = "memtest86+x64.efi"

[[menu.item]]
id = "dos"
title = "DOS flash tool"
bios = "dos/flash.bin"

[[menu.item]]
id = "burnin"
title = "CPU burn-in"
kernel = "burnin/vmlinuz"
initrd = "burnin/initrd.img"
args = "console=ttyS0,115200"

[[host]]
mac = "52:54:00:00:00:01"
boot = "memtest"
"#;

/// Compares with `tests/golden/NAME`, the test's folder shown as `DIR`;
/// `UPDATE_GOLDEN=1` rewrites the file instead.
fn golden(name: &str, dir: &std::path::Path, got: &str) {
    let got = got.replace(&dir.display().to_string(), "DIR");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(got, want, "{name} differs from the golden file");
}

/// `explain` output for `kind` (and `--mac`), checked to succeed.
fn explained(cfg: &std::path::Path, kind: &str, mac: Option<&str>) -> String {
    let mut c = sixboot();
    c.args(["explain", "--config"])
        .arg(cfg)
        .args(["--client", kind]);
    if let Some(m) = mac {
        c.args(["--mac", m]);
    }
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{kind}: {err}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn explain_golden_every_kind_with_tftp_and_http() {
    let d = good_dir();
    std::fs::write(d.path().join("tftp/undionly.kpxe"), vec![0u8; 70_000]).unwrap();
    std::fs::remove_file(d.path().join("tftp/snponly.efi")).unwrap();
    let cfg = write(d.path(), "full.toml", &format!("{GOOD}{FULL}"));
    for kind in [
        "bios",
        "uefi-x64",
        "uefi-arm64",
        "ipxe-bios",
        "ipxe-efi",
        "http-x64",
        "os",
    ] {
        golden(
            &format!("explain-{kind}.txt"),
            d.path(),
            &explained(&cfg, kind, None),
        );
    }
    golden(
        "explain-ipxe-efi-pinned.txt",
        d.path(),
        &explained(&cfg, "ipxe-efi", Some("52:54:00:00:00:01")),
    );
}

/// The TFTP and HTTP lines of `explain` output.
fn fetch_lines(text: &str) -> (String, String) {
    let tftp = text.lines().find(|l| l.starts_with("  TFTP:")).unwrap();
    let http = text.split_once("  HTTP:").unwrap().1;
    (tftp.to_string(), http.to_string())
}

#[test]
fn explain_tftp_names_the_file_its_size_and_every_refusal_reason() {
    let d = good_dir();
    let cfg = write(d.path(), "ok.toml", GOOD);
    let root = d.path().join("tftp").display().to_string();
    let (tftp, _) = fetch_lines(&explained(&cfg, "bios", None));
    assert_eq!(
        tftp,
        format!(
            "  TFTP:   RRQ \"undionly.kpxe\" over IPv4 from [tftp] root {root}: present, 1 bytes"
        )
    );
    // The same path rules as the TFTP server, with its reason names.
    std::fs::remove_file(d.path().join("tftp/snponly.efi")).unwrap();
    let outside = write(d.path(), "outside.efi", "x");
    std::os::unix::fs::symlink(outside, d.path().join("tftp/snponly.efi")).unwrap();
    let (tftp, _) = fetch_lines(&explained(&cfg, "uefi-x64", None));
    assert!(
        tftp.ends_with("refused (reason path_symlink_escape): access violation"),
        "{tftp}"
    );
    std::fs::remove_file(d.path().join("tftp/snponly.efi")).unwrap();
    let (tftp, _) = fetch_lines(&explained(&cfg, "uefi-x64", None));
    assert!(
        tftp.ends_with("refused (reason not_found): file not found"),
        "{tftp}"
    );
    let (tftp, _) = fetch_lines(&explained(&cfg, "uefi-arm64", None));
    assert!(
        tftp.contains("nothing to fetch (reason no_boot_file_for_arch)"),
        "{tftp}"
    );
    for (kind, want) in [
        ("ipxe-efi", "not used: iPXE"),
        ("http-x64", "not used: UEFI HTTP boot"),
        ("os", "not used: not boot firmware"),
    ] {
        let (tftp, _) = fetch_lines(&explained(&cfg, kind, None));
        assert!(tftp.contains(want), "{kind}: {tftp}");
    }
    // No IPv6 and no HTTP: iPXE is never sent anywhere; HTTP boot is refused on v4.
    let (_, http) = fetch_lines(&explained(&cfg, "ipxe-bios", None));
    assert!(http.contains("not reached: no [ipv6] table"), "{http}");
    let (_, http) = fetch_lines(&explained(&cfg, "http-x64", None));
    assert!(
        http.contains("IPv4: no URL (reason http_boot_disabled)"),
        "{http}"
    );
}

#[test]
fn explain_mac_follows_the_host_pin_and_the_stored_next_action() {
    use sixboot::store::{Change, SqliteStore, Store};
    let d = good_dir();
    let cfg = write(d.path(), "full.toml", &format!("{GOOD}{FULL}"));
    let (_, http) = fetch_lines(&explained(&cfg, "ipxe-bios", Some("52:54:00:00:00:01")));
    assert!(
        http.contains("[[host]] pin `memtest`, no next action in the store")
            && http.contains(
                "no menu (decision `host pinned to an item`): boots memtest \"Memtest86+\": memtest86+x64.bin"
            ),
        "{http}"
    );
    assert!(!d.path().join("state").exists(), "explain creates no store");
    // A next action the API set wins over the pin, read from the store.
    let mut store = SqliteStore::open(&d.path().join("state")).unwrap();
    store
        .commit(&[Change::Machine {
            mac: [0x52, 0x54, 0, 0, 0, 1],
            record: r#"{"next":"burnin"}"#.into(),
        }])
        .unwrap();
    let (_, http) = fetch_lines(&explained(&cfg, "ipxe-efi", Some("52-54-00-00-00-01")));
    assert!(
        http.contains("next action `burnin` from its pipeline (read from the store)")
            && http.contains("no menu (decision `next action: a step`): boots burnin \"CPU burn-in\": burnin/vmlinuz, initrd burnin/initrd.img")
            && http.contains("runs the step with \"sixboot.step=burnin sixboot.duration=1800 sixboot.read_bytes=1073741824 sixboot.self_test=1\""),
        "{http}"
    );
    // A store that cannot be read is said, with where to look instead.
    drop(store);
    let db = d.path().join("state/leases.sqlite");
    for f in ["leases.sqlite-wal", "leases.sqlite-shm"] {
        let _ = std::fs::remove_file(d.path().join("state").join(f));
    }
    std::fs::write(
        &db,
        b"not a database, not at all; long enough to have a header....",
    )
    .unwrap();
    let (_, http) = fetch_lines(&explained(&cfg, "ipxe-efi", Some("52:54:00:00:00:01")));
    assert!(
        http.contains("the store cannot be read (")
            && http.contains("(GET /api/v1/machines/52:54:00:00:00:01)")
            && http.contains("decision `host pinned to an item`"),
        "{http}"
    );
    let out = explain(&cfg, "ipxe-efi");
    assert!(out.status.success());
    let bad = sixboot()
        .args(["explain", "--config"])
        .arg(&cfg)
        .args(["--client", "ipxe-efi", "--mac", "52:54:00"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a MAC like"));
}
