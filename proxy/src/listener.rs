//! The client port's connection settings, from [`ProxyConfig`]: TLS (the
//! certificate, its reload task, `tls_required`) and the connection limit,
//! with one rate-limited WARN line per kind of refused connection. The
//! accepting itself is `pier_node::listener`; the `authority` filter then
//! sees the decrypted HTTP/2 bytes of either kind of connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pier_node::listener::{ListenOptions, Refusal};
use pier_node::tls::{self, CertResolver, TlsFiles};
use tokio::task::JoinHandle;

use crate::config::ProxyConfig;
use pier_node::throttle::RateLimiter;

/// At most one WARN line per kind of refused connection this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The listener options of `cfg`, and the certificate resolver to reload
/// (when TLS is on). Errors (one TLS file without the other, a certificate
/// that does not load, `tls_required` without TLS) stop the start.
pub fn options(cfg: &ProxyConfig) -> anyhow::Result<(ListenOptions, Option<Arc<CertResolver>>)> {
    let files = TlsFiles::from_options(cfg.tls_cert.clone(), cfg.tls_key.clone())?;
    if cfg.tls_required && files.is_none() {
        anyhow::bail!("tls_required needs tls_cert and tls_key");
    }
    if cfg.max_connections == 0 {
        anyhow::bail!("max_connections must be at least 1");
    }
    let resolver = files.map(CertResolver::load).transpose()?;
    let tls = resolver.as_ref().map(|r| r.server_config()).transpose()?;
    let limiter = Arc::new(RateLimiter::new(WARN_EVERY));
    let options = ListenOptions {
        tls,
        tls_required: cfg.tls_required,
        max_connections: cfg.max_connections,
        on_refusal: Some(Arc::new(move |r| log_refusal(&limiter, r))),
    };
    Ok((options, resolver))
}

/// The task reloading the certificate (see [`tls::spawn_reloader`]).
pub fn spawn_reloader(
    resolver: Arc<CertResolver>,
    mut drain: tokio::sync::watch::Receiver<bool>,
) -> JoinHandle<()> {
    tls::spawn_reloader(resolver, tls::POLL_EVERY, async move {
        let _ = drain.wait_for(|d| *d).await;
    })
}

fn log_refusal(limiter: &RateLimiter<&'static str>, refusal: Refusal) {
    let kind = match &refusal {
        Refusal::ConnectionLimit { .. } => "connection limit",
        Refusal::Plaintext { .. } => "plaintext refused",
    };
    let Some(suppressed) = limiter.admit(kind, Instant::now()) else {
        return;
    };
    match refusal {
        Refusal::ConnectionLimit { peer, limit } => tracing::warn!(
            %peer,
            limit,
            suppressed,
            "refused a client connection: max_connections are open (suppressed: like refusals left out since the last line)"
        ),
        Refusal::Plaintext { peer } => tracing::warn!(
            %peer,
            suppressed,
            "refused a plaintext client connection: tls_required is on (suppressed: like refusals left out since the last line)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_cannot_work_stop_the_start() {
        let base = ProxyConfig::default;
        let tls_required = ProxyConfig {
            tls_required: true,
            ..base()
        };
        let e = options(&tls_required).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("tls_required needs tls_cert and tls_key")
        );
        let half = ProxyConfig {
            tls_cert: Some("c.pem".into()),
            ..base()
        };
        assert!(options(&half).is_err());
        let missing = ProxyConfig {
            tls_cert: Some("/nonexistent/c.pem".into()),
            tls_key: Some("/nonexistent/k.pem".into()),
            ..base()
        };
        let e = options(&missing).err().map(|e| format!("{e:#}"));
        assert!(e.is_some_and(|e| e.contains("cannot read certificate")));
        let zero = ProxyConfig {
            max_connections: 0,
            ..base()
        };
        assert!(options(&zero).is_err());
        let from_file: ProxyConfig = toml::from_str(
            "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\ntls_required = true\n\
             max_connections = 5\nstore_tls_ca = \"ca.pem\"\n",
        )
        .unwrap();
        assert_eq!(from_file.tls_key.as_deref(), Some("k.pem".as_ref()));
        assert!(from_file.tls_required);
        assert_eq!(from_file.max_connections, 5);
        assert_eq!(from_file.store_tls_ca.as_deref(), Some("ca.pem".as_ref()));
        let (plain, resolver) = options(&base()).unwrap();
        assert!(plain.tls.is_none() && resolver.is_none());
        assert_eq!(plain.max_connections, 10_000);
    }
}
