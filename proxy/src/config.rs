//! Proxy settings: a TOML file, overridden by flags and environment
//! (see `bin/pier-proxy.rs`). Every field has a default that just works.

use std::path::PathBuf;

use pier_store::{CheckPolicy, FlushMode};

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Address of the client-facing gRPC port.
    pub listen: String,
    /// Standalone mode: data directory of the embedded store.
    pub data: PathBuf,
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
    /// share it, so any proxy accepts a handle another one issued.
    pub receipt_secret: String,
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
    pub txn_check_backoff: u32,
    pub txn_max_check_interval_ms: u64,
    pub txn_max_checks: u32,
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
}

impl ProxyConfig {
    pub fn txn_checks(&self) -> CheckPolicy {
        CheckPolicy {
            first_check_ms: self.txn_first_check_ms,
            backoff_factor: self.txn_check_backoff,
            max_interval_ms: self.txn_max_check_interval_ms,
            max_checks: self.txn_max_checks,
        }
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: "0.0.0.0:8081".into(),
            data: PathBuf::from("./pier-data"),
            store: None,
            flush: FlushMode::Sync,
            ack_flush: FlushMode::Sync,
            retention_hours: 72,
            receipt_secret: "pier-development-receipt-secret".into(),
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
            tls_cert: None,
            tls_key: None,
            tls_required: false,
            max_connections: 10_000,
            store_tls_ca: None,
        }
    }
}
