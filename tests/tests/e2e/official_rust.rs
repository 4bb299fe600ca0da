//! The official RocketMQ 5 Rust crate (`rocketmq = "=5.0.0"` from crates.io)
//! against Pier in the four deployments of `four_modes!` (in a cluster, through its first proxy). The
//! crate is driven by the standalone binary crate tests/rust-client (not a
//! workspace member: it pins tonic 0.9 / prost 0.11 and needs the `time`
//! local-offset workaround, see shared/protocol.md §6.3), built here with its
//! own target directory (`$PIER_RUST_CLIENT_TARGET`, default
//! `$HOME/.cache/pier-rust-client-target`; incremental when warm). It prints
//! one JSON summary line, checked here.

use pier_proto::admin::TopicType::{Delay, Fifo, Normal, Transaction};
use pier_tests::external::*;
use pier_tests::rust_client::run_client_env;
use pier_tests::*;
use pier_tests::{four_modes, Mode};

async fn rust_producer_and_simple_consumer(mode: Mode) {
    let line = "--case normal --topic rust-orders --group rust-simple --count 200 --timeout 120";
    let (pier, r) = Pier::scenario(mode, Client::Rust, (Normal, 4), line).await;
    assert_fields!(r, {
        "sent": 200, "unique_ids": 200, "received": 200, "duplicates": 0, "missing": 0, "extra": 0
    });
    assert_drained(&pier.raw, "rust-simple").await;
}

async fn rust_fifo_messages_in_group_order(mode: Mode) {
    let line = "--case fifo --topic rust-fifo --group rust-fifo-group --count 100 --groups 4 \
                --timeout 120";
    let (pier, r) = Pier::scenario(mode, Client::Rust, (Fifo, 4), line).await;
    assert_fields!(r, {"received": 100, "out_of_order": 0, "duplicates": 0, "wrong_group": 0});
    assert_drained(&pier.raw, "rust-fifo-group").await;
}

async fn rust_delay_messages_wait_for_their_timestamp(mode: Mode) {
    let line = "--case delay --topic rust-delay --group rust-delay-group --count 20 --delay 3 \
                --timeout 90";
    let (pier, r) = Pier::scenario(mode, Client::Rust, (Delay, 4), line).await;
    assert!(r["max_late_ms"].as_i64().unwrap() < 10_000, "{r}");
    assert_fields!(r, {"received": 20, "early": 0, "wrong_timestamp": 0});
    assert_drained(&pier.raw, "rust-delay-group").await;
}

async fn rust_transactions_commit_and_rollback(mode: Mode) {
    let line = "--case transaction --topic rust-tx --group rust-tx-group --count 20 --timeout 90";
    let (pier, r) = Pier::scenario(mode, Client::Rust, (Transaction, 4), line).await;
    assert_fields!(r, {
        "committed": 10, "rolled_back": 10, "received": 10, "unexpected": 0, "duplicates": 0,
        "extra": 0
    });
    assert_drained(&pier.raw, "rust-tx-group").await;
}

four_modes!(
    rust_producer_and_simple_consumer,
    rust_fifo_messages_in_group_order,
    rust_delay_messages_wait_for_their_timestamp,
    rust_transactions_commit_and_rollback,
);

/// The crate with its TLS on (`ClientOption::set_enable_tls(true)`: an
/// `https` endpoint with the system's roots) against a standalone Pier that
/// requires TLS, trusting the test CA through `SSL_CERT_FILE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_crate_with_tls() {
    let t = pier_tests::tls::TlsPier::start("rust-crate", "rust-tls", "rust-tls-g").await;
    let (ep, c) = (t.c.endpoint.clone(), &t.c);
    let line = "--case normal --topic rust-tls --group rust-tls-g --count 50 --timeout 120";
    let out = run_client_env(
        cli(&format!("{line} --endpoint {ep} --tls true")),
        Some(t.pki.ca.clone()),
    )
    .await;
    let r = summary_ok(&out, "rust-client normal over TLS");
    assert_fields!(r, {"sent": 50, "received": 50, "duplicates": 0});
    assert_drained(c, "rust-tls-g").await;
}
