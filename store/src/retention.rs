//! Time-based retention: messages older than the retention period are
//! deleted from the head of each queue log, and the queue's low watermark
//! (`min_offset`) advances past them. Consumer cursors below the watermark
//! move up to it on their next pop, and in-flight deliveries of deleted
//! messages are dropped when they come up for redelivery, so neither the
//! logs nor the consumption state grow without bound.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use pier_proto::store::StoredMessage;
use prost::Message;
use rocksdb::{IteratorMode, DB};

use crate::catalog::Catalog;
use crate::error::Result;
use crate::keys::{self, CF_LOG};

/// Most messages deleted from one queue per sweep, so one sweep never holds
/// the disk for long; the next sweep continues.
const MAX_DELETE_PER_SWEEP: usize = 100_000;

/// Deletes expired messages from the head of every queue; returns how many.
pub fn sweep(db: &DB, catalog: &Catalog, retention_ms: u64, now_ms: i64) -> Result<u64> {
    let cutoff = now_ms.saturating_sub(retention_ms.min(i64::MAX as u64) as i64);
    let log = db.cf_handle(CF_LOG).expect("cf opened");
    let mut deleted = 0u64;
    for topic in catalog.topics() {
        for (q, ql) in topic.queues.iter().enumerate() {
            let lo = ql.min_offset.load(Ordering::Acquire);
            let hi = ql.committed();
            if lo >= hi {
                continue;
            }
            let from = keys::log_key(topic.id, q as u32, lo);
            let mut new_lo = lo;
            for item in db.iterator_cf(&log, IteratorMode::From(&from, rocksdb::Direction::Forward))
            {
                let (k, v) = item?;
                let Some(off) = keys::log_offset(&k) else {
                    break;
                };
                if !k.starts_with(&from[..8]) || off >= hi {
                    break;
                }
                if StoredMessage::decode(&*v)?.stored_at_ms >= cutoff
                    || (off - lo) as usize >= MAX_DELETE_PER_SWEEP
                {
                    break;
                }
                new_lo = off + 1;
            }
            if new_lo > lo {
                db.delete_range_cf(&log, from, keys::log_key(topic.id, q as u32, new_lo))?;
                ql.min_offset.store(new_lo, Ordering::Release);
                deleted += new_lo - lo;
            }
        }
    }
    Ok(deleted)
}

/// The background thread running [`sweep`] periodically.
pub(crate) struct Retention {
    stop: Mutex<Option<mpsc::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Retention {
    pub fn start(
        db: Arc<DB>,
        catalog: Arc<Catalog>,
        retention_ms: u64,
        every: Duration,
    ) -> Retention {
        let (tx, rx) = mpsc::channel::<()>();
        let thread = (retention_ms > 0).then(|| {
            std::thread::Builder::new()
                .name("pier-retention".into())
                .spawn(move || {
                    // Wakes every `every`; a message or a dropped sender stops it.
                    while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                        match sweep(&db, &catalog, retention_ms, crate::now_ms()) {
                            Ok(0) => {}
                            Ok(n) => {
                                tracing::info!(deleted = n, "retention removed expired messages")
                            }
                            Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
                        }
                    }
                })
                .expect("spawn retention thread")
        });
        Retention {
            stop: Mutex::new(Some(tx)),
            thread: Mutex::new(thread),
        }
    }

    pub fn shutdown(&self) {
        self.stop.lock().take();
        let thread = self.thread.lock().take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}
