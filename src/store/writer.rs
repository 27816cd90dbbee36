//! Group commit: one thread owns the store; callers queue batches of changes and await
//! their own durability. While a transaction is being synced, new batches queue up and
//! all go into the next transaction, so the receive loops never block on the disk.
//!
//! The DHCP loop ([`crate::datagram`]) hands over one batch per drained socket read and
//! gets one wake-up per batch back ([`Outbox`]), not one per packet: at tens of thousands
//! of replies a second the task wakes and thread hand-offs, not the fsyncs, were what cost
//! the most.
//!
//! Batches are queued when [`Writer::submit`] is called, not when its future is first
//! polled: callers submit in decision order (or under their own lock), so the store sees
//! decisions in that order even though whoever awaits them runs in any order.

use super::{Change, Store, StoreError};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Poll};
use tokio::sync::oneshot;

type Job = (Vec<Change>, oneshot::Sender<Result<(), String>>);

/// A handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

/// Most changes put in one transaction; bounds the latency of the first in a batch.
const MAX_BATCH: usize = 4096;

impl Writer {
    /// Starts the writer thread over `store`.
    pub fn start(mut store: Box<dyn Store>) -> Writer {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("store-writer".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let mut batch = Vec::new();
                let mut waiters = Vec::new();
                while let Ok((changes, w)) = rx.recv() {
                    batch.extend(changes);
                    waiters.push(w);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok((changes, w)) => {
                                batch.extend(changes);
                                waiters.push(w);
                            }
                            Err(_) => break,
                        }
                    }
                    let result = store.commit(&batch).map_err(|e| e.to_string());
                    if let Err(e) = &result {
                        tracing::error!(error = %e, changes = batch.len(), "lease store commit failed; replies withheld");
                    }
                    for w in waiters.drain(..) {
                        let _ = w.send(result.clone());
                    }
                    batch.clear();
                }
            })
            .expect("spawn store writer thread");
        Writer { tx }
    }

    /// Queues `changes` as one unit; the returned future resolves once all of them are
    /// on disk (or the commit failed).
    pub fn submit(&self, changes: Vec<Change>) -> Durable {
        let (tx, rx) = oneshot::channel();
        // A send error means the thread is gone: `rx` then resolves to Closed.
        let _ = self.tx.send((changes, tx));
        Durable(rx)
    }
}

/// Resolves when a submitted batch is durable.
pub struct Durable(oneshot::Receiver<Result<(), String>>);

impl Future for Durable {
    type Output = Result<(), StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|r| match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Commit(e)),
            Err(_) => Err(StoreError::Closed),
        })
    }
}

/// Decisions (their replies) held back until their leases are durable, in submission
/// order. The writer
/// commits batches in the order they were queued, so only the oldest needs watching.
pub struct Outbox<T> {
    writer: Writer,
    queue: VecDeque<(Durable, Vec<T>, usize)>,
    held: usize,
}

impl<T> Outbox<T> {
    pub fn new(writer: Writer) -> Outbox<T> {
        Outbox {
            writer,
            queue: VecDeque::new(),
            held: 0,
        }
    }

    /// Submits `changes` and holds `items` until they are durable.
    pub fn hold(&mut self, changes: Vec<Change>, items: Vec<T>) {
        let weight = changes.len().max(items.len());
        self.held += weight;
        self.queue
            .push_back((self.writer.submit(changes), items, weight));
    }

    /// Changes or items (whichever is more, per batch) waiting for the disk: what the
    /// receive loops bound, so neither replies nor reply-less changes (RELEASE, DECLINE)
    /// pile up without limit.
    pub fn held(&self) -> usize {
        self.held
    }

    /// The oldest held batch once its changes are durable, with the commit's result.
    /// Pends for ever while nothing is held (for use as one branch of a `select!`).
    pub async fn released(&mut self) -> (Result<(), StoreError>, Vec<T>) {
        let Some((durable, _, _)) = self.queue.front_mut() else {
            return std::future::pending().await;
        };
        let result = durable.await;
        let (_, items, weight) = self.queue.pop_front().expect("front was there");
        self.held -= weight;
        (result, items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Lease4, LeaseState, Snapshot};
    use std::sync::{Arc, Mutex};

    /// Records each commit's size; stands in for SQLite only to observe batching.
    struct Recorder(Arc<Mutex<Vec<usize>>>);

    impl Store for Recorder {
        fn load(&mut self) -> Result<Snapshot, StoreError> {
            Ok(Snapshot::default())
        }
        fn commit(&mut self, batch: &[Change]) -> Result<(), StoreError> {
            self.0.lock().unwrap().push(batch.len());
            Ok(())
        }
    }

    fn lease(n: u8) -> Change {
        Change::Lease4(Lease4 {
            addr: std::net::Ipv4Addr::new(10, 0, 0, n),
            client: vec![n],
            mac: vec![n; 6],
            state: LeaseState::Bound,
            expires: 1,
        })
    }

    #[tokio::test]
    async fn outbox_releases_batches_in_order_after_commit() {
        let commits = Arc::new(Mutex::new(Vec::new()));
        let writer = Writer::start(Box::new(Recorder(commits.clone())));
        let mut outbox = Outbox::new(writer);
        outbox.hold(vec![lease(1), lease(2)], vec!["a", "b"]);
        outbox.hold(vec![lease(3), lease(4)], vec!["c"]);
        assert_eq!(outbox.held(), 4);
        let (r, first) = outbox.released().await;
        assert!(r.is_ok());
        assert_eq!(first, vec!["a", "b"]);
        let (_, second) = outbox.released().await;
        assert_eq!(second, vec!["c"]);
        assert_eq!(outbox.held(), 0);
        // Every change reached the store, whatever the grouping into transactions.
        assert_eq!(commits.lock().unwrap().iter().sum::<usize>(), 4);
    }

    fn lease_in(state: LeaseState, expires: u64) -> Change {
        Change::Lease4(Lease4 {
            addr: [10, 0, 0, 1].into(),
            client: vec![1, 2, 3],
            mac: vec![2, 3],
            state,
            expires,
        })
    }

    #[tokio::test]
    async fn changes_land_in_call_order_whatever_order_they_are_awaited_in() {
        let dir = tempfile::tempdir().unwrap();
        let w = Writer::start(Box::new(
            crate::store::SqliteStore::open(dir.path()).unwrap(),
        ));
        let offered = w.submit(vec![lease_in(LeaseState::Offered, 60)]);
        let bound = w.submit(vec![lease_in(LeaseState::Bound, 600)]);
        bound.await.unwrap();
        offered.await.unwrap();
        w.submit(Vec::new()).await.unwrap();
        let snap = crate::store::SqliteStore::open(dir.path())
            .unwrap()
            .load()
            .unwrap();
        assert_eq!(snap.leases4.len(), 1);
        assert_eq!(snap.leases4[0].state, LeaseState::Bound);
        assert_eq!(snap.leases4[0].expires, 600);
    }
}
