//! The request limits, end to end through the binaries' flags: messages and
//! bytes per SendMessage, in-flight messages per consumer group (enforced by
//! the store, so checked in both modes), requests per second per client.
//! Each: over the limit gets its code, under it works.

use std::time::Duration;

use pier_proto::rocketmq::*;
use pier_tests::*;
use pier_tests::{both_modes, Mode};

/// The overall code and the entries' codes of one SendMessage.
async fn send_many(c: &Raw, msgs: Vec<Message>) -> (Code, Vec<Code>) {
    let n = msgs.len();
    let r = c
        .messaging()
        .send_message(c.req(SendMessageRequest { messages: msgs }))
        .await
        .expect("SendMessage transport")
        .into_inner();
    assert_eq!(r.entries.len(), n, "one entry per message, even refused");
    let code = |s: Option<&Status>| Code::try_from(s.map_or(0, |s| s.code)).expect("known code");
    (
        code(r.status.as_ref()),
        r.entries.iter().map(|e| code(e.status.as_ref())).collect(),
    )
}

/// Starts a standalone Pier with `flags` and a topic `t` of 2 queues.
async fn standalone_with_topic(flags: &[&str]) -> Pier {
    let pier = Pier::start(Mode::Standalone, flags).await;
    pier.raw.create_topic("t", 2).await;
    pier
}

fn sized(topic: &str, i: usize, size: usize) -> Message {
    message_with_id(topic, format!("ID-{i}-{size}"), vec![b'x'; size])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_limits_refuse_whole_requests() {
    let pier =
        standalone_with_topic(&["--max-send-messages", "4", "--max-send-bytes", "1000"]).await;
    let c = &pier.raw;

    let four = (0..4).map(|i| sized("t", i, 10)).collect();
    assert_eq!(send_many(c, four).await, (Code::Ok, vec![Code::Ok; 4]));
    let five = (0..5).map(|i| sized("t", i, 10)).collect();
    assert_eq!(
        send_many(c, five).await,
        (Code::PayloadTooLarge, vec![Code::PayloadTooLarge; 5])
    );
    let fits = vec![sized("t", 0, 600), sized("t", 1, 400)];
    assert_eq!(send_many(c, fits).await.0, Code::Ok);
    let over = vec![sized("t", 0, 600), sized("t", 1, 401)];
    assert_eq!(
        send_many(c, over).await,
        (
            Code::MessageBodyTooLarge,
            vec![Code::MessageBodyTooLarge; 2]
        )
    );
    // Nothing of a refused request was stored: 4 + 2 messages only.
    c.create_group("g", 16).await;
    let mut total = 0;
    loop {
        let (code, got) = c.receive("g", "t", 32, 30_000, 500).await;
        if got.is_empty() {
            assert_eq!(code, Code::MessageNotFound);
            break;
        }
        total += got.len();
    }
    assert_eq!(total, 6);
}

/// The report: 10,000 messages in one call were accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_in_one_call_are_refused_by_default() {
    let pier = standalone_with_topic(&[]).await;
    let c = &pier.raw;
    let msgs = (0..10_000).map(|i| sized("t", i, 8)).collect();
    assert_eq!(send_many(c, msgs).await.0, Code::PayloadTooLarge);
    let msgs = (0..1024).map(|i| sized("t", i, 8)).collect();
    assert_eq!(send_many(c, msgs).await.0, Code::Ok, "the default is 1024");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_is_throttled_then_refilled() {
    // 2 per second, a burst of 2: a few quick calls empty the bucket.
    // Sends without fsync: the loop's pace is the limit's, not the disk's.
    let pier = standalone_with_topic(&["--rate-per-client", "2", "--flush", "async"]).await;
    let c = &pier.raw;
    let started = std::time::Instant::now();
    let mut ok = 0;
    let mut throttled = 0;
    for i in 0..12 {
        let (code, _) = send_many(c, vec![sized("t", i, 8)]).await;
        match code {
            Code::Ok => ok += 1,
            Code::TooManyRequests => throttled += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // The burst, plus a token per 500 ms the loop took (a slow machine
    // only lets more through, never fewer).
    let took = started.elapsed().as_secs_f64();
    let most = 2 + (took * 2.0).ceil() as usize;
    assert!(
        (2..=most).contains(&ok),
        "ok {ok}, throttled {throttled} in {took:.2} s"
    );
    if took < 4.0 {
        assert!(throttled > 0, "12 calls in {took:.2} s at 2/s");
    }
    // Receives count too, and say so in their status frame.
    let started = std::time::Instant::now();
    let mut codes = Vec::new();
    for _ in 0..10 {
        codes.push(c.receive("g", "t", 1, 30_000, 0).await.0);
    }
    if started.elapsed() < Duration::from_secs(4) {
        assert!(codes.contains(&Code::TooManyRequests), "{codes:?}");
    }
    // Another client has its own bucket.
    let other = Raw::connect(&c.endpoint).await;
    assert_eq!(send_many(&other, vec![sized("t", 0, 8)]).await.0, Code::Ok);
    // After a second the bucket is full again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 0..2 {
        assert_eq!(send_many(c, vec![sized("t", i, 8)]).await.0, Code::Ok);
    }
}

async fn inflight_limit_per_group(mode: Mode) {
    let pier = Pier::start(mode, &["--max-inflight-per-group", "5"]).await;
    let c = &pier.raw;
    c.create_topic("a", 2).await;
    c.create_topic("b", 2).await;
    c.create_group("g", 16).await;
    for i in 0..8 {
        send_many(c, vec![sized("a", i, 8)]).await;
        send_many(c, vec![sized("b", i, 8)]).await;
    }
    // The limit is the group's, over both topics.
    let (code, from_a) = c.receive("g", "a", 3, 30_000, 0).await;
    assert_eq!((code, from_a.len()), (Code::Ok, 3));
    let (code, from_b) = c.receive("g", "b", 32, 30_000, 0).await;
    assert_eq!((code, from_b.len()), (Code::Ok, 2), "5 - 3 left");
    let (code, none) = c.receive("g", "a", 32, 30_000, 1000).await;
    assert_eq!((code, none.len()), (Code::TooManyRequests, 0));
    // Another group is not affected.
    c.create_group("other", 16).await;
    let (code, got) = c.receive("other", "a", 4, 30_000, 0).await;
    assert_eq!((code, got.len()), (Code::Ok, 4));
    // Acks free room.
    for m in &from_a[..2] {
        assert_eq!(c.ack("g", "a", &handle(m)).await, Code::Ok);
    }
    let (code, got) = c.receive("g", "b", 32, 30_000, 0).await;
    assert_eq!((code, got.len()), (Code::Ok, 2));
    let (code, _) = c.receive("g", "b", 32, 30_000, 0).await;
    assert_eq!(code, Code::TooManyRequests);
}

async fn redeliveries_pass_the_inflight_limit(mode: Mode) {
    let pier = Pier::start(mode, &["--max-inflight-per-group", "2"]).await;
    let c = &pier.raw;
    c.create_topic("t", 1).await;
    c.create_group("g", 16).await;
    for i in 0..4 {
        send_many(c, vec![sized("t", i, 8)]).await;
    }
    let (_, first) = c.receive("g", "t", 32, 1_000, 0).await;
    assert_eq!(first.len(), 2);
    // Once invisible time is over they come again (they are already
    // counted), but nothing new.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (code, again) = c.receive("g", "t", 32, 30_000, 0).await;
    assert_eq!((code, again.len()), (Code::Ok, 2));
    let id = |m: &Message| m.system_properties.as_ref().map(|s| s.message_id.clone());
    let mut ids: Vec<_> = again.iter().map(id).collect();
    let mut before: Vec<_> = first.iter().map(id).collect();
    ids.sort();
    before.sort();
    assert_eq!(ids, before);
}

both_modes!(
    inflight_limit_per_group,
    redeliveries_pass_the_inflight_limit
);
