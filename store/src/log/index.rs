//! The message index: every key of a logged message, and its message id,
//! point to where the message is (topic, queue, offset), so that "find the
//! messages with key K" or "find message X" is a prefix seek in the `index`
//! column family rather than a scan of the logs (layout in `db/keys`).
//!
//! Written with the message: the commit thread puts a message's index
//! entries in the same RocksDB write batch as the message itself, so an
//! entry is durable exactly when its message is, and a crash never leaves
//! one pointing at nothing. Deleted with the message: by the retention
//! sweep, a topic's deletion, and a dead letter leaving its DLQ; after a
//! purge, in writes of bounded size (see `delete_below`).
//!
//! Entries are ordered by when the message entered its log, so a time range
//! is a seek too. A message's first [`MAX_KEYS_PER_MESSAGE`] keys are
//! indexed (the rest are not found by key), each by its first
//! [`keys::INDEX_VALUE_MAX`] bytes (a lookup compares the full key).
//!
//! Data written before the index existed: when a store first opens with the
//! index, each queue's current end is recorded as its watermark; messages
//! below a watermark have no entries and are found by the bounded scan of
//! old (no backfill: a rebuild would race retention and purges for little
//! gain, and retention removes those messages in time anyway).

use pier_proto::store::StoredMessage;
use prost::Message;
use rocksdb::Direction;

use super::MessageLog;
use crate::catalog::{Catalog, TopicEntry};
use crate::db::{keys, Batch, Cf, Db, Durability};
use crate::error::Result;

/// Keys of one message that get an index entry; RocketMQ messages carry a
/// few, and an unbounded number would make one send write without limit.
pub(crate) const MAX_KEYS_PER_MESSAGE: usize = 32;
/// Log entries the scan of pre-index messages reads at most per lookup.
const LEGACY_SCAN_BUDGET: usize = 200_000;
/// Index entries a purge deletes per write.
const DELETES_PER_WRITE: usize = 10_000;
/// The index format, recorded at first open.
const FORMAT: u32 = 1;

/// The fields of a `StoredMessage` the index needs, under the same field
/// numbers: decoding this from an encoded message skips the body without
/// copying it. Bytes rather than strings: no UTF-8 check is needed here.
#[derive(Clone, PartialEq, Message)]
struct IndexedFields {
    #[prost(bytes = "vec", tag = "4")]
    message_id: Vec<u8>,
    #[prost(bytes = "vec", repeated, tag = "6")]
    keys: Vec<Vec<u8>>,
    #[prost(int64, tag = "11")]
    stored_at_ms: i64,
    #[prost(int64, tag = "20")]
    visible_since_ms: i64,
}

/// The index entries of one message, before its offset is known.
#[derive(Default)]
pub(crate) struct Entries {
    prefixes: Vec<Vec<u8>>,
    entered_ms: i64,
}

impl Entries {
    /// The entries of an encoded message appended to `topic_id`. A value
    /// that does not decode (never one the store encoded) gets none.
    pub(crate) fn of_encoded(topic_id: u32, value: &[u8]) -> Entries {
        match IndexedFields::decode(value) {
            Ok(f) => Entries::build(
                topic_id,
                &f.message_id,
                f.keys.iter().map(Vec::as_slice),
                f.stored_at_ms.max(f.visible_since_ms),
            ),
            Err(_) => Entries::default(),
        }
    }

    /// The entries of a stored message of `topic_id` (to delete them).
    pub(crate) fn of(topic_id: u32, m: &StoredMessage) -> Entries {
        Entries::build(
            topic_id,
            m.message_id.as_bytes(),
            m.keys.iter().map(String::as_bytes),
            entered_ms(m),
        )
    }

    fn build<'a>(
        topic_id: u32,
        id: &[u8],
        message_keys: impl Iterator<Item = &'a [u8]>,
        entered_ms: i64,
    ) -> Entries {
        let mut prefixes = Vec::new();
        if !id.is_empty() {
            prefixes.push(keys::index_prefix(keys::INDEX_ID, topic_id, id));
        }
        for k in message_keys
            .filter(|k| !k.is_empty())
            .take(MAX_KEYS_PER_MESSAGE)
        {
            prefixes.push(keys::index_prefix(keys::INDEX_KEY, topic_id, k));
        }
        // A key given twice (or two sharing their first bytes) is one entry.
        prefixes.sort_unstable();
        prefixes.dedup();
        Entries {
            prefixes,
            entered_ms,
        }
    }

    /// The entry keys for the message at (queue, offset).
    pub(crate) fn keys(&self, queue: u32, offset: u64) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.prefixes
            .iter()
            .map(move |p| keys::index_key(p.clone(), self.entered_ms, queue, offset))
    }

    /// Adds the deletion of these entries to `batch`.
    pub(crate) fn delete(&self, batch: &mut Batch<'_>, queue: u32, offset: u64) {
        for k in self.keys(queue, offset) {
            batch.delete(Cf::Index, k);
        }
    }
}

/// When a message entered its queue's log (what time ranges and retention
/// count from).
pub(crate) fn entered_ms(m: &StoredMessage) -> i64 {
    m.stored_at_ms.max(m.visible_since_ms)
}

/// At the first open of a data directory with the index: records each
/// queue's end as its watermark (what is below has no entries). Runs before
/// anything can append.
pub(crate) fn prepare(db: &Db, catalog: &Catalog) -> Result<()> {
    if db.get(Cf::Index, keys::INDEX_VERSION_KEY)?.is_some() {
        return Ok(());
    }
    let mut batch = db.batch()?;
    let mut old = 0u64;
    for topic in catalog.topics() {
        for (q, ql) in (0u32..).zip(&topic.queues) {
            if ql.committed() > ql.min_offset() {
                old += ql.committed() - ql.min_offset();
                batch.put(
                    Cf::Index,
                    keys::index_watermark_key(topic.id, q),
                    ql.committed().to_be_bytes(),
                );
            }
        }
    }
    batch.put(Cf::Index, keys::INDEX_VERSION_KEY, FORMAT.to_be_bytes());
    db.write(batch, Durability::Synced, "starting the message index")?;
    if old > 0 {
        tracing::info!(
            messages = old,
            "message index started: messages stored before it are found by a scan"
        );
    }
    Ok(())
}

/// What a lookup searches by.
#[derive(Debug, Clone, Copy)]
pub(crate) enum By<'a> {
    Key(&'a str),
    Id(&'a str),
}

/// A lookup: by key or id, messages that entered the log in
/// `[since_ms, until_ms)` (0: unbounded), at most `limit`.
pub(crate) struct Lookup<'a> {
    pub(crate) by: By<'a>,
    pub(crate) since_ms: i64,
    pub(crate) until_ms: i64,
    pub(crate) limit: usize,
}

impl Lookup<'_> {
    fn in_range(&self, entered: i64) -> bool {
        entered >= self.since_ms && (self.until_ms <= 0 || entered < self.until_ms)
    }

    fn matches(&self, m: &StoredMessage) -> bool {
        match self.by {
            By::Key(k) => m.keys.iter().any(|mk| mk == k),
            By::Id(id) => m.message_id == id,
        }
    }
}

impl MessageLog {
    /// The messages of `topic` that `lookup` names and `also` accepts,
    /// oldest first, and whether more matched than `limit` (or the scan of
    /// pre-index messages stopped at its budget).
    pub(crate) fn lookup(
        &self,
        topic: &TopicEntry,
        lookup: &Lookup<'_>,
        also: impl Fn(&StoredMessage) -> bool,
    ) -> Result<(Vec<StoredMessage>, bool)> {
        let accept = |m: &StoredMessage| lookup.matches(m) && also(m);
        let (mut found, mut truncated) = self.scan_unindexed(topic, lookup, &accept)?;
        let (tag, value) = match lookup.by {
            By::Key(k) => (keys::INDEX_KEY, k),
            By::Id(id) => (keys::INDEX_ID, id),
        };
        let prefix = keys::index_prefix(tag, topic.id, value.as_bytes());
        let from = keys::index_time_bound(&prefix, lookup.since_ms);
        let upper = if lookup.until_ms > 0 {
            keys::index_time_bound(&prefix, lookup.until_ms)
        } else {
            // Times are at most i64::MAX, so every entry's next byte is
            // below 0xff.
            let mut end = prefix.clone();
            end.push(0xff);
            end
        };
        for item in self
            .db
            .scan(Cf::Index, &from, Direction::Forward, Some(upper))?
        {
            let (k, _) = item?;
            let Some((_, queue, offset)) = keys::index_position(&k) else {
                continue;
            };
            if found.len() >= lookup.limit {
                truncated = true;
                break;
            }
            // An entry outlives its message only if a delete path missed
            // it; such an entry is passed over.
            if let Some(m) = self.read(topic, queue, offset)? {
                if accept(&m) {
                    found.push(m);
                }
            }
        }
        Ok((found, truncated))
    }

    /// The matching messages stored before the index existed (below each
    /// queue's watermark), read entry by entry within a budget.
    fn scan_unindexed(
        &self,
        topic: &TopicEntry,
        lookup: &Lookup<'_>,
        accept: &impl Fn(&StoredMessage) -> bool,
    ) -> Result<(Vec<StoredMessage>, bool)> {
        let mut found = Vec::new();
        let mut budget = LEGACY_SCAN_BUDGET;
        let mut truncated = false;
        'queues: for (q, ql) in (0u32..).zip(&topic.queues) {
            let Some(mark) = self.watermark(topic.id, q)? else {
                continue;
            };
            for item in self.read_range(topic, q, ql.min_offset(), mark)? {
                if budget == 0 || found.len() >= lookup.limit {
                    truncated = true;
                    break 'queues;
                }
                budget -= 1;
                let (_, m) = item?;
                if lookup.until_ms > 0 && entered_ms(&m) >= lookup.until_ms {
                    break;
                }
                if lookup.in_range(entered_ms(&m)) && accept(&m) {
                    found.push(m);
                }
            }
        }
        found.sort_by_key(|m| (entered_ms(m), m.queue, m.offset));
        Ok((found, truncated))
    }

    /// The offset below which a queue's messages have no index entries.
    fn watermark(&self, topic_id: u32, queue: u32) -> Result<Option<u64>> {
        Ok(self
            .db
            .get(Cf::Index, &keys::index_watermark_key(topic_id, queue))?
            .and_then(|v| keys::decode_u64(&v)))
    }
}

/// Deletes every index entry of `topic` below `ends[queue]` (after a
/// purge), reading the topic's index entries, not its messages, and
/// writing at most [`DELETES_PER_WRITE`] deletions at a time.
pub(crate) fn delete_below(db: &Db, topic: &TopicEntry, ends: &[u64]) -> Result<()> {
    let mut batch = db.batch()?;
    let mut pending = 0;
    for tag in [keys::INDEX_KEY, keys::INDEX_ID] {
        let (from, to) = keys::index_topic_range(tag, topic.id);
        for item in db.scan(Cf::Index, &from, Direction::Forward, Some(to))? {
            let (k, _) = item?;
            let below = keys::index_position(&k)
                .is_some_and(|(_, q, o)| ends.get(q as usize).is_some_and(|end| o < *end));
            if below {
                batch.delete(Cf::Index, &k);
                pending += 1;
            }
            if pending == DELETES_PER_WRITE {
                let full = std::mem::replace(&mut batch, db.batch()?);
                db.write(full, Durability::Buffered, "deleting purged index entries")?;
                pending = 0;
            }
        }
    }
    if pending > 0 {
        db.write(batch, Durability::Buffered, "deleting purged index entries")?;
    }
    Ok(())
}

/// Adds to `batch` the deletion of a purged topic's watermarks: none of
/// the messages they mark is left.
pub(crate) fn delete_watermarks(batch: &mut Batch<'_>, topic: &TopicEntry) {
    for q in (0u32..).take(topic.queues.len()) {
        batch.delete(Cf::Index, keys::index_watermark_key(topic.id, q));
    }
}

/// Adds to `batch` the deletion of every index entry of a deleted topic.
pub(crate) fn delete_topic(batch: &mut Batch<'_>, topic_id: u32) {
    for (from, to) in keys::index_topic_ranges(topic_id) {
        batch.delete_range(Cf::Index, from, to);
    }
}

/// Counts the key and id entries (a test hook: see `Store::index_entries`).
pub(crate) fn count(db: &Db) -> Result<u64> {
    let mut n = 0;
    for tag in [keys::INDEX_KEY, keys::INDEX_ID] {
        for item in db.scan_prefix(Cf::Index, &[tag])? {
            item?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
