//! The DHCPv6 lease table: who holds which pool address, in memory, rebuilt from the
//! store at start. Every change it makes comes back as a [`Change`] for the shell to
//! persist before the reply goes out.
//!
//! A client is (DUID, IAID, link-layer address), not (DUID, IAID) alone: iPXE's DUID-UUID
//! comes from the SMBIOS UUID, which is all zero in QEMU and a shared placeholder on many
//! old boards, and cloned disk images carry cloned DUID-LLTs. Two machines with one DUID
//! still differ in their link-layer address, so they never share an address.

use crate::store::{Change, Lease6};
use std::collections::HashMap;
use std::net::Ipv6Addr;

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub duid: Vec<u8>,
    pub iaid: u32,
    /// Empty when unknown (a relayed client without option 79, or a link-local address
    /// that is not an EUI-64).
    pub link: Vec<u8>,
}

impl Identity {
    fn of(l: &Lease6) -> Identity {
        Identity {
            duid: l.duid.clone(),
            iaid: l.iaid,
            link: l.link.clone(),
        }
    }
}

pub struct Leases {
    first: u128,
    last: u128,
    by_addr: HashMap<Ipv6Addr, Lease6>,
    by_client: HashMap<Identity, Ipv6Addr>,
    /// Addresses leased under each DUID, so spotting one DUID on two machines is a lookup,
    /// not a walk over every lease.
    by_duid: HashMap<Vec<u8>, Vec<Ipv6Addr>>,
    /// Where the search for a never-used address goes on, so addresses are handed out in
    /// order rather than the lowest expired one being reused at once.
    cursor: u128,
}

impl Leases {
    /// A table over the inclusive `pool`, holding the stored leases that are inside it.
    pub fn new(pool: (Ipv6Addr, Ipv6Addr), stored: Vec<Lease6>) -> Leases {
        let mut t = Leases {
            first: pool.0.into(),
            last: pool.1.into(),
            by_addr: HashMap::new(),
            by_client: HashMap::new(),
            by_duid: HashMap::new(),
            cursor: pool.0.into(),
        };
        for l in stored {
            if t.in_pool(l.addr) {
                t.insert(l);
            }
        }
        t
    }

    pub fn in_pool(&self, a: Ipv6Addr) -> bool {
        (self.first..=self.last).contains(&u128::from(a))
    }

    /// The lease `id` holds (or held last), if nobody else took its address since.
    pub fn of_client(&self, id: &Identity) -> Option<&Lease6> {
        let l = self.by_addr.get(self.by_client.get(id)?)?;
        (Identity::of(l) == *id).then_some(l)
    }

    /// A live lease for the same DUID from another link-layer address: another machine
    /// with the same DUID (or another NIC of the same machine; either way the DUID alone
    /// does not tell machines apart).
    pub fn same_duid_elsewhere(&self, now: u64, id: &Identity) -> Option<&Lease6> {
        self.by_duid
            .get(&id.duid)?
            .iter()
            .filter_map(|a| self.by_addr.get(a))
            .find(|l| l.expires > now && l.duid == id.duid && l.link != id.link)
    }

    fn free(&self, now: u64, a: Ipv6Addr) -> bool {
        self.by_addr.get(&a).is_none_or(|l| l.expires <= now)
    }

    /// An address for `id`: the one it holds, else the one it asked for if free, else
    /// the next free one in the pool. `None` when the pool is exhausted.
    pub fn choose(&mut self, now: u64, id: &Identity, hint: Option<Ipv6Addr>) -> Option<Ipv6Addr> {
        if let Some(l) = self.of_client(id) {
            return Some(l.addr);
        }
        if let Some(h) = hint.filter(|&h| self.in_pool(h) && self.free(now, h)) {
            return Some(h);
        }
        // At most `by_addr.len()` addresses are taken, so one more step than that finds a
        // free one if the pool has one: the loop is bounded by the table, not the pool.
        let size = self.last - self.first + 1;
        let steps = size.min(self.by_addr.len() as u128 + 1);
        for _ in 0..steps {
            let a = Ipv6Addr::from(self.cursor);
            self.cursor = if self.cursor == self.last {
                self.first
            } else {
                self.cursor + 1
            };
            if self.free(now, a) {
                return Some(a);
            }
        }
        // Every address from the cursor on is taken, but expired ones may lie before it.
        self.by_addr
            .values()
            .find(|l| l.expires <= now)
            .map(|l| l.addr)
    }

    /// Records `lease`, replacing whatever held its address; returns the change to persist.
    /// A lease with an empty DUID (a declined address) belongs to nobody.
    pub fn put(&mut self, lease: Lease6) -> Change {
        self.insert(lease.clone());
        Change::Lease6(lease)
    }

    fn insert(&mut self, lease: Lease6) {
        if let Some(old) = self.by_addr.get(&lease.addr) {
            let old_id = Identity::of(old);
            if self.by_client.get(&old_id) == Some(&lease.addr) {
                self.by_client.remove(&old_id);
            }
            if let Some(addrs) = self.by_duid.get_mut(&old.duid) {
                addrs.retain(|a| *a != lease.addr);
                if addrs.is_empty() {
                    self.by_duid.remove(&old_id.duid);
                }
            }
        }
        if !lease.duid.is_empty() {
            self.by_client.insert(Identity::of(&lease), lease.addr);
            self.by_duid
                .entry(lease.duid.clone())
                .or_default()
                .push(lease.addr);
        }
        self.by_addr.insert(lease.addr, lease);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LeaseState;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn id(link: &[u8]) -> Identity {
        Identity {
            duid: vec![0, 4, 0, 0],
            iaid: 1,
            link: link.to_vec(),
        }
    }

    fn bind(t: &mut Leases, who: &Identity, addr: Ipv6Addr, expires: u64) {
        t.put(Lease6 {
            addr,
            duid: who.duid.clone(),
            iaid: who.iaid,
            link: who.link.clone(),
            state: LeaseState::Bound,
            expires,
        });
    }

    #[test]
    fn same_duid_from_two_links_gets_two_addresses() {
        let mut t = Leases::new((a("fd00::10"), a("fd00::20")), vec![]);
        let (m1, m2) = (id(&[1; 6]), id(&[2; 6]));
        let x = t.choose(100, &m1, None).unwrap();
        bind(&mut t, &m1, x, 1000);
        assert!(t.same_duid_elsewhere(100, &m2).is_some());
        let y = t.choose(100, &m2, None).unwrap();
        assert_ne!(x, y);
        // Even when the second asks for the first one's address.
        assert_ne!(t.choose(100, &m2, Some(x)), Some(x));
        assert_eq!(t.choose(100, &m1, None), Some(x));
    }

    #[test]
    fn the_duid_index_follows_an_address_to_its_new_holder() {
        let mut t = Leases::new((a("fd00::10"), a("fd00::20")), vec![]);
        let m1 = id(&[1; 6]);
        let other = Identity {
            duid: vec![0, 1, 9, 9],
            ..id(&[3; 6])
        };
        bind(&mut t, &m1, a("fd00::10"), 50);
        // The address expires and goes to a machine with another DUID.
        bind(&mut t, &other, a("fd00::10"), 1000);
        assert!(t.same_duid_elsewhere(100, &id(&[2; 6])).is_none());
        assert!(
            t.same_duid_elsewhere(
                100,
                &Identity {
                    link: vec![4; 6],
                    ..other.clone()
                }
            )
            .is_some()
        );
        // Renewing the same lease keeps one entry, not two.
        bind(&mut t, &other, a("fd00::10"), 2000);
        assert_eq!(t.by_duid[&other.duid], vec![a("fd00::10")]);
    }

    #[test]
    fn pool_exhaustion_and_expiry() {
        let mut t = Leases::new((a("fd00::10"), a("fd00::11")), vec![]);
        for (i, link) in [[1u8; 6], [2; 6]].iter().enumerate() {
            let who = id(link);
            let x = t.choose(0, &who, None).unwrap();
            bind(&mut t, &who, x, 10 + i as u64);
        }
        assert_eq!(t.choose(5, &id(&[3; 6]), None), None);
        // Once the first expires, a newcomer takes it and the old holder loses it.
        let x = t.choose(10, &id(&[3; 6]), None).unwrap();
        assert_eq!(x, a("fd00::10"));
        bind(&mut t, &id(&[3; 6]), x, 100);
        assert!(t.of_client(&id(&[1; 6])).is_none());
    }

    #[test]
    fn stored_leases_outside_the_pool_are_dropped_and_hints_outside_ignored() {
        let who = id(&[1; 6]);
        let stored = Lease6 {
            addr: a("fd00::99"),
            duid: who.duid.clone(),
            iaid: 1,
            link: who.link.clone(),
            state: LeaseState::Bound,
            expires: 1000,
        };
        let mut t = Leases::new((a("fd00::10"), a("fd00::20")), vec![stored]);
        assert!(t.of_client(&who).is_none());
        assert_eq!(t.choose(0, &who, Some(a("fd00::99"))), Some(a("fd00::10")));
        assert_eq!(t.choose(0, &who, Some(a("fd00::15"))), Some(a("fd00::15")));
    }
}
