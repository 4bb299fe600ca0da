//! Forwarding OTLP metrics someone else produced (the official clients',
//! received by [`super::collector`]) to the node's collector, bounded:
//!
//! - a request is checked first (it must decode as an
//!   `ExportMetricsServiceRequest` of the official definitions; its size is
//!   capped by the gRPC server at [`MAX_EXPORT_BYTES`]);
//! - it then waits in a queue of [`QUEUE`] requests for the one task that
//!   sends them, over HTTP/protobuf (the same bytes as the body of
//!   `POST /v1/metrics`) or gRPC (the same bytes as the Export call's);
//! - when the queue is full (the collector is slow or down) or no collector
//!   is configured, the request is dropped: counted, a WARN at most every
//!   [`WARN_EVERY`], and the client told in the reply's `partial_success`,
//!   so it does not retry into the same wall.
//!
//! Every outcome is counted in `pier_client_metrics_exports_total`
//! (`outcome` = forwarded, dropped, failed, rejected).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use http_body_util::Full;
use opentelemetry::metrics::Counter;
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

use super::{Protocol, Target};

/// Largest Export request accepted, in bytes (gRPC's usual default).
pub const MAX_EXPORT_BYTES: usize = 4 * 1024 * 1024;
/// Export requests waiting to be forwarded at most; more are dropped.
pub const QUEUE: usize = 64;
/// Longest one forward may take before it counts as failed.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Least time between two warnings about dropped or failed exports.
const WARN_EVERY: Duration = Duration::from_secs(30);
/// How long shutdown waits for the queue to drain.
const DRAIN: Duration = Duration::from_secs(5);

/// The gRPC method of the OTLP metrics service.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// A tonic codec passing message bytes through untouched: the proxy checks
/// and forwards an Export request without re-encoding it (and with the
/// official definitions, whose prost is not the workspace's).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

fn exports() -> &'static Counter<u64> {
    static C: OnceLock<Counter<u64>> = OnceLock::new();
    C.get_or_init(|| {
        opentelemetry::global::meter("pier-node")
            .u64_counter("pier_client_metrics_exports_total")
            .with_description("OTLP metrics exports received from clients, by what became of them")
            .build()
    })
}

fn count(outcome: &'static str) {
    exports().add(1, &[KeyValue::new("outcome", outcome)]);
}

/// A WARN at most every [`WARN_EVERY`], with how many events it covers.
#[derive(Default)]
struct RateLimitedWarn {
    /// Milliseconds since [`epoch`] of the last warning, plus one (0: never).
    last: AtomicU64,
    /// Events since the last warning.
    pending: AtomicU64,
}

fn epoch() -> Instant {
    static E: OnceLock<Instant> = OnceLock::new();
    *E.get_or_init(Instant::now)
}

impl RateLimitedWarn {
    fn hit(&self, what: &str, detail: &str) {
        let n = self.pending.fetch_add(1, Ordering::Relaxed) + 1;
        let now = epoch().elapsed().as_millis() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < WARN_EVERY.as_millis() as u64 {
            return;
        }
        if self
            .last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.pending.fetch_sub(n, Ordering::Relaxed);
            tracing::warn!(count = n, detail, "client metrics {what}");
        }
    }
}

/// Where forwarded exports go.
enum Sink {
    Http {
        /// Boxed: much larger than a tonic channel.
        client: Box<
            hyper_util::client::legacy::Client<
                hyper_util::client::legacy::connect::HttpConnector,
                Full<Bytes>,
            >,
        >,
        url: http::Uri,
    },
    Grpc {
        channel: tonic::transport::Channel,
    },
}

impl Sink {
    fn new(target: &Target) -> anyhow::Result<Sink> {
        match target.protocol {
            Protocol::HttpProtobuf => {
                let url: http::Uri = target
                    .url
                    .parse()
                    .map_err(|e| anyhow::anyhow!("OTLP endpoint {}: {e}", target.url))?;
                if url.scheme_str() != Some("http") {
                    anyhow::bail!(
                        "forwarding client metrics needs an http:// OTLP endpoint, not {}",
                        target.url
                    );
                }
                let client = hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build_http();
                Ok(Sink::Http {
                    client: Box::new(client),
                    url,
                })
            }
            Protocol::Grpc => {
                let channel = tonic::transport::Endpoint::from_shared(target.url.clone())
                    .map_err(|e| anyhow::anyhow!("OTLP endpoint {}: {e}", target.url))?
                    .connect_timeout(SEND_TIMEOUT)
                    .connect_lazy();
                Ok(Sink::Grpc { channel })
            }
        }
    }

    async fn send(&self, body: Bytes) -> Result<(), String> {
        match self {
            Sink::Http { client, url } => {
                let req = http::Request::post(url.clone())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(Full::new(body))
                    .map_err(|e| e.to_string())?;
                let resp = client.request(req).await.map_err(|e| e.to_string())?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("collector answered HTTP {}", resp.status()))
                }
            }
            Sink::Grpc { channel } => {
                let mut grpc = tonic::client::Grpc::new(channel.clone());
                grpc.ready().await.map_err(|e| e.to_string())?;
                let path = http::uri::PathAndQuery::from_static(EXPORT_PATH);
                grpc.unary(tonic::Request::new(body), path, RawCodec)
                    .await
                    .map(drop)
                    .map_err(|s| format!("collector answered {}: {}", s.code(), s.message()))
            }
        }
    }
}

/// What the collector service holds: the queue's sending side.
#[derive(Clone)]
pub struct ForwardHandle {
    tx: Option<mpsc::Sender<Bytes>>,
    warn: Arc<RateLimitedWarn>,
}

impl ForwardHandle {
    /// Checks one Export request's body and queues it; the reply to send
    /// (encoded `ExportMetricsServiceResponse`), or why a body that is not
    /// an Export request is refused (an `INVALID_ARGUMENT`).
    pub fn accept(&self, body: Bytes) -> Result<Bytes, String> {
        let req = ExportMetricsServiceRequest::decode(body.as_ref()).map_err(|e| {
            count("rejected");
            format!("not an OTLP ExportMetricsServiceRequest: {e}")
        })?;
        let why = match &self.tx {
            None => "dropped: no OTLP endpoint is configured on this proxy",
            Some(tx) => match tx.try_send(body) {
                Ok(()) => return Ok(Bytes::new()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    "dropped: the forwarding queue is full (the collector is slow or down)"
                }
                Err(mpsc::error::TrySendError::Closed(_)) => "dropped: the proxy is stopping",
            },
        };
        count("dropped");
        self.warn.hit("export dropped", why);
        let reply = ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: data_points(&req),
                error_message: why.to_owned(),
            }),
        };
        Ok(Bytes::from(reply.encode_to_vec()))
    }
}

/// How many data points an Export request carries.
fn data_points(req: &ExportMetricsServiceRequest) -> i64 {
    let mut n = 0usize;
    for m in req
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        n += match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 0,
        };
    }
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The forwarding task and its queue.
pub struct Forwarder {
    handle: ForwardHandle,
    task: Option<JoinHandle<()>>,
}

impl Forwarder {
    /// Starts forwarding to `target`; with `None`, every export is dropped
    /// (and counted) instead.
    pub fn start(target: Option<&Target>) -> anyhow::Result<Forwarder> {
        let warn = Arc::new(RateLimitedWarn::default());
        let Some(target) = target else {
            tracing::warn!("metrics_collector = proxy without an OTLP endpoint: client metrics are accepted and dropped; set --otlp-endpoint");
            return Ok(Forwarder {
                handle: ForwardHandle { tx: None, warn },
                task: None,
            });
        };
        let sink = Sink::new(target)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(rx, sink, warn.clone()));
        tracing::info!(endpoint = %target.url, protocol = %target.protocol, "forwarding client metrics over OTLP");
        Ok(Forwarder {
            handle: ForwardHandle { tx: Some(tx), warn },
            task: Some(task),
        })
    }

    /// The side the collector service holds.
    pub fn handle(&self) -> ForwardHandle {
        self.handle.clone()
    }

    /// Stops taking exports and forwards those queued, for at most a few
    /// seconds (the services holding handles must be gone by then).
    pub async fn shutdown(mut self) {
        self.handle.tx = None;
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(DRAIN, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
    }
}

async fn run(mut rx: mpsc::Receiver<Bytes>, sink: Sink, warn: Arc<RateLimitedWarn>) {
    while let Some(body) = rx.recv().await {
        let sent = match tokio::time::timeout(SEND_TIMEOUT, sink.send(body)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {SEND_TIMEOUT:?}")),
        };
        match sent {
            Ok(()) => count("forwarded"),
            Err(e) => {
                count("failed");
                warn.hit("export not forwarded", &e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };

    fn one_point() -> Bytes {
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "m".into(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint::default()],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        Bytes::from(req.encode_to_vec())
    }

    #[tokio::test]
    async fn garbage_is_refused_and_a_full_queue_drops_with_a_partial_success() {
        let (tx, _rx) = mpsc::channel(1);
        let h = ForwardHandle {
            tx: Some(tx),
            warn: Arc::default(),
        };
        let err = h
            .accept(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]))
            .unwrap_err();
        assert!(err.contains("not an OTLP"), "{err}");
        assert!(
            h.accept(one_point()).unwrap().is_empty(),
            "queued: empty reply"
        );
        let reply = h.accept(one_point()).unwrap();
        let reply = ExportMetricsServiceResponse::decode(reply.as_ref()).unwrap();
        let partial = reply.partial_success.unwrap();
        assert_eq!(partial.rejected_data_points, 1);
        assert!(partial.error_message.contains("queue is full"));
    }
}
