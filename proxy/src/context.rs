//! What a call's gRPC metadata says about its client (protocol.md §5).

use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::MetadataMap;

use crate::auth::{Principal, Refused};

/// Who is calling: a call's client headers and authenticated user.
#[derive(Debug, Clone, Default)]
pub struct ClientContext {
    /// `x-mq-client-id`: ties a client's telemetry stream, heartbeats,
    /// settings and auto-renewed receipts together.
    pub client_id: Option<String>,
    /// `x-mq-language`: the client's SDK language (JAVA, GOLANG, ...).
    pub language: String,
    /// `x-mq-client-version`: the client's SDK version.
    pub version: String,
    /// `x-mq-namespace`, used when a Resource carries no namespace.
    pub namespace: String,
    /// Time left before the client's deadline (`grpc-timeout`).
    pub deadline: Option<Duration>,
    /// The authenticated user (set by the auth layer when auth is on).
    pub user: Option<Arc<Principal>>,
    /// Why the auth layer refused the call, when it left the answer to the
    /// handler (see `auth::layer`).
    pub refused: Option<Arc<Refused>>,
}

impl ClientContext {
    /// The context of a call: its metadata, and the user the auth layer
    /// authenticated.
    pub fn of<T>(request: &tonic::Request<T>) -> ClientContext {
        let mut ctx = ClientContext::from_metadata(request.metadata());
        ctx.user = request.extensions().get::<Arc<Principal>>().cloned();
        ctx.refused = request.extensions().get::<Arc<Refused>>().cloned();
        ctx
    }

    /// The authenticated user of the call, if auth is on.
    pub fn user(&self) -> Option<&Principal> {
        self.user.as_deref()
    }

    /// The context the metadata alone gives (no user).
    pub fn from_metadata(md: &MetadataMap) -> ClientContext {
        let get = |k: &str| {
            md.get(k)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let client_id = get("x-mq-client-id");
        ClientContext {
            client_id: (!client_id.is_empty()).then_some(client_id),
            language: get("x-mq-language"),
            version: get("x-mq-client-version"),
            namespace: get("x-mq-namespace"),
            deadline: md
                .get("grpc-timeout")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_grpc_timeout),
            user: None,
            refused: None,
        }
    }

    /// The Rust crate `rocketmq` 5.0.0 panics on status codes added to the
    /// protocol after it was generated (protocol.md §1).
    pub fn is_rust_5_0_0(&self) -> bool {
        self.language.eq_ignore_ascii_case("RUST") && self.version.starts_with("5.0.0")
    }
}

/// Parses a `grpc-timeout` value: an integer of at most 8 digits and a unit
/// (H, M, S, m, u, n).
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    // ASCII only: the unit is split off as the last byte.
    if v.len() < 2 || !v.is_ascii() {
        return None;
    }
    let (n, unit) = v.split_at(v.len() - 1);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_grpc_timeout("1500m"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout("10Q"), None);
    }
}
