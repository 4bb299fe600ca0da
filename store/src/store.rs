//! `Store`: the in-process implementation of [`StoreApi`] over RocksDB.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use pier_proto::admin::*;
use pier_proto::store::*;
use prost::Message;
use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, ReadOptions, DB};

use crate::api::CheckStream;
use crate::api::StoreApi;
use crate::catalog::{self, Catalog, GroupEntry, TopicEntry};
use crate::commit::{Committer, FlushMode, Writes};
use crate::error::{Result, StoreError};
use crate::filter::TagFilter;
use crate::keys::{self, CF_LOG, CF_META, CF_POP, CF_TIMER};
use crate::now_ms;
use crate::pop::{self, SubState};
use crate::retention::Retention;
use crate::state_writer::{StateBatch, StateWriter};
use crate::timer::Timers;
use crate::txn::{self, Checker};

/// Most messages one pop returns.
pub const MAX_POP_BATCH: usize = 1024;
/// Most log entries one pop scans past (filtered out) before answering, so a
/// selective filter over a long backlog cannot stall one call.
const MAX_SCAN_PER_POP: usize = 8192;
/// FIFO: most messages a group keeps parked behind locked message groups;
/// past it, scanning pauses until groups unlock (bounds memory when a few
/// message groups are stuck behind a failing consumer).
const MAX_PARKED: usize = 100_000;

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub flush: FlushMode,
    /// Messages older than this are deleted (0 keeps them forever).
    pub retention_ms: u64,
    /// When unresolved transactions are checked, and rolled back.
    pub txn_checks: txn::CheckPolicy,
}

/// Default retention: 3 days, as RocketMQ's `fileReservedTime`.
pub const DEFAULT_RETENTION_MS: u64 = 72 * 3600 * 1000;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            flush: FlushMode::Sync,
            retention_ms: DEFAULT_RETENTION_MS,
            txn_checks: txn::CheckPolicy::default(),
        }
    }
}

struct Subscription {
    ids: (u32, u32),
    state: Mutex<SubState>,
}

/// The group, topic and consumption state a delivery reference names.
struct Located<'a> {
    d: &'a DeliveryRef,
    group: Arc<GroupEntry>,
    topic: Arc<TopicEntry>,
    sub: Arc<Subscription>,
}

/// A message leaving for the dead-letter queue, found during a pop.
struct DlqMove {
    queue: u32,
    offset: u64,
    attempt: u32,
    message: StoredMessage,
}

pub struct Store {
    db: Arc<DB>,
    catalog: Arc<Catalog>,
    committer_tx: Committer,
    /// Persists consumption-state changes off the callers' threads.
    state: StateWriter,
    timers: Timers,
    txn: Checker,
    txn_checks: txn::CheckPolicy,
    retention: Retention,
    drain_signal: tokio::sync::watch::Sender<bool>,
    subs: Mutex<HashMap<(u32, u32), Arc<Subscription>>>,
    round_robin: AtomicUsize,
    shutting_down: AtomicBool,
    draining: AtomicBool,
}

impl Store {
    /// Opens (or creates) a store in `dir`.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store> {
        opts.txn_checks.validate()?;
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Storage(format!("cannot create {}: {e}", dir.display())))?;
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.increase_parallelism(2);
        // Memtable flushes and compactions write their files in the
        // background; left alone, the kernel holds tens of MiB of them dirty
        // and ext4's ordered mode writes them out inside the next journal
        // commit, which is the one a send's WAL fsync waits for. Syncing
        // them a MiB at a time as they are written keeps that burst out of
        // the sends' fsyncs (RocksDB's own advice; its effect on p99 here
        // was within the disk's noise: bench/results/ab/bytes-per-sync).
        db_opts.set_bytes_per_sync(1 << 20);
        let cfs = [CF_LOG, CF_POP, CF_META, CF_TIMER, txn::CF_TXN]
            .map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
        let db = Arc::new(DB::open_cf_descriptors(&db_opts, dir, cfs)?);
        let catalog = Arc::new(Catalog::load(&db)?);
        let committer = Committer::start(db.clone(), opts.flush);
        let state = StateWriter::start(db.clone());
        let timers = Timers::start(db.clone(), catalog.clone(), committer.handle()?);
        let txn = Checker::start(db.clone(), catalog.clone(), opts.txn_checks);
        let retention = Retention::start(
            db.clone(),
            catalog.clone(),
            opts.retention_ms,
            Duration::from_secs(60),
        );
        tracing::info!(dir = %dir.display(), topics = catalog.topics().len(), groups = catalog.groups().len(), flush = ?opts.flush, "store opened");
        Ok(Store {
            db,
            catalog,
            committer_tx: committer,
            state,
            timers,
            txn,
            txn_checks: opts.txn_checks,
            retention,
            drain_signal: tokio::sync::watch::channel(false).0,
            subs: Mutex::new(HashMap::new()),
            round_robin: AtomicUsize::new(0),
            shutting_down: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        })
    }

    /// First step of a graceful stop: long polls answer "no message" at
    /// once, so the servers in front can finish their in-flight calls.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.drain_signal.send_replace(true);
        for t in self.catalog.topics() {
            t.notify.notify_waiters();
        }
    }

    /// Lets queued appends finish and flushes the WAL. Calls after this fail
    /// with `ShuttingDown`.
    pub fn shutdown(&self) {
        self.drain();
        if self.shutting_down.swap(true, Ordering::SeqCst) {
            return;
        }
        self.retention.shutdown();
        // The timer thread submits to the commit thread: stop it first.
        self.timers.shutdown();
        self.txn.shutdown();
        self.committer_tx.shutdown();
        self.state.shutdown();
        if let Err(e) = self.db.flush_wal(true) {
            tracing::warn!(error = %e, "flushing the WAL at shutdown failed");
        }
        tracing::info!("store shut down");
    }

    /// Runs one retention sweep now (the background thread runs one every
    /// minute); returns how many messages were deleted.
    pub fn sweep_retention(&self, retention_ms: u64) -> Result<u64> {
        crate::retention::sweep(&self.db, &self.catalog, retention_ms, now_ms())
    }

    fn check_running(&self) -> Result<()> {
        if self.shutting_down.load(Ordering::Acquire) {
            Err(StoreError::ShuttingDown)
        } else {
            Ok(())
        }
    }

    fn subscription(&self, group: &GroupEntry, topic: &TopicEntry) -> Result<Arc<Subscription>> {
        let key = (group.id, topic.id);
        if let Some(s) = self.subs.lock().get(&key) {
            return Ok(s.clone());
        }
        // Loading outside the map lock; a racing loader's copy is dropped.
        let state = SubState::load(&self.db, group.id, topic.id, topic.queues.len())?;
        let mut subs = self.subs.lock();
        Ok(subs
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Subscription {
                    ids: key,
                    state: Mutex::new(state),
                })
            })
            .clone())
    }

    fn read_message(
        &self,
        topic: &TopicEntry,
        queue: u32,
        offset: u64,
    ) -> Result<Option<StoredMessage>> {
        let log = self.db.cf_handle(CF_LOG).expect("cf opened");
        match self
            .db
            .get_pinned_cf(&log, keys::log_key(topic.id, queue, offset))?
        {
            Some(v) => Ok(Some(decode_message(&v, topic, queue, offset)?)),
            None => Ok(None),
        }
    }

    /// One non-waiting pop attempt, under the subscription's lock.
    fn try_pop(
        &self,
        sub: &Subscription,
        group: &GroupEntry,
        topic: &TopicEntry,
        filter: &TagFilter,
        max: usize,
        invisible_ms: u64,
    ) -> Result<(Vec<PoppedMessage>, Vec<DlqMove>, Option<i64>)> {
        let mut st = sub.state.lock();
        st.ensure_queues(topic.queues.len());
        let now = now_ms();
        let visible_at = now.saturating_add(invisible_ms.min(i64::MAX as u64) as i64);
        let mut batch = StateBatch::default();
        let mut out = Vec::new();
        let mut dlq = Vec::new();

        // Redeliveries first: they have waited longest.
        while out.len() < max {
            let Some(&(t, q, o)) = st.by_deadline.first() else {
                break;
            };
            if t > now {
                break;
            }
            let Some(e) = st.inflight.get(&(q, o)).copied() else {
                st.by_deadline.pop_first();
                continue;
            };
            match self.read_message(topic, q, o)? {
                None => {
                    // Removed by retention or topic deletion: nothing to redeliver.
                    st.remove(q, o);
                    SubState::delete_inflight(&mut batch, sub.ids, q, o);
                }
                Some(message) if e.attempt >= group.group.max_attempts => {
                    st.mark_moving(q, o);
                    dlq.push(DlqMove {
                        queue: q,
                        offset: o,
                        attempt: e.attempt,
                        message,
                    });
                }
                Some(message) => {
                    let attempt = e.attempt + 1;
                    st.insert(q, o, attempt, visible_at);
                    SubState::put_inflight(&mut batch, sub.ids, q, o, attempt, visible_at);
                    out.push(PoppedMessage {
                        message: Some(message),
                        attempt,
                        visible_at_ms: visible_at,
                    });
                }
            }
        }

        // FIFO: parked messages whose message group has unlocked, oldest
        // first; one message per group, which then locks it again.
        let fifo = group.group.fifo && topic.topic_type() == TopicType::Fifo;
        while fifo && out.len() < max {
            let Some(((q, o), g)) = st.next_ready() else {
                break;
            };
            st.unpark(q, o);
            SubState::delete_parked(&mut batch, sub.ids, q, o);
            let Some(message) = self.read_message(topic, q, o)? else {
                continue;
            };
            st.insert(q, o, 1, visible_at);
            st.hold(q, o, g.clone());
            SubState::put_inflight(&mut batch, sub.ids, q, o, 1, visible_at);
            SubState::put_group_entry(&mut batch, b'l', sub.ids, q, o, &g);
            out.push(PoppedMessage {
                message: Some(message),
                attempt: 1,
                visible_at_ms: visible_at,
            });
        }

        // Then new messages, queue by queue, starting where the last pop
        // left off so every queue gets its turn.
        let log = self.db.cf_handle(CF_LOG).expect("cf opened");
        let nq = topic.queues.len();
        let mut budget = MAX_SCAN_PER_POP;
        let start = st.next_queue;
        for i in 0..nq {
            if out.len() >= max || budget == 0 {
                break;
            }
            let q = (start + i) % nq;
            let ql = &topic.queues[q];
            let committed = ql.committed();
            let mut cursor = st.cursors[q].max(ql.min_offset.load(Ordering::Acquire));
            if cursor >= committed || (fifo && st.parked.len() >= MAX_PARKED) {
                continue;
            }
            let mut ro = ReadOptions::default();
            ro.set_iterate_upper_bound(keys::log_key(topic.id, q as u32, committed).to_vec());
            let from = keys::log_key(topic.id, q as u32, cursor);
            let mut exhausted = true;
            for item in self.db.iterator_cf_opt(
                &log,
                ro,
                IteratorMode::From(&from, rocksdb::Direction::Forward),
            ) {
                let (k, v) = item?;
                let Some(off) = keys::log_offset(&k) else {
                    continue;
                };
                cursor = off + 1;
                budget -= 1;
                let message = decode_message(&v, topic, q as u32, off)?;
                if filter.matches(message.tag.as_deref()) {
                    let fifo_group = (fifo && !message.message_group.is_empty())
                        .then(|| message.message_group.clone());
                    match fifo_group {
                        // Its group has a message in flight (or older ones
                        // waiting): park it, and go on with other groups.
                        Some(g) if st.is_locked(&g) || st.has_parked(&g) => {
                            SubState::put_group_entry(&mut batch, b'p', sub.ids, q as u32, off, &g);
                            st.park(q as u32, off, g);
                        }
                        g => {
                            st.insert(q as u32, off, 1, visible_at);
                            SubState::put_inflight(
                                &mut batch, sub.ids, q as u32, off, 1, visible_at,
                            );
                            if let Some(g) = g {
                                SubState::put_group_entry(
                                    &mut batch, b'l', sub.ids, q as u32, off, &g,
                                );
                                st.hold(q as u32, off, g);
                            }
                            out.push(PoppedMessage {
                                message: Some(message),
                                attempt: 1,
                                visible_at_ms: visible_at,
                            });
                        }
                    }
                }
                if out.len() >= max || budget == 0 || (fifo && st.parked.len() >= MAX_PARKED) {
                    exhausted = false;
                    break;
                }
            }
            if exhausted {
                cursor = committed;
            }
            st.cursors[q] = cursor;
            SubState::put_cursor(&mut batch, sub.ids, q as u32, cursor);
        }
        if nq > 0 {
            st.next_queue = (start + 1) % nq;
        }
        if !batch.is_empty() {
            self.state.write(batch)?;
        }
        Ok((out, dlq, st.next_visible_at()))
    }

    fn dlq_topic(&self, group: &str) -> Result<Arc<TopicEntry>> {
        let name = format!("%DLQ%{group}");
        if let Ok(t) = self.catalog.topic(&name) {
            return Ok(t);
        }
        let topic = catalog::normalize_topic(Topic {
            name,
            r#type: TopicType::Normal as i32,
            queues: 1,
            created_at_ms: 0,
        })?;
        match self.catalog.create_topic(&self.db, topic.clone()) {
            Ok((t, _)) => Ok(t),
            Err(StoreError::AlreadyExists(_)) => self.catalog.topic(&topic.name),
            Err(e) => Err(e),
        }
    }

    /// Appends a message to the group's DLQ (durably), then ends its delivery.
    async fn move_to_dlq(&self, group: &GroupEntry, sub: &Subscription, mv: DlqMove) -> Result<()> {
        let dlq = self.dlq_topic(&group.group.name)?;
        let mut m = mv.message;
        m.dlq_origin_topic = std::mem::take(&mut m.topic);
        m.dlq_origin_message_id = m.message_id.clone();
        let sub_topic_name = m.dlq_origin_topic.clone();
        m.kind = MessageKind::Normal as i32;
        m.stored_at_ms = now_ms();
        m.queue = 0;
        m.offset = 0;
        let value = m.encode_to_vec();
        self.committer_tx.append(dlq, vec![(0, value)]).await?;
        let mut st = sub.state.lock();
        if st
            .inflight
            .get(&(mv.queue, mv.offset))
            .is_some_and(|e| e.attempt == mv.attempt)
        {
            let unlocks = st.holders.contains_key(&(mv.queue, mv.offset));
            st.remove(mv.queue, mv.offset);
            if unlocks {
                if let Ok(t) = self.catalog.topic(&sub_topic_name) {
                    t.notify.notify_waiters();
                }
            }
            let mut batch = StateBatch::default();
            SubState::delete_inflight(&mut batch, sub.ids, mv.queue, mv.offset);
            self.state.write(batch)?;
        }
        tracing::debug!(group = %group.group.name, queue = mv.queue, offset = mv.offset, attempts = mv.attempt, "moved to the dead-letter queue");
        Ok(())
    }

    /// Resolves what a delivery reference names (its currency is checked
    /// by the caller, under the subscription's lock).
    fn lookup<'a>(&self, d: &'a Option<DeliveryRef>) -> Result<Located<'a>> {
        let d = d
            .as_ref()
            .ok_or_else(|| StoreError::InvalidArgument("delivery reference missing".into()))?;
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

    /// Acks one delivery under its subscription's lock: forgets it in
    /// memory and adds the state change to `batch`. True when it held a FIFO
    /// message group, whose next message may now be delivered.
    fn ack_locked(
        st: &mut SubState,
        sub: &Subscription,
        d: &DeliveryRef,
        batch: &mut StateBatch,
    ) -> Result<bool> {
        match st.inflight.get(&(d.queue, d.offset)) {
            Some(e) if e.attempt == d.attempt && !e.moving => {
                let unlocks = st.holders.contains_key(&(d.queue, d.offset));
                st.remove(d.queue, d.offset);
                SubState::delete_inflight(batch, sub.ids, d.queue, d.offset);
                Ok(unlocks)
            }
            _ => Err(Self::stale(d)),
        }
    }

    fn stale(d: &DeliveryRef) -> StoreError {
        StoreError::StaleDelivery(format!(
            "delivery {} of {}/{}@{} is not in flight for group {}: it was acked, moved to the DLQ, or delivered again since",
            d.attempt, d.topic, d.queue, d.offset, d.group
        ))
    }

    fn backlog(&self, group: &GroupEntry, topic: &TopicEntry) -> Result<TopicBacklog> {
        let sub = self.subscription(group, topic)?;
        let st = sub.state.lock();
        let now = now_ms();
        let mut ready: u64 = 0;
        for (q, ql) in topic.queues.iter().enumerate() {
            let cursor = st.cursors.get(q).copied().unwrap_or(0);
            ready += ql
                .committed()
                .saturating_sub(cursor.max(ql.min_offset.load(Ordering::Acquire)));
        }
        let expired = st
            .by_deadline
            .iter()
            .take_while(|(t, _, _)| *t <= now)
            .count() as u64;
        Ok(TopicBacklog {
            topic: topic.topic.name.clone(),
            ready: ready + expired + st.parked.len() as u64,
            inflight: st.inflight.len() as u64 - expired,
        })
    }

    fn drop_subscriptions(&self, pred: impl Fn(&(u32, u32)) -> bool) {
        self.subs.lock().retain(|k, _| !pred(k));
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn decode_message(v: &[u8], topic: &TopicEntry, queue: u32, offset: u64) -> Result<StoredMessage> {
    let mut m = StoredMessage::decode(v)?;
    m.topic = topic.topic.name.clone();
    m.queue = queue;
    m.offset = offset;
    Ok(m)
}

/// Where an appended message went.
enum Placement {
    /// Into the log: index into the appended items.
    Log(usize),
    /// Scheduled: the timer key.
    Timer(Vec<u8>),
    /// Held as a half message: the transaction id.
    Half(String),
}

/// FNV-1a: a stable hash (the same on every node and version).
fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn hex_upper(b: &[u8]) -> String {
    hex::encode_upper(b)
}

/// Which message kinds a topic of each type accepts.
fn kind_allowed(topic: TopicType, kind: MessageKind) -> bool {
    matches!(
        (topic, kind),
        (TopicType::Normal, MessageKind::Normal)
            | (TopicType::Fifo, MessageKind::Fifo)
            | (TopicType::Delay, MessageKind::Delay)
            | (TopicType::Transaction, MessageKind::Transaction)
    )
}

fn kind_name(k: MessageKind) -> &'static str {
    match k {
        MessageKind::Normal => "NORMAL",
        MessageKind::Fifo => "FIFO",
        MessageKind::Delay => "DELAY",
        MessageKind::Transaction => "TRANSACTION",
        MessageKind::Unspecified => "UNSPECIFIED",
    }
}

#[async_trait]
impl StoreApi for Store {
    async fn append(&self, req: AppendRequest) -> Result<AppendResponse> {
        self.check_running()?;
        let topic = self.catalog.topic(&req.topic)?;
        if req.messages.is_empty() {
            return Err(StoreError::InvalidArgument("no message to append".into()));
        }
        let ttype = topic.topic_type();
        let nq = topic.queues.len() as u32;
        let now = now_ms();
        let mut writes = Writes::default();
        // Where each input message went: Ok(index into appended items) or
        // Err(index into scheduled timers), to answer in input order.
        let mut placed: Vec<(u32, Placement)> = Vec::with_capacity(req.messages.len());
        for mut m in req.messages {
            let kind = MessageKind::try_from(m.kind).unwrap_or(MessageKind::Unspecified);
            let kind = if kind == MessageKind::Unspecified {
                MessageKind::Normal
            } else {
                kind
            };
            if !kind_allowed(ttype, kind) {
                return Err(StoreError::TypeConflict(format!(
                    "topic {} is of type {} and does not accept {} messages",
                    topic.topic.name,
                    catalog::type_name(topic.topic.r#type),
                    kind_name(kind)
                )));
            }
            let queue = if kind == MessageKind::Fifo && !m.message_group.is_empty() {
                // One queue per message group, whatever queue the client
                // picked (clients hash groups differently per language), so
                // the group's messages keep their store order.
                (fnv1a(m.message_group.as_bytes()) % u64::from(nq)) as u32
            } else if m.queue < nq {
                m.queue
            } else {
                (self.round_robin.fetch_add(1, Ordering::Relaxed) % nq as usize) as u32
            };
            m.kind = kind as i32;
            m.topic.clear();
            m.queue = 0;
            m.offset = 0;
            m.stored_at_ms = now;
            if kind == MessageKind::Delay && m.deliver_at_ms > now {
                let key = self.timers.next_key(m.deliver_at_ms as u64, topic.id);
                let mut value = queue.to_be_bytes().to_vec();
                m.encode(&mut value)
                    .map_err(|e| StoreError::Storage(e.to_string()))?;
                writes.puts.push((CF_TIMER, key.clone(), value));
                placed.push((queue, Placement::Timer(key)));
            } else if kind == MessageKind::Transaction {
                m.topic = topic.topic.name.clone();
                let (id, puts) = txn::prepare(&self.txn_checks, queue, m, now);
                writes.puts.extend(puts);
                placed.push((queue, Placement::Half(hex_upper(&id))));
            } else {
                placed.push((queue, Placement::Log(writes.items.len())));
                writes.items.push((queue, m.encode_to_vec()));
            }
        }
        let earliest_timer = placed
            .iter()
            .filter_map(|(_, p)| match p {
                Placement::Timer(k) => keys::timer_parts(k).map(|(due, _)| due),
                _ => None,
            })
            .min();
        let offsets = self.committer_tx.write(topic, writes).await?;
        if let Some(due) = earliest_timer {
            self.timers.added(due);
        }
        Ok(AppendResponse {
            results: placed
                .into_iter()
                .map(|(queue, p)| match p {
                    Placement::Log(i) => {
                        let (queue, offset) = offsets.get(i).copied().unwrap_or((queue, 0));
                        AppendResult {
                            queue,
                            offset,
                            ..Default::default()
                        }
                    }
                    Placement::Timer(timer) => AppendResult {
                        queue,
                        timer,
                        ..Default::default()
                    },
                    Placement::Half(transaction_id) => AppendResult {
                        queue,
                        transaction_id,
                        ..Default::default()
                    },
                })
                .collect(),
        })
    }

    async fn pop(&self, req: PopRequest) -> Result<PopResponse> {
        self.check_running()?;
        let group = self.catalog.group(&req.group)?;
        let filter = TagFilter::parse(req.filter.as_ref())?;
        let max = (req.max_messages as usize).clamp(1, MAX_POP_BATCH);
        let deadline = Instant::now() + Duration::from_millis(req.poll_ms);
        loop {
            let topic = self.catalog.topic(&req.topic)?;
            let notified = topic.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.draining.load(Ordering::Acquire) {
                return Ok(PopResponse::default());
            }
            let sub = self.subscription(&group, &topic)?;
            let (messages, dlq, next_visible) =
                self.try_pop(&sub, &group, &topic, &filter, max, req.invisible_ms)?;
            for mv in dlq {
                let (q, o, attempt) = (mv.queue, mv.offset, mv.attempt);
                if let Err(e) = self.move_to_dlq(&group, &sub, mv).await {
                    // Leave it in flight, visible, so a later pop retries the move.
                    sub.state.lock().insert(q, o, attempt, now_ms());
                    return Err(e);
                }
            }
            if !messages.is_empty() || self.draining.load(Ordering::Acquire) {
                return Ok(PopResponse { messages });
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(PopResponse::default());
            }
            let mut wake = deadline;
            if let Some(v) = next_visible {
                let in_ms = (v - now_ms()).max(0) as u64 + 1;
                wake = wake.min(now + Duration::from_millis(in_ms));
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    async fn ack(&self, req: AckRequest) -> Result<AckResponse> {
        self.check_running()?;
        let Located { d, sub, topic, .. } = self.lookup(&req.delivery)?;
        let mut st = sub.state.lock();
        let mut batch = StateBatch::default();
        let unlocks = Self::ack_locked(&mut st, &sub, d, &mut batch)?;
        self.state.write(batch)?;
        drop(st);
        if unlocks {
            // The next message of that FIFO group may be waiting.
            topic.notify.notify_waiters();
        }
        Ok(AckResponse {})
    }

    async fn ack_many(&self, req: AckManyRequest) -> Result<AckManyResponse> {
        self.check_running()?;
        let mut results: Vec<Result<()>> = vec![Ok(()); req.deliveries.len()];
        // The entries of one AckMessage name one group and topic: gather them
        // by subscription, so each takes its lock and writes its state once.
        let mut subs: Vec<(Arc<Subscription>, Arc<TopicEntry>, Vec<usize>)> = Vec::new();
        let refs: Vec<Option<DeliveryRef>> = req.deliveries.into_iter().map(Some).collect();
        for (i, d) in refs.iter().enumerate() {
            match self.lookup(d) {
                Ok(Located { sub, topic, .. }) => {
                    match subs.iter_mut().find(|(s, _, _)| Arc::ptr_eq(s, &sub)) {
                        Some((_, _, idx)) => idx.push(i),
                        None => subs.push((sub, topic, vec![i])),
                    }
                }
                Err(e) => results[i] = Err(e),
            }
        }
        for (sub, topic, idx) in subs {
            let mut st = sub.state.lock();
            let mut batch = StateBatch::default();
            let mut unlocks = false;
            let mut acked = Vec::new();
            for i in idx {
                let Some(d) = refs[i].as_ref() else { continue };
                match Self::ack_locked(&mut st, &sub, d, &mut batch) {
                    Ok(u) => {
                        unlocks |= u;
                        acked.push(i);
                    }
                    Err(e) => results[i] = Err(e),
                }
            }
            // As for a single ack: memory has changed; a failed write fails
            // every entry it carried.
            let written = if batch.is_empty() {
                Ok(())
            } else {
                self.state.write(batch)
            };
            drop(st);
            for i in acked {
                results[i] = written.clone();
            }
            if unlocks {
                topic.notify.notify_waiters();
            }
        }
        Ok(AckManyResponse {
            outcomes: results.into_iter().map(crate::error::ack_outcome).collect(),
        })
    }

    async fn change_invisible(
        &self,
        req: ChangeInvisibleRequest,
    ) -> Result<ChangeInvisibleResponse> {
        self.check_running()?;
        let Located { d, sub, .. } = self.lookup(&req.delivery)?;
        let mut st = sub.state.lock();
        match st.inflight.get(&(d.queue, d.offset)) {
            Some(e)
                if e.attempt == d.attempt
                    && !e.moving
                    && (req.expected_visible_at_ms == 0
                        || req.expected_visible_at_ms == e.visible_at_ms) =>
            {
                let before = e.visible_at_ms;
                let visible_at =
                    now_ms().saturating_add(req.invisible_ms.min(i64::MAX as u64) as i64);
                st.insert(d.queue, d.offset, d.attempt, visible_at);
                let mut batch = StateBatch::default();
                SubState::put_inflight(
                    &mut batch, sub.ids, d.queue, d.offset, d.attempt, visible_at,
                );
                self.state.write(batch)?;
                drop(st);
                if req.invisible_ms == 0 || visible_at < before {
                    // Visible sooner than before (at once, or a push consumer's
                    // nack shortening the auto-renew invisibility to a backoff):
                    // a waiting long poll timed its sleep by the old deadline,
                    // so wake it to look again and time it by the new one.
                    if let Ok(t) = self.catalog.topic(&d.topic) {
                        t.notify.notify_waiters();
                    }
                }
                Ok(ChangeInvisibleResponse {
                    visible_at_ms: visible_at,
                })
            }
            _ => Err(Self::stale(d)),
        }
    }

    async fn forward_to_dlq(&self, req: ForwardToDlqRequest) -> Result<ForwardToDlqResponse> {
        self.check_running()?;
        let Located {
            d,
            group,
            topic,
            sub,
        } = self.lookup(&req.delivery)?;
        {
            let mut st = sub.state.lock();
            match st.inflight.get(&(d.queue, d.offset)) {
                Some(e) if e.attempt == d.attempt && !e.moving => st.mark_moving(d.queue, d.offset),
                _ => return Err(Self::stale(d)),
            }
        }
        let Some(message) = self.read_message(&topic, d.queue, d.offset)? else {
            let mut st = sub.state.lock();
            st.remove(d.queue, d.offset);
            return Err(Self::stale(d));
        };
        self.move_to_dlq(
            &group,
            &sub,
            DlqMove {
                queue: d.queue,
                offset: d.offset,
                attempt: d.attempt,
                message,
            },
        )
        .await?;
        Ok(ForwardToDlqResponse {})
    }

    async fn recall(&self, req: RecallRequest) -> Result<RecallResponse> {
        self.check_running()?;
        let topic = self.catalog.topic(&req.topic)?;
        let message_id = self.timers.recall(&self.db, topic.id, &req.timer)?;
        Ok(RecallResponse { message_id })
    }

    async fn end_transaction(&self, req: EndTransactionRequest) -> Result<EndTransactionResponse> {
        self.check_running()?;
        let topic = self.catalog.topic(&req.topic)?;
        let id = txn::parse_id(&req.transaction_id)
            .ok_or_else(|| txn::check_error(&req.transaction_id))?;
        let _guard = self.txn.lock.lock().await;
        let half =
            txn::load(&self.db, &id)?.ok_or_else(|| txn::check_error(&req.transaction_id))?;
        let mut m = half.message.clone().unwrap_or_default();
        if m.topic != topic.topic.name {
            return Err(txn::check_error(&req.transaction_id));
        }
        let message_id = m.message_id.clone();
        match Resolution::try_from(req.resolution).unwrap_or(Resolution::Unknown) {
            Resolution::Commit => {
                m.topic.clear();
                let queue = if (half.queue as usize) < topic.queues.len() {
                    half.queue
                } else {
                    0
                };
                let writes = Writes {
                    items: vec![(queue, m.encode_to_vec())],
                    puts: Vec::new(),
                    deletes: vec![
                        (txn::CF_TXN, txn::half_key(&id)),
                        (txn::CF_TXN, txn::due_key(half.next_check_at_ms, &id)),
                    ],
                };
                self.committer_tx.write(topic, writes).await?;
            }
            Resolution::Rollback => txn::discard(&self.db, &id, &half)?,
            Resolution::Unknown => {}
        }
        Ok(EndTransactionResponse { message_id })
    }

    async fn watch_transaction_checks(&self) -> Result<CheckStream> {
        use futures::StreamExt;
        self.check_running()?;
        let mut drain = self.drain_signal.subscribe();
        // A lagging watcher skips checks; they are repeated later anyway.
        let checks = tokio_stream::wrappers::BroadcastStream::new(self.txn.checks.subscribe())
            .filter_map(|c| futures::future::ready(c.ok().map(Ok)))
            .take_until(async move {
                let _ = drain.wait_for(|d| *d).await;
            });
        Ok(Box::pin(checks))
    }

    async fn get_topic(&self, req: GetTopicRequest) -> Result<GetTopicResponse> {
        Ok(GetTopicResponse {
            topic: Some(self.catalog.topic(&req.name)?.topic.clone()),
        })
    }

    async fn get_group(&self, req: GetGroupRequest) -> Result<GetGroupResponse> {
        Ok(GetGroupResponse {
            group: Some(self.catalog.group(&req.name)?.group.clone()),
        })
    }

    async fn create_topic(&self, req: CreateTopicRequest) -> Result<CreateTopicResponse> {
        self.check_running()?;
        let topic = catalog::normalize_topic(req.topic.unwrap_or_default())?;
        let (entry, created) = self.catalog.create_topic(&self.db, topic)?;
        if created {
            tracing::info!(topic = %entry.topic.name, r#type = catalog::type_name(entry.topic.r#type), queues = entry.topic.queues, "topic created");
        }
        Ok(CreateTopicResponse {
            topic: Some(entry.topic.clone()),
            created,
        })
    }

    async fn update_topic(&self, req: UpdateTopicRequest) -> Result<UpdateTopicResponse> {
        self.check_running()?;
        let topic = catalog::normalize_topic(req.topic.unwrap_or_default())?;
        let entry = self.catalog.update_topic(&self.db, topic)?;
        Ok(UpdateTopicResponse {
            topic: Some(entry.topic.clone()),
        })
    }

    async fn delete_topic(&self, req: DeleteTopicRequest) -> Result<DeleteTopicResponse> {
        self.check_running()?;
        let old = self.catalog.delete_topic(&self.db, &req.name)?;
        self.drop_subscriptions(|(_, t)| *t == old.id);
        for g in self.catalog.groups() {
            self.state
                .write_and_wait(pop::delete_state(g.id, Some(old.id)))
                .await?;
        }
        tracing::info!(topic = %req.name, "topic deleted");
        Ok(DeleteTopicResponse {})
    }

    async fn list_topics(&self, _req: ListTopicsRequest) -> Result<ListTopicsResponse> {
        Ok(ListTopicsResponse {
            topics: self
                .catalog
                .topics()
                .iter()
                .map(|t| t.topic.clone())
                .collect(),
        })
    }

    async fn describe_topic(&self, req: DescribeTopicRequest) -> Result<DescribeTopicResponse> {
        let t = self.catalog.topic(&req.name)?;
        Ok(DescribeTopicResponse {
            topic: Some(t.topic.clone()),
            queues: t
                .queues
                .iter()
                .enumerate()
                .map(|(q, ql)| QueueStats {
                    queue: q as u32,
                    min_offset: ql.min_offset.load(Ordering::Acquire),
                    max_offset: ql.committed(),
                })
                .collect(),
        })
    }

    async fn create_group(&self, req: CreateGroupRequest) -> Result<CreateGroupResponse> {
        self.check_running()?;
        let group = catalog::normalize_group(req.group.unwrap_or_default())?;
        let (entry, created) = self.catalog.create_group(&self.db, group)?;
        if created {
            tracing::info!(group = %entry.group.name, fifo = entry.group.fifo, max_attempts = entry.group.max_attempts, "consumer group created");
        }
        Ok(CreateGroupResponse {
            group: Some(entry.group.clone()),
            created,
        })
    }

    async fn update_group(&self, req: UpdateGroupRequest) -> Result<UpdateGroupResponse> {
        self.check_running()?;
        let group = catalog::normalize_group(req.group.unwrap_or_default())?;
        let entry = self.catalog.update_group(&self.db, group)?;
        Ok(UpdateGroupResponse {
            group: Some(entry.group.clone()),
        })
    }

    async fn delete_group(&self, req: DeleteGroupRequest) -> Result<DeleteGroupResponse> {
        self.check_running()?;
        let old = self.catalog.delete_group(&self.db, &req.name)?;
        self.drop_subscriptions(|(g, _)| *g == old.id);
        self.state
            .write_and_wait(pop::delete_state(old.id, None))
            .await?;
        tracing::info!(group = %req.name, "consumer group deleted");
        Ok(DeleteGroupResponse {})
    }

    async fn list_groups(&self, _req: ListGroupsRequest) -> Result<ListGroupsResponse> {
        Ok(ListGroupsResponse {
            groups: self
                .catalog
                .groups()
                .iter()
                .map(|g| g.group.clone())
                .collect(),
        })
    }

    async fn describe_group(&self, req: DescribeGroupRequest) -> Result<DescribeGroupResponse> {
        let group = self.catalog.group(&req.name)?;
        let mut topic_ids = pop::topics_of_group(&self.db, group.id)?;
        for (g, t) in self.subs.lock().keys() {
            if *g == group.id && !topic_ids.contains(t) {
                topic_ids.push(*t);
            }
        }
        let mut backlog = Vec::new();
        for id in topic_ids {
            if let Some(topic) = self.catalog.topic_by_id(id) {
                backlog.push(self.backlog(&group, &topic)?);
            }
        }
        backlog.sort_by(|a, b| a.topic.cmp(&b.topic));
        let dlq = match self.catalog.topic(&format!("%DLQ%{}", group.group.name)) {
            Ok(t) => t
                .queues
                .iter()
                .map(|q| q.committed() - q.min_offset.load(Ordering::Acquire).min(q.committed()))
                .sum(),
            Err(_) => 0,
        };
        Ok(DescribeGroupResponse {
            group: Some(group.group.clone()),
            backlog,
            dlq,
        })
    }
}
