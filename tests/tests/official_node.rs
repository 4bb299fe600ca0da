//! The official RocketMQ 5 Node.js client (`rocketmq-client-nodejs` 1.0.8 from
//! npm) against Pier in the four deployments of `four_modes!` (in a cluster, through its first proxy):
//! the scripts tests/node/{normal,types}.js do the work and print one JSON
//! summary line, which is checked here. The client
//! is installed by `tests/scripts/setup-tools.sh` (run from here) under
//! `$PIER_TOOLS_DIR/node`; the scripts find it through `NODE_PATH`.

use std::time::Instant;

use pier_proto::admin::TopicType;
use pier_tests::external::*;
use pier_tests::*;
use pier_tests::{four_modes, Mode};

async fn node_producer_and_simple_consumer(mode: Mode) {
    let tools = ensure_tools();
    let pier = Pier::start(mode, &[]).await;
    let (ep, c) = (pier.raw.endpoint.clone(), pier.raw.clone());
    c.create_topic("node-orders", 4).await;
    c.create_group("node-simple", 17).await;

    let started = Instant::now();
    let out = pier
        .node(
            &tools,
            "normal.js",
            args(&[
                "--endpoint",
                &ep,
                "--topic",
                "node-orders",
                "--group",
                "node-simple",
                "--count",
                "500",
                "--prefix",
                "node",
                "--timeout",
                "120",
            ]),
        )
        .await;
    let r = summary_ok(&out, "normal.js");
    eprintln!("normal.js: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(r["sent"], 500, "{r}");
    assert_eq!(r["received"], 500, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_eq!(r["missing"], 0, "{r}");
    assert_drained(&c, "node-simple").await;
}

async fn node_fifo_push_consumer_in_order(mode: Mode) {
    let tools = ensure_tools();
    let pier = Pier::start(mode, &[]).await;
    let (ep, c) = (pier.raw.endpoint.clone(), pier.raw.clone());
    c.create_typed_topic("node-fifo", TopicType::Fifo, 4).await;
    c.create_fifo_group("node-fifo-group", 0).await;

    let out = pier
        .node(
            &tools,
            "types.js",
            args(&[
                "--case",
                "fifo",
                "--endpoint",
                &ep,
                "--topic",
                "node-fifo",
                "--group",
                "node-fifo-group",
                "--groups",
                "8",
                "--count",
                "25",
                "--timeout",
                "120",
            ]),
        )
        .await;
    let r = summary_ok(&out, "types.js fifo");
    assert_eq!(r["received"], 200, "{r}");
    assert_eq!(r["out_of_order"], 0, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    // The client picked its FIFO consume service from Settings: one message
    // of a group at a time.
    assert_eq!(r["max_inflight_per_group"], 1, "{r}");
    assert_drained(&c, "node-fifo-group").await;
}

async fn node_delay_messages_wait_for_their_timestamp(mode: Mode) {
    let tools = ensure_tools();
    let pier = Pier::start(mode, &[]).await;
    let (ep, c) = (pier.raw.endpoint.clone(), pier.raw.clone());
    c.create_typed_topic("node-delay", TopicType::Delay, 4)
        .await;
    c.create_group("node-delay-group", 17).await;

    let out = pier
        .node(
            &tools,
            "types.js",
            args(&[
                "--case",
                "delay",
                "--endpoint",
                &ep,
                "--topic",
                "node-delay",
                "--group",
                "node-delay-group",
                "--count",
                "20",
                "--delay",
                "3000",
                "--timeout",
                "90",
            ]),
        )
        .await;
    let r = summary_ok(&out, "types.js delay");
    assert_eq!(r["received"], 20, "{r}");
    assert_eq!(r["early"], 0, "{r}");
    assert_eq!(r["wrong_timestamp"], 0, "{r}");
    assert!(r["max_late_ms"].as_f64().unwrap() < 10_000.0, "{r}");
    assert_drained(&c, "node-delay-group").await;
}

async fn node_transactions_commit_rollback_orphan(mode: Mode) {
    let tools = ensure_tools();
    let pier = Pier::start(mode, &[]).await;
    let (ep, c) = (pier.raw.endpoint.clone(), pier.raw.clone());
    c.create_typed_topic("node-tx", TopicType::Transaction, 4)
        .await;
    c.create_group("node-tx-group", 17).await;

    let out = pier
        .node(
            &tools,
            "types.js",
            args(&[
                "--case",
                "transaction",
                "--endpoint",
                &ep,
                "--topic",
                "node-tx",
                "--group",
                "node-tx-group",
                "--count",
                "20",
                "--orphans",
                "2",
                "--timeout",
                "90",
            ]),
        )
        .await;
    let r = summary_ok(&out, "types.js transaction");
    assert_eq!(r["committed"], 10, "{r}");
    assert_eq!(r["rolled_back"], 10, "{r}");
    // Only the committed half and the two orphans (committed by the checker
    // when the server asked) are delivered, each once.
    assert_eq!(r["received"], 12, "{r}");
    assert!(r["orphan_checks"].as_u64().unwrap() >= 2, "{r}");
    assert_eq!(r["unexpected"], 0, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_drained(&c, "node-tx-group").await;
}

four_modes!(
    node_producer_and_simple_consumer,
    node_fifo_push_consumer_in_order,
    node_delay_messages_wait_for_their_timestamp,
    node_transactions_commit_rollback_orphan,
);
