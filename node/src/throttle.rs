//! Rate-limited reporting: one event per key and window let through, the
//! others counted, so an outage that fails thousands of calls a second
//! writes one log line per kind of failure and says how many it covers.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
        // A panic elsewhere while holding the map leaves it usable.
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
                // Keys are the callers' few kinds of event (RPC names times
                // kinds of cause): never anything a client chose.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_key_and_window_with_a_count_of_the_rest() {
        let limiter = RateLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let send = ("SendMessage", "unavailable");
        let recv = ("ReceiveMessage", "unavailable");

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
        assert_eq!(limiter.admit(("SendMessage", "failed"), at(5)), Some(0));
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
}
