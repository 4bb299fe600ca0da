//! The official RocketMQ 5 Node.js client (`rocketmq-client-nodejs` 1.0.8 from
//! npm) against Pier in the four deployments of `four_modes!` (in a cluster, through its first proxy):
//! the scripts tests/node/{normal,types}.js do the work and print one JSON
//! summary line, which is checked here. The client
//! is installed by `tests/scripts/setup-tools.sh` (run from here) under
//! `$PIER_TOOLS_DIR/node`; the scripts find it through `NODE_PATH`.

use pier_proto::admin::TopicType::{Delay, Fifo, Normal, Transaction};
use pier_tests::assert_fields;
use pier_tests::external::*;
use pier_tests::{four_modes, Client, Mode, Pier};

async fn node_producer_and_simple_consumer(mode: Mode) {
    let line = "normal.js --topic node-orders --group node-simple --count 500 --prefix node \
                --timeout 120";
    let (pier, r) = Pier::scenario(mode, Client::Node, (Normal, 4), line).await;
    assert_fields!(r, {"sent": 500, "received": 500, "duplicates": 0, "missing": 0});
    assert_drained(&pier.raw, "node-simple").await;
}

async fn node_fifo_push_consumer_in_order(mode: Mode) {
    let line = "types.js --case fifo --topic node-fifo --group node-fifo-group --groups 8 \
                --count 25 --timeout 120";
    let (pier, r) = Pier::scenario(mode, Client::Node, (Fifo, 4), line).await;
    assert_fields!(r, {"received": 200, "out_of_order": 0, "duplicates": 0});
    // The client picked its FIFO consume service from Settings: one message
    // of a group at a time.
    assert_eq!(r["max_inflight_per_group"], 1, "{r}");
    assert_drained(&pier.raw, "node-fifo-group").await;
}

async fn node_delay_messages_wait_for_their_timestamp(mode: Mode) {
    let line = "types.js --case delay --topic node-delay --group node-delay-group --count 20 \
                --delay 3000 --timeout 90";
    let (pier, r) = Pier::scenario(mode, Client::Node, (Delay, 4), line).await;
    assert!(r["max_late_ms"].as_f64().unwrap() < 10_000.0, "{r}");
    assert_fields!(r, {"received": 20, "early": 0, "wrong_timestamp": 0});
    assert_drained(&pier.raw, "node-delay-group").await;
}

async fn node_transactions_commit_rollback_orphan(mode: Mode) {
    let line = "types.js --case transaction --topic node-tx --group node-tx-group --count 20 \
                --orphans 2 --timeout 90";
    let (pier, r) = Pier::scenario(mode, Client::Node, (Transaction, 4), line).await;
    assert_fields!(r, {"committed": 10, "rolled_back": 10});
    // Only the committed half and the two orphans (committed by the checker
    // when the server asked) are delivered, each once.
    assert_eq!(r["received"], 12, "{r}");
    assert!(r["orphan_checks"].as_u64().unwrap() >= 2, "{r}");
    assert_fields!(r, {"unexpected": 0, "duplicates": 0});
    assert_drained(&pier.raw, "node-tx-group").await;
}

four_modes!(
    node_producer_and_simple_consumer,
    node_fifo_push_consumer_in_order,
    node_delay_messages_wait_for_their_timestamp,
    node_transactions_commit_rollback_orphan,
);
