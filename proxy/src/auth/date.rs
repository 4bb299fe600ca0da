//! The `x-mq-date-time` header, in every official client's format
//! (protocol.md §5), and how far it is from the server's clock.
//!
//! - compact `yyyyMMddTHHmmssZ`: Node writes UTC; Java, Go and Python
//!   write their LOCAL time followed by a literal `Z`;
//! - RFC 3339 with an offset and up to nanoseconds (Rust).
//!
//! The compact form is read as UTC. Clients whose local zone is not UTC
//! then look stale unless `auth_local_time_dates` is on, which accepts the
//! compact form at any real zone offset (−12 h to +14 h): that widens the
//! window in which a captured signature can be replayed from 30 minutes
//! to about 26.5 hours. RFC 3339 carries its offset, so it is always
//! checked strictly.

/// How far a date may be from the server's clock, either way.
pub(crate) const MAX_SKEW_SECS: i64 = 15 * 60;
/// Offsets of real time zones, in seconds (UTC−12:00 to UTC+14:00).
const MIN_ZONE_OFFSET: i64 = -12 * 3600;
const MAX_ZONE_OFFSET: i64 = 14 * 3600;

/// A date the server could read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientDate {
    /// Seconds since the epoch, reading a compact date as UTC.
    pub(crate) epoch_secs: i64,
    /// The compact form, whose `Z` may stand for a local time.
    pub(crate) compact: bool,
}

/// Reads `len` ASCII digits at `at`.
fn digits(s: &[u8], at: usize, len: usize) -> Option<i64> {
    let part = s.get(at..at + len)?;
    part.iter().try_fold(0i64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
    })
}

/// Seconds since the epoch of a UTC date and time read from `b`: year,
/// month, day, hour, minute and second are the digits at these (offset,
/// length) places. `None` for a date that does not exist.
fn epoch(b: &[u8], places: [(usize, usize); 6]) -> Option<i64> {
    let [y, mo, d, h, mi, s] = places.map(|(at, len)| digits(b, at, len));
    let month = time::Month::try_from(u8::try_from(mo?).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::try_from(y?).ok()?, month, u8::try_from(d?).ok()?)
            .ok()?;
    let (h, mi, s) = (h?, mi?, s?);
    // 60: a leap second, as RFC 3339 allows.
    let valid = (0..24).contains(&h) && (0..60).contains(&mi) && (0..=60).contains(&s);
    // The Julian day number of 1970-01-01.
    let days = i64::from(date.to_julian_day()) - 2_440_588;
    valid.then(|| days * 86_400 + h * 3600 + mi * 60 + s)
}

/// Parses a date in one of the clients' formats.
pub(crate) fn parse(s: &str) -> Option<ClientDate> {
    let b = s.as_bytes();
    if b.len() == 16 && b[8] == b'T' && b[15] == b'Z' {
        let secs = epoch(b, [(0, 4), (4, 2), (6, 2), (9, 2), (11, 2), (13, 2)])?;
        return Some(ClientDate {
            epoch_secs: secs,
            compact: true,
        });
    }
    // RFC 3339: YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let local = epoch(b, [(0, 4), (5, 2), (8, 2), (11, 2), (14, 2), (17, 2)])?;
    let mut at = 19;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return None;
        }
    }
    let offset = match b.get(at..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let h = digits(b, at + 1, 2)?;
            let m = digits(b, at + 4, 2)?;
            if h > 23 || m > 59 {
                return None;
            }
            let o = h * 3600 + m * 60;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    Some(ClientDate {
        epoch_secs: local - offset,
        compact: false,
    })
}

/// Whether `date` is close enough to `now_secs`. With `local_time_dates`,
/// a compact date may be the client's local time at any real offset.
pub(crate) fn is_fresh(date: ClientDate, now_secs: i64, local_time_dates: bool) -> bool {
    let skew = date.epoch_secs - now_secs;
    if date.compact && local_time_dates {
        // The client wrote UTC + its offset.
        (MIN_ZONE_OFFSET - MAX_SKEW_SECS..=MAX_ZONE_OFFSET + MAX_SKEW_SECS).contains(&skew)
    } else {
        skew.abs() <= MAX_SKEW_SECS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clients_format() {
        // 2024-01-31T23:59:59Z = 1706745599.
        let utc = 1_706_745_599;
        assert_eq!(parse("20240131T235959Z").unwrap().epoch_secs, utc);
        assert!(parse("20240131T235959Z").unwrap().compact);
        let rust = parse("2024-01-31T23:59:59.123456789Z").unwrap();
        assert_eq!(rust.epoch_secs, utc);
        assert!(!rust.compact);
        assert_eq!(
            parse("2024-02-01T07:59:59.5+08:00").unwrap().epoch_secs,
            utc
        );
        assert_eq!(parse("2024-01-31T18:29:59-05:30").unwrap().epoch_secs, utc);
        assert_eq!(
            parse("2000-02-29T00:00:00Z").unwrap().epoch_secs,
            951_782_400
        );
        assert_eq!(parse("19700101T000000Z").unwrap().epoch_secs, 0);
    }

    #[test]
    fn malformed_dates_are_refused() {
        for bad in [
            "",
            "yesterday",
            "20240131T235959",
            "20241331T235959Z",
            "20230229T000000Z",
            "20240131T245959Z",
            "2024-01-31T23:59:59",
            "2024-01-31T23:59:59.Z",
            "2024-01-31T23:59:59+0800",
            "2024-01-31T23:59:59+25:00",
            "２０２４0131T235959Z",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn freshness_is_strict_unless_local_time_is_allowed() {
        let now = 1_706_745_599;
        let at = |secs: i64, compact: bool| ClientDate {
            epoch_secs: secs,
            compact,
        };
        assert!(is_fresh(at(now + 899, true), now, false));
        assert!(is_fresh(at(now - 900, false), now, false));
        assert!(!is_fresh(at(now - 901, true), now, false));
        // A Java client at UTC+8 writes local time with a Z.
        let beijing = at(now + 8 * 3600, true);
        assert!(!is_fresh(beijing, now, false));
        assert!(is_fresh(beijing, now, true));
        assert!(is_fresh(at(now - 12 * 3600, true), now, true));
        assert!(!is_fresh(at(now - 13 * 3600, true), now, true));
        assert!(!is_fresh(at(now + 15 * 3600, true), now, true));
        // RFC 3339 carries its offset: never widened.
        assert!(!is_fresh(at(now + 8 * 3600, false), now, true));
    }
}
