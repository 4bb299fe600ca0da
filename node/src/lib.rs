//! What a Pier node binary needs around its services, shared by `pier-store`
//! and `pier-proxy`: TOML config files, logging from `RUST_LOG`, the
//! shutdown signal, gRPC server reflection, the TCP listener ([`listener`]:
//! connection limit, plaintext and TLS on one port, writes coalesced by
//! [`gate`]) with its certificates
//! ([`tls`]: loading, reloading), the metrics exporter ([`metrics`]), the
//! tracer ([`trace`]) and their OTLP settings and forwarding ([`otlp`]). None of it is store or proxy logic, so it lives here,
//! beside the binaries, and never pulls in RocksDB.

pub mod gate;
pub mod listener;
pub mod throttle;
pub mod tls;

pub mod metrics;
pub mod otlp;
pub mod trace;

use std::path::Path;

use serde::de::DeserializeOwned;

/// Reads a TOML config file, or the defaults when no file is given.
pub fn load_config<T: DeserializeOwned + Default>(path: Option<&Path>) -> anyhow::Result<T> {
    match path {
        None => Ok(T::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", p.display()))?;
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("bad config {}: {e}", p.display()))
        }
    }
}

/// Overrides config keys with the flags of the same name that were given:
/// `override_given!(cfg, args: listen, data)` sets `cfg.listen` to
/// `args.listen` when that flag (an `Option`) is `Some`, and so on; a value
/// is converted with `Into` (so a flag `T` fills a key `Option<T>`). The
/// flags of a flattened group are named by its path, and groups are
/// separated by `;`: `override_given!(cfg, args: listen; args.txn: txn_max_checks)`.
#[macro_export]
macro_rules! override_given {
    // One key at a time: the path is one bracketed token tree, so it can be
    // repeated for every key.
    (@keys $cfg:ident, $path:tt, $key:ident $(, $more:ident)*) => {
        $crate::override_given!(@key $cfg, $path, $key);
        $crate::override_given!(@keys $cfg, $path $(, $more)*);
    };
    (@keys $cfg:ident, $path:tt) => {};
    (@key $cfg:ident, [$($path:tt)+], $key:ident) => {
        if let Some(v) = $($path)+.$key {
            $cfg.$key = v.into();
        }
    };
    ($cfg:ident, $($args:ident).+ : $($key:ident),+ $(,)? $(; $($rest:tt)+)?) => {
        $crate::override_given!(@keys $cfg, [$($args).+] $(, $key)+);
        $( $crate::override_given!($cfg, $($rest)+); )?
    };
}

/// Declares a setting that takes one of a few words (a config key, a flag,
/// an environment variable): the enum, with the words as its serde names,
/// and its `FromStr`, which answers anything else with the message given,
/// where `{s}` is what was given and `{words}` the words it takes:
/// `word_enum! { pub enum Mode("mode must be {words}, not {s:?}") { #[default]
/// On = "on", Off = "off" } }` parses `on` and `off` exactly, and answers
/// `mode must be on or off, not "x"` to anything else. With `any case` after
/// the message, a flag's value is trimmed and lowercased first (the config
/// file's serde names stay exact). Attributes before `enum` (docs, more
/// derives) are kept.
#[macro_export]
macro_rules! word_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident($message:literal, any case) { $($body:tt)* }
    ) => {
        $crate::word_enum!(@make $crate::word_folded, $(#[$meta])* $vis enum $name($message) { $($body)* });
    };
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident($message:literal) { $($body:tt)* }
    ) => {
        $crate::word_enum!(@make $crate::word_exact, $(#[$meta])* $vis enum $name($message) { $($body)* });
    };
    (
        @make $key:path,
        $(#[$meta:meta])*
        $vis:vis enum $name:ident($message:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $word:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
        $vis enum $name {
            $( $(#[$vmeta])* #[serde(rename = $word)] $variant, )+
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let key = $key(s);
                $( if key == $word { return Ok($name::$variant); } )+
                Err(format!($message, s = key, words = $crate::either(&[$($word),+])))
            }
        }
    };
}

/// A [`word_enum!`]'s value as given.
#[doc(hidden)]
pub fn word_exact(s: &str) -> String {
    s.to_owned()
}

/// A [`word_enum!`]'s value with `any case`: trimmed and lowercased.
#[doc(hidden)]
pub fn word_folded(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// The words of a [`word_enum!`] as its error message lists them: `a or b`,
/// `a, b or c`.
#[doc(hidden)]
pub fn either(words: &[&str]) -> String {
    match words.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Tunes glibc malloc, which RocksDB (C++) allocates through: the Rust side
/// uses mimalloc, but block-cache blocks and memtable arenas come and go by
/// megabytes, and glibc's defaults hand freed memory straight back to the
/// kernel (arena blocks above 128 KiB are their own mappings; the heap top
/// is trimmed past 128 KiB), so it is faulted in and zeroed again: about 6%
/// of the proxy's CPU (`clear_page_erms` under `sysmalloc`) while draining a
/// 1,000,000-message backlog. Called first thing by the node binaries.
pub fn tune_c_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters, under glibc's own
    // locks; no pointer is involved.
    unsafe {
        // Arena blocks (1 MiB) on the heap, where a freed one is reused.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        // Keep up to 64 MiB of free heap top instead of trimming it.
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// The flags of what a node reports (metrics, traces, log format), the
/// same on `pier-proxy` and `pier-store`; each is named like the config key
/// it overrides (see [`override_given!`]).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ObservabilityArgs {
    /// Address of the Prometheus metrics endpoint (`/metrics`); empty turns
    /// it off [default: 0.0.0.0:5557, skipped with a warning if taken].
    #[arg(long, env = "PIER_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Push metrics (and sampled traces) over OTLP to this collector URL
    /// (also enabled by the standard OTEL_EXPORTER_OTLP_ENDPOINT).
    #[arg(long, env = "PIER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// `grpc` or `http/protobuf` [default: OTEL_EXPORTER_OTLP_PROTOCOL, else
    /// http/protobuf].
    #[arg(long, env = "PIER_OTLP_PROTOCOL")]
    pub otlp_protocol: Option<otlp::Protocol>,
    /// Share of new traces sent to the OTLP endpoint, 0 to 1, parent-based
    /// [default: OTEL_TRACES_SAMPLER, else 0: off].
    #[arg(long, env = "PIER_TRACE_SAMPLE_RATIO")]
    pub trace_sample_ratio: Option<f64>,
    /// `text` or `json` (one object a line, with the trace id).
    #[arg(long, env = "PIER_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// Where a node's metrics and traces go: its config keys `metrics_listen`,
/// `otlp_endpoint`, `otlp_protocol` and `trace_sample_ratio` (the same on
/// both nodes).
#[derive(Debug, Clone, Default)]
pub struct Reporting {
    /// The Prometheus endpoint's address (see [`metrics::listen_setting`]).
    pub metrics_listen: Option<String>,
    /// The OTLP collector metrics and sampled spans are pushed to.
    pub otlp: otlp::Otlp,
    /// The share of new traces sampled (see [`trace::Tracing::start`]).
    pub trace_sample_ratio: Option<f64>,
}

/// A node's tracer and metrics exporter, started together before it serves
/// and shut down together after.
pub struct Telemetry {
    tracing: trace::Tracing,
    metrics: metrics::Exporter,
}

impl Telemetry {
    /// Installs the tracer, then starts the metrics exporter, both
    /// reporting as `who`.
    pub async fn start(who: metrics::Identity, to: &Reporting) -> anyhow::Result<Telemetry> {
        let tracing = trace::Tracing::start(&who, to.trace_sample_ratio, &to.otlp)?;
        let listen = metrics::listen_setting(to.metrics_listen.as_deref());
        let metrics = metrics::Exporter::start(who, listen, &to.otlp).await?;
        Ok(Telemetry { tracing, metrics })
    }

    /// Flushes and stops the metrics exporter, then the tracer.
    pub async fn shutdown(self) {
        self.metrics.shutdown().await;
        self.tracing.shutdown().await;
    }
}

word_enum! {
    /// How log lines are written: `text` for people, `json` (one object a
    /// line, with the fields of the spans around it, among them `trace_id`
    /// inside a traced request) for log shippers.
    pub enum LogFormat("log format must be {words}, not {s:?}") {
        /// Human-readable lines (colored on a terminal).
        #[default]
        Text = "text",
        /// One JSON object a line.
        Json = "json",
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), in `format`.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        // The innermost span (`span`) and the whole stack (`spans`) carry
        // the trace id of the request a line was written in.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown signal received");
}

/// Server reflection (for grpcurl `list` / `describe`) listing exactly the
/// services a node serves, plus health and reflection itself.
pub fn reflection(services: &[&str]) -> tonic_reflection::server::Builder<'static> {
    let mut b = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pier_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health");
    for s in services {
        b = b.with_service_name(*s);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    word_enum! {
        /// A setting that takes its words in any case.
        enum Switch("switch {s:?}: use {words}", any case) {
            #[default]
            Off = "off",
            On = "on",
            Auto = "auto",
        }
    }

    #[test]
    fn a_word_setting_parses_its_words_and_names_them_when_refusing() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        // Exact by default: the config file's serde names are exact too.
        assert_eq!(
            "JSON".parse::<LogFormat>(),
            Err(r#"log format must be text or json, not "JSON""#.to_owned())
        );
        assert_eq!(" ON ".parse::<Switch>(), Ok(Switch::On));
        assert_eq!(
            "Maybe".parse::<Switch>(),
            Err(r#"switch "maybe": use off, on or auto"#.to_owned())
        );
        assert_eq!(Switch::default(), Switch::Off);
        let named: Switch = toml::from_str::<toml::Table>("v = \"auto\"").unwrap()["v"]
            .clone()
            .try_into()
            .unwrap();
        assert_eq!(named, Switch::Auto);
    }
}
