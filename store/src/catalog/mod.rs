//! Topics and consumer groups: durable in the `meta` column family, cached
//! in memory (they are read on every send and receive).
//!
//! Each topic and group gets a numeric id at creation. Keys of messages and
//! consumption state use the id, not the name, so deleting a topic and
//! creating one with the same name never resurrects old messages.

mod rules;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use pier_proto::admin::{ConsumerGroup, QueueStats, Topic, TopicType};
use prost::Message;
use rocksdb::Direction;
use tokio::sync::Notify;

use crate::clock::SharedClock;
use crate::db::{self, keys, Cf, Db, Durability};
use crate::error::{Result, StorageCause, StoreError};

pub(crate) use rules::{normalize_group, normalize_topic, type_name};
pub use rules::{reserved_group, reserved_topic, DEFAULT_MAX_ATTEMPTS};

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

/// A consumer group and its id.
#[derive(Debug, Clone)]
pub(crate) struct GroupEntry {
    pub(crate) id: u32,
    pub(crate) group: ConsumerGroup,
}

/// Every topic and group of the store.
pub(crate) struct Catalog {
    db: Arc<Db>,
    clock: SharedClock,
    topics: RwLock<HashMap<String, Arc<TopicEntry>>>,
    groups: RwLock<HashMap<String, Arc<GroupEntry>>>,
    next_id: AtomicU32,
}

fn encode_with_id<M: Message>(id: u32, m: &M) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + m.encoded_len());
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&m.encode_to_vec());
    v
}

fn decode_with_id<M: Message + Default>(v: &[u8]) -> Result<(u32, M)> {
    let id: [u8; 4] = v.get(..4).and_then(|b| b.try_into().ok()).ok_or_else(|| {
        StoreError::storage(
            "loading the catalog",
            StorageCause::Corrupt("short metadata record".into()),
        )
    })?;
    Ok((
        u32::from_be_bytes(id),
        db::decode(v.get(4..).unwrap_or_default(), "a metadata record")?,
    ))
}

fn new_queues(n: u32) -> Vec<Arc<QueueLog>> {
    (0..n).map(|_| Arc::new(QueueLog::default())).collect()
}

impl Catalog {
    /// Loads every topic and group, and finds each queue's durable end.
    pub(crate) fn load(db: Arc<Db>, clock: SharedClock) -> Result<Catalog> {
        let mut topics = HashMap::new();
        let mut groups = HashMap::new();
        let mut max_id = 0u32;
        for item in db.scan(Cf::Meta, &[], Direction::Forward, None)? {
            let (k, v) = item?;
            match k.first() {
                Some(b't') => {
                    let (id, topic): (u32, Topic) = decode_with_id(&v)?;
                    max_id = max_id.max(id);
                    let mut queues = Vec::new();
                    for q in 0..topic.queues {
                        let (lo, hi) = queue_bounds(&db, id, q)?;
                        queues.push(Arc::new(QueueLog {
                            committed: AtomicU64::new(hi),
                            min_offset: AtomicU64::new(lo),
                        }));
                    }
                    let entry = TopicEntry {
                        id,
                        topic,
                        queues,
                        notify: Arc::new(Notify::new()),
                    };
                    topics.insert(entry.topic.name.clone(), Arc::new(entry));
                }
                Some(b'g') => {
                    let (id, group): (u32, ConsumerGroup) = decode_with_id(&v)?;
                    max_id = max_id.max(id);
                    groups.insert(group.name.clone(), Arc::new(GroupEntry { id, group }));
                }
                _ => {}
            }
        }
        Ok(Catalog {
            db,
            clock,
            topics: RwLock::new(topics),
            groups: RwLock::new(groups),
            next_id: AtomicU32::new(max_id + 1),
        })
    }

    pub(crate) fn topic(&self, name: &str) -> Result<Arc<TopicEntry>> {
        self.topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::TopicNotFound {
                topic: name.to_owned(),
            })
    }

    pub(crate) fn group(&self, name: &str) -> Result<Arc<GroupEntry>> {
        self.groups
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::GroupNotFound {
                group: name.to_owned(),
            })
    }

    /// Returns every topic, by name.
    pub(crate) fn topics(&self) -> Vec<Arc<TopicEntry>> {
        let mut v: Vec<_> = self.topics.read().values().cloned().collect();
        v.sort_by(|a, b| a.topic.name.cmp(&b.topic.name));
        v
    }

    /// Returns every group, by name.
    pub(crate) fn groups(&self) -> Vec<Arc<GroupEntry>> {
        let mut v: Vec<_> = self.groups.read().values().cloned().collect();
        v.sort_by(|a, b| a.group.name.cmp(&b.group.name));
        v
    }

    pub(crate) fn topic_by_id(&self, id: u32) -> Option<Arc<TopicEntry>> {
        self.topics.read().values().find(|t| t.id == id).cloned()
    }

    fn put_meta(&self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        let mut batch = self.db.batch()?;
        batch.put(Cf::Meta, key, value);
        self.db
            .write(batch, Durability::Buffered, "writing the catalog")
    }

    /// Creates a topic; `Ok((entry, false))` when an identical one exists.
    pub(crate) fn create_topic(&self, topic: Topic) -> Result<(Arc<TopicEntry>, bool)> {
        let topic = normalize_topic(topic)?;
        let mut topics = self.topics.write();
        if let Some(old) = topics.get(&topic.name) {
            if old.topic.r#type == topic.r#type && old.topic.queues == topic.queues {
                return Ok((old.clone(), false));
            }
            return Err(StoreError::AlreadyExists {
                what: "topic".into(),
                name: topic.name,
                existing: format!(
                    "type {}, {} queues",
                    type_name(old.topic.r#type),
                    old.topic.queues
                ),
            });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut topic = topic;
        topic.created_at_ms = self.clock.now_ms().max(0) as u64;
        self.put_meta(
            keys::meta_topic_key(&topic.name),
            encode_with_id(id, &topic),
        )?;
        let entry = Arc::new(TopicEntry {
            id,
            queues: new_queues(topic.queues),
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
        let topic = normalize_topic(topic)?;
        let mut topics = self.topics.write();
        let old = topics
            .get(&topic.name)
            .cloned()
            .ok_or_else(|| StoreError::TopicNotFound {
                topic: topic.name.clone(),
            })?;
        if topic.queues < old.topic.queues {
            return Err(StoreError::invalid(format!(
                "topic {} has {} queues; the queue count can grow but not shrink",
                topic.name, old.topic.queues
            )));
        }
        let mut updated = topic;
        updated.created_at_ms = old.topic.created_at_ms;
        self.put_meta(
            keys::meta_topic_key(&updated.name),
            encode_with_id(old.id, &updated),
        )?;
        let mut queues = old.queues.clone();
        let added = (updated.queues as usize).saturating_sub(queues.len());
        queues.extend(new_queues(added as u32));
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
        let mut topics = self.topics.write();
        let old = topics
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::TopicNotFound {
                topic: name.to_owned(),
            })?;
        let mut batch = self.db.batch()?;
        batch.delete(Cf::Meta, keys::meta_topic_key(name));
        batch.delete_range(
            Cf::Log,
            keys::log_topic_prefix(old.id),
            keys::log_topic_prefix(old.id + 1),
        );
        self.db
            .write(batch, Durability::Buffered, "deleting a topic")?;
        topics.remove(name);
        // Wake long polls on it so they notice the topic is gone.
        old.notify.notify_waiters();
        tracing::info!(topic = %name, "topic deleted");
        Ok(old)
    }

    /// Creates a group; `Ok((entry, false))` when an identical one exists.
    pub(crate) fn create_group(&self, group: ConsumerGroup) -> Result<(Arc<GroupEntry>, bool)> {
        let group = normalize_group(group)?;
        let mut groups = self.groups.write();
        if let Some(old) = groups.get(&group.name) {
            let same = old.group.fifo == group.fifo
                && old.group.max_attempts == group.max_attempts
                && (group.retry_policy.is_none() || old.group.retry_policy == group.retry_policy);
            if same {
                return Ok((old.clone(), false));
            }
            return Err(StoreError::AlreadyExists {
                what: "consumer group".into(),
                name: group.name,
                existing: format!(
                    "fifo {}, max attempts {}",
                    old.group.fifo, old.group.max_attempts
                ),
            });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut group = group;
        group.created_at_ms = self.clock.now_ms().max(0) as u64;
        self.put_meta(
            keys::meta_group_key(&group.name),
            encode_with_id(id, &group),
        )?;
        let entry = Arc::new(GroupEntry { id, group });
        groups.insert(entry.group.name.clone(), entry.clone());
        tracing::info!(group = %entry.group.name, fifo = entry.group.fifo, max_attempts = entry.group.max_attempts, "consumer group created");
        Ok((entry, true))
    }

    /// Replaces a group's settings (a missing retry policy keeps the old one).
    pub(crate) fn update_group(&self, group: ConsumerGroup) -> Result<Arc<GroupEntry>> {
        let group = normalize_group(group)?;
        let mut groups = self.groups.write();
        let old = groups
            .get(&group.name)
            .cloned()
            .ok_or_else(|| StoreError::GroupNotFound {
                group: group.name.clone(),
            })?;
        let mut updated = group;
        updated.created_at_ms = old.group.created_at_ms;
        if updated.retry_policy.is_none() {
            updated.retry_policy = old.group.retry_policy.clone();
        }
        self.put_meta(
            keys::meta_group_key(&updated.name),
            encode_with_id(old.id, &updated),
        )?;
        let entry = Arc::new(GroupEntry {
            id: old.id,
            group: updated,
        });
        groups.insert(entry.group.name.clone(), entry.clone());
        Ok(entry)
    }

    /// Removes a group (its consumption state is the caller's to remove).
    pub(crate) fn delete_group(&self, name: &str) -> Result<Arc<GroupEntry>> {
        let mut groups = self.groups.write();
        let old = groups
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::GroupNotFound {
                group: name.to_owned(),
            })?;
        let mut batch = self.db.batch()?;
        batch.delete(Cf::Meta, keys::meta_group_key(name));
        self.db
            .write(batch, Durability::Buffered, "deleting a consumer group")?;
        groups.remove(name);
        tracing::info!(group = %name, "consumer group deleted");
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
