//! Finding messages of a topic by id or key ("did message X arrive, and who
//! consumed it?"), with what each consumer group of the topic did with each
//! one: from its cursor and in-flight set, and its dead-letter queue.
//!
//! There is no id or key index yet: the topic's queues are scanned from the
//! first message stored at `since_ms` (binary search by store time), within
//! a budget of entries per call.

use std::sync::Arc;

use pier_proto::admin::{
    FindMessagesRequest, FindMessagesResponse, FoundMessage, GroupMessageState,
};
use pier_proto::store::StoredMessage;

use super::{state, Consumption, Subscription};
use crate::catalog::{GroupEntry, TopicEntry};
use crate::error::{Result, StoreError};

/// Log entries one call reads at most, over all queues.
const SCAN_BUDGET: usize = 200_000;
/// Dead-letter entries read at most per group, to tell dead-lettered from acked.
const DLQ_BUDGET: usize = 100_000;
const DEFAULT_LIMIT: usize = 32;
const MAX_LIMIT: usize = 1000;
const DEFAULT_BODY_BYTES: usize = 1024;

impl Consumption {
    /// Finds messages; see the module comment.
    pub(crate) fn find(&self, req: FindMessagesRequest) -> Result<FindMessagesResponse> {
        if req.message_id.is_empty() && req.key.is_empty() {
            return Err(StoreError::invalid(
                "say which message to find: a message id or a key",
            ));
        }
        let topic = self.catalog.topic(&req.topic)?;
        let limit = match req.limit as usize {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        let body_cap = match req.max_body_bytes as usize {
            0 => DEFAULT_BODY_BYTES,
            n => n,
        };
        let mut found = Vec::new();
        let mut budget = SCAN_BUDGET;
        let mut truncated = false;
        'queues: for (q, ql) in (0u32..).zip(&topic.queues) {
            let from = if req.since_ms > 0 {
                self.first_stored_since(&topic, q, req.since_ms)?
            } else {
                ql.min_offset()
            };
            for item in self.log.read_range(&topic, q, from, ql.committed())? {
                if budget == 0 {
                    truncated = true;
                    break 'queues;
                }
                budget -= 1;
                let (_, m) = item?;
                if req.until_ms > 0 && m.stored_at_ms.max(m.visible_since_ms) >= req.until_ms {
                    break;
                }
                let hit = (req.message_id.is_empty() || m.message_id == req.message_id)
                    && (req.key.is_empty() || m.keys.contains(&req.key));
                if hit {
                    found.push(m);
                    if found.len() >= limit {
                        truncated = true;
                        break 'queues;
                    }
                }
            }
        }
        let groups = self.groups_of(&topic)?;
        let now = self.clock.now_ms();
        let mut messages = Vec::with_capacity(found.len());
        for m in found {
            let mut states = Vec::new();
            for (g, sub) in &groups {
                if !m.redrive_group.is_empty() && m.redrive_group != g.group.name {
                    continue;
                }
                states.push(self.state_of(g, sub, &m, now)?);
            }
            messages.push(describe(m, body_cap, states));
        }
        Ok(FindMessagesResponse {
            messages,
            truncated,
        })
    }

    /// The groups that consume `topic` (state stored, or loaded in memory).
    fn groups_of(&self, topic: &TopicEntry) -> Result<Vec<(Arc<GroupEntry>, Arc<Subscription>)>> {
        let mut out = Vec::new();
        for g in self.catalog.groups() {
            let loaded = self.subs.lock().contains_key(&state::SubKey {
                group_id: g.id,
                topic_id: topic.id,
            });
            if loaded || state::topics_of_group(&self.db, g.id)?.contains(&topic.id) {
                let sub = self.subscription(&g, topic)?;
                out.push((g, sub));
            }
        }
        Ok(out)
    }

    /// What `group` did with `m`.
    fn state_of(
        &self,
        group: &GroupEntry,
        sub: &Subscription,
        m: &StoredMessage,
        now: i64,
    ) -> Result<GroupMessageState> {
        let mut s = GroupMessageState {
            group: group.group.name.clone(),
            ..Default::default()
        };
        let consumed = {
            let st = sub.state.lock();
            if let Some(e) = st.inflight(m.queue, m.offset) {
                s.attempt = e.attempt;
                s.visible_at_ms = e.visible_at_ms;
                s.state = if e.visible_at_ms <= now && !e.moving {
                    "ready"
                } else {
                    "inflight"
                }
                .into();
                false
            } else if m.offset >= st.cursor(m.queue as usize)
                || st.lanes.is_parked(m.queue, m.offset)
            {
                s.state = "ready".into();
                false
            } else {
                true
            }
        };
        if consumed {
            s.state = if self.dead_lettered(group, &m.message_id)? {
                "dead-lettered"
            } else {
                "acked"
            }
            .into();
        }
        Ok(s)
    }

    /// Whether `%DLQ%<group>` holds the message with this original id.
    fn dead_lettered(&self, group: &GroupEntry, message_id: &str) -> Result<bool> {
        let Ok(dlq) = self.catalog.topic(&format!("%DLQ%{}", group.group.name)) else {
            return Ok(false);
        };
        for (q, ql) in (0u32..).zip(&dlq.queues) {
            let entries = self
                .log
                .read_range(&dlq, q, ql.min_offset(), ql.committed())?;
            for item in entries.take(DLQ_BUDGET) {
                let (_, d) = item?;
                if d.dlq_origin_message_id == message_id {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// The answer for one message, its body cut to `body_cap` bytes.
fn describe(m: StoredMessage, body_cap: usize, groups: Vec<GroupMessageState>) -> FoundMessage {
    let body_size = m.body.len() as u64;
    let mut body = m.body;
    body.truncate(body_cap);
    FoundMessage {
        topic: m.topic,
        queue: m.queue,
        offset: m.offset,
        message_id: m.message_id,
        tag: m.tag.unwrap_or_default(),
        keys: m.keys,
        properties: m.user_properties,
        body,
        body_size,
        born_at_ms: m.born_at_ms,
        stored_at_ms: m.stored_at_ms,
        message_group: m.message_group,
        groups,
    }
}
