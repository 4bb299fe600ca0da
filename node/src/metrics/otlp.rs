//! OTLP push of the node's metrics, every `OTEL_METRIC_EXPORT_INTERVAL` ms
//! (60 s by default; each export bounded by `OTEL_METRIC_EXPORT_TIMEOUT`,
//! 30 s), from a task on the node's Tokio runtime, with a last export when
//! the node stops.
//!
//! On when an endpoint is configured (`--otlp-endpoint`, or the standard
//! variables, see [`crate::otlp`]), over HTTP/protobuf or gRPC;
//! `OTEL_METRICS_EXPORTER=none` turns it off. The other standard variables
//! (headers, timeout, temporality) are read by the exporter itself.
//!
//! The SDK aggregates every measurement once per reader, so a second
//! reader for the push would double the work of every counter and
//! histogram update on the request path. With the exporter's default,
//! cumulative temporality (Prometheus' too), the push instead collects
//! from the Prometheus endpoint's reader ([`Push::Shared`], [`Pusher`]);
//! only a collector that asked for delta temporality gets a reader of its
//! own ([`Push::Reader`]).

use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry_otlp::MetricExporter;
use opentelemetry_prometheus::PrometheusExporter;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, Pipeline, Temporality};
use opentelemetry_sdk::runtime::Tokio;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::otlp::{Otlp, Signal};

/// How the node pushes its metrics, if it does.
pub(super) enum Push {
    /// From the Prometheus reader's aggregation.
    Shared(Box<MetricExporter>),
    /// From a reader of its own (delta temporality asked for).
    Reader(Box<PeriodicReader<MetricExporter>>),
}

/// The push to the configured collector, if any.
pub(super) fn push(otlp: &Otlp) -> anyhow::Result<Option<Push>> {
    if std::env::var("OTEL_METRICS_EXPORTER").is_ok_and(|v| v.trim() == "none") {
        return Ok(None);
    }
    let Some(target) = otlp.target(Signal::Metrics)? else {
        return Ok(None);
    };
    let exporter = crate::otlp::metric_exporter(&target)?;
    tracing::info!(endpoint = %target.url, protocol = %target.protocol, "pushing metrics over OTLP");
    Ok(Some(match exporter.temporality() {
        Temporality::Cumulative => Push::Shared(Box::new(exporter)),
        _ => Push::Reader(Box::new(PeriodicReader::builder(exporter, Tokio).build())),
    }))
}

/// The Prometheus reader, shared by the provider (which it reads for) and
/// the [`Pusher`] (which collects from it too).
#[derive(Debug, Clone)]
pub(super) struct SharedReader(pub(super) Arc<PrometheusExporter>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// Milliseconds from the standard variable `name`, else `default`.
fn env_ms(name: &str, default: u64) -> Duration {
    let ms = std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .unwrap_or(default);
    Duration::from_millis(ms)
}

/// The task pushing what the shared reader collects.
pub(super) struct Pusher {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Pusher {
    /// Starts pushing `reader`'s metrics through `exporter`.
    pub(super) fn start(reader: SharedReader, exporter: MetricExporter) -> Pusher {
        let interval = env_ms("OTEL_METRIC_EXPORT_INTERVAL", 60_000);
        let timeout = env_ms("OTEL_METRIC_EXPORT_TIMEOUT", 30_000);
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                let last = tokio::select! {
                    _ = tokio::time::sleep(interval) => false,
                    _ = &mut stopped => true,
                };
                export(&reader, &exporter, timeout).await;
                if last {
                    break;
                }
            }
            if let Err(e) = exporter.shutdown() {
                tracing::debug!(error = %e, "OTLP metric exporter shutdown");
            }
        });
        Pusher { stop, task }
    }

    /// Pushes once more and stops (before the provider shuts the reader).
    pub(super) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// One collection and its export; a failure is logged at debug level, as
/// the SDK's own reader does (a collector down for a while is not the
/// node's fault, and the next push carries the same cumulative values).
async fn export(reader: &SharedReader, exporter: &MetricExporter, timeout: Duration) {
    let mut rm = ResourceMetrics::default();
    if let Err(e) = reader.collect(&mut rm) {
        tracing::debug!(error = %e, "collecting metrics for OTLP");
        return;
    }
    match tokio::time::timeout(timeout, exporter.export(&rm)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "OTLP metric export failed"),
        Err(_) => tracing::debug!(?timeout, "OTLP metric export timed out"),
    }
}
