//! `pier-proxy`: the client-facing node. Standalone by default (embedded
//! store in `--data`); with `--store ADDR` it serves a remote store node.

// Every RPC allocates its request, messages and reply; glibc malloc showed
// up as ~15% of the proxy's CPU in send profiles, mimalloc as a fraction.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use clap::Parser;
use pier_node as node;
use pier_proxy::limits::LimitArgs;
use pier_proxy::ProxyConfig;
use pier_store::{FlushMode, TxnCheckArgs};

#[derive(Parser, Debug)]
#[command(
    name = "pier-proxy",
    version,
    about = "Pier proxy: RocketMQ 5 gRPC protocol over a Pier store"
)]
struct Args {
    /// TOML config file (see README); flags and environment override it.
    #[arg(long, env = "PIER_CONFIG")]
    config: Option<PathBuf>,
    /// Address to serve clients on [default: 0.0.0.0:8081].
    #[arg(long, env = "PIER_LISTEN")]
    listen: Option<String>,
    /// Data directory of the embedded store (standalone mode) [default: ./pier-data].
    #[arg(long, env = "PIER_DATA")]
    data: Option<PathBuf>,
    /// Directory of the embedded store's write-ahead log, e.g. on a device
    /// of its own [default: the data directory]. A store then opens only
    /// with that directory.
    #[arg(long, env = "PIER_WAL_DIR")]
    wal_dir: Option<PathBuf>,
    /// Address of a `pier-store` node (cluster mode).
    #[arg(long, env = "PIER_STORE")]
    store: Option<String>,
    /// Embedded store: `sync` (fsync before acknowledging a send) or `async`.
    #[arg(long, env = "PIER_FLUSH")]
    flush: Option<FlushMode>,
    /// Embedded store: `sync` (fsync before answering an ack, a change of
    /// invisible time or a receive) or `async` (a crash may redeliver acked
    /// messages).
    #[arg(long, env = "PIER_ACK_FLUSH")]
    ack_flush: Option<FlushMode>,
    /// Embedded store: hours a message is kept after it became visible (0:
    /// forever) [default: 72].
    #[arg(long, env = "PIER_RETENTION_HOURS")]
    retention_hours: Option<u64>,
    /// Largest message body accepted, in bytes [default: 4194304].
    #[arg(long, env = "PIER_MAX_BODY_SIZE")]
    max_body_size: Option<usize>,
    /// Longest delivery time ahead for delay messages, in ms [default: 40 days].
    #[arg(long, env = "PIER_MAX_DELAY_MS")]
    max_delay_ms: Option<u64>,
    /// Invisibility of push consumers' auto-renewed receives, in ms [default: 60000].
    #[arg(long, env = "PIER_AUTO_RENEW_INVISIBLE_MS")]
    auto_renew_invisible_ms: Option<u64>,
    /// How long one auto-renewed receipt is renewed, in ms [default: 3 h].
    #[arg(long, env = "PIER_AUTO_RENEW_MAX_MS")]
    auto_renew_max_ms: Option<u64>,
    /// Longest long poll, in ms [default: 20000].
    #[arg(long, env = "PIER_MAX_LONG_POLL_MS")]
    max_long_poll_ms: Option<u64>,
    /// Drop a client not seen (heartbeat, settings) for this long, in ms
    /// [default: 120000].
    #[arg(long, env = "PIER_CLIENT_EXPIRY_MS")]
    client_expiry_ms: Option<u64>,
    /// Key authenticating receipt handles; the same on every proxy of a fleet.
    #[arg(long, env = "PIER_RECEIPT_SECRET", hide_env_values = true)]
    receipt_secret: Option<String>,
    /// Check every call's signature (MQv2-HMAC-SHA1) and ACLs.
    #[arg(long, env = "PIER_AUTH", num_args = 0..=1, default_missing_value = "true")]
    auth: Option<bool>,
    /// Accept compact dates in the client's local time (Java, Go, Python
    /// outside UTC); widens the replay window to about 26.5 h.
    #[arg(long, env = "PIER_AUTH_LOCAL_TIME_DATES", num_args = 0..=1, default_missing_value = "true")]
    auth_local_time_dates: Option<bool>,
    /// Create (or update) this admin user at start.
    #[arg(long, env = "PIER_ADMIN_USER", requires = "admin_secret")]
    admin_user: Option<String>,
    /// The secret of --admin-user.
    #[arg(long, env = "PIER_ADMIN_SECRET", hide_env_values = true)]
    admin_secret: Option<String>,
    /// Create unknown topics and groups on first use (development).
    #[arg(long, env = "PIER_AUTO_CREATE")]
    auto_create: Option<bool>,
    #[command(flatten)]
    observability: node::ObservabilityArgs,
    /// `proxy`: turn the official clients' own metrics on (Settings) and
    /// forward them to the OTLP endpoint; `off` [default].
    #[arg(long, env = "PIER_METRICS_COLLECTOR")]
    metrics_collector: Option<pier_proxy::config::MetricsCollector>,
    /// PEM certificate chain: serve TLS (ALPN h2) beside plaintext on the
    /// client port; reloaded on SIGHUP and when the file changes.
    #[arg(long, env = "PIER_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "PIER_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// With --tls-cert: refuse plaintext connections (`--tls-required` alone
    /// means true).
    #[arg(long, env = "PIER_TLS_REQUIRED", num_args = 0..=1, default_missing_value = "true")]
    tls_required: Option<bool>,
    /// Client connections open at once; more are refused [default: 10000].
    #[arg(long, env = "PIER_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Cluster mode: reach the store over TLS, trusting this PEM CA file.
    #[arg(long, env = "PIER_STORE_TLS_CA")]
    store_tls_ca: Option<PathBuf>,
    /// Cluster mode: the store node's --cluster-secret, proved on every call.
    #[arg(long, env = "PIER_CLUSTER_SECRET", hide_env_values = true)]
    cluster_secret: Option<String>,
    /// Cluster mode with --store-tls-ca: PEM certificate chain shown to a
    /// store node started with --tls-client-ca.
    #[arg(long, env = "PIER_STORE_TLS_CERT", requires = "store_tls_key")]
    store_tls_cert: Option<PathBuf>,
    /// PEM private key of --store-tls-cert.
    #[arg(long, env = "PIER_STORE_TLS_KEY", requires = "store_tls_cert")]
    store_tls_key: Option<PathBuf>,
    /// Transaction checks of the embedded store (standalone mode).
    #[command(flatten)]
    txn: TxnCheckArgs,
    /// Request limits (see README "Limits").
    #[command(flatten)]
    limits: LimitArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    node::tune_c_allocator();
    let args = Args::parse();
    let mut cfg: ProxyConfig = node::load_config(args.config.as_deref())?;
    node::override_given!(
        cfg, args: listen, data, wal_dir, store, flush, ack_flush, retention_hours, max_body_size,
        max_delay_ms, auto_renew_invisible_ms, auto_renew_max_ms, max_long_poll_ms,
        client_expiry_ms, auth, auth_local_time_dates, admin_user, auto_create, tls_cert,
        tls_key, tls_required, max_connections, store_tls_ca, store_tls_cert, store_tls_key,
        metrics_collector;
        args.txn: txn_first_check_ms, txn_check_backoff, txn_max_check_interval_ms,
        txn_max_checks;
        args.observability: metrics_listen, otlp_endpoint, otlp_protocol, trace_sample_ratio,
        log_format;
        args.limits: max_send_messages, max_send_bytes, max_inflight_per_group, rate_per_client,
        rate_per_user
    );
    if let Some(v) = args.receipt_secret {
        cfg.receipt_secret = Some(pier_proxy::config::SecretString::new(v));
    }
    if let Some(v) = args.admin_secret {
        cfg.admin_secret = Some(pier_proxy::config::SecretString::new(v));
    }
    if let Some(v) = args.cluster_secret {
        cfg.cluster_secret = Some(pier_store::ClusterSecret::new(v)?);
    }
    node::init_logging(cfg.log_format);
    if cfg.store.is_some() && args.limits.max_inflight_per_group.is_some() {
        // Consumption state lives on the store node, and so does its limit.
        tracing::warn!("--max-inflight-per-group is ignored in cluster mode: set it on pier-store");
    }
    if cfg.store.is_none() && cfg.cluster_secret.is_some() {
        // Standalone: the store is in this process, there is no link.
        tracing::warn!("--cluster-secret is ignored in standalone mode: it guards the store link");
    }
    if cfg.store.is_some() && args.txn.any_set() {
        // Checks run where the half messages are: on the store node.
        tracing::warn!("--txn-* flags are ignored in cluster mode: set them on pier-store");
    }
    let listener = node::listener::bind(&cfg.listen).await?;
    let who = node::metrics::Identity {
        service: "pier-proxy",
        node_id: listener.local_addr()?.to_string(),
        mode: if cfg.store.is_some() {
            "cluster"
        } else {
            "standalone"
        },
    };
    let telemetry = node::Telemetry::start(who, &cfg.reporting()).await?;
    let served = pier_proxy::server::serve(cfg, listener, node::shutdown_signal()).await;
    telemetry.shutdown().await;
    served
}
