//! Failures the server caused: one WARN line per failed call, rate-limited.
//!
//! A request can fail because of the client (bad input, an unknown topic, a
//! stale receipt handle: the reply says so and nothing is logged) or
//! because of the server (the store unreachable, failing, poisoned or
//! stopping). The second kind is an operator's business, so each such
//! failure is logged with the RPC, the resource it named and the whole cause
//! chain. An outage fails thousands of calls a second with the same cause:
//! a [`RateLimiter`] lets one line per RPC and kind of cause through every
//! [`FaultLog::EVERY`], and the next line says how many were left out.

use std::fmt::Display;
use std::time::{Duration, Instant};

use pier_node::throttle::RateLimiter;

use crate::status::Rejection;

/// What went wrong on the server side, as the log groups it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// The store node could not be reached.
    StoreUnavailable,
    /// The call to the store node failed otherwise (e.g. over a size limit).
    StoreLink,
    /// Reading or writing the store's storage failed.
    StoreFailed,
    /// The store refuses writes since a write to its WAL failed.
    StorePoisoned,
    /// The store is shutting down.
    StoreStopping,
    /// The proxy found something inconsistent (e.g. in the store's answer).
    Internal,
}

impl FaultKind {
    /// The words the log uses for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::StoreUnavailable => "store unavailable",
            FaultKind::StoreLink => "store link failed",
            FaultKind::StoreFailed => "store failed",
            FaultKind::StorePoisoned => "store poisoned",
            FaultKind::StoreStopping => "store stopping",
            FaultKind::Internal => "internal",
        }
    }
}

/// The server-side cause of a failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// What kind of failure it was.
    pub kind: FaultKind,
    /// The error and its chain of causes, for the log only.
    pub cause: String,
}

/// Where failures the server caused are logged.
pub struct FaultLog {
    limiter: RateLimiter<(&'static str, FaultKind)>,
}

impl Default for FaultLog {
    fn default() -> Self {
        FaultLog::new(FaultLog::EVERY)
    }
}

impl FaultLog {
    /// At most one line per RPC and kind of cause this often.
    pub const EVERY: Duration = Duration::from_secs(10);

    /// A log of at most one line per RPC and kind every `every`.
    pub fn new(every: Duration) -> FaultLog {
        FaultLog {
            limiter: RateLimiter::new(every),
        }
    }

    /// Logs `rejection` if the server caused it; `rpc` names the call (or
    /// the background task) and `resource` what it was about.
    pub fn report(&self, rpc: &'static str, resource: impl Display, rejection: &Rejection) {
        if let Some(fault) = &rejection.fault {
            self.report_fault(rpc, resource, fault);
        }
    }

    /// Logs a failure the server caused (see [`FaultLog::report`]).
    pub fn report_fault(&self, rpc: &'static str, resource: impl Display, fault: &Fault) {
        if let Some(suppressed) = self.limiter.admit((rpc, fault.kind), Instant::now()) {
            tracing::warn!(
                rpc,
                resource = %resource,
                kind = fault.kind.as_str(),
                cause = %fault.cause,
                suppressed,
                "a request failed because of the server (suppressed: like failures left out since the last line)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_server_faults_are_reported() {
        use pier_proto::rocketmq::Code;
        // A client's mistake carries no fault: nothing to rate-limit or log.
        let client = Rejection::new(Code::BadRequest, "bad");
        assert!(client.fault.is_none());
        let server = Rejection::from(pier_store::StoreError::Poisoned);
        assert_eq!(
            server.fault.as_ref().map(|f| f.kind),
            Some(FaultKind::StorePoisoned)
        );
        let log = FaultLog::new(Duration::from_secs(3600));
        log.report("AckMessage", "group g", &client);
        log.report("AckMessage", "group g", &server);
        // The report above used the window of (AckMessage, poisoned).
        assert_eq!(
            log.limiter
                .admit(("AckMessage", FaultKind::StorePoisoned), Instant::now()),
            None
        );
        assert_eq!(
            log.limiter
                .admit(("AckMessage", FaultKind::Internal), Instant::now()),
            Some(0),
            "the client's rejection was not counted"
        );
    }
}
