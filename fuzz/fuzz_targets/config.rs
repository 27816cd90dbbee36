//! The config loader on arbitrary text (`Checks::FileOnly`: nothing outside the file is
//! looked at), then everything `serve` builds from a config without I/O: the policy, the
//! DHCPv4 and DHCPv6 lease tables and servers, and the RA.
//!
//! Beyond "no panic": every problem points inside the text, and rendering the
//! `FILE:LINE:COL: message` list works for any of them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sixboot::config::{Checks, parse};
use sixboot::policy::Policy;
use sixboot::{dhcp4, dhcp6, ra};
use sixboot_fuzz::SERVER_DUID;
use std::path::Path;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    // The loader reads the file with read_to_string: text that is not UTF-8 never
    // reaches the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(
        text,
        "fuzz.toml",
        Path::new("/etc/sixboot"),
        Checks::FileOnly,
    ) {
        Err(problems) => {
            assert!(!problems.list.is_empty());
            for p in &problems.list {
                assert!(
                    p.span.start <= p.span.end && p.span.end <= text.len(),
                    "{p:?}"
                );
            }
            let lines = text.split('\n').count();
            for p in &problems.list {
                let (line, col) = problems.line_col(p.span.start);
                assert!(line <= lines && col >= 1, "{p:?} at {line}:{col}");
            }
            let _ = problems.to_string();
        }
        Ok(cfg) => {
            let policy = Arc::new(Policy::new(&cfg));
            if let Some(d) = cfg.dhcp4.clone() {
                let first = d.pool.0;
                assert!(d.pool.0 <= d.pool.1 && d.subnet.contains(&d.pool.1));
                assert!(d.subnet.contains(&d.pool.0));
                let s = dhcp4::server::Server::new(d, policy.clone(), Vec::new());
                assert!(s.leases().in_pool(first));
            }
            if let Some(v6) = cfg.ipv6.clone() {
                assert!(v6.pool.0 <= v6.pool.1 && v6.prefix.contains(&v6.pool.1));
                assert!(v6.prefix.contains(&v6.pool.0));
                let _ = ra::sender::advert(&v6, None).emit();
                let _ = dhcp6::server::Server::new(v6, policy, SERVER_DUID.to_vec(), Vec::new());
            }
        }
    }
});
