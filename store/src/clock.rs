//! Where the store's notion of "now" comes from. Deadlines (invisibility,
//! delay timers, transaction checks, retention) are wall-clock milliseconds
//! stored in RocksDB, so tests cannot fake them with tokio's paused time:
//! they hand the store a [`ManualClock`] and move it themselves.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Debug + Send + Sync + 'static {
    /// Returns the current time, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The clock a store shares with its parts.
pub(crate) type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// A clock that only moves when told to, for tests.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    /// Returns a clock that reads `start_ms` until moved.
    pub fn new(start_ms: i64) -> ManualClock {
        ManualClock {
            now: AtomicI64::new(start_ms),
        }
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// Returns the system time in milliseconds since the Unix epoch (0 if the
/// system clock is set before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
