//! Delay messages: each waits in the `timer` column family, keyed by its due
//! time, and a timer thread moves it into its topic's log when it falls due
//! (append and timer removal in one batch). Memory does not grow with the
//! number of pending timers, and timers survive restarts: whatever fell due
//! while the store was down fires as soon as it starts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use pier_proto::store::StoredMessage;
use prost::Message;
use rocksdb::{IteratorMode, DB};

use crate::catalog::Catalog;
use crate::commit::{CommitHandle, Writes};
use crate::error::{Result, StoreError};
use crate::keys::{self, CF_TIMER};

/// Most timers fired in one pass (one batch).
const MAX_FIRE: usize = 4096;
/// Longest sleep when no timer is pending (a new timer wakes it earlier).
const IDLE_WAIT: Duration = Duration::from_secs(60);

pub(crate) struct Timers {
    wake: Mutex<Option<mpsc::Sender<u64>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    seq: AtomicU64,
    /// Held while timers fire and while one is recalled, so a recalled
    /// message is never delivered and a delivered one never recalled.
    fire_lock: Arc<Mutex<()>>,
}

impl Timers {
    pub fn start(db: Arc<DB>, catalog: Arc<Catalog>, commit: CommitHandle) -> Timers {
        let (tx, rx) = mpsc::channel::<u64>();
        let fire_lock = Arc::new(Mutex::new(()));
        let lock = fire_lock.clone();
        let thread = std::thread::Builder::new()
            .name("pier-timer".into())
            .spawn(move || run(&db, &catalog, &commit, &lock, rx))
            .expect("spawn timer thread");
        Timers {
            wake: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            // Unique across restarts without a scan: time-based start.
            seq: AtomicU64::new((crate::now_ms() as u64) << 20),
            fire_lock,
        }
    }

    pub fn next_key(&self, due_ms: u64, topic_id: u32) -> Vec<u8> {
        keys::timer_key(due_ms, topic_id, self.seq.fetch_add(1, Ordering::Relaxed))
    }

    /// Tells the timer thread that a timer due at `due_ms` was added (it
    /// may be the earliest).
    pub fn added(&self, due_ms: u64) {
        if let Some(tx) = self.wake.lock().as_ref() {
            let _ = tx.send(due_ms);
        }
    }

    /// Cancels a pending timer; returns the message id it would have delivered.
    pub fn recall(&self, db: &DB, topic_id: u32, key: &[u8]) -> Result<String> {
        let not_found = || {
            StoreError::NotFound(
                "no pending delay message has this recall handle: it was delivered, recalled, or never existed"
                    .into(),
            )
        };
        match keys::timer_parts(key) {
            Some((_, t)) if t == topic_id => {}
            _ => return Err(not_found()),
        }
        let cf = db.cf_handle(CF_TIMER).expect("cf opened");
        let _guard = self.fire_lock.lock();
        let Some(v) = db.get_pinned_cf(&cf, key)? else {
            return Err(not_found());
        };
        let message = StoredMessage::decode(v.get(4..).unwrap_or_default())?;
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        let mut batch = rocksdb::WriteBatch::default();
        batch.delete_cf(&cf, key);
        db.write_opt(batch, &opts)?;
        Ok(message.message_id)
    }

    pub fn shutdown(&self) {
        self.wake.lock().take();
        let thread = self.thread.lock().take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

fn run(
    db: &DB,
    catalog: &Catalog,
    commit: &CommitHandle,
    lock: &Mutex<()>,
    wake: mpsc::Receiver<u64>,
) {
    // Every timer due before `floor` has fired, so scans start there and do
    // not wade through the tombstones of fired timers. A new timer lowers
    // it (its notice arrives after it is durable); 0 at start, so timers
    // that fell due while the store was down fire at once.
    let mut floor = 0u64;
    loop {
        while let Ok(due) = wake.try_recv() {
            floor = floor.min(due);
        }
        let now = crate::now_ms().max(0) as u64;
        let wait = match fire_due(db, catalog, commit, lock, now, &mut floor) {
            Ok(Fired::More) => Duration::ZERO,
            Ok(Fired::NextAt(t)) => Duration::from_millis(t.saturating_sub(now)).min(IDLE_WAIT),
            Ok(Fired::Idle) => IDLE_WAIT,
            Err(StoreError::ShuttingDown) => return,
            Err(e) => {
                tracing::warn!(error = %e, "firing delay timers failed; retrying");
                Duration::from_millis(500)
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

enum Fired {
    /// The pass was full; more may be due.
    More,
    NextAt(u64),
    Idle,
}

fn fire_due(
    db: &DB,
    catalog: &Catalog,
    commit: &CommitHandle,
    lock: &Mutex<()>,
    now: u64,
    floor: &mut u64,
) -> Result<Fired> {
    let cf = db.cf_handle(CF_TIMER).expect("cf opened");
    let _guard = lock.lock();
    let mut jobs: HashMap<u32, Writes> = HashMap::new();
    let mut orphans = Vec::new();
    let mut count = 0;
    let mut next = Fired::Idle;
    let mut fired_up_to = now;
    let from = floor.to_be_bytes();
    for item in db.iterator_cf(&cf, IteratorMode::From(&from, rocksdb::Direction::Forward)) {
        let (k, v) = item?;
        let Some((due, topic_id)) = keys::timer_parts(&k) else {
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
        w.items
            .push((queue, v.get(4..).unwrap_or_default().to_vec()));
        w.deletes.push((CF_TIMER, k.to_vec()));
    }
    let mut batch_jobs = Vec::with_capacity(jobs.len());
    for (topic_id, mut w) in jobs {
        match catalog.topic_by_id(topic_id) {
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
    if !orphans.is_empty() {
        let mut b = rocksdb::WriteBatch::default();
        for k in orphans {
            b.delete_cf(&cf, k);
        }
        db.write(b)?;
    }
    if !batch_jobs.is_empty() {
        commit.write_all_blocking(batch_jobs)?;
    }
    *floor = (*floor).max(fired_up_to);
    Ok(next)
}
