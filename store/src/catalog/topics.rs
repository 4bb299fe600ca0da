//! Topics: their settings, ids and queues, and the dead-letter topic of
//! each consumer group.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pier_proto::admin::{QueueStats, Topic, TopicType};
use rocksdb::Direction;
use tokio::sync::Notify;

use super::rules::{normalize_topic, type_name};
use super::Catalog;
use crate::db::{keys, Cf, Db};
use crate::error::{Result, StoreError};

/// One queue's log: the offsets that are durable and readable.
#[derive(Debug, Default)]
pub(crate) struct QueueLog {
    /// One past the last durable offset. Only the commit thread raises it.
    pub(crate) committed: AtomicU64,
    /// Lowest offset still stored (raised by retention).
    pub(crate) min_offset: AtomicU64,
}

impl QueueLog {
    /// Returns one past the last durable offset.
    pub(crate) fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Returns the lowest offset still stored.
    pub(crate) fn min_offset(&self) -> u64 {
        self.min_offset.load(Ordering::Acquire)
    }

    /// Returns how many messages are stored.
    pub(crate) fn stored(&self) -> u64 {
        let end = self.committed();
        end - self.min_offset().min(end)
    }
}

fn new_queues(n: usize) -> impl Iterator<Item = Arc<QueueLog>> {
    (0..n).map(|_| Arc::new(QueueLog::default()))
}

/// A topic, its queues' bounds, and who waits for its messages.
#[derive(Debug)]
pub(crate) struct TopicEntry {
    pub(crate) id: u32,
    pub(crate) topic: Topic,
    pub(crate) queues: Vec<Arc<QueueLog>>,
    /// Woken whenever messages of this topic become visible.
    pub(crate) notify: Arc<Notify>,
}

impl TopicEntry {
    /// Returns the entry of a stored topic, with its queues' bounds.
    pub(super) fn load(db: &Db, id: u32, topic: Topic) -> Result<TopicEntry> {
        let mut queues = Vec::new();
        for q in 0..topic.queues {
            let (lo, hi) = queue_bounds(db, id, q)?;
            queues.push(Arc::new(QueueLog {
                committed: AtomicU64::new(hi),
                min_offset: AtomicU64::new(lo),
            }));
        }
        Ok(TopicEntry {
            id,
            topic,
            queues,
            notify: Arc::new(Notify::new()),
        })
    }

    pub(crate) fn topic_type(&self) -> TopicType {
        TopicType::try_from(self.topic.r#type).unwrap_or(TopicType::Normal)
    }

    /// Returns the bounds of every queue.
    pub(crate) fn queue_stats(&self) -> Vec<QueueStats> {
        (0u32..)
            .zip(&self.queues)
            .map(|(queue, ql)| QueueStats {
                queue,
                min_offset: ql.min_offset(),
                max_offset: ql.committed(),
            })
            .collect()
    }
}

impl Catalog {
    /// Creates a topic; `Ok((entry, false))` when an identical one exists.
    pub(crate) fn create_topic(&self, topic: Topic) -> Result<(Arc<TopicEntry>, bool)> {
        let mut topic = normalize_topic(topic)?;
        let mut topics = self.topics.entries.write();
        if let Some(old) = topics.get(&topic.name) {
            if old.topic.r#type == topic.r#type && old.topic.queues == topic.queues {
                return Ok((old.clone(), false));
            }
            let existing = format!(
                "type {}, {} queues",
                type_name(old.topic.r#type),
                old.topic.queues
            );
            return Err(StoreError::already_exists("topic", topic.name, existing));
        }
        let (id, now) = self.next();
        topic.created_at_ms = now;
        self.put_meta(keys::meta_topic_key(&topic.name), id, &topic)?;
        let entry = Arc::new(TopicEntry {
            id,
            queues: new_queues(topic.queues as usize).collect(),
            topic,
            notify: Arc::new(Notify::new()),
        });
        topics.insert(entry.topic.name.clone(), entry.clone());
        tracing::info!(topic = %entry.topic.name, r#type = type_name(entry.topic.r#type), queues = entry.topic.queues, "topic created");
        Ok((entry, true))
    }

    /// Returns the dead-letter topic of a group, creating it on first use.
    pub(crate) fn dlq_topic(&self, group: &str) -> Result<Arc<TopicEntry>> {
        let name = format!("%DLQ%{group}");
        if let Ok(t) = self.topic(&name) {
            return Ok(t);
        }
        let topic = Topic {
            name,
            r#type: TopicType::Normal as i32,
            queues: 1,
            created_at_ms: 0,
        };
        match self.create_topic(topic.clone()) {
            Ok((t, _)) => Ok(t),
            Err(StoreError::AlreadyExists { .. }) => self.topic(&topic.name),
            Err(e) => Err(e),
        }
    }

    /// Changes a topic's type or grows its queue count (queues never shrink:
    /// their messages and consumers' cursors would be orphaned).
    pub(crate) fn update_topic(&self, topic: Topic) -> Result<Arc<TopicEntry>> {
        let mut updated = normalize_topic(topic)?;
        let (mut topics, old) = self.topics.existing(&updated.name)?;
        if updated.queues < old.topic.queues {
            return Err(StoreError::invalid(format!(
                "topic {} has {} queues; the queue count can grow but not shrink",
                updated.name, old.topic.queues
            )));
        }
        updated.created_at_ms = old.topic.created_at_ms;
        self.put_meta(keys::meta_topic_key(&updated.name), old.id, &updated)?;
        let mut queues = old.queues.clone();
        let added = (updated.queues as usize).saturating_sub(queues.len());
        queues.extend(new_queues(added));
        let entry = Arc::new(TopicEntry {
            id: old.id,
            topic: updated,
            queues,
            notify: old.notify.clone(),
        });
        topics.insert(entry.topic.name.clone(), entry.clone());
        Ok(entry)
    }

    /// Removes a topic and every message it holds.
    pub(crate) fn delete_topic(&self, name: &str) -> Result<Arc<TopicEntry>> {
        let (mut topics, old) = self.topics.existing(name)?;
        self.delete_meta(keys::meta_topic_key(name), |batch| {
            let (from, to) = (
                keys::log_topic_prefix(old.id),
                keys::log_topic_prefix(old.id + 1),
            );
            batch.delete_range(Cf::Log, from, to);
            crate::log::index::delete_topic(batch, old.id);
        })?;
        topics.remove(name);
        // Wake long polls on it so they notice the topic is gone.
        old.notify.notify_waiters();
        tracing::info!(topic = %name, "topic deleted");
        Ok(old)
    }
}

/// First stored offset and one past the last, for a queue.
fn queue_bounds(db: &Db, topic: u32, queue: u32) -> Result<(u64, u64)> {
    let start = keys::log_key(topic, queue, 0);
    let end = keys::log_key(topic, queue, u64::MAX);
    let same_queue = |k: &[u8]| k.len() == 16 && k.get(..8) == start.get(..8);
    let lo = match db.scan(Cf::Log, &start, Direction::Forward, None)?.next() {
        Some(item) => {
            let (k, _) = item?;
            if !same_queue(&k) {
                return Ok((0, 0));
            }
            keys::log_offset(&k).unwrap_or(0)
        }
        None => return Ok((0, 0)),
    };
    let hi = match db.scan(Cf::Log, &end, Direction::Reverse, None)?.next() {
        Some(item) => {
            let (k, _) = item?;
            if same_queue(&k) {
                keys::log_offset(&k).map_or(lo, |o| o + 1)
            } else {
                lo
            }
        }
        None => lo,
    };
    Ok((lo, hi))
}
