//! The official RocketMQ 5 Go client (`github.com/apache/rocketmq-clients/golang/v5`,
//! pinned in tests/go/go.mod) against Pier, standalone and as a cluster (one
//! `pier-store`, two proxies, the client given both addresses as
//! `"127.0.0.1:A;127.0.0.1:B"`). Each test runs one case of
//! tests/go (`pier-go-scenarios -case <name>`, built by
//! tests/scripts/setup-go.sh), which prints one JSON summary line; the
//! assertions are on that summary and on the server's group state.

use pier_proto::admin::TopicType;
use pier_tests::external::{assert_drained, summary_ok};
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

/// The summary, after checking the client was given every proxy.
fn checked(out: &std::process::Output, what: &str, mode: Mode) -> serde_json::Value {
    let r = summary_ok(out, what);
    let want = if mode == Mode::Cluster { 2 } else { 1 };
    assert_eq!(r["addresses"], want, "{what}: {r}");
    r
}

fn args<'a>(topic: &'a str, group: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["-topic", topic, "-group", group, "-timeout", "120"];
    v.extend_from_slice(more);
    v
}

async fn normal(mode: Mode) {
    let pier = Pier::start(mode, &[]).await;
    pier.raw.create_topic("go-normal", 4).await;
    pier.raw.create_group("go-normal-group", 17).await;
    let out = scenario(
        "normal",
        &pier.access_point,
        &args("go-normal", "go-normal-group", &["-count", "200"]),
    )
    .await;
    let r = checked(&out, "go normal", mode);
    assert_eq!(r["sent"], 200, "{r}");
    assert_eq!(r["received"], 200, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_eq!(r["missing"], 0, "{r}");
    assert_eq!(r["unexpected"], 0, "{r}");
    // Tags, keys, properties, the 1 MiB body and the rest arrived intact.
    assert_eq!(r["mismatched"], 0, "{r}");
    assert_eq!(r["ack_errors"], 0, "{r}");
    assert_drained(&pier.raw, "go-normal-group").await;
}

async fn async_send(mode: Mode) {
    let pier = Pier::start(mode, &[]).await;
    pier.raw.create_topic("go-async", 4).await;
    pier.raw.create_group("go-async-group", 17).await;
    let out = scenario(
        "async",
        &pier.access_point,
        &args("go-async", "go-async-group", &["-count", "300"]),
    )
    .await;
    let r = checked(&out, "go async", mode);
    assert_eq!(r["sent"], 300, "{r}");
    assert_eq!(r["send_errors"], 0, "{r}");
    assert_eq!(r["received"], 300, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_eq!(r["mismatched"], 0, "{r}");
    assert_drained(&pier.raw, "go-async-group").await;
}

async fn invisible(mode: Mode) {
    let pier = Pier::start(mode, &[]).await;
    pier.raw.create_topic("go-invisible", 2).await;
    pier.raw.create_group("go-invisible-group", 17).await;
    let out = scenario(
        "invisible",
        &pier.access_point,
        &args(
            "go-invisible",
            "go-invisible-group",
            &["-invisible-ms", "2000"],
        ),
    )
    .await;
    let r = checked(&out, "go invisible", mode);
    assert_eq!(r["first_attempt"], 1, "{r}");
    assert_eq!(r["second_attempt"], 2, "{r}");
    let back = r["back_after_ms"].as_i64().expect("back_after_ms");
    // Not before the new invisible duration (a few ms of rounding aside),
    // and soon after it.
    assert!((1995..6000).contains(&back), "{r}");
    // The change issued a new receipt handle and the ack with it held.
    assert_eq!(r["handle_changed"], true, "{r}");
    assert_eq!(r["extra"], 0, "{r}");
    assert_drained(&pier.raw, "go-invisible-group").await;
}

async fn filter(mode: Mode) {
    let pier = Pier::start(mode, &[]).await;
    pier.raw.create_topic("go-filter", 4).await;
    pier.raw.create_group("go-filter-group", 17).await;
    let out = scenario(
        "filter",
        &pier.access_point,
        &args("go-filter", "go-filter-group", &["-count", "20"]),
    )
    .await;
    let r = checked(&out, "go filter", mode);
    assert_eq!(r["sent"], 80, "{r}");
    assert_eq!(r["received_a"], 20, "{r}");
    assert_eq!(r["received_b"], 20, "{r}");
    assert_eq!(r["received_other"], 0, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    // Messages the filter skips are not left waiting for the group.
    assert_drained(&pier.raw, "go-filter-group").await;
}

async fn fifo(mode: Mode) {
    let pier = Pier::start(mode, &[]).await;
    pier.raw
        .create_typed_topic("go-fifo", TopicType::Fifo, 4)
        .await;
    // A short fixed backoff: Go's push consumer waits that long before a retry.
    pier.raw
        .create_group_with_backoff("go-fifo-group", true, 17, 200)
        .await;
    let out = scenario(
        "fifo",
        &pier.access_point,
        &args(
            "go-fifo",
            "go-fifo-group",
            &[
                "-producers",
                "3",
                "-groups",
                "4",
                "-count",
                "25",
                "-fail-once-seq",
                "5",
            ],
        ),
    )
    .await;
    let r = checked(&out, "go fifo", mode);
    assert_eq!(r["consumer"], "push", "{r}");
    assert_eq!(r["sent"], 300, "{r}");
    assert_eq!(r["received"], 300, "{r}");
    assert_eq!(r["message_groups"], 12, "{r}");
    assert_eq!(r["out_of_order"], 0, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    // The client chose its FIFO consume service from the Settings reply:
    // one message of a group at a time.
    assert_eq!(r["max_inflight_per_group"], 1, "{r}");
    // The failed sequence number 5 was retried in place in every group.
    assert_eq!(r["retried_in_order"], 12, "{r}");
    assert_eq!(r["retry_attempt_not_2"], 0, "{r}");
    assert_drained(&pier.raw, "go-fifo-group").await;
}

async fn delay(mode: Mode) {
    let pier = Pier::start(mode, &[]).await;
    pier.raw
        .create_typed_topic("go-delay", TopicType::Delay, 4)
        .await;
    pier.raw.create_group("go-delay-group", 17).await;
    let out = scenario(
        "delay",
        &pier.access_point,
        &args(
            "go-delay",
            "go-delay-group",
            &["-count", "20", "-delay-ms", "3000"],
        ),
    )
    .await;
    let r = checked(&out, "go delay", mode);
    assert_eq!(r["sent"], 20, "{r}");
    assert_eq!(r["received"], 20, "{r}");
    assert_eq!(r["early"], 0, "{r}");
    assert_eq!(r["wrong_timestamp"], 0, "{r}");
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
    pier.raw
        .create_typed_topic("go-tx", TopicType::Transaction, 4)
        .await;
    pier.raw.create_group("go-tx-group", 17).await;
    let out = scenario(
        "transaction",
        &pier.access_point,
        &args("go-tx", "go-tx-group", &["-count", "20", "-orphans", "2"]),
    )
    .await;
    let r = checked(&out, "go transaction", mode);
    assert_eq!(r["committed"], 10, "{r}");
    assert_eq!(r["rolled_back"], 10, "{r}");
    assert_eq!(r["orphans"], 2, "{r}");
    // The committed half and both orphans (committed by the checker when
    // the server asked), each once; never a rolled-back one.
    assert_eq!(r["received"], 12, "{r}");
    assert_eq!(r["unexpected"], 0, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_eq!(r["orphans_checked"], 2, "{r}");
    assert_eq!(r["unexpected_checks"], 0, "{r}");
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
    let out = scenario(
        "retry",
        &pier.access_point,
        &args(
            "go-retry",
            "go-retry-group",
            &[
                "-dlq-group",
                "go-retry-dlq",
                "-count",
                "5",
                "-max-attempts",
                "3",
            ],
        ),
    )
    .await;
    let r = checked(&out, "go retry", mode);
    // Doomed messages: delivered with attempts 1, 2, 3, then moved to
    // %DLQ%go-retry-group, where they arrive intact, once each.
    assert_eq!(r["doomed"], 5, "{r}");
    assert_eq!(r["doomed_min_attempts"], 3, "{r}");
    assert_eq!(r["doomed_max_attempts"], 3, "{r}");
    assert_eq!(r["doomed_bad_sequence"], 0, "{r}");
    assert_eq!(r["doomed_over_delivered"], 0, "{r}");
    assert_eq!(r["dlq_received"], 5, "{r}");
    assert_eq!(r["dlq_duplicates"], 0, "{r}");
    assert_eq!(r["dlq_unexpected"], 0, "{r}");
    assert_eq!(r["dlq_mismatched"], 0, "{r}");
    // Flaky messages: failed once, succeeded on attempt 2.
    assert_eq!(r["flaky_ok"], 5, "{r}");
    assert_drained(&pier.raw, "go-retry-group").await;
    assert_drained(&pier.raw, "go-retry-dlq").await;
    let d = pier.raw.describe_group("go-retry-group").await;
    assert_eq!(d.dlq, 5, "{d:?}");
}

async fn load(mode: Mode, consumer: &str) {
    let pier = Pier::start(mode, &[]).await;
    let (topic, group) = (
        format!("go-load-{consumer}"),
        format!("go-load-{consumer}-group"),
    );
    pier.raw.create_topic(&topic, 8).await;
    pier.raw.create_group(&group, 17).await;
    let out = scenario(
        "load",
        &pier.access_point,
        &args(
            &topic,
            &group,
            &["-count", "2000", "-producers", "2", "-consumer", consumer],
        ),
    )
    .await;
    let r = checked(&out, &format!("go load ({consumer})"), mode);
    assert_eq!(r["consumer"], consumer, "{r}");
    assert_eq!(r["sent"], 2000, "{r}");
    assert_eq!(r["send_errors"], 0, "{r}");
    assert_eq!(r["received"], 2000, "{r}");
    assert_eq!(r["missing"], 0, "{r}");
    assert_eq!(r["body_errors"], 0, "{r}");
    assert_eq!(r["ack_errors"], 0, "{r}");
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
