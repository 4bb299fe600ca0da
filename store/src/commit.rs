//! Group commit: one thread owns every append to the message logs.
//!
//! Senders hand their encoded messages to this thread and wait. The thread
//! takes everything that queued up while the previous write was syncing,
//! assigns offsets, writes it as one RocksDB `WriteBatch` with one WAL sync,
//! and only then publishes the new offsets to readers and answers the
//! senders. So a send is answered only once durable, many concurrent sends
//! share one fsync, and readers never see an offset that could vanish in a
//! crash. Being the only writer of the logs also makes offset assignment
//! lock-free.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;

use rocksdb::{WriteBatch, WriteOptions, DB};
use tokio::sync::oneshot;

use crate::catalog::TopicEntry;
use crate::error::{Result, StoreError};
use crate::keys::{self, CF_LOG};
use crate::worker::Worker;

/// Largest number of bytes merged into one batch; bounds the latency a huge
/// burst adds to the senders at its front.
const MAX_BATCH_BYTES: usize = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlushMode {
    /// fsync the WAL before answering (durable across power loss).
    #[default]
    Sync,
    /// Answer once written to the WAL in the page cache (survives a process
    /// crash, not a machine crash).
    Async,
}

impl std::str::FromStr for FlushMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sync" => Ok(FlushMode::Sync),
            "async" => Ok(FlushMode::Async),
            _ => Err(format!("flush mode must be sync or async, not {s:?}")),
        }
    }
}

/// A record put in a column family: (column family, key, value).
pub type Put = (&'static str, Vec<u8>, Vec<u8>);

/// What one job writes, atomically with the rest of its batch.
#[derive(Default)]
pub(crate) struct Writes {
    /// Messages to append, each with its queue already chosen.
    pub items: Vec<(u32, Vec<u8>)>,
    /// Other records written with them (column family, key, value): delay
    /// timers, half messages of transactions.
    pub puts: Vec<Put>,
    /// Records removed with them: a fired timer or a committed half message
    /// leaves in the same batch that appends its message, so it is never
    /// both pending and delivered.
    pub deletes: Vec<(&'static str, Vec<u8>)>,
}

/// (queue, offset) of each appended message, in order.
pub(crate) type Placed = Vec<(u32, u64)>;

pub(crate) struct AppendJob {
    pub topic: Arc<TopicEntry>,
    pub writes: Writes,
    pub reply: oneshot::Sender<Result<Placed>>,
}

/// A way to submit writes to the commit thread, also from plain threads.
#[derive(Clone)]
pub(crate) struct CommitHandle {
    tx: mpsc::Sender<AppendJob>,
}

impl CommitHandle {
    fn submit(
        &self,
        topic: Arc<TopicEntry>,
        writes: Writes,
    ) -> Result<oneshot::Receiver<Result<Placed>>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(AppendJob {
                topic,
                writes,
                reply,
            })
            .map_err(|_| StoreError::ShuttingDown)?;
        Ok(rx)
    }

    /// Submits several jobs at once (they share one sync) and waits for all;
    /// for callers outside the async runtime.
    pub fn write_all_blocking(&self, jobs: Vec<(Arc<TopicEntry>, Writes)>) -> Result<()> {
        let mut waits = Vec::with_capacity(jobs.len());
        for (topic, writes) in jobs {
            waits.push(self.submit(topic, writes)?);
        }
        for w in waits {
            w.blocking_recv().map_err(|_| StoreError::ShuttingDown)??;
        }
        Ok(())
    }
}

pub(crate) struct Committer {
    worker: Worker<mpsc::Sender<AppendJob>>,
}

impl Committer {
    pub fn start(db: Arc<DB>, flush: FlushMode) -> Committer {
        let (tx, rx) = mpsc::channel::<AppendJob>();
        Committer {
            worker: Worker::spawn("pier-commit", tx, move || run(db, flush, rx)),
        }
    }

    pub fn handle(&self) -> Result<CommitHandle> {
        Ok(CommitHandle {
            tx: self.worker.sender()?,
        })
    }

    pub async fn append(
        &self,
        topic: Arc<TopicEntry>,
        items: Vec<(u32, Vec<u8>)>,
    ) -> Result<Vec<(u32, u64)>> {
        self.write(
            topic,
            Writes {
                items,
                ..Writes::default()
            },
        )
        .await
    }

    pub async fn write(&self, topic: Arc<TopicEntry>, writes: Writes) -> Result<Vec<(u32, u64)>> {
        let rx = self.handle()?.submit(topic, writes)?;
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// Lets queued jobs finish, then stops the thread.
    pub fn shutdown(&self) {
        self.worker.stop();
    }
}

fn run(db: Arc<DB>, flush: FlushMode, rx: mpsc::Receiver<AppendJob>) {
    let mut opts = WriteOptions::default();
    opts.set_sync(flush == FlushMode::Sync);
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut bytes: usize = jobs[0].writes.items.iter().map(|(_, v)| v.len()).sum();
        while bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(job) => {
                    bytes += job.writes.items.iter().map(|(_, v)| v.len()).sum::<usize>();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        commit(&db, &opts, jobs);
    }
}

fn commit(db: &DB, opts: &WriteOptions, jobs: Vec<AppendJob>) {
    let Some(log) = db.cf_handle(CF_LOG) else {
        return;
    };
    let mut batch = WriteBatch::default();
    // Next offset per (topic id, queue), starting from what is committed.
    let mut next: HashMap<(u32, u32), u64> = HashMap::new();
    let mut results = Vec::with_capacity(jobs.len());
    for job in &jobs {
        for (cf, k, v) in &job.writes.puts {
            if let Some(cf) = db.cf_handle(cf) {
                batch.put_cf(&cf, k, v);
            }
        }
        for (cf, k) in &job.writes.deletes {
            if let Some(cf) = db.cf_handle(cf) {
                batch.delete_cf(&cf, k);
            }
        }
        let mut offsets = Vec::with_capacity(job.writes.items.len());
        for (queue, value) in &job.writes.items {
            let ql = &job.topic.queues[*queue as usize];
            let n = next
                .entry((job.topic.id, *queue))
                .or_insert_with(|| ql.committed());
            batch.put_cf(&log, keys::log_key(job.topic.id, *queue, *n), value);
            offsets.push((*queue, *n));
            *n += 1;
        }
        results.push(offsets);
    }
    match db.write_opt(batch, opts) {
        Ok(()) => {
            for job in &jobs {
                for (queue, _) in &job.writes.items {
                    if let Some(n) = next.get(&(job.topic.id, *queue)) {
                        job.topic.queues[*queue as usize]
                            .committed
                            .store(*n, Ordering::Release);
                    }
                }
                job.topic.notify.notify_waiters();
            }
            for (job, offsets) in jobs.into_iter().zip(results) {
                let _ = job.reply.send(Ok(offsets));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "group commit failed");
            for job in jobs {
                let _ = job.reply.send(Err(StoreError::Storage(e.to_string())));
            }
        }
    }
}
