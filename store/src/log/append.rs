//! Where each appended message goes: which queue (the client's choice, its
//! FIFO message group's queue, or round robin), and whether into the log at
//! once, into the `timer` column family (a delay message not yet due), or
//! into the `txn` column family (the half message of a transaction). All of
//! a request's records are written by one group commit.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use pier_proto::admin::TopicType;
use pier_proto::store::{AppendResponse, AppendResult, MessageKind, StoredMessage};
use prost::Message;

use super::{MessageLog, Writes};
use crate::catalog::{type_name, TopicEntry};
use crate::db::Cf;
use crate::error::{Result, StoreError};
use crate::fifo;
use crate::timer::Timers;
use crate::txn::Transactions;

/// Where one appended message went.
enum Placement {
    /// Into the log: index into the appended items.
    Log(usize),
    /// Scheduled: the timer key, and its due time.
    Timer(Vec<u8>, u64),
    /// Held as a half message: the transaction id.
    Half(String),
}

/// Returns true when a topic of type `topic` accepts messages of `kind`.
fn kind_allowed(topic: TopicType, kind: MessageKind) -> bool {
    matches!(
        (topic, kind),
        (TopicType::Normal, MessageKind::Normal)
            | (TopicType::Fifo, MessageKind::Fifo)
            | (TopicType::Delay, MessageKind::Delay)
            | (TopicType::Transaction, MessageKind::Transaction)
    )
}

fn kind_name(k: MessageKind) -> &'static str {
    match k {
        MessageKind::Normal => "NORMAL",
        MessageKind::Fifo => "FIFO",
        MessageKind::Delay => "DELAY",
        MessageKind::Transaction => "TRANSACTION",
        MessageKind::Unspecified => "UNSPECIFIED",
    }
}

impl MessageLog {
    /// Appends messages to one topic; answers, in input order, where each
    /// went, once all of them are durable.
    pub(crate) async fn append(
        &self,
        topic: Arc<TopicEntry>,
        messages: Vec<StoredMessage>,
        timers: &Timers,
        txn: &Transactions,
    ) -> Result<AppendResponse> {
        if messages.is_empty() {
            return Err(StoreError::invalid("no message to append"));
        }
        let now = self.clock.now_ms();
        let mut writes = Writes::default();
        let mut placed = Vec::with_capacity(messages.len());
        for m in messages {
            placed.push(self.place(&topic, m, now, &mut writes, timers, txn)?);
        }
        let earliest_timer = placed
            .iter()
            .filter_map(|(_, p)| match p {
                Placement::Timer(_, due) => Some(*due),
                _ => None,
            })
            .min();
        let offsets = self.write(topic, writes).await?;
        if let Some(due) = earliest_timer {
            timers.added(due);
        }
        let results = placed
            .into_iter()
            .map(|(queue, p)| match p {
                Placement::Log(i) => {
                    let (queue, offset) = offsets.get(i).copied().unwrap_or((queue, 0));
                    AppendResult {
                        queue,
                        offset,
                        ..Default::default()
                    }
                }
                Placement::Timer(timer, _) => AppendResult {
                    queue,
                    timer,
                    ..Default::default()
                },
                Placement::Half(transaction_id) => AppendResult {
                    queue,
                    transaction_id,
                    ..Default::default()
                },
            })
            .collect();
        Ok(AppendResponse { results })
    }

    /// Checks one message, picks its queue, and adds its records to `writes`.
    fn place(
        &self,
        topic: &TopicEntry,
        mut m: StoredMessage,
        now: i64,
        writes: &mut Writes,
        timers: &Timers,
        txn: &Transactions,
    ) -> Result<(u32, Placement)> {
        let kind = match MessageKind::try_from(m.kind) {
            Ok(MessageKind::Unspecified) | Err(_) => MessageKind::Normal,
            Ok(k) => k,
        };
        if !kind_allowed(topic.topic_type(), kind) {
            return Err(StoreError::TypeConflict {
                topic: topic.topic.name.clone(),
                topic_type: type_name(topic.topic.r#type).into(),
                kind: kind_name(kind).into(),
            });
        }
        let nq = topic.queues.len() as u32;
        let queue = if kind == MessageKind::Fifo && !m.message_group.is_empty() {
            fifo::queue_of(&m.message_group, nq)
        } else if m.queue < nq {
            m.queue
        } else {
            (self.round_robin.fetch_add(1, Ordering::Relaxed) % nq as usize) as u32
        };
        m.kind = kind as i32;
        m.topic.clear();
        m.queue = 0;
        m.offset = 0;
        m.stored_at_ms = now;
        if kind == MessageKind::Delay && m.deliver_at_ms > now {
            let due = m.deliver_at_ms as u64;
            let key = timers.next_key(due, topic.id);
            let mut value = Vec::with_capacity(4 + m.encoded_len());
            value.extend_from_slice(&queue.to_be_bytes());
            // Encoded straight after the queue number, with no interim Vec;
            // a Vec grows as needed, so encoding into it cannot fail.
            let _ = m.encode(&mut value);
            writes.puts.push((Cf::Timer, key.clone(), value));
            Ok((queue, Placement::Timer(key, due)))
        } else if kind == MessageKind::Transaction {
            m.topic = topic.topic.name.clone();
            let (id, puts) = txn.prepare(queue, m, now);
            writes.puts.extend(puts);
            Ok((queue, Placement::Half(hex::encode_upper(id))))
        } else {
            let index = writes.items.len();
            writes.items.push((queue, m.encode_to_vec()));
            Ok((queue, Placement::Log(index)))
        }
    }
}
