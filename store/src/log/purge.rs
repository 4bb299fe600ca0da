//! Purging a topic: every message stored in its queues is deleted at once
//! (an operator's "empty this topic"). The topic, its queues' offsets and
//! its groups' positions stay; a group's cursor below the new lowest offset
//! reads from there, and deliveries of purged messages end when they come
//! due (the message is gone). Delay messages not due yet and half messages
//! of open transactions are not in the log and are left.

use std::sync::atomic::Ordering;

use super::{index, MessageLog};
use crate::catalog::TopicEntry;
use crate::db::{keys, Cf, Durability};
use crate::error::Result;

impl MessageLog {
    /// Deletes every message `topic` holds; returns how many there were.
    pub(crate) fn purge(&self, topic: &TopicEntry) -> Result<u64> {
        let mut batch = self.db.batch()?;
        let mut bounds = Vec::with_capacity(topic.queues.len());
        let mut ends = Vec::with_capacity(topic.queues.len());
        let mut purged = 0;
        for (q, ql) in (0u32..).zip(&topic.queues) {
            // Appends committed after this read are newer than the purge
            // and stay.
            let end = ql.committed();
            purged += ql.stored();
            batch.delete_range(
                Cf::Log,
                keys::log_key(topic.id, q, 0),
                keys::log_key(topic.id, q, end),
            );
            bounds.push((ql, end));
            ends.push(end);
        }
        index::delete_watermarks(&mut batch, topic);
        self.db
            .write(batch, Durability::Synced, "purging a topic's messages")?;
        for (ql, end) in bounds {
            ql.min_offset.fetch_max(end, Ordering::AcqRel);
        }
        // Then the purged messages' index entries, in writes of bounded
        // size (a large topic has millions). A crash in between leaves
        // entries whose messages are gone: lookups pass over them, and the
        // topic's next purge or its deletion removes them.
        index::delete_below(&self.db, topic, &ends)?;
        tracing::info!(topic = %topic.topic.name, purged, "topic purged");
        Ok(purged)
    }
}
