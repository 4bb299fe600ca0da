//! The one thread that persists consumption-state changes.
//!
//! Pops, acks and invisibility changes update the in-memory state (see
//! [`crate::pop`]) under the subscription's lock and answer at once; what they
//! changed is queued here, still under that lock, and this thread writes
//! everything that queued up as one RocksDB write (WAL, no fsync).
//!
//! Why not write on the caller's thread: every ack then paid a WAL write
//! syscall of its own, and a RocksDB write that arrives while the commit
//! thread's group is syncing waits for that fsync, so an async worker sat
//! blocked for milliseconds with the subscription's lock held, stalling every
//! other call it would have served. Why not the commit thread: it would put
//! each small state write behind an fsync it does not need.
//!
//! Queued in lock order, the changes reach the column family in the order
//! memory changed. Losing the newest of them in a crash only makes messages
//! visible again, which at-least-once delivery allows; callers that must see
//! their change on disk (deleting a group's state, reading state back) wait
//! with [`StateWriter::write_and_wait`] or [`StateWriter::flush`].

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rocksdb::{WriteBatch, WriteOptions, DB};
use tokio::sync::oneshot;

use crate::error::{Result, StoreError};
use crate::keys::CF_POP;
use crate::worker::Worker;

/// Jobs queued before a sender blocks: a bound on memory if the disk stalls.
const QUEUE_DEPTH: usize = 1 << 16;

/// Most changes merged into one write, so a long queue is written in steps.
const MAX_OPS_PER_WRITE: usize = 1 << 14;

/// How long the thread lets changes gather after the first one arrives.
/// Nobody waits on most writes, so this costs no caller anything; without
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
pub struct StateBatch {
    ops: Vec<StateOp>,
}

impl StateBatch {
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(StateOp::Put(key.into(), value.into()));
    }

    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push(StateOp::Delete(key.into()));
    }

    /// Removes every key in `[from, to)`.
    pub fn delete_range(&mut self, from: impl Into<Vec<u8>>, to: impl Into<Vec<u8>>) {
        self.ops.push(StateOp::DeleteRange(from.into(), to.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

struct Job {
    batch: StateBatch,
    /// Told once the batch (and everything queued before it) is written.
    done: Option<oneshot::Sender<Result<()>>>,
}

pub struct StateWriter {
    worker: Worker<mpsc::SyncSender<Job>>,
}

impl StateWriter {
    pub fn start(db: Arc<DB>) -> StateWriter {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE_DEPTH);
        StateWriter {
            worker: Worker::spawn("pier-state", tx, move || run(&db, rx)),
        }
    }

    fn send(&self, job: Job) -> Result<()> {
        self.worker
            .sender()?
            .send(job)
            .map_err(|_| StoreError::ShuttingDown)
    }

    /// Queues `batch` without waiting for it to be written. Call it while
    /// holding the lock under which memory changed, so the order holds.
    pub fn write(&self, batch: StateBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.send(Job { batch, done: None })
    }

    /// Queues `batch` and waits until it is written.
    pub async fn write_and_wait(&self, batch: StateBatch) -> Result<()> {
        let (done, rx) = oneshot::channel();
        self.send(Job {
            batch,
            done: Some(done),
        })?;
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// Waits until everything queued so far is written.
    pub async fn flush(&self) -> Result<()> {
        self.write_and_wait(StateBatch::default()).await
    }

    /// Writes what is queued, then stops the thread.
    pub fn shutdown(&self) {
        self.worker.stop();
    }
}

fn run(db: &DB, rx: mpsc::Receiver<Job>) {
    // No fsync: see the module comment. The WAL still makes every change
    // survive a crash of the process.
    let opts = WriteOptions::default();
    while let Ok(first) = rx.recv() {
        // Senders do not wake a thread that is not waiting in `recv`, so
        // while it sleeps here, queuing is just a push.
        std::thread::sleep(GATHER);
        let Some(cf) = db.cf_handle(CF_POP) else {
            tracing::error!("the pop column family is missing; consumption state is not persisted");
            return;
        };
        let mut batch = WriteBatch::default();
        let mut waiting = Vec::new();
        let mut ops = 0;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            ops += job.batch.len();
            for op in job.batch.ops {
                match op {
                    StateOp::Put(k, v) => batch.put_cf(&cf, k, v),
                    StateOp::Delete(k) => batch.delete_cf(&cf, k),
                    StateOp::DeleteRange(a, b) => batch.delete_range_cf(&cf, a, b),
                }
            }
            waiting.extend(job.done);
            if ops < MAX_OPS_PER_WRITE {
                next = rx.try_recv().ok();
            }
        }
        let result = if batch.is_empty() {
            Ok(())
        } else {
            db.write_opt(batch, &opts).map_err(|e| {
                // Nobody waits for most of these writes: say it here. The
                // in-memory state stays right; only a restart would see
                // the older state (messages visible again).
                tracing::error!(error = %e, "writing consumption state failed");
                StoreError::Storage(e.to_string())
            })
        };
        for w in waiting {
            let _ = w.send(result.clone());
        }
    }
}
