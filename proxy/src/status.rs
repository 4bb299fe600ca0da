//! The one place where failures become `apache.rocketmq.v2.Status` codes.
//! Business errors travel in the reply body with gRPC OK (protocol.md §4.1).
//!
//! A failure the server caused (the store unreachable or failing) also
//! carries a [`Fault`]: its cause, for the log (`faults`), never for the
//! client, who is told only what it can act on.

use pier_proto::rocketmq::{Code, Status};
use pier_store::StoreError;

use crate::auth::AuthError;
use crate::context::ClientContext;
use crate::faults::{Fault, FaultKind};
use crate::limits::Throttled;
use crate::receipt::ReceiptError;

/// A failure of one request (or one entry of a batch), as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The code the client is answered with.
    pub code: Code,
    /// What the client is told.
    pub message: String,
    /// Set when the server, not the request, is at fault.
    pub fault: Option<Fault>,
}

impl Rejection {
    /// A rejection of the request itself (no fault of the server).
    pub fn new(code: Code, message: impl Into<String>) -> Rejection {
        Rejection {
            code,
            message: message.into(),
            fault: None,
        }
    }

    /// A failure inside Pier that the client can do nothing about: `cause`
    /// goes to the log, the client reads a generic message.
    pub fn internal(cause: impl Into<String>) -> Rejection {
        Rejection {
            code: Code::InternalServerError,
            message: INTERNAL_FAILURE.to_owned(),
            fault: Some(Fault {
                kind: FaultKind::Internal,
                cause: cause.into(),
            }),
        }
    }

    /// The Status to answer with, in a code `ctx`'s client knows.
    pub fn to_status(&self, ctx: &ClientContext) -> Status {
        Status {
            code: compatible(self.code, ctx) as i32,
            message: self.message.clone(),
        }
    }
}

/// The OK status.
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
const STORAGE_FAILURE: &str = "internal storage error; details are in the server's log";
/// What a client is told when the store cannot be reached.
const STORE_UNAVAILABLE: &str = "store unavailable; retry later";
/// What a client is told when the proxy-store link refused a message as too
/// large (a receive of many large messages, in cluster mode).
const LINK_TOO_LARGE: &str = "the reply is larger than the link between proxy and store allows; \
     receive fewer messages per call";
/// What a client is told for any other failure inside Pier.
const INTERNAL_FAILURE: &str = "internal server error; details are in the server's log";

impl From<StoreError> for Rejection {
    fn from(e: StoreError) -> Rejection {
        let code = match &e {
            StoreError::TopicNotFound { .. } => Code::TopicNotFound,
            StoreError::GroupNotFound { .. } => Code::ConsumerGroupNotFound,
            StoreError::UserNotFound { .. } => Code::NotFound,
            StoreError::AlreadyExists { .. } | StoreError::InvalidArgument { .. } => {
                Code::BadRequest
            }
            StoreError::TypeConflict { .. } => Code::MessagePropertyConflictWithType,
            StoreError::IllegalFilter { .. } => Code::IllegalFilterExpression,
            StoreError::StaleDelivery { .. } => Code::InvalidReceiptHandle,
            StoreError::TransactionNotFound { .. } => Code::InvalidTransactionId,
            StoreError::TimerNotFound { .. } => Code::NotFound,
            // The clients back off and retry on TOO_MANY_REQUESTS (Java's
            // push consumer after a short pause, the simple consumers by
            // raising it to the application); meanwhile acks free room.
            StoreError::TooManyInflight { .. } => Code::TooManyRequests,
            // Only the admin API changes positions; it answers with the
            // store's gRPC status, this is for completeness.
            StoreError::GroupBusy { .. } => Code::BadRequest,
            StoreError::Unavailable { .. } => Code::ProxyTimeout,
            StoreError::ShuttingDown
            | StoreError::Storage { .. }
            | StoreError::Poisoned
            | StoreError::Link { .. } => Code::InternalServerError,
        };
        let message = match &e {
            StoreError::TopicNotFound { topic: t } => format!(
                "topic {t} does not exist; create it with `pier topic create {t}` (or start the proxy with auto_create)"
            ),
            StoreError::GroupNotFound { group: g } => format!(
                "consumer group {g} does not exist; create it with `pier group create {g}`"
            ),
            StoreError::Storage { .. } | StoreError::Poisoned => STORAGE_FAILURE.to_owned(),
            StoreError::Unavailable { .. } => STORE_UNAVAILABLE.to_owned(),
            StoreError::Link { code, .. } if code == "OutOfRange" || code == "ResourceExhausted" => {
                LINK_TOO_LARGE.to_owned()
            }
            StoreError::Link { .. } => INTERNAL_FAILURE.to_owned(),
            _ => e.to_string(),
        };
        let kind = match &e {
            StoreError::Unavailable { .. } => Some(FaultKind::StoreUnavailable),
            StoreError::Link { .. } => Some(FaultKind::StoreLink),
            StoreError::Storage { .. } => Some(FaultKind::StoreFailed),
            StoreError::Poisoned => Some(FaultKind::StorePoisoned),
            StoreError::ShuttingDown => Some(FaultKind::StoreStopping),
            _ => None,
        };
        Rejection {
            code,
            message,
            fault: kind.map(|kind| Fault {
                kind,
                cause: e.report(),
            }),
        }
    }
}

/// A failed authentication is UNAUTHORIZED, a missing permission
/// FORBIDDEN (protocol.md §5), each with the reason in the message.
impl From<AuthError> for Rejection {
    fn from(e: AuthError) -> Rejection {
        let code = if e.is_authentication() {
            Code::Unauthorized
        } else {
            Code::Forbidden
        };
        Rejection::new(code, e.to_string())
    }
}

/// The gRPC status of an auth failure, for what answers with gRPC
/// statuses (Telemetry, the admin API).
pub fn auth_grpc_status(e: &AuthError) -> tonic::Status {
    if e.is_authentication() {
        tonic::Status::unauthenticated(e.to_string())
    } else {
        tonic::Status::permission_denied(e.to_string())
    }
}

/// How a stream that answers with gRPC statuses (Telemetry) ends on a
/// rejection: as the reference, INVALID_ARGUMENT for request errors, and
/// the auth failures by their own gRPC codes.
pub fn stream_status(rej: &Rejection) -> tonic::Status {
    match rej.code {
        Code::Unauthorized => tonic::Status::unauthenticated(rej.message.clone()),
        Code::Forbidden => tonic::Status::permission_denied(rej.message.clone()),
        c if (c as i32) < 50000 => tonic::Status::invalid_argument(rej.message.clone()),
        _ => tonic::Status::internal(rej.message.clone()),
    }
}

impl From<Throttled> for Rejection {
    // TOO_MANY_REQUESTS is the code every official client backs off on:
    // producers wait their retry policy's delay and send again, push
    // consumers retry the receive shortly after (protocol.md §4.2).
    fn from(e: Throttled) -> Rejection {
        Rejection::new(Code::TooManyRequests, e.to_string())
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
        assert_eq!(r.fault.map(|f| f.kind), Some(FaultKind::StorePoisoned));
        let r = Rejection::from(StoreError::TransactionNotFound {
            transaction_id: "00".into(),
        });
        assert_eq!(r.code, Code::InvalidTransactionId);
        assert_eq!(r.fault, None, "a client's mistake is not a fault");
    }

    /// Each kind of store failure: the code, what the client reads, and
    /// whether (and as what) the server logs it.
    #[test]
    fn each_store_failure_has_its_own_message() {
        let storage = StoreError::Storage {
            operation: "appending messages".into(),
            source: pier_store::StorageCause::Corrupt("bad key 0xdead".into()),
        };
        let cases: Vec<(StoreError, Code, &str, Option<FaultKind>)> = vec![
            (
                StoreError::Unavailable {
                    reason: "Unavailable: tcp connect error 10.0.0.7:8091".into(),
                },
                Code::ProxyTimeout,
                STORE_UNAVAILABLE,
                Some(FaultKind::StoreUnavailable),
            ),
            (
                StoreError::Link {
                    code: "OutOfRange".into(),
                    reason: "Error, decoded message length too large: found 70000000 bytes"
                        .into(),
                },
                Code::InternalServerError,
                LINK_TOO_LARGE,
                Some(FaultKind::StoreLink),
            ),
            (
                StoreError::Link {
                    code: "Unimplemented".into(),
                    reason: "unknown method".into(),
                },
                Code::InternalServerError,
                INTERNAL_FAILURE,
                Some(FaultKind::StoreLink),
            ),
            (
                storage,
                Code::InternalServerError,
                STORAGE_FAILURE,
                Some(FaultKind::StoreFailed),
            ),
            (
                StoreError::ShuttingDown,
                Code::InternalServerError,
                "the store is shutting down",
                Some(FaultKind::StoreStopping),
            ),
            (
                StoreError::StaleDelivery {
                    group: "g".into(),
                    topic: "t".into(),
                    queue: 0,
                    offset: 1,
                    attempt: 2,
                },
                Code::InvalidReceiptHandle,
                "delivery 2 of t/0@1 is not in flight for group g under this receipt handle: it was acked, moved to the DLQ or delivered again, or a ChangeInvisibleDuration replaced the handle",
                None,
            ),
            (
                StoreError::TimerNotFound { topic: "d".into() },
                Code::NotFound,
                "no pending delay message has this recall handle: it was delivered, recalled, or never existed",
                None,
            ),
        ];
        for (e, code, message, kind) in cases {
            let report = e.report();
            let r = Rejection::from(e);
            assert_eq!(r.code, code, "{report}");
            assert_eq!(r.message, message, "{report}");
            assert_eq!(r.fault.as_ref().map(|f| f.kind), kind, "{report}");
            if let Some(f) = &r.fault {
                assert_eq!(f.cause, report, "the log gets the whole cause chain");
            }
            if code != Code::ProxyTimeout {
                assert!(
                    !r.message.contains("unavailable"),
                    "only an unreachable store is unavailable: {}",
                    r.message
                );
            }
            for detail in ["0xdead", "10.0.0.7", "70000000"] {
                assert!(
                    !r.message.contains(detail),
                    "{detail} leaked: {}",
                    r.message
                );
            }
        }
    }
}
