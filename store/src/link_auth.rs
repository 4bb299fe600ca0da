//! Authentication of the store link: which callers a store node serves.
//!
//! A store node holds every user's secret and the receipt key, and serves
//! them to its proxies, so its port must not answer strangers. A cluster
//! secret shared by the store node and its proxies ([`ClusterSecret`]) is
//! proved on every call by [`LinkToken`] (the proxy's side, in
//! [`RemoteStore`](crate::RemoteStore)) and checked by [`LinkGuard`] (the
//! node's side, around `pier.store.v1.Store` and `pier.admin.v1.AdminService`;
//! gRPC health and reflection stay open, they reveal nothing).
//!
//! The token is an HMAC-SHA256 of the current time under the secret, not
//! the secret itself: the secret never crosses the wire, so a link without
//! TLS, or a log of request headers, does not give it away, and a captured
//! token is good only within [`MAX_SKEW_MS`] of its time. Within that
//! window it can be replayed, so a link crossing an untrusted network
//! still wants TLS (`--tls-cert` / `--store-tls-ca`), which also hides
//! the secrets the replies carry.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use sha2::Sha256;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The wall clock in ms (0 before 1970: tokens then fail as expired).
fn now_ms() -> u64 {
    u64::try_from(crate::clock::now_ms()).unwrap_or(0)
}
use crate::error::StoreError;

/// Metadata key of the token.
pub const TOKEN_HEADER: &str = "x-pier-cluster-token";

/// How far a token's time may be from the node's clock, either way: the
/// clocks of a store node and its proxies may differ this much.
pub const MAX_SKEW_MS: u64 = 5 * 60 * 1000;

/// Version tag of the token format, first field of the token.
const VERSION: &str = "v1";

/// Bytes MACed before the time: binds a token to this use of the secret.
const CONTEXT: &[u8] = b"pier-store-link\0";

/// The secret shared by a store node and its proxies. Its `Debug` never
/// shows it, so logging a config is safe.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct ClusterSecret(String);

impl ClusterSecret {
    /// Wraps a secret; an empty one would let anybody in.
    pub fn new(s: impl Into<String>) -> Result<ClusterSecret, StoreError> {
        let s = s.into();
        if s.is_empty() {
            return Err(StoreError::invalid("the cluster secret must not be empty"));
        }
        Ok(ClusterSecret(s))
    }

    /// Checks a secret read from a config file (which bypasses
    /// [`ClusterSecret::new`]).
    pub fn validated(self) -> Result<ClusterSecret, StoreError> {
        ClusterSecret::new(self.0)
    }

    fn mac(&self, time_ms: u64) -> Hmac<Sha256> {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(CONTEXT);
        mac.update(time_ms.to_string().as_bytes());
        mac
    }

    /// The token proving this secret at `time_ms`.
    pub fn token(&self, time_ms: u64) -> String {
        let tag = self.mac(time_ms).finalize().into_bytes();
        format!("{VERSION}.{time_ms}.{}", hex::encode(tag))
    }

    /// Checks `token` at `now_ms`: it must be a token of this secret, made
    /// within [`MAX_SKEW_MS`] of now. The MAC is compared in constant time.
    pub fn verify(&self, token: &str, now_ms: u64) -> Result<(), Refusal> {
        let mut parts = token.splitn(3, '.');
        let (Some(VERSION), Some(time), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Refusal::Malformed);
        };
        let time_ms: u64 = time.parse().map_err(|_| Refusal::Malformed)?;
        let tag = hex::decode(tag).map_err(|_| Refusal::Malformed)?;
        if time_ms.abs_diff(now_ms) > MAX_SKEW_MS {
            return Err(Refusal::Expired);
        }
        // `verify_slice` compares in constant time.
        self.mac(time_ms)
            .verify_slice(&tag)
            .map_err(|_| Refusal::WrongSecret)
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No token.
    #[error("the call carries no cluster token (x-pier-cluster-token): start the caller with --cluster-secret")]
    Missing,
    /// Not a token of this format.
    #[error("the cluster token is malformed")]
    Malformed,
    /// A token made too far from now.
    #[error("the cluster token is too old or from the future: check the clocks of the store node and the proxy (at most 5 minutes apart)")]
    Expired,
    /// A token of another secret.
    #[error("the cluster token was made with another secret: give the proxy the store node's --cluster-secret")]
    WrongSecret,
}

/// The proxy's side: adds a fresh token to every call, when a secret is set.
#[derive(Clone, Default)]
pub struct LinkToken(Option<Arc<ClusterSecret>>);

impl LinkToken {
    /// Tokens of `secret` (none when unset).
    pub fn new(secret: Option<ClusterSecret>) -> LinkToken {
        LinkToken(secret.map(Arc::new))
    }
}

impl Interceptor for LinkToken {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(secret) = &self.0 {
            // Hex and digits only: always a valid header value.
            if let Ok(v) = MetadataValue::try_from(secret.token(now_ms())) {
                req.metadata_mut().insert(TOKEN_HEADER, v);
            }
        }
        Ok(req)
    }
}

/// The store node's side: refuses calls without a valid token with
/// `UNAUTHENTICATED`, and logs the refusals of each peer at most once per
/// [`LinkGuard::LOG_EVERY`].
#[derive(Clone)]
pub struct LinkGuard {
    secret: Option<Arc<ClusterSecret>>,
    log: Arc<RefusalLog>,
}

impl LinkGuard {
    /// Least time between two log lines about one peer.
    pub const LOG_EVERY: Duration = Duration::from_secs(60);

    /// A guard checking `secret`; with none it lets every call through.
    pub fn new(secret: Option<ClusterSecret>) -> LinkGuard {
        LinkGuard {
            secret: secret.map(Arc::new),
            log: Arc::new(RefusalLog::new(LinkGuard::LOG_EVERY)),
        }
    }

    fn check(&self, req: &Request<()>) -> Result<(), Refusal> {
        let Some(secret) = &self.secret else {
            return Ok(());
        };
        let token = req
            .metadata()
            .get(TOKEN_HEADER)
            .ok_or(Refusal::Missing)?
            .to_str()
            .map_err(|_| Refusal::Malformed)?;
        secret.verify(token, now_ms())
    }
}

impl Interceptor for LinkGuard {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        match self.check(&req) {
            Ok(()) => Ok(req),
            Err(why) => {
                let peer = req.remote_addr().map(|a| a.ip());
                if let Some(left_out) = self.log.admit(peer, Instant::now()) {
                    tracing::warn!(
                        peer = %peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string()),
                        reason = %why,
                        refusals_not_logged = left_out,
                        "store port refused an unauthenticated call"
                    );
                }
                Err(Status::unauthenticated(format!(
                    "the store node refused the call: {why}"
                )))
            }
        }
    }
}

/// Lets one line per peer through every `every`, counting the others.
struct RefusalLog {
    every: Duration,
    peers: Mutex<HashMap<Option<IpAddr>, (Instant, u64)>>,
}

impl RefusalLog {
    /// Peers remembered at most: past it the memory is cleared, so a scan
    /// from many addresses cannot grow it without bound.
    const MAX_PEERS: usize = 4096;

    fn new(every: Duration) -> RefusalLog {
        RefusalLog {
            every,
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(n)` when a refusal of `peer` at `now` is to be logged, `n`
    /// being how many were left out since the last line; else `None`.
    fn admit(&self, peer: Option<IpAddr>, now: Instant) -> Option<u64> {
        let mut peers = self.peers.lock();
        if peers.len() >= RefusalLog::MAX_PEERS && !peers.contains_key(&peer) {
            peers.clear();
        }
        match peers.get_mut(&peer) {
            Some((last, left_out)) if now.saturating_duration_since(*last) < self.every => {
                *left_out += 1;
                None
            }
            Some((last, left_out)) => {
                *last = now;
                Some(std::mem::take(left_out))
            }
            None => {
                peers.insert(peer, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> ClusterSecret {
        ClusterSecret::new(s).unwrap()
    }

    #[test]
    fn a_token_of_the_secret_passes_within_the_skew() {
        let s = secret("s3cret");
        let t = s.token(1_000_000_000);
        assert!(t.starts_with("v1.1000000000."), "{t}");
        assert!(!t.contains("s3cret"));
        assert_eq!(s.verify(&t, 1_000_000_000), Ok(()));
        assert_eq!(s.verify(&t, 1_000_000_000 + MAX_SKEW_MS), Ok(()));
        assert_eq!(s.verify(&t, 1_000_000_000 - MAX_SKEW_MS), Ok(()));
        assert_eq!(
            s.verify(&t, 1_000_000_000 + MAX_SKEW_MS + 1),
            Err(Refusal::Expired)
        );
        assert_eq!(
            s.verify(&t, 1_000_000_000 - MAX_SKEW_MS - 1),
            Err(Refusal::Expired)
        );
    }

    #[test]
    fn other_secrets_and_altered_tokens_are_refused() {
        let s = secret("s3cret");
        let now = 1_700_000_000_000;
        let other = secret("s3cres").token(now);
        assert_eq!(s.verify(&other, now), Err(Refusal::WrongSecret));
        // Moving the time without the MAC breaks it.
        let t = s.token(now);
        let moved = t.replacen(&now.to_string(), &(now + 1).to_string(), 1);
        assert_eq!(s.verify(&moved, now), Err(Refusal::WrongSecret));
        let short = &t[..t.len() - 2];
        assert_eq!(s.verify(short, now), Err(Refusal::WrongSecret));
        for bad in [
            "", "v1", "v1.x.00", "v2.1.00", "v1.1.zz", "s3cret", "v1..ab",
        ] {
            assert_eq!(s.verify(bad, now), Err(Refusal::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn the_secret_is_never_shown_and_never_empty() {
        assert_eq!(format!("{:?}", secret("s3cret")), "<redacted>");
        assert!(ClusterSecret::new("").is_err());
        let from_file: ClusterSecret =
            serde::Deserialize::deserialize(serde::de::value::StrDeserializer::<
                serde::de::value::Error,
            >::new(""))
            .unwrap();
        assert!(from_file.validated().is_err());
    }

    fn request_with(token: Option<&str>) -> Request<()> {
        let mut req = Request::new(());
        if let Some(t) = token {
            req.metadata_mut()
                .insert(TOKEN_HEADER, MetadataValue::try_from(t).unwrap());
        }
        req
    }

    #[test]
    fn the_guard_checks_only_when_a_secret_is_set() {
        let mut open = LinkGuard::new(None);
        assert!(open.call(request_with(None)).is_ok());

        let mut guard = LinkGuard::new(Some(secret("s3cret")));
        let missing = guard.call(request_with(None)).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(
            missing.message().contains("--cluster-secret"),
            "{missing:?}"
        );
        let wrong = secret("other").token(now_ms());
        let refused = guard.call(request_with(Some(&wrong))).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);

        let mut token = LinkToken::new(Some(secret("s3cret")));
        let signed = token.call(Request::new(())).unwrap();
        assert!(guard.call(signed).is_ok());
        let unsigned = LinkToken::new(None).call(Request::new(())).unwrap();
        assert!(unsigned.metadata().get(TOKEN_HEADER).is_none());
    }

    #[test]
    fn refusals_are_logged_once_per_peer_and_interval() {
        let log = RefusalLog::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        assert_eq!(log.admit(a, t0), Some(0));
        assert_eq!(log.admit(a, t0 + Duration::from_secs(1)), None);
        assert_eq!(log.admit(a, t0 + Duration::from_secs(2)), None);
        assert_eq!(log.admit(b, t0 + Duration::from_secs(2)), Some(0));
        assert_eq!(log.admit(a, t0 + Duration::from_secs(61)), Some(2));
    }
}
