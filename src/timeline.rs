//! Each machine's boot, stage by stage: every protocol reports what it did for a client,
//! and this module logs it in one shape (`target: sixboot::timeline`) keyed by MAC, so an
//! operator (and `make demo`, and the e2e suite) can follow one machine across DHCPv4,
//! TFTP, RA/DHCPv6 and HTTP.
//!
//! TFTP and HTTP only see an address; the MAC is filled in from what DHCP handed to that
//! address. Repeats of a machine's latest stage (firmware retransmits, iPXE asking for
//! DHCPv4 five times) are folded into one entry.

use crate::mac::Mac;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::info;

/// One step of a machine's boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub mac: Option<[u8; 6]>,
    pub ip: Option<IpAddr>,
    /// `dhcp4`, `tftp`, `ra`, `dhcp6`, `http`.
    pub protocol: &'static str,
    /// A stable name, such as `answered`, `refused`, `served`.
    pub stage: &'static str,
    /// What was given, or why not.
    pub detail: String,
}

/// A repeat of the same stage closer than this to the last one is folded.
const FOLD: Duration = Duration::from_secs(30);
/// Addresses remembered for MAC lookups; the oldest half is dropped past this.
const MAX_ADDRESSES: usize = 200_000;

#[derive(Default)]
pub struct Timeline {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    mac_of: HashMap<IpAddr, ([u8; 6], Instant)>,
    last: HashMap<[u8; 6], (&'static str, &'static str, String, Instant)>,
}

impl Timeline {
    /// Records that `address` now belongs to `mac` (a DHCP lease was handed out).
    pub fn learn(&self, address: IpAddr, mac: [u8; 6]) {
        let mut g = self.inner.lock().expect("timeline lock");
        if g.mac_of.len() >= MAX_ADDRESSES {
            let mut ages: Vec<Instant> = g.mac_of.values().map(|v| v.1).collect();
            ages.sort();
            let cut = ages[ages.len() / 2];
            g.mac_of.retain(|_, v| v.1 > cut);
        }
        g.mac_of.insert(address, (mac, Instant::now()));
    }

    /// The MAC DHCP (or an iPXE script URL) last tied to `address`, if any.
    pub fn mac_of(&self, address: IpAddr) -> Option<[u8; 6]> {
        let g = self.inner.lock().expect("timeline lock");
        g.mac_of.get(&address).map(|v| v.0)
    }

    /// Logs one step (unless it repeats the machine's latest step) and returns it with the
    /// MAC filled in, if known.
    pub fn record(&self, mut ev: Event) -> Option<Event> {
        let now = Instant::now();
        {
            let mut g = self.inner.lock().expect("timeline lock");
            if ev.mac.is_none() {
                ev.mac = ev.ip.and_then(|ip| g.mac_of.get(&ip).map(|v| v.0));
            }
            if let Some(mac) = ev.mac {
                if let Some((p, s, d, at)) = g.last.get(&mac)
                    && *p == ev.protocol
                    && *s == ev.stage
                    && *d == ev.detail
                    && now.duration_since(*at) < FOLD
                {
                    return None;
                }
                if g.last.len() >= MAX_ADDRESSES {
                    g.last.clear();
                }
                g.last
                    .insert(mac, (ev.protocol, ev.stage, ev.detail.clone(), now));
            }
        }
        let mac = ev
            .mac
            .map(|m| Mac(&m).to_string())
            .unwrap_or_else(|| "unknown".into());
        let ip = ev.ip.map(|i| i.to_string()).unwrap_or_default();
        info!(target: "sixboot::timeline", %mac, %ip, protocol = %ev.protocol, stage = %ev.stage, detail = %ev.detail, "stage");
        Some(ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 1, 2, 3];

    fn ev(ip: &str, stage: &'static str, detail: &str) -> Event {
        Event {
            mac: None,
            ip: Some(ip.parse().unwrap()),
            protocol: "tftp",
            stage,
            detail: detail.into(),
        }
    }

    #[test]
    fn addresses_resolve_to_the_mac_dhcp_gave_them_to() {
        let t = Timeline::default();
        assert_eq!(
            t.record(ev("192.168.1.10", "served", "a")).unwrap().mac,
            None
        );
        t.learn("192.168.1.10".parse().unwrap(), MAC);
        assert_eq!(
            t.record(ev("192.168.1.10", "served", "b")).unwrap().mac,
            Some(MAC)
        );
    }

    #[test]
    fn repeats_of_the_latest_stage_are_folded() {
        let t = Timeline::default();
        t.learn("192.168.1.10".parse().unwrap(), MAC);
        assert!(t.record(ev("192.168.1.10", "served", "x")).is_some());
        assert!(t.record(ev("192.168.1.10", "served", "x")).is_none());
        assert!(t.record(ev("192.168.1.10", "served", "y")).is_some());
        assert!(t.record(ev("192.168.1.10", "served", "x")).is_some());
    }
}
