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

use tokio::sync::oneshot;

use super::index;
use crate::catalog::TopicEntry;
use crate::db::{keys, Cf, Db, Durability};
use crate::error::{Result, StoreError};
use crate::worker::{self, Worker};

/// Largest number of bytes merged into one batch; bounds the latency a huge
/// burst adds to the senders at its front.
const MAX_BATCH_BYTES: usize = 16 << 20;

pier_node::word_enum! {
    /// When a send is acknowledged.
    #[derive(serde::Serialize)]
    pub enum FlushMode("flush mode must be {words}, not {s:?}") {
        /// fsync the WAL before answering (durable across power loss).
        #[default]
        Sync = "sync",
        /// Answer once written to the WAL in the page cache (survives a
        /// process crash, not a machine crash).
        Async = "async",
    }
}

/// A record written along with appended messages: (column family, key,
/// value).
pub(crate) type Put = (Cf, Vec<u8>, Vec<u8>);

/// What one job writes, atomically with the rest of its batch.
#[derive(Default)]
pub(crate) struct Writes {
    /// Messages to append, each with its queue already chosen.
    pub(crate) items: Vec<(u32, Vec<u8>)>,
    /// Other records written with them (column family, key, value): delay
    /// timers, half messages of transactions.
    pub(crate) puts: Vec<Put>,
    /// Records removed with them: a fired timer or a committed half message
    /// leaves in the same batch that appends its message, so it is never
    /// both pending and delivered.
    pub(crate) deletes: Vec<(Cf, Vec<u8>)>,
}

impl Writes {
    fn bytes(&self) -> usize {
        self.items.iter().map(|(_, v)| v.len()).sum()
    }
}

/// (queue, offset) of each appended message, in order.
pub(crate) type Placed = Vec<(u32, u64)>;

struct AppendJob {
    topic: Arc<TopicEntry>,
    writes: Writes,
    /// The index entries of each of `writes.items`, read on the sender's
    /// thread so the commit thread only adds the offsets.
    index: Vec<index::Entries>,
    reply: oneshot::Sender<Result<Placed>>,
    /// The sender's trace context, when it is sampled (for the commit span).
    trace: Option<opentelemetry::Context>,
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
        let index = writes
            .items
            .iter()
            .map(|(_, value)| index::Entries::of_encoded(topic.id, value))
            .collect();
        self.tx
            .send(AppendJob {
                topic,
                writes,
                index,
                reply,
                trace: pier_node::trace::span::sampled_current(),
            })
            .map_err(|_| StoreError::ShuttingDown)?;
        Ok(rx)
    }

    /// Submits several jobs at once (they share one sync) and waits for all;
    /// for callers outside the async runtime.
    pub(crate) fn write_all_blocking(&self, jobs: Vec<(Arc<TopicEntry>, Writes)>) -> Result<()> {
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

/// The commit thread.
pub(crate) struct Committer {
    worker: Worker<mpsc::Sender<AppendJob>>,
}

impl Committer {
    pub(crate) fn start(db: Arc<Db>, flush: FlushMode) -> Result<Committer> {
        let (tx, rx) = mpsc::channel::<AppendJob>();
        let durability = match flush {
            FlushMode::Sync => Durability::Synced,
            FlushMode::Async => Durability::Buffered,
        };
        Ok(Committer {
            worker: Worker::spawn("pier-commit", tx, move || run(&db, durability, &rx))?,
        })
    }

    pub(crate) fn handle(&self) -> Result<CommitHandle> {
        Ok(CommitHandle {
            tx: self.worker.sender()?,
        })
    }

    /// Writes `writes` with the next group commit; answers once durable.
    pub(crate) async fn write(&self, topic: Arc<TopicEntry>, writes: Writes) -> Result<Placed> {
        let rx = self.handle()?.submit(topic, writes)?;
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// Lets queued jobs finish, then stops the thread.
    pub(crate) fn shutdown(&self) {
        self.worker.stop();
    }
}

fn run(db: &Db, durability: Durability, rx: &mpsc::Receiver<AppendJob>) {
    while let Ok(first) = rx.recv() {
        let jobs = worker::gather(rx, first, MAX_BATCH_BYTES, |j| j.writes.bytes());
        commit(db, durability, jobs);
    }
}

/// Writes one group of jobs and answers each.
fn commit(db: &Db, durability: Durability, jobs: Vec<AppendJob>) {
    // A job naming a queue its topic does not have is answered alone; the
    // store picks queues below the count, so this is a defect, not input.
    let (jobs, bad): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|job| {
        let n = job.topic.queues.len();
        job.writes.items.iter().all(|(q, _)| (*q as usize) < n)
    });
    for job in bad {
        let _ = job.reply.send(Err(StoreError::invalid(format!(
            "an append names a queue topic {} does not have",
            job.topic.topic.name
        ))));
    }
    // One span for the whole group, under the first traced sender's span
    // and linked to the other traced senders'; it ends after the write.
    let _span = pier_node::trace::span::shared(
        "store.group_commit",
        jobs.iter().filter_map(|j| j.trace.as_ref()),
        || {
            let messages: usize = jobs.iter().map(|j| j.writes.items.len()).sum();
            vec![
                opentelemetry::KeyValue::new("pier.batch.messages", messages as i64),
                opentelemetry::KeyValue::new("pier.batch.senders", jobs.len() as i64),
            ]
        },
    );
    match write_batch(db, durability, &jobs) {
        Ok((next, results)) => {
            for job in &jobs {
                for (queue, _) in &job.writes.items {
                    if let (Some(n), Some(ql)) = (
                        next.get(&(job.topic.id, *queue)),
                        job.topic.queues.get(*queue as usize),
                    ) {
                        ql.committed.store(*n, Ordering::Release);
                    }
                }
                job.topic.notify.notify_waiters();
            }
            for (job, offsets) in jobs.into_iter().zip(results) {
                let _ = job.reply.send(Ok(offsets));
            }
        }
        Err(e) => {
            // `Db::write` logged a failed write; a refused one (poisoned)
            // is the callers' to report.
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

/// Next offset per (topic id, queue) after a commit.
type NextOffsets = HashMap<(u32, u32), u64>;

/// Assigns offsets and writes every job's records in one batch.
fn write_batch(
    db: &Db,
    durability: Durability,
    jobs: &[AppendJob],
) -> Result<(NextOffsets, Vec<Placed>)> {
    let mut batch = db.batch()?;
    let mut next = NextOffsets::new();
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        for (cf, k, v) in &job.writes.puts {
            batch.put(*cf, k, v);
        }
        for (cf, k) in &job.writes.deletes {
            batch.delete(*cf, k);
        }
        let mut offsets = Vec::with_capacity(job.writes.items.len());
        let no_entries = index::Entries::default();
        for (i, (queue, value)) in job.writes.items.iter().enumerate() {
            let committed = job
                .topic
                .queues
                .get(*queue as usize)
                .map_or(0, |ql| ql.committed());
            let n = next.entry((job.topic.id, *queue)).or_insert(committed);
            batch.put(Cf::Log, keys::log_key(job.topic.id, *queue, *n), value);
            // In the message's own batch: durable together, never apart.
            for k in job.index.get(i).unwrap_or(&no_entries).keys(*queue, *n) {
                batch.put(Cf::Index, k, b"");
            }
            offsets.push((*queue, *n));
            *n += 1;
        }
        results.push(offsets);
    }
    if !jobs.is_empty() {
        db.write(batch, durability, "appending messages")?;
        crate::metrics::get().committed(results.iter().map(Vec::len).sum());
    }
    Ok((next, results))
}
