//! `pier-store`: a store node serving `pier.store.v1` to proxies (cluster
//! mode) and `pier.admin.v1` to operators.

// Every RPC allocates its request, messages and reply; glibc malloc showed
// up as ~15% of the proxy's CPU in send profiles, mimalloc as a fraction.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;
use pier_node as node;
use pier_node::metrics::rpc::RpcLatencyLayer;
use pier_proto::store::store_server::StoreServer;
use pier_store::{
    AdminEndpoint, ClusterSecret, FlushMode, LinkGuard, Store, StoreApi, StoreEndpoint,
    StoreNodeConfig, TxnCheckArgs,
};

#[derive(Parser, Debug)]
#[command(name = "pier-store", version, about = "Pier store node")]
struct Args {
    /// TOML config file; flags and environment override it.
    #[arg(long, env = "PIER_CONFIG")]
    config: Option<PathBuf>,
    /// Address to serve on.
    #[arg(long, env = "PIER_LISTEN")]
    listen: Option<String>,
    /// Data directory.
    #[arg(long, env = "PIER_DATA")]
    data: Option<PathBuf>,
    /// Directory of the write-ahead log, e.g. on a device of its own
    /// [default: the data directory]. A store then opens only with that
    /// directory.
    #[arg(long, env = "PIER_WAL_DIR")]
    wal_dir: Option<PathBuf>,
    /// `sync` (fsync before acknowledging a send) or `async`.
    #[arg(long, env = "PIER_FLUSH")]
    flush: Option<FlushMode>,
    /// `sync` (fsync before answering an ack, a change of invisible time or
    /// a receive) or `async` (answer at once; a crash may redeliver acked
    /// messages).
    #[arg(long, env = "PIER_ACK_FLUSH")]
    ack_flush: Option<FlushMode>,
    /// Hours a message is kept after it became visible (0: forever).
    #[arg(long, env = "PIER_RETENTION_HOURS")]
    retention_hours: Option<u64>,
    #[command(flatten)]
    observability: node::ObservabilityArgs,
    /// Most messages one consumer group may hold received and not yet
    /// acked (0: no limit) [default: 100000]. Past it, receives get
    /// TOO_MANY_REQUESTS until acks free room.
    #[arg(long, env = "PIER_MAX_INFLIGHT_PER_GROUP")]
    max_inflight_per_group: Option<u64>,
    #[command(flatten)]
    txn: TxnCheckArgs,
    /// Create (or update) this admin user of the client port at start.
    #[arg(long, env = "PIER_ADMIN_USER", requires = "admin_secret")]
    admin_user: Option<String>,
    /// The secret of --admin-user.
    #[arg(
        long,
        env = "PIER_ADMIN_SECRET",
        hide_env_values = true,
        requires = "admin_user"
    )]
    admin_secret: Option<String>,
    /// PEM certificate chain: serve TLS only (ALPN h2); reloaded on SIGHUP
    /// and when the file changes. Proxies connect with --store-tls-ca.
    #[arg(long, env = "PIER_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "PIER_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Secret every call must prove (proxies: the same --cluster-secret);
    /// health and reflection stay open. Unset: the port serves anybody.
    #[arg(long, env = "PIER_CLUSTER_SECRET", hide_env_values = true)]
    cluster_secret: Option<String>,
    /// With --tls-cert: accept only clients showing a certificate signed by
    /// this PEM CA (mutual TLS; proxies: --store-tls-cert/--store-tls-key).
    #[arg(long, env = "PIER_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    node::tune_c_allocator();
    let args = Args::parse();
    let mut cfg: StoreNodeConfig = node::load_config(args.config.as_deref())?;
    node::override_given!(
        cfg, args: listen, data, wal_dir, flush, ack_flush, retention_hours, tls_cert, tls_key,
        tls_client_ca, max_inflight_per_group;
        args.txn: txn_first_check_ms, txn_check_backoff, txn_max_check_interval_ms,
        txn_max_checks;
        args.observability: metrics_listen, otlp_endpoint, otlp_protocol, trace_sample_ratio,
        log_format
    );
    if let Some(v) = args.cluster_secret {
        cfg.cluster_secret = Some(ClusterSecret::new(v)?);
    }
    node::init_logging(cfg.log_format);

    let listener = node::listener::bind(&cfg.listen).await?;
    let addr = listener.local_addr()?;
    // Before the store opens: its gauges register on the installed meter.
    let who = node::metrics::Identity {
        service: "pier-store",
        node_id: addr.to_string(),
        mode: "store",
    };
    let telemetry = node::Telemetry::start(who, &cfg.reporting()).await?;
    // Checked before the store is opened: a bad certificate stops the start.
    let certs = node::tls::TlsFiles::from_options(cfg.tls_cert.clone(), cfg.tls_key.clone())?
        .map(node::tls::CertResolver::load)
        .transpose()?;
    let clients = match (&cfg.tls_client_ca, &certs) {
        (Some(ca), Some(_)) => Some(node::tls::client_verifier(ca)?),
        (Some(_), None) => anyhow::bail!("tls_client_ca needs tls_cert and tls_key"),
        (None, _) => None,
    };
    let listen_options = node::listener::ListenOptions {
        tls: certs
            .as_ref()
            .map(|c| c.server_config_for(clients.clone()))
            .transpose()?,
        // Only proxies and operators connect here: a store given a
        // certificate speaks TLS only.
        tls_required: certs.is_some(),
        ..Default::default()
    };
    let store = Arc::new(Store::open(&cfg.data, cfg.store_options())?);
    let api: Arc<dyn StoreApi> = store.clone();
    if let (Some(name), Some(secret)) = (args.admin_user, args.admin_secret) {
        let r = api
            .create_user(pier_proto::admin::CreateUserRequest {
                name: name.clone(),
                secret,
                admin: true,
            })
            .await?;
        tracing::info!(user = %name, created = r.created, "admin user ready");
    }

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<StoreServer<StoreEndpoint>>().await;
    let reflection =
        node::reflection(&["pier.store.v1.Store", "pier.admin.v1.AdminService"]).build_v1()?;
    let reflection_alpha =
        node::reflection(&["pier.store.v1.Store", "pier.admin.v1.AdminService"]).build_v1alpha()?;

    let cluster_secret = cfg
        .cluster_secret
        .clone()
        .map(|s| s.validated())
        .transpose()?;
    let open_port = cluster_secret.is_none();
    let guard = LinkGuard::new(cluster_secret);
    tracing::info!(%addr, data = %cfg.data.display(), tls = certs.is_some(), "pier-store listening");
    if open_port {
        tracing::warn!(
            "no --cluster-secret: the store port serves anybody who reaches it, users' secrets \
             included; set one here and on every proxy"
        );
    }
    let (stopping, mut stopped) = tokio::sync::watch::channel(false);
    let reload_task = certs.map(|c| {
        node::tls::spawn_reloader(c, node::tls::POLL_EVERY, async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
    });
    let stopped_by_poison = Arc::new(AtomicBool::new(false));
    let served = tonic::transport::Server::builder()
        .layer(
            tower::ServiceBuilder::new()
                .layer(RpcLatencyLayer::new("pier_store"))
                .layer(node::trace::layer::TraceLayer),
        )
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(StoreEndpoint::guarded(api.clone(), guard.clone()))
        .add_service(AdminEndpoint::guarded(api, guard))
        .serve_with_incoming_shutdown(node::listener::accept(listener, listen_options), {
            let store = store.clone();
            let mut poisoned = store.poisoned();
            let stopped_by_poison = stopped_by_poison.clone();
            async move {
                tokio::select! {
                    () = node::shutdown_signal() => {}
                    // A poisoned store refuses every write: stop, so that a
                    // supervisor restarts the node on a store that reopens.
                    Ok(_) = poisoned.wait_for(|p| *p) => {
                        stopped_by_poison.store(true, Ordering::Release);
                        tracing::error!("the store refuses writes since a write to its write-ahead log failed; stopping so that it is restarted");
                    }
                }
                store.drain();
            }
        })
        .await;
    let _ = stopping.send(true);
    if let Some(t) = reload_task {
        let _ = t.await;
    }
    served?;
    store.shutdown();
    telemetry.shutdown().await;
    if stopped_by_poison.load(Ordering::Acquire) {
        anyhow::bail!("stopped: the store was poisoned by a failed write-ahead log write");
    }
    Ok(())
}
