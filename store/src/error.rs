//! The store's typed errors. The proxy maps them to `apache.rocketmq.v2.Code`
//! in one place (its `status` module). Over gRPC an error travels as a
//! status carrying its variant's kind and context fields (see [`wire`]), so
//! a remote store hands the proxy the same variant a local one would.
//!
//! Storage failures keep their cause (RocksDB's error, a decoding error) as
//! the `source()` of the error rather than in its message: the message says
//! what the store was doing, the log line that reports it walks the chain,
//! and clients are told no more than that storage failed.

use std::sync::Arc;

use thiserror::Error;

/// A failed store call.
#[derive(Debug, Clone, Error)]
pub enum StoreError {
    /// No topic has this name.
    #[error("topic {topic} does not exist")]
    TopicNotFound {
        /// The name asked for.
        topic: String,
    },
    /// No consumer group has this name.
    #[error("consumer group {group} does not exist")]
    GroupNotFound {
        /// The name asked for.
        group: String,
    },
    /// No user has this name.
    #[error("user {user} does not exist")]
    UserNotFound {
        /// The name asked for.
        user: String,
    },
    /// A topic or group of this name exists with other settings.
    #[error("{what} {name} already exists with other settings ({existing})")]
    AlreadyExists {
        /// `topic` or `consumer group`.
        what: String,
        /// Its name.
        name: String,
        /// The settings it has.
        existing: String,
    },
    /// The request breaks a rule of the store.
    #[error("{reason}")]
    InvalidArgument {
        /// Which rule, and how to comply with it.
        reason: String,
    },
    /// A message's kind does not fit its topic's type.
    #[error("topic {topic} is of type {topic_type} and does not accept {kind} messages")]
    TypeConflict {
        /// The topic.
        topic: String,
        /// Its type (`NORMAL`, `FIFO`, ...).
        topic_type: String,
        /// The message's kind.
        kind: String,
    },
    /// A subscription filter the store cannot evaluate.
    #[error("{reason}")]
    IllegalFilter {
        /// What is wrong with it.
        reason: String,
    },
    /// The delivery a handle names is no longer current: acked, redelivered
    /// since, moved to the dead-letter queue, its handle replaced by a
    /// ChangeInvisibleDuration, or never existed.
    #[error(
        "delivery {attempt} of {topic}/{queue}@{offset} is not in flight for group {group} under this receipt handle: it was acked, moved to the DLQ or delivered again, or a ChangeInvisibleDuration replaced the handle"
    )]
    StaleDelivery {
        /// The consumer group.
        group: String,
        /// The topic.
        topic: String,
        /// The queue.
        queue: u32,
        /// The message's offset in its queue.
        offset: u64,
        /// The delivery attempt the handle names.
        attempt: u32,
    },
    /// No pending transaction has this id.
    #[error(
        "no pending transaction has id {transaction_id:?}: it was committed, rolled back, or never existed"
    )]
    TransactionNotFound {
        /// The id asked for.
        transaction_id: String,
    },
    /// No pending delay message has this recall handle.
    #[error(
        "no pending delay message has this recall handle: it was delivered, recalled, or never existed"
    )]
    TimerNotFound {
        /// The topic the handle was presented for.
        topic: String,
    },
    /// The group holds as many received, unacked messages as the store
    /// allows (`max_inflight_per_group`): no new message is handed out
    /// until some are acked or their invisible time ends.
    #[error(
        "consumer group {group} has {inflight} messages received and not yet acked; the limit is {limit}: ack (or let expire) some before receiving more"
    )]
    TooManyInflight {
        /// The consumer group.
        group: String,
        /// How many it holds.
        inflight: u64,
        /// The store's limit.
        limit: u64,
    },
    /// An admin change of a group's position was refused: the group holds
    /// messages of that topic in flight, which the change would orphan.
    #[error(
        "consumer group {group} holds {inflight} messages of topic {topic} received and not yet acked (or waiting behind them); ack them, wait for them to expire, or force the reset (their receipt handles become stale)"
    )]
    GroupBusy {
        /// The consumer group.
        group: String,
        /// The topic.
        topic: String,
        /// In-flight (and FIFO-parked) messages of the queues reset.
        inflight: u64,
    },
    /// The store is stopping and takes no more calls.
    #[error("the store is shutting down")]
    ShuttingDown,
    /// Reading or writing RocksDB failed.
    #[error("storage failure while {operation}")]
    Storage {
        /// What the store was doing.
        operation: String,
        /// Why it failed.
        #[source]
        source: StorageCause,
    },
    /// A write to the write-ahead log failed earlier: the store refuses
    /// every write since, rather than acknowledge what it may not keep.
    #[error("the store refuses writes since a write to its write-ahead log failed")]
    Poisoned,
    /// The store node could not be reached.
    #[error("store unavailable: {reason}")]
    Unavailable {
        /// What the connection reported.
        reason: String,
    },
    /// A call to the store node failed for another reason than the node
    /// being unreachable: a request or reply over the link's size limit, an
    /// answer the proxy does not understand.
    #[error("the call to the store node failed ({code}): {reason}")]
    Link {
        /// The gRPC code of the failure, by name (`OutOfRange`, ...).
        code: String,
        /// What the link reported.
        reason: String,
    },
}

/// The cause of a [`StoreError::Storage`].
#[derive(Debug, Clone, Error)]
pub enum StorageCause {
    /// RocksDB reported an error.
    #[error("rocksdb: {0}")]
    RocksDb(#[from] rocksdb::Error),
    /// A stored record does not decode.
    #[error("corrupt record: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A stored record or the database layout is not what the store wrote.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// A file system call failed.
    #[error("i/o: {0}")]
    Io(Arc<std::io::Error>),
    /// The store node reported the failure (the text of its cause).
    #[error("on the store node: {0}")]
    Remote(String),
}

impl From<std::io::Error> for StorageCause {
    fn from(e: std::io::Error) -> Self {
        StorageCause::Io(Arc::new(e))
    }
}

impl StoreError {
    /// Returns a storage failure that happened while doing `operation`.
    pub(crate) fn storage(operation: impl Into<String>, cause: impl Into<StorageCause>) -> Self {
        StoreError::Storage {
            operation: operation.into(),
            source: cause.into(),
        }
    }

    /// Returns an `AlreadyExists`: `what` (`topic`, `consumer group`) named
    /// `name` exists with the `existing` settings.
    pub(crate) fn already_exists(what: &str, name: String, existing: String) -> Self {
        StoreError::AlreadyExists {
            what: what.into(),
            name,
            existing,
        }
    }

    /// Returns an `InvalidArgument` with this reason.
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        StoreError::InvalidArgument {
            reason: reason.into(),
        }
    }

    /// Returns true for failures of the store itself (storage, shutdown,
    /// its link) rather than of the request: their details belong in the
    /// log.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            StoreError::Storage { .. }
                | StoreError::Poisoned
                | StoreError::ShuttingDown
                | StoreError::Unavailable { .. }
                | StoreError::Link { .. }
        )
    }

    /// Returns the message and its chain of causes, for a log line.
    pub fn report(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }
}

/// Shorthand for results of store calls.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) mod wire;

pub(crate) use wire::ack_outcome;
pub use wire::ack_result;
