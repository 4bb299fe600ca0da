//! Retry policies: the delays between attempts (protocol.md §4.9.5), and
//! the policies used until the server sends its own in the Settings.

use std::time::Duration;

use pier_proto::rocketmq::{retry_policy, ExponentialBackoff, RetryPolicy};

use crate::time::{duration, std_duration};

/// The delay before attempt `attempt + 1` after attempt `attempt` (1-based)
/// failed, under `policy` (protocol.md §4.9.5).
pub(crate) fn retry_delay(policy: &RetryPolicy, attempt: i32) -> Duration {
    let attempt = attempt.max(1);
    match &policy.strategy {
        Some(retry_policy::Strategy::ExponentialBackoff(e)) => {
            let initial = e.initial.as_ref().map_or(Duration::ZERO, std_duration);
            let max = e.max.as_ref().map_or(Duration::MAX, std_duration);
            let multiplier = if e.multiplier > 0.0 {
                e.multiplier as f64
            } else {
                1.0
            };
            let factor = multiplier.powi((attempt - 1).min(64));
            let secs = (initial.as_secs_f64() * factor).min(max.as_secs_f64());
            Duration::try_from_secs_f64(secs).unwrap_or(max)
        }
        Some(retry_policy::Strategy::CustomizedBackoff(c)) if !c.next.is_empty() => {
            let i = usize::try_from(attempt - 1).unwrap_or(0);
            c.next
                .get(i)
                .or(c.next.last())
                .map_or(Duration::ZERO, std_duration)
        }
        _ => Duration::from_secs(1),
    }
}

/// The producer policy used until the server sends its own.
pub(crate) fn default_producer_policy() -> RetryPolicy {
    doubling(3, Duration::from_millis(10), Duration::from_secs(1))
}

/// The consumer policy used until the server sends its own.
pub(crate) fn default_consumer_policy() -> RetryPolicy {
    doubling(16, Duration::from_secs(1), Duration::from_secs(60))
}

/// `max_attempts` attempts, the delay doubling from `initial` up to `max`.
fn doubling(max_attempts: i32, initial: Duration, max: Duration) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        strategy: Some(retry_policy::Strategy::ExponentialBackoff(
            ExponentialBackoff {
                initial: Some(duration(initial)),
                max: Some(duration(max)),
                multiplier: 2.0,
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pier_proto::rocketmq::CustomizedBackoff;

    #[test]
    fn exponential_delays_are_capped() {
        let p = default_producer_policy();
        assert_eq!(retry_delay(&p, 1), Duration::from_millis(10));
        assert_eq!(retry_delay(&p, 3), Duration::from_millis(40));
        assert_eq!(retry_delay(&p, 30), Duration::from_secs(1));
    }

    #[test]
    fn customized_delays_clamp_to_the_last() {
        let p = RetryPolicy {
            max_attempts: 5,
            strategy: Some(retry_policy::Strategy::CustomizedBackoff(
                CustomizedBackoff {
                    next: vec![
                        duration(Duration::from_secs(1)),
                        duration(Duration::from_secs(5)),
                    ],
                },
            )),
        };
        assert_eq!(retry_delay(&p, 1), Duration::from_secs(1));
        assert_eq!(retry_delay(&p, 2), Duration::from_secs(5));
        assert_eq!(retry_delay(&p, 9), Duration::from_secs(5));
        let none = RetryPolicy::default();
        assert_eq!(retry_delay(&none, 1), Duration::from_secs(1));
    }
}
