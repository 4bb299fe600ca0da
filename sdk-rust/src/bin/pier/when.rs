//! Points in time on the command line (`--since`, `--until`, `--to`):
//! milliseconds since the epoch, RFC 3339 in UTC (`2026-12-06T08:30:00Z`,
//! fractions allowed), or a time ago (`30s`, `10m`, `2h`, `1d`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Parses a point in time into milliseconds since the epoch.
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    parse_at(s, now_ms())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn parse_at(s: &str, now: i64) -> Result<i64, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "{s:?} is not a time: use milliseconds since the epoch, RFC 3339 UTC \
             (2026-12-06T08:30:00Z) or a time ago (30s, 10m, 2h, 1d)"
        )
    };
    if let Ok(ms) = s.parse::<i64>() {
        return if ms > 0 { Ok(ms) } else { Err(bad()) };
    }
    if let Some(ago) = ago_ms(s) {
        return Ok(now.saturating_sub(ago));
    }
    rfc3339_ms(s).ok_or_else(bad)
}

/// `10m` → 600 000.
fn ago_ms(s: &str) -> Option<i64> {
    let unit = match s.chars().last()? {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return None,
    };
    let n: i64 = s.get(..s.len() - 1)?.parse().ok()?;
    (n >= 0).then(|| n.saturating_mul(unit))
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` → ms since the epoch.
fn rfc3339_ms(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix('z'))?;
    let (date, time) = s.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, mo, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, b),
        None => (time, ""),
    };
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let millis = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        digits.parse::<i64>().ok()?
    };
    let days = days_from_civil(y, mo, day);
    Some((((days * 24 + h) * 60 + mi) * 60 + sec) * 1000 + millis)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (the well-known
/// era-based computation: 400-year eras of 146 097 days).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times() {
        assert_eq!(parse_at("1700000000000", 0), Ok(1_700_000_000_000));
        assert_eq!(parse_at("1970-01-01T00:00:01Z", 0), Ok(1_000));
        assert_eq!(
            parse_at("2026-12-06T08:30:00.25Z", 0),
            Ok(1_796_545_800_250)
        );
        assert_eq!(parse_at("2000-03-01T00:00:00Z", 0), Ok(951_868_800_000));
        assert_eq!(parse_at("10m", 1_000_000), Ok(400_000));
        assert_eq!(parse_at("1d", 86_400_000), Ok(0));
        for bad in [
            "",
            "0",
            "-5",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-12-06",
        ] {
            assert!(parse_at(bad, 0).is_err(), "{bad}");
        }
    }
}
