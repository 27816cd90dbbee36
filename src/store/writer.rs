//! Group commit: one thread owns the store; callers queue changes and await their own
//! durability. While a transaction is being synced, new changes queue up and all go into
//! the next transaction, so the receive loops never block on the disk.
//!
//! Changes are queued when [`Writer::persist`] is called, not when its future is first
//! polled: the receive loops call it in decision order, so the store sees decisions in
//! that order even though the tasks awaiting them run in any order.

use super::{Change, Store, StoreError};
use std::sync::mpsc;
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
            .spawn(move || {
                let mut batch = Vec::new();
                let mut waiters = Vec::new();
                while let Ok((c, w)) = rx.recv() {
                    batch.extend(c);
                    waiters.push(w);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok((c, w)) => {
                                batch.extend(c);
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

    /// Queues `changes` now, all in one transaction, and returns a future that resolves
    /// once they are on disk (or the commit failed).
    pub fn persist(
        &self,
        changes: Vec<Change>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = if changes.is_empty() {
            let _ = tx.send(Ok(()));
            Ok(())
        } else {
            self.tx.send((changes, tx))
        };
        async move {
            queued.map_err(|_| StoreError::Closed)?;
            match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(StoreError::Commit(e)),
                Err(_) => Err(StoreError::Closed),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Lease4, LeaseState, SqliteStore};

    fn lease(state: LeaseState, expires: u64) -> Change {
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
        let w = Writer::start(Box::new(SqliteStore::open(dir.path()).unwrap()));
        let offered = w.persist(vec![lease(LeaseState::Offered, 60)]);
        let bound = w.persist(vec![lease(LeaseState::Bound, 600)]);
        bound.await.unwrap();
        offered.await.unwrap();
        w.persist(Vec::new()).await.unwrap();
        let snap = SqliteStore::open(dir.path()).unwrap().load().unwrap();
        assert_eq!(snap.leases4.len(), 1);
        assert_eq!(snap.leases4[0].state, LeaseState::Bound);
        assert_eq!(snap.leases4[0].expires, 600);
    }
}
