//! Pop: one round takes, under the subscription's lock, redeliveries first
//! (they have waited longest), then FIFO messages whose group has unlocked,
//! then new messages queue by queue. A long poll repeats rounds until a
//! message comes, one becomes visible again, or the poll time is up.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use pier_node::throttle::RateLimiter;
use pier_proto::store::{PopRequest, PopResponse, PoppedMessage, StoredMessage};
use prost::Message;

use super::dlq::DlqMove;
use super::state::SubState;
use super::writer::Queued;
use super::{Consumption, Subscription};
use crate::catalog::{GroupEntry, TopicEntry};
use crate::error::{Result, StoreError};
use crate::fifo;
use crate::filter::TagFilter;
use crate::log::MessageLog;

/// Most messages one pop returns.
const MAX_POP_BATCH: usize = 1024;
/// Most bytes of messages one pop returns (a single larger message still
/// goes alone). Far below the store link's gRPC limit
/// ([`crate::MAX_GRPC_MESSAGE`]): a reply over it would fail after the
/// deliveries were recorded, and count attempts for messages nobody saw.
pub(crate) const MAX_POP_BYTES: usize = 16 << 20;
/// Most log entries one pop scans past (filtered out) before answering, so a
/// selective filter over a long backlog cannot stall one call.
const MAX_SCAN_PER_POP: usize = 8192;

/// What one round found.
struct Round<'a> {
    log: &'a MessageLog,
    topic: &'a TopicEntry,
    filter: &'a TagFilter,
    /// The receiving group: a message sent back from another group's
    /// dead-letter queue (`redrive_group`) is not for it.
    group: &'a str,
    max: usize,
    max_attempts: u32,
    fifo: bool,
    now: i64,
    /// When what this round delivers becomes visible again.
    visible_at: i64,
    /// New messages (not redeliveries) the group may still take before it
    /// holds its limit of in-flight messages.
    new_left: u64,
    out: Vec<PoppedMessage>,
    /// Encoded size of what `out` holds.
    bytes: usize,
    dlq: Vec<DlqMove>,
    /// The first message this round could not read: what was taken before
    /// it is still handed out, and the pop fails only if nothing was.
    failed: Option<StoreError>,
}

impl Round<'_> {
    fn full(&self) -> bool {
        self.out.len() >= self.max || self.bytes >= MAX_POP_BYTES
    }

    /// Whether `m` still fits in this pop's bytes (the first always does).
    fn has_room(&self, m: &StoredMessage) -> bool {
        self.out.is_empty() || self.bytes + m.encoded_len() <= MAX_POP_BYTES
    }

    fn deliver(
        &mut self,
        st: &mut SubState,
        m: StoredMessage,
        attempt: u32,
        group: Option<String>,
    ) {
        st.deliver(m.queue, m.offset, attempt, self.visible_at, group);
        self.bytes += m.encoded_len();
        self.out.push(PoppedMessage {
            message: Some(m),
            attempt,
            visible_at_ms: self.visible_at,
        });
    }

    /// Deliveries whose invisible time is over: again, or to the DLQ once
    /// the group's attempts are used up.
    fn redeliver(&mut self, st: &mut SubState) -> Result<()> {
        while !self.full() {
            let Some((q, o, e)) = st.next_due(self.now) else {
                break;
            };
            let read = match self.log.read(self.topic, q, o) {
                Ok(read) => read,
                Err(err) => {
                    // Unreadable now: due again after this pop's invisible
                    // time (no attempt counted), instead of failing every
                    // pop of the group at the head of its redeliveries.
                    let later = self.visible_at.max(self.now.saturating_add(1));
                    st.set_invisible(q, o, e, later, false);
                    self.failed.get_or_insert(err);
                    continue;
                }
            };
            match read {
                // Removed by retention or topic deletion: nothing to redeliver.
                None => {
                    st.forget(q, o);
                }
                Some(message) if e.attempt >= self.max_attempts => {
                    st.mark_moving(q, o);
                    self.dlq.push(DlqMove {
                        queue: q,
                        offset: o,
                        attempt: e.attempt,
                        message,
                    });
                }
                // Too big for this pop: it stays due for the next one.
                Some(message) if !self.has_room(&message) => break,
                Some(message) => self.deliver(st, message, e.attempt + 1, None),
            }
        }
        Ok(())
    }

    /// FIFO: parked messages whose message group has unlocked, oldest
    /// first; one message per group, which then locks it again.
    fn release_parked(&mut self, st: &mut SubState) -> Result<()> {
        while self.fifo && !self.full() && self.new_left > 0 {
            let Some(((q, o), g)) = st.take_ready() else {
                break;
            };
            match self.log.read(self.topic, q, o) {
                Ok(Some(message)) => {
                    self.deliver(st, message, 1, Some(g));
                    self.new_left -= 1;
                }
                Ok(None) => {}
                Err(e) => {
                    // Parked again, still the head of its message group.
                    st.park(q, o, g);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// New messages, queue by queue, starting where the last pop left off
    /// so every queue gets its turn.
    fn scan_new(&mut self, st: &mut SubState) -> Result<()> {
        let nq = self.topic.queues.len();
        let start = st.take_start_queue(nq);
        let mut budget = MAX_SCAN_PER_POP;
        for (q, ql) in self
            .topic
            .queues
            .iter()
            .enumerate()
            .cycle()
            .skip(start)
            .take(nq)
        {
            if self.full() || budget == 0 || self.new_left == 0 {
                break;
            }
            let queue = q as u32;
            let committed = ql.committed();
            let mut cursor = st.cursor(q).max(ql.min_offset());
            if cursor >= committed || (self.fifo && st.lanes.is_full()) {
                continue;
            }
            let mut exhausted = true;
            let mut failed = None;
            for item in self.log.read_range(self.topic, queue, cursor, committed)? {
                let (offset, message) = match item {
                    Ok(read) => read,
                    Err(e) => {
                        // The cursor still moves past what was taken.
                        failed = Some(e);
                        exhausted = false;
                        break;
                    }
                };
                let wanted = self.filter.matches(message.tag.as_deref())
                    && (message.redrive_group.is_empty() || message.redrive_group == self.group);
                if wanted && !self.has_room(&message) {
                    // The cursor stays on it: the next pop starts there.
                    exhausted = false;
                    break;
                }
                cursor = offset + 1;
                budget -= 1;
                if wanted {
                    self.take_new(st, message);
                }
                if self.full()
                    || budget == 0
                    || self.new_left == 0
                    || (self.fifo && st.lanes.is_full())
                {
                    exhausted = false;
                    break;
                }
            }
            if exhausted {
                cursor = committed;
            }
            st.set_cursor(queue, cursor);
            if let Some(e) = failed {
                return Err(e);
            }
        }
        Ok(())
    }

    /// A new message that passed the filter: delivered, or parked behind
    /// its FIFO message group.
    fn take_new(&mut self, st: &mut SubState, message: StoredMessage) {
        let group =
            (self.fifo && !message.message_group.is_empty()).then(|| message.message_group.clone());
        match group {
            // Its group has a message in flight (or older ones waiting):
            // park it, and go on with other groups.
            Some(g) if st.lanes.is_blocked(&g) => st.park(message.queue, message.offset, g),
            g => {
                self.deliver(st, message, 1, g);
                self.new_left = self.new_left.saturating_sub(1);
            }
        }
    }
}

/// What one round hands back: messages, moves to the DLQ to make, the
/// earliest time an in-flight message becomes visible again, the queued
/// write of the deliveries it recorded, and whether the group held its
/// limit of in-flight messages (so no new message could be taken).
type RoundResult = (Vec<PoppedMessage>, Vec<DlqMove>, Option<i64>, Queued, bool);

impl Consumption {
    /// Takes up to `max_messages` visible messages for a group, waiting up
    /// to `poll_ms` for one to arrive or become visible.
    pub(crate) async fn pop(&self, req: PopRequest) -> Result<PopResponse> {
        let group = self.catalog.group(&req.group)?;
        let filter = TagFilter::parse(req.filter.as_ref())?;
        let max = (req.max_messages as usize).clamp(1, MAX_POP_BATCH);
        let deadline = Instant::now() + Duration::from_millis(req.poll_ms);
        loop {
            let topic = self.catalog.topic(&req.topic)?;
            let notified = topic.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_draining() {
                return Ok(PopResponse::default());
            }
            let sub = self.subscription(&group, &topic)?;
            let (messages, dlq, next_visible, written, at_limit) =
                self.round(&sub, &group, &topic, &filter, max, req.invisible_ms)?;
            // Should this call be dropped from here on (its caller went
            // away: a consumer closing during its long poll cancels the
            // whole chain), the deliveries just recorded are undone.
            let undo = Undo {
                pop: self,
                sub: &sub,
                topic: &topic,
                deliveries: messages
                    .iter()
                    .filter_map(|p| p.message.as_ref().map(|m| (m.queue, m.offset, p.attempt)))
                    .collect(),
            };
            // The deliveries (and their attempt counts) are on disk before
            // anyone sees them.
            written.durable().await?;
            for mv in dlq {
                let (q, o, attempt) = (mv.queue, mv.offset, mv.attempt);
                if let Err(e) = self.move_to_dlq(&group, &sub, mv).await {
                    // Visible again, so a later pop retries the move.
                    let now = self.clock.now_ms();
                    sub.state.lock().unmark_moving(q, o, attempt, now);
                    return Err(e);
                }
            }
            if messages.is_empty() && at_limit {
                // Nothing is due again and no new message may be taken:
                // say so rather than keep the consumer polling blind.
                return Err(StoreError::TooManyInflight {
                    group: group.group.name.clone(),
                    inflight: self.group_inflight(group.id),
                    limit: self.max_inflight,
                });
            }
            if !messages.is_empty() || self.is_draining() {
                undo.disarm();
                return Ok(PopResponse { messages });
            }
            undo.disarm();
            let now = Instant::now();
            if now >= deadline {
                return Ok(PopResponse::default());
            }
            let mut wake = deadline;
            if let Some(v) = next_visible {
                let in_ms = (v - self.clock.now_ms()).max(0) as u64 + 1;
                wake = wake.min(now + Duration::from_millis(in_ms));
            }
            let _waiting = crate::metrics::get().long_poll();
            pier_node::trace::span::child("store.long_poll_wait", async {
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep_until(wake.into()) => {}
                }
            })
            .await;
        }
    }

    /// One non-waiting pop attempt, under the subscription's lock.
    fn round(
        &self,
        sub: &Arc<Subscription>,
        group: &GroupEntry,
        topic: &TopicEntry,
        filter: &TagFilter,
        max: usize,
        invisible_ms: u64,
    ) -> Result<RoundResult> {
        let now = self.clock.now_ms();
        let new_left = match self.max_inflight {
            0 => u64::MAX,
            limit => limit.saturating_sub(self.group_inflight(group.id)),
        };
        let mut round = Round {
            log: &self.log,
            topic,
            filter,
            group: &group.group.name,
            max,
            max_attempts: group.group.max_attempts,
            fifo: fifo::applies(&group.group, topic),
            now,
            visible_at: now.saturating_add(invisible_ms.min(i64::MAX as u64) as i64),
            new_left,
            out: Vec::new(),
            bytes: 0,
            dlq: Vec::new(),
            failed: None,
        };
        let next_visible = self.change(sub, |st| {
            st.ensure_queues(topic.queues.len());
            let taken = round
                .redeliver(st)
                .and_then(|()| round.release_parked(st))
                .and_then(|()| round.scan_new(st));
            if let Err(e) = taken {
                round.failed.get_or_insert(e);
            }
            st.next_visible_at()
        });
        let (next_visible, written) = next_visible;
        let written = written?;
        if let Some(e) = round.failed {
            if round.out.is_empty() && round.dlq.is_empty() {
                return Err(e);
            }
            // The deliveries already recorded go out; the failure is the
            // store's, logged here since the caller sees a success.
            static UNREADABLE: LazyLock<RateLimiter<&'static str>> =
                LazyLock::new(|| RateLimiter::new(Duration::from_secs(10)));
            if let Some(suppressed) = UNREADABLE.admit(e.kind(), Instant::now()) {
                tracing::error!(
                    group = %group.group.name,
                    topic = %topic.topic.name,
                    error = %e.report(),
                    suppressed,
                    "a pop stopped at a message it could not read; it answers with what it took before (suppressed: like failures left out since the last line)"
                );
            }
        }
        Ok((round.out, round.dlq, next_visible, written, new_left == 0))
    }
}

/// Undoes a pop's deliveries unless disarmed: dropped with the pop call
/// before its reply was handed over, they are visible again at once with
/// their attempt not counted (the same as a `Release`).
struct Undo<'a> {
    pop: &'a Consumption,
    sub: &'a Arc<Subscription>,
    topic: &'a TopicEntry,
    deliveries: Vec<(u32, u64, u32)>,
}

impl Undo<'_> {
    fn disarm(mut self) {
        self.deliveries.clear();
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if self.deliveries.is_empty() {
            return;
        }
        let now = self.pop.clock.now_ms();
        let deliveries = std::mem::take(&mut self.deliveries);
        let (_, written) = self.pop.change(self.sub, |st| {
            for (q, o, attempt) in deliveries {
                st.undeliver(q, o, attempt, now);
            }
        });
        // Nobody is left to wait for it: queued in order, it is written
        // with the next batch (and redelivery covers a crash before that).
        if let Err(e) = written {
            tracing::warn!(error = %e.report(), "undoing the deliveries of a cancelled pop");
        }
        self.topic.notify.notify_waiters();
    }
}
