//! Time in the forms the protocol and the tools use: std durations and
//! times to and from their protobuf forms, and UTC calendar dates computed
//! without a date crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A protobuf Duration (saturating at `i64::MAX` seconds).
pub(crate) fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// A protobuf Duration as a std one (a negative one is zero).
pub(crate) fn std_duration(d: &prost_types::Duration) -> Duration {
    let secs = u64::try_from(d.seconds).unwrap_or(0);
    let nanos = u32::try_from(d.nanos).unwrap_or(0);
    Duration::new(secs, nanos.min(999_999_999))
}

/// A protobuf Timestamp as a std time; `None` before the epoch or when
/// malformed.
pub(crate) fn system_time(t: &prost_types::Timestamp) -> Option<SystemTime> {
    let secs = u64::try_from(t.seconds).ok()?;
    let nanos = u32::try_from(t.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// A UTC date and time of day, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UtcTime {
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u64,
    pub(crate) minute: u64,
    pub(crate) second: u64,
}

impl UtcTime {
    /// The UTC date and time `secs` seconds after the epoch.
    pub(crate) fn from_epoch_secs(secs: u64) -> UtcTime {
        let (year, month, day) = civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0));
        let rem = secs % 86_400;
        UtcTime {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
        }
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar, after Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both are small and positive: a day of the month and a month number.
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Milliseconds since the epoch as RFC 3339 in UTC with milliseconds,
/// `2023-11-14T22:13:20.123Z` (the form the `pier` tool prints).
pub fn format_rfc3339_millis(ms: u64) -> String {
    let t = UtcTime::from_epoch_secs(ms / 1000);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_dates() {
        assert_eq!(format_rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339_millis(1), "1970-01-01T00:00:00.001Z");
        assert_eq!(
            format_rfc3339_millis(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            format_rfc3339_millis(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
        // Far-off values do not panic.
        assert!(format_rfc3339_millis(u64::MAX).ends_with(".615Z"));
    }

    #[test]
    fn protobuf_forms() {
        let d = Duration::from_millis(1_500);
        assert_eq!(std_duration(&duration(d)), d);
        let negative = prost_types::Duration {
            seconds: -3,
            nanos: 0,
        };
        assert_eq!(std_duration(&negative), Duration::ZERO);
        let t = prost_types::Timestamp {
            seconds: 10,
            nanos: 5,
        };
        assert_eq!(system_time(&t), Some(UNIX_EPOCH + Duration::new(10, 5)));
        let before = prost_types::Timestamp {
            seconds: -1,
            nanos: 0,
        };
        assert_eq!(system_time(&before), None);
    }
}
