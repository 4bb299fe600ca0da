//! The one place where failures become `apache.rocketmq.v2.Status` codes.
//! Business errors travel in the reply body with gRPC OK (protocol.md §4.1).

use pier_proto::rocketmq::{Code, Status};
use pier_store::StoreError;

use crate::context::ClientContext;
use crate::receipt::ReceiptError;

/// A failure of one request (or one entry of a batch), as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: Code,
    pub message: String,
}

impl Rejection {
    pub fn new(code: Code, message: impl Into<String>) -> Rejection {
        Rejection {
            code,
            message: message.into(),
        }
    }

    pub fn to_status(&self, ctx: &ClientContext) -> Status {
        Status {
            code: compatible(self.code, ctx) as i32,
            message: self.message.clone(),
        }
    }
}

pub fn ok() -> Status {
    Status {
        code: Code::Ok as i32,
        message: "OK".into(),
    }
}

/// Replaces codes newer than the client's proto by the generic code of their
/// family, for the one client known to panic on unknown codes.
pub fn compatible(code: Code, ctx: &ClientContext) -> Code {
    if !ctx.is_rust_5_0_0() {
        return code;
    }
    match code {
        Code::IllegalOffset | Code::IllegalLiteTopic | Code::InvalidClientProperties => {
            Code::BadRequest
        }
        Code::OffsetNotFound => Code::NotFound,
        Code::MessageBodyEmpty => Code::PayloadTooLarge,
        Code::LiteTopicQuotaExceeded | Code::LiteSubscriptionQuotaExceeded => Code::TooManyRequests,
        c => c,
    }
}

/// What a client is told when the store itself failed: the details are in
/// the log, not in the reply.
const STORAGE_FAILURE: &str = "internal storage error";

impl From<StoreError> for Rejection {
    fn from(e: StoreError) -> Rejection {
        let code = match &e {
            StoreError::TopicNotFound { .. } => Code::TopicNotFound,
            StoreError::GroupNotFound { .. } => Code::ConsumerGroupNotFound,
            StoreError::AlreadyExists { .. } | StoreError::InvalidArgument { .. } => {
                Code::BadRequest
            }
            StoreError::TypeConflict { .. } => Code::MessagePropertyConflictWithType,
            StoreError::IllegalFilter { .. } => Code::IllegalFilterExpression,
            StoreError::StaleDelivery { .. } => Code::InvalidReceiptHandle,
            StoreError::TransactionNotFound { .. } => Code::InvalidTransactionId,
            StoreError::TimerNotFound { .. } => Code::NotFound,
            StoreError::Unavailable { .. } => Code::ProxyTimeout,
            StoreError::ShuttingDown | StoreError::Storage { .. } | StoreError::Poisoned => {
                Code::InternalServerError
            }
        };
        let message = match &e {
            StoreError::TopicNotFound { topic: t } => format!(
                "topic {t} does not exist; create it with `pier topic create {t}` (or start the proxy with auto_create)"
            ),
            StoreError::GroupNotFound { group: g } => format!(
                "consumer group {g} does not exist; create it with `pier group create {g}`"
            ),
            StoreError::Storage { .. } | StoreError::Poisoned => {
                tracing::error!(error = %e.report(), "a store call failed");
                STORAGE_FAILURE.to_owned()
            }
            _ => e.to_string(),
        };
        Rejection::new(code, message)
    }
}

impl From<ReceiptError> for Rejection {
    fn from(e: ReceiptError) -> Rejection {
        Rejection::new(Code::InvalidReceiptHandle, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_500_never_sees_newer_codes() {
        let rust = ClientContext {
            language: "RUST".into(),
            version: "5.0.0".into(),
            ..Default::default()
        };
        let python = ClientContext {
            language: "PYTHON".into(),
            version: "5.1.2".into(),
            ..Default::default()
        };
        assert_eq!(
            compatible(Code::MessageBodyEmpty, &rust),
            Code::PayloadTooLarge
        );
        assert_eq!(
            compatible(Code::MessageBodyEmpty, &python),
            Code::MessageBodyEmpty
        );
        assert_eq!(compatible(Code::TopicNotFound, &rust), Code::TopicNotFound);
    }

    #[test]
    fn storage_details_stay_out_of_replies() {
        let e = StoreError::Poisoned;
        let r = Rejection::from(e);
        assert_eq!(r.code, Code::InternalServerError);
        assert_eq!(r.message, STORAGE_FAILURE);
        let r = Rejection::from(StoreError::TransactionNotFound {
            transaction_id: "00".into(),
        });
        assert_eq!(r.code, Code::InvalidTransactionId);
    }
}
