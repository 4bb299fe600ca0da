//! The official RocketMQ 5 Go client (`github.com/apache/rocketmq-clients/golang/v5`,
//! pinned in tests/go/go.mod) against Pier, standalone and as a cluster (one
//! `pier-store`, two proxies, the client given both addresses as
//! `"127.0.0.1:A;127.0.0.1:B"`). Each test runs one case of
//! tests/go (`pier-go-scenarios -case <name>`, built by
//! tests/scripts/setup-go.sh), which prints one JSON summary line; the
//! assertions are on that summary and on the server's group state.

use pier_proto::admin::TopicType::{self, Delay, Fifo, Normal, Transaction};
use pier_tests::assert_fields;
use pier_tests::external::{assert_drained, cli, summary_ok};
use pier_tests::go::scenario;
use pier_tests::{both_modes, Mode, Pier};

both_modes!(
    normal,
    async_send,
    invisible,
    filter,
    fifo,
    delay,
    transaction,
    retry,
    load_simple,
    load_push
);

/// Runs `case` with the options `line` (`-topic` and `-group` among them)
/// and a timeout of 120 s; returns its summary, after checking the
/// client's own verdict and that it was given every proxy.
async fn run(pier: &Pier, case: &str, line: &str) -> serde_json::Value {
    let args = cli(&format!("{line} -timeout 120"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = scenario(case, &pier.access_point, &args).await;
    let what = format!("go {case}");
    let r = summary_ok(&out, &what);
    let want = if pier.mode == Mode::Cluster { 2 } else { 1 };
    assert_eq!(r["addresses"], want, "{what}: {r}");
    r
}

/// [`run`] on a Pier started in `mode`, with the topic named by `topic`
/// (`kind`, with `queues` queues) and the group `group` (17 attempts)
/// created first.
async fn start_and_run(
    mode: Mode,
    (topic, kind, queues): (&str, TopicType, u32),
    group: &str,
    case: &str,
    more: &str,
) -> (Pier, serde_json::Value) {
    let pier = Pier::with_topic(mode, (topic, kind, queues), group).await;
    let r = run(
        &pier,
        case,
        &format!("-topic {topic} -group {group} {more}"),
    )
    .await;
    (pier, r)
}

async fn normal(mode: Mode) {
    let topic = ("go-normal", Normal, 4);
    let (pier, r) = start_and_run(mode, topic, "go-normal-group", "normal", "-count 200").await;
    assert_fields!(r, {"sent": 200, "received": 200, "duplicates": 0, "missing": 0});
    assert_eq!(r["unexpected"], 0, "{r}");
    // Tags, keys, properties, the 1 MiB body and the rest arrived intact.
    assert_fields!(r, {"mismatched": 0, "ack_errors": 0});
    assert_drained(&pier.raw, "go-normal-group").await;
}

async fn async_send(mode: Mode) {
    let topic = ("go-async", Normal, 4);
    let (pier, r) = start_and_run(mode, topic, "go-async-group", "async", "-count 300").await;
    assert_fields!(r, {
        "sent": 300, "send_errors": 0, "received": 300, "duplicates": 0, "mismatched": 0
    });
    assert_drained(&pier.raw, "go-async-group").await;
}

async fn invisible(mode: Mode) {
    let (topic, more) = (("go-invisible", Normal, 2), "-invisible-ms 2000");
    let (pier, r) = start_and_run(mode, topic, "go-invisible-group", "invisible", more).await;
    let back = r["back_after_ms"].as_i64().expect("back_after_ms");
    // Not before the new invisible duration (a few ms of rounding aside),
    // and soon after it.
    assert!((1995..6000).contains(&back), "{r}");
    assert_fields!(r, {"first_attempt": 1, "second_attempt": 2});
    // The change issued a new receipt handle and the ack with it held.
    assert_eq!(r["handle_changed"], true, "{r}");
    assert_eq!(r["extra"], 0, "{r}");
    assert_drained(&pier.raw, "go-invisible-group").await;
}

async fn filter(mode: Mode) {
    let topic = ("go-filter", Normal, 4);
    let (pier, r) = start_and_run(mode, topic, "go-filter-group", "filter", "-count 20").await;
    assert_fields!(r, {"sent": 80, "received_a": 20, "received_b": 20});
    assert_fields!(r, {"received_other": 0, "duplicates": 0});
    // Messages the filter skips are not left waiting for the group.
    assert_drained(&pier.raw, "go-filter-group").await;
}

async fn fifo(mode: Mode) {
    let pier = Pier::start(mode, &[]).await;
    pier.raw.create_typed_topic("go-fifo", Fifo, 4).await;
    // A short fixed backoff: Go's push consumer waits that long before a retry.
    pier.raw
        .create_group_with_backoff("go-fifo-group", true, 17, 200)
        .await;
    let line = "-topic go-fifo -group go-fifo-group -producers 3 -groups 4 -count 25 \
                -fail-once-seq 5";
    let r = run(&pier, "fifo", line).await;
    assert_fields!(r, {"consumer": "push", "sent": 300, "received": 300});
    assert_fields!(r, {"message_groups": 12, "out_of_order": 0, "duplicates": 0});
    // The client chose its FIFO consume service from the Settings reply:
    // one message of a group at a time.
    assert_eq!(r["max_inflight_per_group"], 1, "{r}");
    // The failed sequence number 5 was retried in place in every group.
    assert_fields!(r, {"retried_in_order": 12, "retry_attempt_not_2": 0});
    assert_drained(&pier.raw, "go-fifo-group").await;
}

async fn delay(mode: Mode) {
    let (topic, more) = (("go-delay", Delay, 4), "-count 20 -delay-ms 3000");
    let (pier, r) = start_and_run(mode, topic, "go-delay-group", "delay", more).await;
    assert_fields!(r, {"sent": 20, "received": 20, "early": 0, "wrong_timestamp": 0});
    let late = r["max_late_ms"].as_i64().expect("max_late_ms");
    assert!(
        late < 3000,
        "delivered up to {late} ms after the due time: {r}"
    );
    assert_drained(&pier.raw, "go-delay-group").await;
}

/// The first orphan check a second after the send (the Go client sends no
/// orphaned_transaction_recovery_duration), then every 2 s.
const TXN_FLAGS: [&str; 8] = [
    "--txn-first-check-ms",
    "1000",
    "--txn-check-backoff",
    "2",
    "--txn-max-check-interval-ms",
    "2000",
    "--txn-max-checks",
    "10",
];

async fn transaction(mode: Mode) {
    let pier = Pier::start(mode, &TXN_FLAGS).await;
    pier.topic_and_group("go-tx", Transaction, 4, "go-tx-group", 17)
        .await;
    let line = "-topic go-tx -group go-tx-group -count 20 -orphans 2";
    let r = run(&pier, "transaction", line).await;
    assert_fields!(r, {"committed": 10, "rolled_back": 10, "orphans": 2});
    // The committed half and both orphans (committed by the checker when
    // the server asked), each once; never a rolled-back one.
    assert_fields!(r, {"received": 12, "unexpected": 0, "duplicates": 0});
    assert_fields!(r, {"orphans_checked": 2, "unexpected_checks": 0});
    assert_drained(&pier.raw, "go-tx-group").await;
}

async fn retry(mode: Mode) {
    let pier = Pier::start(mode, &[]).await;
    pier.raw.create_topic("go-retry", 2).await;
    // A short fixed backoff: Go's push consumer waits that long before a retry.
    pier.raw
        .create_group_with_backoff("go-retry-group", false, 3, 500)
        .await;
    pier.raw.create_group("go-retry-dlq", 17).await;
    let line = "-topic go-retry -group go-retry-group -dlq-group go-retry-dlq -count 5 \
                -max-attempts 3";
    let r = run(&pier, "retry", line).await;
    // Doomed messages: delivered with attempts 1, 2, 3, then moved to
    // %DLQ%go-retry-group, where they arrive intact, once each.
    assert_fields!(r, {
        "doomed": 5, "doomed_min_attempts": 3, "doomed_max_attempts": 3,
        "doomed_bad_sequence": 0, "doomed_over_delivered": 0, "dlq_received": 5,
        "dlq_duplicates": 0, "dlq_unexpected": 0, "dlq_mismatched": 0
    });
    // Flaky messages: failed once, succeeded on attempt 2.
    assert_eq!(r["flaky_ok"], 5, "{r}");
    assert_drained(&pier.raw, "go-retry-group").await;
    assert_drained(&pier.raw, "go-retry-dlq").await;
    let d = pier.raw.describe_group("go-retry-group").await;
    assert_eq!(d.dlq, 5, "{d:?}");
}

async fn load(mode: Mode, consumer: &str) {
    let (topic, group) = (
        format!("go-load-{consumer}"),
        format!("go-load-{consumer}-group"),
    );
    let more = format!("-count 2000 -producers 2 -consumer {consumer}");
    let (pier, r) = start_and_run(mode, (&topic, Normal, 8), &group, "load", &more).await;
    assert_eq!(r["consumer"], consumer, "{r}");
    assert_fields!(r, {"sent": 2000, "send_errors": 0, "received": 2000});
    assert_fields!(r, {"missing": 0, "body_errors": 0, "ack_errors": 0});
    // Every message is acked once, well within its invisible time: nothing
    // comes back.
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_drained(&pier.raw, &group).await;
}

async fn load_simple(mode: Mode) {
    load(mode, "simple").await
}

async fn load_push(mode: Mode) {
    load(mode, "push").await
}
