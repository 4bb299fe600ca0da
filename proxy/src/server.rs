//! Assembles a proxy: the store it talks to (embedded or remote), the
//! client-facing services on one port, background tasks, and the graceful
//! stop (stop accepting, end long polls, finish in-flight calls, flush).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use pier_node as node;
use pier_proto::admin::admin_service_server::AdminServiceServer;
use pier_proto::rocketmq::messaging_service_server::MessagingServiceServer;
use pier_store::{AdminEndpoint, RemoteStore, Store, StoreApi, StoreOptions, MAX_GRPC_MESSAGE};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::authority;
use crate::config::ProxyConfig;
use crate::renew::Renewer;
use crate::service::Messaging;
use crate::session::Sessions;

/// Runs a proxy on `listener` until `shutdown` resolves.
pub async fn serve(
    cfg: ProxyConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    let addr: SocketAddr = listener.local_addr()?;
    let (embedded, store): (Option<Arc<Store>>, Arc<dyn StoreApi>) = match &cfg.store {
        Some(remote) => (None, Arc::new(RemoteStore::connect(remote)?)),
        None => {
            let s = Arc::new(Store::open(
                &cfg.data,
                StoreOptions {
                    flush: cfg.flush,
                    ack_flush: cfg.ack_flush,
                    retention_ms: cfg.retention_hours.saturating_mul(3600 * 1000),
                    txn_checks: cfg.txn_checks(),
                },
            )?);
            (Some(s.clone()), s)
        }
    };

    let (drain_tx, drain_rx) = watch::channel(false);
    let sessions = Sessions::new();
    let renewer = Renewer::new(cfg.auto_renew_invisible_ms, cfg.auto_renew_max_ms);
    let renew_task = renewer.spawn(store.clone(), drain_rx.clone());
    let messaging = Messaging::new(
        store.clone(),
        cfg.clone(),
        sessions,
        renewer,
        addr.to_string(),
        drain_rx,
    );

    let relay_task = tokio::spawn(messaging.clone().relay_transaction_checks());
    let (mut health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<MessagingServiceServer<Messaging>>()
        .await;
    let reflection = node::reflection(&[
        "apache.rocketmq.v2.MessagingService",
        "pier.admin.v1.AdminService",
    ])
    .build_v1()?;
    let reflection_alpha = node::reflection(&[
        "apache.rocketmq.v2.MessagingService",
        "pier.admin.v1.AdminService",
    ])
    .build_v1alpha()?;

    match &cfg.store {
        Some(remote) => {
            tracing::info!(%addr, store = %remote, "pier-proxy listening (cluster mode)")
        }
        None => {
            tracing::info!(%addr, data = %cfg.data.display(), "pier-proxy listening (standalone, embedded store)")
        }
    }

    let stop = {
        let embedded = embedded.clone();
        async move {
            shutdown.await;
            tracing::info!("draining: ending long polls and finishing in-flight calls");
            let _ = drain_tx.send(true);
            if let Some(s) = &embedded {
                s.drain();
            }
        }
    };
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(60)))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(
            MessagingServiceServer::new(messaging)
                .max_decoding_message_size(MAX_GRPC_MESSAGE)
                .max_encoding_message_size(MAX_GRPC_MESSAGE),
        )
        .add_service(AdminServiceServer::new(AdminEndpoint(store.clone())))
        .serve_with_incoming_shutdown(authority::filter_incoming(node::incoming(listener)?), stop)
        .await?;
    let _ = renew_task.await;
    let _ = relay_task.await;
    if let Some(s) = embedded {
        s.shutdown();
    }
    tracing::info!("pier-proxy stopped");
    Ok(())
}
