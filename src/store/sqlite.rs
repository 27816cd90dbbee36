//! The embedded default store: SQLite in WAL mode with `synchronous=FULL`, so a committed
//! transaction survives a crash or power loss.

use super::{Change, Lease4, Lease6, LeaseState, Snapshot, Store, StoreError};
use rusqlite::{Connection, params};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

pub struct SqliteStore {
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS leases4 (
  addr INTEGER PRIMARY KEY, client BLOB NOT NULL, mac BLOB NOT NULL,
  state INTEGER NOT NULL, expires INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS leases6 (
  addr BLOB PRIMARY KEY, duid BLOB NOT NULL, iaid INTEGER NOT NULL, link BLOB NOT NULL,
  state INTEGER NOT NULL, expires INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
";

impl SqliteStore {
    /// Opens (creating if needed) `leases.sqlite` in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(state_dir)?;
        let conn = Connection::open(state_dir.join("leases.sqlite"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteStore { conn })
    }
}

fn state(v: i64) -> Result<LeaseState, StoreError> {
    LeaseState::from_i64(v).ok_or_else(|| StoreError::Corrupt(format!("lease state {v}")))
}

impl Store for SqliteStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        let mut snap = Snapshot::default();
        let mut q = self
            .conn
            .prepare("SELECT addr, client, mac, state, expires FROM leases4")?;
        let rows = q.query_map([], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        for row in rows {
            let (addr, client, mac, st, expires) = row?;
            snap.leases4.push(Lease4 {
                addr: Ipv4Addr::from(addr),
                client,
                mac,
                state: state(st)?,
                expires: expires as u64,
            });
        }
        let mut q = self
            .conn
            .prepare("SELECT addr, duid, iaid, link, state, expires FROM leases6")?;
        let rows = q.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get(1)?,
                r.get::<_, u32>(2)?,
                r.get(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        for row in rows {
            let (addr, duid, iaid, link, st, expires) = row?;
            let addr: [u8; 16] = addr
                .try_into()
                .map_err(|_| StoreError::Corrupt("v6 address length".into()))?;
            snap.leases6.push(Lease6 {
                addr: Ipv6Addr::from(addr),
                duid,
                iaid,
                link,
                state: state(st)?,
                expires: expires as u64,
            });
        }
        let mut q = self.conn.prepare("SELECT key, value FROM meta")?;
        for row in q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
            snap.meta.push(row?);
        }
        Ok(snap)
    }

    fn commit(&mut self, batch: &[Change]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut put4 =
                tx.prepare_cached("INSERT OR REPLACE INTO leases4 VALUES (?1, ?2, ?3, ?4, ?5)")?;
            let mut put6 = tx
                .prepare_cached("INSERT OR REPLACE INTO leases6 VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
            let mut meta = tx.prepare_cached("INSERT OR REPLACE INTO meta VALUES (?1, ?2)")?;
            for c in batch {
                match c {
                    Change::Lease4(l) => put4.execute(params![
                        u32::from(l.addr),
                        l.client,
                        l.mac,
                        l.state as i64,
                        l.expires as i64
                    ])?,
                    Change::Lease6(l) => put6.execute(params![
                        &l.addr.octets()[..],
                        l.duid,
                        l.iaid,
                        l.link,
                        l.state as i64,
                        l.expires as i64
                    ])?,
                    Change::Meta { key, value } => meta.execute(params![key, value])?,
                };
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_changes_come_back_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let l4 = Lease4 {
            addr: Ipv4Addr::new(192, 168, 1, 10),
            client: vec![1, 0x52, 0x54, 0, 1, 2, 3],
            mac: vec![0x52, 0x54, 0, 1, 2, 3],
            state: LeaseState::Bound,
            expires: 1_800_000_000,
        };
        let l6 = Lease6 {
            addr: "fd00:1::100".parse().unwrap(),
            duid: vec![0, 4, 1, 2],
            iaid: 7,
            link: vec![0x52, 0x54, 0, 1, 2, 3],
            state: LeaseState::Offered,
            expires: 1_800_000_100,
        };
        {
            let mut s = SqliteStore::open(dir.path()).unwrap();
            let meta = Change::Meta {
                key: "duid".into(),
                value: vec![9, 9],
            };
            s.commit(&[Change::Lease4(l4.clone()), Change::Lease6(l6.clone()), meta])
                .unwrap();
            let newer = Lease4 {
                state: LeaseState::Released,
                ..l4.clone()
            };
            s.commit(&[Change::Lease4(newer)]).unwrap();
        }
        let snap = SqliteStore::open(dir.path()).unwrap().load().unwrap();
        assert_eq!(
            snap.leases4,
            vec![Lease4 {
                state: LeaseState::Released,
                ..l4
            }]
        );
        assert_eq!(snap.leases6, vec![l6]);
        assert_eq!(snap.meta, vec![("duid".to_string(), vec![9, 9])]);
    }
}
