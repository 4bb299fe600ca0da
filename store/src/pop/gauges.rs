//! The backlog of every subscription, as the metrics read it when scraped:
//! from the state in memory (cursors, in-flight sets, queue bounds), plus
//! one point read per queue with a backlog for its oldest message's time.
//! No scan: a subscription not loaded since the start (nobody consumed it
//! yet) is not reported.

use std::collections::HashMap;
use std::sync::Arc;

use pier_proto::store::StoredMessage;

use super::Consumption;
use crate::catalog::TopicEntry;

/// One subscription's backlog.
pub(crate) struct SubGauge {
    pub(crate) topic: String,
    pub(crate) group: String,
    /// Messages the group can receive now (new, expired in flight, parked
    /// FIFO messages).
    pub(crate) ready: u64,
    /// Messages delivered and not acked yet, still invisible.
    pub(crate) inflight: u64,
    /// How long the oldest message not delivered yet has waited, in ms.
    pub(crate) queueing_ms: i64,
    /// How long the oldest message not acked yet has waited, in ms.
    pub(crate) lag_ms: i64,
}

impl Consumption {
    /// Returns the backlog of every loaded subscription at `now`.
    pub(crate) fn gauges(&self, now: i64) -> Vec<SubGauge> {
        let subs: Vec<_> = self
            .subs
            .lock()
            .iter()
            .map(|(k, s)| (*k, s.clone()))
            .collect();
        let groups: HashMap<u32, String> = self
            .catalog
            .groups()
            .iter()
            .map(|g| (g.id, g.group.name.clone()))
            .collect();
        let topics: HashMap<u32, Arc<TopicEntry>> = self
            .catalog
            .topics()
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        let mut out = Vec::with_capacity(subs.len());
        for (key, sub) in subs {
            let (Some(group), Some(topic)) = (groups.get(&key.group_id), topics.get(&key.topic_id))
            else {
                continue;
            };
            // Under the lock only memory is read: per queue, where the
            // oldest undelivered and the oldest unacked messages are.
            let (mut ready, expired, inflight, starts) = {
                let st = sub.state.lock();
                let oldest = st.oldest_inflight();
                let (expired, inflight) = st.inflight_counts(now);
                let mut ready = st.lanes.parked_len() as u64;
                let mut starts = Vec::new();
                for (q, ql) in topic.queues.iter().enumerate() {
                    let end = ql.committed();
                    let next = st.cursor(q).max(ql.min_offset());
                    ready += end.saturating_sub(next);
                    let undelivered = (next < end).then_some(next);
                    let unacked = match (oldest.get(&(q as u32)), undelivered) {
                        (Some(&o), Some(n)) => Some(o.min(n)),
                        (Some(&o), None) => Some(o),
                        (None, n) => n,
                    };
                    starts.push((q as u32, undelivered, unacked));
                }
                (ready, expired, inflight, starts)
            };
            ready += expired;
            let mut queueing_ms = 0;
            let mut lag_ms = 0;
            for (q, undelivered, unacked) in starts {
                if let Some(t) = undelivered.and_then(|o| self.visible_since(topic, q, o)) {
                    queueing_ms = queueing_ms.max(now - t);
                }
                if let Some(t) = unacked.and_then(|o| self.visible_since(topic, q, o)) {
                    lag_ms = lag_ms.max(now - t);
                }
            }
            out.push(SubGauge {
                topic: topic.topic.name.clone(),
                group: group.clone(),
                ready,
                inflight,
                queueing_ms: queueing_ms.max(0),
                lag_ms: lag_ms.max(0),
            });
        }
        out
    }

    /// When the message at (queue, offset) became visible, if still stored.
    fn visible_since(&self, topic: &TopicEntry, queue: u32, offset: u64) -> Option<i64> {
        let m: StoredMessage = self.log.read(topic, queue, offset).ok()??;
        Some(if m.visible_since_ms > 0 {
            m.visible_since_ms
        } else {
            m.stored_at_ms
        })
    }
}
