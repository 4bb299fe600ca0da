//! What a proxy asks its store before it serves: the first admin user
//! (created or updated from the config), the receipt-handle key (unless
//! the config sets one) and, with auth on, the users and rules.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pier_proto::admin::CreateUserRequest;
use pier_proto::store::ReceiptSecretRequest;
use pier_store::auth::Secret;
use pier_store::{StoreApi, StoreError};

use super::Gate;
use crate::config::ProxyConfig;
use crate::service::Security;

/// How long a starting proxy waits for its store to answer.
const STORE_WAIT: Duration = Duration::from_secs(60);

/// Runs `call` until the store answers (it may still be starting), for at
/// most [`STORE_WAIT`]. Errors of the request itself are not retried.
async fn when_store_answers<T, F, Fut>(what: &str, mut call: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let start = Instant::now();
    let mut warned = false;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e @ (StoreError::Unavailable { .. } | StoreError::ShuttingDown))
                if start.elapsed() < STORE_WAIT =>
            {
                if !warned {
                    tracing::warn!(error = %e.report(), "waiting for the store before {what}");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => anyhow::bail!("{what}: {}", e.report()),
        }
    }
}

/// Prepares the proxy's security from its config and its store.
pub async fn prepare(cfg: &ProxyConfig, store: &Arc<dyn StoreApi>) -> anyhow::Result<Security> {
    match (&cfg.admin_user, &cfg.admin_secret) {
        (Some(name), Some(secret)) => {
            let req = CreateUserRequest {
                name: name.clone(),
                secret: secret.expose().to_owned(),
                admin: true,
            };
            let r =
                when_store_answers("creating the admin user", || store.create_user(req.clone()))
                    .await?;
            tracing::info!(user = %name, created = r.created, "admin user ready");
        }
        (Some(_), None) | (None, Some(_)) => {
            anyhow::bail!("admin_user and admin_secret must be set together")
        }
        (None, None) => {}
    }
    let receipt_key = match &cfg.receipt_secret {
        Some(s) => Secret::new(s.expose().as_bytes().to_vec()),
        None => Secret::new(
            when_store_answers("fetching the receipt key", || {
                store.receipt_secret(ReceiptSecretRequest {})
            })
            .await?
            .secret,
        ),
    };
    let gate = Gate::new(cfg.auth, cfg.auth_local_time_dates);
    if cfg.auth {
        when_store_answers("loading users and ACL rules", || gate.load(store.as_ref())).await?;
        tracing::info!(
            local_time_dates = cfg.auth_local_time_dates,
            "authentication on: every call must be signed by a user of the store"
        );
    }
    Ok(Security { gate, receipt_key })
}
