//! The crate's error type.
//!
//! Two kinds of server-side failure exist:
//!
//! - the RocketMQ protocol answers with gRPC OK and puts its outcome in the
//!   body `Status` ([`Error::Status`], with the raw RocketMQ code kept so codes
//!   newer than this crate's proto are reported, never a panic);
//! - the admin API (and the transport itself) fails with a gRPC status
//!   ([`Error::Rpc`]).

use pier_proto::rocketmq::{Code, Status};

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to Pier.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a non-OK RocketMQ body `Status`.
    #[error("{}", describe(message, name))]
    Status {
        /// Raw `apache.rocketmq.v2.Code` value (kept even when unknown).
        code: i32,
        /// The code's proto name (`TOPIC_NOT_FOUND`), or `CODE_<n>` when this
        /// crate does not know the value.
        name: String,
        /// The server's explanation.
        message: String,
    },
    /// The call failed with a gRPC status (admin errors, deadlines, a broken
    /// connection).
    #[error("{}", describe(message, grpc_code_name(*code)))]
    Rpc {
        /// The gRPC status code.
        code: tonic::Code,
        /// The status message.
        message: String,
        /// The error below the status (a refused connection, a reset
        /// stream), when the transport reported one.
        #[source]
        cause: Option<RpcCause>,
    },
    /// The connection to the server could not be established.
    #[error("cannot connect to {endpoint}: {}", chain(source))]
    Transport {
        /// The endpoint that was dialled.
        endpoint: String,
        /// What the transport reported.
        source: tonic::transport::Error,
    },
    /// A caller-supplied value is not acceptable (detected before any call).
    #[error("{0}")]
    InvalidArgument(String),
    /// The server's answer does not follow the protocol.
    #[error("unexpected response from the server: {0}")]
    Protocol(String),
    /// The feature is not available in this build or against this server.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The client was shut down.
    #[error("the client has been shut down")]
    Shutdown,
}

impl Error {
    /// Builds the error for a non-OK body `Status`.
    pub fn from_status(status: &Status) -> Error {
        Error::Status {
            code: status.code,
            name: code_name(status.code),
            message: status.message.clone(),
        }
    }

    /// The RocketMQ code of an [`Error::Status`], when this crate knows it.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Status { code, .. } => Code::try_from(*code).ok(),
            _ => None,
        }
    }

    /// The gRPC code of an [`Error::Rpc`].
    pub fn grpc_code(&self) -> Option<tonic::Code> {
        match self {
            Error::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether retrying the call (on another endpoint, after a back-off) may
    /// succeed: transport failures, deadlines, throttling and transient
    /// server errors. Business errors (bad topic, bad receipt handle, ...)
    /// are not retryable.
    pub fn is_retryable(&self) -> bool {
        // Every connection failure, and these answers of a server.
        if self.is_transport() {
            return true;
        }
        match self {
            Error::Rpc { code, .. } => matches!(
                code,
                tonic::Code::Aborted | tonic::Code::ResourceExhausted | tonic::Code::Internal
            ),
            Error::Status { code, .. } => matches!(
                Code::try_from(*code),
                Ok(Code::TooManyRequests
                    | Code::InternalServerError
                    | Code::InternalError
                    | Code::HaNotAvailable
                    | Code::ProxyTimeout
                    | Code::MasterPersistenceTimeout
                    | Code::SlavePersistenceTimeout)
            ),
            _ => false,
        }
    }

    /// Whether the failure is the connection's (the call may not have reached
    /// a server): another endpoint should be tried.
    pub fn is_transport(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Rpc { code, .. } => matches!(
                code,
                tonic::Code::Unavailable
                    | tonic::Code::Unknown
                    | tonic::Code::Cancelled
                    | tonic::Code::DeadlineExceeded
            ),
            _ => false,
        }
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::InvalidArgument(message.into())
    }

    /// A copy of one call's failure for each of the requests it carried
    /// (the entries of a coalesced ack), keeping what callers look at: the
    /// RocketMQ or gRPC code (so retryable or not) and the message. The
    /// source chain stays with the original, which is not `Clone`.
    pub(crate) fn copy_for_each(&self) -> Error {
        match self {
            Error::Status {
                code,
                name,
                message,
            } => Error::Status {
                code: *code,
                name: name.clone(),
                message: message.clone(),
            },
            Error::Rpc { code, message, .. } => Error::rpc(*code, message.clone()),
            Error::Transport { .. } => Error::rpc(tonic::Code::Unavailable, self.to_string()),
            Error::Shutdown => Error::Shutdown,
            Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
            Error::Unsupported(m) => Error::Unsupported(m.clone()),
            Error::Protocol(m) => Error::Protocol(m.clone()),
        }
    }

    /// An [`Error::Rpc`] made on this side (a deadline, a missing answer),
    /// with no status from the server to keep.
    pub(crate) fn rpc(code: tonic::Code, message: impl Into<String>) -> Error {
        Error::Rpc {
            code,
            message: message.into(),
            cause: None,
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Error {
        let code = s.code();
        let message = s.message().to_owned();
        // Keep the status only when it carries a cause worth following.
        let cause = std::error::Error::source(&s)
            .is_some()
            .then(|| RpcCause(Box::new(s)));
        Error::Rpc {
            code,
            message,
            cause,
        }
    }
}

/// What lies below a gRPC status: the transport error that ended the call,
/// as tonic reported it. Its text and its own sources are the cause's; the
/// status itself is already described by [`Error::Rpc`].
#[derive(Debug)]
pub struct RpcCause(Box<tonic::Status>);

impl RpcCause {
    fn inner(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0)
    }
}

impl std::fmt::Display for RpcCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.inner() {
            Some(e) => std::fmt::Display::fmt(e, f),
            None => f.write_str(self.0.message()),
        }
    }
}

impl std::error::Error for RpcCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner().and_then(std::error::Error::source)
    }
}

/// Checks a body `Status`: OK passes, anything else becomes
/// [`Error::Status`], and a missing status is a [`Error::Protocol`] error.
pub fn check(status: Option<&Status>) -> Result<()> {
    match status {
        None => Err(Error::Protocol("the response carries no status".into())),
        Some(s) if s.code == Code::Ok as i32 => Ok(()),
        Some(s) => Err(Error::from_status(s)),
    }
}

/// Proto name of a RocketMQ code, or `CODE_<n>` for a value this crate does
/// not know.
pub fn code_name(code: i32) -> String {
    match Code::try_from(code) {
        Ok(c) => c.as_str_name().to_owned(),
        Err(_) => format!("CODE_{code}"),
    }
}

/// Canonical (upper snake case) name of a gRPC status code.
pub fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// `message (NAME)`, or just `NAME` when the message is empty.
fn describe(message: &str, name: &str) -> String {
    let message = message.trim();
    if message.is_empty() {
        name.to_owned()
    } else {
        format!("{message} ({name})")
    }
}

/// An error and its sources on one line, skipping repeated texts.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: i32, message: &str) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    #[test]
    fn ok_status_passes() {
        assert!(check(Some(&status(Code::Ok as i32, "OK"))).is_ok());
    }

    #[test]
    fn missing_status_is_a_protocol_error() {
        assert!(matches!(check(None), Err(Error::Protocol(_))));
    }

    #[test]
    fn known_code_keeps_code_and_name() {
        let e = check(Some(&status(
            Code::TopicNotFound as i32,
            "topic orders does not exist",
        )))
        .unwrap_err();
        match &e {
            Error::Status {
                code,
                name,
                message,
            } => {
                assert_eq!(*code, 40402);
                assert_eq!(name, "TOPIC_NOT_FOUND");
                assert_eq!(message, "topic orders does not exist");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(e.code(), Some(Code::TopicNotFound));
        assert_eq!(
            e.to_string(),
            "topic orders does not exist (TOPIC_NOT_FOUND)"
        );
    }

    #[test]
    fn unknown_code_does_not_panic() {
        let e = Error::from_status(&status(47123, "from the future"));
        assert_eq!(e.code(), None);
        match &e {
            Error::Status { code, name, .. } => {
                assert_eq!(*code, 47123);
                assert_eq!(name, "CODE_47123");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(e.to_string(), "from the future (CODE_47123)");
    }

    #[test]
    fn empty_message_shows_the_name() {
        let e = Error::from_status(&status(Code::MessageBodyEmpty as i32, "  "));
        assert_eq!(e.to_string(), "MESSAGE_BODY_EMPTY");
    }

    #[test]
    fn grpc_status_maps_to_rpc() {
        let e = Error::from(tonic::Status::not_found("topic orders does not exist"));
        assert_eq!(e.grpc_code(), Some(tonic::Code::NotFound));
        assert_eq!(e.to_string(), "topic orders does not exist (NOT_FOUND)");
        let e = Error::from(tonic::Status::already_exists(""));
        assert_eq!(e.to_string(), "ALREADY_EXISTS");
    }

    #[test]
    fn rpc_errors_keep_the_transport_cause() {
        use std::error::Error as _;
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::from(tonic::Status::from_error(Box::new(refused)));
        let cause = e.source().expect("the cause is kept");
        assert_eq!(cause.to_string(), "refused");
        assert!(matches!(e, Error::Rpc { cause: Some(_), .. }));
        // A status of the server's own has no cause to keep.
        let plain = Error::from(tonic::Status::not_found("no such topic"));
        assert!(plain.source().is_none());
    }

    #[test]
    fn retryable_errors() {
        assert!(Error::from_status(&status(Code::TooManyRequests as i32, "")).is_retryable());
        assert!(!Error::from_status(&status(Code::TopicNotFound as i32, "")).is_retryable());
        assert!(!Error::from_status(&status(61234, "")).is_retryable());
        assert!(Error::from(tonic::Status::unavailable("down")).is_retryable());
        assert!(Error::from(tonic::Status::unavailable("down")).is_transport());
        assert!(!Error::invalid("x").is_retryable());
    }

    #[test]
    fn code_names() {
        assert_eq!(code_name(40401), "MESSAGE_NOT_FOUND");
        assert_eq!(code_name(-1), "CODE_-1");
        assert_eq!(
            grpc_code_name(tonic::Code::FailedPrecondition),
            "FAILED_PRECONDITION"
        );
    }
}
