//! When the store asks producers about a transaction left unresolved, and
//! when it gives up.

use crate::error::{Result, StoreError};

/// The schedule of transaction checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckPolicy {
    /// Delay of the first check after the send, for messages that do not
    /// carry their own (`orphaned_transaction_recovery_duration`).
    pub first_check_ms: u64,
    /// Each wait between checks is this many times the previous one, the
    /// first being `factor` x the message's first-check delay (1: a fixed
    /// interval).
    pub backoff_factor: u32,
    /// Longest wait between two checks.
    pub max_interval_ms: u64,
    /// Unanswered checks after which the transaction is rolled back (one
    /// more wait after the last check gives a slow producer time to answer).
    pub max_checks: u32,
}

impl CheckPolicy {
    /// Default first check: 6 s after the send, as the reference broker's
    /// `transactionTimeOut`.
    pub const DEFAULT_CHECK_AFTER_MS: u64 = 6_000;
    /// Default back-off factor between checks.
    pub const DEFAULT_CHECK_BACKOFF: u32 = 2;
    /// Default longest wait between two checks of one transaction.
    pub const MAX_CHECK_INTERVAL_MS: u64 = 5 * 60 * 1000;
    /// Default number of checks, as the reference broker's
    /// `transactionCheckMax`.
    pub const MAX_CHECKS: u32 = 15;

    /// Fails when a delay or the factor is zero.
    pub fn validate(&self) -> Result<()> {
        if self.first_check_ms == 0 || self.max_interval_ms == 0 || self.backoff_factor == 0 {
            return Err(StoreError::invalid(format!(
                "transaction check delays and back-off factor must be > 0: {self:?}"
            )));
        }
        Ok(())
    }

    /// Returns the wait after check number `checks` (1 = the first) of a
    /// message whose first check came `check_after_ms` after its send.
    pub fn interval_after(&self, check_after_ms: u64, checks: u32) -> u64 {
        let factor = u64::from(self.backoff_factor).saturating_pow(checks);
        check_after_ms
            .saturating_mul(factor)
            .min(self.max_interval_ms)
    }
}

impl Default for CheckPolicy {
    fn default() -> Self {
        CheckPolicy {
            first_check_ms: Self::DEFAULT_CHECK_AFTER_MS,
            backoff_factor: Self::DEFAULT_CHECK_BACKOFF,
            max_interval_ms: Self::MAX_CHECK_INTERVAL_MS,
            max_checks: Self::MAX_CHECKS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_intervals_grow_up_to_the_cap() {
        let p = CheckPolicy {
            first_check_ms: 100,
            backoff_factor: 3,
            max_interval_ms: 1_000,
            max_checks: 5,
        };
        let gaps: Vec<u64> = (1..=4).map(|k| p.interval_after(100, k)).collect();
        assert_eq!(gaps, vec![300, 900, 1_000, 1_000]);
        let fixed = CheckPolicy {
            backoff_factor: 1,
            ..p
        };
        assert_eq!(fixed.interval_after(100, 40), 100);
        // No overflow however many checks.
        assert_eq!(
            CheckPolicy::default().interval_after(u64::MAX, 200),
            CheckPolicy::MAX_CHECK_INTERVAL_MS
        );
        assert!(CheckPolicy::default().validate().is_ok());
        assert!(CheckPolicy {
            backoff_factor: 0,
            ..p
        }
        .validate()
        .is_err());
    }
}
