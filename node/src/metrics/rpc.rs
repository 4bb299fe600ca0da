//! `rocketmq_rpc_latency`: a tower layer around a gRPC server that times
//! every call from its request to the end of its response body, labelled
//! like RocketMQ's: `protocol_type`, `request_code` (the RPC's method name)
//! and `response_code` (the gRPC status).
//!
//! The clock stops when the body ends, not when the headers leave, so a
//! server-streaming call (ReceiveMessage and its long poll) is timed whole,
//! and the status is read from the trailers, where gRPC puts it. A call
//! whose client goes away before the end is recorded as `CANCELLED`.
//!
//! RocketMQ answers a business failure (a missing topic, say) with gRPC OK
//! and its own code inside the reply; that code is the handlers' to count,
//! a layer does not parse bodies.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use opentelemetry::metrics::Histogram;
use opentelemetry::KeyValue;
use tower::{Layer, Service};

use super::LabelCap;

/// Bucket bounds of the latency histograms, in milliseconds: RocketMQ's
/// (1 ms to 60 s) with a few more steps between.
pub const LATENCY_BUCKETS_MS: [f64; 14] = [
    1.0, 3.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 3000.0, 10000.0, 30000.0, 60000.0,
];

/// Most distinct method names recorded: the path is the client's to
/// choose, unknown methods included.
const MAX_METHODS: usize = 128;

struct Instruments {
    latency: Histogram<f64>,
    methods: LabelCap,
}

fn instruments() -> &'static Instruments {
    static I: OnceLock<Instruments> = OnceLock::new();
    I.get_or_init(|| Instruments {
        latency: opentelemetry::global::meter("pier")
            .f64_histogram("rocketmq_rpc_latency")
            .with_description("Latency of RPCs served, from request to the end of the response")
            .with_unit("milliseconds")
            .with_boundaries(LATENCY_BUCKETS_MS.to_vec())
            .build(),
        methods: LabelCap::new(MAX_METHODS),
    })
}

/// Times every call of the service it wraps; `protocol` is the
/// `protocol_type` label (`grpc` for the client port, `pier_store` for a
/// store node's port).
#[derive(Debug, Clone, Copy)]
pub struct RpcLatencyLayer {
    protocol: &'static str,
}

impl RpcLatencyLayer {
    /// A layer labelling its calls with `protocol`.
    pub fn new(protocol: &'static str) -> RpcLatencyLayer {
        RpcLatencyLayer { protocol }
    }
}

impl<S> Layer<S> for RpcLatencyLayer {
    type Service = RpcLatency<S>;

    fn layer(&self, inner: S) -> RpcLatency<S> {
        RpcLatency {
            inner,
            protocol: self.protocol,
        }
    }
}

/// The service [`RpcLatencyLayer`] builds.
#[derive(Debug, Clone)]
pub struct RpcLatency<S> {
    inner: S,
    protocol: &'static str,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for RpcLatency<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<TimedBody<ResB>>;
    type Error = S::Error;
    type Future = TimedCall<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let method = req.uri().path().rsplit('/').next().unwrap_or_default();
        let timer = Timer {
            start: Instant::now(),
            protocol: self.protocol,
            method: KeyValue::new("request_code", instruments().methods.fold(method)),
        };
        TimedCall {
            inner: self.inner.call(req),
            timer: Some(timer),
        }
    }
}

/// A call being timed; recorded once, when dropped or finished.
struct Timer {
    start: Instant,
    protocol: &'static str,
    method: KeyValue,
}

impl Timer {
    fn record(self, code: &'static str) {
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        instruments().latency.record(
            ms,
            &[
                KeyValue::new("protocol_type", self.protocol),
                self.method,
                KeyValue::new("response_code", code),
            ],
        );
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RpcLatency`].
    pub struct TimedCall<F> {
        #[pin]
        inner: F,
        timer: Option<Timer>,
    }
}

impl<F, ResB, E> Future for TimedCall<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<TimedBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(out) => out,
        };
        match out {
            Ok(resp) => {
                // A trailers-only answer (an error before any message)
                // carries its status in the headers.
                let code = status_in(resp.headers());
                let timer = this.timer.take();
                Poll::Ready(Ok(resp.map(|inner| TimedBody { inner, timer, code })))
            }
            Err(e) => {
                if let Some(t) = this.timer.take() {
                    t.record("INTERNAL");
                }
                Poll::Ready(Err(e))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that records its call's latency when it ends.
    pub struct TimedBody<B> {
        #[pin]
        inner: B,
        timer: Option<Timer>,
        code: Option<&'static str>,
    }

    impl<B> PinnedDrop for TimedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(t) = this.timer.take() {
                // The body was dropped before its end: the client left.
                t.record(this.code.unwrap_or("CANCELLED"));
            }
        }
    }
}

impl<B: Body> Body for TimedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_in) {
                    *this.code = Some(code);
                    if let Some(t) = this.timer.take() {
                        t.record(code);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(t) = this.timer.take() {
                    t.record("INTERNAL");
                }
            }
            Poll::Ready(None) => {
                if let Some(t) = this.timer.take() {
                    t.record(this.code.unwrap_or("OK"));
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The `grpc-status` in `headers`, by its canonical name.
fn status_in(headers: &HeaderMap) -> Option<&'static str> {
    let n: u8 = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    Some(match n {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_is_read_by_name() {
        let mut h = HeaderMap::new();
        assert_eq!(status_in(&h), None);
        h.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(status_in(&h), Some("NOT_FOUND"));
        h.insert("grpc-status", http::HeaderValue::from_static("x"));
        assert_eq!(status_in(&h), None);
    }
}
