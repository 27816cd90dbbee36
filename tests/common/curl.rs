//! A real `curl` in a lab namespace, and iPXE's URL expansion: how the tests talk HTTP
//! to sixboot as iPXE, the burn-in image or an operator would.

use super::{Lab, cmd_in};

pub struct Reply {
    pub status: u16,
    /// Header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `curl -g URL ARGS` from namespace `ns` (bounded to 60 s); status 0 when curl failed.
pub fn curl(lab: &Lab, ns: &str, url: &str, args: &[&str]) -> Reply {
    let body = lab.dir.path().join(format!(
        "body-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let out = cmd_in(ns, "curl")
        .args(["-sS", "-g", "--max-time", "60", "-D", "-", "-o"])
        .arg(&body)
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body_bytes = std::fs::read(&body).unwrap_or_default();
    let _ = std::fs::remove_file(&body);
    Reply {
        status,
        headers,
        body: body_bytes,
    }
}

/// Expands `${name}` in `url` the way iPXE would, from `vars`; unknown names are empty.
pub fn ipxe_expand(url: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut rest = url;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find('}').expect("unclosed ${") + at;
        let name = &rest[at + 2..end];
        out.push_str(vars.iter().find(|(n, _)| *n == name).map_or("", |v| v.1));
        rest = &rest[end + 1..];
    }
    out + rest
}
