//! Which machine is behind which address. A per-machine script request carries the MAC;
//! the utility download that follows from the same address does not, yet its log line
//! should name the machine too.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

/// Addresses remembered; the oldest is forgotten first, so memory stays bounded.
const REMEMBERED: usize = 4096;

#[derive(Default)]
pub(super) struct Clients {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    mac: HashMap<IpAddr, [u8; 6]>,
    /// Addresses in the order first seen.
    order: VecDeque<IpAddr>,
}

impl Clients {
    pub(super) fn learn(&self, ip: IpAddr, mac: [u8; 6]) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.mac.insert(ip, mac).is_none() {
            g.order.push_back(ip);
        }
        while g.order.len() > REMEMBERED {
            if let Some(old) = g.order.pop_front() {
                g.mac.remove(&old);
            }
        }
    }

    pub(super) fn mac_of(&self, ip: IpAddr) -> Option<[u8; 6]> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.mac.get(&ip).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_newest_addresses_only() {
        let c = Clients::default();
        let ip = |n: u32| IpAddr::from(std::net::Ipv4Addr::from(n));
        for n in 0..(REMEMBERED as u32 + 10) {
            c.learn(ip(n), [0, 0, 0, 0, 0, n as u8]);
        }
        c.learn(ip(20), [1; 6]);
        assert_eq!(c.mac_of(ip(5)), None);
        assert_eq!(c.mac_of(ip(20)), Some([1; 6]));
        assert_eq!(
            c.mac_of(ip(REMEMBERED as u32 + 9)),
            Some([0, 0, 0, 0, 0, 9])
        );
        assert_eq!(c.inner.lock().unwrap().order.len(), REMEMBERED);
    }
}
