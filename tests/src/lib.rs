//! Harness for Pier's end-to-end tests: starts real `pier-store` and
//! `pier-proxy` processes on ephemeral 127.0.0.1 ports with temporary data
//! directories, and stops them when dropped.
//!
//! The binaries are the workspace's own build (`cargo build --workspace
//! --bins`, which `.ci/run` does before testing).
//!
//! Modules: [`node`] (the processes), [`raw`] (a raw gRPC client and
//! message helpers), [`deploy`] (a Pier in either mode, [`both_modes!`]),
//! [`tools`] (installing the external tools), [`external`] (running the
//! official clients), [`go`] and [`java`] (the Go and Java scenario
//! programs), [`prometheus`] (metrics pages and a real Prometheus), [`otlp`] (an OTLP
//! metrics receiver), [`fleet`] (two proxies behind nginx, killed and restarted),
//! [`tls`] (test certificates, TLS connections), [`sdk`] (Pier's own SDK).

pub mod deploy;
pub mod external;
pub mod fleet;
pub mod go;
pub mod java;
pub mod node;
pub mod otlp;
pub mod prometheus;
pub mod raw;
pub mod rust_client;
pub mod sdk;
pub mod signing;
pub mod tls;
pub mod tools;

pub use deploy::{Client, Mode, Pier};
pub use node::{bin, bin_dir, run_to_exit, Node};
pub use raw::{attempt, body, handle, message, message_with_id, millis, resource, Raw};
/// For [`assert_fields!`].
pub use serde_json;
pub use tools::{ensure_tools, run_ok, setup_once, stdout_ok, tools_dir};
