//! The DHCPv4 lease table: in memory, indexed by address, by client and by expiry, so
//! every decision is a hash lookup or the first entry of an ordered set. Pure data: the
//! caller passes `now` and persists what changed.

use crate::store::{Lease4, LeaseState};
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

/// Leases of one pool.
pub struct Leases {
    first: u32,
    last: u32,
    /// The lowest address never handed out, kept unoccupied by `put` (or past `last`).
    fresh: u32,
    by_addr: HashMap<Ipv4Addr, Lease4>,
    /// Each client's most recent address, kept after expiry so it gets the same one back.
    by_client: HashMap<Box<[u8]>, Ipv4Addr>,
    by_expiry: BTreeSet<(u64, Ipv4Addr)>,
}

impl Leases {
    /// An empty table for the inclusive pool `first..=last`.
    pub fn new(first: Ipv4Addr, last: Ipv4Addr) -> Leases {
        Leases {
            first: first.into(),
            last: last.into(),
            fresh: first.into(),
            by_addr: HashMap::new(),
            by_client: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// Loads stored leases (including ones outside today's pool: they are still honoured
    /// as taken, never handed out again).
    pub fn load(&mut self, leases: impl IntoIterator<Item = Lease4>) {
        let mut all: Vec<Lease4> = leases.into_iter().collect();
        all.sort_by_key(|l| l.expires);
        for l in all {
            self.put(l);
        }
    }

    pub fn in_pool(&self, a: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&u32::from(a))
    }

    pub fn get(&self, a: Ipv4Addr) -> Option<&Lease4> {
        self.by_addr.get(&a)
    }

    /// The address this client had last, if it still belongs to it.
    pub fn of_client(&self, client: &[u8]) -> Option<&Lease4> {
        let a = self.by_client.get(client)?;
        self.by_addr.get(a).filter(|l| l.client == client)
    }

    /// Whether `a` may be given to `client` now: in the pool, and held by nobody else.
    pub fn available(&self, now: u64, a: Ipv4Addr, client: &[u8]) -> bool {
        self.in_pool(a)
            && match self.by_addr.get(&a) {
                None => true,
                Some(l) if l.state == LeaseState::Declined => l.expires <= now,
                Some(l) => l.client == client || l.expires <= now,
            }
    }

    /// Picks an address for `client`: its own, else the one it asks for, else a never-used
    /// one, else the longest-expired one. `None` when the pool is exhausted.
    pub fn choose(
        &mut self,
        now: u64,
        client: &[u8],
        requested: Option<Ipv4Addr>,
    ) -> Option<Ipv4Addr> {
        if let Some(l) = self.of_client(client)
            && l.state != LeaseState::Declined
            && self.in_pool(l.addr)
        {
            return Some(l.addr);
        }
        if let Some(r) = requested.filter(|&r| self.available(now, r, client)) {
            return Some(r);
        }
        if self.fresh <= self.last {
            return Some(Ipv4Addr::from(self.fresh));
        }
        self.by_expiry
            .iter()
            .take_while(|(exp, _)| *exp <= now)
            .map(|&(_, a)| a)
            .find(|&a| self.in_pool(a))
    }

    /// Records a lease (replacing the one at its address) and returns a copy to persist.
    pub fn put(&mut self, l: Lease4) -> Lease4 {
        if let Some(old) = self.by_addr.remove(&l.addr) {
            self.by_expiry.remove(&(old.expires, old.addr));
            if old.client != l.client
                && self.by_client.get(old.client.as_slice()) == Some(&old.addr)
            {
                self.by_client.remove(old.client.as_slice());
            }
        }
        if !l.client.is_empty() {
            self.by_client
                .insert(l.client.clone().into_boxed_slice(), l.addr);
        }
        self.by_expiry.insert((l.expires, l.addr));
        self.by_addr.insert(l.addr, l.clone());
        while self.fresh <= self.last && self.by_addr.contains_key(&Ipv4Addr::from(self.fresh)) {
            self.fresh += 1;
        }
        l
    }

    /// Leases held now (offered or bound, not expired).
    pub fn active(&self, now: u64) -> usize {
        self.by_addr
            .values()
            .filter(|l| {
                matches!(l.state, LeaseState::Offered | LeaseState::Bound) && l.expires > now
            })
            .count()
    }

    pub fn pool_size(&self) -> u64 {
        u64::from(self.last - self.first) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(a: [u8; 4], client: &[u8], state: LeaseState, expires: u64) -> Lease4 {
        Lease4 {
            addr: a.into(),
            client: client.to_vec(),
            mac: vec![],
            state,
            expires,
        }
    }

    #[test]
    fn clients_keep_their_address_and_others_get_fresh_ones() {
        let mut t = Leases::new([10, 0, 0, 10].into(), [10, 0, 0, 12].into());
        let a = t.choose(100, b"A", None).unwrap();
        t.put(lease(a.octets(), b"A", LeaseState::Bound, 700));
        let b = t.choose(100, b"B", Some(a)).unwrap();
        assert_ne!(a, b, "a held address is never given to another client");
        assert_eq!(t.choose(100, b"A", None), Some(a));
        // After expiry, A still gets its address back.
        assert_eq!(t.choose(10_000, b"A", None), Some(a));
    }

    #[test]
    fn exhaustion_then_reuse_of_the_longest_expired() {
        let mut t = Leases::new([10, 0, 0, 10].into(), [10, 0, 0, 11].into());
        t.put(lease([10, 0, 0, 10], b"A", LeaseState::Bound, 500));
        t.put(lease([10, 0, 0, 11], b"B", LeaseState::Bound, 400));
        assert_eq!(t.choose(100, b"C", None), None);
        assert_eq!(t.choose(450, b"C", None), Some([10, 0, 0, 11].into()));
        t.put(lease([10, 0, 0, 11], b"C", LeaseState::Offered, 510));
        assert_eq!(t.of_client(b"B"), None, "B lost its address to C");
        assert_eq!(
            t.of_client(b"C").unwrap().addr,
            Ipv4Addr::from([10, 0, 0, 11])
        );
    }

    #[test]
    fn declined_addresses_are_quarantined() {
        let mut t = Leases::new([10, 0, 0, 10].into(), [10, 0, 0, 10].into());
        t.put(lease([10, 0, 0, 10], b"", LeaseState::Declined, 1000));
        assert!(!t.available(999, [10, 0, 0, 10].into(), b""));
        assert_eq!(t.choose(999, b"A", None), None);
        assert_eq!(t.choose(1000, b"A", None), Some([10, 0, 0, 10].into()));
    }

    #[test]
    fn loaded_leases_outside_the_pool_are_never_handed_out() {
        let mut t = Leases::new([10, 0, 0, 10].into(), [10, 0, 0, 10].into());
        t.load([lease([10, 0, 0, 99], b"A", LeaseState::Bound, 50)]);
        assert_eq!(t.choose(100, b"A", None), Some([10, 0, 0, 10].into()));
        assert_eq!(t.choose(100, b"B", None), Some([10, 0, 0, 10].into()));
    }
}
