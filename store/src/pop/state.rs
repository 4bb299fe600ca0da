//! Pop consumption state of one consumer group on one topic.
//!
//! Per queue, a cursor: every offset below it has been handed out to this
//! group (or skipped by the filter). Every delivered message that is not
//! acked yet is in flight, with its delivery attempt and the time it becomes
//! visible again. Acked messages are in neither set, so the state is bounded
//! by what is in flight, not by what was ever consumed.
//!
//! The in-memory copy is authoritative while the process runs. Each method
//! that changes it also records the matching change of the `pop` column
//! family ([`Pending`]); the caller queues those for the state writer
//! ([`super::writer`]) before it lets go of the subscription's lock.

use std::collections::{BTreeSet, HashMap};

use crate::db::{keys, Cf, Db};
use crate::error::Result;
use crate::fifo::Lanes;

use super::writer::StateBatch;

/// The ids a subscription's keys are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SubKey {
    pub(crate) group_id: u32,
    pub(crate) topic_id: u32,
}

/// Changes of the `pop` column family that memory has made and the state
/// writer has not been given yet.
pub(crate) struct Pending {
    key: SubKey,
    batch: StateBatch,
}

impl Pending {
    fn entry(&self, tag: u8, queue: u32, offset: u64) -> [u8; 21] {
        keys::pop_entry_key(tag, self.key.group_id, self.key.topic_id, queue, offset)
    }

    fn put_inflight(&mut self, queue: u32, offset: u64, e: &Inflight) {
        let k = self.entry(b'i', queue, offset);
        self.batch.put(
            k,
            keys::encode_inflight(e.attempt, e.visible_at_ms, e.handle_seq),
        );
    }

    /// Removes an in-flight entry, and its FIFO lock entry when it held a
    /// lock. Only then: a delete of a key that was never written still
    /// costs a tombstone in the memtable, the log and later compactions,
    /// for every ack of a normal message.
    fn delete_inflight(&mut self, queue: u32, offset: u64, held_lock: bool) {
        self.batch.delete(self.entry(b'i', queue, offset));
        if held_lock {
            self.batch.delete(self.entry(b'l', queue, offset));
        }
    }

    /// Records a FIFO entry: b'l' (lock held) or b'p' (parked).
    pub(crate) fn put_group_entry(&mut self, tag: u8, queue: u32, offset: u64, group: &str) {
        let k = self.entry(tag, queue, offset);
        self.batch.put(k, group.as_bytes());
    }

    pub(crate) fn delete_parked(&mut self, queue: u32, offset: u64) {
        let k = self.entry(b'p', queue, offset);
        self.batch.delete(k);
    }

    fn put_cursor(&mut self, queue: u32, cursor: u64) {
        let k = keys::cursor_key(self.key.group_id, self.key.topic_id, queue);
        self.batch.put(k, cursor.to_be_bytes());
    }
}

/// One in-flight delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inflight {
    pub(crate) attempt: u32,
    pub(crate) visible_at_ms: i64,
    /// Which receipt handle of this attempt is current: 0 for the one the
    /// receive issued, raised by each ChangeInvisibleDuration of the
    /// consumer, which issues a new handle and retires the one it was given
    /// (so an old handle can no longer ack a message another handle holds).
    pub(crate) handle_seq: u32,
    /// Set while the message is being moved to the dead-letter queue, so no
    /// second pop picks it up meanwhile.
    pub(crate) moving: bool,
}

/// The state; see the module comment.
pub(crate) struct SubState {
    pending: Pending,
    cursors: Vec<u64>,
    inflight: HashMap<(u32, u64), Inflight>,
    /// (visible_at_ms, queue, offset) of every in-flight message not being
    /// moved, earliest first.
    by_deadline: BTreeSet<(i64, u32, u64)>,
    /// Queue the next scan for new messages starts at (round robin).
    next_queue: usize,
    /// FIFO message groups: which are locked, which messages wait.
    pub(crate) lanes: Lanes,
}

impl SubState {
    /// Returns the state of a subscription that has none stored.
    pub(crate) fn empty(key: SubKey, queues: usize) -> SubState {
        SubState {
            pending: Pending {
                key,
                batch: StateBatch::default(),
            },
            cursors: vec![0; queues],
            inflight: HashMap::new(),
            by_deadline: BTreeSet::new(),
            next_queue: 0,
            lanes: Lanes::default(),
        }
    }

    /// Loads the stored state of a subscription. A record that cannot be
    /// read is skipped and counted in one ERROR line; an in-flight entry
    /// whose position is still known comes due at once, so its message is
    /// delivered again rather than lost behind the cursor.
    pub(crate) fn load(db: &Db, key: SubKey, queues: usize) -> Result<SubState> {
        let mut st = SubState::empty(key, queues);
        let mut unreadable = 0usize;
        let prefix = keys::pop_prefix(b'c', key.group_id, key.topic_id);
        for item in db.scan_prefix(Cf::Pop, &prefix)? {
            let (k, v) = item?;
            match (keys::cursor_queue(&k), <[u8; 8]>::try_from(&v[..])) {
                (Some(q), Ok(b)) => {
                    if let Some(c) = st.cursors.get_mut(q as usize) {
                        *c = u64::from_be_bytes(b);
                    }
                }
                _ => unreadable += 1,
            }
        }
        let prefix = keys::pop_prefix(b'i', key.group_id, key.topic_id);
        for item in db.scan_prefix(Cf::Pop, &prefix)? {
            let (k, v) = item?;
            match (keys::inflight_position(&k), keys::decode_inflight(&v)) {
                (Some((q, o)), Some((attempt, vis, handle_seq))) => {
                    st.insert(q, o, attempt, vis, handle_seq);
                }
                (Some((q, o)), None) => {
                    st.insert(q, o, 0, 0, 0);
                    unreadable += 1;
                }
                (None, _) => unreadable += 1,
            }
        }
        for tag in [b'l', b'p'] {
            let prefix = keys::pop_prefix(tag, key.group_id, key.topic_id);
            for item in db.scan_prefix(Cf::Pop, &prefix)? {
                let (k, v) = item?;
                let (Some((q, o)), Ok(g)) =
                    (keys::inflight_position(&k), String::from_utf8(v.to_vec()))
                else {
                    unreadable += 1;
                    continue;
                };
                if tag == b'p' {
                    st.lanes.restore_parked(q, o, g);
                } else if st.inflight.contains_key(&(q, o)) {
                    st.lanes.restore_hold(q, o, g);
                }
            }
        }
        if unreadable > 0 {
            tracing::error!(
                group_id = key.group_id,
                topic_id = key.topic_id,
                unreadable,
                "consumption state records could not be read and were skipped (in-flight messages among them are delivered again)"
            );
        }
        Ok(st)
    }

    /// Returns the changes recorded since the last call, for the writer.
    pub(crate) fn take_changes(&mut self) -> StateBatch {
        std::mem::take(&mut self.pending.batch)
    }

    /// Grows the cursors to a topic's (possibly grown) queue count.
    pub(crate) fn ensure_queues(&mut self, queues: usize) {
        if self.cursors.len() < queues {
            self.cursors.resize(queues, 0);
        }
    }

    /// Returns the cursor of a queue.
    pub(crate) fn cursor(&self, queue: usize) -> u64 {
        self.cursors.get(queue).copied().unwrap_or(0)
    }

    /// Moves a queue's cursor.
    pub(crate) fn set_cursor(&mut self, queue: u32, cursor: u64) {
        if let Some(c) = self.cursors.get_mut(queue as usize) {
            *c = cursor;
        }
        self.pending.put_cursor(queue, cursor);
    }

    /// Returns the queue the next scan starts at, and moves it on.
    pub(crate) fn take_start_queue(&mut self, queues: usize) -> usize {
        let start = self.next_queue % queues.max(1);
        self.next_queue = (start + 1) % queues.max(1);
        start
    }

    fn insert(
        &mut self,
        queue: u32,
        offset: u64,
        attempt: u32,
        visible_at_ms: i64,
        handle_seq: u32,
    ) -> Inflight {
        let entry = Inflight {
            attempt,
            visible_at_ms,
            handle_seq,
            moving: false,
        };
        if let Some(old) = self.inflight.insert((queue, offset), entry) {
            self.by_deadline.remove(&(old.visible_at_ms, queue, offset));
        }
        self.by_deadline.insert((visible_at_ms, queue, offset));
        entry
    }

    /// Puts a message in flight (again), invisible until `visible_at_ms`;
    /// with `fifo_group`, it locks that message group.
    pub(crate) fn deliver(
        &mut self,
        queue: u32,
        offset: u64,
        attempt: u32,
        visible_at_ms: i64,
        fifo_group: Option<String>,
    ) {
        let e = self.insert(queue, offset, attempt, visible_at_ms, 0);
        self.pending.put_inflight(queue, offset, &e);
        if let Some(g) = fifo_group {
            self.lanes.hold(queue, offset, g, &mut self.pending);
        }
    }

    /// Changes when a current delivery becomes visible again; with
    /// `new_handle`, its handle_seq moves on (the consumer gets a new receipt
    /// handle and the one it used is retired). Returns the changed entry.
    pub(crate) fn set_invisible(
        &mut self,
        queue: u32,
        offset: u64,
        current: Inflight,
        visible_at_ms: i64,
        new_handle: bool,
    ) -> Inflight {
        let seq = if new_handle {
            current.handle_seq.wrapping_add(1)
        } else {
            current.handle_seq
        };
        let e = self.insert(queue, offset, current.attempt, visible_at_ms, seq);
        self.pending.put_inflight(queue, offset, &e);
        e
    }

    /// Undoes a delivery that never reached its consumer, if `attempt` is
    /// still its current one: visible at `now`, with the attempt before it
    /// (0 for a first delivery, so the next is attempt 1 again). A FIFO
    /// message keeps its message group locked: it is still the next one.
    /// Returns whether it was undone.
    pub(crate) fn undeliver(&mut self, queue: u32, offset: u64, attempt: u32, now: i64) -> bool {
        // Handle 0: a consumer that never got the delivery never changed it.
        if self.current(queue, offset, attempt, 0).is_none() {
            return false;
        }
        self.deliver(queue, offset, attempt.saturating_sub(1), now, None);
        true
    }

    /// Ends a delivery (acked, dead-lettered, or its message gone). Returns
    /// true when it held a FIFO message group, whose next message may now
    /// be delivered.
    pub(crate) fn forget(&mut self, queue: u32, offset: u64) -> bool {
        if let Some(old) = self.inflight.remove(&(queue, offset)) {
            self.by_deadline.remove(&(old.visible_at_ms, queue, offset));
        }
        // Memory knows every lock held: each lock entry is written with
        // its hold (`Lanes::hold`) and restored with it on load.
        let held = self.lanes.release(queue, offset);
        self.pending.delete_inflight(queue, offset, held);
        held
    }

    /// Returns the delivery of a message if `attempt` is its current one,
    /// `handle_seq` that attempt's current handle, and it is not being moved
    /// to the dead-letter queue.
    pub(crate) fn current(
        &self,
        queue: u32,
        offset: u64,
        attempt: u32,
        handle_seq: u32,
    ) -> Option<Inflight> {
        self.inflight
            .get(&(queue, offset))
            .filter(|e| e.attempt == attempt && e.handle_seq == handle_seq && !e.moving)
            .copied()
    }

    /// Returns the in-flight delivery of a message, whatever its state.
    pub(crate) fn inflight(&self, queue: u32, offset: u64) -> Option<Inflight> {
        self.inflight.get(&(queue, offset)).copied()
    }

    /// Returns the earliest in-flight delivery visible again at `now`.
    pub(crate) fn next_due(&mut self, now: i64) -> Option<(u32, u64, Inflight)> {
        loop {
            let &(t, q, o) = self.by_deadline.first()?;
            if t > now {
                return None;
            }
            match self.inflight.get(&(q, o)) {
                Some(e) => return Some((q, o, *e)),
                // Cannot happen (both change together); dropped if it does.
                None => {
                    self.by_deadline.pop_first();
                }
            }
        }
    }

    /// Marks a delivery as being moved to the DLQ: it leaves the deadline
    /// index. Memory only: should the store stop before the move completes,
    /// the stored delivery simply comes due again.
    pub(crate) fn mark_moving(&mut self, queue: u32, offset: u64) {
        if let Some(e) = self.inflight.get_mut(&(queue, offset)) {
            self.by_deadline.remove(&(e.visible_at_ms, queue, offset));
            e.moving = true;
        }
    }

    /// Makes a delivery whose move to the DLQ failed visible at once, so a
    /// later pop retries the move. Memory only: the stored delivery is
    /// already due.
    pub(crate) fn unmark_moving(&mut self, queue: u32, offset: u64, attempt: u32, now: i64) {
        let seq = self.inflight(queue, offset).map_or(0, |e| e.handle_seq);
        self.insert(queue, offset, attempt, now, seq);
    }

    /// Returns the earliest time an in-flight message becomes visible again.
    pub(crate) fn next_visible_at(&self) -> Option<i64> {
        self.by_deadline.first().map(|(t, _, _)| *t)
    }

    /// Returns how many deliveries are in flight (received, not acked),
    /// visible again or not.
    pub(crate) fn inflight_len(&self) -> u64 {
        self.inflight.len() as u64
    }

    /// Returns (in flight and visible again at `now`, in flight and not).
    pub(crate) fn inflight_counts(&self, now: i64) -> (u64, u64) {
        let expired = self
            .by_deadline
            .iter()
            .take_while(|(t, _, _)| *t <= now)
            .count() as u64;
        (expired, self.inflight.len() as u64 - expired)
    }

    /// The lowest in-flight offset of each queue that has one (for the lag
    /// gauge: one pass over the in-flight set, in memory).
    pub(crate) fn oldest_inflight(&self) -> HashMap<u32, u64> {
        let mut oldest = HashMap::new();
        for &(q, o) in self.inflight.keys() {
            oldest
                .entry(q)
                .and_modify(|m: &mut u64| *m = (*m).min(o))
                .or_insert(o);
        }
        oldest
    }

    /// Messages of `queue` in flight or parked behind their FIFO group.
    pub(crate) fn held_in(&self, queue: u32) -> u64 {
        let inflight = self.inflight.keys().filter(|(q, _)| *q == queue).count();
        (inflight + self.lanes.parked_in(queue)) as u64
    }

    /// Ends every delivery of `queue` and drops its parked messages, then
    /// puts its cursor at `cursor`. Returns how many deliveries ended.
    pub(crate) fn reset_queue(&mut self, queue: u32, cursor: u64) -> u64 {
        let held: Vec<u64> = self
            .inflight
            .keys()
            .filter(|(q, _)| *q == queue)
            .map(|(_, o)| *o)
            .collect();
        for &o in &held {
            self.forget(queue, o);
        }
        self.lanes.drop_queue(queue, &mut self.pending);
        self.set_cursor(queue, cursor);
        held.len() as u64
    }

    /// FIFO: takes the oldest parked message whose group has unlocked.
    pub(crate) fn take_ready(&mut self) -> Option<((u32, u64), String)> {
        self.lanes.take_ready(&mut self.pending)
    }

    /// FIFO: parks a message until its message group unlocks.
    pub(crate) fn park(&mut self, queue: u32, offset: u64, group: String) {
        self.lanes.park(queue, offset, group, &mut self.pending);
    }
}

/// Changes that remove all consumption state of a group on a topic (or on
/// every topic).
pub(crate) fn delete_state(group_id: u32, topic_id: Option<u32>) -> StateBatch {
    let mut batch = StateBatch::default();
    for tag in [b'c', b'i', b'l', b'p'] {
        let (lo, hi) = match topic_id {
            Some(t) => (
                keys::pop_prefix(tag, group_id, t),
                keys::pop_prefix(tag, group_id, t + 1),
            ),
            None => (
                keys::pop_prefix(tag, group_id, 0),
                keys::pop_prefix(tag, group_id + 1, 0),
            ),
        };
        batch.delete_range(lo, hi);
    }
    batch
}

/// Returns the topic ids a group has consumption state for.
pub(crate) fn topics_of_group(db: &Db, group_id: u32) -> Result<Vec<u32>> {
    let full = keys::pop_prefix(b'c', group_id, 0);
    let prefix = full.get(..5).unwrap_or_default();
    let mut out: Vec<u32> = Vec::new();
    for item in db.scan_prefix(Cf::Pop, prefix)? {
        let (k, _) = item?;
        if let Some(b) = k.get(5..9).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
            let t = u32::from_be_bytes(b);
            if out.last() != Some(&t) {
                out.push(t);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_of_delivery_deletes_a_lock_entry_only_where_a_lock_was_held() {
        let key = SubKey {
            group_id: 1,
            topic_id: 2,
        };
        let entry = |tag, offset| keys::pop_entry_key(tag, 1, 2, 0, offset).to_vec();
        let mut st = SubState::empty(key, 1);
        st.deliver(0, 7, 1, 1_000, None);
        st.deliver(0, 8, 1, 1_000, Some("g".into()));
        st.take_changes();

        // A normal message: its in-flight entry only, no tombstone for a
        // lock entry that was never written.
        assert!(!st.forget(0, 7));
        assert_eq!(st.take_changes().deleted_keys(), vec![entry(b'i', 7)]);
        // A FIFO message: its lock entry goes with it.
        assert!(st.forget(0, 8));
        assert_eq!(
            st.take_changes().deleted_keys(),
            vec![entry(b'i', 8), entry(b'l', 8)]
        );
    }
}
