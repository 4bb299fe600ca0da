//! The check pass: half messages whose check time has come are announced to
//! the producers (through [`super::Transactions::watch`]) and rescheduled
//! with back-off, or rolled back after their last check.

use pier_proto::store::{HalfMessage, TransactionCheck};
use prost::Message;
use rocksdb::Direction;
use tokio::sync::broadcast;

use super::{load, CheckPolicy};
use crate::catalog::Catalog;
use crate::db::{keys, Cf, Db, Durability};
use crate::error::Result;

/// Most transactions checked in one pass.
const MAX_CHECKS_PER_SCAN: usize = 1024;

/// Runs one pass at time `now`.
pub(super) fn check_due(
    db: &Db,
    catalog: &Catalog,
    policy: &CheckPolicy,
    out: &broadcast::Sender<TransactionCheck>,
    now: i64,
) -> Result<()> {
    let mut due = Vec::new();
    for item in db.scan(Cf::Txn, b"c", Direction::Forward, None)? {
        let (k, _) = item?;
        let Some((at, id)) = keys::txn_due_parts(&k) else {
            break;
        };
        if due.len() >= MAX_CHECKS_PER_SCAN || at > now {
            break;
        }
        due.push((k.to_vec(), id));
    }
    for (key, id) in due {
        let mut b = db.batch()?;
        b.delete(Cf::Txn, &key);
        let Some(half) = load(db, &id)? else {
            db.write(
                b,
                Durability::Buffered,
                "dropping a stale transaction check",
            )?;
            continue;
        };
        let message = half.message.clone().unwrap_or_default();
        let topic_gone = catalog.topic(&message.topic).is_err();
        let rolled_back = half.checks >= policy.max_checks || topic_gone;
        // The message's trace goes on with its check or its rollback (a
        // span of this pass, ended with the iteration).
        let _span = pier_node::trace::span::resumed(
            if rolled_back {
                "store.txn_rollback"
            } else {
                "store.txn_check"
            },
            &message.trace_context,
            || {
                vec![
                    opentelemetry::KeyValue::new(
                        "messaging.destination.name",
                        message.topic.clone(),
                    ),
                    opentelemetry::KeyValue::new("pier.txn.checks", i64::from(half.checks)),
                ]
            },
        );
        if rolled_back {
            b.delete(Cf::Txn, keys::txn_half_key(&id));
            db.write(b, Durability::Buffered, "rolling back a transaction")?;
            tracing::warn!(
                topic = %message.topic,
                message_id = %message.message_id,
                transaction_id = %hex::encode_upper(id),
                checks = half.checks,
                "{}",
                if topic_gone {
                    "transaction's topic is gone: half message dropped"
                } else {
                    "transaction unresolved after its checks: rolled back"
                }
            );
            continue;
        }
        let half = reschedule(policy, half, now);
        b.put(Cf::Txn, keys::txn_half_key(&id), half.encode_to_vec());
        b.put(Cf::Txn, keys::txn_due_key(half.next_check_at_ms, &id), b"");
        db.write(b, Durability::Buffered, "scheduling a transaction check")?;
        // Nobody listening (no proxy connected) is fine: the next check retries.
        let sent = out.send(TransactionCheck {
            topic: message.topic.clone(),
            transaction_id: hex::encode_upper(id),
            message: Some(message),
            check: half.checks,
        });
        if sent.is_ok() {
            crate::metrics::get().txn_check_sent();
        }
    }
    Ok(())
}

/// Counts one more check and sets the time of the next.
fn reschedule(policy: &CheckPolicy, mut half: HalfMessage, now: i64) -> HalfMessage {
    half.checks += 1;
    let wait = policy.interval_after(half.check_after_ms, half.checks);
    half.next_check_at_ms = now.saturating_add(wait.min(i64::MAX as u64) as i64);
    half
}
