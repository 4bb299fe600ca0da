//! OTLP push of the node's metrics, every `OTEL_METRIC_EXPORT_INTERVAL` ms
//! (60 s by default), from a task on the node's Tokio runtime (the provider
//! owns it and stops it at shutdown, after a last export).
//!
//! On when an endpoint is configured (`--otlp-endpoint`, or the standard
//! variables, see [`crate::otlp`]), over HTTP/protobuf or gRPC;
//! `OTEL_METRICS_EXPORTER=none` turns it off. The other standard variables
//! (headers, timeout, temporality) are read by the exporter itself.

use opentelemetry_otlp::MetricExporter;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use opentelemetry_sdk::runtime::Tokio;

use crate::otlp::{Otlp, Signal};

/// The periodic reader pushing to the configured collector, if any.
pub(super) fn reader(otlp: &Otlp) -> anyhow::Result<Option<PeriodicReader<MetricExporter>>> {
    if std::env::var("OTEL_METRICS_EXPORTER").is_ok_and(|v| v.trim() == "none") {
        return Ok(None);
    }
    let Some(target) = otlp.target(Signal::Metrics)? else {
        return Ok(None);
    };
    let exporter = crate::otlp::metric_exporter(&target)?;
    tracing::info!(endpoint = %target.url, protocol = %target.protocol, "pushing metrics over OTLP");
    Ok(Some(PeriodicReader::builder(exporter, Tokio).build()))
}
