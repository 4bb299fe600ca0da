//! Transactional messages. A transactional send stores a *half* message,
//! invisible to consumers. `COMMIT` moves it into its topic's log in one
//! batch with the half message's removal (so it is delivered exactly once,
//! however often the commit arrives); `ROLLBACK` discards it; `UNKNOWN`
//! leaves it pending. A check thread asks the producers about half messages
//! left unresolved (after `check_after_ms`, then with back-off), and rolls a
//! transaction back after `max_checks` unanswered checks ([`CheckPolicy`]).
//!
//! `txn` column family: see [`crate::db::keys`].

mod check;
mod policy;

use std::sync::Arc;
use std::time::Duration;

use pier_proto::store::{
    EndTransactionRequest, EndTransactionResponse, HalfMessage, Resolution, StoredMessage,
    TransactionCheck,
};
use prost::Message;
use tokio::sync::broadcast;

use crate::catalog::Catalog;
use crate::clock::SharedClock;
use crate::db::{self, keys, Cf, Db, Durability};
use crate::error::{Result, StoreError};
use crate::log::{MessageLog, Put, Writes};
use crate::worker::{self, Periodic};

pub use policy::CheckPolicy;

/// How often the check thread looks for transactions due a check.
const SCAN_EVERY: Duration = Duration::from_millis(200);
/// Checks a slow watcher may fall behind by before it skips some.
const CHECK_CHANNEL_DEPTH: usize = 4096;

/// Parses a transaction id as clients carry it (32 hex digits).
fn parse_id(s: &str) -> Option<[u8; 16]> {
    let b = hex::decode(s.trim()).ok()?;
    b.try_into().ok()
}

/// Reads a half message.
fn load(db: &Db, id: &[u8; 16]) -> Result<Option<HalfMessage>> {
    match db.get(Cf::Txn, &keys::txn_half_key(id))? {
        Some(v) => Ok(Some(db::decode(&v, "a half message")?)),
        None => Ok(None),
    }
}

fn not_found(id: &str) -> StoreError {
    StoreError::TransactionNotFound {
        transaction_id: id.to_owned(),
    }
}

/// Pending transactions, their resolution and their checks.
pub(crate) struct Transactions {
    db: Arc<Db>,
    catalog: Arc<Catalog>,
    policy: CheckPolicy,
    checks: broadcast::Sender<TransactionCheck>,
    /// Held while a transaction is ended or checked, so a check never
    /// rewrites a record that a commit is removing.
    lock: Arc<tokio::sync::Mutex<()>>,
    checker: Periodic,
    clock: SharedClock,
}

impl Transactions {
    pub(crate) fn start(
        db: Arc<Db>,
        catalog: Arc<Catalog>,
        clock: SharedClock,
        policy: CheckPolicy,
    ) -> Result<Transactions> {
        policy.validate()?;
        let (checks, _) = broadcast::channel(CHECK_CHANNEL_DEPTH);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        let checker = {
            let (db, catalog, out, lock, clock) = (
                db.clone(),
                catalog.clone(),
                checks.clone(),
                lock.clone(),
                clock.clone(),
            );
            worker::every("pier-txn-check", SCAN_EVERY, move || {
                let _guard = lock.blocking_lock();
                if let Err(e) = check::check_due(&db, &catalog, &policy, &out, clock.now_ms()) {
                    tracing::warn!(error = %e.report(), "transaction check pass failed");
                }
            })?
        };
        Ok(Transactions {
            db,
            catalog,
            policy,
            checks,
            lock,
            checker,
            clock,
        })
    }

    /// Returns the id and records of a new half message and its first check.
    pub(crate) fn prepare(
        &self,
        queue: u32,
        message: StoredMessage,
        now_ms: i64,
    ) -> ([u8; 16], Vec<Put>) {
        let id: [u8; 16] = rand::random();
        let check_after_ms = if message.txn_check_after_ms == 0 {
            self.policy.first_check_ms
        } else {
            message.txn_check_after_ms
        };
        let next = now_ms.saturating_add(check_after_ms.min(i64::MAX as u64) as i64);
        let half = HalfMessage {
            queue,
            message: Some(message),
            checks: 0,
            next_check_at_ms: next,
            check_after_ms,
        };
        let puts = vec![
            (Cf::Txn, keys::txn_half_key(&id), half.encode_to_vec()),
            (Cf::Txn, keys::txn_due_key(next, &id), Vec::new()),
        ];
        (id, puts)
    }

    /// Commits, rolls back, or (UNKNOWN) leaves pending a half message.
    pub(crate) async fn end(
        &self,
        log: &MessageLog,
        req: EndTransactionRequest,
    ) -> Result<EndTransactionResponse> {
        let topic = self.catalog.topic(&req.topic)?;
        let id = parse_id(&req.transaction_id).ok_or_else(|| not_found(&req.transaction_id))?;
        let _guard = self.lock.lock().await;
        let half = load(&self.db, &id)?.ok_or_else(|| not_found(&req.transaction_id))?;
        let m = half.message.clone().unwrap_or_default();
        if m.topic != topic.topic.name {
            return Err(not_found(&req.transaction_id));
        }
        let message_id = m.message_id.clone();
        let resolution = Resolution::try_from(req.resolution).unwrap_or(Resolution::Unknown);
        // A commit or rollback continues the message's trace (a span under
        // its producer's, linked to this EndTransaction call's).
        let name = match resolution {
            Resolution::Commit => "store.txn_commit",
            Resolution::Rollback => "store.txn_rollback",
            Resolution::Unknown => "store.txn_unknown",
        };
        let traceparent = m.trace_context.clone();
        let topic_name = m.topic.clone();
        let attributes = move || {
            vec![opentelemetry::KeyValue::new(
                "messaging.destination.name",
                topic_name,
            )]
        };
        pier_node::trace::span::continued(
            name,
            opentelemetry::trace::SpanKind::Internal,
            Some(&traceparent),
            attributes,
            self.resolve(log, topic, resolution, m, &half, &id),
        )
        .await?;
        Ok(EndTransactionResponse { message_id })
    }

    /// Writes what `resolution` asks of the half message `half` (id `id`,
    /// message `m`).
    async fn resolve(
        &self,
        log: &MessageLog,
        topic: Arc<crate::catalog::TopicEntry>,
        resolution: Resolution,
        mut m: StoredMessage,
        half: &HalfMessage,
        id: &[u8; 16],
    ) -> Result<()> {
        let half_key = keys::txn_half_key(id);
        let due_key = keys::txn_due_key(half.next_check_at_ms, id);
        match resolution {
            Resolution::Commit => {
                m.topic.clear();
                // Retention counts from the commit, when consumers first see it.
                m.visible_since_ms = self.clock.now_ms();
                let queue = if (half.queue as usize) < topic.queues.len() {
                    half.queue
                } else {
                    0
                };
                let writes = Writes {
                    items: vec![(queue, m.encode_to_vec())],
                    puts: Vec::new(),
                    deletes: vec![(Cf::Txn, half_key), (Cf::Txn, due_key)],
                };
                log.write(topic, writes).await?;
            }
            Resolution::Rollback => {
                let mut b = self.db.batch()?;
                b.delete(Cf::Txn, half_key);
                b.delete(Cf::Txn, due_key);
                self.db
                    .write(b, Durability::Synced, "rolling back a transaction")?;
            }
            Resolution::Unknown => {}
        }
        Ok(())
    }

    /// Returns a receiver of the checks issued from now on.
    pub(crate) fn watch(&self) -> broadcast::Receiver<TransactionCheck> {
        self.checks.subscribe()
    }

    /// Stops the check thread.
    pub(crate) fn shutdown(&self) {
        self.checker.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let id: [u8; 16] = rand::random();
        assert_eq!(parse_id(&hex::encode_upper(id)), Some(id));
        assert_eq!(parse_id("zz"), None);
        assert_eq!(parse_id(""), None);
    }
}

/// Transaction ids come from clients (EndTransaction): any text must parse
/// to an id or to `None` (issue 14).
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::parse_id;

    proptest! {
        #[test]
        fn any_text_is_an_id_or_none(s in prop_oneof![any::<String>(), "[0-9a-fA-F ]{0,40}"]) {
            if let Some(id) = parse_id(&s) {
                prop_assert!(hex::encode(id).eq_ignore_ascii_case(s.trim()));
            }
        }

        #[test]
        fn ids_round_trip(id in any::<[u8; 16]>()) {
            prop_assert_eq!(parse_id(&hex::encode_upper(id)), Some(id));
            prop_assert_eq!(parse_id(&hex::encode(id)), Some(id));
        }
    }
}
