//! [`PushConsumer`]: receives in the background and hands each message to
//! a listener.
//!
//! How it works:
//! - one receive loop per (assignment, address) keeps a long poll open, as
//!   long as the in-memory cache (messages and bytes) has room;
//! - when the server says the group is FIFO (`Settings.subscription.fifo`,
//!   read for every batch, so a hot update applies), the messages of one
//!   message group are consumed one after the other, and a failure is
//!   retried locally after the retry policy's delay, then forwarded to the
//!   dead-letter queue; otherwise messages are consumed concurrently (up to
//!   the consumption concurrency) and a failure is a nack
//!   (`ChangeInvisibleDuration` with the retry-policy delay): the server
//!   redelivers it, and dead-letters it after the group's max attempts;
//! - a receive loop whose address fails backs off and retries, while the
//!   loops of the other addresses go on; receipt handles are acked on the
//!   address they came from first, then on any other.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use pier_proto::rocketmq::settings::PubSub;
use pier_proto::rocketmq::{ClientType, Code, MessageQueue, QueryAssignmentRequest, Subscription};
use tokio::sync::{watch, Notify, Semaphore};

use crate::client::{self, ClientCore};
use crate::config::ClientConfig;
use crate::connect::request;
use crate::consumer::{self, FilterExpression, ReceiveSpec};
use crate::error::{check, Error, Result};
use crate::message::MessageView;

/// What a listener says about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeResult {
    /// Consumed: the message is acked.
    Success,
    /// Not consumed: the message is retried later (or dead-lettered).
    Failure,
}

/// Consumes messages for a [`PushConsumer`]. Any `Fn(MessageView) -> impl
/// Future<Output = ConsumeResult>` closure is a listener. A panic counts as
/// [`ConsumeResult::Failure`].
pub trait MessageListener: Send + Sync + 'static {
    /// Consumes one message.
    fn consume(&self, message: MessageView) -> BoxFuture<'static, ConsumeResult>;
}

impl<F, Fut> MessageListener for F
where
    F: Fn(MessageView) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ConsumeResult> + Send + 'static,
{
    fn consume(&self, message: MessageView) -> BoxFuture<'static, ConsumeResult> {
        Box::pin(self(message))
    }
}

/// Configures and starts a [`PushConsumer`].
pub struct PushConsumerBuilder {
    config: ClientConfig,
    group: String,
    subscriptions: Vec<(String, FilterExpression)>,
    listener: Option<Arc<dyn MessageListener>>,
    max_cache_messages: usize,
    max_cache_bytes: usize,
    concurrency: usize,
    receive_concurrency: usize,
    invisible_duration: Option<Duration>,
}

impl std::fmt::Debug for PushConsumerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConsumerBuilder")
            .field("group", &self.group)
            .field("subscriptions", &self.subscriptions)
            .field("max_cache_messages", &self.max_cache_messages)
            .field("max_cache_bytes", &self.max_cache_bytes)
            .field("concurrency", &self.concurrency)
            .field("receive_concurrency", &self.receive_concurrency)
            .finish()
    }
}

impl PushConsumerBuilder {
    /// Subscribes to `topic` with `filter`.
    pub fn subscribe(mut self, topic: impl Into<String>, filter: FilterExpression) -> Self {
        self.subscriptions.push((topic.into(), filter));
        self
    }

    /// Sets the listener (required).
    pub fn listener(mut self, listener: impl MessageListener) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Most messages held in memory (received, not yet consumed). Default 1024.
    pub fn max_cache_messages(mut self, n: usize) -> Self {
        self.max_cache_messages = n.max(1);
        self
    }

    /// Most body bytes held in memory. Default 64 MiB.
    pub fn max_cache_bytes(mut self, n: usize) -> Self {
        self.max_cache_bytes = n.max(1);
        self
    }

    /// Most messages consumed at the same time (non-FIFO groups; FIFO
    /// groups run one message per message group). Default 16.
    pub fn consumption_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Long polls kept open at the same time per assignment and address.
    /// Default 1 (as the official clients); more helps drain a backlog fast
    /// from a pop-based server such as Pier, where every poll is served from
    /// every queue.
    pub fn receive_concurrency(mut self, n: usize) -> Self {
        self.receive_concurrency = n.max(1);
        self
    }

    /// Receives with a fixed invisibility instead of letting the server pick
    /// and renew it (the default, `auto_renew`). A message not consumed
    /// within `d` is delivered again; a short `d` brings messages stranded
    /// on a crashed proxy back sooner.
    pub fn invisible_duration(mut self, d: Duration) -> Self {
        self.invisible_duration = Some(d);
        self
    }

    /// Connects, checks the topics, exchanges settings and starts consuming.
    pub async fn start(self) -> Result<PushConsumer> {
        if self.group.trim().is_empty() {
            return Err(Error::invalid("the consumer group name is empty"));
        }
        if self.subscriptions.is_empty() {
            return Err(Error::invalid("subscribe to at least one topic"));
        }
        let listener = self
            .listener
            .ok_or_else(|| Error::invalid("a push consumer needs a listener"))?;
        let entries = consumer::subscription_entries(self.config.namespace(), &self.subscriptions);
        let core = ClientCore::new(
            self.config,
            ClientType::PushConsumer,
            Some(self.group.clone()),
            PubSub::Subscription(Subscription {
                group: None,
                subscriptions: entries,
                ..Default::default()
            }),
            None,
        )?;
        let group = core.resource(&self.group);
        core.update_local(|s| {
            if let Some(PubSub::Subscription(sub)) = s.pub_sub.as_mut() {
                sub.group = Some(group);
            }
        });
        for (topic, _) in &self.subscriptions {
            core.query_route(topic).await?;
        }
        core.start().await?;
        let shared = Arc::new(Shared {
            core: core.clone(),
            group: self.group,
            listener,
            max_cache_messages: self.max_cache_messages,
            max_cache_bytes: self.max_cache_bytes,
            cached_messages: AtomicUsize::new(0),
            cached_bytes: AtomicUsize::new(0),
            room: Notify::new(),
            idle: Notify::new(),
            concurrency: Semaphore::new(self.concurrency),
            lanes: Mutex::new(HashMap::new()),
            stop: watch::channel(false).0,
            invisible: self.invisible_duration,
            consumed: AtomicUsize::new(0),
        });
        for (topic, filter) in &self.subscriptions {
            for queue in assignments(&core, &shared.group, topic).await? {
                for i in 0..core.cluster.len() {
                    for _ in 0..self.receive_concurrency {
                        let task = tokio::spawn(receive_loop(
                            shared.clone(),
                            i,
                            queue.clone(),
                            filter.clone(),
                        ));
                        core.own(task);
                    }
                }
            }
        }
        Ok(PushConsumer { shared })
    }
}

async fn assignments(core: &ClientCore, group: &str, topic: &str) -> Result<Vec<MessageQueue>> {
    let req = QueryAssignmentRequest {
        topic: Some(core.resource(topic)),
        group: Some(core.resource(group)),
        endpoints: Some(core.cluster.endpoints()),
    };
    let (_, resp) = core
        .unary(None, |mut rpc, t| {
            let req = req.clone();
            async move { Ok(rpc.query_assignment(request(req, t)).await?.into_inner()) }
        })
        .await?;
    check(resp.status.as_ref())?;
    let mut queues: Vec<MessageQueue> = resp
        .assignments
        .into_iter()
        .filter_map(|a| a.message_queue)
        .collect();
    if queues.is_empty() {
        queues.push(consumer::any_queue(core, topic));
    }
    Ok(queues)
}

struct Shared {
    core: Arc<ClientCore>,
    group: String,
    listener: Arc<dyn MessageListener>,
    max_cache_messages: usize,
    max_cache_bytes: usize,
    cached_messages: AtomicUsize,
    cached_bytes: AtomicUsize,
    /// Signalled when cache room frees up.
    room: Notify,
    /// Signalled when the cache becomes empty.
    idle: Notify,
    concurrency: Semaphore,
    /// FIFO: messages waiting per message group; a group present here has a
    /// task consuming it.
    lanes: Mutex<HashMap<String, VecDeque<MessageView>>>,
    /// Set at shutdown: receive loops stop.
    stop: watch::Sender<bool>,
    invisible: Option<Duration>,
    consumed: AtomicUsize,
}

impl Shared {
    fn settings_fifo(&self) -> bool {
        self.core
            .with_subscription(|s| s.and_then(|s| s.fifo).unwrap_or(false))
    }

    fn server_batch(&self) -> usize {
        self.core.with_subscription(|s| {
            s.and_then(|s| s.receive_batch_size)
                .and_then(|b| usize::try_from(b).ok())
                .filter(|b| *b > 0)
                .unwrap_or(32)
        })
    }

    fn long_poll(&self) -> Duration {
        self.core.with_subscription(|s| {
            s.and_then(|s| s.long_polling_timeout.as_ref())
                .map(client::std_duration)
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(20))
        })
    }

    /// Reserves `want` message slots in the cache (at most the whole
    /// cache), waiting until that many are free and the byte budget is not
    /// used up; `None` at shutdown. Slots are reserved before the receive,
    /// so concurrent polls never hold more than `max_cache_messages` between
    /// them (bytes are only known on arrival: that limit can be passed by
    /// one batch per poll).
    ///
    /// A poll waits for room for a whole batch rather than taking whatever
    /// is free: on a full cache every consumed message frees one slot, and
    /// taking it at once turns each poll into a receive of one message (one
    /// round trip and one server-side pop per message, measured at 70% of
    /// the polls of a backlog drain).
    async fn reserve(&self, want: usize, stop: &mut watch::Receiver<bool>) -> Option<usize> {
        let need = want.clamp(1, self.max_cache_messages);
        loop {
            let notified = self.room.notified();
            let msgs = self.cached_messages.load(Ordering::Acquire);
            let bytes = self.cached_bytes.load(Ordering::Acquire);
            if msgs + need <= self.max_cache_messages && bytes < self.max_cache_bytes {
                if self
                    .cached_messages
                    .compare_exchange(msgs, msgs + need, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Some(need);
                }
                continue;
            }
            tokio::select! {
                _ = notified => {}
                _ = stop.changed() => return None,
            }
            if *stop.borrow() {
                return None;
            }
        }
    }

    /// Gives back `n` reserved slots that no message filled.
    fn unreserve(&self, n: usize) {
        if n == 0 {
            return;
        }
        let left = self.cached_messages.fetch_sub(n, Ordering::AcqRel) - n;
        self.room.notify_waiters();
        if left == 0 {
            self.idle.notify_waiters();
        }
    }

    /// Counts an arrived message's bytes (its slot was reserved).
    fn cache(&self, m: &MessageView) {
        self.cached_bytes.fetch_add(m.size(), Ordering::AcqRel);
    }

    fn release(&self, m: &MessageView) {
        self.cached_bytes.fetch_sub(m.size(), Ordering::AcqRel);
        let left = self.cached_messages.fetch_sub(1, Ordering::AcqRel) - 1;
        self.room.notify_waiters();
        if left == 0 {
            self.idle.notify_waiters();
        }
    }
}

async fn receive_loop(
    shared: Arc<Shared>,
    i: usize,
    queue: MessageQueue,
    filter: FilterExpression,
) {
    let mut stop = shared.stop.subscribe();
    let mut attempt_id = uuid::Uuid::new_v4().to_string();
    let mut backoff = Duration::from_millis(200);
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(reserved) = shared.reserve(shared.server_batch(), &mut stop).await else {
            return;
        };
        let topic = queue
            .topic
            .as_ref()
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let spec = ReceiveSpec {
            group: shared.group.clone(),
            queue: queue.clone(),
            filter: filter.clone(),
            batch: i32::try_from(reserved).unwrap_or(i32::MAX),
            invisible: shared.invisible,
            long_poll: shared.long_poll(),
            attempt_id: Some(attempt_id.clone()),
        };
        let r = tokio::select! {
            r = consumer::receive(&shared.core, i, &spec) => r,
            _ = stop.changed() => {
                shared.unreserve(reserved);
                return;
            }
        };
        // A server may return more than asked; those overdraw the cache.
        let arrived = r.as_ref().map_or(0, Vec::len);
        if arrived > reserved {
            shared
                .cached_messages
                .fetch_add(arrived - reserved, Ordering::AcqRel);
        } else {
            shared.unreserve(reserved - arrived);
        }
        match r {
            Ok(messages) => {
                backoff = Duration::from_millis(200);
                if messages.is_empty() {
                    continue;
                }
                attempt_id = uuid::Uuid::new_v4().to_string();
                let fifo = shared.settings_fifo();
                for m in messages {
                    shared.cache(&m);
                    dispatch(&shared, m, fifo);
                }
            }
            Err(e) => {
                let delay = if e.code() == Some(Code::TooManyRequests) {
                    Duration::from_millis(20)
                } else {
                    backoff
                };
                tracing::debug!(endpoint = %shared.core.cluster.addr(i), topic, error = %e, ?delay, "receive failed");
                backoff = (backoff * 2).min(Duration::from_secs(2));
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

fn dispatch(shared: &Arc<Shared>, m: MessageView, fifo: bool) {
    match m.message_group().map(str::to_owned) {
        Some(group) if fifo => {
            let start = {
                let Ok(mut lanes) = shared.lanes.lock() else {
                    return;
                };
                match lanes.get_mut(&group) {
                    Some(lane) => {
                        lane.push_back(m);
                        None
                    }
                    None => {
                        lanes.insert(group.clone(), VecDeque::new());
                        Some(m)
                    }
                }
            };
            if let Some(first) = start {
                tokio::spawn(consume_lane(shared.clone(), group, first));
            }
        }
        _ => {
            let shared = shared.clone();
            tokio::spawn(async move {
                let permit = shared.concurrency.acquire().await;
                consume(&shared, &m, false).await;
                drop(permit);
                shared.release(&m);
            });
        }
    }
}

/// Consumes the messages of one FIFO message group in order.
async fn consume_lane(shared: Arc<Shared>, group: String, first: MessageView) {
    let mut next = Some(first);
    while let Some(m) = next {
        consume(&shared, &m, true).await;
        shared.release(&m);
        next = match shared.lanes.lock() {
            Ok(mut lanes) => match lanes.get_mut(&group).and_then(VecDeque::pop_front) {
                Some(m) => Some(m),
                None => {
                    lanes.remove(&group);
                    None
                }
            },
            Err(_) => None,
        };
    }
}

async fn run_listener(shared: &Shared, m: &MessageView) -> ConsumeResult {
    match AssertUnwindSafe(shared.listener.consume(m.clone()))
        .catch_unwind()
        .await
    {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!(
                message_id = m.message_id(),
                "the listener panicked; counted as a failure"
            );
            ConsumeResult::Failure
        }
    }
}

/// One message's consumption, to its end: acked, nacked or dead-lettered.
async fn consume(shared: &Shared, m: &MessageView, fifo: bool) {
    let core = &shared.core;
    let policy = core.retry_policy(client::default_consumer_policy());
    let mut attempt = m.delivery_attempt().max(1);
    loop {
        match run_listener(shared, m).await {
            ConsumeResult::Success => {
                shared.consumed.fetch_add(1, Ordering::Relaxed);
                settle(shared, m, "ack", || consumer::ack(core, &shared.group, m)).await;
                return;
            }
            ConsumeResult::Failure if fifo => {
                if attempt < policy.max_attempts {
                    tokio::time::sleep(client::retry_delay(&policy, attempt)).await;
                    attempt += 1;
                    continue;
                }
                settle(shared, m, "dead-letter", || {
                    consumer::forward_to_dlq(core, &shared.group, m, attempt, policy.max_attempts)
                })
                .await;
                return;
            }
            ConsumeResult::Failure => {
                let delay = client::retry_delay(&policy, attempt);
                settle(shared, m, "nack", || async move {
                    consumer::change_invisible(core, &shared.group, m, delay)
                        .await
                        .map(drop)
                })
                .await;
                return;
            }
        }
    }
}

/// Runs an ack/nack/DLQ call, retrying transient failures a few times; an
/// invalid receipt handle (the delivery expired) is final.
async fn settle<F, Fut>(shared: &Shared, m: &MessageView, what: &str, call: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    for attempt in 1..=5 {
        match call().await {
            Ok(()) => return,
            Err(e) if e.is_retryable() && attempt < 5 && !matches!(e, Error::Shutdown) => {
                tracing::debug!(message_id = m.message_id(), error = %e, "{what} failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            Err(e) => {
                tracing::warn!(message_id = m.message_id(), group = %shared.group, error = %e, "{what} failed");
                return;
            }
        }
    }
}

/// Consumes messages in the background through a listener.
///
/// ```no_run
/// # async fn demo() -> pier::Result<()> {
/// use pier::{ClientConfig, ConsumeResult, FilterExpression, MessageView, PushConsumer};
///
/// let consumer = PushConsumer::builder(ClientConfig::new("127.0.0.1:8081")?, "billing")
///     .subscribe("orders", FilterExpression::all())
///     .listener(|m: MessageView| async move {
///         println!("{}", m.body_text());
///         ConsumeResult::Success
///     })
///     .start()
///     .await?;
/// // ... later: finish what was received, then leave.
/// consumer.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct PushConsumer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PushConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConsumer")
            .field("group", &self.shared.group)
            .field("core", &self.shared.core)
            .finish()
    }
}

impl Drop for PushConsumer {
    /// Dropped without [`shutdown`](PushConsumer::shutdown): stops receiving
    /// at once; messages being consumed are not acked and come back to the
    /// group after their invisibility.
    fn drop(&mut self) {
        self.shared.stop.send_replace(true);
        self.shared.core.abort();
    }
}

impl PushConsumer {
    /// Starts configuring a consumer of `group`.
    pub fn builder(config: ClientConfig, group: impl Into<String>) -> PushConsumerBuilder {
        PushConsumerBuilder {
            config,
            group: group.into(),
            subscriptions: Vec::new(),
            listener: None,
            max_cache_messages: 1024,
            max_cache_bytes: 64 * 1024 * 1024,
            concurrency: 16,
            receive_concurrency: 1,
            invisible_duration: None,
        }
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.shared.group
    }

    /// Whether the server declared the group FIFO.
    pub fn is_fifo(&self) -> bool {
        self.shared.settings_fifo()
    }

    /// Messages received and not yet consumed (acked, nacked or
    /// dead-lettered).
    pub fn cached_messages(&self) -> usize {
        self.shared.cached_messages.load(Ordering::Acquire)
    }

    /// Messages the listener consumed successfully so far.
    pub fn consumed(&self) -> usize {
        self.shared.consumed.load(Ordering::Relaxed)
    }

    /// Stops receiving, finishes every message already received (waiting at
    /// most 30 s), then leaves.
    pub async fn shutdown(&self) {
        self.shutdown_within(Duration::from_secs(30)).await;
    }

    /// [`shutdown`](Self::shutdown) waiting at most `limit` for in-flight
    /// messages; those left come back to the group after their
    /// invisibility.
    pub async fn shutdown_within(&self, limit: Duration) {
        self.shared.stop.send_replace(true);
        let drained = async {
            loop {
                let idle = self.shared.idle.notified();
                if self.shared.cached_messages.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        };
        if tokio::time::timeout(limit, drained).await.is_err() {
            tracing::warn!(
                left = self.cached_messages(),
                "shutdown: messages still being consumed after {limit:?}"
            );
        }
        self.shared.core.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(max_messages: usize) -> Shared {
        let core = ClientCore::new(
            ClientConfig::new("127.0.0.1:1").unwrap(),
            ClientType::PushConsumer,
            Some("g".into()),
            PubSub::Subscription(Subscription::default()),
            None,
        )
        .unwrap();
        Shared {
            core,
            group: "g".into(),
            listener: Arc::new(|_m: MessageView| async { ConsumeResult::Success }),
            max_cache_messages: max_messages,
            max_cache_bytes: 1 << 20,
            cached_messages: AtomicUsize::new(0),
            cached_bytes: AtomicUsize::new(0),
            room: Notify::new(),
            idle: Notify::new(),
            concurrency: Semaphore::new(1),
            lanes: Mutex::new(HashMap::new()),
            stop: watch::channel(false).0,
            invisible: None,
            consumed: AtomicUsize::new(0),
        }
    }

    #[tokio::test]
    async fn cache_slots_are_reserved_before_receiving() {
        let s = shared(10);
        let mut stop = s.stop.subscribe();
        assert_eq!(s.reserve(32, &mut stop).await, Some(10));
        // Full: the next poll waits for room.
        let blocked =
            tokio::time::timeout(Duration::from_millis(50), s.reserve(32, &mut stop)).await;
        assert!(blocked.is_err());
        s.unreserve(4);
        assert_eq!(s.reserve(4, &mut stop).await, Some(4));
        // A poll waits for room for its whole batch, not for one slot.
        s.unreserve(6);
        let short = tokio::time::timeout(Duration::from_millis(50), s.reserve(8, &mut stop)).await;
        assert!(short.is_err());
        s.unreserve(2);
        assert_eq!(s.reserve(8, &mut stop).await, Some(8));
        // Shutdown releases a waiting poll.
        let waiting = s.reserve(1, &mut stop);
        s.stop.send_replace(true);
        assert_eq!(waiting.await, None);
    }
}
