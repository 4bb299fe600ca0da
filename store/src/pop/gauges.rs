//! How far behind a group is on a topic: what `describe_group` answers and
//! what the metrics read when scraped. From the state in memory (cursors,
//! in-flight sets, queue bounds), plus one point read per queue with a
//! backlog for its oldest message's time; never a scan. The gauges report
//! the subscriptions loaded in memory: one nobody consumed since the start
//! is not reported until it is.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Consumption, Subscription};
use crate::catalog::TopicEntry;

/// One subscription's backlog.
pub(crate) struct Backlog {
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

/// A subscription's backlog with its names, for the gauges.
pub(crate) struct SubGauge {
    pub(crate) topic: String,
    pub(crate) group: String,
    pub(crate) backlog: Backlog,
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
            if let (Some(group), Some(topic)) =
                (groups.get(&key.group_id), topics.get(&key.topic_id))
            {
                out.push(SubGauge {
                    topic: topic.topic.name.clone(),
                    group: group.clone(),
                    backlog: self.measure(topic, &sub, now),
                });
            }
        }
        out
    }

    /// Measures one subscription's backlog at `now`.
    pub(crate) fn measure(&self, topic: &TopicEntry, sub: &Subscription, now: i64) -> Backlog {
        // Under the lock only memory is read: per queue, where the oldest
        // undelivered and the oldest unacked messages are.
        let (ready, inflight, starts) = {
            let st = sub.state.lock();
            let oldest = st.oldest_inflight();
            let (expired, inflight) = st.inflight_counts(now);
            let mut ready = expired + st.lanes.parked_len() as u64;
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
            (ready, inflight, starts)
        };
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
        Backlog {
            ready,
            inflight,
            queueing_ms: queueing_ms.max(0),
            lag_ms: lag_ms.max(0),
        }
    }

    /// When the message at (queue, offset) became visible, if still stored.
    fn visible_since(&self, topic: &TopicEntry, queue: u32, offset: u64) -> Option<i64> {
        let m = self.log.read(topic, queue, offset).ok()??;
        Some(if m.visible_since_ms > 0 {
            m.visible_since_ms
        } else {
            m.stored_at_ms
        })
    }
}
