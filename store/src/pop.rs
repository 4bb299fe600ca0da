//! Pop consumption state of one consumer group on one topic.
//!
//! Per queue, a cursor: every offset below it has been handed out to this
//! group (or skipped by the filter). Every delivered message that is not
//! acked yet is in flight, with its delivery attempt and the time it becomes
//! visible again. Acked messages are in neither set, so the state is bounded
//! by what is in flight, not by what was ever consumed.
//!
//! The in-memory copy is authoritative while the process runs; every change
//! is queued, under the subscription's lock, for the `pop` column family
//! ([`crate::state_writer`]: WAL, no fsync; losing the last changes in a
//! crash only makes messages visible again, which at-least-once delivery
//! allows).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rocksdb::{IteratorMode, DB};

use crate::error::Result;
use crate::keys::{self, CF_POP};
use crate::state_writer::StateBatch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inflight {
    pub attempt: u32,
    pub visible_at_ms: i64,
    /// Set while the message is being moved to the dead-letter queue, so no
    /// second pop picks it up meanwhile.
    pub moving: bool,
}

#[derive(Debug, Default)]
pub struct SubState {
    pub cursors: Vec<u64>,
    pub inflight: HashMap<(u32, u64), Inflight>,
    /// (visible_at_ms, queue, offset) of every in-flight message not being
    /// moved, earliest first.
    pub by_deadline: BTreeSet<(i64, u32, u64)>,
    /// Queue the next scan for new messages starts at (round robin).
    pub next_queue: usize,
    /// FIFO: the message group each in-flight message holds, and how many
    /// in-flight messages hold each group (a group with any is locked).
    pub holders: HashMap<(u32, u64), String>,
    pub locks: HashMap<String, u32>,
    /// FIFO: messages scanned while their group was locked, in log order;
    /// the same per message group; and the head of every group that has
    /// parked messages and is not locked, oldest first (what can go next).
    pub parked: BTreeMap<(u32, u64), String>,
    parked_by_group: HashMap<String, BTreeSet<(u32, u64)>>,
    ready: BTreeSet<((u32, u64), String)>,
}

impl SubState {
    pub fn load(db: &DB, group_id: u32, topic_id: u32, queues: usize) -> Result<SubState> {
        let pop = db.cf_handle(CF_POP).expect("cf opened");
        let mut st = SubState {
            cursors: vec![0; queues],
            ..SubState::default()
        };
        let prefix = keys::pop_prefix(b'c', group_id, topic_id);
        for item in db.iterator_cf(
            &pop,
            IteratorMode::From(&prefix, rocksdb::Direction::Forward),
        ) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            if let (Some(q), Ok(b)) = (keys::cursor_queue(&k), <[u8; 8]>::try_from(&v[..])) {
                if let Some(c) = st.cursors.get_mut(q as usize) {
                    *c = u64::from_be_bytes(b);
                }
            }
        }
        let prefix = keys::pop_prefix(b'i', group_id, topic_id);
        for item in db.iterator_cf(
            &pop,
            IteratorMode::From(&prefix, rocksdb::Direction::Forward),
        ) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            if let (Some((q, o)), Some((attempt, vis))) =
                (keys::inflight_position(&k), keys::decode_inflight(&v))
            {
                st.insert(q, o, attempt, vis);
            }
        }
        for tag in [b'l', b'p'] {
            let prefix = keys::pop_prefix(tag, group_id, topic_id);
            for item in db.iterator_cf(
                &pop,
                IteratorMode::From(&prefix, rocksdb::Direction::Forward),
            ) {
                let (k, v) = item?;
                if !k.starts_with(&prefix) {
                    break;
                }
                let (Some((q, o)), Ok(g)) =
                    (keys::inflight_position(&k), String::from_utf8(v.to_vec()))
                else {
                    continue;
                };
                if tag == b'l' {
                    if st.inflight.contains_key(&(q, o)) {
                        st.hold(q, o, g);
                    }
                } else {
                    st.park(q, o, g);
                }
            }
        }
        Ok(st)
    }

    /// FIFO: the in-flight message at (queue, offset) holds `group`.
    pub fn hold(&mut self, queue: u32, offset: u64, group: String) {
        if self
            .holders
            .insert((queue, offset), group.clone())
            .is_none()
        {
            let n = self.locks.entry(group.clone()).or_default();
            *n += 1;
            if *n == 1 {
                if let Some(h) = self.head(&group) {
                    self.ready.remove(&(h, group));
                }
            }
        }
    }

    fn unlock(&mut self, group: String) {
        if let std::collections::hash_map::Entry::Occupied(mut e) = self.locks.entry(group.clone())
        {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
                if let Some(h) = self.head(&group) {
                    self.ready.insert((h, group));
                }
            }
        }
    }

    pub fn is_locked(&self, group: &str) -> bool {
        self.locks.contains_key(group)
    }

    fn head(&self, group: &str) -> Option<(u32, u64)> {
        self.parked_by_group
            .get(group)
            .and_then(|s| s.first().copied())
    }

    pub fn park(&mut self, queue: u32, offset: u64, group: String) {
        if self.parked.insert((queue, offset), group.clone()).is_some() {
            return;
        }
        let old = self.head(&group);
        self.parked_by_group
            .entry(group.clone())
            .or_default()
            .insert((queue, offset));
        let new = self.head(&group);
        if !self.is_locked(&group) && old != new {
            if let Some(h) = old {
                self.ready.remove(&(h, group.clone()));
            }
            if let Some(h) = new {
                self.ready.insert((h, group));
            }
        }
    }

    pub fn has_parked(&self, group: &str) -> bool {
        self.parked_by_group.contains_key(group)
    }

    pub fn unpark(&mut self, queue: u32, offset: u64) {
        let Some(group) = self.parked.remove(&(queue, offset)) else {
            return;
        };
        let old = self.head(&group);
        if let Some(set) = self.parked_by_group.get_mut(&group) {
            set.remove(&(queue, offset));
            if set.is_empty() {
                self.parked_by_group.remove(&group);
            }
        }
        if old == Some((queue, offset)) {
            self.ready.remove(&((queue, offset), group.clone()));
            if !self.is_locked(&group) {
                if let Some(h) = self.head(&group) {
                    self.ready.insert((h, group));
                }
            }
        }
    }

    /// FIFO: the oldest parked message whose group is not locked.
    pub fn next_ready(&self) -> Option<((u32, u64), String)> {
        self.ready.first().cloned()
    }

    pub fn ensure_queues(&mut self, queues: usize) {
        if self.cursors.len() < queues {
            self.cursors.resize(queues, 0);
        }
    }

    pub fn insert(&mut self, queue: u32, offset: u64, attempt: u32, visible_at_ms: i64) {
        if let Some(old) = self.inflight.insert(
            (queue, offset),
            Inflight {
                attempt,
                visible_at_ms,
                moving: false,
            },
        ) {
            self.by_deadline.remove(&(old.visible_at_ms, queue, offset));
        }
        self.by_deadline.insert((visible_at_ms, queue, offset));
    }

    pub fn remove(&mut self, queue: u32, offset: u64) -> Option<Inflight> {
        let old = self.inflight.remove(&(queue, offset))?;
        self.by_deadline.remove(&(old.visible_at_ms, queue, offset));
        if let Some(g) = self.holders.remove(&(queue, offset)) {
            self.unlock(g);
        }
        Some(old)
    }

    /// Marks an entry as being moved to the DLQ: it leaves the deadline index.
    pub fn mark_moving(&mut self, queue: u32, offset: u64) {
        if let Some(e) = self.inflight.get_mut(&(queue, offset)) {
            self.by_deadline.remove(&(e.visible_at_ms, queue, offset));
            e.moving = true;
        }
    }

    /// Earliest time an in-flight message becomes visible again.
    pub fn next_visible_at(&self) -> Option<i64> {
        self.by_deadline.first().map(|(t, _, _)| *t)
    }

    pub fn put_inflight(
        batch: &mut StateBatch,
        ids: (u32, u32),
        queue: u32,
        offset: u64,
        attempt: u32,
        vis: i64,
    ) {
        batch.put(
            keys::inflight_key(ids.0, ids.1, queue, offset),
            keys::encode_inflight(attempt, vis),
        );
    }

    pub fn delete_inflight(batch: &mut StateBatch, ids: (u32, u32), queue: u32, offset: u64) {
        batch.delete(keys::inflight_key(ids.0, ids.1, queue, offset));
        batch.delete(keys::pop_entry_key(b'l', ids.0, ids.1, queue, offset));
    }

    /// Persists a FIFO entry: b'l' (lock held) or b'p' (parked).
    pub fn put_group_entry(
        batch: &mut StateBatch,
        tag: u8,
        ids: (u32, u32),
        queue: u32,
        offset: u64,
        group: &str,
    ) {
        batch.put(
            keys::pop_entry_key(tag, ids.0, ids.1, queue, offset),
            group.as_bytes(),
        );
    }

    pub fn delete_parked(batch: &mut StateBatch, ids: (u32, u32), queue: u32, offset: u64) {
        batch.delete(keys::pop_entry_key(b'p', ids.0, ids.1, queue, offset));
    }

    pub fn put_cursor(batch: &mut StateBatch, ids: (u32, u32), queue: u32, cursor: u64) {
        batch.put(keys::cursor_key(ids.0, ids.1, queue), cursor.to_be_bytes());
    }
}

/// Changes that remove all consumption state of a group on a topic (or on
/// every topic).
pub fn delete_state(group_id: u32, topic_id: Option<u32>) -> StateBatch {
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

/// Topic ids a group has consumption state for.
pub fn topics_of_group(db: &DB, group_id: u32) -> Result<Vec<u32>> {
    let pop = db.cf_handle(CF_POP).expect("cf opened");
    let prefix = &keys::pop_prefix(b'c', group_id, 0)[..5];
    let mut out: Vec<u32> = Vec::new();
    for item in db.iterator_cf(
        &pop,
        IteratorMode::From(prefix, rocksdb::Direction::Forward),
    ) {
        let (k, _) = item?;
        if !k.starts_with(prefix) {
            break;
        }
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
    fn ready_heads_follow_locks_and_parking() {
        let mut st = SubState::default();
        st.insert(0, 1, 1, 0);
        st.hold(0, 1, "a".into());
        st.park(0, 2, "a".into());
        st.park(0, 3, "b".into());
        st.park(0, 4, "a".into());
        // a is locked: only b's head is ready.
        assert_eq!(st.next_ready(), Some(((0, 3), "b".into())));
        st.unpark(0, 3);
        assert_eq!(st.next_ready(), None);
        // a0 acked: a's oldest parked message is next, then nothing while
        // that one is in flight.
        st.remove(0, 1);
        assert_eq!(st.next_ready(), Some(((0, 2), "a".into())));
        st.unpark(0, 2);
        st.insert(0, 2, 1, 0);
        st.hold(0, 2, "a".into());
        assert_eq!(st.next_ready(), None);
        assert!(st.has_parked("a"));
        st.remove(0, 2);
        assert_eq!(st.next_ready(), Some(((0, 4), "a".into())));
    }
}
