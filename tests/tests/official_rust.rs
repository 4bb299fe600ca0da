//! The official RocketMQ 5 Rust crate (`rocketmq = "=5.0.0"` from crates.io)
//! against Pier in the four deployments of `four_modes!` (in a cluster, through its first proxy). The
//! crate is driven by the standalone binary crate tests/rust-client (not a
//! workspace member: it pins tonic 0.9 / prost 0.11 and needs the `time`
//! local-offset workaround, see shared/protocol.md §6.3), built here with its
//! own target directory (`$PIER_RUST_CLIENT_TARGET`, default
//! `$HOME/.cache/pier-rust-client-target`; incremental when warm). It prints
//! one JSON summary line, checked here.

use std::time::Instant;

use pier_proto::admin::TopicType;
use pier_tests::external::*;
use pier_tests::rust_client::run_client_env;
use pier_tests::*;
use pier_tests::{four_modes, Mode};

async fn rust_producer_and_simple_consumer(mode: Mode) {
    let pier = Pier::start(mode, &[]).await;
    let (ep, c) = (pier.raw.endpoint.clone(), pier.raw.clone());
    c.create_topic("rust-orders", 4).await;
    c.create_group("rust-simple", 17).await;

    let started = Instant::now();
    let out = pier
        .rust_client(args(&[
            "--case",
            "normal",
            "--endpoint",
            &ep,
            "--topic",
            "rust-orders",
            "--group",
            "rust-simple",
            "--count",
            "200",
            "--timeout",
            "120",
        ]))
        .await;
    let r = summary_ok(&out, "rust-client normal");
    eprintln!("normal: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(r["sent"], 200, "{r}");
    assert_eq!(r["unique_ids"], 200, "{r}");
    assert_eq!(r["received"], 200, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_eq!(r["missing"], 0, "{r}");
    assert_eq!(r["extra"], 0, "{r}");
    assert_drained(&c, "rust-simple").await;
}

async fn rust_fifo_messages_in_group_order(mode: Mode) {
    let pier = Pier::start(mode, &[]).await;
    let (ep, c) = (pier.raw.endpoint.clone(), pier.raw.clone());
    c.create_typed_topic("rust-fifo", TopicType::Fifo, 4).await;
    c.create_fifo_group("rust-fifo-group", 0).await;

    let started = Instant::now();
    let out = pier
        .rust_client(args(&[
            "--case",
            "fifo",
            "--endpoint",
            &ep,
            "--topic",
            "rust-fifo",
            "--group",
            "rust-fifo-group",
            "--count",
            "100",
            "--groups",
            "4",
            "--timeout",
            "120",
        ]))
        .await;
    let r = summary_ok(&out, "rust-client fifo");
    eprintln!("fifo: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(r["received"], 100, "{r}");
    assert_eq!(r["out_of_order"], 0, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_eq!(r["wrong_group"], 0, "{r}");
    assert_drained(&c, "rust-fifo-group").await;
}

async fn rust_delay_messages_wait_for_their_timestamp(mode: Mode) {
    let pier = Pier::start(mode, &[]).await;
    let (ep, c) = (pier.raw.endpoint.clone(), pier.raw.clone());
    c.create_typed_topic("rust-delay", TopicType::Delay, 4)
        .await;
    c.create_group("rust-delay-group", 17).await;

    let started = Instant::now();
    let out = pier
        .rust_client(args(&[
            "--case",
            "delay",
            "--endpoint",
            &ep,
            "--topic",
            "rust-delay",
            "--group",
            "rust-delay-group",
            "--count",
            "20",
            "--delay",
            "3",
            "--timeout",
            "90",
        ]))
        .await;
    let r = summary_ok(&out, "rust-client delay");
    eprintln!("delay: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(r["received"], 20, "{r}");
    assert_eq!(r["early"], 0, "{r}");
    assert_eq!(r["wrong_timestamp"], 0, "{r}");
    assert!(r["max_late_ms"].as_i64().unwrap() < 10_000, "{r}");
    assert_drained(&c, "rust-delay-group").await;
}

async fn rust_transactions_commit_and_rollback(mode: Mode) {
    let pier = Pier::start(mode, &[]).await;
    let (ep, c) = (pier.raw.endpoint.clone(), pier.raw.clone());
    c.create_typed_topic("rust-tx", TopicType::Transaction, 4)
        .await;
    c.create_group("rust-tx-group", 17).await;

    let started = Instant::now();
    let out = pier
        .rust_client(args(&[
            "--case",
            "transaction",
            "--endpoint",
            &ep,
            "--topic",
            "rust-tx",
            "--group",
            "rust-tx-group",
            "--count",
            "20",
            "--timeout",
            "90",
        ]))
        .await;
    let r = summary_ok(&out, "rust-client transaction");
    eprintln!("transaction: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(r["committed"], 10, "{r}");
    assert_eq!(r["rolled_back"], 10, "{r}");
    assert_eq!(r["received"], 10, "{r}");
    assert_eq!(r["unexpected"], 0, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_eq!(r["extra"], 0, "{r}");
    assert_drained(&c, "rust-tx-group").await;
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
    let pki = pier_tests::tls::TestPki::new("rust-crate");
    let data = tempfile::tempdir().unwrap();
    let flags = pki.flags();
    let mut node_args: Vec<&str> = flags.iter().map(String::as_str).collect();
    node_args.push("--tls-required");
    let node = Node::standalone_with(data.path(), &node_args);
    let ep = node.endpoint();
    let channel = pier_tests::tls::tls_channel(&ep, &pki.ca_pem())
        .await
        .unwrap();
    let c = Raw::over(&ep, channel);
    c.create_topic("rust-tls", 2).await;
    c.create_group("rust-tls-g", 17).await;
    let out = run_client_env(
        args(&[
            "--case",
            "normal",
            "--endpoint",
            &ep,
            "--topic",
            "rust-tls",
            "--group",
            "rust-tls-g",
            "--count",
            "50",
            "--timeout",
            "120",
            "--tls",
            "true",
        ]),
        Some(pki.ca.clone()),
    )
    .await;
    let r = summary_ok(&out, "rust-client normal over TLS");
    assert_eq!(r["sent"], 50, "{r}");
    assert_eq!(r["received"], 50, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_drained(&c, "rust-tls-g").await;
}
