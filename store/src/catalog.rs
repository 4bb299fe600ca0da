//! Topics and consumer groups: durable in the `meta` column family, cached
//! in memory (they are read on every send and receive).
//!
//! Each topic and group gets a numeric id at creation. Keys of messages and
//! consumption state use the id, not the name, so deleting a topic and
//! creating one with the same name never resurrects old messages.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use pier_proto::admin::{ConsumerGroup, Topic, TopicType};
use prost::Message;
use rocksdb::{IteratorMode, WriteBatch, DB};
use tokio::sync::Notify;

use crate::error::{Result, StoreError};
use crate::keys::{self, CF_LOG, CF_META};

pub const DEFAULT_QUEUES: u32 = 8;
pub const MAX_QUEUES: u32 = 1024;
pub const DEFAULT_MAX_ATTEMPTS: u32 = 17;

/// One queue's log: the offsets that are durable and readable.
#[derive(Debug, Default)]
pub struct QueueLog {
    /// One past the last durable offset. Only the commit thread raises it.
    pub(crate) committed: AtomicU64,
    /// Lowest offset still stored (raised by retention).
    pub(crate) min_offset: AtomicU64,
}

impl QueueLog {
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }
}

#[derive(Debug)]
pub struct TopicEntry {
    pub id: u32,
    pub topic: Topic,
    pub queues: Vec<Arc<QueueLog>>,
    /// Woken whenever messages of this topic become visible.
    pub notify: Arc<Notify>,
}

impl TopicEntry {
    pub fn topic_type(&self) -> TopicType {
        TopicType::try_from(self.topic.r#type).unwrap_or(TopicType::Normal)
    }
}

#[derive(Debug, Clone)]
pub struct GroupEntry {
    pub id: u32,
    pub group: ConsumerGroup,
}

#[derive(Default)]
pub struct Catalog {
    topics: RwLock<HashMap<String, Arc<TopicEntry>>>,
    groups: RwLock<HashMap<String, Arc<GroupEntry>>>,
    next_id: AtomicU32,
}

fn encode_with_id<M: Message>(id: u32, m: &M) -> Vec<u8> {
    let mut v = id.to_be_bytes().to_vec();
    m.encode(&mut v).expect("Vec grows as needed");
    v
}

fn decode_with_id<M: Message + Default>(v: &[u8]) -> Result<(u32, M)> {
    let id: [u8; 4] = v
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StoreError::Storage("short metadata record".into()))?;
    Ok((u32::from_be_bytes(id), M::decode(&v[4..])?))
}

/// Topic names Apache RocketMQ keeps for its system topics (its
/// `TopicValidator` set, 5.5.0). Its proxy answers ILLEGAL_TOPIC for them, and
/// tools and clients written for RocketMQ treat them as internal, so Pier
/// refuses them as user topics too.
pub const RESERVED_TOPICS: &[&str] = &[
    "TBW102",
    "SCHEDULE_TOPIC_XXXX",
    "BenchmarkTest",
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRACE_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    "SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
    "CHECKPOINT_TOPIC",
    "RMQ_SYS_ROCKSDB_TRANS_HALF_TOPIC",
    "RMQ_SYS_ROCKSDB_TRANS_OP_HALF_TOPIC",
];

/// Whether `name` is one of RocketMQ's system topic names (the set above, or
/// its `rmq_sys_` prefix).
pub fn reserved_topic(name: &str) -> bool {
    RESERVED_TOPICS.contains(&name) || name.starts_with("rmq_sys_")
}

/// Whether `name` is a RocketMQ system consumer group (prefix `CID_RMQ_SYS_`,
/// which its proxy refuses with ILLEGAL_CONSUMER_GROUP).
pub fn reserved_group(name: &str) -> bool {
    name.starts_with("CID_RMQ_SYS_")
}

/// Fills in defaults and checks a topic definition.
pub fn normalize_topic(mut t: Topic) -> Result<Topic> {
    check_name("topic", &t.name)?;
    if reserved_topic(&t.name) {
        return Err(StoreError::InvalidArgument(format!(
            "topic name {:?} is reserved for RocketMQ's system topics",
            t.name
        )));
    }
    if t.r#type == TopicType::Unspecified as i32 {
        t.r#type = TopicType::Normal as i32;
    }
    if TopicType::try_from(t.r#type).is_err() {
        return Err(StoreError::InvalidArgument(format!(
            "unknown topic type {}",
            t.r#type
        )));
    }
    if t.queues == 0 {
        t.queues = DEFAULT_QUEUES;
    }
    if t.queues > MAX_QUEUES {
        return Err(StoreError::InvalidArgument(format!(
            "a topic has at most {MAX_QUEUES} queues, not {}",
            t.queues
        )));
    }
    Ok(t)
}

/// Fills in defaults and checks a group definition.
pub fn normalize_group(mut g: ConsumerGroup) -> Result<ConsumerGroup> {
    check_name("consumer group", &g.name)?;
    if reserved_group(&g.name) {
        return Err(StoreError::InvalidArgument(format!(
            "consumer group name {:?} is reserved for RocketMQ's system groups (prefix CID_RMQ_SYS_)",
            g.name
        )));
    }
    if g.max_attempts == 0 {
        g.max_attempts = DEFAULT_MAX_ATTEMPTS;
    }
    if g.max_attempts > 1000 {
        return Err(StoreError::InvalidArgument(format!(
            "max attempts must be between 1 and 1000, not {}",
            g.max_attempts
        )));
    }
    Ok(g)
}

/// Names follow RocketMQ: `[%|a-zA-Z0-9_-]`, at most 127 characters.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(StoreError::InvalidArgument(format!("{what} name is empty")));
    }
    if name.len() > 127 {
        return Err(StoreError::InvalidArgument(format!(
            "{what} name {name:?} is longer than 127 characters"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-')))
    {
        return Err(StoreError::InvalidArgument(format!(
            "{what} name {name:?} contains {c:?}; allowed are letters, digits, '%', '|', '_' and '-'"
        )));
    }
    Ok(())
}

impl Catalog {
    /// Loads every topic and group, and finds each queue's durable end.
    pub fn load(db: &DB) -> Result<Catalog> {
        let cat = Catalog::default();
        let meta = db.cf_handle(CF_META).expect("cf opened");
        let log = db.cf_handle(CF_LOG).expect("cf opened");
        let mut max_id = 0u32;
        for item in db.iterator_cf(&meta, IteratorMode::Start) {
            let (k, v) = item?;
            match k.first() {
                Some(b't') => {
                    let (id, topic): (u32, Topic) = decode_with_id(&v)?;
                    max_id = max_id.max(id);
                    let mut queues = Vec::new();
                    for q in 0..topic.queues {
                        let ql = QueueLog::default();
                        let (lo, hi) = queue_bounds(db, &log, id, q)?;
                        ql.min_offset.store(lo, Ordering::Relaxed);
                        ql.committed.store(hi, Ordering::Relaxed);
                        queues.push(Arc::new(ql));
                    }
                    cat.topics.write().insert(
                        topic.name.clone(),
                        Arc::new(TopicEntry {
                            id,
                            topic,
                            queues,
                            notify: Arc::new(Notify::new()),
                        }),
                    );
                }
                Some(b'g') => {
                    let (id, group): (u32, ConsumerGroup) = decode_with_id(&v)?;
                    max_id = max_id.max(id);
                    cat.groups
                        .write()
                        .insert(group.name.clone(), Arc::new(GroupEntry { id, group }));
                }
                _ => {}
            }
        }
        cat.next_id.store(max_id + 1, Ordering::Relaxed);
        Ok(cat)
    }

    pub fn topic(&self, name: &str) -> Result<Arc<TopicEntry>> {
        self.topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::TopicNotFound(name.to_owned()))
    }

    pub fn group(&self, name: &str) -> Result<Arc<GroupEntry>> {
        self.groups
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::GroupNotFound(name.to_owned()))
    }

    pub fn topics(&self) -> Vec<Arc<TopicEntry>> {
        let mut v: Vec<_> = self.topics.read().values().cloned().collect();
        v.sort_by(|a, b| a.topic.name.cmp(&b.topic.name));
        v
    }

    pub fn groups(&self) -> Vec<Arc<GroupEntry>> {
        let mut v: Vec<_> = self.groups.read().values().cloned().collect();
        v.sort_by(|a, b| a.group.name.cmp(&b.group.name));
        v
    }

    pub fn topic_by_id(&self, id: u32) -> Option<Arc<TopicEntry>> {
        self.topics.read().values().find(|t| t.id == id).cloned()
    }

    /// Creates a topic; `Ok((entry, false))` when an identical one exists.
    pub fn create_topic(&self, db: &DB, topic: Topic) -> Result<(Arc<TopicEntry>, bool)> {
        let mut topics = self.topics.write();
        if let Some(old) = topics.get(&topic.name) {
            if old.topic.r#type == topic.r#type && old.topic.queues == topic.queues {
                return Ok((old.clone(), false));
            }
            return Err(StoreError::AlreadyExists(format!(
                "topic {} already exists with other settings (type {}, {} queues)",
                topic.name,
                type_name(old.topic.r#type),
                old.topic.queues
            )));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut topic = topic;
        topic.created_at_ms = crate::now_ms() as u64;
        let meta = db.cf_handle(CF_META).expect("cf opened");
        db.put_cf(
            &meta,
            keys::meta_topic_key(&topic.name),
            encode_with_id(id, &topic),
        )?;
        let entry = Arc::new(TopicEntry {
            id,
            queues: (0..topic.queues)
                .map(|_| Arc::new(QueueLog::default()))
                .collect(),
            topic,
            notify: Arc::new(Notify::new()),
        });
        topics.insert(entry.topic.name.clone(), entry.clone());
        Ok((entry, true))
    }

    /// Changes a topic's type or grows its queue count (queues never shrink:
    /// their messages and consumers' cursors would be orphaned).
    pub fn update_topic(&self, db: &DB, topic: Topic) -> Result<Arc<TopicEntry>> {
        let mut topics = self.topics.write();
        let old = topics
            .get(&topic.name)
            .cloned()
            .ok_or_else(|| StoreError::TopicNotFound(topic.name.clone()))?;
        if topic.queues < old.topic.queues {
            return Err(StoreError::InvalidArgument(format!(
                "topic {} has {} queues; the queue count can grow but not shrink",
                topic.name, old.topic.queues
            )));
        }
        let mut updated = topic;
        updated.created_at_ms = old.topic.created_at_ms;
        let meta = db.cf_handle(CF_META).expect("cf opened");
        db.put_cf(
            &meta,
            keys::meta_topic_key(&updated.name),
            encode_with_id(old.id, &updated),
        )?;
        let mut queues = old.queues.clone();
        while (queues.len() as u32) < updated.queues {
            queues.push(Arc::new(QueueLog::default()));
        }
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
    pub fn delete_topic(&self, db: &DB, name: &str) -> Result<Arc<TopicEntry>> {
        let mut topics = self.topics.write();
        let old = topics
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::TopicNotFound(name.to_owned()))?;
        let meta = db.cf_handle(CF_META).expect("cf opened");
        let log = db.cf_handle(CF_LOG).expect("cf opened");
        let mut batch = WriteBatch::default();
        batch.delete_cf(&meta, keys::meta_topic_key(name));
        batch.delete_range_cf(
            &log,
            keys::log_topic_prefix(old.id),
            keys::log_topic_prefix(old.id + 1),
        );
        db.write(batch)?;
        topics.remove(name);
        // Wake long polls on it so they notice the topic is gone.
        old.notify.notify_waiters();
        Ok(old)
    }

    pub fn create_group(&self, db: &DB, group: ConsumerGroup) -> Result<(Arc<GroupEntry>, bool)> {
        let mut groups = self.groups.write();
        if let Some(old) = groups.get(&group.name) {
            let same = old.group.fifo == group.fifo
                && old.group.max_attempts == group.max_attempts
                && (group.retry_policy.is_none() || old.group.retry_policy == group.retry_policy);
            if same {
                return Ok((old.clone(), false));
            }
            return Err(StoreError::AlreadyExists(format!(
                "consumer group {} already exists with other settings (fifo {}, max attempts {})",
                group.name, old.group.fifo, old.group.max_attempts
            )));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut group = group;
        group.created_at_ms = crate::now_ms() as u64;
        let meta = db.cf_handle(CF_META).expect("cf opened");
        db.put_cf(
            &meta,
            keys::meta_group_key(&group.name),
            encode_with_id(id, &group),
        )?;
        let entry = Arc::new(GroupEntry { id, group });
        groups.insert(entry.group.name.clone(), entry.clone());
        Ok((entry, true))
    }

    pub fn update_group(&self, db: &DB, group: ConsumerGroup) -> Result<Arc<GroupEntry>> {
        let mut groups = self.groups.write();
        let old = groups
            .get(&group.name)
            .cloned()
            .ok_or_else(|| StoreError::GroupNotFound(group.name.clone()))?;
        let mut updated = group;
        updated.created_at_ms = old.group.created_at_ms;
        if updated.retry_policy.is_none() {
            updated.retry_policy = old.group.retry_policy.clone();
        }
        let meta = db.cf_handle(CF_META).expect("cf opened");
        db.put_cf(
            &meta,
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

    pub fn delete_group(&self, db: &DB, name: &str) -> Result<Arc<GroupEntry>> {
        let mut groups = self.groups.write();
        let old = groups
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::GroupNotFound(name.to_owned()))?;
        let meta = db.cf_handle(CF_META).expect("cf opened");
        db.delete_cf(&meta, keys::meta_group_key(name))?;
        groups.remove(name);
        Ok(old)
    }
}

pub fn type_name(t: i32) -> &'static str {
    match TopicType::try_from(t) {
        Ok(TopicType::Normal) => "NORMAL",
        Ok(TopicType::Fifo) => "FIFO",
        Ok(TopicType::Delay) => "DELAY",
        Ok(TopicType::Transaction) => "TRANSACTION",
        _ => "UNSPECIFIED",
    }
}

/// First stored offset and one past the last, for a queue.
fn queue_bounds(
    db: &DB,
    log: &impl rocksdb::AsColumnFamilyRef,
    topic: u32,
    queue: u32,
) -> Result<(u64, u64)> {
    let start = keys::log_key(topic, queue, 0);
    let end = keys::log_key(topic, queue, u64::MAX);
    let mut it = db.iterator_cf(log, IteratorMode::From(&start, rocksdb::Direction::Forward));
    let lo = match it.next() {
        Some(item) => {
            let (k, _) = item?;
            if k.len() == 16 && k[..8] == start[..8] {
                keys::log_offset(&k).unwrap_or(0)
            } else {
                return Ok((0, 0));
            }
        }
        None => return Ok((0, 0)),
    };
    let mut it = db.iterator_cf(log, IteratorMode::From(&end, rocksdb::Direction::Reverse));
    let hi = match it.next() {
        Some(item) => {
            let (k, _) = item?;
            if k.len() == 16 && k[..8] == start[..8] {
                keys::log_offset(&k).map_or(lo, |o| o + 1)
            } else {
                lo
            }
        }
        None => lo,
    };
    Ok((lo, hi))
}
