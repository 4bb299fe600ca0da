//! What a Pier node binary needs around its services: TOML config files,
//! logging from `RUST_LOG`, and the shutdown signal. Shared by `pier-store`
//! and `pier-proxy`.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::commit::FlushMode;
use crate::txn::{self, CheckPolicy};

/// Settings of a `pier-store` node. Every field has a working default.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreNodeConfig {
    pub listen: String,
    pub data: PathBuf,
    pub flush: FlushMode,
    /// Hours a message is kept (0 keeps messages forever).
    pub retention_hours: u64,
    /// Transaction checks: see [`CheckPolicy`].
    pub txn_first_check_ms: u64,
    pub txn_check_backoff: u32,
    pub txn_max_check_interval_ms: u64,
    pub txn_max_checks: u32,
}

impl StoreNodeConfig {
    pub fn txn_checks(&self) -> CheckPolicy {
        CheckPolicy {
            first_check_ms: self.txn_first_check_ms,
            backoff_factor: self.txn_check_backoff,
            max_interval_ms: self.txn_max_check_interval_ms,
            max_checks: self.txn_max_checks,
        }
    }
}

impl Default for StoreNodeConfig {
    fn default() -> Self {
        StoreNodeConfig {
            listen: "0.0.0.0:8091".into(),
            data: PathBuf::from("./pier-store-data"),
            flush: FlushMode::Sync,
            retention_hours: 72,
            txn_first_check_ms: txn::DEFAULT_CHECK_AFTER_MS,
            txn_check_backoff: txn::DEFAULT_CHECK_BACKOFF,
            txn_max_check_interval_ms: txn::MAX_CHECK_INTERVAL_MS,
            txn_max_checks: txn::MAX_CHECKS,
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
    pub fn any_set(&self) -> bool {
        self.txn_first_check_ms.is_some()
            || self.txn_check_backoff.is_some()
            || self.txn_max_check_interval_ms.is_some()
            || self.txn_max_checks.is_some()
    }

    /// Overrides the settings the flags give.
    pub fn apply(
        &self,
        first_check_ms: &mut u64,
        backoff: &mut u32,
        max_interval_ms: &mut u64,
        max_checks: &mut u32,
    ) {
        if let Some(v) = self.txn_first_check_ms {
            *first_check_ms = v;
        }
        if let Some(v) = self.txn_check_backoff {
            *backoff = v;
        }
        if let Some(v) = self.txn_max_check_interval_ms {
            *max_interval_ms = v;
        }
        if let Some(v) = self.txn_max_checks {
            *max_checks = v;
        }
    }
}

/// Reads a TOML config file, or the defaults when no file is given.
pub fn load_config<T: DeserializeOwned + Default>(path: Option<&Path>) -> anyhow::Result<T> {
    match path {
        None => Ok(T::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", p.display()))?;
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("bad config {}: {e}", p.display()))
        }
    }
}

/// Tunes glibc malloc, which RocksDB (C++) allocates through: the Rust side
/// uses mimalloc, but block-cache blocks and memtable arenas come and go by
/// megabytes, and glibc's defaults hand freed memory straight back to the
/// kernel (arena blocks above 128 KiB are their own mappings; the heap top
/// is trimmed past 128 KiB), so it is faulted in and zeroed again: about 6%
/// of the proxy's CPU (`clear_page_erms` under `sysmalloc`) while draining a
/// 1,000,000-message backlog. Called first thing by the node binaries.
pub fn tune_c_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters, under glibc's own
    // locks; no pointer is involved.
    unsafe {
        // Arena blocks (1 MiB) on the heap, where a freed one is reused.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        // Keep up to 64 MiB of free heap top instead of trimming it.
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown signal received");
}

/// Server reflection (for grpcurl `list` / `describe`) listing exactly the
/// services a node serves, plus health and reflection itself.
pub fn reflection(services: &[&str]) -> tonic_reflection::server::Builder<'static> {
    let mut b = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pier_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health");
    for s in services {
        b = b.with_service_name(*s);
    }
    b
}

/// The incoming connections of a bound listener, with Nagle's algorithm off:
/// request/response RPCs otherwise stall on delayed ACKs (tens of ms each).
pub fn incoming(
    listener: tokio::net::TcpListener,
) -> anyhow::Result<tonic::transport::server::TcpIncoming> {
    tonic::transport::server::TcpIncoming::from_listener(
        listener,
        true,
        Some(std::time::Duration::from_secs(60)),
    )
    .map_err(|e| anyhow::anyhow!("listener: {e}"))
}
