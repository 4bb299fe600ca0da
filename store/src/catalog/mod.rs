//! Topics and consumer groups: durable in the `meta` column family, cached
//! in memory (they are read on every send and receive).
//!
//! Each topic and group gets a numeric id at creation. Keys of messages and
//! consumption state use the id, not the name, so deleting a topic and
//! creating one with the same name never resurrects old messages.
//!
//! - [`topics`]: topics, their queues' bounds, dead-letter topics;
//! - [`groups`]: consumer groups;
//! - [`rules`]: what a valid definition is, and the defaults.

mod groups;
mod rules;
mod topics;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::{RwLock, RwLockWriteGuard};
use prost::Message;
use rocksdb::Direction;

use crate::clock::SharedClock;
use crate::db::{self, Batch, Cf, Db, Durability};
use crate::error::{Result, StorageCause, StoreError};

pub(crate) use groups::GroupEntry;
pub(crate) use rules::type_name;
pub use rules::{reserved_group, reserved_topic, DEFAULT_MAX_ATTEMPTS};
pub(crate) use topics::{QueueLog, TopicEntry};

/// Entries by name.
type Entries<E> = HashMap<String, Arc<E>>;

/// The entries of one kind (topics or groups), by name.
struct Table<E> {
    entries: RwLock<Entries<E>>,
    /// The error for a name that is not in the table.
    missing: fn(&str) -> StoreError,
}

impl<E> Table<E> {
    fn new(entries: Entries<E>, missing: fn(&str) -> StoreError) -> Table<E> {
        Table {
            entries: RwLock::new(entries),
            missing,
        }
    }

    fn get(&self, name: &str) -> Result<Arc<E>> {
        let entries = self.entries.read();
        entries
            .get(name)
            .cloned()
            .ok_or_else(|| (self.missing)(name))
    }

    /// Returns every entry, by name.
    fn sorted(&self) -> Vec<Arc<E>> {
        let entries = self.entries.read();
        let mut v: Vec<_> = entries.iter().collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v.into_iter().map(|(_, e)| e.clone()).collect()
    }

    /// Locks the table for a change; returns it with the entry named
    /// `name`, which must exist.
    fn existing(&self, name: &str) -> Result<(RwLockWriteGuard<'_, Entries<E>>, Arc<E>)> {
        let entries = self.entries.write();
        let old = entries
            .get(name)
            .cloned()
            .ok_or_else(|| (self.missing)(name))?;
        Ok((entries, old))
    }
}

/// Every topic and group of the store.
pub(crate) struct Catalog {
    db: Arc<Db>,
    clock: SharedClock,
    topics: Table<TopicEntry>,
    groups: Table<GroupEntry>,
    next_id: AtomicU32,
}

/// A catalog record: the entry's id, then the definition.
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
                    let (id, topic): (u32, pier_proto::admin::Topic) = decode_with_id(&v)?;
                    // Every stored topic was created with 1..=MAX_QUEUES
                    // queues: another count is damage, said here rather
                    // than found by a division by zero on the next send.
                    if topic.queues == 0 || topic.queues > rules::MAX_QUEUES {
                        return Err(StoreError::storage(
                            "loading the catalog",
                            StorageCause::Corrupt(format!(
                                "topic {:?} is recorded with {} queues",
                                topic.name, topic.queues
                            )),
                        ));
                    }
                    max_id = max_id.max(id);
                    let entry = TopicEntry::load(&db, id, topic)?;
                    topics.insert(entry.topic.name.clone(), Arc::new(entry));
                }
                Some(b'g') => {
                    let (id, group) = decode_with_id(&v)?;
                    max_id = max_id.max(id);
                    let entry = GroupEntry { id, group };
                    groups.insert(entry.group.name.clone(), Arc::new(entry));
                }
                _ => {}
            }
        }
        Ok(Catalog {
            db,
            clock,
            topics: Table::new(topics, |name| StoreError::TopicNotFound {
                topic: name.to_owned(),
            }),
            groups: Table::new(groups, |name| StoreError::GroupNotFound {
                group: name.to_owned(),
            }),
            next_id: AtomicU32::new(max_id + 1),
        })
    }

    pub(crate) fn topic(&self, name: &str) -> Result<Arc<TopicEntry>> {
        self.topics.get(name)
    }

    pub(crate) fn group(&self, name: &str) -> Result<Arc<GroupEntry>> {
        self.groups.get(name)
    }

    /// Returns every topic, by name.
    pub(crate) fn topics(&self) -> Vec<Arc<TopicEntry>> {
        self.topics.sorted()
    }

    /// Returns every group, by name.
    pub(crate) fn groups(&self) -> Vec<Arc<GroupEntry>> {
        self.groups.sorted()
    }

    pub(crate) fn topic_by_id(&self, id: u32) -> Option<Arc<TopicEntry>> {
        let topics = self.topics.entries.read();
        topics.values().find(|t| t.id == id).cloned()
    }

    /// Returns a new id and the creation time for a new entry.
    fn next(&self) -> (u32, u64) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        (id, self.clock.now_ms().max(0) as u64)
    }

    /// Writes an entry's record (under `key`).
    fn put_meta(&self, key: Vec<u8>, id: u32, record: &impl Message) -> Result<()> {
        let mut batch = self.db.batch()?;
        batch.put(Cf::Meta, key, encode_with_id(id, record));
        self.db
            .write(batch, Durability::Buffered, "writing the catalog")
    }

    /// Removes an entry's record (under `key`) and whatever `also` adds.
    fn delete_meta(&self, key: Vec<u8>, also: impl FnOnce(&mut Batch<'_>)) -> Result<()> {
        let mut batch = self.db.batch()?;
        batch.delete(Cf::Meta, key);
        also(&mut batch);
        self.db
            .write(batch, Durability::Buffered, "deleting from the catalog")
    }
}

/// The catalog's record codec over arbitrary bytes (issue 14).
#[cfg(test)]
mod props {
    use pier_proto::admin::{ConsumerGroup, Topic};
    use proptest::prelude::*;

    use super::{decode_with_id, encode_with_id};
    use crate::error::StoreError;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_record_decodes_or_gives_a_storage_error(b in proptest::collection::vec(any::<u8>(), 0..128)) {
            for r in [
                decode_with_id::<Topic>(&b).map(|_| ()),
                decode_with_id::<ConsumerGroup>(&b).map(|_| ()),
            ] {
                prop_assert!(matches!(r, Ok(()) | Err(StoreError::Storage { .. })), "{:?}", r);
            }
            if b.len() < 4 {
                prop_assert!(decode_with_id::<Topic>(&b).is_err());
            }
        }

        #[test]
        fn records_round_trip(id in any::<u32>(), name in "\\PC{0,130}", queues in any::<u32>(), max_attempts in any::<u32>()) {
            let t = Topic { name: name.clone(), queues, ..Default::default() };
            prop_assert_eq!(decode_with_id::<Topic>(&encode_with_id(id, &t)).unwrap(), (id, t));
            let g = ConsumerGroup { name, max_attempts, ..Default::default() };
            prop_assert_eq!(decode_with_id::<ConsumerGroup>(&encode_with_id(id, &g)).unwrap(), (id, g));
        }
    }
}
