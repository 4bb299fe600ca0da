//! The official RocketMQ 5 Java client (`org.apache.rocketmq:rocketmq-client-java`
//! from Maven Central, pinned in tests/java/pom.xml) against Pier, every
//! scenario twice: against a standalone node, and in cluster mode (one
//! `pier-store`, two proxies) with the client given both proxy addresses
//! (`"127.0.0.1:A;127.0.0.1:B"`). tests/java's `pier.Scenarios` does the work
//! and prints one JSON summary line, checked here; tests/scripts/setup-java.sh
//! builds it (run from `pier_tests::java::ensure_java`). TLS is off in the
//! client here (`--tls true` turns it on: `official_tls.rs` runs the client
//! with its default TLS against a proxy that requires TLS).
//!
//! Topics and groups are created through the admin API first: Pier does not
//! create them on first use by default.

use pier_proto::admin::TopicType::{Delay, Fifo, Normal, Transaction};
use pier_proto::admin::{
    retry_policy, ConsumerGroup, CustomizedBackoff, DescribeTopicRequest, RetryPolicy,
};
use pier_tests::assert_fields;
use pier_tests::external::assert_drained;
use pier_tests::java::scenario;
use pier_tests::{both_modes, Mode, Pier};

/// Hard time limit of one scenario run (the JVM exits by itself then).
const TIMEOUT: &str = "120";

/// Runs `case` on `topic` and `group` with more `--name value` options and
/// returns its summary, asserting the scenario's own verdict.
async fn run(
    p: &Pier,
    case: &str,
    topic: &str,
    group: &str,
    more: &[(&str, &str)],
) -> serde_json::Value {
    let mut all = vec![("timeout", TIMEOUT), ("topic", topic), ("group", group)];
    all.extend_from_slice(more);
    scenario(case, &p.access_point, &all)
        .await
        .summary_ok(&format!("java {case}"))
}

async fn normal_tags_keys_properties(mode: Mode) {
    let p = Pier::with_topic(mode, ("j-normal", Normal, 4), "j-normal-g").await;
    let r = run(&p, "normal", "j-normal", "j-normal-g", &[("count", "50")]).await;
    assert_fields!(r, {"sent": 50, "distinct_receipt_ids": 50, "received": 50});
    assert_fields!(r, {"missing": 0, "duplicates": 0});
    // Tags, keys, properties, body, attempt 1, born host/time all intact.
    assert_fields!(r, {"mismatched": 0, "unexpected": 0});
    assert_drained(&p.raw, "j-normal-g").await;
}

async fn async_send_receive_ack(mode: Mode) {
    let p = Pier::with_topic(mode, ("j-async", Normal, 4), "j-async-g").await;
    let r = run(&p, "async", "j-async", "j-async-g", &[("count", "200")]).await;
    assert_fields!(r, {"sent": 200, "send_errors": 0, "duplicate_receipt_ids": 0});
    assert_fields!(r, {"received": 200, "duplicates": 0, "ack_errors": 0});
    assert_drained(&p.raw, "j-async-g").await;
}

async fn change_invisible_duration(mode: Mode) {
    let p = Pier::with_topic(mode, ("j-invisible", Normal, 4), "j-invisible-g").await;
    let durations = [("short-ms", "2000"), ("long-ms", "5000")];
    let r = run(&p, "invisible", "j-invisible", "j-invisible-g", &durations).await;
    // A: 30 s shortened to 2 s. Back no earlier, and not much later (the
    // client long-polls 2 s at a time).
    let a = r["a_back_ms"].as_u64().expect("a_back_ms");
    assert!((2000..6000).contains(&a), "{r}");
    assert_eq!(r["a_attempt"], 2, "{r}");
    // B: changed twice, the second change (5 s) with the handle the first
    // returned; the first one's 3 s must not count.
    let b = r["b_back_ms"].as_u64().expect("b_back_ms");
    assert!((5000..9000).contains(&b), "{r}");
    assert_eq!(r["b_attempt"], 2, "{r}");
    // C: acked with the handle ChangeInvisibleDuration returned, never back.
    assert_fields!(r, {"c_acked": true, "unexpected": 0});
    assert_drained(&p.raw, "j-invisible-g").await;
}

async fn tag_filter_expressions(mode: Mode) {
    let p = Pier::start(mode, &[]).await;
    p.raw.create_topic("j-filter", 4).await;
    p.raw.create_group("j-filter-ab", 17).await;
    p.raw.create_group("j-filter-c", 17).await;
    let more = [("group2", "j-filter-c"), ("count", "10")];
    let r = run(&p, "filter", "j-filter", "j-filter-ab", &more).await;
    // Tags a, b, c, ab, A and none were sent 10 times each.
    assert_fields!(r, {
        "sent": 60, "a_or_b": {"a": 10, "b": 10}, "c_only": {"c": 10}, "tag_mismatch": 0
    });
    for g in ["j-filter-ab", "j-filter-c"] {
        assert_drained(&p.raw, g).await;
    }
}

async fn fifo_order_per_message_group(mode: Mode) {
    let p = Pier::with_topic(mode, ("j-fifo", Fifo, 4), "j-fifo-g").await;
    let more = [("producers", "3"), ("groups", "4"), ("count", "10")];
    let r = run(&p, "fifo", "j-fifo", "j-fifo-g", &more).await;
    assert_fields!(r, {"sent": 120, "received": 120, "out_of_order": 0});
    assert_fields!(r, {"duplicates": 0, "wrong_group": 0});
    // One message of a message group at a time, though 8 threads consume.
    assert_eq!(r["max_inflight_per_group"], 1, "{r}");
    assert_drained(&p.raw, "j-fifo-g").await;
}

async fn delay_messages(mode: Mode) {
    let p = Pier::with_topic(mode, ("j-delay", Delay, 4), "j-delay-g").await;
    let more = [("count", "10"), ("delay-ms", "3000")];
    let r = run(&p, "delay", "j-delay", "j-delay-g", &more).await;
    assert_fields!(r, {"received": 10, "early": 0, "wrong_timestamp": 0, "duplicates": 0});
    let late = r["max_late_ms"].as_u64().expect("max_late_ms");
    // Prompt, not at the end of some poll or timer sweep (loose: CI is loaded).
    assert!(late < 5000, "delivered up to {late} ms late: {r}");
    assert_drained(&p.raw, "j-delay-g").await;
}

async fn transactions_commit_rollback_orphan(mode: Mode) {
    let p = Pier::with_topic(mode, ("j-tx", Transaction, 4), "j-tx-g").await;
    let more = [("count", "10"), ("orphans", "2")];
    let r = run(&p, "transaction", "j-tx", "j-tx-g", &more).await;
    assert_fields!(r, {"committed": 5, "rolled_back": 5});
    // The committed half and the two orphans, which the checker committed
    // when the server asked; nothing rolled back.
    assert_eq!(r["received"], 7, "{r}");
    assert!(r["orphan_checks"].as_u64().unwrap_or(0) >= 2, "{r}");
    assert_fields!(r, {"unexpected_checks": 0, "orphan_before_check": 0});
    assert_fields!(r, {"unexpected": 0, "duplicates": 0});
    assert_drained(&p.raw, "j-tx-g").await;
}

async fn retry_attempts_and_dlq(mode: Mode) {
    let p = Pier::start(mode, &[]).await;
    p.raw.create_topic("j-retry", 4).await;
    p.raw
        .create_group_as(ConsumerGroup {
            name: "j-retry-g".into(),
            max_attempts: 3,
            retry_policy: Some(RetryPolicy {
                strategy: Some(retry_policy::Strategy::Customized(CustomizedBackoff {
                    next_ms: vec![500, 1000],
                })),
            }),
            ..Default::default()
        })
        .await;
    p.raw.create_group("j-retry-dlq-reader", 17).await;
    let more = [
        ("dlq-group", "j-retry-dlq-reader"),
        ("count", "3"),
        ("max-attempts", "3"),
        ("backoff-ms", "500,1000"),
    ];
    let r = run(&p, "retry", "j-retry", "j-retry-g", &more).await;
    // Attempts seen by the push consumer: [1] for "ok", [1, 2, 3] for
    // "twice" (then acked) and for "always" (then dead-lettered).
    assert_fields!(r, {"ok_attempts_ok": 3, "twice_attempts_ok": 3, "always_attempts_ok": 3});
    assert_eq!(r["wrong_attempts"], 0, "{r}");
    // The waits between attempts follow the group's customized backoff: no
    // shorter, and not stretched to the end of a long poll (20 s) either.
    let gap = |which: &str, step: &str| r[which][step].as_u64().expect("a gap");
    assert!(gap("min_gap_ms", "after_1") >= 500, "{r}");
    assert!(gap("min_gap_ms", "after_2") >= 1000, "{r}");
    assert!(gap("max_gap_ms", "after_1") < 5500, "{r}");
    assert!(gap("max_gap_ms", "after_2") < 6000, "{r}");
    // The "always" messages, and only they, reached %DLQ%j-retry-g intact.
    assert_fields!(r, {
        "dlq_received": 3, "dlq_unexpected": 0, "dlq_duplicates": 0, "dlq_mismatched": 0
    });

    // The same seen from the store: 3 messages in the DLQ topic, nothing left
    // for either group.
    let dlq = p
        .raw
        .admin()
        .describe_topic(DescribeTopicRequest {
            name: "%DLQ%j-retry-g".into(),
        })
        .await
        .expect("the DLQ topic exists")
        .into_inner();
    let stored: u64 = dlq.queues.iter().map(|q| q.max_offset - q.min_offset).sum();
    assert_eq!(stored, 3, "{dlq:?}");
    let g = p.raw.describe_group("j-retry-g").await;
    assert_eq!(g.dlq, 3, "{g:?}");
    assert_drained(&p.raw, "j-retry-g").await;
    assert_drained(&p.raw, "j-retry-dlq-reader").await;
}

async fn push_consumer_under_load(mode: Mode) {
    let p = Pier::with_topic(mode, ("j-load", Normal, 8), "j-load-g").await;
    let r = run(&p, "push-load", "j-load", "j-load-g", &[("count", "2000")]).await;
    assert_fields!(r, {"sent": 2000, "received": 2000, "missing": 0});
    // Every message consumed once: nothing delivered again, so each was
    // acked on its first delivery.
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_eq!(r["redelivered"].as_u64().unwrap_or(0), 0, "{r}");
    assert_drained(&p.raw, "j-load-g").await;
}

both_modes!(
    normal_tags_keys_properties,
    async_send_receive_ack,
    change_invisible_duration,
    tag_filter_expressions,
    fifo_order_per_message_group,
    delay_messages,
    transactions_commit_rollback_orphan,
    retry_attempts_and_dlq,
    push_consumer_under_load,
);
