//! Failures the server caused: one WARN line per failed call, rate-limited.
//!
//! A request can fail because of the client (bad input, an unknown topic, a
//! stale receipt handle: the reply says so and nothing is logged) or
//! because of the server (the store unreachable, failing, poisoned or
//! stopping). The second kind is an operator's business, so each such
//! failure is logged with the RPC, the resource it named and the whole cause
//! chain. An outage fails thousands of calls a second with the same cause:
//! [`RateLimiter`] lets one line per RPC and kind of cause through every
//! [`FaultLog::EVERY`], and the next line says how many were left out.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

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

/// Lets one event per key through every `every`, counting the others.
pub struct RateLimiter<K> {
    every: Duration,
    windows: Mutex<HashMap<K, Window>>,
}

struct Window {
    /// When an event of this key was last let through.
    last: Instant,
    /// Events left out since then.
    suppressed: u64,
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// A limiter letting one event per key through every `every`.
    pub fn new(every: Duration) -> RateLimiter<K> {
        RateLimiter {
            every,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Returns `Some(n)` when an event of `key` at `now` is to be reported,
    /// `n` being how many were left out since the last one reported; `None`
    /// when it is to be left out (and counted).
    pub fn admit(&self, key: K, now: Instant) -> Option<u64> {
        let mut windows = self.windows.lock();
        match windows.get_mut(&key) {
            Some(w) if now.saturating_duration_since(w.last) < self.every => {
                w.suppressed += 1;
                None
            }
            Some(w) => {
                w.last = now;
                Some(std::mem::take(&mut w.suppressed))
            }
            None => {
                // Keys are RPC names times fault kinds: a few dozen at most.
                windows.insert(
                    key,
                    Window {
                        last: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
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
    fn one_event_per_key_and_window_with_a_count_of_the_rest() {
        let limiter = RateLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let send = ("SendMessage", FaultKind::StoreUnavailable);
        let recv = ("ReceiveMessage", FaultKind::StoreUnavailable);

        assert_eq!(
            limiter.admit(send, at(0)),
            Some(0),
            "the first one is logged"
        );
        for s in 1..10 {
            assert_eq!(limiter.admit(send, at(s)), None, "second {s} is left out");
        }
        // Another RPC, or another cause, has its own window.
        assert_eq!(limiter.admit(recv, at(5)), Some(0));
        assert_eq!(
            limiter.admit(("SendMessage", FaultKind::StoreFailed), at(5)),
            Some(0)
        );
        assert_eq!(limiter.admit(send, at(9)), None);
        // Once the window has passed: logged, saying how many were left out.
        assert_eq!(limiter.admit(send, at(10)), Some(10));
        assert_eq!(limiter.admit(send, at(11)), None);
        assert_eq!(limiter.admit(send, at(25)), Some(1));
        assert_eq!(limiter.admit(recv, at(30)), Some(0));
    }

    #[test]
    fn a_clock_going_backwards_does_not_open_the_window() {
        let limiter = RateLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now() + Duration::from_secs(60);
        assert_eq!(limiter.admit(1, t0), Some(0));
        assert_eq!(limiter.admit(1, t0 - Duration::from_secs(30)), None);
    }

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
