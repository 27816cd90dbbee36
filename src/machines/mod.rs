//! Machine records: one per physical machine, keyed by MAC (never by SMBIOS UUID, which
//! old boards and VMs share: all-zero, all-FF or a vendor placeholder). Each record holds
//! what the protocols learned about the machine, its boot timeline, its next action and
//! its latest burn-in report, in the same store as the leases.
//!
//! Two kinds of write, for two needs:
//! - Timeline steps arrive from [`crate::timeline`] on a bounded channel, never waited
//!   for by the protocol that produced them. [`Machines::run`] applies them at once (the
//!   dashboard sees them live) and writes them in batches, at most every
//!   [`FLUSH_EVERY`], without waiting for the disk either.
//! - What a later answer depends on (a burn-in token, a next action, a report) is on disk
//!   before the answer goes out.
//!
//! Every write of a record is the whole record, queued while the registry lock is held,
//! so the store sees the writes in the order the records changed.

mod record;
mod report;

pub use record::{Machine, Record, State};
pub use report::{Invalid, Report};

use crate::mac::Mac;
use crate::policy::Policy;
use crate::step::{Protocol, Stage};
use crate::store::{Change, MachineEvent, Snapshot, StoreError, Writer};
use crate::timeline::Observed;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

/// Machines kept; past this, the ones seen least recently are forgotten (a flood of
/// made-up MACs must not grow the store without end).
const MAX_MACHINES: usize = 10_000;
/// Machines forgotten at once when the registry is full: the sixteenth seen least
/// recently, found in one pass. One pass per new machine cost a walk of all 10k records
/// for every new MAC of a flood (the hottest function of a 100k-lease run).
const FORGET_AT_ONCE: usize = MAX_MACHINES / 16;
/// Timeline steps waiting to be applied; past this, steps are dropped and counted.
pub const SINK_CAPACITY: usize = 4096;
/// Longest a timeline step waits before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// Live updates buffered per subscriber; one that falls further behind is dropped.
const UPDATES_CAPACITY: usize = 256;

/// Unix milliseconds.
fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The next action the API set for `mac`, read from the store in `state_dir` without
/// writing anything: `explain` may run beside a serving sixboot. `None` when there is no
/// store, no record or no next action yet.
pub fn stored_next(
    state_dir: &std::path::Path,
    mac: [u8; 6],
) -> Result<Option<String>, StoreError> {
    let Some(text) = crate::store::read_machine(state_dir, mac)? else {
        return Ok(None);
    };
    let r: Record = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("machine record: {e}")))?;
    Ok(r.next)
}

pub fn now_ms() -> u64 {
    millis(SystemTime::now())
}

/// Why a report is not taken.
#[derive(Debug)]
pub enum Refusal {
    UnknownMachine,
    BadToken,
    Store(StoreError),
}

/// The records, shared by the HTTP handlers and the task that applies timeline steps.
pub struct Machines {
    records: Mutex<HashMap<[u8; 6], Machine>>,
    writer: Writer,
    policy: Arc<Policy>,
    /// Paths under `[http] root` whose fetch starts a burn-in.
    burnin_files: Vec<String>,
    /// Each changed machine's summary (JSON), for the live dashboard.
    updates: broadcast::Sender<Arc<str>>,
}

/// Steps applied but not yet written.
#[derive(Default)]
struct Pending {
    dirty: HashSet<[u8; 6]>,
    events: Vec<MachineEvent>,
}

impl Machines {
    /// The records the store held at start. A record that no longer parses is skipped
    /// with a warning: it must not keep sixboot from booting machines.
    pub fn load(snap: &Snapshot, writer: Writer, policy: Arc<Policy>) -> Machines {
        let mut records = HashMap::new();
        for (mac, text) in &snap.machines {
            match serde_json::from_str::<Record>(text) {
                Ok(record) => {
                    records.insert(
                        *mac,
                        Machine {
                            record,
                            steps: Default::default(),
                        },
                    );
                }
                Err(e) => warn!(mac = %Mac(mac), error = %e, "machine record unreadable; skipped"),
            }
        }
        // Batched steps may be written after a later durable one: order by time.
        let mut events: Vec<&MachineEvent> = snap.machine_events.iter().collect();
        events.sort_by_key(|e| e.at);
        for e in events {
            if let Some(m) = records.get_mut(&e.mac) {
                m.steps.push_back(e.clone());
            }
        }
        let burnin_files = policy.burnin_files();
        Machines {
            records: Mutex::new(records),
            writer,
            policy,
            burnin_files,
            updates: broadcast::channel(UPDATES_CAPACITY).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 6], Machine>> {
        self.records.lock().expect("machine records lock")
    }

    /// Live updates: each changed machine's summary, as JSON.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.updates.subscribe()
    }

    fn summary(&self, mac: &[u8; 6], m: &Machine) -> Value {
        m.summary(&Mac(mac).to_string(), self.policy.host_boot(*mac))
    }

    /// Every machine's summary, the one seen last first.
    pub fn list(&self) -> Vec<Value> {
        let g = self.lock();
        let mut all: Vec<_> = g.iter().collect();
        all.sort_by_key(|(mac, m)| (std::cmp::Reverse(m.record.last_seen), **mac));
        all.into_iter()
            .map(|(mac, m)| self.summary(mac, m))
            .collect()
    }

    /// One machine with its timeline and report.
    pub fn get(&self, mac: [u8; 6]) -> Option<Value> {
        let g = self.lock();
        g.get(&mac)
            .map(|m| m.detail(&Mac(&mac).to_string(), self.policy.host_boot(mac)))
    }

    /// The next action the API set for `mac`, if any.
    pub fn next_of(&self, mac: [u8; 6]) -> Option<String> {
        self.lock().get(&mac).and_then(|m| m.record.next.clone())
    }

    /// The record of `mac`, made if new; making one past [`MAX_MACHINES`] forgets the
    /// [`FORGET_AT_ONCE`] machines seen least recently (queued now, so it lands before
    /// anything later).
    fn entry<'a>(
        &self,
        g: &'a mut HashMap<[u8; 6], Machine>,
        mac: [u8; 6],
        at: u64,
    ) -> &'a mut Machine {
        if !g.contains_key(&mac) && g.len() >= MAX_MACHINES {
            let mut seen: Vec<(u64, [u8; 6])> =
                g.iter().map(|(k, m)| (m.record.last_seen, *k)).collect();
            let n = FORGET_AT_ONCE.min(seen.len());
            seen.select_nth_unstable(n - 1);
            seen.truncate(n);
            for (_, old) in &seen {
                g.remove(old);
            }
            warn!(
                forgotten = n,
                latest_forgotten = %Mac(&seen.iter().max().expect("n >= 1").1),
                "machine records full: the machines seen least recently are forgotten"
            );
            let forget = seen.into_iter().map(|(_, old)| Change::ForgetMachine(old));
            background(self.writer.submit(forget.collect()));
        }
        g.entry(mac).or_insert_with(|| Machine::new(at))
    }

    /// Sends the machine's summary to live subscribers; with none, nothing is built.
    fn publish(&self, mac: &[u8; 6], m: &Machine) {
        if self.updates.receiver_count() > 0 {
            let _ = self.updates.send(self.summary(mac, m).to_string().into());
        }
    }

    /// Puts a change made through the API on the machine's timeline, queues the record
    /// and the step as one write, and tells live subscribers; the caller awaits the write.
    fn api_step(
        &self,
        mac: [u8; 6],
        m: &mut Machine,
        at: u64,
        stage: Stage,
        detail: String,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let e = MachineEvent {
            mac,
            at,
            protocol: Protocol::Api,
            stage,
            detail,
        };
        log_step(&e);
        m.step(e.clone());
        let durable = self
            .writer
            .submit(vec![record_change(mac, &m.record), Change::MachineEvent(e)]);
        self.publish(&mac, m);
        durable
    }

    /// Applies timeline steps as they come and writes them in batches, until `stop`.
    pub async fn run(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Observed>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut pending = Pending::default();
        let mut deadline: Option<Instant> = None;
        loop {
            let flush_at = deadline.unwrap_or_else(|| Instant::now() + FLUSH_EVERY);
            tokio::select! {
                got = rx.recv() => match got {
                    Some(o) => {
                        self.apply(o, &mut pending);
                        deadline.get_or_insert_with(|| Instant::now() + FLUSH_EVERY);
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(flush_at), if deadline.is_some() => {
                    background(self.flush(&mut pending));
                    deadline = None;
                }
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        while let Ok(o) = rx.try_recv() {
            self.apply(o, &mut pending);
        }
        if let Err(e) = self.flush(&mut pending).await {
            error!(error = %e, "machine timeline not stored at stop");
        }
    }

    fn apply(&self, o: Observed, pending: &mut Pending) {
        let mut g = self.lock();
        let mac = match o {
            Observed::Stage { mac, event, at } => {
                let at = millis(at);
                let m = self.entry(&mut g, mac, at);
                if event.protocol == Protocol::Http
                    && event.stage == Stage::Served
                    && event
                        .file
                        .as_ref()
                        .is_some_and(|f| self.burnin_files.contains(f))
                {
                    m.record.burnin_started = Some(at);
                }
                let e = MachineEvent {
                    mac,
                    at,
                    protocol: event.protocol,
                    stage: event.stage,
                    detail: event.detail,
                };
                m.step(e.clone());
                pending.events.push(e);
                mac
            }
            Observed::Address { mac, ip, at } => {
                let at = millis(at);
                self.entry(&mut g, mac, at).address(ip, at);
                mac
            }
            Observed::Dhcp6Identity { mac, duid, iaid } => {
                let m = self.entry(&mut g, mac, now_ms());
                let duid = hex::encode(&duid);
                if m.record.duid == duid && m.record.iaid == Some(iaid) {
                    return;
                }
                m.record.duid = duid;
                m.record.iaid = Some(iaid);
                mac
            }
        };
        pending.dirty.insert(mac);
        if let Some(m) = g.get(&mac) {
            self.publish(&mac, m);
        }
    }

    /// Queues what `pending` holds and returns what resolves when it is on disk.
    fn flush(
        &self,
        pending: &mut Pending,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let g = self.lock();
        let mut changes: Vec<Change> = pending
            .dirty
            .drain()
            .filter_map(|mac| Some(record_change(mac, &g.get(&mac)?.record)))
            .collect();
        changes.extend(
            pending
                .events
                .drain(..)
                .filter(|e| g.contains_key(&e.mac))
                .map(Change::MachineEvent),
        );
        self.writer.submit(changes)
    }

    /// A per-machine script is being served: records what iPXE said about the machine
    /// (`update`) and, when `mint`, a fresh burn-in token, which is on disk when this
    /// returns it.
    pub async fn script_served(
        &self,
        mac: [u8; 6],
        update: impl FnOnce(&mut Record),
        mint: bool,
    ) -> Result<Option<String>, StoreError> {
        let token = mint.then(new_token).transpose()?;
        let durable = {
            let mut g = self.lock();
            let m = self.entry(&mut g, mac, now_ms());
            let before = m.record.clone();
            update(&mut m.record);
            if let Some(t) = &token {
                m.record.token = Some(t.clone());
                m.record.token_at = Some(now_ms());
            }
            // A machine fetching its script again with nothing new costs no write.
            (m.record != before).then(|| {
                self.publish(&mac, m);
                self.writer.submit(vec![record_change(mac, &m.record)])
            })
        };
        match durable {
            Some(d) if token.is_some() => d.await?,
            Some(d) => background(d),
            None => {}
        }
        Ok(token)
    }

    /// Sets the next action of `mac` (making the record if new), puts the change on its
    /// timeline, and returns the machine once both are on disk.
    pub async fn set_next(&self, mac: [u8; 6], next: &str) -> Result<Value, StoreError> {
        let (durable, view) = {
            let mut g = self.lock();
            let at = now_ms();
            let m = self.entry(&mut g, mac, at);
            let before = m.record.next.clone();
            m.record.next = Some(next.to_string());
            let detail = format!("{next} (was {})", before.as_deref().unwrap_or("unset"));
            let durable = self.api_step(mac, m, at, Stage::Next, detail);
            (
                durable,
                m.detail(&Mac(&mac).to_string(), self.policy.host_boot(mac)),
            )
        };
        durable.await?;
        Ok(view)
    }

    /// Whether `token` is the current burn-in token of `mac`.
    pub fn check_token(&self, mac: [u8; 6], token: Option<&str>) -> Result<(), Refusal> {
        token_holds(self.lock().get(&mac), token)
    }

    /// Stores a report (checking the token again: a newer boot may have replaced it) and
    /// puts it on the timeline; returns once both are on disk.
    pub async fn report(
        &self,
        mac: [u8; 6],
        token: Option<&str>,
        report: &Report,
        sent: Value,
    ) -> Result<String, Refusal> {
        let label = report.label();
        let durable = {
            let mut g = self.lock();
            token_holds(g.get(&mac), token)?;
            let m = g.get_mut(&mac).ok_or(Refusal::UnknownMachine)?;
            let at = now_ms();
            m.record.report = Some(sent);
            m.record.report_at = Some(at);
            m.record.result = Some(label.clone());
            self.api_step(
                mac,
                m,
                at,
                Stage::Report,
                format!("report received: {label}"),
            )
        };
        durable.await.map_err(Refusal::Store)?;
        Ok(label)
    }
}

/// Logs a step the API made in the timeline's one shape (see [`crate::timeline`]).
/// Whether `token` is the current burn-in token of `machine`.
fn token_holds(machine: Option<&Machine>, token: Option<&str>) -> Result<(), Refusal> {
    let m = machine.ok_or(Refusal::UnknownMachine)?;
    match (&m.record.token, token) {
        (Some(want), Some(got)) if tokens_match(want, got) => Ok(()),
        _ => Err(Refusal::BadToken),
    }
}

fn log_step(e: &MachineEvent) {
    info!(target: "sixboot::timeline", mac = %Mac(&e.mac), ip = "", protocol = %e.protocol, stage = %e.stage, detail = %e.detail, "stage");
}

fn record_change(mac: [u8; 6], r: &Record) -> Change {
    Change::Machine {
        mac,
        record: serde_json::to_string(r).expect("a record serializes"),
    }
}

/// Waits for a best-effort write off the caller's path, logging a failure.
fn background(durable: impl Future<Output = Result<(), StoreError>> + Send + 'static) {
    tokio::spawn(async move {
        if let Err(e) = durable.await {
            error!(error = %e, "machine record not stored");
        }
    });
}

/// 128 random bits from the OS, as 32 lowercase hex digits.
fn new_token() -> Result<String, StoreError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?;
    Ok(hex::encode(b))
}

/// Compares tokens in time that does not depend on where they differ (only on their
/// lengths, which are no secret).
pub fn tokens_match(a: &str, b: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SqliteStore, Store};
    use crate::timeline::{Event, Timeline};

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const REPORT: &str = r#"{"result":"fail","duration_s":20,"cpu":{"model":"QEMU","count":2},
        "memory_bytes":1,"disks":[],"checks":[{"name":"edac","ok":false,"detail":"1 CE"}]}"#;

    fn policy() -> Arc<Policy> {
        Arc::new(crate::policy::tests_support::policy(
            Default::default(),
            None,
        ))
    }

    fn open(dir: &std::path::Path) -> (Writer, Snapshot) {
        let mut s = SqliteStore::open(dir).unwrap();
        let snap = s.load().unwrap();
        (Writer::start(Box::new(s)), snap)
    }

    #[tokio::test]
    async fn steps_tokens_next_and_reports_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (writer, snap) = open(dir.path());
            let m = Arc::new(Machines::load(&snap, writer, policy()));
            let (tx, rx) = mpsc::channel(16);
            let (stop_tx, stop) = watch::channel(false);
            let task = tokio::spawn(m.clone().run(rx, stop));
            let t = Timeline::with_sink(tx, Default::default());
            let mut live = m.subscribe();
            t.learn("192.168.1.10".parse().unwrap(), MAC);
            t.record(Event {
                mac: Some(MAC),
                ip: None,
                protocol: Protocol::Dhcp4,
                stage: Stage::Answered,
                detail: "192.168.1.10 arch=bios".into(),
                file: None,
            });
            let update = live.recv().await.unwrap();
            assert!(update.contains("\"mac\":\"52:54:00:12:34:56\""), "{update}");
            let token = m
                .script_served(MAC, |r| r.uuid = "0000".into(), true)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(token.len(), 32);
            assert!(matches!(
                m.check_token(MAC, Some("x")),
                Err(Refusal::BadToken)
            ));
            assert!(matches!(
                m.check_token([0; 6], Some(&token)),
                Err(Refusal::UnknownMachine)
            ));
            assert_eq!(stored_next(dir.path(), MAC).unwrap(), None);
            m.set_next(MAC, "burnin").await.unwrap();
            // Read beside the live writer, as `explain` does.
            assert_eq!(
                stored_next(dir.path(), MAC).unwrap().as_deref(),
                Some("burnin")
            );
            assert_eq!(stored_next(dir.path(), [0; 6]).unwrap(), None);
            let nowhere = dir.path().join("nowhere");
            assert_eq!(stored_next(&nowhere, MAC).unwrap(), None);
            assert!(!nowhere.exists(), "reading creates nothing");
            let (r, sent) = Report::parse(REPORT.as_bytes()).unwrap();
            let label = m.report(MAC, Some(&token), &r, sent).await.unwrap();
            assert_eq!(label, "FAIL edac");
            stop_tx.send(true).unwrap();
            task.await.unwrap();
        }
        let (writer, snap) = open(dir.path());
        let m = Machines::load(&snap, writer, policy());
        let v = m.get(MAC).unwrap();
        assert_eq!(v["result"], "FAIL edac");
        assert_eq!(v["next"], "burnin");
        assert_eq!(v["uuid"], "0000");
        assert_eq!(v["addresses"][0], "192.168.1.10");
        let stages: Vec<&str> = v["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["stage"].as_str().unwrap())
            .collect();
        assert_eq!(stages, ["answered", "next", "report"]);
        assert!(v.get("token").is_none(), "the token is never shown");
        assert!(m.check_token(MAC, Some("0")).is_err());
    }

    #[tokio::test]
    async fn a_full_registry_forgets_the_machines_seen_least_recently() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, snap) = open(dir.path());
        let m = Machines::load(&snap, writer, policy());
        let mac = |i: usize| {
            let b = (i as u32).to_be_bytes();
            [2, 0, b[0], b[1], b[2], b[3]]
        };
        let mut g = m.lock();
        // Seen in reverse order of their numbers: machine 0 most recently.
        for i in (0..MAX_MACHINES).rev() {
            m.entry(&mut g, mac(i), (MAX_MACHINES - i) as u64);
        }
        assert_eq!(g.len(), MAX_MACHINES);
        m.entry(&mut g, mac(MAX_MACHINES), MAX_MACHINES as u64 + 1);
        assert_eq!(g.len(), MAX_MACHINES + 1 - FORGET_AT_ONCE);
        let kept = MAX_MACHINES - FORGET_AT_ONCE;
        assert!((0..kept).all(|i| g.contains_key(&mac(i))));
        assert!((kept..MAX_MACHINES).all(|i| !g.contains_key(&mac(i))));
        assert!(g.contains_key(&mac(MAX_MACHINES)));
    }
}
