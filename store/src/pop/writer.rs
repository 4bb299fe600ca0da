//! The one thread that persists consumption-state changes.
//!
//! Pops, acks and invisibility changes update the in-memory state (see
//! [`super::state`]) under the subscription's lock; what they changed is
//! queued here, still under that lock, and this thread writes everything
//! that queued up as one RocksDB write.
//!
//! With `ack_flush = sync` (the default) that write syncs the WAL and every
//! caller waits for it ([`Queued::durable`]) before answering, outside the
//! lock: an OK ack, a new invisible time and a delivery's attempt count
//! survive a crash of the machine. Everything queued while one sync runs
//! shares the next one, as sends share the commit thread's. With
//! `ack_flush = async` callers answer at once and a crash may bring back
//! the newest acks as redeliveries (at-least-once still holds).
//!
//! Why not write on the caller's thread: every ack then paid a WAL write
//! syscall of its own, and a RocksDB write that arrives while the commit
//! thread's group is syncing waits for that fsync, so an async worker sat
//! blocked for milliseconds with the subscription's lock held, stalling every
//! other call it would have served. Why not the commit thread: it would put
//! each small state write behind an fsync it does not need.
//!
//! Queued in lock order, the changes reach the column family in the order
//! memory changed.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::db::{Cf, Db, Durability};
use crate::error::{Result, StoreError};
use crate::log::FlushMode;
use crate::worker::{self, Worker};

/// Jobs queued before a sender blocks: a bound on memory if the disk stalls.
const QUEUE_DEPTH: usize = 1 << 16;

/// Most changes merged into one write, so a long queue is written in steps.
const MAX_OPS_PER_WRITE: usize = 1 << 14;

/// With `ack_flush = async`: how long the thread lets changes gather after
/// the first one arrives. Nobody waits on those writes, so this costs no
/// caller anything; without
/// it, acks arriving one by one each woke the thread for a write of its
/// own, and those wake-ups cost per-message acks about a quarter of their
/// rate on 2 cores (`bench/scripts/ab.sh ... pop`).
const GATHER: Duration = Duration::from_millis(1);

enum StateOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    DeleteRange(Vec<u8>, Vec<u8>),
}

/// Changes to the `pop` column family that belong together.
#[derive(Default)]
pub(crate) struct StateBatch {
    ops: Vec<StateOp>,
}

impl StateBatch {
    pub(crate) fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(StateOp::Put(key.into(), value.into()));
    }

    pub(crate) fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push(StateOp::Delete(key.into()));
    }

    /// Removes every key in `[from, to)`.
    pub(crate) fn delete_range(&mut self, from: impl Into<Vec<u8>>, to: impl Into<Vec<u8>>) {
        self.ops.push(StateOp::DeleteRange(from.into(), to.into()));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The keys this batch deletes one by one, in order.
    #[cfg(test)]
    pub(crate) fn deleted_keys(&self) -> Vec<&[u8]> {
        self.ops
            .iter()
            .filter_map(|op| match op {
                StateOp::Delete(k) => Some(k.as_slice()),
                _ => None,
            })
            .collect()
    }

    fn len(&self) -> usize {
        self.ops.len()
    }
}

struct Job {
    batch: StateBatch,
    /// Told once the batch (and everything queued before it) is written,
    /// synced when `sync`.
    done: Option<oneshot::Sender<Result<()>>>,
    sync: bool,
}

/// A change queued for the writer; await [`Queued::durable`] before telling
/// anyone it happened.
#[must_use = "a change is durable only once `durable()` returns"]
pub(crate) struct Queued(Option<oneshot::Receiver<Result<()>>>);

impl Queued {
    /// Nothing to wait for (no change, or `ack_flush = async`).
    pub(crate) fn done() -> Queued {
        Queued(None)
    }

    /// Returns once the change is on disk as `ack_flush` asks.
    pub(crate) async fn durable(self) -> Result<()> {
        match self.0 {
            None => Ok(()),
            Some(rx) => rx.await.map_err(|_| StoreError::ShuttingDown)?,
        }
    }
}

/// The state-writer thread.
pub(crate) struct StateWriter {
    worker: Worker<mpsc::SyncSender<Job>>,
    flush: FlushMode,
}

impl StateWriter {
    pub(crate) fn start(db: Arc<Db>, flush: FlushMode) -> Result<StateWriter> {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE_DEPTH);
        Ok(StateWriter {
            worker: Worker::spawn("pier-state", tx, move || run(&db, &rx))?,
            flush,
        })
    }

    fn send(&self, job: Job) -> Result<()> {
        self.worker
            .sender()?
            .send(job)
            .map_err(|_| StoreError::ShuttingDown)
    }

    /// Queues `batch`. Call it while holding the lock under which memory
    /// changed, so the order holds; await the result outside the lock.
    pub(crate) fn write(&self, batch: StateBatch) -> Result<Queued> {
        if batch.is_empty() {
            return Ok(Queued::done());
        }
        match self.flush {
            FlushMode::Async => {
                self.send(Job {
                    batch,
                    done: None,
                    sync: false,
                })?;
                Ok(Queued::done())
            }
            FlushMode::Sync => {
                let (done, rx) = oneshot::channel();
                self.send(Job {
                    batch,
                    done: Some(done),
                    sync: true,
                })?;
                Ok(Queued(Some(rx)))
            }
        }
    }

    /// Queues `batch` and waits until it is written (synced with
    /// `ack_flush = sync`), whatever the mode: for changes a caller must
    /// see on disk before going on, such as deleting a group's state.
    pub(crate) async fn write_and_wait(&self, batch: StateBatch) -> Result<()> {
        let (done, rx) = oneshot::channel();
        self.send(Job {
            batch,
            done: Some(done),
            sync: self.flush == FlushMode::Sync,
        })?;
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// Writes what is queued, then stops the thread.
    pub(crate) fn shutdown(&self) {
        self.worker.stop();
    }
}

fn run(db: &Db, rx: &mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        if !first.sync {
            // Senders do not wake a thread that is not waiting in `recv`, so
            // while it sleeps here, queuing is just a push. Synced changes
            // need no such pause: their callers wait, and what queues while
            // one sync runs goes with the next.
            std::thread::sleep(GATHER);
        }
        let jobs = worker::gather(rx, first, MAX_OPS_PER_WRITE, |j| j.batch.len());
        let sync = jobs.iter().any(|j| j.sync);
        let (batches, waiting): (Vec<_>, Vec<_>) =
            jobs.into_iter().map(|j| (j.batch, j.done)).unzip();
        let durability = if sync {
            Durability::Synced
        } else {
            Durability::Buffered
        };
        let result = write(db, batches, durability);
        for w in waiting.into_iter().flatten() {
            let _ = w.send(result.clone());
        }
    }
}

/// Writes batches as one write; synced or not, see the module comment.
fn write(db: &Db, batches: Vec<StateBatch>, durability: Durability) -> Result<()> {
    let mut batch = db.batch()?;
    for op in batches.into_iter().flat_map(|b| b.ops) {
        match op {
            StateOp::Put(k, v) => batch.put(Cf::Pop, k, v),
            StateOp::Delete(k) => batch.delete(Cf::Pop, k),
            StateOp::DeleteRange(a, b) => batch.delete_range(Cf::Pop, a, b),
        }
    }
    if batch.is_empty() {
        return Ok(());
    }
    // `Db::write` logs a failure (and poisons the store): the callers
    // waiting are told, and the ones that did not wait (`ack_flush =
    // async`) would see the older state after a restart (messages visible
    // again).
    db.write(batch, durability, "writing consumption state")
}
