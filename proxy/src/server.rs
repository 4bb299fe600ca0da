//! Assembles a proxy: the store it talks to (embedded or remote), the
//! client-facing services on one port (built in `layers`), background
//! tasks, and the graceful stop (stop accepting, end long polls, finish
//! in-flight calls, flush).
//!
//! An embedded store that becomes poisoned (a write to its WAL failed)
//! refuses every write from then on; the proxy then stops as on a signal
//! and [`serve`] returns an error, so the process exits non-zero and its
//! supervisor restarts it on a store that reopens cleanly.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pier_node as node;
use pier_proto::rocketmq::messaging_service_server::MessagingServiceServer;
use pier_store::{LinkOptions, RemoteStore, Store, StoreApi};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::ProxyAdmin;
use crate::auth;
use crate::authority;
use crate::config::{MetricsCollector, ProxyConfig};
use crate::faults::FaultLog;
use crate::layers;
use crate::listener;
use crate::metrics;
use crate::renew::Renewer;
use crate::service::Messaging;
use crate::session::Sessions;

/// Calls and streams one client connection may have open at once (HTTP/2
/// `SETTINGS_MAX_CONCURRENT_STREAMS`). gRPC clients queue calls past it
/// rather than fail them; it bounds the tasks and long polls one connection
/// holds. Above hyper's own default (200), which tonic does not keep.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 1024;

/// Resolves when `shutdown` does, or when `poisoned` turns true, which it
/// then records in `stopped_by_poison`.
async fn stop_signal(
    shutdown: impl Future<Output = ()>,
    poisoned: Option<watch::Receiver<bool>>,
    stopped_by_poison: &AtomicBool,
) {
    let poison = async {
        let poisoned_now = match poisoned {
            Some(mut p) => p.wait_for(|p| *p).await.is_ok(),
            None => false,
        };
        if !poisoned_now {
            // Cluster mode, or the store is gone: nothing to watch.
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = shutdown => {}
        () = poison => {
            stopped_by_poison.store(true, Ordering::Release);
            tracing::error!(
                "the embedded store refuses writes since a write to its write-ahead log failed; \
                 stopping so that it is restarted"
            );
        }
    }
}

/// The CA the store link trusts, read from `path` (cluster mode with TLS).
fn store_tls_ca(path: Option<&std::path::Path>) -> anyhow::Result<Option<Vec<u8>>> {
    path.map(|p| {
        std::fs::read(p)
            .map_err(|e| anyhow::anyhow!("cannot read store_tls_ca {}: {e}", p.display()))
    })
    .transpose()
}

/// The client certificate and key of the store link (mutual TLS), read
/// from `store_tls_cert` and `store_tls_key`.
fn store_tls_identity(cfg: &ProxyConfig) -> anyhow::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let read = |what: &str, p: &std::path::Path| {
        std::fs::read(p).map_err(|e| anyhow::anyhow!("cannot read {what} {}: {e}", p.display()))
    };
    match (&cfg.store_tls_cert, &cfg.store_tls_key) {
        (Some(cert), Some(key)) => {
            if cfg.store_tls_ca.is_none() {
                anyhow::bail!(
                    "store_tls_cert needs store_tls_ca (the link is plaintext without it)"
                );
            }
            Ok(Some((
                read("store_tls_cert", cert)?,
                read("store_tls_key", key)?,
            )))
        }
        (None, None) => Ok(None),
        _ => anyhow::bail!("store_tls_cert and store_tls_key must be set together"),
    }
}

/// Runs a proxy on `listener` until `shutdown` resolves (then returns
/// `Ok`), or until its embedded store is poisoned (then returns an error).
pub async fn serve(
    cfg: ProxyConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    // TLS files and limits are checked before anything else is started.
    let (listen_options, cert_resolver) = listener::options(&cfg)?;
    let addr: SocketAddr = listener.local_addr()?;
    // metrics_collector = proxy: the clients' own metrics, checked and
    // forwarded to the OTLP endpoint (pier_node::otlp::forward). Set up
    // first: a bad endpoint stops the proxy before anything started (the
    // task ends by itself if a later step fails: its queue's sender goes).
    let forwarder = match cfg.metrics_collector {
        MetricsCollector::Proxy => {
            let target = cfg.reporting().otlp.target(node::otlp::Signal::Metrics)?;
            Some(node::otlp::forward::Forwarder::start(target.as_ref())?)
        }
        MetricsCollector::Off => None,
    };
    let collector = forwarder
        .as_ref()
        .map(|f| node::otlp::collector::MetricsCollector::new(f.handle()));
    let (embedded, store): (Option<Arc<Store>>, Arc<dyn StoreApi>) = match &cfg.store {
        Some(remote) => {
            let secret = cfg
                .cluster_secret
                .clone()
                .map(|s| s.validated())
                .transpose()?;
            let link = LinkOptions {
                tls_ca: store_tls_ca(cfg.store_tls_ca.as_deref())?,
                tls_identity: store_tls_identity(&cfg)?,
                secret,
            };
            (None, Arc::new(RemoteStore::connect_secured(remote, link)?))
        }
        None => {
            let s = Arc::new(Store::open(&cfg.data, cfg.store_options())?);
            (Some(s.clone()), s)
        }
    };

    let security = auth::prepare(&cfg, &store).await?;
    let gate = security.gate.clone();
    let store = metrics::MeteredStore::wrap(store);
    let (drain_tx, drain_rx) = watch::channel(false);
    let reload_task = cert_resolver.map(|r| listener::spawn_reloader(r, drain_rx.clone()));
    let sessions = Sessions::new();
    let _connections = metrics::Connections::register(&sessions);
    let faults = Arc::new(FaultLog::default());
    let renewer = Renewer::new(cfg.auto_renew_invisible_ms, cfg.auto_renew_max_ms);
    let renew_task = renewer.spawn(store.clone(), drain_rx.clone(), faults.clone());
    let proxy_admin = ProxyAdmin {
        sessions: sessions.clone(),
        proxy: addr.to_string(),
        client_expiry_ms: cfg.client_expiry_ms,
    };
    let messaging = Messaging::new(
        store.clone(),
        cfg.clone(),
        sessions,
        renewer,
        addr.to_string(),
        drain_rx.clone(),
        faults,
        security,
    );
    let auth_task = gate
        .enabled()
        .then(|| tokio::spawn(gate.clone().follow(store.clone(), drain_rx)));

    let relay_task = tokio::spawn(messaging.clone().relay_transaction_checks());
    let expiry_task = tokio::spawn(messaging.clone().expire_clients());
    // What a client request may take once decoded, checked before it is.
    let shapes = Arc::new(crate::shape::Shapes::of_protocol()?);
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<MessagingServiceServer<Messaging>>()
        .await;
    let reflection = node::reflection(&[
        "apache.rocketmq.v2.MessagingService",
        "pier.admin.v1.AdminService",
        "pier.admin.v1.ProxyAdminService",
    ])
    .build_v1()?;
    let reflection_alpha = node::reflection(&[
        "apache.rocketmq.v2.MessagingService",
        "pier.admin.v1.AdminService",
        "pier.admin.v1.ProxyAdminService",
    ])
    .build_v1alpha()?;

    match &cfg.store {
        Some(remote) => {
            tracing::info!(%addr, store = %remote, "pier-proxy listening (cluster mode)");
            if cfg.auth && cfg.cluster_secret.is_none() {
                tracing::warn!(
                    "--auth without --cluster-secret: the store node's port must then be \
                     unreachable to anybody but the proxies, as it serves users' secrets"
                );
            }
        }
        None => {
            tracing::info!(%addr, data = %cfg.data.display(), "pier-proxy listening (standalone, embedded store)")
        }
    }

    let stopped_by_poison = Arc::new(AtomicBool::new(false));
    let stop = {
        let embedded = embedded.clone();
        let poisoned = embedded.as_ref().map(|s| s.poisoned());
        let stopped_by_poison = stopped_by_poison.clone();
        async move {
            stop_signal(shutdown, poisoned, &stopped_by_poison).await;
            tracing::info!("draining: ending long polls and finishing in-flight calls");
            let _ = drain_tx.send(true);
            if let Some(s) = &embedded {
                s.drain();
            }
        }
    };
    let served = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(60)))
        // tonic leaves this unset, which lifts hyper's own limit: calls and
        // streams at once on one connection would be unbounded.
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .layer(layers::stack(gate))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(layers::messaging(messaging.clone(), shapes))
        .add_service(layers::admin(store.clone()))
        .add_service(layers::proxy_admin(proxy_admin))
        .add_optional_service(collector)
        .serve_with_incoming_shutdown(
            authority::filter_incoming(node::listener::accept(listener, listen_options)),
            stop,
        )
        .await;
    if let Some(t) = reload_task {
        // It ends with the drain; a server that failed never drained.
        if served.is_err() {
            t.abort();
        }
        let _ = t.await;
    }
    served?;
    let _ = renew_task.await;
    let _ = relay_task.await;
    let _ = expiry_task.await;
    if let Some(t) = auth_task {
        let _ = t.await;
    }
    messaging.finish().await;
    if let Some(f) = forwarder {
        // The server is gone, and its services with it: forward what is
        // still queued.
        f.shutdown().await;
    }
    if let Some(s) = embedded {
        s.shutdown();
    }
    if stopped_by_poison.load(Ordering::Acquire) {
        anyhow::bail!("stopped: the embedded store was poisoned by a failed write-ahead log write");
    }
    tracing::info!("pier-proxy stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_poisoned_store_stops_the_proxy_and_says_so() {
        let (poison, watched) = watch::channel(false);
        let by_poison = AtomicBool::new(false);
        let stop = stop_signal(std::future::pending(), Some(watched), &by_poison);
        tokio::pin!(stop);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut stop)
                .await
                .is_err(),
            "a healthy store keeps the proxy running"
        );
        poison.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), stop)
            .await
            .expect("the poison stops the proxy");
        assert!(by_poison.load(Ordering::Acquire));
    }

    #[tokio::test]
    async fn a_signal_stops_the_proxy_without_blame() {
        let (_poison, watched) = watch::channel(false);
        let by_poison = AtomicBool::new(false);
        stop_signal(async {}, Some(watched), &by_poison).await;
        assert!(!by_poison.load(Ordering::Acquire));
        // Cluster mode: no embedded store to watch.
        stop_signal(async {}, None, &by_poison).await;
        assert!(!by_poison.load(Ordering::Acquire));
    }
}
