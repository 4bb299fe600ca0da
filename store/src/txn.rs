//! Transactional messages. A transactional send stores a *half* message,
//! invisible to consumers. `COMMIT` moves it into its topic's log in one
//! batch with the half message's removal (so it is delivered exactly once,
//! however often the commit arrives); `ROLLBACK` discards it; `UNKNOWN`
//! leaves it pending. A check thread asks the producers about half messages
//! left unresolved (after `check_after_ms`, then with back-off), and rolls a
//! transaction back after `max_checks` unanswered checks ([`CheckPolicy`]).
//!
//! `txn` column family: b'h' | id (16 bytes) -> HalfMessage;
//! b'c' | next_check_at_ms u64 | id -> () (half messages by check time).

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use pier_proto::store::{HalfMessage, StoredMessage, TransactionCheck};
use prost::Message;
use rocksdb::{IteratorMode, WriteBatch, WriteOptions, DB};
use tokio::sync::broadcast;

use crate::catalog::Catalog;
use crate::commit::Put;
use crate::error::{Result, StoreError};

pub const CF_TXN: &str = "txn";
/// First check 6 s after the send and at most 15 checks, as the reference
/// broker (`transactionTimeOut`, `transactionCheckMax`).
pub const DEFAULT_CHECK_AFTER_MS: u64 = 6_000;
pub const MAX_CHECKS: u32 = 15;
pub const DEFAULT_CHECK_BACKOFF: u32 = 2;
/// Longest wait between two checks of one transaction.
pub const MAX_CHECK_INTERVAL_MS: u64 = 5 * 60 * 1000;
const SCAN_EVERY: Duration = Duration::from_millis(200);
const MAX_CHECKS_PER_SCAN: usize = 1024;

/// When the store asks producers about a transaction left unresolved, and
/// when it gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckPolicy {
    /// Delay of the first check after the send, for messages that do not
    /// carry their own (`orphaned_transaction_recovery_duration`).
    pub first_check_ms: u64,
    /// Each wait between checks is this many times the previous one, the
    /// first being `factor` x the message's first-check delay (1: a fixed
    /// interval).
    pub backoff_factor: u32,
    /// Longest wait between two checks.
    pub max_interval_ms: u64,
    /// Unanswered checks after which the transaction is rolled back (one
    /// more wait after the last check gives a slow producer time to answer).
    pub max_checks: u32,
}

impl Default for CheckPolicy {
    fn default() -> Self {
        CheckPolicy {
            first_check_ms: DEFAULT_CHECK_AFTER_MS,
            backoff_factor: DEFAULT_CHECK_BACKOFF,
            max_interval_ms: MAX_CHECK_INTERVAL_MS,
            max_checks: MAX_CHECKS,
        }
    }
}

impl CheckPolicy {
    pub fn validate(&self) -> Result<()> {
        if self.first_check_ms == 0 || self.max_interval_ms == 0 || self.backoff_factor == 0 {
            return Err(StoreError::InvalidArgument(format!(
                "transaction check delays and back-off factor must be > 0: {self:?}"
            )));
        }
        Ok(())
    }

    /// The wait after check number `checks` (1 = the first) of a message
    /// whose first check came `check_after_ms` after its send.
    pub fn interval_after(&self, check_after_ms: u64, checks: u32) -> u64 {
        let factor = u64::from(self.backoff_factor).saturating_pow(checks);
        check_after_ms
            .saturating_mul(factor)
            .min(self.max_interval_ms)
    }
}

pub fn half_key(id: &[u8; 16]) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(b'h');
    k.extend_from_slice(id);
    k
}

pub fn due_key(at_ms: i64, id: &[u8; 16]) -> Vec<u8> {
    let mut k = Vec::with_capacity(25);
    k.push(b'c');
    k.extend_from_slice(&(at_ms.max(0) as u64).to_be_bytes());
    k.extend_from_slice(id);
    k
}

/// Parses a transaction id as clients carry it (32 hex digits).
pub fn parse_id(s: &str) -> Option<[u8; 16]> {
    let b = hex::decode(s.trim()).ok()?;
    b.try_into().ok()
}

pub fn new_id() -> [u8; 16] {
    rand::random()
}

/// The record of a new half message and its first check.
pub fn prepare(
    policy: &CheckPolicy,
    queue: u32,
    message: StoredMessage,
    now_ms: i64,
) -> ([u8; 16], Vec<Put>) {
    let id = new_id();
    let check_after_ms = if message.txn_check_after_ms == 0 {
        policy.first_check_ms
    } else {
        message.txn_check_after_ms
    };
    let next = now_ms + check_after_ms as i64;
    let half = HalfMessage {
        queue,
        message: Some(message),
        checks: 0,
        next_check_at_ms: next,
        check_after_ms,
    };
    let puts = vec![
        (CF_TXN, half_key(&id), half.encode_to_vec()),
        (CF_TXN, due_key(next, &id), Vec::new()),
    ];
    (id, puts)
}

pub fn load(db: &DB, id: &[u8; 16]) -> Result<Option<HalfMessage>> {
    let cf = db.cf_handle(CF_TXN).expect("cf opened");
    match db.get_pinned_cf(&cf, half_key(id))? {
        Some(v) => Ok(Some(HalfMessage::decode(&*v)?)),
        None => Ok(None),
    }
}

/// Removes a half message (rollback), durably.
pub fn discard(db: &DB, id: &[u8; 16], half: &HalfMessage) -> Result<()> {
    let cf = db.cf_handle(CF_TXN).expect("cf opened");
    let mut b = WriteBatch::default();
    b.delete_cf(&cf, half_key(id));
    b.delete_cf(&cf, due_key(half.next_check_at_ms, id));
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    db.write_opt(b, &opts)?;
    Ok(())
}

/// The check thread and the channel its checks go out on.
pub(crate) struct Checker {
    pub checks: broadcast::Sender<TransactionCheck>,
    /// Held while a transaction is ended or checked, so a check never
    /// rewrites a record that a commit is removing.
    pub lock: Arc<tokio::sync::Mutex<()>>,
    stop: Mutex<Option<mpsc::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Checker {
    pub fn start(db: Arc<DB>, catalog: Arc<Catalog>, policy: CheckPolicy) -> Checker {
        let (checks, _) = broadcast::channel(4096);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (tx, l) = (checks.clone(), lock.clone());
        let thread = std::thread::Builder::new()
            .name("pier-txn-check".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(SCAN_EVERY) {
                    let _guard = l.blocking_lock();
                    if let Err(e) = check_due(&db, &catalog, &policy, &tx, crate::now_ms()) {
                        tracing::warn!(error = %e, "transaction check pass failed");
                    }
                }
            })
            .expect("spawn transaction checker");
        Checker {
            checks,
            lock,
            stop: Mutex::new(Some(stop_tx)),
            thread: Mutex::new(Some(thread)),
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

fn check_due(
    db: &DB,
    catalog: &Catalog,
    policy: &CheckPolicy,
    out: &broadcast::Sender<TransactionCheck>,
    now: i64,
) -> Result<()> {
    let cf = db.cf_handle(CF_TXN).expect("cf opened");
    let mut due = Vec::new();
    for item in db.iterator_cf(&cf, IteratorMode::From(b"c", rocksdb::Direction::Forward)) {
        let (k, _) = item?;
        if k.first() != Some(&b'c') || k.len() != 25 || due.len() >= MAX_CHECKS_PER_SCAN {
            break;
        }
        let at = u64::from_be_bytes(k[1..9].try_into().unwrap_or_default()) as i64;
        if at > now {
            break;
        }
        let id: [u8; 16] = k[9..25].try_into().unwrap_or_default();
        due.push((k.to_vec(), id));
    }
    for (key, id) in due {
        let mut b = WriteBatch::default();
        b.delete_cf(&cf, &key);
        let Some(mut half) = load(db, &id)? else {
            db.write(b)?;
            continue;
        };
        let message = half.message.clone().unwrap_or_default();
        let topic = catalog.topic(&message.topic).ok();
        if half.checks >= policy.max_checks || topic.is_none() {
            b.delete_cf(&cf, half_key(&id));
            db.write(b)?;
            tracing::warn!(
                topic = %message.topic,
                message_id = %message.message_id,
                transaction_id = %hex::encode_upper(id),
                checks = half.checks,
                "{}",
                if topic.is_none() {
                    "transaction's topic is gone: half message dropped"
                } else {
                    "transaction unresolved after its checks: rolled back"
                }
            );
            continue;
        }
        half.checks += 1;
        let wait = policy.interval_after(half.check_after_ms, half.checks);
        half.next_check_at_ms = now.saturating_add(wait.min(i64::MAX as u64) as i64);
        b.put_cf(&cf, half_key(&id), half.encode_to_vec());
        b.put_cf(&cf, due_key(half.next_check_at_ms, &id), []);
        db.write(b)?;
        // Nobody listening (no proxy connected) is fine: the next check retries.
        let _ = out.send(TransactionCheck {
            topic: message.topic.clone(),
            transaction_id: hex::encode_upper(id),
            message: Some(message),
            check: half.checks,
        });
    }
    Ok(())
}

pub fn check_error(id: &str) -> StoreError {
    StoreError::NotFound(format!(
        "no pending transaction has id {id:?}: it was committed, rolled back, or never existed"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let id = new_id();
        assert_eq!(parse_id(&hex::encode_upper(id)), Some(id));
        assert_eq!(parse_id("zz"), None);
        assert_eq!(parse_id(""), None);
    }

    #[test]
    fn check_intervals_grow_up_to_the_cap() {
        let p = CheckPolicy {
            first_check_ms: 100,
            backoff_factor: 3,
            max_interval_ms: 1_000,
            max_checks: 5,
        };
        let gaps: Vec<u64> = (1..=4).map(|k| p.interval_after(100, k)).collect();
        assert_eq!(gaps, vec![300, 900, 1_000, 1_000]);
        let fixed = CheckPolicy {
            backoff_factor: 1,
            ..p
        };
        assert_eq!(fixed.interval_after(100, 40), 100);
        // No overflow however many checks.
        assert_eq!(
            CheckPolicy::default().interval_after(u64::MAX, 200),
            MAX_CHECK_INTERVAL_MS
        );
        assert!(CheckPolicy::default().validate().is_ok());
        assert!(CheckPolicy {
            backoff_factor: 0,
            ..p
        }
        .validate()
        .is_err());
    }

    #[test]
    fn due_keys_sort_by_time() {
        let id = [7u8; 16];
        assert!(due_key(5, &id) < due_key(6, &id));
        assert!(due_key(1 << 40, &id) > due_key(1 << 39, &[0xff; 16]));
    }
}
