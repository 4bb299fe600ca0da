//! Time-based retention: messages visible for longer than the retention
//! period (counted from when they entered their queue's log:
//! `visible_since_ms`, else `stored_at_ms`) are
//! deleted from the head of each queue log, and the queue's low watermark
//! (`min_offset`) advances past them. Consumer cursors below the watermark
//! move up to it on their next pop, and in-flight deliveries of deleted
//! messages are dropped when they come up for redelivery, so neither the
//! logs nor the consumption state grow without bound.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pier_proto::store::StoredMessage;
use rocksdb::Direction;

use crate::catalog::{Catalog, QueueLog, TopicEntry};
use crate::clock::SharedClock;
use crate::db::{self, keys, Cf, Db, Durability};
use crate::error::Result;
use crate::log::index;
use crate::worker::{self, Periodic};

/// Most messages deleted from one queue per sweep, so one sweep never holds
/// the disk for long; the next sweep continues.
const MAX_DELETE_PER_SWEEP: u64 = 100_000;
/// How often the retention thread sweeps.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Deletes expired messages from the head of every queue; returns how many.
/// A queue that fails (a record it cannot read) does not stop the others:
/// the first failure is returned once every queue was swept.
pub(crate) fn sweep(db: &Db, catalog: &Catalog, retention_ms: u64, now_ms: i64) -> Result<u64> {
    let cutoff = now_ms.saturating_sub(retention_ms.min(i64::MAX as u64) as i64);
    let mut deleted = 0u64;
    let mut failed = None;
    for topic in catalog.topics() {
        for (q, ql) in (0u32..).zip(&topic.queues) {
            match sweep_queue(db, &topic, q, ql, cutoff) {
                Ok(n) => deleted += n,
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(deleted),
    }
}

/// Deletes the expired messages at the head of one queue.
fn sweep_queue(db: &Db, topic: &TopicEntry, q: u32, ql: &QueueLog, cutoff: i64) -> Result<u64> {
    let lo = ql.min_offset();
    let hi = ql.committed();
    if lo >= hi {
        return Ok(0);
    }
    let from = keys::log_key(topic.id, q, lo);
    let upper = keys::log_key(topic.id, q, hi).to_vec();
    let mut new_lo = lo;
    let mut expired = Vec::new();
    for item in db.scan(Cf::Log, &from, Direction::Forward, Some(upper))? {
        let (k, v) = item?;
        let Some(off) = keys::log_offset(&k) else {
            break;
        };
        let m: StoredMessage = db::decode(&v, "a stored message")?;
        // From when consumers could first see it, not from the send:
        // a delay message due in a week is not "old" when it fires.
        let since = m.stored_at_ms.max(m.visible_since_ms);
        if since >= cutoff || off - lo >= MAX_DELETE_PER_SWEEP {
            break;
        }
        expired.push((off, index::Entries::of(topic.id, &m)));
        new_lo = off + 1;
    }
    if new_lo == lo {
        return Ok(0);
    }
    let mut batch = db.batch()?;
    batch.delete_range(Cf::Log, from, keys::log_key(topic.id, q, new_lo));
    // Their index entries leave with them.
    for (off, entries) in &expired {
        entries.delete(&mut batch, q, *off);
    }
    db.write(batch, Durability::Buffered, "deleting expired messages")?;
    ql.min_offset.store(new_lo, Ordering::Release);
    Ok(new_lo - lo)
}

/// The background thread running [`sweep`] periodically.
pub(crate) struct Retention {
    /// None when messages are kept forever.
    worker: Option<Periodic>,
}

impl Retention {
    pub(crate) fn start(
        db: Arc<Db>,
        catalog: Arc<Catalog>,
        clock: SharedClock,
        retention_ms: u64,
    ) -> Result<Retention> {
        let worker = if retention_ms == 0 {
            None
        } else {
            Some(worker::every(
                "pier-retention",
                SWEEP_EVERY,
                move || match sweep(&db, &catalog, retention_ms, clock.now_ms()) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "retention removed expired messages"),
                    Err(e) => tracing::warn!(error = %e.report(), "retention sweep failed"),
                },
            )?)
        };
        Ok(Retention { worker })
    }

    /// Stops the thread.
    pub(crate) fn shutdown(&self) {
        if let Some(w) = &self.worker {
            w.stop();
        }
    }
}
