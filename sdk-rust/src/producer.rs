//! [`Producer`]: sends messages (normal, FIFO, delay, batches), recalls
//! delay messages, and runs transactions whose outcome the server can ask
//! about later through a [`TransactionChecker`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use pier_proto::rocketmq::settings::PubSub;
use pier_proto::rocketmq::{
    ClientType, EndTransactionRequest, MessageType, Publishing, RecallMessageRequest,
    SendMessageRequest, TransactionSource,
};

use crate::client::{self, ClientCore};
use crate::config::ClientConfig;
use crate::connect::{self, request};
use crate::error::{check, Error, Result};
use crate::message::{Message, MessageView};
use crate::messaging::new_message_id;

/// The outcome a [`TransactionChecker`] gives for a pending transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionResolution {
    /// Deliver the message.
    Commit,
    /// Discard the message.
    Rollback,
    /// Not decided yet: the server asks again later.
    Unknown,
}

/// Tells the server what became of a transaction it found pending (the
/// producer crashed or never ended it). Called with the half message; any
/// `Fn(MessageView) -> impl Future<Output = TransactionResolution>` closure
/// is a checker.
pub trait TransactionChecker: Send + Sync + 'static {
    /// Decides the outcome of the transaction `message` belongs to.
    fn check(&self, message: MessageView) -> BoxFuture<'static, TransactionResolution>;
}

impl<F, Fut> TransactionChecker for F
where
    F: Fn(MessageView) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = TransactionResolution> + Send + 'static,
{
    fn check(&self, message: MessageView) -> BoxFuture<'static, TransactionResolution> {
        Box::pin(self(message))
    }
}

/// Where and how a message was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// The message id.
    pub message_id: String,
    /// Offset in its queue.
    pub offset: i64,
    /// Transaction id (transactional messages).
    pub transaction_id: Option<String>,
    /// Handle for [`Producer::recall`] (delay messages).
    pub recall_handle: Option<String>,
    pub(crate) origin: usize,
}

/// Configures and starts a [`Producer`].
pub struct ProducerBuilder {
    config: ClientConfig,
    topics: Vec<String>,
    checker: Option<Arc<dyn TransactionChecker>>,
    orphan_check_after: Option<Duration>,
}

impl std::fmt::Debug for ProducerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerBuilder")
            .field("config", &self.config)
            .field("topics", &self.topics)
            .field("checker", &self.checker.is_some())
            .finish()
    }
}

impl ProducerBuilder {
    /// Declares a topic: its route is fetched at start (an unknown topic
    /// fails the start) and the server knows this producer publishes to it
    /// (transaction checks for the topic come here).
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topics.push(topic.into());
        self
    }

    /// Declares several topics (see [`topic`](Self::topic)).
    pub fn topics<I: IntoIterator<Item = S>, S: Into<String>>(mut self, topics: I) -> Self {
        self.topics.extend(topics.into_iter().map(Into::into));
        self
    }

    /// Enables transactions: `checker` answers the server's checks of
    /// transactions left pending.
    pub fn transaction_checker(mut self, checker: impl TransactionChecker) -> Self {
        self.checker = Some(Arc::new(checker));
        self
    }

    /// Asks the server to check a pending transaction after `after` (sent
    /// as the message's `orphaned_transaction_recovery_duration`; the
    /// server's default applies otherwise).
    pub fn orphan_check_after(mut self, after: Duration) -> Self {
        self.orphan_check_after = Some(after);
        self
    }

    /// Connects, fetches the declared topics' routes and exchanges settings.
    pub async fn start(self) -> Result<Producer> {
        let core = ClientCore::new(
            self.config,
            ClientType::Producer,
            None,
            PubSub::Publishing(Publishing {
                topics: Vec::new(),
                max_body_size: 0,
                validate_message_type: true,
            }),
            self.checker.clone(),
        )?;
        let producer = Producer {
            inner: Arc::new(Inner {
                core,
                queues: Mutex::new(HashMap::new()),
                next_queue: AtomicUsize::new(0),
                orphan_check_after: self.orphan_check_after,
                transactional: self.checker.is_some(),
            }),
        };
        for topic in &self.topics {
            producer.route(topic).await?;
        }
        producer.inner.core.start().await?;
        Ok(producer)
    }
}

struct Inner {
    core: Arc<ClientCore>,
    /// Queue count per topic, from its route.
    queues: Mutex<HashMap<String, usize>>,
    next_queue: AtomicUsize,
    orphan_check_after: Option<Duration>,
    transactional: bool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.core.abort();
    }
}

/// Sends messages. Cheap to clone; every clone shares one client (dropping
/// the last clone stops it; [`shutdown`](Producer::shutdown) also tells the
/// servers).
///
/// ```no_run
/// # async fn demo() -> pier::Result<()> {
/// use pier::{ClientConfig, Message, Producer};
///
/// let producer = Producer::builder(ClientConfig::new("127.0.0.1:8081")?)
///     .topic("orders")
///     .start()
///     .await?;
/// let receipt = producer.send(&Message::builder("orders", "hello").build()?).await?;
/// println!("stored as {}", receipt.message_id);
/// producer.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("core", &self.inner.core)
            .finish()
    }
}

/// FNV-1a: a stable message group → queue mapping.
fn group_hash(group: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in group.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as usize
}

impl Producer {
    /// Starts configuring a producer.
    pub fn builder(config: ClientConfig) -> ProducerBuilder {
        ProducerBuilder {
            config,
            topics: Vec::new(),
            checker: None,
            orphan_check_after: None,
        }
    }

    /// The client id this producer uses.
    pub fn client_id(&self) -> &str {
        &self.inner.core.client_id
    }

    /// The topic's queue count, fetching (and declaring) its route once.
    async fn route(&self, topic: &str) -> Result<usize> {
        if let Some(n) = self
            .inner
            .queues
            .lock()
            .ok()
            .and_then(|q| q.get(topic).copied())
        {
            return Ok(n);
        }
        let queues = self.inner.core.query_route(topic).await?;
        let n = queues.len();
        if let Ok(mut q) = self.inner.queues.lock() {
            q.insert(topic.to_owned(), n);
        }
        let resource = self.inner.core.resource(topic);
        self.inner.core.update_local(|s| {
            if let Some(PubSub::Publishing(p)) = s.pub_sub.as_mut() {
                if !p.topics.contains(&resource) {
                    p.topics.push(resource);
                }
            }
        });
        Ok(n)
    }

    fn wire(
        &self,
        message: &Message,
        queues: usize,
        transactional: bool,
    ) -> Result<pier_proto::rocketmq::Message> {
        if let Some(max) = self
            .inner
            .core
            .server_settings()
            .and_then(|s| match s.pub_sub {
                Some(PubSub::Publishing(p)) if p.max_body_size > 0 => {
                    Some(p.max_body_size as usize)
                }
                _ => None,
            })
        {
            if message.body().len() > max {
                return Err(Error::invalid(format!(
                    "the body is {} bytes, more than the server's limit of {max}",
                    message.body().len()
                )));
            }
        }
        let queue = match message.message_group() {
            Some(g) => group_hash(g) % queues.max(1),
            None => self.inner.next_queue.fetch_add(1, Ordering::Relaxed) % queues.max(1),
        };
        let mut wire =
            message
                .outgoing()
                .to_proto(&new_message_id(), client::now(), &connect::hostname());
        if let Some(t) = wire.topic.as_mut() {
            t.resource_namespace = self.inner.core.config.namespace().to_owned();
        }
        if let Some(sp) = wire.system_properties.as_mut() {
            sp.queue_id = queue as i32;
            if transactional {
                if message.message_group().is_some() || message.delivery_time().is_some() {
                    return Err(Error::invalid(
                        "a transactional message cannot have a message group or a delivery time",
                    ));
                }
                sp.message_type = MessageType::Transaction as i32;
                sp.orphaned_transaction_recovery_duration =
                    self.inner.orphan_check_after.map(client::duration);
            }
        }
        Ok(wire)
    }

    /// Sends one message and returns once the server stored it durably.
    /// Transient failures are retried with the server's back-off policy.
    pub async fn send(&self, message: &Message) -> Result<SendReceipt> {
        let mut r = self.send_all(std::slice::from_ref(message), false).await?;
        r.pop()
            .ok_or_else(|| Error::Protocol("SendMessage returned no result".into()))
    }

    /// Sends several messages of one topic in one request; the receipts are
    /// in the messages' order.
    pub async fn send_batch(&self, messages: &[Message]) -> Result<Vec<SendReceipt>> {
        self.send_all(messages, false).await
    }

    async fn send_all(
        &self,
        messages: &[Message],
        transactional: bool,
    ) -> Result<Vec<SendReceipt>> {
        let Some(first) = messages.first() else {
            return Ok(Vec::new());
        };
        if messages.iter().any(|m| m.topic() != first.topic()) {
            return Err(Error::invalid("a batch must target one topic"));
        }
        if messages
            .iter()
            .any(|m| m.message_type() != first.message_type())
        {
            return Err(Error::invalid("a batch must hold one message type"));
        }
        let queues = self.route(first.topic()).await?;
        let wire = messages
            .iter()
            .map(|m| self.wire(m, queues, transactional))
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<String> = wire
            .iter()
            .map(|m| {
                m.system_properties
                    .as_ref()
                    .map(|s| s.message_id.clone())
                    .unwrap_or_default()
            })
            .collect();
        let req = SendMessageRequest { messages: wire };
        let core = &self.inner.core;
        let policy = core.retry_policy(client::default_producer_policy());
        let attempts = policy.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let r = core
                .unary(None, |mut rpc, t| {
                    let req = req.clone();
                    async move { Ok(rpc.send_message(request(req, t)).await?.into_inner()) }
                })
                .await;
            let result = r.and_then(|(origin, resp)| {
                if resp.entries.len() != ids.len() {
                    check(resp.status.as_ref())?;
                    return Err(Error::Protocol(format!(
                        "SendMessage returned {} results for {} messages",
                        resp.entries.len(),
                        ids.len()
                    )));
                }
                resp.entries
                    .into_iter()
                    .zip(&ids)
                    .map(|(e, id)| {
                        check(e.status.as_ref().or(resp.status.as_ref()))?;
                        Ok(SendReceipt {
                            message_id: if e.message_id.is_empty() {
                                id.clone()
                            } else {
                                e.message_id
                            },
                            offset: e.offset,
                            transaction_id: Some(e.transaction_id).filter(|t| !t.is_empty()),
                            recall_handle: Some(e.recall_handle).filter(|h| !h.is_empty()),
                            origin,
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            });
            match result {
                Err(e) if e.is_retryable() && attempt < attempts && !core.is_shut_down() => {
                    let delay = client::retry_delay(&policy, attempt);
                    tracing::debug!(attempt, error = %e, ?delay, "send failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Cancels a delay message that has not been delivered yet; returns its
    /// message id.
    pub async fn recall(&self, topic: &str, recall_handle: &str) -> Result<String> {
        let req = RecallMessageRequest {
            topic: Some(self.inner.core.resource(topic)),
            recall_handle: recall_handle.to_owned(),
        };
        let (_, resp) = self
            .inner
            .core
            .unary(None, |mut rpc, t| {
                let req = req.clone();
                async move { Ok(rpc.recall_message(request(req, t)).await?.into_inner()) }
            })
            .await?;
        check(resp.status.as_ref())?;
        Ok(resp.message_id)
    }

    /// Begins a transaction: messages sent through it stay invisible until
    /// [`Transaction::commit`]. Needs a
    /// [`transaction_checker`](ProducerBuilder::transaction_checker).
    pub fn begin_transaction(&self) -> Result<Transaction> {
        if !self.inner.transactional {
            return Err(Error::invalid(
                "transactions need a transaction checker (ProducerBuilder::transaction_checker)",
            ));
        }
        Ok(Transaction {
            producer: self.clone(),
            sent: Vec::new(),
        })
    }

    /// Stops the producer: tells the servers and closes its sessions.
    pub async fn shutdown(&self) {
        self.inner.core.close().await;
    }
}

/// A transaction of a [`Producer`]: its messages are delivered at
/// [`commit`](Self::commit), discarded at [`rollback`](Self::rollback). A
/// transaction dropped without either is resolved later by the server's
/// check.
#[derive(Debug)]
pub struct Transaction {
    producer: Producer,
    sent: Vec<(String, SendReceipt)>,
}

impl Transaction {
    /// Sends a half message: stored, invisible until the commit.
    pub async fn send(&mut self, message: &Message) -> Result<SendReceipt> {
        let receipt = self
            .producer
            .send_all(std::slice::from_ref(message), true)
            .await?
            .pop()
            .ok_or_else(|| Error::Protocol("SendMessage returned no result".into()))?;
        if receipt.transaction_id.is_none() {
            return Err(Error::Protocol(
                "the server returned no transaction id for a transactional message".into(),
            ));
        }
        self.sent
            .push((message.topic().to_owned(), receipt.clone()));
        Ok(receipt)
    }

    /// Delivers every message of the transaction.
    pub async fn commit(self) -> Result<()> {
        self.end(pier_proto::rocketmq::TransactionResolution::Commit)
            .await
    }

    /// Discards every message of the transaction.
    pub async fn rollback(self) -> Result<()> {
        self.end(pier_proto::rocketmq::TransactionResolution::Rollback)
            .await
    }

    async fn end(self, resolution: pier_proto::rocketmq::TransactionResolution) -> Result<()> {
        let core = &self.producer.inner.core;
        for (topic, receipt) in &self.sent {
            let req = EndTransactionRequest {
                topic: Some(core.resource(topic)),
                message_id: receipt.message_id.clone(),
                transaction_id: receipt.transaction_id.clone().unwrap_or_default(),
                resolution: resolution as i32,
                source: TransactionSource::SourceClient as i32,
                trace_context: String::new(),
            };
            let (_, resp) = core
                .unary(Some(receipt.origin), |mut rpc, t| {
                    let req = req.clone();
                    async move { Ok(rpc.end_transaction(request(req, t)).await?.into_inner()) }
                })
                .await?;
            check(resp.status.as_ref())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_map_to_stable_queues() {
        assert_eq!(group_hash("a") % 8, group_hash("a") % 8);
        assert_ne!(group_hash("a"), group_hash("b"));
    }

    #[tokio::test]
    async fn closures_are_checkers() {
        let c: Arc<dyn TransactionChecker> = Arc::new(|m: MessageView| async move {
            if m.topic() == "t" {
                TransactionResolution::Commit
            } else {
                TransactionResolution::Rollback
            }
        });
        let wire = Message::builder("t", "x")
            .build()
            .unwrap()
            .outgoing()
            .to_proto("ID", std::time::SystemTime::now(), "h");
        let view = MessageView::from_wire(wire, 0, false).unwrap();
        assert_eq!(c.check(view).await, TransactionResolution::Commit);
    }
}
