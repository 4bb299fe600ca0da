//! Dead-lettering: a message whose group used up its delivery attempts (or
//! that a consumer forwards explicitly) is appended to the group's
//! `%DLQ%<group>` topic, durably, and only then does its delivery end. A
//! crash in between delivers it to the DLQ twice at worst, never zero times.

use pier_proto::store::{DeliveryRef, MessageKind, StoredMessage};
use prost::Message;

use super::{stale, Consumption, Located, Subscription};
use crate::catalog::GroupEntry;
use crate::error::Result;
use crate::log::Writes;

/// A message leaving for the dead-letter queue.
pub(crate) struct DlqMove {
    pub(crate) queue: u32,
    pub(crate) offset: u64,
    pub(crate) attempt: u32,
    pub(crate) message: StoredMessage,
}

impl Consumption {
    /// Appends a message to its group's DLQ (durably), then ends its
    /// delivery. The caller has marked the delivery as moving.
    pub(crate) async fn move_to_dlq(
        &self,
        group: &GroupEntry,
        sub: &Subscription,
        mv: DlqMove,
    ) -> Result<()> {
        let dlq = self.catalog.dlq_topic(&group.group.name)?;
        let mut m = mv.message;
        m.dlq_origin_topic = std::mem::take(&mut m.topic);
        m.dlq_origin_message_id = m.message_id.clone();
        let origin = m.dlq_origin_topic.clone();
        m.kind = MessageKind::Normal as i32;
        m.stored_at_ms = self.clock.now_ms();
        m.queue = 0;
        m.offset = 0;
        let writes = Writes {
            items: vec![(0, m.encode_to_vec())],
            ..Writes::default()
        };
        self.log.write(dlq, writes).await?;
        let (unlocks, written) = self.change(sub, |st| {
            st.inflight(mv.queue, mv.offset)
                .is_some_and(|e| e.attempt == mv.attempt)
                && st.forget(mv.queue, mv.offset)
        });
        written?.durable().await?;
        if unlocks {
            if let Ok(t) = self.catalog.topic(&origin) {
                t.notify.notify_waiters();
            }
        }
        crate::metrics::get().dead_lettered(&origin, &group.group.name);
        tracing::debug!(group = %group.group.name, queue = mv.queue, offset = mv.offset, attempts = mv.attempt, "moved to the dead-letter queue");
        Ok(())
    }

    /// Moves a delivered message to the DLQ at a consumer's request.
    pub(crate) async fn forward_to_dlq(&self, delivery: &Option<DeliveryRef>) -> Result<()> {
        let Located {
            d,
            group,
            topic,
            sub,
        } = self.locate(delivery)?;
        {
            let mut st = sub.state.lock();
            if st
                .current(d.queue, d.offset, d.attempt, d.handle_seq)
                .is_none()
            {
                return Err(stale(d));
            }
            st.mark_moving(d.queue, d.offset);
        }
        let Some(message) = self.log.read(&topic, d.queue, d.offset)? else {
            // Deleted by retention meanwhile: the delivery is over.
            let (_, written) = self.change(&sub, |st| st.forget(d.queue, d.offset));
            written?.durable().await?;
            return Err(stale(d));
        };
        let mv = DlqMove {
            queue: d.queue,
            offset: d.offset,
            attempt: d.attempt,
            message,
        };
        if let Err(e) = self.move_to_dlq(&group, &sub, mv).await {
            // Visible again rather than stuck as moving.
            let now = self.clock.now_ms();
            sub.state
                .lock()
                .unmark_moving(d.queue, d.offset, d.attempt, now);
            return Err(e);
        }
        Ok(())
    }
}
