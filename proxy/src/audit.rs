//! The admin audit log: one INFO line per call of `pier.admin.v1` that
//! changes something (create, update, delete, grant, revoke, redrive,
//! reset, purge), naming the RPC, the authenticated user (from the per-call
//! context the auth layer filled in), the caller's address and the outcome.
//! Reads (List*, Describe*, Find*) are logged at DEBUG.
//!
//! It wraps the admin service rather than each handler, so an RPC added to
//! the API is logged without anyone remembering to.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::server::TcpConnectInfo;
use tower::Service;

use crate::auth::Principal;

/// A service whose calls are written to the audit log.
#[derive(Debug, Clone)]
pub struct Audited<S> {
    inner: S,
}

impl<S> Audited<S> {
    /// Logs the calls of `inner`.
    pub fn new(inner: S) -> Audited<S> {
        Audited { inner }
    }
}

impl<S: NamedService> NamedService for Audited<S> {
    const NAME: &'static str = S::NAME;
}

/// Whether an admin RPC only reads.
fn reads_only(rpc: &str) -> bool {
    rpc.starts_with("List") || rpc.starts_with("Describe") || rpc.starts_with("Find")
}

/// The gRPC outcome of a reply, as far as its headers tell: an error
/// answered without a body carries `grpc-status` in the headers; a reply
/// with a body (an answer) carries it in the trailers, which are not
/// awaited here.
fn outcome(resp: &http::Response<Body>) -> String {
    match resp.headers().get("grpc-status") {
        None => "OK".into(),
        Some(v) => {
            let code = v
                .to_str()
                .ok()
                .and_then(|s| s.parse::<i32>().ok())
                .map(tonic::Code::from_i32);
            match code {
                Some(c) => format!("{c:?}"),
                None => "unknown".into(),
            }
        }
    }
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for Audited<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let rpc = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        // No user: authentication is off on this proxy.
        let user = req
            .extensions()
            .get::<Arc<Principal>>()
            .map_or_else(|| "-".to_owned(), |p| p.name.clone());
        let peer = req
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .map_or_else(|| "-".to_owned(), |a| a.to_string());
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            let status = outcome(&resp);
            let ms = started.elapsed().as_millis();
            if reads_only(&rpc) {
                tracing::debug!(%rpc, %user, %peer, %status, ms, "admin call");
            } else {
                tracing::info!(%rpc, %user, %peer, %status, ms, "admin action");
            }
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_told_apart_from_changes() {
        assert!(reads_only("ListTopics"));
        assert!(reads_only("DescribeGroup"));
        assert!(!reads_only("UpdateTopic"));
        assert!(!reads_only("RedriveDlq"));
        assert!(!reads_only("ResetOffset"));
    }

    #[test]
    fn outcome_reads_a_trailers_only_error() {
        let resp = tonic::Status::not_found("x").into_http();
        assert_eq!(outcome(&resp), "NotFound");
        let ok = http::Response::new(Body::empty());
        assert_eq!(outcome(&ok), "OK");
    }
}
