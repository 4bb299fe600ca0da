//! Signing raw calls as a user, as the official clients do (protocol.md
//! §5), and a Pier with auth on for the auth tests.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha1::Sha1;
use tonic::metadata::MetadataValue;

/// The admin user the auth tests start Pier with.
pub const ROOT: (&str, &str) = ("root", "root-secret");

/// Flags that turn auth on and create [`ROOT`].
pub fn auth_flags() -> Vec<&'static str> {
    vec!["--auth", "--admin-user", ROOT.0, "--admin-secret", ROOT.1]
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
        let sig = signature(secret, date.unwrap_or_default());
        let v = format!(
            "MQv2-HMAC-SHA1 Credential={ak}, SignedHeaders=x-mq-date-time, Signature={sig}"
        );
        md.insert("authorization", MetadataValue::try_from(v).expect("ascii"));
    }
    r
}

/// A request signed now by `user` with `secret`.
pub fn signed<T>(r: tonic::Request<T>, user: &str, secret: &str) -> tonic::Request<T> {
    let d = date(0);
    sign_raw(r, Some(user), secret, Some(&d))
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
