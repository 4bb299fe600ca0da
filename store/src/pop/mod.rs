//! Pop consumption: per (consumer group, topic) subscription, the queue
//! cursors and the in-flight deliveries ([`state`]), persisted by the state
//! writer thread ([`writer`]). What each call does to them:
//!
//! - [`receive`]: pop — redeliveries, then FIFO messages whose group
//!   unlocked, then new messages; long polling;
//! - [`ack`]: ack, ack many, change invisible duration;
//! - [`dlq`]: moving a message to its group's dead-letter queue;
//! - [`redrive`]: sending dead-lettered messages back (admin);
//! - [`reset`]: moving a group's position on a topic (admin);
//! - [`find`]: finding messages by id or key, with each group's state (admin).
//!
//! Every change goes through [`Consumption::change`]: under the
//! subscription's lock, memory changes and the matching stored changes are
//! queued for the writer in the same order; the caller then waits, outside
//! the lock, until the writer has made them durable (`ack_flush`), and only
//! then answers.

mod ack;
mod dlq;
mod find;
mod gauges;
mod receive;
mod redrive;
mod reset;
mod state;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use pier_proto::admin::TopicBacklog;
use pier_proto::store::DeliveryRef;

use crate::catalog::{Catalog, GroupEntry, TopicEntry};
use crate::clock::SharedClock;
use crate::db::Db;
use crate::error::{Result, StoreError};
use crate::log::{FlushMode, MessageLog};

pub(crate) use gauges::SubGauge;
pub(crate) use state::Pending;
use state::{SubKey, SubState};
use writer::{Queued, StateWriter};

/// One group's consumption of one topic.
pub(crate) struct Subscription {
    state: Mutex<SubState>,
    /// How many deliveries `state` holds in flight, copied after every
    /// change, so the group's total is read without taking each lock.
    inflight: AtomicU64,
}

impl Subscription {
    fn new(state: SubState) -> Subscription {
        let inflight = AtomicU64::new(state.inflight_len());
        Subscription {
            state: Mutex::new(state),
            inflight,
        }
    }
}

/// The group, topic and subscription a delivery reference names.
struct Located<'a> {
    d: &'a DeliveryRef,
    group: Arc<GroupEntry>,
    topic: Arc<TopicEntry>,
    sub: Arc<Subscription>,
}

/// Every subscription of the store.
pub(crate) struct Consumption {
    db: Arc<Db>,
    clock: SharedClock,
    catalog: Arc<Catalog>,
    log: Arc<MessageLog>,
    writer: StateWriter,
    subs: Mutex<HashMap<SubKey, Arc<Subscription>>>,
    /// Set when the store drains: long polls answer at once.
    draining: AtomicBool,
    /// Most received, unacked messages one consumer group may hold over
    /// all its topics (0: no limit); see [`Consumption::group_inflight`].
    max_inflight: u64,
}

impl Consumption {
    pub(crate) fn start(
        db: Arc<Db>,
        clock: SharedClock,
        catalog: Arc<Catalog>,
        log: Arc<MessageLog>,
        ack_flush: FlushMode,
        max_inflight: u64,
    ) -> Result<Consumption> {
        Ok(Consumption {
            writer: StateWriter::start(db.clone(), ack_flush)?,
            db,
            clock,
            catalog,
            log,
            subs: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
            max_inflight,
        })
    }

    /// Makes long polls answer "no message" at once from now on.
    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Writes what is queued, then stops the state writer.
    pub(crate) fn shutdown(&self) {
        self.writer.shutdown();
    }

    /// Returns the subscription of a group to a topic, loading its state on
    /// first use.
    fn subscription(&self, group: &GroupEntry, topic: &TopicEntry) -> Result<Arc<Subscription>> {
        let key = SubKey {
            group_id: group.id,
            topic_id: topic.id,
        };
        if let Some(s) = self.subs.lock().get(&key) {
            return Ok(s.clone());
        }
        // Loading outside the map lock; a racing loader's copy is dropped.
        let state = SubState::load(&self.db, key, topic.queues.len())?;
        let mut subs = self.subs.lock();
        Ok(subs
            .entry(key)
            .or_insert_with(|| Arc::new(Subscription::new(state)))
            .clone())
    }

    /// Returns how many messages a group holds in flight over all the
    /// topics it consumes. One pass over the loaded subscriptions, reading
    /// the count each keeps beside its state: no subscription lock is taken,
    /// so the figure may be a round behind a concurrent receive (the limit
    /// is then passed by at most that receive's batch).
    fn group_inflight(&self, group_id: u32) -> u64 {
        self.subs
            .lock()
            .iter()
            .filter(|(k, _)| k.group_id == group_id)
            .map(|(_, s)| s.inflight.load(Ordering::Relaxed))
            .sum()
    }

    /// Runs `f` on a subscription's state under its lock, and queues the
    /// stored changes it made before letting go of the lock. Returns what
    /// `f` returned and the queued write, whose durability the caller awaits
    /// before answering.
    fn change<R>(
        &self,
        sub: &Subscription,
        f: impl FnOnce(&mut SubState) -> R,
    ) -> (R, Result<Queued>) {
        let mut st = sub.state.lock();
        let r = f(&mut st);
        sub.inflight.store(st.inflight_len(), Ordering::Relaxed);
        let written = self.writer.write(st.take_changes());
        (r, written)
    }

    /// Resolves what a delivery reference names (its currency is checked
    /// under the subscription's lock).
    fn locate<'a>(&self, d: &'a Option<DeliveryRef>) -> Result<Located<'a>> {
        let d = d
            .as_ref()
            .ok_or_else(|| StoreError::invalid("delivery reference missing"))?;
        let group = self.catalog.group(&d.group)?;
        let topic = self.catalog.topic(&d.topic)?;
        let sub = self.subscription(&group, &topic)?;
        Ok(Located {
            d,
            group,
            topic,
            sub,
        })
    }

    /// Returns the backlog of every topic a group consumes, by topic name.
    pub(crate) fn backlog(&self, group: &GroupEntry) -> Result<Vec<TopicBacklog>> {
        let mut topic_ids = state::topics_of_group(&self.db, group.id)?;
        for key in self.subs.lock().keys() {
            if key.group_id == group.id && !topic_ids.contains(&key.topic_id) {
                topic_ids.push(key.topic_id);
            }
        }
        let mut backlog = Vec::new();
        for id in topic_ids {
            if let Some(topic) = self.catalog.topic_by_id(id) {
                backlog.push(self.topic_backlog(group, &topic)?);
            }
        }
        backlog.sort_by(|a, b| a.topic.cmp(&b.topic));
        Ok(backlog)
    }

    fn topic_backlog(&self, group: &GroupEntry, topic: &TopicEntry) -> Result<TopicBacklog> {
        let sub = self.subscription(group, topic)?;
        let b = self.measure(topic, &sub, self.clock.now_ms());
        Ok(TopicBacklog {
            topic: topic.topic.name.clone(),
            ready: b.ready,
            inflight: b.inflight,
            lag_ms: b.lag_ms,
        })
    }

    /// Forgets every group's consumption of a deleted topic.
    pub(crate) async fn forget_topic(&self, topic_id: u32) -> Result<()> {
        self.subs.lock().retain(|k, _| k.topic_id != topic_id);
        for g in self.catalog.groups() {
            self.writer
                .write_and_wait(state::delete_state(g.id, Some(topic_id)))
                .await?;
        }
        Ok(())
    }

    /// Forgets a deleted group's consumption of every topic.
    pub(crate) async fn forget_group(&self, group_id: u32) -> Result<()> {
        self.subs.lock().retain(|k, _| k.group_id != group_id);
        self.writer
            .write_and_wait(state::delete_state(group_id, None))
            .await
    }
}

/// Returns the error for a delivery reference that is not current.
fn stale(d: &DeliveryRef) -> StoreError {
    StoreError::StaleDelivery {
        group: d.group.clone(),
        topic: d.topic.clone(),
        queue: d.queue,
        offset: d.offset,
        attempt: d.attempt,
    }
}
