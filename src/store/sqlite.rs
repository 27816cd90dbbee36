//! The embedded default store: SQLite in WAL mode with `synchronous=FULL`, so a committed
//! transaction survives a crash or power loss.

use super::{
    Change, Lease4, Lease6, LeaseState, MACHINE_EVENTS_KEPT, MachineEvent, Snapshot, Store,
    StoreError,
};
use crate::step::{Protocol, Stage};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
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
CREATE TABLE IF NOT EXISTS machines (mac BLOB PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS machine_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, mac BLOB NOT NULL, at INTEGER NOT NULL,
  protocol TEXT NOT NULL, stage TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS machine_events_by_mac ON machine_events (mac, id);
";

/// The database file in `state_dir`.
const FILE: &str = "leases.sqlite";

impl SqliteStore {
    /// Opens (creating if needed) `leases.sqlite` in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(state_dir)?;
        let conn = Connection::open(state_dir.join(FILE))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteStore { conn })
    }
}

/// One machine's record (JSON), read without creating or changing anything, so it is safe
/// beside a serving sixboot (WAL gives the reader the last committed state); `None` when
/// there is no store yet or no such machine.
pub fn read_machine(state_dir: &Path, mac: [u8; 6]) -> Result<Option<String>, StoreError> {
    let path = state_dir.join(FILE);
    if !path.exists() {
        return Ok(None);
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(1))?;
    Ok(conn
        .query_row(
            "SELECT record FROM machines WHERE mac = ?1",
            [&mac[..]],
            |r| r.get(0),
        )
        .optional()?)
}

fn mac(v: Vec<u8>) -> Result<[u8; 6], StoreError> {
    v.try_into()
        .map_err(|_| StoreError::Corrupt("machine MAC length".into()))
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
        let mut q = self.conn.prepare("SELECT mac, record FROM machines")?;
        for row in q.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?)))? {
            let (m, record) = row?;
            snap.machines.push((mac(m)?, record));
        }
        let mut q = self
            .conn
            .prepare("SELECT mac, at, protocol, stage, detail FROM machine_events ORDER BY id")?;
        let rows = q.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
            ))
        })?;
        for row in rows {
            let (m, at, protocol, stage, detail): (_, _, String, String, _) = row?;
            // A step this sixboot has no name for is history it cannot show: skipped, so
            // it never keeps the server from starting.
            let (Some(protocol), Some(stage)) =
                (Protocol::from_name(&protocol), Stage::from_name(&stage))
            else {
                tracing::warn!(
                    protocol,
                    stage,
                    "machine timeline step of an unknown kind; skipped"
                );
                continue;
            };
            snap.machine_events.push(MachineEvent {
                mac: mac(m)?,
                at: at as u64,
                protocol,
                stage,
                detail,
            });
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
            let mut machine =
                tx.prepare_cached("INSERT OR REPLACE INTO machines VALUES (?1, ?2)")?;
            let mut event = tx.prepare_cached(
                "INSERT INTO machine_events (mac, at, protocol, stage, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            // Keeps the newest MACHINE_EVENTS_KEPT of one machine's steps; run once per
            // machine per batch, after its inserts.
            let mut trim = tx.prepare_cached(
                "DELETE FROM machine_events WHERE mac = ?1 AND id <= (SELECT id FROM machine_events WHERE mac = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
            )?;
            let mut forget = tx.prepare_cached("DELETE FROM machines WHERE mac = ?1")?;
            let mut forget_events =
                tx.prepare_cached("DELETE FROM machine_events WHERE mac = ?1")?;
            let mut grew = std::collections::HashSet::new();
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
                    Change::Machine { mac, record } => {
                        machine.execute(params![&mac[..], record])?
                    }
                    Change::MachineEvent(e) => {
                        event.execute(params![
                            &e.mac[..],
                            e.at as i64,
                            e.protocol.as_str(),
                            e.stage.as_str(),
                            e.detail
                        ])?;
                        grew.insert(e.mac);
                        0
                    }
                    Change::ForgetMachine(mac) => {
                        forget_events.execute(params![&mac[..]])?;
                        forget.execute(params![&mac[..]])?
                    }
                };
            }
            for mac in grew {
                trim.execute(params![&mac[..], MACHINE_EVENTS_KEPT as i64])?;
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

    #[test]
    fn machines_and_their_newest_events_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = [0x52, 0x54, 0, 0, 0, 1];
        let b = [0x52, 0x54, 0, 0, 0, 2];
        let ev = |mac, n: usize| {
            Change::MachineEvent(MachineEvent {
                mac,
                at: 1_800_000_000_000 + n as u64,
                protocol: Protocol::Http,
                stage: Stage::Served,
                detail: format!("step {n}"),
            })
        };
        {
            let mut s = SqliteStore::open(dir.path()).unwrap();
            let mut batch = vec![
                Change::Machine {
                    mac: a,
                    record: "{\"n\":1}".into(),
                },
                Change::Machine {
                    mac: b,
                    record: "{}".into(),
                },
            ];
            batch.extend((0..MACHINE_EVENTS_KEPT + 5).map(|n| ev(a, n)));
            batch.push(ev(b, 0));
            s.commit(&batch).unwrap();
            s.commit(&[Change::Machine {
                mac: a,
                record: "{\"n\":2}".into(),
            }])
            .unwrap();
        }
        let mut s = SqliteStore::open(dir.path()).unwrap();
        let snap = s.load().unwrap();
        let mut machines = snap.machines.clone();
        machines.sort();
        assert_eq!(machines, vec![(a, "{\"n\":2}".into()), (b, "{}".into())]);
        let of_a: Vec<_> = snap.machine_events.iter().filter(|e| e.mac == a).collect();
        assert_eq!(of_a.len(), MACHINE_EVENTS_KEPT);
        assert_eq!(of_a[0].detail, "step 5");
        assert_eq!(
            of_a.last().unwrap().detail,
            format!("step {}", MACHINE_EVENTS_KEPT + 4)
        );
        s.commit(&[Change::ForgetMachine(a)]).unwrap();
        let snap = s.load().unwrap();
        assert_eq!(snap.machines, vec![(b, "{}".into())]);
        assert!(snap.machine_events.iter().all(|e| e.mac == b));
        assert_eq!(snap.machine_events.len(), 1);
    }
}
