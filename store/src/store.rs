//! [`Store`]: the in-process [`StoreApi`] over RocksDB. It only composes
//! the parts that own each concern and hands every call to its owner:
//!
//! - [`Catalog`]: topics and groups;
//! - [`Auth`]: users, ACL rules, the key files;
//! - [`MessageLog`]: appends (placement, group commit) and reads;
//! - [`Consumption`]: pop, ack, invisibility, dead-lettering;
//! - [`Timers`], [`Transactions`], [`Retention`]: delay messages,
//!   transactions and expiry, each with its background thread.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use pier_node::trace::span as trace;
use pier_proto::admin::*;
use pier_proto::store::*;

use crate::api::{CheckStream, StoreApi};
use crate::auth::Auth;
use crate::catalog::Catalog;
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::db::Db;
use crate::error::{ack_outcome, Result, StoreError};
use crate::log::{FlushMode, MessageLog};
use crate::metrics;
use crate::pop::Consumption;
use crate::retention::{self, Retention};
use crate::timer::Timers;
use crate::txn::{CheckPolicy, Transactions};

/// Default retention: 3 days, as RocketMQ's `fileReservedTime`.
pub const DEFAULT_RETENTION_MS: u64 = 72 * 3600 * 1000;

/// How a store is run.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// When a send is acknowledged.
    pub flush: FlushMode,
    /// When an ack, a change of invisible time and a receive (its attempt
    /// count) are answered: `Sync` after a WAL sync, `Async` at once (a
    /// crash may then redeliver acked messages).
    pub ack_flush: FlushMode,
    /// Messages older than this are deleted (0 keeps them forever).
    pub retention_ms: u64,
    /// When unresolved transactions are checked, and rolled back.
    pub txn_checks: CheckPolicy,
    /// Most messages one consumer group may hold received and not yet
    /// acked, over all its topics (0: no limit). A receive at the limit
    /// still gets redeliveries, but no new message: it fails with
    /// [`crate::StoreError::TooManyInflight`] when nothing else is due.
    pub max_inflight_per_group: u64,
    /// Directory of the write-ahead log (`None`: the data directory), e.g.
    /// on a device of its own. A store opens only with the directory its
    /// WAL has been in.
    pub wal_dir: Option<PathBuf>,
}

impl StoreOptions {
    /// Default of [`StoreOptions::max_inflight_per_group`]: far above what
    /// a healthy group holds (a push consumer caches a few thousand
    /// messages at most), low enough that a consumer which
    /// never acks cannot grow the store's memory (about 100 bytes per
    /// in-flight message) without bound.
    pub const DEFAULT_MAX_INFLIGHT_PER_GROUP: u64 = 100_000;
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            flush: FlushMode::Sync,
            ack_flush: FlushMode::Sync,
            retention_ms: DEFAULT_RETENTION_MS,
            txn_checks: CheckPolicy::default(),
            max_inflight_per_group: StoreOptions::DEFAULT_MAX_INFLIGHT_PER_GROUP,
            wal_dir: None,
        }
    }
}

/// A store in this process.
pub struct Store {
    db: Arc<Db>,
    clock: SharedClock,
    catalog: Arc<Catalog>,
    auth: Auth,
    log: Arc<MessageLog>,
    pop: Arc<Consumption>,
    timers: Timers,
    txn: Transactions,
    retention: Retention,
    drain_signal: tokio::sync::watch::Sender<bool>,
    shutting_down: AtomicBool,
    /// The gauges reading this store, registered while it is open.
    _gauges: metrics::gauges::Gauges,
}

impl Store {
    /// Opens (or creates) a store in `dir`.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store> {
        Store::open_with_clock(dir, opts, Arc::new(SystemClock))
    }

    /// Opens a store whose deadlines follow `clock` (tests drive time).
    pub fn open_with_clock(dir: &Path, opts: StoreOptions, clock: Arc<dyn Clock>) -> Result<Store> {
        opts.txn_checks.validate()?;
        let db = Arc::new(Db::open(dir, opts.wal_dir.as_deref())?);
        let catalog = Arc::new(Catalog::load(db.clone(), clock.clone())?);
        // Before anything appends: marks what predates the message index.
        crate::log::index::prepare(&db, &catalog)?;
        let auth = Auth::open(dir, db.clone(), clock.clone())?;
        let log = Arc::new(MessageLog::start(db.clone(), clock.clone(), opts.flush)?);
        let pop = Arc::new(Consumption::start(
            db.clone(),
            clock.clone(),
            catalog.clone(),
            log.clone(),
            opts.ack_flush,
            opts.max_inflight_per_group,
        )?);
        let timers = Timers::start(
            db.clone(),
            catalog.clone(),
            log.commit_handle()?,
            clock.clone(),
        )?;
        let txn = Transactions::start(db.clone(), catalog.clone(), clock.clone(), opts.txn_checks)?;
        let retention = Retention::start(
            db.clone(),
            catalog.clone(),
            clock.clone(),
            opts.retention_ms,
        )?;
        tracing::info!(dir = %dir.display(), topics = catalog.topics().len(), groups = catalog.groups().len(), users = auth.user_count(), flush = ?opts.flush, ack_flush = ?opts.ack_flush, "store opened");
        let _gauges = metrics::gauges::register(metrics::gauges::Sources {
            catalog: Arc::downgrade(&catalog),
            pop: Arc::downgrade(&pop),
            db: Arc::downgrade(&db),
            clock: clock.clone(),
        });
        Ok(Store {
            _gauges,
            db,
            clock,
            catalog,
            auth,
            log,
            pop,
            timers,
            txn,
            retention,
            drain_signal: tokio::sync::watch::channel(false).0,
            shutting_down: AtomicBool::new(false),
        })
    }

    /// First step of a graceful stop: long polls answer "no message" at
    /// once, so the servers in front can finish their in-flight calls.
    pub fn drain(&self) {
        self.pop.drain();
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
        self.log.shutdown();
        self.pop.shutdown();
        if let Err(e) = self.db.flush_wal() {
            tracing::warn!(error = %e.report(), "flushing the WAL at shutdown failed");
        }
        tracing::info!("store shut down");
    }

    /// Turns true once a write to the write-ahead log has failed: from then
    /// on the store refuses every write (`StoreError::Poisoned`), so a node
    /// should stop and be restarted rather than answer errors forever.
    pub fn poisoned(&self) -> tokio::sync::watch::Receiver<bool> {
        self.db.watch_poison()
    }

    /// Runs one retention sweep now (the background thread runs one every
    /// minute); returns how many messages were deleted.
    pub fn sweep_retention(&self, retention_ms: u64) -> Result<u64> {
        retention::sweep(&self.db, &self.catalog, retention_ms, self.clock.now_ms())
    }

    /// Counts the entries of the message index (keys and ids); for tests,
    /// which check that every path deleting messages deletes these too.
    #[doc(hidden)]
    pub fn index_entries(&self) -> Result<u64> {
        crate::log::index::count(&self.db)
    }

    /// Fails once the store is shutting down, or refuses writes.
    fn check_running(&self) -> Result<()> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(StoreError::ShuttingDown);
        }
        self.db.check_writable()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[async_trait]
impl StoreApi for Store {
    async fn append(&self, req: AppendRequest) -> Result<AppendResponse> {
        trace::child("store.append", async {
            self.check_running()?;
            let topic = self.catalog.topic(&req.topic)?;
            let sent = metrics::Sent::of(&req.messages);
            let appended = self
                .log
                .append(topic, req.messages, &self.timers, &self.txn)
                .await?;
            metrics::get().sent(&req.topic, sent);
            Ok(appended)
        })
        .await
    }

    async fn pop(&self, req: PopRequest) -> Result<PopResponse> {
        trace::child("store.pop", async {
            self.check_running()?;
            let (topic, group) = (req.topic.clone(), req.group.clone());
            let popped = self.pop.pop(req).await?;
            metrics::get().delivered(&topic, &group, &popped.messages);
            Ok(popped)
        })
        .await
    }

    async fn ack(&self, req: AckRequest) -> Result<AckResponse> {
        trace::child("store.ack", async {
            self.check_running()?;
            let d = req
                .delivery
                .ok_or_else(|| StoreError::invalid("delivery reference missing"))?;
            // One entry of `ack_many`, which answers each entry it is given.
            for r in self.pop.ack_many(vec![d]).await {
                r?;
            }
            Ok(AckResponse {})
        })
        .await
    }

    async fn ack_many(&self, req: AckManyRequest) -> Result<AckManyResponse> {
        trace::child("store.ack", async {
            self.check_running()?;
            let results = self.pop.ack_many(req.deliveries).await;
            Ok(AckManyResponse {
                outcomes: results.into_iter().map(ack_outcome).collect(),
            })
        })
        .await
    }

    async fn change_invisible(
        &self,
        req: ChangeInvisibleRequest,
    ) -> Result<ChangeInvisibleResponse> {
        self.check_running()?;
        let (visible_at_ms, handle_seq) = self.pop.change_invisible(&req).await?;
        Ok(ChangeInvisibleResponse {
            visible_at_ms,
            handle_seq,
        })
    }

    async fn release(&self, req: ReleaseRequest) -> Result<ReleaseResponse> {
        Ok(ReleaseResponse {
            released: self.pop.release(req.deliveries).await?,
        })
    }

    async fn forward_to_dlq(&self, req: ForwardToDlqRequest) -> Result<ForwardToDlqResponse> {
        self.check_running()?;
        self.pop.forward_to_dlq(&req.delivery).await?;
        Ok(ForwardToDlqResponse {})
    }

    async fn recall(&self, req: RecallRequest) -> Result<RecallResponse> {
        self.check_running()?;
        let topic = self.catalog.topic(&req.topic)?;
        let message_id = self
            .timers
            .recall(&topic.topic.name, topic.id, &req.timer)?;
        Ok(RecallResponse { message_id })
    }

    async fn end_transaction(&self, req: EndTransactionRequest) -> Result<EndTransactionResponse> {
        self.check_running()?;
        self.txn.end(&self.log, req).await
    }

    async fn watch_transaction_checks(&self) -> Result<CheckStream> {
        use futures::StreamExt;
        self.check_running()?;
        let mut drain = self.drain_signal.subscribe();
        // A lagging watcher skips checks; they are repeated later anyway.
        let checks = tokio_stream::wrappers::BroadcastStream::new(self.txn.watch())
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
        let (entry, created) = self.catalog.create_topic(req.topic.unwrap_or_default())?;
        Ok(CreateTopicResponse {
            topic: Some(entry.topic.clone()),
            created,
        })
    }

    async fn update_topic(&self, req: UpdateTopicRequest) -> Result<UpdateTopicResponse> {
        self.check_running()?;
        let entry = self.catalog.update_topic(req.topic.unwrap_or_default())?;
        Ok(UpdateTopicResponse {
            topic: Some(entry.topic.clone()),
        })
    }

    async fn delete_topic(&self, req: DeleteTopicRequest) -> Result<DeleteTopicResponse> {
        self.check_running()?;
        let old = self.catalog.delete_topic(&req.name)?;
        self.pop.forget_topic(old.id).await?;
        Ok(DeleteTopicResponse {})
    }

    async fn list_topics(&self, _req: ListTopicsRequest) -> Result<ListTopicsResponse> {
        let topics = self.catalog.topics();
        Ok(ListTopicsResponse {
            topics: topics.iter().map(|t| t.topic.clone()).collect(),
        })
    }

    async fn describe_topic(&self, req: DescribeTopicRequest) -> Result<DescribeTopicResponse> {
        let t = self.catalog.topic(&req.name)?;
        Ok(DescribeTopicResponse {
            topic: Some(t.topic.clone()),
            queues: t.queue_stats(),
        })
    }

    async fn create_group(&self, req: CreateGroupRequest) -> Result<CreateGroupResponse> {
        self.check_running()?;
        let (entry, created) = self.catalog.create_group(req.group.unwrap_or_default())?;
        Ok(CreateGroupResponse {
            group: Some(entry.group.clone()),
            created,
        })
    }

    async fn update_group(&self, req: UpdateGroupRequest) -> Result<UpdateGroupResponse> {
        self.check_running()?;
        let entry = self.catalog.update_group(req.group.unwrap_or_default())?;
        Ok(UpdateGroupResponse {
            group: Some(entry.group.clone()),
        })
    }

    async fn delete_group(&self, req: DeleteGroupRequest) -> Result<DeleteGroupResponse> {
        self.check_running()?;
        let old = self.catalog.delete_group(&req.name)?;
        self.pop.forget_group(old.id).await?;
        Ok(DeleteGroupResponse {})
    }

    async fn list_groups(&self, _req: ListGroupsRequest) -> Result<ListGroupsResponse> {
        let groups = self.catalog.groups();
        Ok(ListGroupsResponse {
            groups: groups.iter().map(|g| g.group.clone()).collect(),
        })
    }

    async fn describe_group(&self, req: DescribeGroupRequest) -> Result<DescribeGroupResponse> {
        let group = self.catalog.group(&req.name)?;
        let backlog = self.pop.backlog(&group)?;
        let dlq = match self.catalog.topic(&format!("%DLQ%{}", group.group.name)) {
            Ok(t) => self.log.count(&t)?,
            Err(_) => 0,
        };
        Ok(DescribeGroupResponse {
            group: Some(group.group.clone()),
            backlog,
            dlq,
        })
    }

    async fn create_user(&self, req: CreateUserRequest) -> Result<CreateUserResponse> {
        self.check_running()?;
        self.auth.create_user(req)
    }

    async fn delete_user(&self, req: DeleteUserRequest) -> Result<DeleteUserResponse> {
        self.check_running()?;
        self.auth.delete_user(&req.name)
    }

    async fn list_users(&self, _req: ListUsersRequest) -> Result<ListUsersResponse> {
        Ok(self.auth.list_users())
    }

    async fn describe_user(&self, req: DescribeUserRequest) -> Result<DescribeUserResponse> {
        self.auth.describe_user(&req.name)
    }

    async fn grant_acl(&self, req: GrantAclRequest) -> Result<GrantAclResponse> {
        self.check_running()?;
        self.auth.grant(req.rule.unwrap_or_default())
    }

    async fn revoke_acl(&self, req: RevokeAclRequest) -> Result<RevokeAclResponse> {
        self.check_running()?;
        self.auth.revoke(req)
    }

    async fn list_acls(&self, req: ListAclsRequest) -> Result<ListAclsResponse> {
        Ok(self.auth.list_acls(&req.user))
    }

    async fn redrive_dlq(&self, req: RedriveDlqRequest) -> Result<RedriveDlqResponse> {
        self.check_running()?;
        self.pop.redrive(req).await
    }

    async fn reset_offset(&self, req: ResetOffsetRequest) -> Result<ResetOffsetResponse> {
        self.check_running()?;
        self.pop.reset(req).await
    }

    async fn purge_topic(&self, req: PurgeTopicRequest) -> Result<PurgeTopicResponse> {
        self.check_running()?;
        let topic = self.catalog.topic(&req.topic)?;
        Ok(PurgeTopicResponse {
            purged: self.log.purge(&topic)?,
        })
    }

    async fn find_messages(&self, req: FindMessagesRequest) -> Result<FindMessagesResponse> {
        self.pop.find(req)
    }

    async fn auth_snapshot(&self, req: AuthSnapshotRequest) -> Result<AuthSnapshotResponse> {
        // A drain ends the long poll, so a stopping node is not held up.
        let mut drain = self.drain_signal.subscribe();
        let stop = async move {
            let _ = drain.wait_for(|d| *d).await;
        };
        Ok(self.auth.snapshot(req, stop).await)
    }

    async fn receipt_secret(&self, _req: ReceiptSecretRequest) -> Result<ReceiptSecretResponse> {
        Ok(ReceiptSecretResponse {
            secret: self.auth.receipt_secret().expose().to_vec(),
        })
    }
}

#[cfg(test)]
impl Store {
    /// Opens a store in `dir` with the default options and creates `topic`
    /// in it: where the crate's unit tests start.
    pub(crate) async fn open_with_topic(dir: &Path, topic: Topic) -> Store {
        let store = Store::open(dir, StoreOptions::default()).unwrap();
        let req = CreateTopicRequest { topic: Some(topic) };
        store.create_topic(req).await.unwrap();
        store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn after_a_failed_write_every_write_fails_and_reads_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let topic = Topic {
            name: "t".into(),
            ..Default::default()
        };
        let store = Store::open_with_topic(dir.path(), topic.clone()).await;
        store
            .create_group(CreateGroupRequest {
                group: Some(ConsumerGroup {
                    name: "g".into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap();
        let poisoned = store.poisoned();
        assert!(!*poisoned.borrow());
        store.db.fail_a_write();
        assert!(*poisoned.borrow(), "watchers learn of the poison");

        let sent = store
            .append(AppendRequest {
                topic: "t".into(),
                messages: vec![StoredMessage::default()],
            })
            .await;
        assert!(matches!(sent, Err(StoreError::Poisoned)), "{sent:?}");
        let popped = store
            .pop(PopRequest {
                group: "g".into(),
                topic: "t".into(),
                max_messages: 1,
                ..Default::default()
            })
            .await;
        assert!(matches!(popped, Err(StoreError::Poisoned)), "{popped:?}");
        let created = store
            .create_topic(CreateTopicRequest {
                topic: Some(Topic {
                    name: "u".into(),
                    ..topic
                }),
            })
            .await;
        assert!(matches!(created, Err(StoreError::Poisoned)), "{created:?}");
        // Even a write that slips past the entry check is refused.
        let mut batch = store.db.batch().unwrap();
        batch.put(crate::db::Cf::Meta, b"x", b"y");
        let direct = store
            .db
            .write(batch, crate::db::Durability::Synced, "a direct write");
        assert!(matches!(direct, Err(StoreError::Poisoned)), "{direct:?}");
        assert!(store
            .get_topic(GetTopicRequest { name: "t".into() })
            .await
            .is_ok());
    }
}
