//! The push consumer's work: receive loops that keep a long poll open
//! while the cache has room, and the consumption of each message (in
//! order per message group for FIFO groups), to its ack, nack or
//! dead-lettering.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use pier_proto::rocketmq::{Code, MessageQueue};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::cache::Cache;
use super::listener::{ConsumeResult, MessageListener};
use crate::consumer::acks::Acks;
use crate::consumer::{self, FilterExpression, ReceiveSpec};
use crate::error::{Error, Result};
use crate::message::MessageView;
use crate::retry;
use crate::session::ClientCore;
use crate::time::std_duration;

/// What a push consumer's handle, receive loops and consumption tasks
/// share.
pub(super) struct Shared {
    pub(super) core: Arc<ClientCore>,
    pub(super) group: String,
    pub(super) listener: Arc<dyn MessageListener>,
    pub(super) cache: Cache,
    /// Acks, coalesced into calls of several entries.
    pub(super) acks: Arc<Acks>,
    pub(super) concurrency: Semaphore,
    /// FIFO: messages waiting per message group; a group present here has a
    /// task consuming it.
    pub(super) lanes: Mutex<HashMap<String, VecDeque<MessageView>>>,
    /// Cancelled when the consumer stops receiving (a child of the client's
    /// token: a shutdown first stops receiving, then drains the cache).
    pub(super) receiving: CancellationToken,
    pub(super) invisible: Option<Duration>,
    pub(super) consumed: AtomicUsize,
}

impl Shared {
    /// Whether the server declared the group FIFO (read for every batch, so
    /// a hot update applies).
    pub(super) fn settings_fifo(&self) -> bool {
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
                .map(std_duration)
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(20))
        })
    }
}

/// Keeps one long poll open on `queue` at address `i` while the cache has
/// room, until the consumer stops receiving.
pub(super) async fn receive_loop(
    shared: Arc<Shared>,
    i: usize,
    queue: MessageQueue,
    filter: FilterExpression,
) {
    let stop = &shared.receiving;
    let mut attempt_id = uuid::Uuid::new_v4().to_string();
    let mut backoff = Duration::from_millis(200);
    loop {
        if stop.is_cancelled() {
            return;
        }
        let Some(reserved) = shared.cache.reserve(shared.server_batch(), stop).await else {
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
            _ = stop.cancelled() => {
                shared.cache.unreserve(reserved);
                return;
            }
        };
        shared
            .cache
            .settle_poll(reserved, r.as_ref().map_or(0, Vec::len));
        match r {
            Ok(messages) => {
                backoff = Duration::from_millis(200);
                if messages.is_empty() {
                    continue;
                }
                attempt_id = uuid::Uuid::new_v4().to_string();
                let fifo = shared.settings_fifo();
                for m in messages {
                    shared.cache.hold(&m);
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
                    _ = stop.cancelled() => return,
                }
            }
        }
    }
}

/// Hands a received message to a consumption task: its message group's
/// lane (FIFO groups), or a task of its own (bounded by the consumption
/// concurrency).
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
                shared
                    .core
                    .spawn(consume_lane(shared.clone(), group, first));
            }
        }
        _ => {
            let task = shared.clone();
            shared.core.spawn(async move {
                // The permit bounds listeners, not acks: the next message
                // may start while this one's ack waits for the server's
                // sync (as the official clients ack asynchronously). The
                // message stays cached until settled, so the cache still
                // bounds what is in flight.
                let permit = task.concurrency.acquire().await;
                let verdict = consume(&task, &m, false).await;
                drop(permit);
                settle(&task, &m, verdict).await;
                task.cache.release(&m);
            });
        }
    }
}

/// Consumes the messages of one FIFO message group in order.
async fn consume_lane(shared: Arc<Shared>, group: String, first: MessageView) {
    let mut next = Some(first);
    while let Some(m) = next {
        // The group's next message waits for this one's ack: the server
        // holds it back until then anyway.
        let verdict = consume(&shared, &m, true).await;
        settle(&shared, &m, verdict).await;
        shared.cache.release(&m);
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

/// How a consumed message is settled with the server.
enum Verdict {
    Ack,
    /// Back after this delay (a failure of a concurrently consumed message).
    Nack(Duration),
    /// FIFO: every local attempt failed.
    DeadLetter {
        attempts: i32,
        max_attempts: i32,
    },
}

/// Runs the listener on one message (FIFO: again after each failure, up to
/// the retry policy's attempts) and says how to settle it.
async fn consume(shared: &Shared, m: &MessageView, fifo: bool) -> Verdict {
    let policy = shared.core.retry_policy(retry::default_consumer_policy());
    let mut attempt = m.delivery_attempt().max(1);
    loop {
        match run_listener(shared, m).await {
            ConsumeResult::Success => {
                shared.consumed.fetch_add(1, Ordering::Relaxed);
                return Verdict::Ack;
            }
            ConsumeResult::Failure if fifo => {
                if attempt < policy.max_attempts {
                    tokio::time::sleep(retry::retry_delay(&policy, attempt)).await;
                    attempt += 1;
                    continue;
                }
                return Verdict::DeadLetter {
                    attempts: attempt,
                    max_attempts: policy.max_attempts,
                };
            }
            ConsumeResult::Failure => return Verdict::Nack(retry::retry_delay(&policy, attempt)),
        }
    }
}

/// Settles a consumed message: acked, nacked or dead-lettered.
async fn settle(shared: &Shared, m: &MessageView, verdict: Verdict) {
    let core = &shared.core;
    let group = &shared.group;
    match verdict {
        Verdict::Ack => retrying(shared, m, "ack", || shared.acks.ack(m)).await,
        Verdict::Nack(delay) => {
            retrying(shared, m, "nack", || async move {
                consumer::change_invisible(core, group, m, delay)
                    .await
                    .map(drop)
            })
            .await
        }
        Verdict::DeadLetter {
            attempts,
            max_attempts,
        } => {
            retrying(shared, m, "dead-letter", || {
                consumer::forward_to_dlq(core, group, m, attempts, max_attempts)
            })
            .await
        }
    }
}

/// Runs an ack/nack/DLQ call, retrying transient failures a few times; an
/// invalid receipt handle (the delivery expired) is final.
async fn retrying<F, Fut>(shared: &Shared, m: &MessageView, what: &str, call: F)
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
