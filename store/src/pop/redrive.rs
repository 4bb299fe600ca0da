//! Dead-letter redrive: messages of `%DLQ%<group>` go back to the topic
//! each came from (`dlq_origin_topic`, kept by [`super::dlq`]), as new
//! messages that only `<group>` receives (`redrive_group`; other groups'
//! scans pass over them), so delivery attempts start again at 1.
//!
//! A move appends the message to its topic and deletes it from the DLQ in
//! the same group commit: a crash leaves it in one place, never both or
//! neither. A copy leaves the DLQ entry. Calls are bounded (`max_messages`)
//! and resumable (`next_offset`), and paced to `rate` messages a second.

use std::time::Duration;

use pier_proto::admin::{RedriveDlqRequest, RedriveDlqResponse, TopicType};
use pier_proto::store::{MessageKind, StoredMessage};
use prost::Message;

use super::Consumption;
use crate::catalog::{GroupEntry, TopicEntry};
use crate::db::{keys, Cf};
use crate::error::{Result, StoreError};
use crate::fifo;
use crate::log::Writes;

/// Messages one call sends back when the request names no bound.
const DEFAULT_MAX_MESSAGES: u64 = 1000;
/// Most messages one call may send back.
const MAX_MESSAGES: u64 = 100_000;
/// Matching messages read from the DLQ at a time.
const READ_BATCH: u64 = 64;

/// Whether a dead-lettered message matches every filter the request sets.
fn wanted(req: &RedriveDlqRequest, m: &StoredMessage) -> bool {
    let id = if m.dlq_origin_message_id.is_empty() {
        &m.message_id
    } else {
        &m.dlq_origin_message_id
    };
    (req.message_id.is_empty() || *id == req.message_id)
        && (req.key.is_empty() || m.keys.contains(&req.key))
        && (req.tag.is_empty() || m.tag.as_deref() == Some(req.tag.as_str()))
        && (req.since_ms == 0 || m.stored_at_ms >= req.since_ms)
        && (req.until_ms == 0 || m.stored_at_ms < req.until_ms)
}

/// The kind a message sent back to `topic` must have to be accepted there
/// (the DLQ stores every message as NORMAL).
fn kind_for(topic: &TopicEntry) -> MessageKind {
    match topic.topic_type() {
        TopicType::Fifo => MessageKind::Fifo,
        TopicType::Delay => MessageKind::Delay,
        TopicType::Transaction => MessageKind::Transaction,
        TopicType::Normal | TopicType::Unspecified => MessageKind::Normal,
    }
}

impl Consumption {
    /// Sends messages of a group's DLQ back to their topics; see the
    /// module comment.
    pub(crate) async fn redrive(&self, req: RedriveDlqRequest) -> Result<RedriveDlqResponse> {
        let group = self.catalog.group(&req.group)?;
        if req.since_ms > 0 && req.until_ms > 0 && req.until_ms <= req.since_ms {
            return Err(StoreError::invalid(
                "the time range is empty: until must be later than since",
            ));
        }
        let mut out = RedriveDlqResponse {
            next_offset: req.from_offset,
            ..Default::default()
        };
        let dlq = match self.catalog.topic(&format!("%DLQ%{}", group.group.name)) {
            Ok(t) => t,
            // Nothing was ever dead-lettered: nothing to do.
            Err(StoreError::TopicNotFound { .. }) => return Ok(out),
            Err(e) => return Err(e),
        };
        let Some(ql) = dlq.queues.first() else {
            return Ok(out);
        };
        let max = match u64::from(req.max_messages) {
            0 => DEFAULT_MAX_MESSAGES,
            n => n.min(MAX_MESSAGES),
        };
        let end = ql.committed();
        let mut cursor = req.from_offset.max(ql.min_offset());
        let started = tokio::time::Instant::now();
        while cursor < end && out.redriven + out.skipped < max {
            let room = (max - out.redriven - out.skipped).min(READ_BATCH);
            let mut batch = Vec::new();
            let mut scanned_to = end;
            for item in self.log.read_range(&dlq, 0, cursor, end)? {
                let (offset, m) = item?;
                if batch.len() as u64 >= room {
                    scanned_to = offset;
                    break;
                }
                if wanted(&req, &m) {
                    batch.push((offset, m));
                }
            }
            cursor = scanned_to;
            for (offset, m) in batch {
                if req.rate > 0 {
                    // The n-th message goes n/rate seconds after the start.
                    let n = out.redriven as f64;
                    let due = started + Duration::from_secs_f64(n / f64::from(req.rate));
                    tokio::time::sleep_until(due).await;
                }
                if self.send_back(&group, &dlq, offset, m, req.copy).await? {
                    out.redriven += 1;
                } else {
                    out.skipped += 1;
                }
            }
        }
        out.next_offset = cursor;
        out.more = cursor < end;
        if out.redriven > 0 {
            tracing::info!(group = %group.group.name, redriven = out.redriven, skipped = out.skipped, copy = req.copy, "dead letters sent back");
        }
        Ok(out)
    }

    /// Appends one dead-lettered message to its original topic for `group`
    /// only, deleting it from the DLQ in the same write unless `copy`.
    /// Returns false when that topic no longer exists (the message stays).
    async fn send_back(
        &self,
        group: &GroupEntry,
        dlq: &TopicEntry,
        offset: u64,
        mut m: StoredMessage,
        copy: bool,
    ) -> Result<bool> {
        let origin = match self.catalog.topic(&m.dlq_origin_topic) {
            Ok(t) => t,
            Err(StoreError::TopicNotFound { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        // Read before the message changes: its index entries in the DLQ.
        let dlq_entries = crate::log::index::Entries::of(dlq.id, &m);
        if !m.dlq_origin_message_id.is_empty() {
            m.message_id = std::mem::take(&mut m.dlq_origin_message_id);
        }
        m.dlq_origin_topic.clear();
        m.redrive_group = group.group.name.clone();
        let kind = kind_for(&origin);
        m.kind = kind as i32;
        let nq = origin.queues.len().max(1) as u32;
        let queue = if kind == MessageKind::Fifo && !m.message_group.is_empty() {
            fifo::queue_of(&m.message_group, nq)
        } else {
            (offset % u64::from(nq)) as u32
        };
        m.topic.clear();
        m.queue = 0;
        m.offset = 0;
        m.stored_at_ms = self.clock.now_ms();
        m.visible_since_ms = 0;
        m.deliver_at_ms = 0;
        let deletes = if copy {
            Vec::new()
        } else {
            // The dead letter's index entries leave with it.
            std::iter::once((Cf::Log, keys::log_key(dlq.id, 0, offset).to_vec()))
                .chain(dlq_entries.keys(0, offset).map(|k| (Cf::Index, k)))
                .collect()
        };
        let writes = Writes {
            items: vec![(queue, m.encode_to_vec())],
            puts: Vec::new(),
            deletes,
        };
        self.log.write(origin, writes).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_combine() {
        let m = StoredMessage {
            message_id: "DLQ-ID".into(),
            dlq_origin_message_id: "ORIG".into(),
            keys: vec!["k1".into(), "k2".into()],
            tag: Some("TagA".into()),
            stored_at_ms: 1_000,
            ..Default::default()
        };
        let all = RedriveDlqRequest::default();
        assert!(wanted(&all, &m));
        let by = |f: fn(&mut RedriveDlqRequest)| {
            let mut r = RedriveDlqRequest::default();
            f(&mut r);
            wanted(&r, &m)
        };
        assert!(by(|r| r.message_id = "ORIG".into()));
        assert!(!by(|r| r.message_id = "DLQ-ID".into()));
        assert!(by(|r| r.key = "k2".into()));
        assert!(!by(|r| r.key = "k3".into()));
        assert!(by(|r| r.tag = "TagA".into()));
        assert!(!by(|r| r.tag = "TagB".into()));
        assert!(by(|r| r.since_ms = 1_000));
        assert!(!by(|r| r.since_ms = 1_001));
        assert!(by(|r| r.until_ms = 1_001));
        assert!(!by(|r| r.until_ms = 1_000));
        assert!(!by(|r| {
            r.tag = "TagA".into();
            r.key = "nope".into();
        }));
    }
}
