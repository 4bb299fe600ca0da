//! Signing raw calls as a user, as the official clients do (protocol.md
//! §5), and a Pier with auth on for the auth tests.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha1::Sha1;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};

/// The admin user the auth tests start Pier with.
pub const ROOT: (&str, &str) = ("root", "root-secret");

/// Flags that turn auth on and create [`ROOT`].
pub fn auth_flags() -> Vec<&'static str> {
    vec!["--auth", "--admin-user", ROOT.0, "--admin-secret", ROOT.1]
}

/// The `authorization` value of `access_key` signing `date` with `secret`.
pub fn authorization(access_key: &str, secret: &str, date: &str) -> String {
    let sig = signature(secret, date);
    format!("MQv2-HMAC-SHA1 Credential={access_key}, SignedHeaders=x-mq-date-time, Signature={sig}")
}

/// Hex HMAC-SHA1 of `date` keyed with `secret`.
pub fn signature(secret: &str, date: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(date.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The server's clock shifted by `offset_secs`, as RFC 3339 (Rust's form).
pub fn date(offset_secs: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    pier::time::format_rfc3339_millis((now + offset_secs * 1000) as u64)
}

/// Adds `authorization` (when `credential` is set) and `x-mq-date-time`
/// (when `date` is set) to a request.
pub fn sign_raw<T>(
    mut r: tonic::Request<T>,
    credential: Option<&str>,
    secret: &str,
    date: Option<&str>,
) -> tonic::Request<T> {
    let md = r.metadata_mut();
    if let Some(d) = date {
        md.insert("x-mq-date-time", MetadataValue::try_from(d).expect("ascii"));
    }
    if let Some(ak) = credential {
        let v = authorization(ak, secret, date.unwrap_or_default());
        md.insert("authorization", MetadataValue::try_from(v).expect("ascii"));
    }
    r
}

/// A request signed now by `user` with `secret`, dated as the official
/// Rust client dates (RFC 3339, below the second).
pub fn signed<T>(r: tonic::Request<T>, user: &str, secret: &str) -> tonic::Request<T> {
    let d = date(0);
    sign_raw(r, Some(user), secret, Some(&d))
}

/// `secs` since the epoch as the Java, Go, Python and Node.js clients and
/// Pier's SDK write `x-mq-date-time`: `yyyyMMddTHHmmssZ`, to the second
/// (in UTC here).
pub fn compact_date(secs: u64) -> String {
    // `2026-12-06T19:30:00.000Z` -> `20261206T193000Z`.
    let rfc = pier::time::format_rfc3339_millis(secs * 1000);
    let mut d: String = rfc
        .chars()
        .take(19)
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    d.push('Z');
    d
}

/// A value made at most once a second and shared within it: a date header
/// to the second (and the signature of it), as the official clients send.
pub struct PerSecond<T>(Mutex<Option<(u64, T)>>);

impl<T> Default for PerSecond<T> {
    fn default() -> Self {
        PerSecond(Mutex::new(None))
    }
}

impl<T: Clone> PerSecond<T> {
    /// The value for the current second, made by `make` (given the seconds
    /// since the epoch) when the second is new.
    pub fn now(&self, make: impl FnOnce(u64) -> T) -> T {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut current = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match &*current {
            Some((s, v)) if *s == secs => v.clone(),
            _ => {
                let v = make(secs);
                *current = Some((secs, v.clone()));
                v
            }
        }
    }
}

/// The `x-mq-date-time` value for `secs` ([`compact_date`]).
pub fn date_header(secs: u64) -> AsciiMetadataValue {
    AsciiMetadataValue::try_from(compact_date(secs)).expect("digits and letters")
}

/// Signs calls as one user the way the clients that date to the second
/// sign ([`compact_date`]): the signature covers only the date, so every
/// call within one second carries the same two header values; they are
/// computed once per second and shared. (HTTP/2 header compression then
/// sends the date as a reference to its table; a date that changes with
/// every call, as the Rust client's does, is new every time for the
/// client's encoder and the server's decoder alike.)
pub struct Signer {
    user: String,
    secret: String,
    /// The date and `authorization` values of the current second.
    current: PerSecond<(AsciiMetadataValue, AsciiMetadataValue)>,
}

impl Signer {
    /// Signs as `user` with `secret`.
    pub fn new(user: &str, secret: &str) -> Signer {
        Signer {
            user: user.to_owned(),
            secret: secret.to_owned(),
            current: PerSecond::default(),
        }
    }

    /// `r`, signed now.
    pub fn sign<T>(&self, mut r: tonic::Request<T>) -> tonic::Request<T> {
        let (date, authorization) = self.current.now(|secs| {
            let date = compact_date(secs);
            let auth = authorization(&self.user, &self.secret, &date);
            (
                AsciiMetadataValue::try_from(date).expect("ascii"),
                AsciiMetadataValue::try_from(auth).expect("ascii user"),
            )
        });
        let md = r.metadata_mut();
        md.insert("x-mq-date-time", date);
        md.insert("authorization", authorization);
        r
    }
}

/// An admin client of `endpoint` signing as `user`.
pub async fn admin_as(endpoint: &str, user: &str, secret: &str) -> pier::admin::Admin {
    let addr = endpoint.parse().expect("endpoint");
    let conn = pier::connect::Connection::connect(addr, Default::default())
        .await
        .expect("connect")
        .with_credentials(pier::Credentials::new(user, secret))
        .expect("ascii credentials");
    pier::admin::Admin::new(&conn)
}

/// Polls `check` until it returns true or `within` passes; returns how
/// long it took, or `None`.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compact_date_is_to_the_second_in_utc() {
        assert_eq!(compact_date(0), "19700101T000000Z");
        assert_eq!(compact_date(951_782_400 + 3661), "20000229T010101Z");
    }

    #[test]
    fn a_signer_signs_the_date_it_sends_and_reuses_it_within_the_second() {
        let signer = Signer::new("ak", "sk");
        let header = |r: &tonic::Request<()>, name: &str| {
            r.metadata().get(name).unwrap().to_str().unwrap().to_owned()
        };
        let (a, b) = loop {
            let a = signer.sign(tonic::Request::new(()));
            let b = signer.sign(tonic::Request::new(()));
            // Signed across a second's boundary: try again.
            if header(&a, "x-mq-date-time") == header(&b, "x-mq-date-time") {
                break (a, b);
            }
        };
        let date = header(&a, "x-mq-date-time");
        assert_eq!(
            header(&a, "authorization"),
            format!(
                "MQv2-HMAC-SHA1 Credential=ak, SignedHeaders=x-mq-date-time, Signature={}",
                signature("sk", &date)
            ),
            "spelled out here, not through `authorization`, so a mistake there shows"
        );
        assert_eq!(header(&a, "authorization"), header(&b, "authorization"));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            [compact_date(now), compact_date(now - 1)].contains(&date),
            "{date}"
        );
    }
}
