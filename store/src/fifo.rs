//! FIFO consumption: the rules that keep the messages of one message group
//! in order, for consumer groups with `fifo` set on FIFO topics.
//!
//! - On append, every message of a message group goes to the same queue
//!   ([`queue_of`]), whatever queue the client picked, so the group's
//!   messages keep their store order.
//! - On pop, a message group with a message in flight is *locked*: its
//!   later messages are *parked* (in log order) instead of delivered, and the
//!   scan goes on with other groups, so one slow group does not block the
//!   rest (no head-of-line blocking).
//! - When the in-flight message is acked or dead-lettered, the group unlocks
//!   and its oldest parked message is *ready*: the next pop delivers it
//!   first, which locks the group again. A redelivery keeps the lock.
//!
//! [`Lanes`] holds this per subscription. Its changes are persisted with the
//! rest of the subscription's state (`pop` column family: b'l' entries for
//! locks, b'p' for parked messages), so locks and parked messages survive a
//! restart.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use pier_proto::admin::{ConsumerGroup, TopicType};

use crate::catalog::TopicEntry;
use crate::pop::Pending;

/// Most messages a subscription keeps parked behind locked message groups;
/// past it, scanning pauses until groups unlock (bounds memory when a few
/// message groups are stuck behind a failing consumer).
pub(crate) const MAX_PARKED: usize = 100_000;

/// Returns true when a group consumes a topic in FIFO order.
pub(crate) fn applies(group: &ConsumerGroup, topic: &TopicEntry) -> bool {
    group.fifo && topic.topic_type() == TopicType::Fifo
}

/// Returns the queue every message of `message_group` goes to: a stable hash
/// (FNV-1a, the same on every node and version) of its name.
pub(crate) fn queue_of(message_group: &str, queues: u32) -> u32 {
    let hash = message_group
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, x| {
            (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
        });
    (hash % u64::from(queues.max(1))) as u32
}

/// The message groups of one subscription: locks and parked messages.
#[derive(Debug, Default)]
pub(crate) struct Lanes {
    /// The message group each in-flight message holds, and how many
    /// in-flight messages hold each group (a group with any is locked).
    holders: HashMap<(u32, u64), String>,
    locks: HashMap<String, u32>,
    /// Messages scanned while their group was locked, in log order; the
    /// same per message group; and the head of every group that has parked
    /// messages and is not locked, oldest first (what can go next).
    parked: BTreeMap<(u32, u64), String>,
    parked_by_group: HashMap<String, BTreeSet<(u32, u64)>>,
    ready: BTreeSet<((u32, u64), String)>,
}

impl Lanes {
    /// Returns true when a new message of `group` must wait: the group is
    /// locked, or older messages of it are parked.
    pub(crate) fn is_blocked(&self, group: &str) -> bool {
        self.locks.contains_key(group) || self.parked_by_group.contains_key(group)
    }

    /// Returns true when no more messages may be parked.
    pub(crate) fn is_full(&self) -> bool {
        self.parked.len() >= MAX_PARKED
    }

    /// Returns how many messages are parked.
    pub(crate) fn parked_len(&self) -> usize {
        self.parked.len()
    }

    /// The in-flight message at (queue, offset) locks `group`.
    pub(crate) fn hold(&mut self, queue: u32, offset: u64, group: String, pending: &mut Pending) {
        pending.put_group_entry(b'l', queue, offset, &group);
        self.restore_hold(queue, offset, group);
    }

    /// Memory half of [`Lanes::hold`], for state loaded from disk.
    pub(crate) fn restore_hold(&mut self, queue: u32, offset: u64, group: String) {
        if self
            .holders
            .insert((queue, offset), group.clone())
            .is_some()
        {
            return;
        }
        let n = self.locks.entry(group.clone()).or_default();
        *n += 1;
        if *n == 1 {
            if let Some(h) = self.head(&group) {
                self.ready.remove(&(h, group));
            }
        }
    }

    /// The message at (queue, offset) is no longer in flight. Returns true
    /// when it held a lock (its lock entry goes with its in-flight entry).
    pub(crate) fn release(&mut self, queue: u32, offset: u64) -> bool {
        let Some(group) = self.holders.remove(&(queue, offset)) else {
            return false;
        };
        if let Entry::Occupied(mut e) = self.locks.entry(group.clone()) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
                if let Some(h) = self.head(&group) {
                    self.ready.insert((h, group));
                }
            }
        }
        true
    }

    fn head(&self, group: &str) -> Option<(u32, u64)> {
        self.parked_by_group
            .get(group)
            .and_then(|s| s.first().copied())
    }

    /// Parks the message at (queue, offset) until `group` unlocks.
    pub(crate) fn park(&mut self, queue: u32, offset: u64, group: String, pending: &mut Pending) {
        pending.put_group_entry(b'p', queue, offset, &group);
        self.restore_parked(queue, offset, group);
    }

    /// Memory half of [`Lanes::park`], for state loaded from disk.
    pub(crate) fn restore_parked(&mut self, queue: u32, offset: u64, group: String) {
        if self.parked.insert((queue, offset), group.clone()).is_some() {
            return;
        }
        let old = self.head(&group);
        self.parked_by_group
            .entry(group.clone())
            .or_default()
            .insert((queue, offset));
        let new = self.head(&group);
        if !self.locks.contains_key(&group) && old != new {
            if let Some(h) = old {
                self.ready.remove(&(h, group.clone()));
            }
            if let Some(h) = new {
                self.ready.insert((h, group));
            }
        }
    }

    /// Takes the oldest parked message whose group is not locked, to be
    /// delivered (which locks the group again).
    pub(crate) fn take_ready(&mut self, pending: &mut Pending) -> Option<((u32, u64), String)> {
        let ((queue, offset), group) = self.ready.first().cloned()?;
        self.unpark(queue, offset);
        pending.delete_parked(queue, offset);
        Some(((queue, offset), group))
    }

    /// Whether the message at (queue, offset) is parked.
    pub(crate) fn is_parked(&self, queue: u32, offset: u64) -> bool {
        self.parked.contains_key(&(queue, offset))
    }

    /// Returns how many messages of `queue` are parked.
    pub(crate) fn parked_in(&self, queue: u32) -> usize {
        self.parked.range((queue, 0)..=(queue, u64::MAX)).count()
    }

    /// Drops every parked message of `queue` (its position was reset: the
    /// scan will find them again).
    pub(crate) fn drop_queue(&mut self, queue: u32, pending: &mut Pending) {
        let offsets: Vec<u64> = self
            .parked
            .range((queue, 0)..=(queue, u64::MAX))
            .map(|((_, o), _)| *o)
            .collect();
        for o in offsets {
            self.unpark(queue, o);
            pending.delete_parked(queue, o);
        }
    }

    fn unpark(&mut self, queue: u32, offset: u64) {
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
            if !self.locks.contains_key(&group) {
                if let Some(h) = self.head(&group) {
                    self.ready.insert((h, group));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(l: &Lanes) -> Option<((u32, u64), String)> {
        l.ready.first().cloned()
    }

    #[test]
    fn ready_heads_follow_locks_and_parking() {
        let mut l = Lanes::default();
        l.restore_hold(0, 1, "a".into());
        l.restore_parked(0, 2, "a".into());
        l.restore_parked(0, 3, "b".into());
        l.restore_parked(0, 4, "a".into());
        // a is locked: only b's head is ready.
        assert_eq!(next(&l), Some(((0, 3), "b".into())));
        l.unpark(0, 3);
        assert_eq!(next(&l), None);
        // a's holder is done: a's oldest parked message is next, then
        // nothing while that one is in flight.
        assert!(l.release(0, 1));
        assert_eq!(next(&l), Some(((0, 2), "a".into())));
        l.unpark(0, 2);
        l.restore_hold(0, 2, "a".into());
        assert_eq!(next(&l), None);
        assert!(l.is_blocked("a"));
        assert!(l.release(0, 2));
        assert_eq!(next(&l), Some(((0, 4), "a".into())));
        assert!(!l.release(0, 9), "not a holder");
    }

    #[test]
    fn a_group_always_lands_on_the_same_queue() {
        let q = queue_of("orders-42", 8);
        assert!(q < 8);
        assert_eq!(queue_of("orders-42", 8), q);
        assert_eq!(queue_of("anything", 1), 0);
        // The hash is part of the on-disk layout: it must never change.
        assert_eq!(
            queue_of("a", 1 << 31),
            (0xaf63_dc4c_8601_ec8c_u64 % (1 << 31)) as u32
        );
    }
}
