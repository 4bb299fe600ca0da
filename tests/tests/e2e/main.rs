//! Pier's end-to-end tests: real `pier-proxy` / `pier-store` processes, the
//! official clients, grpcurl, nginx, Prometheus and the `pier` CLI. One test
//! binary (one link, one set of shared tool installs per run), one module
//! per concern; each module's own comment says what it covers. Most
//! scenarios are written once and run in several deployments through
//! `both_modes!` / `four_modes!` (tests named `scenario::standalone`,
//! `scenario::cluster`, ...).
//!
//! Run one area: `cargo test --workspace --test e2e fifo::`; build the
//! binaries first (`cargo build --workspace --bins`).

// The protocol's paths through Pier.
mod clients;
mod consume;
mod delay;
mod fifo;
mod lifecycle;
mod transactions;

// Bad input, limits and crashes.
mod bad_input;
mod crash;
mod fuzz;
mod limits;
mod reliability;

// The official clients (Python, Node.js, Go, Java, Rust) and Pier's SDK.
mod official_clients;
mod official_go;
mod official_java;
mod official_mixed;
mod official_node;
mod official_rust;
mod official_tls;
mod official_types;
mod sdk;

// Fleet and security.
mod auth;
mod auth_official;
mod authority;
mod fleet;
mod store_link;
mod tls;

// Observability and operations.
mod cli;
mod client_metrics;
mod metrics;
mod operations;
mod traces;
