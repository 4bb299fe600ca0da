//! Proxy settings: a TOML file, overridden by flags and environment
//! (see `bin/pier-proxy.rs`). Every field has a default that just works.

use std::path::PathBuf;

use pier_store::FlushMode;

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Address of the client-facing gRPC port.
    pub listen: String,
    /// Standalone mode: data directory of the embedded store.
    pub data: PathBuf,
    /// Cluster mode: address of the store node. When set, `data` is unused.
    pub store: Option<String>,
    /// Flush mode of the embedded store.
    pub flush: FlushMode,
    /// Hours the embedded store keeps a message (0: forever).
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
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: "0.0.0.0:8081".into(),
            data: PathBuf::from("./pier-data"),
            store: None,
            flush: FlushMode::Sync,
            retention_hours: 72,
            receipt_secret: "pier-development-receipt-secret".into(),
            auto_create: false,
            max_body_size: 4 * 1024 * 1024,
            max_delay_ms: 40 * 24 * 3600 * 1000,
            auto_renew_invisible_ms: 60_000,
            auto_renew_max_ms: 3 * 3600 * 1000,
            max_long_poll_ms: 20_000,
        }
    }
}
