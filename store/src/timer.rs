//! Delay messages: each waits in the `timer` column family, keyed by its due
//! time, and a timer thread moves it into its topic's log when it falls due
//! (append and timer removal in one batch). Memory does not grow with the
//! number of pending timers, and timers survive restarts: whatever fell due
//! while the store was down fires as soon as it starts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use parking_lot::Mutex;
use pier_proto::store::StoredMessage;
use rocksdb::Direction;

use crate::catalog::Catalog;
use crate::clock::SharedClock;
use crate::db::{self, keys, Cf, Db, Durability};
use crate::error::{Result, StoreError};
use crate::log::{CommitHandle, Writes};
use crate::worker::Worker;

/// Most timers fired in one pass (one batch).
const MAX_FIRE: usize = 4096;
/// Longest sleep when no timer is pending (a new timer wakes it earlier).
const IDLE_WAIT: Duration = Duration::from_secs(60);
/// Wait before retrying after a failed pass.
const RETRY_WAIT: Duration = Duration::from_millis(500);

/// What the timer thread works with.
struct Firing {
    db: Arc<Db>,
    catalog: Arc<Catalog>,
    commit: CommitHandle,
    clock: SharedClock,
    /// Held while timers fire and while one is recalled, so a recalled
    /// message is never delivered and a delivered one never recalled.
    lock: Arc<Mutex<()>>,
}

/// Pending delay timers and the thread that fires them.
pub(crate) struct Timers {
    db: Arc<Db>,
    worker: Worker<mpsc::Sender<u64>>,
    seq: AtomicU64,
    fire_lock: Arc<Mutex<()>>,
}

impl Timers {
    pub(crate) fn start(
        db: Arc<Db>,
        catalog: Arc<Catalog>,
        commit: CommitHandle,
        clock: SharedClock,
    ) -> Result<Timers> {
        let (tx, rx) = mpsc::channel::<u64>();
        let fire_lock = Arc::new(Mutex::new(()));
        // Unique across restarts without a scan: time-based start.
        let seq = AtomicU64::new((clock.now_ms().max(0) as u64) << 20);
        let firing = Firing {
            db: db.clone(),
            catalog,
            commit,
            clock,
            lock: fire_lock.clone(),
        };
        Ok(Timers {
            db,
            worker: Worker::spawn("pier-timer", tx, move || firing.run(&rx))?,
            seq,
            fire_lock,
        })
    }

    /// Returns a new timer key for a message due at `due_ms`.
    pub(crate) fn next_key(&self, due_ms: u64, topic_id: u32) -> Vec<u8> {
        keys::timer_key(due_ms, topic_id, self.seq.fetch_add(1, Ordering::Relaxed))
    }

    /// Tells the timer thread that a timer due at `due_ms` was added (it
    /// may be the earliest).
    pub(crate) fn added(&self, due_ms: u64) {
        if let Ok(tx) = self.worker.sender() {
            let _ = tx.send(due_ms);
        }
    }

    /// Cancels a pending timer; returns the message id it would have delivered.
    pub(crate) fn recall(&self, topic: &str, topic_id: u32, key: &[u8]) -> Result<String> {
        let not_found = || StoreError::TimerNotFound {
            topic: topic.to_owned(),
        };
        match keys::timer_parts(key) {
            Some((_, t)) if t == topic_id => {}
            _ => return Err(not_found()),
        }
        let _guard = self.fire_lock.lock();
        let Some(v) = self.db.get(Cf::Timer, key)? else {
            return Err(not_found());
        };
        let message: StoredMessage = db::decode(v.get(4..).unwrap_or_default(), "a delay message")?;
        let mut batch = self.db.batch()?;
        batch.delete(Cf::Timer, key);
        self.db
            .write(batch, Durability::Synced, "recalling a delay message")?;
        Ok(message.message_id)
    }

    /// Stops the timer thread (before the commit thread it submits to).
    pub(crate) fn shutdown(&self) {
        self.worker.stop();
    }
}

/// How a firing pass ended.
enum Fired {
    /// The pass was full; more may be due.
    More,
    /// The next timer is due then.
    NextAt(u64),
    /// No timer is pending.
    Idle,
}

impl Firing {
    fn run(&self, wake: &mpsc::Receiver<u64>) {
        // Every timer due before `floor` has fired, so scans start there and
        // do not wade through the tombstones of fired timers. A new timer
        // lowers it (its notice arrives after it is durable); 0 at start, so
        // timers that fell due while the store was down fire at once.
        let mut floor = 0u64;
        loop {
            while let Ok(due) = wake.try_recv() {
                floor = floor.min(due);
            }
            let now = self.clock.now_ms().max(0) as u64;
            let wait = match self.fire_due(now, &mut floor) {
                Ok(Fired::More) => Duration::ZERO,
                Ok(Fired::NextAt(t)) => Duration::from_millis(t.saturating_sub(now)).min(IDLE_WAIT),
                Ok(Fired::Idle) => IDLE_WAIT,
                Err(StoreError::ShuttingDown) => return,
                Err(e) => {
                    tracing::warn!(error = %e.report(), "firing delay timers failed; retrying");
                    RETRY_WAIT
                }
            };
            if wait.is_zero() {
                continue;
            }
            match wake.recv_timeout(wait) {
                Ok(due) => floor = floor.min(due),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Moves every timer due at `now` into its topic's log (one pass).
    fn fire_due(&self, now: u64, floor: &mut u64) -> Result<Fired> {
        let _guard = self.lock.lock();
        let mut jobs: HashMap<u32, Writes> = HashMap::new();
        let mut orphans = Vec::new();
        // Keys no timer has: damage, dropped with a line saying so.
        let mut unreadable = 0usize;
        let mut count = 0;
        let mut next = Fired::Idle;
        let mut fired_up_to = now;
        // A span per fired message that carries a sampled trace: its trace
        // goes on where the message becomes visible (ends after the write).
        let mut spans = Vec::new();
        let from = floor.to_be_bytes();
        for item in self.db.scan(Cf::Timer, &from, Direction::Forward, None)? {
            let (k, v) = item?;
            let Some((due, topic_id)) = keys::timer_parts(&k) else {
                unreadable += 1;
                orphans.push(k.to_vec());
                continue;
            };
            if due > now {
                next = Fired::NextAt(due);
                break;
            }
            if count == MAX_FIRE {
                next = Fired::More;
                fired_up_to = due;
                break;
            }
            count += 1;
            let queue = v
                .get(..4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, u32::from_be_bytes);
            let w = jobs.entry(topic_id).or_default();
            let mut message = v.get(4..).unwrap_or_default().to_vec();
            if pier_node::trace::on() {
                spans.extend(crate::log::trace_context_of(&message).and_then(|tp| {
                    pier_node::trace::span::resumed("store.delay_fire", &tp, || {
                        vec![
                            opentelemetry::KeyValue::new("pier.delay.due_ms", due as i64),
                            opentelemetry::KeyValue::new(
                                "pier.delay.late_ms",
                                now.saturating_sub(due) as i64,
                            ),
                        ]
                    })
                }));
            }
            crate::log::stamp_visible_since(&mut message, now);
            w.items.push((queue, message));
            w.deletes.push((Cf::Timer, k.to_vec()));
        }
        let mut batch_jobs = Vec::with_capacity(jobs.len());
        for (topic_id, mut w) in jobs {
            match self.catalog.topic_by_id(topic_id) {
                Some(topic) => {
                    let nq = topic.queues.len() as u32;
                    for (q, _) in &mut w.items {
                        if *q >= nq {
                            *q = 0;
                        }
                    }
                    batch_jobs.push((topic, w));
                }
                // The topic was deleted: its timers go with it.
                None => orphans.extend(w.deletes.into_iter().map(|(_, k)| k)),
            }
        }
        if unreadable > 0 {
            tracing::error!(
                unreadable,
                "delay timer records with keys that could not be read were dropped"
            );
        }
        if !orphans.is_empty() {
            let mut b = self.db.batch()?;
            for k in orphans {
                b.delete(Cf::Timer, k);
            }
            self.db
                .write(b, Durability::Buffered, "dropping orphaned delay timers")?;
        }
        if !batch_jobs.is_empty() {
            // The group commit of the fired messages is a child of the first
            // traced one's span (the commit thread reads the current context).
            let _current = spans.first().map(|cx| cx.clone().attach());
            self.commit.write_all_blocking(batch_jobs)?;
        }
        drop(spans);
        *floor = (*floor).max(fired_up_to);
        Ok(next)
    }
}
