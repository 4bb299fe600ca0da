//! Ending deliveries and changing their invisible time. A delivery
//! reference is current only for the attempt and the handle it names: an
//! ack or change of an older attempt (the message was redelivered since),
//! through a handle a ChangeInvisibleDuration replaced, of an acked
//! message, or of one being dead-lettered is refused as stale.

use std::sync::Arc;

use pier_proto::store::{ChangeInvisibleRequest, DeliveryRef};

use super::state::SubState;
use super::{stale, Consumption, Located, Subscription};
use crate::catalog::TopicEntry;
use crate::error::Result;

/// Acks one delivery: forgets it (in memory, and queued for disk). Returns
/// true when it held a FIFO message group, whose next message may now be
/// delivered.
fn ack_one(st: &mut SubState, d: &DeliveryRef) -> Result<bool> {
    match st.current(d.queue, d.offset, d.attempt, d.handle_seq) {
        Some(_) => Ok(st.forget(d.queue, d.offset)),
        None => Err(stale(d)),
    }
}

impl Consumption {
    /// Acks several deliveries; returns each one's result, in order, once
    /// the acks are durable.
    pub(crate) async fn ack_many(&self, deliveries: Vec<DeliveryRef>) -> Vec<Result<()>> {
        let mut results: Vec<Result<()>> = Vec::with_capacity(deliveries.len());
        // The entries of one AckMessage name one group and topic: gather them
        // by subscription, so each takes its lock and writes its state once.
        type Gathered = (Arc<Subscription>, Arc<TopicEntry>, Vec<usize>);
        let mut subs: Vec<Gathered> = Vec::new();
        let refs: Vec<Option<DeliveryRef>> = deliveries.into_iter().map(Some).collect();
        for (i, d) in refs.iter().enumerate() {
            match self.locate(d) {
                Ok(Located { sub, topic, .. }) => {
                    results.push(Ok(()));
                    match subs.iter_mut().find(|(s, _, _)| Arc::ptr_eq(s, &sub)) {
                        Some((_, _, idx)) => idx.push(i),
                        None => subs.push((sub, topic, vec![i])),
                    }
                }
                Err(e) => results.push(Err(e)),
            }
        }
        for (sub, topic, idx) in subs {
            let ((unlocks, acked), written) = self.change(&sub, |st| {
                let mut unlocks = false;
                let mut acked = Vec::new();
                for i in idx {
                    let Some(Some(d)) = refs.get(i) else { continue };
                    match ack_one(st, d) {
                        Ok(u) => {
                            unlocks |= u;
                            acked.push(i);
                        }
                        Err(e) => {
                            if let Some(r) = results.get_mut(i) {
                                *r = Err(e);
                            }
                        }
                    }
                }
                (unlocks, acked)
            });
            if unlocks {
                // The next message of that FIFO group may be waiting: wake
                // its long polls now rather than after this sync, so that
                // their delivery is written in the same sync or the next.
                // Nobody sees that message before these acks are durable:
                // the writer writes changes in the order they were queued,
                // and a pop answers only once its own change is written.
                topic.notify.notify_waiters();
            }
            // A failed write fails every entry it carried.
            let written = match written {
                Ok(q) => q.durable().await,
                Err(e) => Err(e),
            };
            for i in acked {
                if let Some(r) = results.get_mut(i) {
                    *r = written.clone();
                }
            }
        }
        results
    }

    /// Changes when a delivery becomes visible again; returns that time and
    /// the delivery's handle_seq (moved on unless `keep_handle`) once the
    /// change is durable.
    pub(crate) async fn change_invisible(
        &self,
        req: &ChangeInvisibleRequest,
    ) -> Result<(i64, u32)> {
        let Located { d, sub, topic, .. } = self.locate(&req.delivery)?;
        let (changed, written) = self.change(&sub, |st| {
            match st.current(d.queue, d.offset, d.attempt, d.handle_seq) {
                Some(e)
                    if req.expected_visible_at_ms == 0
                        || req.expected_visible_at_ms == e.visible_at_ms =>
                {
                    let before = e.visible_at_ms;
                    let visible_at = self
                        .clock
                        .now_ms()
                        .saturating_add(req.invisible_ms.min(i64::MAX as u64) as i64);
                    let e = st.set_invisible(d.queue, d.offset, e, visible_at, !req.keep_handle);
                    Ok((visible_at, before, e.handle_seq))
                }
                _ => Err(stale(d)),
            }
        });
        let (visible_at, before, handle_seq) = changed?;
        written?.durable().await?;
        if req.invisible_ms == 0 || visible_at < before {
            // Visible sooner than before (at once, or a push consumer's nack
            // shortening the auto-renew invisibility to a backoff): a waiting
            // long poll timed its sleep by the old deadline, so wake it to
            // look again and time it by the new one.
            topic.notify.notify_waiters();
        }
        Ok((visible_at, handle_seq))
    }

    /// Undoes deliveries that never reached a consumer (see
    /// `SubState::undeliver`). Returns how many were undone, once durable. References the store
    /// cannot place (a topic deleted since) are skipped.
    pub(crate) async fn release(&self, deliveries: Vec<DeliveryRef>) -> Result<u32> {
        let now = self.clock.now_ms();
        let refs: Vec<Option<DeliveryRef>> = deliveries.into_iter().map(Some).collect();
        // One pop's deliveries share one subscription: one lock, one write.
        let mut subs: Vec<(Arc<Subscription>, Arc<TopicEntry>, Vec<&DeliveryRef>)> = Vec::new();
        for r in &refs {
            let Ok(Located { d, sub, topic, .. }) = self.locate(r) else {
                continue;
            };
            match subs.iter_mut().find(|(s, _, _)| Arc::ptr_eq(s, &sub)) {
                Some((_, _, ds)) => ds.push(d),
                None => subs.push((sub, topic, vec![d])),
            }
        }
        let mut released = 0;
        for (sub, topic, ds) in subs {
            let (undone, written) = self.change(&sub, |st| {
                let mut undone = 0;
                for d in ds {
                    if st.undeliver(d.queue, d.offset, d.attempt, now) {
                        undone += 1;
                    }
                }
                undone
            });
            written?.durable().await?;
            if undone > 0 {
                released += undone;
                topic.notify.notify_waiters();
            }
        }
        Ok(released)
    }
}
