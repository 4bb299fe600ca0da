//! A node's traces: the OpenTelemetry tracer provider both binaries install
//! at start, exporting spans over OTLP (HTTP/protobuf or gRPC) in batches.
//!
//! - [`Tracing`]: the provider and its batch exporter task (owned; flushed
//!   and stopped by [`Tracing::shutdown`]);
//! - [`layer`]: the tower layer giving every RPC a server span, continued
//!   from the caller's `traceparent` metadata;
//! - [`span`]: what the services call: child spans, spans continued from a
//!   message's `trace_context`, links, and the `traceparent` put on the
//!   proxy's calls to the store.
//!
//! Tracing is on only with a sampler and somewhere to send spans. When it is
//! off, [`on`] is false and every helper returns before touching the SDK; when
//! it is on, spans not sampled are not recording and the helpers skip the
//! children of those, so only sampled traces cost span work.

pub mod layer;
pub mod span;

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

use crate::metrics::Identity;
use crate::otlp::{Otlp, Signal};

static ON: AtomicBool = AtomicBool::new(false);

/// Whether spans are being made at all (a provider is installed).
#[inline]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Which traces are recorded, from `trace_sample_ratio` or the standard
/// `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Follow a caller's decision when it sent one (`traceparent` flags).
    pub parent_based: bool,
    /// Share of new traces (those without a caller's decision) recorded.
    pub ratio: f64,
}

/// The sampling in force, or `None` for no tracing. `ratio` (the config
/// key or flag) wins: 0 turns tracing off, anything else is parent-based at
/// that ratio. Without it the `OTEL_TRACES_SAMPLER` value is read. Neither
/// set: off. Off is the default because a span per RPC at tens of thousands
/// of RPCs a second is real work and a flood for a collector; an operator
/// who points Pier at a collector picks the share.
pub fn sampling(
    ratio: Option<f64>,
    env_sampler: Option<&str>,
    env_arg: Option<&str>,
) -> anyhow::Result<Option<Sampling>> {
    if let Some(r) = ratio {
        if !(0.0..=1.0).contains(&r) {
            anyhow::bail!("trace_sample_ratio must be between 0 and 1, not {r}");
        }
        return Ok((r > 0.0).then_some(Sampling {
            parent_based: true,
            ratio: r,
        }));
    }
    let Some(sampler) = env_sampler.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let arg = || -> anyhow::Result<f64> {
        match env_arg.map(str::trim).filter(|s| !s.is_empty()) {
            // The specification's default ratio.
            None => Ok(1.0),
            Some(a) => match a.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => anyhow::bail!("OTEL_TRACES_SAMPLER_ARG must be a ratio in [0, 1], not {a:?}"),
            },
        }
    };
    let (parent_based, ratio) = match sampler {
        "always_off" => return Ok(None),
        "always_on" => (false, 1.0),
        "traceidratio" => (false, arg()?),
        "parentbased_always_on" => (true, 1.0),
        "parentbased_always_off" => (true, 0.0),
        "parentbased_traceidratio" => (true, arg()?),
        other => anyhow::bail!("OTEL_TRACES_SAMPLER {other:?} is not supported"),
    };
    Ok(Some(Sampling {
        parent_based,
        ratio,
    }))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The installed tracer provider, if tracing is on.
pub struct Tracing {
    provider: Option<SdkTracerProvider>,
}

impl Tracing {
    /// Installs the global tracer provider when a sampler is configured
    /// (`ratio`, else `OTEL_TRACES_SAMPLER`) and an endpoint is known
    /// (`otlp`, else `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` /
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, see [`crate::otlp`]);
    /// `OTEL_TRACES_EXPORTER=none` turns it off. Batching follows the
    /// standard `OTEL_BSP_*` variables.
    pub fn start(who: &Identity, ratio: Option<f64>, otlp: &Otlp) -> anyhow::Result<Tracing> {
        let off = Tracing { provider: None };
        let Some(sampling) = sampling(
            ratio,
            env("OTEL_TRACES_SAMPLER").as_deref(),
            env("OTEL_TRACES_SAMPLER_ARG").as_deref(),
        )?
        else {
            return Ok(off);
        };
        if env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none")
            || env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        {
            return Ok(off);
        }
        let Some(target) = otlp.target(Signal::Traces)? else {
            tracing::warn!("traces are sampled but no OTLP endpoint is set: tracing stays off");
            return Ok(off);
        };
        let exporter = crate::otlp::span_exporter(&target)?;
        let ratio = Sampler::TraceIdRatioBased(sampling.ratio);
        let sampler = if sampling.parent_based {
            Sampler::ParentBased(Box::new(ratio))
        } else {
            ratio
        };
        let provider = SdkTracerProvider::builder()
            .with_resource(crate::metrics::resource(who))
            .with_sampler(sampler)
            .with_span_processor(BatchSpanProcessor::builder(exporter, Tokio).build())
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        ON.store(true, Ordering::Relaxed);
        tracing::info!(
            endpoint = %target.url,
            protocol = %target.protocol,
            ratio = sampling.ratio,
            parent_based = sampling.parent_based,
            "exporting traces over OTLP"
        );
        Ok(Tracing {
            provider: Some(provider),
        })
    }

    /// Exports the spans still queued and stops the exporter.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        ON.store(false, Ordering::Relaxed);
        // The last export runs on this runtime while shutdown blocks: block
        // a thread meant for it, not a worker.
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = stopped {
            tracing::debug!(error = %e, "tracer provider shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_setting_wins_and_zero_is_off() {
        assert_eq!(sampling(Some(0.0), Some("always_on"), None).unwrap(), None);
        assert_eq!(
            sampling(Some(0.01), Some("always_off"), None).unwrap(),
            Some(Sampling {
                parent_based: true,
                ratio: 0.01
            })
        );
        assert!(sampling(Some(1.5), None, None).is_err());
        assert_eq!(sampling(None, None, None).unwrap(), None, "off by default");
    }

    #[test]
    fn the_standard_sampler_variables_are_read() {
        assert_eq!(sampling(None, Some("always_off"), None).unwrap(), None);
        assert_eq!(
            sampling(None, Some("parentbased_traceidratio"), Some("0.25")).unwrap(),
            Some(Sampling {
                parent_based: true,
                ratio: 0.25
            })
        );
        assert_eq!(
            sampling(None, Some("traceidratio"), None).unwrap(),
            Some(Sampling {
                parent_based: false,
                ratio: 1.0
            })
        );
        assert!(sampling(None, Some("traceidratio"), Some("x")).is_err());
        assert!(sampling(None, Some("jaeger_remote"), None).is_err());
    }
}
