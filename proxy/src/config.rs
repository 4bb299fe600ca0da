//! Proxy settings: a TOML file, overridden by flags and environment
//! (see `bin/pier-proxy.rs`). Every field has a default that just works.

use std::path::PathBuf;

use pier_store::{CheckPolicy, FlushMode, StoreOptions};

use crate::limits;

/// Everything `pier-proxy` is configured with: the TOML file's keys, each
/// overridable by a flag (see README "Configuration").
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Address of the client-facing gRPC port.
    pub listen: String,
    /// Standalone mode: data directory of the embedded store.
    pub data: PathBuf,
    /// Standalone mode: directory of the embedded store's write-ahead log
    /// (unset: `data`); see [`StoreOptions::wal_dir`].
    pub wal_dir: Option<PathBuf>,
    /// Cluster mode: address of the store node. When set, `data` is unused.
    pub store: Option<String>,
    /// Flush mode of the embedded store's sends.
    pub flush: FlushMode,
    /// Flush mode of the embedded store's acks, changes of invisible time
    /// and receives (see [`pier_store::StoreOptions::ack_flush`]).
    pub ack_flush: FlushMode,
    /// Hours the embedded store keeps a message after it became visible
    /// (0: forever).
    pub retention_hours: u64,
    /// Key that authenticates receipt handles. Every proxy of a fleet must
    /// share it, so any proxy accepts a handle another one issued. Unset:
    /// the store's own random key, which it hands to all its proxies.
    pub receipt_secret: Option<SecretString>,
    /// Check every call's signature and ACLs (see README, Authentication).
    pub auth: bool,
    /// Accept compact dates (`yyyyMMddTHHmmssZ`) written in the client's
    /// local time with a literal `Z` (Java, Go, Python outside UTC). This
    /// widens the window in which a captured signature can be replayed from
    /// 30 minutes to about 26.5 hours.
    pub auth_local_time_dates: bool,
    /// A user created (or updated) as admin at start.
    pub admin_user: Option<String>,
    /// The secret of `admin_user`.
    pub admin_secret: Option<SecretString>,
    /// Create unknown topics (NORMAL, default queue count) on first use.
    /// Meant for development; off by default so typos are reported.
    pub auto_create: bool,
    /// Largest message body accepted, in bytes.
    pub max_body_size: usize,
    /// Longest delivery time ahead accepted for delay messages, in ms.
    pub max_delay_ms: u64,
    /// Invisibility the proxy picks for push consumers' auto-renewed
    /// receives, in ms; renewed in the background until acked.
    pub auto_renew_invisible_ms: u64,
    /// How long the proxy keeps renewing one auto-renewed receipt, in ms.
    pub auto_renew_max_ms: u64,
    /// Longest long poll, in ms (the client may ask for less).
    pub max_long_poll_ms: u64,
    /// A client not seen (heartbeat, settings) for this long is dropped:
    /// its Telemetry session ends and no transaction check goes to it.
    pub client_expiry_ms: u64,
    /// Transaction checks of the embedded store (see [`CheckPolicy`]); in
    /// cluster mode the store node's own settings apply.
    pub txn_first_check_ms: u64,
    /// See [`CheckPolicy::backoff_factor`].
    pub txn_check_backoff: u32,
    /// See [`CheckPolicy::max_interval_ms`].
    pub txn_max_check_interval_ms: u64,
    /// See [`CheckPolicy::max_checks`].
    pub txn_max_checks: u32,
    /// Address of the Prometheus endpoint (`/metrics`); unset: 0.0.0.0:5557
    /// if free, empty: off (see `pier_node::metrics::listen_setting`).
    pub metrics_listen: Option<String>,
    /// OTLP collector URL metrics and sampled spans go to (unset: none, unless
    /// the standard `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
    pub otlp_endpoint: Option<String>,
    /// `grpc` or `http/protobuf` (unset: `OTEL_EXPORTER_OTLP_PROTOCOL`,
    /// else http/protobuf; see `pier_node::otlp`).
    pub otlp_protocol: Option<pier_node::otlp::Protocol>,
    /// Whether the Settings reply turns the official clients' own metrics
    /// on, collected by this proxy and forwarded to the OTLP endpoint
    /// (RocketMQ's `metricCollectorMode`; see `pier_node::otlp::collector`).
    pub metrics_collector: MetricsCollector,
    /// Share of new traces recorded and sent to the OTLP endpoint (0: off,
    /// unset: `OTEL_TRACES_SAMPLER`, else off); parent-based, see
    /// `pier_node::trace::sampling`.
    pub trace_sample_ratio: Option<f64>,
    /// `text` or `json` log lines.
    pub log_format: pier_node::LogFormat,
    /// Most messages in one SendMessage (`limits`).
    pub max_send_messages: usize,
    /// Most body bytes in one SendMessage.
    pub max_send_bytes: usize,
    /// Embedded store: most received, unacked messages per consumer group
    /// (see [`pier_store::StoreOptions::max_inflight_per_group`]; 0: none).
    pub max_inflight_per_group: u64,
    /// Requests per second one client id may make (0: no limit).
    pub rate_per_client: u64,
    /// Requests per second one authenticated user may make (0: no limit).
    pub rate_per_user: u64,
    /// PEM certificate chain served on the client port (with `tls_key`);
    /// TLS and plaintext are then both accepted there (see `listener`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// With `tls_cert`: close plaintext connections.
    pub tls_required: bool,
    /// Client connections open at once; more are refused (reset).
    pub max_connections: usize,
    /// Cluster mode: reach the store over TLS, trusting this PEM CA.
    pub store_tls_ca: Option<PathBuf>,
    /// Cluster mode: the store node's cluster secret, proved on every call
    /// (see `pier_store`'s `link_auth`).
    pub cluster_secret: Option<pier_store::ClusterSecret>,
    /// Cluster mode with `store_tls_ca`: PEM certificate chain shown to a
    /// store node that asks for one (its `tls_client_ca`).
    pub store_tls_cert: Option<PathBuf>,
    /// PEM private key of `store_tls_cert`.
    pub store_tls_key: Option<PathBuf>,
}

pier_node::word_enum! {
    /// Where the official clients send their own metrics (RocketMQ's
    /// `metricCollectorMode`, without its `on` mode, which names a collector
    /// the clients reach directly).
    pub enum MetricsCollector("metrics_collector {s:?}: use {words}", any case) {
        /// Client metrics stay off (the Settings reply says `on: false`).
        #[default]
        Off = "off",
        /// The Settings reply turns them on and names the client's own
        /// access point: the proxy serves the OTLP metrics Export service
        /// and forwards what it receives to its OTLP endpoint.
        Proxy = "proxy",
    }
}

/// A secret setting: Debug never shows it, so logging a config is safe.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> SecretString {
        SecretString(s.into())
    }

    /// The secret, for the one use it is kept for.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl ProxyConfig {
    /// The options the embedded store is opened with (standalone mode).
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            flush: self.flush,
            ack_flush: self.ack_flush,
            retention_ms: self.retention_hours.saturating_mul(3600 * 1000),
            txn_checks: CheckPolicy {
                first_check_ms: self.txn_first_check_ms,
                backoff_factor: self.txn_check_backoff,
                max_interval_ms: self.txn_max_check_interval_ms,
                max_checks: self.txn_max_checks,
            },
            max_inflight_per_group: self.max_inflight_per_group,
            wal_dir: self.wal_dir.clone(),
        }
    }

    /// Where the proxy's metrics and traces go (and, with
    /// `metrics_collector = proxy`, its clients' metrics).
    pub fn reporting(&self) -> pier_node::Reporting {
        pier_node::Reporting {
            metrics_listen: self.metrics_listen.clone(),
            otlp: pier_node::otlp::Otlp {
                endpoint: self.otlp_endpoint.clone(),
                protocol: self.otlp_protocol,
            },
            trace_sample_ratio: self.trace_sample_ratio,
        }
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: "0.0.0.0:8081".into(),
            data: PathBuf::from("./pier-data"),
            wal_dir: None,
            store: None,
            flush: FlushMode::Sync,
            ack_flush: FlushMode::Sync,
            retention_hours: 72,
            receipt_secret: None,
            auth: false,
            auth_local_time_dates: false,
            admin_user: None,
            admin_secret: None,
            auto_create: false,
            max_body_size: 4 * 1024 * 1024,
            max_delay_ms: 40 * 24 * 3600 * 1000,
            auto_renew_invisible_ms: 60_000,
            auto_renew_max_ms: 3 * 3600 * 1000,
            max_long_poll_ms: 20_000,
            client_expiry_ms: 120_000,
            txn_first_check_ms: CheckPolicy::DEFAULT_CHECK_AFTER_MS,
            txn_check_backoff: CheckPolicy::DEFAULT_CHECK_BACKOFF,
            txn_max_check_interval_ms: CheckPolicy::MAX_CHECK_INTERVAL_MS,
            txn_max_checks: CheckPolicy::MAX_CHECKS,
            metrics_listen: None,
            otlp_endpoint: None,
            otlp_protocol: None,
            metrics_collector: MetricsCollector::Off,
            trace_sample_ratio: None,
            log_format: pier_node::LogFormat::Text,
            max_send_messages: limits::DEFAULT_MAX_SEND_MESSAGES,
            max_send_bytes: limits::DEFAULT_MAX_SEND_BYTES,
            max_inflight_per_group: StoreOptions::DEFAULT_MAX_INFLIGHT_PER_GROUP,
            rate_per_client: limits::DEFAULT_RATE_PER_CLIENT,
            rate_per_user: limits::DEFAULT_RATE_PER_USER,
            tls_cert: None,
            tls_key: None,
            tls_required: false,
            max_connections: 10_000,
            store_tls_ca: None,
            cluster_secret: None,
            store_tls_cert: None,
            store_tls_key: None,
        }
    }
}
