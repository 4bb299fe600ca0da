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
//!
//! - each consumed message is acked with an entry of its own; the acks
//!   that queue while earlier ones to the same address and topic are on
//!   the wire leave together, as the entries of one `AckMessage` call
//!   (each message still gets its own entry's status; `consumer::acks`,
//!   which the simple consumer uses too).
//!
//! The parts: `listener` (what the application gives), `cache` (the
//! in-memory budget), `consume` (receive loops and consumption). Every loop
//! and consumption task is owned by the client core and ends at shutdown.

mod cache;
mod consume;
mod listener;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pier_proto::rocketmq::{ClientType, MessageQueue, QueryAssignmentRequest, Subscription};
use tokio::sync::Semaphore;

use self::cache::Cache;
use self::consume::{receive_loop, Shared};
pub use self::listener::{ConsumeResult, MessageListener};
use super::acks::Acks;
use super::FilterExpression;
use crate::config::ClientConfig;
use crate::error::{check, Error, Result};
use crate::session::{self, ClientCore};

/// Configures and starts a [`PushConsumer`].
#[derive(Debug)]
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
        let listener = self
            .listener
            .ok_or_else(|| Error::invalid("a push consumer needs a listener"))?;
        let core = super::new_core(
            self.config,
            ClientType::PushConsumer,
            &self.group,
            &self.subscriptions,
            Subscription::default(),
        )?;
        for (topic, _) in &self.subscriptions {
            core.query_route(topic).await?;
        }
        session::start(&core).await?;
        let shared = Arc::new(Shared {
            core: core.clone(),
            group: self.group.clone(),
            listener,
            cache: Cache::new(self.max_cache_messages, self.max_cache_bytes),
            acks: Acks::new(core.clone(), self.group),
            concurrency: Semaphore::new(self.concurrency),
            lanes: Mutex::new(HashMap::new()),
            receiving: core.cancellation().child_token(),
            invisible: self.invisible_duration,
            consumed: AtomicUsize::new(0),
        });
        for (topic, filter) in &self.subscriptions {
            for queue in assignments(&core, &shared.group, topic).await? {
                for i in 0..core.cluster.len() {
                    for _ in 0..self.receive_concurrency {
                        core.spawn(receive_loop(
                            shared.clone(),
                            i,
                            queue.clone(),
                            filter.clone(),
                        ));
                    }
                }
            }
        }
        Ok(PushConsumer { shared })
    }
}

/// The queues the server assigns this consumer for `topic` ("any queue"
/// when it assigns none).
async fn assignments(core: &ClientCore, group: &str, topic: &str) -> Result<Vec<MessageQueue>> {
    let req = QueryAssignmentRequest {
        endpoints: Some(core.cluster.endpoints()),
        group: Some(core.resource(group)),
        topic: Some(core.resource(topic)),
    };
    let resp = core
        .call(None, req, |mut rpc, r| async move {
            rpc.query_assignment(r).await
        })
        .await?;
    check(resp.status.as_ref())?;
    let mut queues: Vec<MessageQueue> = resp
        .assignments
        .into_iter()
        .filter_map(|a| a.message_queue)
        .collect();
    if queues.is_empty() {
        queues.push(super::any_queue(core, topic));
    }
    Ok(queues)
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
    /// and consuming at once; messages being consumed are not acked and come
    /// back to the group after their invisibility.
    fn drop(&mut self) {
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
        self.shared.cache.messages()
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
        self.shared.receiving.cancel();
        let drained = self.shared.cache.drained();
        if tokio::time::timeout(limit, drained).await.is_err() {
            tracing::warn!(
                left = self.cached_messages(),
                "shutdown: messages still being consumed after {limit:?}"
            );
        }
        self.shared.core.close().await;
    }
}
