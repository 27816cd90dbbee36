//! Each machine's boot, stage by stage: every protocol reports what it did for a client,
//! and this module logs it in one shape (`target: sixboot::timeline`) keyed by MAC, so an
//! operator (and `make demo`, and the e2e suite) can follow one machine across DHCPv4,
//! TFTP, RA/DHCPv6 and HTTP.
//!
//! TFTP and HTTP only see an address; the MAC is filled in from what DHCP handed to that
//! address. Repeats of a machine's latest stage (firmware retransmits, iPXE asking for
//! DHCPv4 five times) are folded into one entry.
//!
//! With a sink attached, what is not folded also goes to the machine records
//! ([`crate::machines`]). Handing it over never waits: a full sink drops the step and counts
//! it, so no protocol's reply path ever waits on the records or their disk.

use crate::mac::Mac;
pub use crate::step::{Protocol, Stage};
use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tracing::{debug, info};

/// One step of a machine's boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub mac: Option<[u8; 6]>,
    pub ip: Option<IpAddr>,
    pub protocol: Protocol,
    pub stage: Stage,
    /// What was given, or why not, for people to read.
    pub detail: String,
    /// The file a [`Stage::Served`] step sent, relative to the root it came from: the fact
    /// the machine records act on (a burn-in starts when its image is fetched).
    pub file: Option<String>,
}

impl Event {
    /// A step of the machine behind `ip` (its MAC is looked up from what DHCP handed out).
    pub fn at(ip: IpAddr, protocol: Protocol, stage: Stage, detail: String) -> Event {
        Event {
            mac: None,
            ip: Some(ip),
            protocol,
            stage,
            detail,
            file: None,
        }
    }
}

/// What the timeline hands to the machine records, stamped when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A stage of a machine whose MAC is known.
    Stage {
        mac: [u8; 6],
        event: Event,
        at: SystemTime,
    },
    /// DHCP or a script URL tied `ip` to `mac` (reported when the tie changes).
    Address {
        mac: [u8; 6],
        ip: IpAddr,
        at: SystemTime,
    },
    /// The DHCPv6 identity the machine used.
    Dhcp6Identity {
        mac: [u8; 6],
        duid: Vec<u8>,
        iaid: u32,
    },
}

/// A repeat of the same stage closer than this to the last one is folded.
const FOLD: Duration = Duration::from_secs(30);
/// Addresses remembered for MAC lookups; the oldest half is dropped past this.
const MAX_ADDRESSES: usize = 200_000;

#[derive(Default)]
pub struct Timeline {
    inner: Mutex<Inner>,
    sink: Option<Sink>,
}

/// Where unfolded steps go, and the count of those dropped because it was full.
struct Sink {
    tx: mpsc::Sender<Observed>,
    dropped: Counter,
}

#[derive(Default)]
struct Inner {
    mac_of: HashMap<IpAddr, ([u8; 6], Instant)>,
    last: HashMap<[u8; 6], (Protocol, Stage, String, Instant)>,
}

impl Timeline {
    /// A timeline that also hands every unfolded step to `tx`; `dropped` counts those
    /// that found it full.
    pub fn with_sink(tx: mpsc::Sender<Observed>, dropped: Counter) -> Timeline {
        Timeline {
            inner: Mutex::default(),
            sink: Some(Sink { tx, dropped }),
        }
    }

    /// Hands `o` to the sink, if any, without waiting.
    fn tell(&self, o: Observed) {
        if let Some(s) = &self.sink
            && s.tx.try_send(o).is_err()
        {
            s.dropped.inc();
            debug!("machine records busy: a timeline step was not recorded");
        }
    }

    /// Records that `address` now belongs to `mac` (a DHCP lease was handed out).
    pub fn learn(&self, address: IpAddr, mac: [u8; 6]) {
        let before = {
            let mut g = self.inner.lock().expect("timeline lock");
            if g.mac_of.len() >= MAX_ADDRESSES {
                let mut ages: Vec<Instant> = g.mac_of.values().map(|v| v.1).collect();
                ages.sort();
                let cut = ages[ages.len() / 2];
                g.mac_of.retain(|_, v| v.1 > cut);
            }
            g.mac_of.insert(address, (mac, Instant::now()))
        };
        if before.map(|b| b.0) != Some(mac) {
            self.tell(Observed::Address {
                mac,
                ip: address,
                at: SystemTime::now(),
            });
        }
    }

    /// Records which DHCPv6 DUID and IAID `mac` used.
    pub fn identify6(&self, mac: [u8; 6], duid: Vec<u8>, iaid: u32) {
        if self.sink.is_some() {
            self.tell(Observed::Dhcp6Identity { mac, duid, iaid });
        }
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
        if let Some(m) = ev.mac
            && self.sink.is_some()
        {
            self.tell(Observed::Stage {
                mac: m,
                event: ev.clone(),
                at: SystemTime::now(),
            });
        }
        Some(ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 1, 2, 3];

    fn ev(ip: &str, stage: Stage, detail: &str) -> Event {
        Event::at(ip.parse().unwrap(), Protocol::Tftp, stage, detail.into())
    }

    #[test]
    fn addresses_resolve_to_the_mac_dhcp_gave_them_to() {
        let t = Timeline::default();
        assert_eq!(
            t.record(ev("192.168.1.10", Stage::Served, "a"))
                .unwrap()
                .mac,
            None
        );
        t.learn("192.168.1.10".parse().unwrap(), MAC);
        assert_eq!(
            t.record(ev("192.168.1.10", Stage::Served, "b"))
                .unwrap()
                .mac,
            Some(MAC)
        );
    }

    #[test]
    fn repeats_of_the_latest_stage_are_folded() {
        let t = Timeline::default();
        t.learn("192.168.1.10".parse().unwrap(), MAC);
        assert!(t.record(ev("192.168.1.10", Stage::Served, "x")).is_some());
        assert!(t.record(ev("192.168.1.10", Stage::Served, "x")).is_none());
        assert!(t.record(ev("192.168.1.10", Stage::Served, "y")).is_some());
        assert!(t.record(ev("192.168.1.10", Stage::Served, "x")).is_some());
    }

    #[test]
    fn the_sink_gets_unfolded_steps_and_a_full_one_counts_drops() {
        let (tx, mut rx) = mpsc::channel(2);
        let dropped = Counter::default();
        let t = Timeline::with_sink(tx, dropped.clone());
        let ip: IpAddr = "192.168.1.10".parse().unwrap();
        t.learn(ip, MAC);
        t.learn(ip, MAC);
        t.record(ev("192.168.1.10", Stage::Served, "x"));
        t.record(ev("192.168.1.10", Stage::Served, "x"));
        t.record(ev("192.168.1.11", Stage::Served, "no mac"));
        assert!(matches!(
            rx.try_recv(),
            Ok(Observed::Address { mac: MAC, .. })
        ));
        assert!(matches!(
            rx.try_recv(),
            Ok(Observed::Stage { mac: MAC, .. })
        ));
        assert!(rx.try_recv().is_err());
        assert_eq!(dropped.get(), 0);
        t.record(ev("192.168.1.10", Stage::Served, "y"));
        t.record(ev("192.168.1.10", Stage::Served, "z"));
        t.record(ev("192.168.1.10", Stage::Served, "w"));
        assert_eq!(dropped.get(), 1);
    }
}
