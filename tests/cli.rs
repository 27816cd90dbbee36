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
