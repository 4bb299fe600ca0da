//! [`Producer`]: sends messages (normal, FIFO, delay, batches), recalls
//! delay messages, and runs transactions whose outcome the server can ask
//! about later through a [`TransactionChecker`].
//!
//! - `sender`: routes, the wire form of messages, sends with retries;
//! - `transaction`: [`Transaction`] (half messages, commit, rollback);
//! - `checker`: the server's transaction checks and their answers.

mod checker;
mod sender;
mod transaction;

use std::sync::Arc;
use std::time::Duration;

use pier_proto::rocketmq::settings::PubSub;
use pier_proto::rocketmq::{ClientType, Publishing, RecallMessageRequest};

use self::checker::CheckAnswerer;
pub use self::checker::{TransactionChecker, TransactionResolution};
pub use self::sender::SendReceipt;
use self::sender::Sender;
pub use self::transaction::Transaction;
use crate::config::ClientConfig;
use crate::error::{check, Error, Result};
use crate::message::Message;
use crate::session::{self, ClientCore, TransactionCheckHandler};

/// Configures and starts a [`Producer`].
#[derive(Debug)]
pub struct ProducerBuilder {
    config: ClientConfig,
    topics: Vec<String>,
    checker: Option<Arc<dyn TransactionChecker>>,
    orphan_check_after: Option<Duration>,
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
        let transactional = self.checker.is_some();
        let checks = self
            .checker
            .map(|c| Arc::new(CheckAnswerer(c)) as Arc<dyn TransactionCheckHandler>);
        let core = ClientCore::new(
            self.config,
            ClientType::Producer,
            None,
            PubSub::Publishing(Publishing {
                topics: Vec::new(),
                max_body_size: 0,
                validate_message_type: true,
            }),
            checks,
        )?;
        let sender = Arc::new(Sender::new(
            core.clone(),
            self.orphan_check_after,
            transactional,
        ));
        for topic in &self.topics {
            sender.route(topic).await?;
        }
        session::start(&core).await?;
        Ok(Producer { sender })
    }
}

/// Sends messages. Cheap to clone; every clone shares one client (dropping
/// the last clone, and the last [`Transaction`], stops it;
/// [`shutdown`](Producer::shutdown) also tells the servers).
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
    sender: Arc<Sender>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("core", &self.sender.core)
            .finish()
    }
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
        &self.sender.core.client_id
    }

    /// Sends one message and returns once the server stored it durably.
    /// Transient failures are retried with the server's back-off policy.
    pub async fn send(&self, message: &Message) -> Result<SendReceipt> {
        self.sender.send_one(message, false).await
    }

    /// Sends several messages of one topic in one request; the receipts are
    /// in the messages' order.
    pub async fn send_batch(&self, messages: &[Message]) -> Result<Vec<SendReceipt>> {
        self.sender.send_all(messages, false).await
    }

    /// Cancels a delay message that has not been delivered yet; returns its
    /// message id.
    pub async fn recall(&self, topic: &str, recall_handle: &str) -> Result<String> {
        let core = &self.sender.core;
        let req = RecallMessageRequest {
            topic: Some(core.resource(topic)),
            recall_handle: recall_handle.to_owned(),
        };
        let resp = core
            .call(None, req, |mut rpc, r| async move {
                rpc.recall_message(r).await
            })
            .await?;
        check(resp.status.as_ref())?;
        Ok(resp.message_id)
    }

    /// Begins a transaction: messages sent through it stay invisible until
    /// [`Transaction::commit`]. Needs a
    /// [`transaction_checker`](ProducerBuilder::transaction_checker).
    pub fn begin_transaction(&self) -> Result<Transaction> {
        if !self.sender.transactional {
            return Err(Error::invalid(
                "transactions need a transaction checker (ProducerBuilder::transaction_checker)",
            ));
        }
        Ok(Transaction::new(self.sender.clone()))
    }

    /// Stops the producer: tells the servers and closes its sessions.
    pub async fn shutdown(&self) {
        self.sender.core.close().await;
    }
}
