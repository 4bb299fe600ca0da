//! Where and how a node speaks OTLP: the collector's address and the
//! protocol, shared by the metrics push (`metrics`), the span export
//! (`trace`) and the proxy's forwarding of its clients' metrics
//! ([`forward`], [`collector`]).
//!
//! Settings follow the OpenTelemetry exporter specification: the endpoint
//! is `--otlp-endpoint` (config `otlp_endpoint`), else
//! `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT` (taken as is), else
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL); the protocol is
//! `--otlp-protocol` (config `otlp_protocol`), else
//! `OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`,
//! else `http/protobuf` (the specification's default). Over HTTP a base URL
//! gets the signal's path (`/v1/metrics`, `/v1/traces`); over gRPC the URL
//! names the server only (the path is the service's). gRPC is plaintext
//! (`http://`): the exporter is built without a TLS feature.

pub mod collector;
pub mod forward;

use opentelemetry_otlp::{MetricExporter, SpanExporter, WithExportConfig};

/// How OTLP is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum Protocol {
    /// OTLP/gRPC (`grpc`), port 4317 by convention.
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (`http/protobuf`), port 4318.
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Protocol, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "http/json" => {
                Err("OTLP protocol http/json is not supported: use grpc or http/protobuf".into())
            }
            other => Err(format!(
                "unknown OTLP protocol {other:?}: use grpc or http/protobuf"
            )),
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        })
    }
}

/// What is sent: the part of the `OTEL_*` names and the HTTP path that
/// differ by signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Metrics (`/v1/metrics`).
    Metrics,
    /// Spans (`/v1/traces`).
    Traces,
}

impl Signal {
    fn env_part(self) -> &'static str {
        match self {
            Signal::Metrics => "METRICS",
            Signal::Traces => "TRACES",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Signal::Metrics => "/v1/metrics",
            Signal::Traces => "/v1/traces",
        }
    }
}

/// The node's OTLP settings, from its config file and flags.
#[derive(Debug, Clone, Default)]
pub struct Otlp {
    /// `--otlp-endpoint`: a collector's base URL (or a signal's full URL).
    pub endpoint: Option<String>,
    /// `--otlp-protocol`.
    pub protocol: Option<Protocol>,
}

/// Where one signal goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// How.
    pub protocol: Protocol,
    /// The full URL: with the signal's path over HTTP, the server's only
    /// over gRPC.
    pub url: String,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Otlp {
    /// Where `signal` goes, or `None` when no endpoint is configured (no
    /// flag, no `OTEL_EXPORTER_OTLP_*ENDPOINT`) or `OTEL_SDK_DISABLED=true`.
    /// Errors on a protocol value Pier does not speak.
    pub fn target(&self, signal: Signal) -> anyhow::Result<Option<Target>> {
        self.target_with(signal, env)
    }

    /// [`Otlp::target`] reading variables through `env` (for tests).
    fn target_with(
        &self,
        signal: Signal,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<Target>> {
        // The specification's switch for the whole SDK: no export at all.
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let part = signal.env_part();
        let protocol = match self.protocol {
            Some(p) => p,
            None => match env(&format!("OTEL_EXPORTER_OTLP_{part}_PROTOCOL"))
                .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
            {
                Some(v) => v.parse().map_err(|e: String| anyhow::anyhow!(e))?,
                None => Protocol::HttpProtobuf,
            },
        };
        let explicit = self
            .endpoint
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty());
        let url = if let Some(base) = explicit {
            signal_url(base, signal, protocol)
        } else if let Some(full) = env(&format!("OTEL_EXPORTER_OTLP_{part}_ENDPOINT")) {
            // The specification: a signal's own endpoint is used as is.
            full.trim().to_owned()
        } else if let Some(base) = env("OTEL_EXPORTER_OTLP_ENDPOINT") {
            signal_url(&base, signal, protocol)
        } else {
            return Ok(None);
        };
        if protocol == Protocol::HttpProtobuf && url.contains(":4317") {
            tracing::warn!(%url, "OTLP over HTTP to port 4317, the gRPC port by convention: set --otlp-protocol grpc (or OTEL_EXPORTER_OTLP_PROTOCOL=grpc) if the collector speaks gRPC there");
        }
        Ok(Some(Target { protocol, url }))
    }
}

/// `base` as the URL of `signal`: the signal's path added once over HTTP
/// (a URL naming either signal's path is taken for the collector's base),
/// no path over gRPC.
fn signal_url(base: &str, signal: Signal, protocol: Protocol) -> String {
    let base = base.trim().trim_end_matches('/');
    let base = [Signal::Metrics, Signal::Traces]
        .iter()
        .find_map(|s| base.strip_suffix(s.path()))
        .unwrap_or(base);
    match protocol {
        Protocol::HttpProtobuf => format!("{base}{}", signal.path()),
        Protocol::Grpc => base.to_owned(),
    }
}

/// Builds an OTLP exporter (`MetricExporter`, `SpanExporter`: their
/// builders have the same steps but no common trait) for the target `$t`;
/// `$what` names it in the error.
macro_rules! exporter {
    ($exporter:ident, $t:expr, $what:literal) => {{
        let t: &Target = $t;
        let built = match t.protocol {
            Protocol::Grpc => $exporter::builder()
                .with_tonic()
                .with_endpoint(t.url.clone())
                .build(),
            Protocol::HttpProtobuf => $exporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(t.url.clone())
                .build(),
        };
        built.map_err(|e| anyhow::anyhow!("OTLP {} exporter ({}): {e}", $what, t.protocol))
    }};
}

/// The OTLP exporter of the node's own metrics.
pub(crate) fn metric_exporter(t: &Target) -> anyhow::Result<MetricExporter> {
    exporter!(MetricExporter, t, "metrics")
}

/// The OTLP exporter of the node's spans.
pub(crate) fn span_exporter(t: &Target) -> anyhow::Result<SpanExporter> {
    exporter!(SpanExporter, t, "span")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_signal_path_is_added_over_http_only() {
        let http = Protocol::HttpProtobuf;
        assert_eq!(
            signal_url("http://c:4318/", Signal::Metrics, http),
            "http://c:4318/v1/metrics"
        );
        assert_eq!(
            signal_url("http://c:4318/v1/metrics", Signal::Traces, http),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            signal_url("http://c:4318/v1/traces", Signal::Traces, http),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            signal_url("http://c:4317/", Signal::Traces, Protocol::Grpc),
            "http://c:4317"
        );
    }

    #[test]
    fn the_flag_wins_then_the_signal_variable_then_the_general_one() {
        let flag = Otlp {
            endpoint: Some("http://a:4317".into()),
            protocol: Some(Protocol::Grpc),
        };
        let none = vars(&[]);
        assert_eq!(
            flag.target_with(Signal::Metrics, &none).unwrap(),
            Some(Target {
                protocol: Protocol::Grpc,
                url: "http://a:4317".into()
            })
        );
        let unset = Otlp::default();
        assert_eq!(unset.target_with(Signal::Traces, &none).unwrap(), None);
        let env = vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://b:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:9/x"),
        ]);
        assert_eq!(
            unset.target_with(Signal::Metrics, &env).unwrap(),
            Some(Target {
                protocol: Protocol::HttpProtobuf,
                url: "http://b:4318/v1/metrics".into()
            })
        );
        assert_eq!(
            unset.target_with(Signal::Traces, &env).unwrap(),
            Some(Target {
                protocol: Protocol::Grpc,
                url: "http://t:9/x".into()
            }),
            "a signal's own endpoint is taken as is"
        );
        let json = vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://b:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ]);
        assert!(unset.target_with(Signal::Metrics, &json).is_err());
        let disabled = vars(&[("OTEL_SDK_DISABLED", "true")]);
        assert_eq!(flag.target_with(Signal::Metrics, &disabled).unwrap(), None);
    }

    #[test]
    fn http_protobuf_is_the_default() {
        let env = vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://b:4318")]);
        let t = Otlp::default()
            .target_with(Signal::Metrics, &env)
            .unwrap()
            .unwrap();
        assert_eq!(t.protocol, Protocol::HttpProtobuf);
    }
}
