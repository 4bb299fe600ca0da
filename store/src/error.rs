//! The store's typed errors. The proxy maps them to `apache.rocketmq.v2.Code`
//! at its service boundary; over gRPC they travel as a status plus the
//! `pier-store-error` metadata entry naming the variant (see `remote`).

use thiserror::Error;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("topic {0} does not exist")]
    TopicNotFound(String),
    #[error("consumer group {0} does not exist")]
    GroupNotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    TypeConflict(String),
    #[error("{0}")]
    IllegalFilter(String),
    /// The delivery a handle names is no longer current: acked, redelivered
    /// since, or never existed.
    #[error("{0}")]
    StaleDelivery(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("the store is shutting down")]
    ShuttingDown,
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Stable name of the variant, used on the wire between proxy and store.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::TopicNotFound(_) => "topic-not-found",
            StoreError::GroupNotFound(_) => "group-not-found",
            StoreError::AlreadyExists(_) => "already-exists",
            StoreError::InvalidArgument(_) => "invalid-argument",
            StoreError::TypeConflict(_) => "type-conflict",
            StoreError::IllegalFilter(_) => "illegal-filter",
            StoreError::StaleDelivery(_) => "stale-delivery",
            StoreError::NotFound(_) => "not-found",
            StoreError::Unsupported(_) => "unsupported",
            StoreError::ShuttingDown => "shutting-down",
            StoreError::Storage(_) => "storage",
            StoreError::Unavailable(_) => "unavailable",
        }
    }

    /// Rebuilds an error from its wire kind and message.
    pub fn from_kind(kind: &str, message: String) -> StoreError {
        match kind {
            "topic-not-found" => StoreError::TopicNotFound(message),
            "group-not-found" => StoreError::GroupNotFound(message),
            "already-exists" => StoreError::AlreadyExists(message),
            "invalid-argument" => StoreError::InvalidArgument(message),
            "type-conflict" => StoreError::TypeConflict(message),
            "illegal-filter" => StoreError::IllegalFilter(message),
            "stale-delivery" => StoreError::StaleDelivery(message),
            "not-found" => StoreError::NotFound(message),
            "unsupported" => StoreError::Unsupported(message),
            "shutting-down" => StoreError::ShuttingDown,
            "storage" => StoreError::Storage(message),
            _ => StoreError::Unavailable(message),
        }
    }

    /// The message without the variant's prefix, as carried on the wire.
    pub fn detail(&self) -> String {
        match self {
            StoreError::TopicNotFound(s)
            | StoreError::GroupNotFound(s)
            | StoreError::AlreadyExists(s)
            | StoreError::InvalidArgument(s)
            | StoreError::TypeConflict(s)
            | StoreError::IllegalFilter(s)
            | StoreError::StaleDelivery(s)
            | StoreError::NotFound(s)
            | StoreError::Unsupported(s)
            | StoreError::Storage(s)
            | StoreError::Unavailable(s) => s.clone(),
            StoreError::ShuttingDown => String::new(),
        }
    }
}

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        StoreError::Storage(e.to_string())
    }
}

impl From<prost::DecodeError> for StoreError {
    fn from(e: prost::DecodeError) -> Self {
        StoreError::Storage(format!("corrupt record: {e}"))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One entry's result of an `AckMany`, as it travels.
pub fn ack_outcome(r: Result<()>) -> pier_proto::store::AckOutcome {
    match r {
        Ok(()) => pier_proto::store::AckOutcome::default(),
        Err(e) => pier_proto::store::AckOutcome {
            error_kind: e.kind().to_owned(),
            error: e.detail(),
        },
    }
}

/// The result an `AckMany` outcome stands for.
pub fn ack_result(o: pier_proto::store::AckOutcome) -> Result<()> {
    if o.error_kind.is_empty() {
        Ok(())
    } else {
        Err(StoreError::from_kind(&o.error_kind, o.error))
    }
}
