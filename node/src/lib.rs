//! What a Pier node binary needs around its services, shared by `pier-store`
//! and `pier-proxy`: TOML config files, logging from `RUST_LOG`, the
//! shutdown signal, gRPC server reflection and the TCP listener ([`listener`]:
//! connection limit, plaintext and TLS on one port) with its certificates
//! ([`tls`]: loading, reloading). None of it is store or proxy logic, so it
//! lives here, beside the binaries, and never pulls in RocksDB.

pub mod listener;
pub mod tls;

use std::path::Path;

use serde::de::DeserializeOwned;

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
