//! Resetting a group's position on a topic (an operator rewinding a
//! consumer deployed with a bug, or skipping a backlog): each queue's
//! cursor moves to the oldest stored message, past the newest, or to the
//! first message stored at or after a time (RocketMQ's
//! `resetOffsetByTime`).
//!
//! Messages the group holds in flight (or parked behind their FIFO message
//! group) on those queues would be orphaned by the move, so the reset is
//! refused while there are any ([`StoreError::GroupBusy`]) unless forced,
//! which ends those deliveries: their receipt handles become stale.

use pier_proto::admin::{QueueReset, ResetOffsetRequest, ResetOffsetResponse, ResetTo};

use super::Consumption;
use crate::catalog::TopicEntry;
use crate::error::{Result, StoreError};

impl Consumption {
    /// Moves a group's cursors on a topic; see the module comment.
    pub(crate) async fn reset(&self, req: ResetOffsetRequest) -> Result<ResetOffsetResponse> {
        let group = self.catalog.group(&req.group)?;
        let topic = self.catalog.topic(&req.topic)?;
        let to = ResetTo::try_from(req.to).unwrap_or(ResetTo::Unspecified);
        if to == ResetTo::Unspecified {
            return Err(StoreError::invalid(
                "say where to reset to: the oldest message, the newest, or a timestamp",
            ));
        }
        let nq = topic.queues.len() as u32;
        let queues: Vec<u32> = match req.queue {
            Some(q) if q < nq => vec![q],
            Some(q) => {
                return Err(StoreError::invalid(format!(
                    "topic {} has queues 0 to {}, not {q}",
                    topic.topic.name,
                    nq.saturating_sub(1)
                )))
            }
            None => (0..nq).collect(),
        };
        // Targets come first, outside the subscription's lock: finding a
        // time reads the log.
        let mut targets = Vec::with_capacity(queues.len());
        for &q in &queues {
            let Some(ql) = topic.queues.get(q as usize) else {
                continue;
            };
            let target = match to {
                ResetTo::Oldest => ql.min_offset(),
                ResetTo::Newest => ql.committed(),
                _ => self.first_stored_since(&topic, q, req.timestamp_ms)?,
            };
            targets.push((q, target));
        }
        let sub = self.subscription(&group, &topic)?;
        let (outcome, written) = self.change(&sub, |st| {
            st.ensure_queues(nq as usize);
            let held: u64 = queues.iter().map(|&q| st.held_in(q)).sum();
            if held > 0 && !req.force {
                return Err(StoreError::GroupBusy {
                    group: group.group.name.clone(),
                    topic: topic.topic.name.clone(),
                    inflight: held,
                });
            }
            let mut out = ResetOffsetResponse::default();
            for &(q, target) in &targets {
                let from = st.cursor(q as usize);
                out.dropped_inflight += st.reset_queue(q, target);
                out.queues.push(QueueReset {
                    queue: q,
                    from_offset: from,
                    to_offset: target,
                });
            }
            Ok(out)
        });
        let out = outcome?;
        written?.durable().await?;
        // Long polls of the group may have messages again.
        topic.notify.notify_waiters();
        tracing::info!(group = %group.group.name, topic = %topic.topic.name, to = to.as_str_name(), timestamp_ms = req.timestamp_ms, queues = out.queues.len(), dropped_inflight = out.dropped_inflight, "consumer group position reset");
        Ok(out)
    }

    /// The offset of the first message of a queue that entered its log at
    /// or after `ts` (or the queue's end). Entry times rise with offsets,
    /// so a binary search; offsets with no entry (deleted) are stepped over.
    pub(super) fn first_stored_since(
        &self,
        topic: &TopicEntry,
        queue: u32,
        ts: i64,
    ) -> Result<u64> {
        let Some(ql) = topic.queues.get(queue as usize) else {
            return Ok(0);
        };
        let (mut lo, mut hi) = (ql.min_offset(), ql.committed());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let first = self.log.read_range(topic, queue, mid, hi)?.next();
            match first {
                None => hi = mid,
                Some(item) => {
                    let (offset, m) = item?;
                    let entered = m.stored_at_ms.max(m.visible_since_ms);
                    if entered < ts {
                        lo = offset + 1;
                    } else {
                        // Nothing is stored between mid and offset.
                        hi = offset;
                    }
                }
            }
        }
        Ok(lo)
    }
}
