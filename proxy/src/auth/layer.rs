//! The tower layer that authenticates every call of the client port once,
//! before any handler runs.
//!
//! - `apache.rocketmq.v2.MessagingService` RPCs other than Telemetry are
//!   refused the way the reference proxy refuses them: gRPC OK with the
//!   code (UNAUTHORIZED) in the reply's `status` (protocol.md §4.1). Every
//!   reply of that service has its `Status` as field 1, so one encoded
//!   message serves them all, streaming ReceiveMessage included.
//!   SendMessage and AckMessage are the exception: clients index their
//!   reply entries (one per message, protocol.md §4.1; Rust 5.0.0 reads
//!   `entries[0]`), so the layer marks the call refused ([`Refused`]) and
//!   lets it through; the handler answers each entry with the refusal
//!   before doing anything (`service::Inner::authorize`).
//! - Telemetry and Pier's admin API (`pier.admin.v1`) are refused with a
//!   gRPC status; the admin API also needs an admin user.
//! - The gRPC health check and reflection stay open: a load balancer
//!   probes them without credentials, and they carry no data.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http_body::Frame;
use http_body_util::StreamBody;
use pier_proto::rocketmq::Status;
use tonic::body::Body;
use tonic::metadata::MetadataMap;
use tonic::transport::server::TcpConnectInfo;
use tower::{Layer, Service};

use super::{AuthError, Gate};
use crate::context::ClientContext;
use crate::status::{auth_grpc_status, Rejection};

/// Adds authentication to every service of the port.
#[derive(Clone)]
pub struct AuthLayer {
    gate: Arc<Gate>,
}

impl AuthLayer {
    /// A layer checking calls with `gate`.
    pub fn new(gate: Arc<Gate>) -> AuthLayer {
        AuthLayer { gate }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            gate: self.gate.clone(),
        }
    }
}

/// A service whose calls are authenticated first.
#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    gate: Arc<Gate>,
}

/// How a call is checked and refused, by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// No credentials needed.
    Open,
    /// Refused in the reply body.
    Messaging,
    /// Refused with a gRPC status.
    Stream,
    /// Refused with a gRPC status; admin users only.
    Admin,
}

fn kind_of(path: &str) -> Kind {
    const MESSAGING: &str = "/apache.rocketmq.v2.MessagingService/";
    if path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.") {
        Kind::Open
    } else if path == "/apache.rocketmq.v2.MessagingService/Telemetry"
        || path == pier_node::otlp::forward::EXPORT_PATH
    {
        // The clients' own metrics (metrics_collector = proxy) are signed
        // like their other calls; any user may send them.
        Kind::Stream
    } else if path.starts_with(MESSAGING) {
        Kind::Messaging
    } else {
        // pier.admin.v1 and anything else the port may serve one day.
        Kind::Admin
    }
}

/// Handlers of these RPCs answer a refusal themselves (see the module
/// comment).
const ANSWERED_BY_HANDLER: [&str; 2] = [
    "/apache.rocketmq.v2.MessagingService/SendMessage",
    "/apache.rocketmq.v2.MessagingService/AckMessage",
];

/// A call the layer refused, left for its handler to answer.
#[derive(Debug, Clone)]
pub struct Refused(pub AuthError);

/// The one field every MessagingService reply shares.
#[derive(Clone, PartialEq, prost::Message)]
struct StatusOnly {
    #[prost(message, optional, tag = "1")]
    status: Option<Status>,
}

/// A gRPC OK reply holding one message whose field 1 is `status`.
fn body_status_reply(status: Status) -> http::Response<Body> {
    let msg = prost::Message::encode_to_vec(&StatusOnly {
        status: Some(status),
    });
    let mut frame = BytesMut::with_capacity(5 + msg.len());
    frame.put_u8(0);
    frame.put_u32(u32::try_from(msg.len()).unwrap_or(u32::MAX));
    frame.put_slice(&msg);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let frames: [Result<Frame<Bytes>, Infallible>; 2] = [
        Ok(Frame::data(frame.freeze())),
        Ok(Frame::trailers(trailers)),
    ];
    let body = tonic::body::Body::new(StreamBody::new(futures::stream::iter(frames)));
    let mut resp = http::Response::new(body);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    resp
}

fn refusal(kind: Kind, headers: &http::HeaderMap, e: AuthError) -> http::Response<Body> {
    if kind == Kind::Messaging {
        let ctx = ClientContext::from_metadata(&MetadataMap::from_headers(headers.clone()));
        body_status_reply(Rejection::from(e).to_status(&ctx))
    } else {
        auth_grpc_status(&e).into_http()
    }
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for Authenticated<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Send,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = futures::future::Either<S::Future, BoxFuture<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        use futures::future::Either;
        if !self.gate.enabled() {
            return Either::Left(self.inner.call(req));
        }
        let kind = kind_of(req.uri().path());
        if kind == Kind::Open {
            return Either::Left(self.inner.call(req));
        }
        let peer = req
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .map(|a| a.ip());
        let now_secs = pier_store::now_ms().div_euclid(1000);
        let checked = self
            .gate
            .authenticate(req.headers(), peer, now_secs)
            .and_then(|p| {
                if kind == Kind::Admin && !p.admin {
                    Err(AuthError::AdminRequired(p.name))
                } else {
                    Ok(p)
                }
            });
        match checked {
            Ok(p) => {
                req.extensions_mut().insert(Arc::new(p));
                Either::Left(self.inner.call(req))
            }
            Err(e) if ANSWERED_BY_HANDLER.contains(&req.uri().path()) => {
                tracing::debug!(path = %req.uri().path(), error = %e, "call refused");
                req.extensions_mut().insert(Arc::new(Refused(e)));
                Either::Left(self.inner.call(req))
            }
            Err(e) => {
                tracing::debug!(path = %req.uri().path(), error = %e, "call refused");
                let resp = refusal(kind, req.headers(), e);
                Either::Right(Box::pin(async move { Ok(resp) }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pier_proto::rocketmq::{Code, ReceiveMessageResponse, SendMessageResponse};

    #[test]
    fn paths_are_sorted_by_how_they_are_refused() {
        assert_eq!(kind_of("/grpc.health.v1.Health/Check"), Kind::Open);
        assert_eq!(
            kind_of("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Kind::Open
        );
        assert_eq!(
            kind_of("/apache.rocketmq.v2.MessagingService/SendMessage"),
            Kind::Messaging
        );
        assert_eq!(
            kind_of("/apache.rocketmq.v2.MessagingService/Telemetry"),
            Kind::Stream
        );
        assert_eq!(
            kind_of("/pier.admin.v1.AdminService/ListTopics"),
            Kind::Admin
        );
        assert_eq!(kind_of("/anything/else"), Kind::Admin);
    }

    #[test]
    fn the_status_only_message_decodes_as_each_reply() {
        let status = Status {
            code: Code::Unauthorized as i32,
            message: "no".into(),
        };
        let bytes = prost::Message::encode_to_vec(&StatusOnly {
            status: Some(status.clone()),
        });
        let send: SendMessageResponse = prost::Message::decode(&bytes[..]).unwrap();
        assert_eq!(send.status, Some(status.clone()));
        let recv: ReceiveMessageResponse = prost::Message::decode(&bytes[..]).unwrap();
        assert_eq!(
            recv.content,
            Some(pier_proto::rocketmq::receive_message_response::Content::Status(status))
        );
    }
}
