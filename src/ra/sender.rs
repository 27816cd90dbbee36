//! When to send Router Advertisements (RFC 4861 §6.2.4–6.2.6), sans-IO: the shell asks
//! [`Sender::poll_timeout`] when to wake up, calls [`Sender::poll_transmit`] then, and
//! feeds received RS/RA packets to [`Sender::handle`]. Time and randomness are passed in.
//!
//! The schedule: an initial burst of [`MAX_INITIAL_RTR_ADVERTISEMENTS`], then one every
//! random interval between MinRtrAdvInterval and MaxRtrAdvInterval. A Router
//! Solicitation is answered after a random delay of up to [`MAX_RA_DELAY_TIME`], but never
//! sooner than [`MIN_DELAY_BETWEEN_RAS`] after the previous RA. iPXE acts on the first
//! solicited RA only, so that answer is what starts its DHCPv6.

use super::wire::{HOP_LIMIT, Message, ParseError, PrefixInfo, Rdnss, RouterAdvert};
use crate::config::Ipv6;
use std::collections::HashSet;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

pub const MAX_INITIAL_RTR_ADVERTISEMENTS: u32 = 3;
/// Between the initial RAs; RFC 4861 caps it at 16 s, shorter gets clients going sooner.
pub const INITIAL_INTERVAL: Duration = Duration::from_secs(4);
pub const MIN_DELAY_BETWEEN_RAS: Duration = Duration::from_secs(3);
pub const MAX_RA_DELAY_TIME: Duration = Duration::from_millis(500);
/// MaxRtrAdvInterval (RFC 4861 default).
pub const MAX_INTERVAL: Duration = Duration::from_secs(600);
/// MinRtrAdvInterval: the RFC default of 0.33 × MaxRtrAdvInterval.
pub const MIN_INTERVAL: Duration = Duration::from_secs(198);
/// AdvValidLifetime and AdvPreferredLifetime (RFC 4861 defaults).
const VALID_LIFETIME: u32 = 2_592_000;
const PREFERRED_LIFETIME: u32 = 604_800;
/// RDNSS lifetime: RFC 8106 §5.1 wants at least MaxRtrAdvInterval; three covers two
/// lost RAs.
const RDNSS_LIFETIME: u32 = 3 * MAX_INTERVAL.as_secs() as u32;
/// Senders of conflicting RAs remembered, so each is warned about once.
const MAX_WARNED: usize = 64;

/// The RA sixboot sends for `[ipv6]`: M=1 and O=1 (addresses and the boot URL come from
/// DHCPv6), the prefix on-link with A as configured, RDNSS when DNS is set.
pub fn advert(cfg: &Ipv6, mac: Option<[u8; 6]>) -> RouterAdvert {
    RouterAdvert {
        cur_hop_limit: 0,
        managed: true,
        other: true,
        router_lifetime: cfg.router_lifetime,
        reachable_time: 0,
        retrans_timer: 0,
        source_ll: mac,
        prefixes: vec![PrefixInfo {
            prefix: cfg.prefix,
            on_link: true,
            autonomous: cfg.autonomous,
            valid_lifetime: VALID_LIFETIME,
            preferred_lifetime: PREFERRED_LIFETIME,
        }],
        rdnss: (!cfg.dns.is_empty()).then(|| Rdnss {
            lifetime: RDNSS_LIFETIME,
            servers: cfg.dns.clone(),
        }),
    }
}

/// Why a received packet changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Parse(ParseError),
    /// Hop limit other than 255: it crossed a router, or was forged off-link.
    HopLimit(u8),
    /// An RA must come from a link-local address (RFC 4861 §6.1.2).
    NotLinkLocal,
    /// An RS from the unspecified address must not carry a link-layer address.
    UnspecifiedWithLinkLayer,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Parse(e) => e.as_str(),
            Refusal::HopLimit(_) => "hop_limit",
            Refusal::NotLinkLocal => "not_link_local",
            Refusal::UnspecifiedWithLinkLayer => "unspecified_with_link_layer",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Parse(e) => write!(f, "malformed: {}", e.as_str()),
            Refusal::HopLimit(h) => write!(f, "hop limit {h}, not {HOP_LIMIT}"),
            Refusal::NotLinkLocal => {
                write!(f, "router advertisement from a non-link-local address")
            }
            Refusal::UnspecifiedWithLinkLayer => {
                write!(f, "solicitation from :: with a link-layer address")
            }
        }
    }
}

/// What a received packet did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// An RS (from `mac`, if it said): an RA goes out at `at`; `coalesced` when one was
    /// already due by then.
    Solicited {
        mac: Option<[u8; 6]>,
        at: Instant,
        coalesced: bool,
    },
    /// Another router's RA that agrees with ours, or whose sender was warned about.
    PeerAdvert,
    /// Another router's RA with other M/O flags, the first time from this sender.
    Conflict {
        from: Ipv6Addr,
        managed: bool,
        other: bool,
    },
}

/// Why an RA goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Unsolicited,
    Solicited,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Unsolicited => "unsolicited",
            Kind::Solicited => "solicited",
        }
    }
}

pub struct Sender {
    advert: RouterAdvert,
    bytes: Vec<u8>,
    sent: u32,
    next_unsolicited: Instant,
    solicited_at: Option<Instant>,
    last_sent: Option<Instant>,
    warned: HashSet<Ipv6Addr>,
}

impl Sender {
    /// The first RA is due at once.
    pub fn new(now: Instant, advert: RouterAdvert) -> Sender {
        Sender {
            bytes: advert.emit(),
            advert,
            sent: 0,
            next_unsolicited: now,
            solicited_at: None,
            last_sent: None,
            warned: HashSet::new(),
        }
    }

    /// When [`Sender::poll_transmit`] next has something to send.
    pub fn poll_timeout(&self) -> Instant {
        self.solicited_at
            .map_or(self.next_unsolicited, |s| s.min(self.next_unsolicited))
    }

    /// The RA to send to all-nodes now, if one is due. `random` in [0, 1) picks the next
    /// unsolicited interval.
    pub fn poll_transmit(&mut self, now: Instant, random: f64) -> Option<(&[u8], Kind)> {
        let kind = if self.solicited_at.is_some_and(|s| s <= now) {
            Kind::Solicited
        } else if self.next_unsolicited <= now {
            Kind::Unsolicited
        } else {
            return None;
        };
        self.sent += 1;
        self.solicited_at = None;
        self.last_sent = Some(now);
        let interval = MIN_INTERVAL + (MAX_INTERVAL - MIN_INTERVAL).mul_f64(random.clamp(0.0, 1.0));
        self.next_unsolicited = now
            + if self.sent < MAX_INITIAL_RTR_ADVERTISEMENTS {
                INITIAL_INTERVAL.min(interval)
            } else {
                interval
            };
        Some((&self.bytes, kind))
    }

    /// Handles an RS or RA from `from`, received with `hop_limit`. `random` in [0, 1)
    /// picks the answer delay.
    pub fn handle(
        &mut self,
        now: Instant,
        packet: &[u8],
        from: Ipv6Addr,
        hop_limit: u8,
        random: f64,
    ) -> Result<Handled, Refusal> {
        let msg = Message::parse(packet).map_err(Refusal::Parse)?;
        if hop_limit != HOP_LIMIT {
            return Err(Refusal::HopLimit(hop_limit));
        }
        match msg {
            Message::RouterSolicit { source_ll } => {
                if from.is_unspecified() && source_ll.is_some() {
                    return Err(Refusal::UnspecifiedWithLinkLayer);
                }
                let delay = MAX_RA_DELAY_TIME.mul_f64(random.clamp(0.0, 1.0));
                let at = match self.last_sent {
                    Some(last) if now < last + MIN_DELAY_BETWEEN_RAS => {
                        last + MIN_DELAY_BETWEEN_RAS + delay
                    }
                    _ => now + delay,
                };
                // An RA already due sooner answers this RS too.
                let due = self.poll_timeout();
                if due <= at {
                    return Ok(Handled::Solicited {
                        mac: source_ll,
                        at: due,
                        coalesced: true,
                    });
                }
                self.solicited_at = Some(at);
                Ok(Handled::Solicited {
                    mac: source_ll,
                    at,
                    coalesced: false,
                })
            }
            Message::RouterAdvert(ra) => {
                if !from.is_unicast_link_local() {
                    return Err(Refusal::NotLinkLocal);
                }
                let agrees = ra.managed == self.advert.managed && ra.other == self.advert.other;
                if agrees || self.warned.contains(&from) {
                    return Ok(Handled::PeerAdvert);
                }
                if self.warned.len() >= MAX_WARNED {
                    self.warned.clear();
                }
                self.warned.insert(from);
                Ok(Handled::Conflict {
                    from,
                    managed: ra.managed,
                    other: ra.other,
                })
            }
        }
    }

    pub fn advert(&self) -> &RouterAdvert {
        &self.advert
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::tests::{IPXE_RS, OVMF_RS, lab_advert};
    use super::*;

    const RS: &[u8] = IPXE_RS;
    /// iPXE's link-local address in the capture.
    const PEER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe12, 0x3456);

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn initial_burst_then_periodic() {
        let t0 = Instant::now();
        let mut s = Sender::new(t0, lab_advert());
        let mut times = Vec::new();
        let mut now = t0;
        for _ in 0..5 {
            now = s.poll_timeout();
            let (_, kind) = s.poll_transmit(now, 0.5).expect("an RA is due");
            assert_eq!(kind, Kind::Unsolicited);
            assert!(s.poll_transmit(now, 0.5).is_none(), "one RA per due time");
            times.push(now - t0);
        }
        let mid = MIN_INTERVAL + (MAX_INTERVAL - MIN_INTERVAL) / 2;
        assert_eq!(
            times,
            [
                secs(0.0),
                INITIAL_INTERVAL,
                INITIAL_INTERVAL * 2,
                INITIAL_INTERVAL * 2 + mid,
                INITIAL_INTERVAL * 2 + mid * 2
            ]
        );
        assert!(now > t0);
    }

    #[test]
    fn solicitations_get_a_prompt_rate_limited_answer() {
        let t0 = Instant::now();
        let mut s = Sender::new(t0, lab_advert());
        s.poll_transmit(t0, 0.0).unwrap();
        // 1 s after an RA: not before 3 s after it, plus the random delay.
        let r = s.handle(t0 + secs(1.0), RS, PEER, 255, 0.5).unwrap();
        let at = t0 + MIN_DELAY_BETWEEN_RAS + MAX_RA_DELAY_TIME / 2;
        let mac = Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert_eq!(
            r,
            Handled::Solicited {
                mac,
                at,
                coalesced: false
            }
        );
        // A second RS before that, whose own answer would come later, is answered by the
        // same RA.
        let r = s.handle(t0 + secs(2.0), RS, PEER, 255, 0.9).unwrap();
        assert_eq!(
            r,
            Handled::Solicited {
                mac,
                at,
                coalesced: true
            }
        );
        assert_eq!(s.poll_timeout(), at);
        assert_eq!(s.poll_transmit(at, 0.5).unwrap().1, Kind::Solicited);
        // The burst's third RA; well after it, an answer comes within MAX_RA_DELAY_TIME.
        let third = s.poll_timeout();
        assert_eq!(s.poll_transmit(third, 0.5).unwrap().1, Kind::Unsolicited);
        let later = third + secs(10.0);
        let Handled::Solicited { at, .. } = s.handle(later, RS, PEER, 255, 0.999).unwrap() else {
            panic!("not scheduled")
        };
        assert!(at > later && at <= later + MAX_RA_DELAY_TIME);
    }

    #[test]
    fn only_hop_limit_255_and_valid_sources_count() {
        let mut s = Sender::new(Instant::now(), lab_advert());
        let now = Instant::now();
        assert_eq!(s.handle(now, RS, PEER, 64, 0.0), Err(Refusal::HopLimit(64)));
        assert_eq!(
            s.handle(now, IPXE_RS, Ipv6Addr::UNSPECIFIED, 255, 0.0),
            Err(Refusal::UnspecifiedWithLinkLayer)
        );
        // OVMF solicits before it has an address, from :: and without a link-layer address.
        assert!(matches!(
            s.handle(now, OVMF_RS, Ipv6Addr::UNSPECIFIED, 255, 0.0),
            Ok(Handled::Solicited { .. })
        ));
        let ra = lab_advert().emit();
        assert_eq!(
            s.handle(now, &ra, "fd00:1::9".parse().unwrap(), 255, 0.0),
            Err(Refusal::NotLinkLocal)
        );
    }

    #[test]
    fn conflicting_peer_flags_are_reported_once_per_sender() {
        let mut s = Sender::new(Instant::now(), lab_advert());
        let now = Instant::now();
        assert_eq!(
            s.handle(now, &lab_advert().emit(), PEER, 255, 0.0),
            Ok(Handled::PeerAdvert)
        );
        let slaac_only = RouterAdvert {
            managed: false,
            other: false,
            ..lab_advert()
        }
        .emit();
        assert_eq!(
            s.handle(now, &slaac_only, PEER, 255, 0.0),
            Ok(Handled::Conflict {
                from: PEER,
                managed: false,
                other: false
            })
        );
        assert_eq!(
            s.handle(now, &slaac_only, PEER, 255, 0.0),
            Ok(Handled::PeerAdvert)
        );
    }

    #[test]
    fn advert_follows_the_config() {
        let cfg = crate::config::parse(
            "interface = \"br0\"\n[ipv6]\nprefix = \"fd00:1::/64\"\npool = [\"fd00:1::100\", \"fd00:1::1ff\"]\nautonomous = true\nrouter_lifetime = 1800\n",
            "t.toml",
            std::path::Path::new("."),
            crate::config::Checks::FileOnly,
        )
        .unwrap()
        .ipv6
        .unwrap();
        let a = advert(&cfg, None);
        assert!(a.managed && a.other);
        assert_eq!(a.router_lifetime, 1800);
        assert!(a.prefixes[0].autonomous && a.prefixes[0].on_link);
        assert_eq!(a.rdnss, None);
        assert_eq!(a.source_ll, None);
    }
}
