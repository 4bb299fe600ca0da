//! Building and running tests/rust-client, the driver of the official
//! RocketMQ 5 Rust crate (`rocketmq` 5.0.0); see tests/tests/e2e/official_rust.rs
//! for why it is a crate of its own. Used by every test that runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

/// Builds tests/rust-client (once per test process) and returns its binary.
pub fn rust_client() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let target = std::env::var_os("PIER_RUST_CLIENT_TARGET")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                    .join(".cache/pier-rust-client-target")
            });
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("rust-client/Cargo.toml");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let started = Instant::now();
        let mut cmd = Command::new(cargo);
        // Drop the CARGO_* variables cargo set for this test process (package
        // name, manifest dir, ...): build scripts such as ring's rerun when
        // they differ, which would make every build here a cold one.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("CARGO_") && k != "CARGO_HOME" {
                cmd.env_remove(&key);
            }
        }
        let status = cmd
            .args(["build", "--release", "--manifest-path"])
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", &target)
            .stdin(Stdio::null())
            .status()
            .expect("run cargo build for tests/rust-client");
        assert!(
            status.success(),
            "building tests/rust-client (rocketmq 5.0.0) failed: {status}"
        );
        eprintln!(
            "rust-client build: {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let bin = target.join("release/rust-client");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
    .clone()
}

/// Runs the rust-client binary off the async runtime.
pub async fn run_client(args: Vec<String>) -> Output {
    run_client_env(args, None).await
}

/// [`run_client`] with `SSL_CERT_FILE` set: the crate's TLS (tonic 0.9,
/// rustls-native-certs 0.6) then trusts exactly the roots in that file.
pub async fn run_client_env(args: Vec<String>, ssl_cert_file: Option<PathBuf>) -> Output {
    let bin = rust_client();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(bin);
        if let Some(roots) = ssl_cert_file {
            cmd.env("SSL_CERT_FILE", roots);
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run rust-client")
    })
    .await
    .expect("rust-client task")
}
