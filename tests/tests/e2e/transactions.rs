//! Transactional messages through real proxies, in both modes: commit,
//! rollback, double commit, and an UNKNOWN answer resolved through the
//! orphan check sent on the producer's Telemetry stream; the configurable
//! check policy ending in a rollback; a check reaching a producer that
//! reconnected through another proxy after its own died.

use std::time::Duration;

use pier_proto::admin::TopicType;
use pier_proto::rocketmq::TransactionResolution::{Commit, Rollback, Unspecified};
use pier_proto::rocketmq::*;
use pier_tests::*;
use pier_tests::{both_modes, Mode};

fn half(topic: &str, body: &str) -> Message {
    let mut m = message(topic, body);
    let sp = m.system_properties.as_mut().unwrap();
    sp.message_type = MessageType::Transaction as i32;
    sp.orphaned_transaction_recovery_duration = Some(prost_types::Duration {
        seconds: 1,
        nanos: 0,
    });
    m
}

/// Sends `m` and returns its entry, asserting it was stored.
async fn sent_ok(c: &Raw, m: Message) -> SendResultEntry {
    let e = c.send(m).await.entries[0].clone();
    assert_eq!(e.status.as_ref().unwrap().code, Code::Ok as i32, "{e:?}");
    e
}

/// Ends `r`'s transaction as its producer would.
async fn end(c: &Raw, topic: &str, r: &SendResultEntry, resolution: TransactionResolution) -> Code {
    end_as(c, topic, r, resolution, TransactionSource::SourceClient).await
}

/// [`end`] from `source` (the producer's checker answering a check, say).
async fn end_as(
    c: &Raw,
    topic: &str,
    r: &SendResultEntry,
    resolution: TransactionResolution,
    source: TransactionSource,
) -> Code {
    let resp = c
        .messaging()
        .end_transaction(c.req(EndTransactionRequest {
            topic: Some(resource(topic)),
            message_id: r.message_id.clone(),
            transaction_id: r.transaction_id.clone(),
            resolution: resolution as i32,
            source: source as i32,
            trace_context: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    Code::try_from(resp.status.unwrap().code).unwrap()
}

async fn transactions(mode: Mode) {
    let p = Pier::start(mode, &[]).await;
    let other = p.other().await;
    let (a, b) = (&p.raw, &other);
    a.create_typed_topic("payments", TopicType::Transaction, 2)
        .await;
    a.create_group("settle", 17).await;
    // The producer's Telemetry stream is on proxy b; it sends through a.
    let (_keep, mut checks) = b.producer_stream("payments").await;

    // Commit: invisible until committed, delivered once however often the
    // commit arrives.
    let sent = a.send(half("payments", "commit-me")).await;
    let e = sent.entries[0].clone();
    assert_eq!(e.status.as_ref().unwrap().code, Code::Ok as i32, "{sent:?}");
    assert!(!e.transaction_id.is_empty());
    let (code, _) = b.receive("settle", "payments", 8, 30_000, 300).await;
    assert_eq!(code, Code::MessageNotFound, "half messages are invisible");
    assert_eq!(end(a, "payments", &e, Commit).await, Code::Ok);
    assert_eq!(
        end(b, "payments", &e, Commit).await,
        Code::InvalidTransactionId
    );
    let (_, msgs) = b.receive("settle", "payments", 8, 30_000, 2_000).await;
    assert_eq!(msgs.iter().map(body).collect::<Vec<_>>(), vec!["commit-me"]);
    assert_eq!(
        msgs[0].system_properties.as_ref().unwrap().message_type,
        MessageType::Transaction as i32
    );
    assert_eq!(
        a.ack("settle", "payments", &handle(&msgs[0])).await,
        Code::Ok
    );

    // Rollback: never delivered.
    let e = a.send(half("payments", "roll-me-back")).await.entries[0].clone();
    assert_eq!(end(a, "payments", &e, Rollback).await, Code::Ok);
    assert_eq!(
        end(a, "payments", &e, Commit).await,
        Code::InvalidTransactionId
    );

    // UNKNOWN keeps it pending; the store then asks the producer (on its
    // Telemetry stream, through the other proxy), which commits.
    let e = a.send(half("payments", "ask-me")).await.entries[0].clone();
    assert_eq!(end(a, "payments", &e, Unspecified).await, Code::Ok);
    let cmd = tokio::time::timeout(Duration::from_secs(10), checks.message())
        .await
        .expect("an orphan check within 10 s")
        .unwrap()
        .unwrap();
    let Some(telemetry_command::Command::RecoverOrphanedTransactionCommand(check)) = cmd.command
    else {
        panic!("expected an orphan check, got {cmd:?}");
    };
    assert_eq!(check.transaction_id, e.transaction_id);
    let m = check.message.expect("the check carries the message");
    assert_eq!(body(&m), "ask-me");
    let sp = m.system_properties.as_ref().unwrap();
    assert_eq!(sp.message_id, e.message_id);
    assert_eq!(
        sp.body_digest.as_ref().unwrap().checksum.len(),
        32,
        "Node needs the digest"
    );
    assert_eq!(end(b, "payments", &e, Commit).await, Code::Ok);
    let (_, msgs) = a.receive("settle", "payments", 8, 30_000, 2_000).await;
    assert_eq!(msgs.iter().map(body).collect::<Vec<_>>(), vec!["ask-me"]);

    // Unknown and empty ids.
    let bogus = SendResultEntry {
        transaction_id: "00112233445566778899AABBCCDDEEFF".into(),
        ..Default::default()
    };
    assert_eq!(
        end(a, "payments", &bogus, Commit).await,
        Code::InvalidTransactionId
    );
    let empty = SendResultEntry::default();
    assert_eq!(
        end(a, "payments", &empty, Commit).await,
        Code::InvalidTransactionId
    );
}

both_modes!(transactions);

/// The orphan-check policy the next tests give the node that checks: first
/// check 400 ms after the send, then waits of 800 ms and 1.6 s, and after
/// the third unanswered check (and one more wait, 3.2 s) a rollback.
const CHECK_FLAGS: [&str; 8] = [
    "--txn-first-check-ms",
    "400",
    "--txn-check-backoff",
    "2",
    "--txn-max-check-interval-ms",
    "60000",
    "--txn-max-checks",
    "3",
];

/// A half message without `orphaned_transaction_recovery_duration`, so the
/// node's first-check delay applies.
fn plain_half(topic: &str, body: &str) -> Message {
    let mut m = half(topic, body);
    m.system_properties
        .as_mut()
        .unwrap()
        .orphaned_transaction_recovery_duration = None;
    m
}

/// A producer that never answers gets exactly `--txn-max-checks` checks, at
/// growing intervals; then the transaction is rolled back: never delivered,
/// a late COMMIT is refused, and the checking node (`checker`) logs it.
async fn unanswered_checks_roll_back(mode: Mode) {
    let p = Pier::start(mode, &CHECK_FLAGS).await;
    let other = p.other().await;
    let (a, b, checker) = (&p.raw, &other, p.data_node());
    a.create_typed_topic("orphans", TopicType::Transaction, 2)
        .await;
    a.create_group("orphan-readers", 17).await;
    let (_keep, mut checks) = b.producer_stream("orphans").await;

    let sent_at = std::time::Instant::now();
    let e = sent_ok(a, plain_half("orphans", "never-answered")).await;

    // Rollback is due about 6 s after the send; listen until well past it.
    let listen_until = sent_at + Duration::from_secs(8);
    let mut arrivals = Vec::new();
    loop {
        let left = listen_until.saturating_duration_since(std::time::Instant::now());
        let Ok(next) = tokio::time::timeout(left, checks.message()).await else {
            break;
        };
        let cmd = next.expect("telemetry stream").expect("stream stays open");
        let Some(telemetry_command::Command::RecoverOrphanedTransactionCommand(c)) = cmd.command
        else {
            panic!("expected only orphan checks, got {cmd:?}");
        };
        assert_eq!(c.transaction_id, e.transaction_id);
        arrivals.push(sent_at.elapsed().as_millis() as i64);
    }
    assert_eq!(
        arrivals.len(),
        3,
        "checks at {arrivals:?} ms after the send"
    );
    let gaps: Vec<i64> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    // The checker scans every 200 ms: allow that much early or late.
    assert!(
        (200..2_000).contains(&arrivals[0]),
        "first check at {} ms, configured 400",
        arrivals[0]
    );
    assert!(
        gaps[0] >= 600 && gaps[1] >= 1_400 && gaps[1] > gaps[0],
        "waits between checks must grow (800, 1600 ms configured): {gaps:?}"
    );

    let log = tokio::task::block_in_place(|| {
        checker.wait_log(
            &[
                "rolled back",
                &format!("transaction_id={}", e.transaction_id),
                "checks=3",
            ],
            Duration::from_secs(5),
        )
    });
    assert!(
        log.is_some(),
        "no rollback log line for {}",
        e.transaction_id
    );

    let (code, msgs) = b.receive("orphan-readers", "orphans", 8, 30_000, 500).await;
    assert_eq!(
        code,
        Code::MessageNotFound,
        "a rolled-back half message is never delivered: {msgs:?}"
    );
    assert_eq!(
        end(a, "orphans", &e, Commit).await,
        Code::InvalidTransactionId
    );
}

both_modes!(unanswered_checks_roll_back);

/// A producer whose proxy died reconnects through another proxy (same
/// client id, as an official client would): the orphan check reaches it
/// there, and its COMMIT through that proxy delivers the message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_check_reaches_producer_through_another_proxy() {
    let data = tempfile::tempdir().unwrap();
    // First check 1.5 s after the send: the producer is on proxy B by then.
    let store = Node::store_with(data.path(), &["--txn-first-check-ms", "1500"]);
    let mut pa = Node::proxy_of(&store);
    let pb = Node::proxy_of(&store);
    let a = Raw::connect(&pa.endpoint()).await;
    let mut b = Raw::connect(&pb.endpoint()).await;
    b.client_id = a.client_id.clone();
    a.create_typed_topic("failover-tx", TopicType::Transaction, 2)
        .await;
    a.create_group("failover-readers", 17).await;

    let (keep_a, _checks_on_a) = a.producer_stream("failover-tx").await;
    let e = sent_ok(&a, plain_half("failover-tx", "survives-proxy-death")).await;
    pa.kill();
    drop(keep_a);

    let (_keep_b, mut checks) = b.producer_stream("failover-tx").await;
    // The first check, or (had it raced the reconnect) the second, 3 s later.
    let cmd = tokio::time::timeout(Duration::from_secs(10), checks.message())
        .await
        .expect("an orphan check on proxy B within 10 s")
        .expect("telemetry stream")
        .expect("stream stays open");
    let Some(telemetry_command::Command::RecoverOrphanedTransactionCommand(c)) = cmd.command else {
        panic!("expected an orphan check, got {cmd:?}");
    };
    assert_eq!(c.transaction_id, e.transaction_id);
    assert_eq!(body(c.message.as_ref().unwrap()), "survives-proxy-death");

    // The checker commits (the check's transaction id is the send's).
    let checker = TransactionSource::SourceServerCheck;
    assert_eq!(
        end_as(&b, "failover-tx", &e, Commit, checker).await,
        Code::Ok
    );

    let (_, msgs) = b
        .receive("failover-readers", "failover-tx", 8, 30_000, 2_000)
        .await;
    assert_eq!(
        msgs.iter().map(body).collect::<Vec<_>>(),
        vec!["survives-proxy-death"]
    );
    assert_eq!(
        b.ack("failover-readers", "failover-tx", &handle(&msgs[0]))
            .await,
        Code::Ok
    );
    let (code, again) = b
        .receive("failover-readers", "failover-tx", 8, 30_000, 1_000)
        .await;
    assert_eq!(code, Code::MessageNotFound, "delivered twice: {again:?}");
    assert_eq!(
        end(&b, "failover-tx", &e, Commit).await,
        Code::InvalidTransactionId
    );
}
