//! A server span per gRPC call: a tower layer around a node's services.
//! The span continues the caller's trace when its metadata carries a
//! `traceparent` (the proxy's calls to a store node always do while tracing
//! is on), and is current while the handler runs, so the spans the handler
//! starts are its children. It ends when the handler has produced the
//! response (a ReceiveMessage reply is built before it is streamed).
//! While tracing is off the layer only passes the call through.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Request;
use opentelemetry::context::{FutureExt, WithContext};
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;
use tower::{Layer, Service};
use tracing::instrument::Instrumented;
use tracing::Instrument;

use super::{on, span};

/// Longest path used as a span name; a longer one (only a client inventing
/// methods sends it) is named `unknown`.
const MAX_NAME: usize = 128;

/// Gives every call of the service it wraps a server span.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Traced<S> {
        Traced { inner }
    }
}

/// The service [`TraceLayer`] builds.
#[derive(Debug, Clone)]
pub struct Traced<S> {
    inner: S,
}

impl<S, B, ResB> Service<Request<B>> for Traced<S>
where
    S: Service<Request<B>, Response = http::Response<ResB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TracedCall<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if !on() {
            return TracedCall::Off {
                inner: self.inner.call(req),
            };
        }
        let parent = span::extract(req.headers());
        let path = req.uri().path().trim_start_matches('/');
        let (service, method) = path.split_once('/').unwrap_or(("", path));
        let name = if path.len() <= MAX_NAME {
            path.to_owned()
        } else {
            "unknown".to_owned()
        };
        let attributes = if path.len() <= MAX_NAME {
            vec![
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", service.to_owned()),
                KeyValue::new("rpc.method", method.to_owned()),
            ]
        } else {
            vec![KeyValue::new("rpc.system", "grpc")]
        };
        let cx = span::start(name, SpanKind::Server, &parent, Vec::new(), attributes);
        // Log lines carry a trace id someone can look up: one that is
        // exported, or the caller's. A new trace left unsampled is nobody's,
        // and formatting its id for every call would be wasted.
        let log = if span::is_sampled(&cx) || span::has_caller(&parent) {
            span::log_span(&cx)
        } else {
            tracing::Span::none()
        };
        // Inner layers do work (and log) in `call` too, before the future.
        let inner = {
            let _log = log.enter();
            let _cx = cx.clone().attach();
            self.inner.call(req)
        };
        TracedCall::On {
            span: cx.clone(),
            inner: inner.with_context(cx).instrument(log),
        }
    }
}

pub use call::TracedCall;

// The projection types pin-project-lite generates carry no docs.
#[allow(missing_docs)]
mod call {
    use super::*;

    pin_project_lite::pin_project! {
        /// A call, with its span current while it is polled (when tracing is on).
        #[project = TracedCallProj]
        pub enum TracedCall<F> {
            /// Tracing is off.
            Off { #[pin] inner: F },
            /// Under a server span (`span` holds it, for the status).
            On { span: opentelemetry::Context, #[pin] inner: Instrumented<WithContext<F>> },
        }
    }

    impl<F, ResB, E> Future for TracedCall<F>
    where
        F: Future<Output = Result<http::Response<ResB>, E>>,
    {
        type Output = F::Output;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            match self.project() {
                TracedCallProj::Off { inner } => inner.poll(cx),
                TracedCallProj::On { span, inner } => {
                    let out = std::task::ready!(inner.poll(cx));
                    if let Ok(resp) = &out {
                        record_status(span, resp.headers());
                    }
                    Poll::Ready(out)
                }
            }
        }
    }

    /// A call answered with a gRPC error at once (the status in the
    /// headers: a refusal, a handler's error) marks its span failed; a
    /// status sent in trailers after a streamed body is not seen here.
    /// RocketMQ's business errors travel inside OK replies and stay out.
    fn record_status(cx: &opentelemetry::Context, headers: &http::HeaderMap) {
        use opentelemetry::trace::{Status, TraceContextExt};
        let Some(code) = headers.get("grpc-status").and_then(|v| v.to_str().ok()) else {
            return;
        };
        let span = cx.span();
        if let Ok(n) = code.parse::<i64>() {
            span.set_attribute(KeyValue::new("rpc.grpc.status_code", n));
        }
        if code != "0" {
            let message = headers
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            span.set_status(Status::error(message));
        }
    }
}
