//! The OpenTelemetry metrics Export service
//! (`opentelemetry.proto.collector.metrics.v1.MetricsService`) as a tonic
//! service, for a node's gRPC port: what the official RocketMQ clients call
//! when the Settings reply turns their metrics on and names the proxy as
//! the collector (RocketMQ's `metricCollectorMode = proxy`). Each request
//! is checked and queued by [`super::forward`]; the reply is the
//! `ExportMetricsServiceResponse` it returns.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tonic::body::Body;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::forward::{ForwardHandle, RawCodec, EXPORT_PATH, MAX_EXPORT_BYTES};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The service; cheap to clone (a queue handle).
#[derive(Clone)]
pub struct MetricsCollector {
    forward: ForwardHandle,
}

impl MetricsCollector {
    /// A service queueing what it accepts on `forward`.
    pub fn new(forward: ForwardHandle) -> MetricsCollector {
        MetricsCollector { forward }
    }
}

impl NamedService for MetricsCollector {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
}

/// The one method, for tonic's unary plumbing.
struct Export(ForwardHandle);

impl UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = BoxFuture<Result<Response<Bytes>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let reply = self
            .0
            .accept(request.into_inner())
            .map(Response::new)
            .map_err(Status::invalid_argument);
        Box::pin(async move { reply })
    }
}

impl<B> tower::Service<http::Request<B>> for MetricsCollector
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT_PATH {
            let status = Status::unimplemented(format!("no method {}", req.uri().path()));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let export = Export(self.forward.clone());
        Box::pin(async move {
            // Over the cap tonic answers RESOURCE_EXHAUSTED without
            // reading the rest.
            let mut grpc = Grpc::new(RawCodec).max_decoding_message_size(MAX_EXPORT_BYTES);
            Ok(grpc.unary(export, req).await)
        })
    }
}
