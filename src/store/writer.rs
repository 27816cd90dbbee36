//! Group commit: one thread owns the store; callers queue changes and await their own
//! durability. While a transaction is being synced, new changes queue up and all go into
//! the next transaction, so the receive loops never block on the disk.

use super::{Change, Store, StoreError};
use std::sync::mpsc;
use tokio::sync::oneshot;

type Job = (Change, oneshot::Sender<Result<(), String>>);

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
                    batch.push(c);
                    waiters.push(w);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok((c, w)) => {
                                batch.push(c);
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

    /// Queues `changes` now, in order, and returns what resolves once they are all on
    /// disk. Queuing is synchronous so a caller can queue under its own lock: writes made
    /// in lock order land in that order, and a later whole-record write never loses to an
    /// earlier one.
    pub fn queue(
        &self,
        changes: Vec<Change>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        let waits: Vec<_> = changes
            .into_iter()
            .map(|c| {
                let (tx, rx) = oneshot::channel();
                self.tx
                    .send((c, tx))
                    .map(|()| rx)
                    .map_err(|_| StoreError::Closed)
            })
            .collect();
        async move {
            for w in waits {
                match w?.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(StoreError::Commit(e)),
                    Err(_) => return Err(StoreError::Closed),
                }
            }
            Ok(())
        }
    }

    /// Queues a change and resolves once it is on disk (or the commit failed).
    pub async fn persist(&self, change: Change) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((change, tx)).map_err(|_| StoreError::Closed)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Commit(e)),
            Err(_) => Err(StoreError::Closed),
        }
    }
}
