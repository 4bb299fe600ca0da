//! OTLP push of the node's metrics: HTTP/protobuf to a collector, every
//! `OTEL_METRIC_EXPORT_INTERVAL` ms (60 s by default), from a task on the
//! node's Tokio runtime (the provider owns it and stops it at shutdown,
//! after a last export).
//!
//! On when `--otlp-endpoint` (config `otlp_endpoint`) is given, or when the
//! standard `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`
//! variables are set; `OTEL_METRICS_EXPORTER=none` turns it off. The other
//! standard variables (headers, timeout, compression off) are read by the
//! exporter itself. gRPC is not offered: its exporter needs tonic 0.14,
//! the workspace is on 0.12.

use opentelemetry_otlp::{MetricExporter, Protocol, WithExportConfig};
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use opentelemetry_sdk::runtime::Tokio;

/// Path of the metrics signal under an OTLP/HTTP base URL.
const METRICS_PATH: &str = "/v1/metrics";

/// The URL metrics are pushed to, from `--otlp-endpoint` (a collector's
/// base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT`, or the full metrics URL).
pub(super) fn metrics_url(base: &str) -> String {
    let base = base.trim().trim_end_matches('/');
    if base.ends_with(METRICS_PATH) {
        base.to_owned()
    } else {
        format!("{base}{METRICS_PATH}")
    }
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// The periodic reader pushing to the configured collector, if any.
pub(super) fn reader(
    endpoint: Option<&str>,
) -> anyhow::Result<Option<PeriodicReader<MetricExporter>>> {
    if std::env::var("OTEL_METRICS_EXPORTER").is_ok_and(|v| v.trim() == "none") {
        return Ok(None);
    }
    let endpoint = endpoint.map(str::trim).filter(|e| !e.is_empty());
    if endpoint.is_none()
        && !env_set("OTEL_EXPORTER_OTLP_ENDPOINT")
        && !env_set("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    {
        return Ok(None);
    }
    let mut exporter = MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(e) = endpoint {
        exporter = exporter.with_endpoint(metrics_url(e));
    }
    let exporter = exporter
        .build()
        .map_err(|e| anyhow::anyhow!("OTLP metrics exporter: {e}"))?;
    tracing::info!(
        endpoint = endpoint
            .map(metrics_url)
            .unwrap_or_else(|| "from OTEL_* variables".into()),
        "pushing metrics over OTLP/HTTP"
    );
    Ok(Some(PeriodicReader::builder(exporter, Tokio).build()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_path_is_added_once() {
        assert_eq!(metrics_url("http://c:4318"), "http://c:4318/v1/metrics");
        assert_eq!(metrics_url("http://c:4318/"), "http://c:4318/v1/metrics");
        assert_eq!(
            metrics_url("http://c:4318/v1/metrics"),
            "http://c:4318/v1/metrics"
        );
    }
}
