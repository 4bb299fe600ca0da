//! The `authorization` header of protocol.md §5:
//! `MQv2-HMAC-SHA1 Credential=<AK>, SignedHeaders=x-mq-date-time,
//! Signature=<hex(HMAC-SHA1(SK, x-mq-date-time))>`.
//!
//! It only authenticates a timestamp, as every official client does; the
//! hex is lower case, like the Go, Python and Rust clients.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::time::UtcTime;

/// `x-mq-date-time` for `t`: `yyyyMMddTHHmmssZ` in UTC.
pub(crate) fn date_time(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let u = UtcTime::from_epoch_secs(secs);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        u.year, u.month, u.day, u.hour, u.minute, u.second
    )
}

/// The `authorization` header value for `date_time`.
pub(crate) fn authorization(access_key: &str, secret_key: &str, date_time: &str) -> String {
    let signature = hex(&hmac_sha1(secret_key.as_bytes(), date_time.as_bytes()));
    format!(
        "MQv2-HMAC-SHA1 Credential={access_key}, SignedHeaders=x-mq-date-time, Signature={signature}"
    )
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    // HMAC accepts a key of any length (a long one is hashed first), so
    // `new_from_slice` cannot fail here; the fallback keeps this panic-free.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
        return [0; 20];
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(40), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn hmac_sha1_rfc2202() {
        assert_eq!(
            hex(&hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        // A key longer than SHA-1's 64-byte block is hashed first.
        let key = [0xaau8; 80];
        assert_eq!(
            hex(&hmac_sha1(
                &key,
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112"
        );
    }

    #[test]
    fn date_time_is_utc_compact() {
        assert_eq!(date_time(UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(
            date_time(UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661)),
            "20000229T010101Z"
        );
        assert_eq!(
            date_time(UNIX_EPOCH + Duration::from_secs(1_706_745_599)),
            "20240131T235959Z"
        );
    }

    /// The expected signatures were computed apart from this crate, with
    /// Python's standard library:
    /// `hmac.new(b"SK1", b"20240131T235959Z", hashlib.sha1).hexdigest()` and
    /// `hmac.new(b"k" * 100, b"20000229T010101Z", hashlib.sha1).hexdigest()`.
    #[test]
    fn authorization_header_matches_an_independent_hmac() {
        let date = date_time(UNIX_EPOCH + Duration::from_secs(1_706_745_599));
        assert_eq!(
            authorization("AK1", "SK1", &date),
            "MQv2-HMAC-SHA1 Credential=AK1, SignedHeaders=x-mq-date-time, \
             Signature=f26099e9657ad11b2557ef8c1895682849c390a6"
        );
        let long_secret = "k".repeat(100);
        assert_eq!(
            authorization("ak", &long_secret, "20000229T010101Z"),
            "MQv2-HMAC-SHA1 Credential=ak, SignedHeaders=x-mq-date-time, \
             Signature=949c06ca4932d9bd3e787bf70a6013350eb695e8"
        );
        assert_eq!(
            authorization("ak", "Jefe", "what do ya want for nothing?"),
            "MQv2-HMAC-SHA1 Credential=ak, SignedHeaders=x-mq-date-time, \
             Signature=effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }
}
