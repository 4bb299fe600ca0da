//! A node's metrics: the OpenTelemetry meter provider both binaries install
//! at start, read on demand by a Prometheus text endpoint (`GET /metrics`).
//!
//! The instruments themselves are declared by their owners (`pier_store`'s
//! and `pier_proxy`'s `metrics` modules) on the global meter; this module
//! only wires the SDK to an exporter and serves what it collects:
//!
//! - [`Exporter`]: the provider, its Prometheus registry, and the HTTP task
//!   that answers scrapes (owned; stopped by [`Exporter::shutdown`]);
//!   optionally a periodic OTLP push, HTTP/protobuf or gRPC, collecting
//!   from the same reader (`otlp`);
//! - [`rpc`]: the tower layer timing every gRPC call (`rocketmq_rpc_latency`);
//! - [`LabelCap`]: the bound on how many values a label may take.
//!
//! Names are exported exactly as declared (no unit or `_total` suffix added,
//! no scope labels), so they match what RocketMQ 5's exporter shows and the
//! dashboards and alerts written for it work unchanged.

mod endpoint;
mod otlp;
pub mod rpc;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::RwLock;

use opentelemetry::{KeyValue, StringValue};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::Resource;

/// Where the Prometheus endpoint listens unless told otherwise: the port of
/// RocketMQ's own Prometheus exporter.
pub const DEFAULT_METRICS_LISTEN: &str = "0.0.0.0:5557";

/// Where a node serves its metrics, from `--metrics-listen` /
/// `metrics_listen`: unset means [`DEFAULT_METRICS_LISTEN`], taken only if
/// free (several nodes on one host must not fail for it); an empty value
/// turns the endpoint off; any other address must bind, or the node stops.
pub fn listen_setting(configured: Option<&str>) -> Listen<'_> {
    match configured.map(str::trim) {
        None => Listen::Default,
        Some("") => Listen::Off,
        Some(addr) => Listen::Required(addr),
    }
}

/// See [`listen_setting`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen<'a> {
    /// [`DEFAULT_METRICS_LISTEN`] if it is free; a warning otherwise.
    Default,
    /// No endpoint.
    Off,
    /// This address, or an error.
    Required(&'a str),
}

/// Who a node is, for the resource every metric carries (`target_info` on
/// the Prometheus side).
#[derive(Debug, Clone)]
pub struct Identity {
    /// `pier-proxy` or `pier-store` (`service.name`).
    pub service: &'static str,
    /// The client-facing address the node bound (`node_id`).
    pub node_id: String,
    /// `standalone`, `cluster` (a proxy of a store node) or `store`.
    pub mode: &'static str,
}

/// The installed meter provider and the endpoint serving it.
pub struct Exporter {
    provider: SdkMeterProvider,
    endpoint: Option<endpoint::Endpoint>,
    /// The OTLP push sharing the endpoint's reader, if any (`otlp`).
    pusher: Option<otlp::Pusher>,
}

impl Exporter {
    /// Installs the global meter provider (so the instruments declared from
    /// now on record) and, unless turned off, binds the Prometheus endpoint.
    /// Logs the bound address (`metrics_addr=`) so scripts and tests that
    /// ask for port 0 can find it. An OTLP endpoint (`otlp`, or the
    /// standard `OTEL_EXPORTER_OTLP_*` variables) adds a push to a collector.
    pub async fn start(
        who: Identity,
        listen: Listen<'_>,
        otlp: &crate::otlp::Otlp,
    ) -> anyhow::Result<Exporter> {
        let registry = prometheus::Registry::new();
        let reader = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_units()
            .without_counter_suffixes()
            .scope_info_enabled(false)
            .build()
            .map_err(|e| anyhow::anyhow!("metrics exporter: {e}"))?;
        let reader = otlp::SharedReader(std::sync::Arc::new(reader));
        let mut provider = SdkMeterProvider::builder()
            .with_resource(resource(&who))
            .with_reader(reader.clone());
        let mut shared_push = None;
        match otlp::push(otlp)? {
            None => {}
            Some(otlp::Push::Shared(exporter)) => shared_push = Some(*exporter),
            Some(otlp::Push::Reader(own)) => provider = provider.with_reader(*own),
        }
        let provider = provider.build();
        opentelemetry::global::set_meter_provider(provider.clone());
        let pusher = shared_push.map(|exporter| otlp::Pusher::start(reader, exporter));
        let endpoint = match listen {
            Listen::Off => {
                tracing::info!("metrics endpoint turned off");
                None
            }
            Listen::Default => {
                match endpoint::Endpoint::bind(DEFAULT_METRICS_LISTEN, registry).await {
                    Ok(e) => Some(e),
                    Err(e) => {
                        tracing::warn!(error = %e, "no metrics endpoint: the default address is taken; set --metrics-listen (or PIER_METRICS_LISTEN, empty to turn it off)");
                        None
                    }
                }
            }
            Listen::Required(addr) => Some(endpoint::Endpoint::bind(addr, registry).await?),
        };
        Ok(Exporter {
            provider,
            endpoint,
            pusher,
        })
    }

    /// The address the Prometheus endpoint is bound to, if any.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.endpoint.as_ref().map(|e| e.addr)
    }

    /// Stops answering scrapes and shuts the provider down.
    pub async fn shutdown(self) {
        if let Some(e) = self.endpoint {
            e.stop().await;
        }
        // Its last export reads the reader the provider is about to shut.
        if let Some(p) = self.pusher {
            p.stop().await;
        }
        // A last OTLP export runs on this runtime while shutdown blocks:
        // block a thread meant for it, not a worker.
        let provider = self.provider;
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = stopped {
            tracing::debug!(error = %e, "meter provider shutdown");
        }
    }
}

/// Who a node is, for its metrics and its spans alike. `OTEL_SERVICE_NAME`
/// and `OTEL_RESOURCE_ATTRIBUTES` are read by the builder; the service name
/// is Pier's unless the first is set.
pub(crate) fn resource(who: &Identity) -> Resource {
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(who.service);
    }
    resource
        .with_attributes([
            KeyValue::new("node_id", who.node_id.clone()),
            KeyValue::new("node_type", node_type(who.service)),
            KeyValue::new("mode", who.mode),
        ])
        .build()
}

/// RocketMQ's `node_type` label values.
fn node_type(service: &str) -> &'static str {
    if service.ends_with("store") {
        "broker"
    } else {
        "proxy"
    }
}

/// Returns a component's instruments, made by `make` from the global meter
/// `meter` the first time they are asked for (after the node installed its
/// meter provider) and kept in `cell` from then on.
pub fn made_once<T>(
    cell: &'static std::sync::OnceLock<T>,
    meter: &'static str,
    make: impl FnOnce(&opentelemetry::metrics::Meter) -> T,
) -> &'static T {
    cell.get_or_init(|| make(&opentelemetry::global::meter(meter)))
}

/// Label value that every value past a [`LabelCap`] is folded into.
pub const OTHER: &str = "other";

/// Bounds the values one label takes: the first `cap` distinct values are
/// kept, every later one reads [`OTHER`], so a client inventing topic or
/// group names cannot grow the series without bound. Values are kept as
/// shared strings, so recording does not copy a name each time.
pub struct LabelCap {
    cap: usize,
    seen: RwLock<HashMap<String, StringValue>>,
}

impl LabelCap {
    /// A cap of `cap` distinct values.
    pub fn new(cap: usize) -> LabelCap {
        LabelCap {
            cap,
            seen: RwLock::new(HashMap::new()),
        }
    }

    /// The label value to record for `value`.
    pub fn fold(&self, value: &str) -> StringValue {
        if let Ok(seen) = self.seen.read() {
            if let Some(v) = seen.get(value) {
                return v.clone();
            }
            if seen.len() >= self.cap {
                return StringValue::from(OTHER);
            }
        }
        match self.seen.write() {
            Ok(mut seen) => {
                if seen.len() >= self.cap && !seen.contains_key(value) {
                    return StringValue::from(OTHER);
                }
                seen.entry(value.to_owned())
                    .or_insert_with(|| StringValue::from(value.to_owned()))
                    .clone()
            }
            // A panic while holding the lock: stop admitting values.
            Err(_) => StringValue::from(OTHER),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_past_the_cap_fold_into_other() {
        let cap = LabelCap::new(2);
        assert_eq!(cap.fold("a").as_str(), "a");
        assert_eq!(cap.fold("b").as_str(), "b");
        assert_eq!(cap.fold("c").as_str(), OTHER);
        assert_eq!(cap.fold("a").as_str(), "a", "admitted values stay");
    }

    #[test]
    fn an_empty_setting_turns_the_endpoint_off() {
        assert_eq!(listen_setting(None), Listen::Default);
        assert_eq!(listen_setting(Some(" ")), Listen::Off);
        assert_eq!(
            listen_setting(Some("127.0.0.1:0")),
            Listen::Required("127.0.0.1:0")
        );
    }
}
