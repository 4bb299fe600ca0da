//! An OTLP receiver for tests: over HTTP it accepts `POST /v1/metrics` and
//! `POST /v1/traces`, decodes each body with the official
//! `opentelemetry-proto` definitions, keeps the requests, answers 200; over
//! gRPC (its own port, [`Receiver::grpc_addr`]) it serves the generated
//! `MetricsService` and `TraceService` of the same crate (tonic 0.14) and
//! keeps what they receive alike. Stopped (and its threads joined) when
//! dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// A running receiver.
pub struct Receiver {
    /// OTLP/HTTP (`http://{addr}`).
    pub addr: String,
    /// OTLP/gRPC (`http://{grpc_addr}`).
    pub grpc_addr: String,
    grpc: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>,
    received: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    exports: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// A receiver keeping every request, for tests to look into.
    pub fn start() -> Receiver {
        Receiver::start_keeping(true)
    }

    /// A receiver that decodes and counts what it gets ([`Receiver::exports`])
    /// but keeps nothing: a sink for load runs (the bench), whose memory
    /// must not grow with the spans of millions of calls.
    pub fn start_discarding() -> Receiver {
        Receiver::start_keeping(false)
    }

    /// Export requests received so far (kept or not).
    pub fn exports(&self) -> u64 {
        self.exports.load(Ordering::Relaxed)
    }

    fn start_keeping(keep: bool) -> Receiver {
        let exports = Arc::new(AtomicU64::new(0));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let addr = listener.local_addr().expect("addr").to_string();
        let received = Arc::new(Mutex::new(Vec::new()));
        let traces = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let store = Store {
            metrics: received.clone(),
            traces: traces.clone(),
            keep,
            exports: exports.clone(),
        };
        let thread = {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    match conn.ok().and_then(serve) {
                        Some(Export::Metrics(req)) => store.metrics(req),
                        Some(Export::Traces(req)) => store.traces(req),
                        None => {}
                    }
                }
            })
        };
        let (grpc_addr, grpc) = grpc::start(store);
        Receiver {
            addr,
            grpc_addr,
            grpc: Some(grpc),
            received,
            traces,
            exports,
            stop,
            thread: Some(thread),
        }
    }

    /// The latest value pushed for the sum `name`, summed over its points,
    /// with the resource's `service.name`.
    pub fn latest_sum(&self, name: &str) -> Option<(String, i64)> {
        let received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        received.iter().rev().find_map(|req| {
            req.resource_metrics.iter().find_map(|rm| {
                let service = service_name(rm.resource.as_ref())?;
                let metric = rm
                    .scope_metrics
                    .iter()
                    .flat_map(|s| &s.metrics)
                    .find(|m| m.name == name)?;
                let Some(Data::Sum(sum)) = &metric.data else {
                    return None;
                };
                let total = sum
                    .data_points
                    .iter()
                    .map(|p| match p.value {
                        Some(Value::AsInt(v)) => v,
                        Some(Value::AsDouble(v)) => v as i64,
                        None => 0,
                    })
                    .sum();
                Some((service, total))
            })
        })
    }
}

/// The `service.name` of a resource (a string attribute), if it has one.
fn service_name(resource: Option<&Resource>) -> Option<String> {
    let kv = resource?
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")?;
    match kv.value.as_ref()?.value.as_ref()? {
        AnyValue::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

impl Receiver {
    /// The names of every metric received, with the `service.name` of the
    /// resource that sent each (empty when it had none).
    pub fn metric_names(&self) -> Vec<(String, String)> {
        let received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for rm in received.iter().flat_map(|r| &r.resource_metrics) {
            let service = service_name(rm.resource.as_ref()).unwrap_or_default();
            for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                out.push((service.clone(), m.name.clone()));
            }
        }
        out
    }
}

/// A standalone proxy pushing its telemetry to a receiver of its own, and
/// a client of it; everything stops when it is dropped.
pub struct Exporting {
    pub receiver: Receiver,
    pub node: crate::Node,
    pub c: crate::Raw,
    /// The node's data directory, kept for its life.
    pub data: tempfile::TempDir,
}

impl Exporting {
    /// The proxy gets `--otlp-endpoint` (the receiver's HTTP port, or its
    /// gRPC port when `flags` hold `--otlp-protocol grpc`), then `flags`,
    /// and the environment `env`.
    pub async fn start(flags: &[&str], env: &[(&str, &str)]) -> Exporting {
        let receiver = Receiver::start();
        let grpc = flags.windows(2).any(|w| w == ["--otlp-protocol", "grpc"]);
        let addr = if grpc {
            &receiver.grpc_addr
        } else {
            &receiver.addr
        };
        let endpoint = format!("http://{addr}");
        let data = tempfile::tempdir().expect("temp dir");
        let mut all = vec!["--otlp-endpoint", endpoint.as_str()];
        all.extend_from_slice(flags);
        let node = crate::Node::standalone_with_env(data.path(), &all, env);
        let c = crate::Raw::connect(&node.endpoint()).await;
        Exporting {
            receiver,
            node,
            c,
            data,
        }
    }
}

/// Where both sides put what they receive.
#[derive(Clone)]
struct Store {
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    keep: bool,
    exports: Arc<AtomicU64>,
}

impl Store {
    fn metrics(&self, req: ExportMetricsServiceRequest) {
        self.record(&self.metrics, req);
    }

    fn traces(&self, req: ExportTraceServiceRequest) {
        self.record(&self.traces, req);
    }

    /// Counts an export, and keeps it in `list` when asked to.
    fn record<T>(&self, list: &Mutex<Vec<T>>, req: T) {
        self.exports.fetch_add(1, Ordering::Relaxed);
        if self.keep {
            list.lock().unwrap_or_else(|e| e.into_inner()).push(req);
        }
    }
}

/// A decoded export request.
enum Export {
    Metrics(ExportMetricsServiceRequest),
    Traces(ExportTraceServiceRequest),
}

/// A span received, with the `service.name` of the node that sent it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub service: String,
    pub span: Span,
}

impl ReceivedSpan {
    pub fn trace_id(&self) -> String {
        hex::encode(&self.span.trace_id)
    }
    pub fn span_id(&self) -> String {
        hex::encode(&self.span.span_id)
    }
    pub fn parent_span_id(&self) -> String {
        hex::encode(&self.span.parent_span_id)
    }
    /// The (trace id, span id) of each link.
    pub fn links(&self) -> Vec<(String, String)> {
        self.span
            .links
            .iter()
            .map(|l| (hex::encode(&l.trace_id), hex::encode(&l.span_id)))
            .collect()
    }
    /// An attribute's value, as text.
    pub fn attribute(&self, key: &str) -> Option<String> {
        self.span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(s) => Some(s.clone()),
                AnyValue::IntValue(i) => Some(i.to_string()),
                other => Some(format!("{other:?}")),
            })
    }
}

impl Receiver {
    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let traces = self.traces.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for req in traces.iter() {
            for rs in &req.resource_spans {
                let service = service_name(rs.resource.as_ref()).unwrap_or_default();
                for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                    out.push(ReceivedSpan {
                        service: service.clone(),
                        span: span.clone(),
                    });
                }
            }
        }
        out
    }
}

/// Reads one HTTP/1 request; answers it; returns the decoded body of a
/// `POST /v1/metrics` or `/v1/traces`.
fn serve(conn: TcpStream) -> Option<Export> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let mut conn = conn;
    let _ = conn.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    );
    if request_line.starts_with("POST /v1/metrics ") {
        ExportMetricsServiceRequest::decode(body.as_slice())
            .ok()
            .map(Export::Metrics)
    } else if request_line.starts_with("POST /v1/traces ") {
        ExportTraceServiceRequest::decode(body.as_slice())
            .ok()
            .map(Export::Traces)
    } else {
        None
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.grpc.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
        self.stop.store(true, Ordering::Release);
        // Wakes the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The gRPC side: the generated servers, on a runtime of their own thread.
mod grpc {
    use super::*;
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
        MetricsService, MetricsServiceServer,
    };
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    use tonic::{Request, Response, Status};

    #[tonic::async_trait]
    impl MetricsService for Store {
        async fn export(
            &self,
            req: Request<ExportMetricsServiceRequest>,
        ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
            self.metrics(req.into_inner());
            Ok(Response::new(ExportMetricsServiceResponse::default()))
        }
    }

    #[tonic::async_trait]
    impl TraceService for Store {
        async fn export(
            &self,
            req: Request<ExportTraceServiceRequest>,
        ) -> Result<Response<ExportTraceServiceResponse>, Status> {
            self.traces(req.into_inner());
            Ok(Response::new(ExportTraceServiceResponse::default()))
        }
    }

    pub(super) fn start(
        sink: Store,
    ) -> (String, (tokio::sync::oneshot::Sender<()>, JoinHandle<()>)) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind gRPC receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr").to_string();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("receiver runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                let _ = tonic::transport::Server::builder()
                    .add_service(MetricsServiceServer::new(sink.clone()))
                    .add_service(TraceServiceServer::new(sink))
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        (addr, (stop_tx, thread))
    }
}
