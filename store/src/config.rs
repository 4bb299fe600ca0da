//! Settings of a store node (`pier-store`'s config file) and the
//! transaction-check flags both node binaries accept.

use std::path::PathBuf;

use crate::log::FlushMode;
use crate::store::StoreOptions;
use crate::txn::CheckPolicy;

/// Settings of a `pier-store` node. Every field has a working default.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreNodeConfig {
    /// Address to serve on.
    pub listen: String,
    /// Data directory.
    pub data: PathBuf,
    /// Directory of the write-ahead log (unset: `data`); see
    /// [`StoreOptions::wal_dir`].
    pub wal_dir: Option<PathBuf>,
    /// When a send is acknowledged.
    pub flush: FlushMode,
    /// When acks, changes of invisible time and receives are answered
    /// (see [`crate::StoreOptions::ack_flush`]).
    pub ack_flush: FlushMode,
    /// Hours a message is kept after it became visible (0 keeps messages
    /// forever).
    pub retention_hours: u64,
    /// Transaction checks: [`CheckPolicy::first_check_ms`].
    pub txn_first_check_ms: u64,
    /// [`CheckPolicy::backoff_factor`].
    pub txn_check_backoff: u32,
    /// [`CheckPolicy::max_interval_ms`].
    pub txn_max_check_interval_ms: u64,
    /// [`CheckPolicy::max_checks`].
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
    /// Share of new traces recorded and sent to the OTLP endpoint (0: off,
    /// unset: `OTEL_TRACES_SAMPLER`, else off); parent-based, see
    /// `pier_node::trace::sampling`.
    pub trace_sample_ratio: Option<f64>,
    /// `text` or `json` log lines.
    pub log_format: pier_node::LogFormat,
    /// [`StoreOptions::max_inflight_per_group`].
    pub max_inflight_per_group: u64,
    /// PEM certificate chain: serve TLS only (proxies then connect with
    /// `store_tls_ca`); reloaded on SIGHUP and when the file changes.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Secret every caller of the store port must prove (see `link_auth`);
    /// unset: the port serves anybody who reaches it.
    pub cluster_secret: Option<crate::ClusterSecret>,
    /// With `tls_cert`: PEM CA every client (proxy) must show a certificate
    /// of (mutual TLS).
    pub tls_client_ca: Option<PathBuf>,
}

impl StoreNodeConfig {
    /// Returns the options the store is opened with.
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

    /// Returns where the node's metrics and traces go.
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

impl Default for StoreNodeConfig {
    fn default() -> Self {
        StoreNodeConfig {
            listen: "0.0.0.0:8091".into(),
            data: PathBuf::from("./pier-store-data"),
            wal_dir: None,
            flush: FlushMode::Sync,
            ack_flush: FlushMode::Sync,
            retention_hours: 72,
            txn_first_check_ms: CheckPolicy::DEFAULT_CHECK_AFTER_MS,
            txn_check_backoff: CheckPolicy::DEFAULT_CHECK_BACKOFF,
            txn_max_check_interval_ms: CheckPolicy::MAX_CHECK_INTERVAL_MS,
            txn_max_checks: CheckPolicy::MAX_CHECKS,
            metrics_listen: None,
            otlp_endpoint: None,
            otlp_protocol: None,
            trace_sample_ratio: None,
            log_format: pier_node::LogFormat::Text,
            max_inflight_per_group: StoreOptions::DEFAULT_MAX_INFLIGHT_PER_GROUP,
            tls_cert: None,
            tls_key: None,
            cluster_secret: None,
            tls_client_ca: None,
        }
    }
}

/// Flags of the transaction-check policy, shared by `pier-store` and the
/// standalone `pier-proxy` (whichever node runs the store checks).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TxnCheckArgs {
    /// Delay of the first orphan check of an unresolved transaction, in ms
    /// [default: 6000]. A producer's `orphaned_transaction_recovery_duration`
    /// overrides it for its messages.
    #[arg(long, env = "PIER_TXN_FIRST_CHECK_MS")]
    pub txn_first_check_ms: Option<u64>,
    /// Factor by which each wait between two checks grows, starting from the
    /// first-check delay [default: 2]; 1 checks at a fixed interval.
    #[arg(long, env = "PIER_TXN_CHECK_BACKOFF")]
    pub txn_check_backoff: Option<u32>,
    /// Longest wait between two checks, in ms [default: 300000].
    #[arg(long, env = "PIER_TXN_MAX_CHECK_INTERVAL_MS")]
    pub txn_max_check_interval_ms: Option<u64>,
    /// Unanswered checks after which a transaction is rolled back (one more
    /// wait after the last check) [default: 15].
    #[arg(long, env = "PIER_TXN_MAX_CHECKS")]
    pub txn_max_checks: Option<u32>,
}

impl TxnCheckArgs {
    /// Returns true when any flag is given.
    pub fn any_set(&self) -> bool {
        self.txn_first_check_ms.is_some()
            || self.txn_check_backoff.is_some()
            || self.txn_max_check_interval_ms.is_some()
            || self.txn_max_checks.is_some()
    }
}
