//! Finding messages of a topic by id, by key or by time range ("did
//! message X arrive, and who consumed it?"), with what each consumer group
//! of the topic did with each one: from its cursor and in-flight set, and
//! its dead-letter queue.
//!
//! By id or key: the message index (`log/index`), a prefix seek in entry
//! time order (messages stored before the index existed: a bounded scan).
//! By time range alone: each queue is entered at its first message stored
//! at `since_ms` (binary search by store time, which grows with the offset
//! within a queue) and read up to `until_ms`, at most `limit` per queue.

use std::sync::Arc;

use pier_proto::admin::{
    FindMessagesRequest, FindMessagesResponse, FoundMessage, GroupMessageState,
};
use pier_proto::store::StoredMessage;

use super::{state, Consumption, Subscription};
use crate::catalog::{GroupEntry, TopicEntry};
use crate::error::{Result, StoreError};
use crate::log::index::{entered_ms, By, Lookup};

const DEFAULT_LIMIT: usize = 32;
const MAX_LIMIT: usize = 1000;
const DEFAULT_BODY_BYTES: usize = 1024;

impl Consumption {
    /// Finds messages; see the module comment.
    pub(crate) fn find(&self, req: FindMessagesRequest) -> Result<FindMessagesResponse> {
        if req.message_id.is_empty() && req.key.is_empty() && req.since_ms <= 0 && req.until_ms <= 0
        {
            return Err(StoreError::invalid(
                "say which messages to find: a message id, a key or a time range",
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
        let by = if !req.message_id.is_empty() {
            Some(By::Id(&req.message_id))
        } else if !req.key.is_empty() {
            Some(By::Key(&req.key))
        } else {
            None
        };
        let (found, truncated) = match by {
            Some(by) => {
                let lookup = Lookup {
                    by,
                    since_ms: req.since_ms.max(0),
                    until_ms: req.until_ms.max(0),
                    limit,
                };
                // With both an id and a key, the id seeks and the key filters.
                self.log.lookup(&topic, &lookup, |m| {
                    req.key.is_empty() || m.keys.contains(&req.key)
                })?
            }
            None => self.stored_between(&topic, req.since_ms, req.until_ms, limit)?,
        };
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

    /// The first `limit` messages of `topic` that entered its log in
    /// `[since_ms, until_ms)` (0: unbounded), oldest first; true when there
    /// were more.
    fn stored_between(
        &self,
        topic: &TopicEntry,
        since_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> Result<(Vec<StoredMessage>, bool)> {
        let mut found = Vec::new();
        for (q, ql) in (0u32..).zip(&topic.queues) {
            let from = if since_ms > 0 {
                self.first_stored_since(topic, q, since_ms)?
            } else {
                ql.min_offset()
            };
            // One more than the limit tells whether there were more.
            for item in self
                .log
                .read_range(topic, q, from, ql.committed())?
                .take(limit + 1)
            {
                let (_, m) = item?;
                if until_ms > 0 && entered_ms(&m) >= until_ms {
                    break;
                }
                found.push(m);
            }
        }
        found.sort_by_key(|m| (entered_ms(m), m.queue, m.offset));
        let truncated = found.len() > limit;
        found.truncate(limit);
        Ok((found, truncated))
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

    /// Whether `%DLQ%<group>` holds the message with this original id (a
    /// dead letter keeps its id: an index seek).
    fn dead_lettered(&self, group: &GroupEntry, message_id: &str) -> Result<bool> {
        let Ok(dlq) = self.catalog.topic(&format!("%DLQ%{}", group.group.name)) else {
            return Ok(false);
        };
        let lookup = Lookup {
            by: By::Id(message_id),
            since_ms: 0,
            until_ms: 0,
            limit: 1,
        };
        let (hits, _) = self
            .log
            .lookup(&dlq, &lookup, |d| d.dlq_origin_message_id == message_id)?;
        Ok(!hits.is_empty())
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
