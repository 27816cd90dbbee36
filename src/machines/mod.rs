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

pub use record::{Machine, Record, Running, State, Stored, View};

use crate::mac::Mac;
use crate::pipeline::{Action, BURNIN_ITEM, MEMTEST_ITEM, Pipeline};
use crate::policy::Policy;
use crate::step::{Protocol, Stage};
use crate::store::{Change, MachineEvent, Snapshot, StoreError, Writer};
use crate::timeline::Observed;
use crate::verdict::{Rules, Spec};
use serde_json::Value;
use sixboot_report::{Accepted, Report, Step, Then};
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

/// The current action of `mac`'s pipeline, read from the store in `state_dir` without
/// writing anything: `explain` may run beside a serving sixboot. `None` when there is no
/// store, no record or no current action.
pub fn stored_next(
    state_dir: &std::path::Path,
    mac: [u8; 6],
) -> Result<Option<Action>, StoreError> {
    let Some(text) = crate::store::read_machine(state_dir, mac)? else {
        return Ok(None);
    };
    let mut r: Record = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("machine record: {e}")))?;
    upgrade(&mut r);
    Ok(r.current().cloned())
}

/// An older record's single next action becomes a pipeline of one.
fn upgrade(r: &mut Record) {
    if let Some(n) = r.next.take()
        && r.pipeline.is_none()
    {
        r.pipeline = Some(Pipeline {
            steps: vec![Action::from_name(&n)],
            at: 0,
        });
    }
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
    rules: Arc<Rules>,
    /// Paths under `[http] root` whose fetch starts a step of the burn-in image.
    burnin_files: Vec<String>,
    /// Paths whose fetch means Memtest86+ is booting.
    memtest_files: Vec<String>,
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
    pub fn load(
        snap: &Snapshot,
        writer: Writer,
        policy: Arc<Policy>,
        rules: Arc<Rules>,
    ) -> Machines {
        let mut records = HashMap::new();
        for (mac, text) in &snap.machines {
            match serde_json::from_str::<Record>(text) {
                Ok(mut record) => {
                    upgrade(&mut record);
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
        let burnin_files = policy.files_of(BURNIN_ITEM);
        let memtest_files = policy.files_of(MEMTEST_ITEM);
        Machines {
            records: Mutex::new(records),
            writer,
            policy,
            rules,
            burnin_files,
            memtest_files,
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

    /// `f` of `mac`'s view: what showing or judging a machine needs besides its record.
    fn with_view<R>(&self, mac: [u8; 6], f: impl FnOnce(&View) -> R) -> R {
        let text = Mac(&mac).to_string();
        f(&View {
            mac: &text,
            mac_bytes: mac,
            host_pin: self.policy.host_boot(mac),
            rules: &self.rules,
        })
    }

    fn summary(&self, mac: &[u8; 6], m: &Machine) -> Value {
        self.with_view(*mac, |v| m.summary(v))
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
        g.get(&mac).map(|m| self.with_view(mac, |v| m.detail(v)))
    }

    /// The current action of `mac`'s pipeline, if any.
    pub fn next_of(&self, mac: [u8; 6]) -> Option<Action> {
        self.lock()
            .get(&mac)
            .and_then(|m| m.record.current().cloned())
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
        g.entry(mac).or_insert_with(|| {
            let mut m = Machine::new(at);
            m.record.pipeline = self.policy.default_pipeline();
            m
        })
    }

    /// Sends the machine's summary to live subscribers; with none, nothing is built.
    fn publish(&self, mac: &[u8; 6], m: &Machine) {
        if self.updates.receiver_count() > 0 {
            let _ = self.updates.send(self.summary(mac, m).to_string().into());
        }
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
                if event.protocol == Protocol::Http && event.stage == Stage::Served {
                    let file = event.file.as_ref();
                    if file.is_some_and(|f| self.burnin_files.contains(f)) {
                        m.record.running = Some(self.running(&m.record, at));
                    } else if file.is_some_and(|f| self.memtest_files.contains(f))
                        && let Some(p) = &mut m.record.pipeline
                    {
                        p.advance(&Action::Memtest);
                    }
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

    /// The step a fetch of the burn-in image starts: the pipeline's, with the duration
    /// sixboot gave it, or a burn-in chosen from the menu or pinned, shown without a
    /// duration (its script carries `[steps]`'s burn-in run all the same).
    fn running(&self, r: &Record, at: u64) -> Running {
        match r.current() {
            Some(Action::Run(step)) => Running {
                step: *step,
                started: at,
                duration_s: Some(self.policy.step_run(*step).duration_s),
            },
            _ => Running {
                step: Step::Burnin,
                started: at,
                duration_s: None,
            },
        }
    }

    /// Applies `change` to each of `macs` (making records for machines never seen), puts
    /// it on their timelines, and returns once every record is on disk. One write for
    /// the lot, so a bulk change lands whole or not at all.
    pub async fn change(&self, macs: &[[u8; 6]], edits: &[Edit]) -> Result<usize, StoreError> {
        let durable = {
            let mut g = self.lock();
            let at = now_ms();
            let mut writes = Vec::with_capacity((1 + edits.len()) * macs.len());
            for &mac in macs {
                let m = self.entry(&mut g, mac, at);
                for edit in edits {
                    let detail = edit.apply(&mut m.record);
                    writes.push(api_event(mac, m, at, Stage::Next, detail));
                }
                writes.push(record_change(mac, &m.record));
                self.publish(&mac, m);
            }
            self.writer.submit(writes)
        };
        durable.await?;
        Ok(macs.len())
    }

    /// Whether `token` is the current burn-in token of `mac`.
    pub fn check_token(&self, mac: [u8; 6], token: Option<&str>) -> Result<(), Refusal> {
        token_holds(self.lock().get(&mac), token)
    }

    /// Stores a report (checking the token again: a newer boot may have replaced it),
    /// moves the pipeline on when it was at this step, and puts it on the timeline;
    /// returns the verdict and what the image does next once both are on disk.
    pub async fn report(
        &self,
        mac: [u8; 6],
        token: Option<&str>,
        report: Report,
    ) -> Result<Accepted, Refusal> {
        let step = report.step;
        let (durable, accepted) = {
            let mut g = self.lock();
            token_holds(g.get(&mac), token)?;
            let m = g.get_mut(&mac).ok_or(Refusal::UnknownMachine)?;
            let at = now_ms();
            let r = &mut m.record;
            r.running = None;
            r.keep(at, report);
            let moved = r
                .pipeline
                .as_mut()
                .is_some_and(|p| p.advance(&Action::Run(step)));
            let then = match (moved, r.current()) {
                (true, Some(Action::Poweroff)) => Then::Poweroff,
                (true, Some(_)) => Then::Reboot,
                _ => Then::Stay,
            };
            let result = self
                .with_view(mac, |v| m.judgement(v))
                .map_or_else(|| "PASS".into(), |j| j.label());
            let detail = match (moved, m.record.current()) {
                (true, Some(next)) => {
                    format!("{} report received: {result}; next {next}", step.as_str())
                }
                (true, None) => {
                    format!("{} report received: {result}; pipeline done", step.as_str())
                }
                (false, _) => format!("{} report received: {result}", step.as_str()),
            };
            let e = api_event(mac, m, at, Stage::Report, detail);
            let durable = self.writer.submit(vec![record_change(mac, &m.record), e]);
            self.publish(&mac, m);
            (
                durable,
                Accepted {
                    stored: true,
                    result,
                    then,
                },
            )
        };
        durable.await.map_err(Refusal::Store)?;
        Ok(accepted)
    }
}

/// A change the operator makes to one or many machines.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// A new pipeline (`None` clears it: the host pin or the menu applies).
    Pipeline(Option<Pipeline>),
    Batch(Option<String>),
    Spec(Option<Spec>),
}

impl Edit {
    /// Makes the change; returns the timeline's detail for it.
    fn apply(&self, r: &mut Record) -> String {
        fn shown<T: std::fmt::Display>(v: Option<T>) -> String {
            v.map_or_else(|| "unset".into(), |v| v.to_string())
        }
        match self {
            Edit::Pipeline(p) => {
                let was = r.current().map(|a| a.name().to_string());
                r.pipeline = p.clone();
                let now = p.as_ref().map(|p| p.names().join(" → "));
                format!("{} (was {})", shown(now), shown(was))
            }
            Edit::Batch(b) => {
                let was = std::mem::replace(&mut r.batch, b.clone());
                format!("batch {} (was {})", shown(b.as_deref()), shown(was))
            }
            Edit::Spec(s) => {
                r.spec = s.clone();
                format!(
                    "spec {}",
                    s.as_ref().map_or_else(|| "unset".into(), Spec::describe)
                )
            }
        }
    }
}

/// Puts a change made through the API on the machine's timeline and the log (in the
/// timeline's one shape, see [`crate::timeline`]); returns the step's write.
fn api_event(mac: [u8; 6], m: &mut Machine, at: u64, stage: Stage, detail: String) -> Change {
    let e = MachineEvent {
        mac,
        at,
        protocol: Protocol::Api,
        stage,
        detail,
    };
    log_step(&e);
    m.step(e.clone());
    Change::MachineEvent(e)
}

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
    use serde_json::json;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
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

    fn load(snap: &Snapshot, writer: Writer) -> Machines {
        Machines::load(snap, writer, policy(), Arc::new(Rules::default()))
    }

    fn report(step: &str, mce_events: u64) -> Report {
        let mut v = crate::verdict::tests::qemu_report();
        v["step"] = step.into();
        v["checks"][1]["values"]["events"] = mce_events.into();
        crate::verdict::tests::report(&v)
    }

    #[tokio::test]
    async fn steps_tokens_pipelines_and_reports_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (writer, snap) = open(dir.path());
            let m = Arc::new(load(&snap, writer));
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
            let p = Pipeline::parse(&["inventory", "burnin", "poweroff"], &["burnin"]).unwrap();
            m.change(&[MAC], &[Edit::Pipeline(Some(p))]).await.unwrap();
            // Read beside the live writer, as `explain` does.
            assert_eq!(
                stored_next(dir.path(), MAC).unwrap(),
                Some(Action::Run(Step::Inventory))
            );
            assert_eq!(stored_next(dir.path(), [0; 6]).unwrap(), None);
            let nowhere = dir.path().join("nowhere");
            assert_eq!(stored_next(&nowhere, MAC).unwrap(), None);
            assert!(!nowhere.exists(), "reading creates nothing");
            // A report of another step than the current one is kept, but moves nothing.
            let a = m
                .report(MAC, Some(&token), report("burnin", 0))
                .await
                .unwrap();
            assert_eq!((a.result.as_str(), a.then), ("PASS", Then::Stay));
            let a = m
                .report(MAC, Some(&token), report("inventory", 0))
                .await
                .unwrap();
            assert_eq!((a.result.as_str(), a.then), ("PASS", Then::Reboot));
            assert_eq!(m.next_of(MAC), Some(Action::Run(Step::Burnin)));
            let a = m
                .report(MAC, Some(&token), report("burnin", 1))
                .await
                .unwrap();
            assert_eq!(
                (a.result.as_str(), a.then),
                ("FAIL cpu mce", Then::Poweroff)
            );
            stop_tx.send(true).unwrap();
            task.await.unwrap();
        }
        let (writer, snap) = open(dir.path());
        let m = load(&snap, writer);
        let v = m.get(MAC).unwrap();
        assert_eq!(v["result"], "FAIL cpu mce");
        assert_eq!(v["next"], "poweroff");
        assert_eq!(
            v["pipeline"],
            json!({"steps": ["inventory", "burnin", "poweroff"], "at": 2})
        );
        assert_eq!(v["uuid"], "0000");
        assert_eq!(v["addresses"][0], "192.168.1.10");
        let kept: Vec<&str> = v["reports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["step"].as_str().unwrap())
            .collect();
        assert_eq!(kept, ["burnin", "inventory"]);
        let stages: Vec<&str> = v["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["stage"].as_str().unwrap())
            .collect();
        assert_eq!(stages, ["answered", "next", "report", "report", "report"]);
        assert!(v.get("token").is_none(), "the token is never shown");
        assert!(m.check_token(MAC, Some("0")).is_err());
    }

    #[tokio::test]
    async fn a_bulk_change_reaches_every_machine_and_specs_judge_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, snap) = open(dir.path());
        let m = load(&snap, writer);
        let macs = [MAC, [2, 0, 0, 0, 0, 1]];
        let spec = Spec {
            memory_bytes: Some(2 << 30),
            ..Spec::default()
        };
        let edits = [Edit::Batch(Some("lot7".into())), Edit::Spec(Some(spec))];
        assert_eq!(m.change(&macs, &edits).await.unwrap(), 2);
        let token = m.script_served(MAC, |_| {}, true).await.unwrap().unwrap();
        let a = m
            .report(MAC, Some(&token), report("inventory", 0))
            .await
            .unwrap();
        assert_eq!(a.result, "FAIL system spec");
        let v = m.get(MAC).unwrap();
        assert_eq!(
            (&v["batch"], &v["spec_from"]),
            (&json!("lot7"), &json!("machine"))
        );
        assert_eq!(v["verdict"]["spec"], false);
        assert!(
            v["report"]["checks"][0]["detail"]
                .as_str()
                .unwrap()
                .contains("memory 1 GiB, expected 2 GiB")
        );
        m.change(&[MAC], &[Edit::Spec(None)]).await.unwrap();
        assert_eq!(
            m.get(MAC).unwrap()["result"],
            "PASS",
            "judged again without the spec"
        );
    }

    #[tokio::test]
    async fn a_full_registry_forgets_the_machines_seen_least_recently() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, snap) = open(dir.path());
        let m = load(&snap, writer);
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
