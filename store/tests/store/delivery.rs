//! Delivery basics: once, redelivery with the next attempt, dead-lettering,
//! long polls, filters, refusals and concurrent appends.

use std::time::{Duration, Instant};

use pier_proto::admin::*;
use pier_proto::store::*;
use pier_store::{StoreApi, StoreError};

use crate::common::*;

#[tokio::test]
async fn every_message_is_delivered_once_and_ack_is_final() {
    let (_dir, store) = fresh("t", "g", 17).await;
    let ids: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    send(&*store, "t", &refs).await;

    let mut seen = std::collections::HashSet::new();
    loop {
        let got = pop(&*store, "t", "g", 32, 30_000, 0).await;
        if got.is_empty() {
            break;
        }
        for p in &got {
            assert_eq!(p.attempt, 1);
            assert!(seen.insert(body(p)), "duplicate delivery of {}", body(p));
            ack(&*store, "g", p).await;
        }
    }
    assert_eq!(seen.len(), 100);
    // Acking twice is refused: the delivery is no longer current.
    let err = store
        .ack(AckRequest {
            delivery: Some(DeliveryRef {
                group: "g".into(),
                topic: "t".into(),
                queue: 0,
                offset: 0,
                attempt: 1,
                handle_seq: 0,
            }),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StaleDelivery { .. }), "{err:?}");
    let d = describe(&*store, "g").await;
    assert_eq!(d.backlog[0].ready, 0);
    assert_eq!(d.backlog[0].inflight, 0);
}

#[tokio::test]
async fn expired_message_comes_back_with_next_attempt_then_goes_to_dlq() {
    let (_dir, store) = fresh("t", "g", 2).await;
    send(&*store, "t", &["only"]).await;

    let first = pop(&*store, "t", "g", 1, 100, 0).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempt, 1);
    // Invisible for 100 ms: a second pop finds nothing at once...
    assert!(pop(&*store, "t", "g", 1, 100, 0).await.is_empty());
    // ...but a long poll is woken when it becomes visible again.
    let t0 = Instant::now();
    let second = pop(&*store, "t", "g", 1, 100, 5_000).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempt, 2);
    assert!(t0.elapsed() < Duration::from_secs(2));
    // The first delivery's reference is stale now.
    let err = store
        .ack(AckRequest {
            delivery: delivery("g", &first[0]),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StaleDelivery { .. }));

    // Attempt 2 of 2 expires: the message moves to %DLQ%g instead.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(pop(&*store, "t", "g", 1, 100, 0).await.is_empty());
    let d = describe(&*store, "g").await;
    assert_eq!(d.dlq, 1);
    create_group(&*store, "dlq-reader", false, 0).await;
    let dead = pop(&*store, "%DLQ%g", "dlq-reader", 10, 10_000, 0).await;
    assert_eq!(dead.len(), 1);
    let m = dead[0].message.as_ref().unwrap();
    assert_eq!(m.dlq_origin_topic, "t");
    assert_eq!(m.dlq_origin_message_id, "only");
    assert_eq!(m.body, &b"only"[..]);
}

#[tokio::test]
async fn long_poll_wakes_on_send() {
    let (_dir, store) = fresh("t", "g", 17).await;
    let s2 = store.clone();
    let waiter = tokio::spawn(async move { pop(&*s2, "t", "g", 8, 10_000, 5_000).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    send(&*store, "t", &["hello"]).await;
    let got = waiter.await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(t0.elapsed() < Duration::from_millis(1000));
}

/// A long poll that began while the only message was invisible for a long
/// time must see ChangeInvisibleDuration bring its deadline forward: a push
/// consumer's nack turns the proxy's long auto-renew invisibility into a
/// short backoff, and the redelivery must follow the backoff, not the end of
/// the poll (seen with the Java client: 500 ms backoff, redelivered after the
/// 20 s long poll).
/// Asserts that `took` is about `ms`: not less (but for 10 ms of timer
/// rounding), and well under 2 s.
fn assert_about(took: Duration, ms: u64, what: &str) {
    assert!(
        took >= Duration::from_millis(ms - 10) && took < Duration::from_secs(2),
        "{what} after {took:?}, not about {ms} ms"
    );
}

#[tokio::test]
async fn long_poll_wakes_when_a_deadline_is_brought_forward() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    setup(&*store, "t", "g", 17).await;
    send(&*store, "t", &["nacked"]).await;
    let first = pop(&*store, "t", "g", 1, 60_000, 0).await;
    assert_eq!(first.len(), 1);
    let s2 = store.clone();
    let waiter = tokio::spawn(async move { pop(&*s2, "t", "g", 1, 60_000, 10_000).await });
    // Let the poll find nothing and go to sleep until its end.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    change_invisible(&*store, "g", &first[0], 200).await;
    let got = waiter.await.unwrap();
    let took = t0.elapsed();
    assert_eq!(got.len(), 1);
    assert_eq!(body(&got[0]), "nacked");
    assert_eq!(got[0].attempt, 2);
    assert_about(took, 200, "redelivered after the change");
}

#[tokio::test]
async fn long_poll_times_out_empty() {
    let (_dir, store) = fresh("t", "g", 17).await;
    let t0 = Instant::now();
    assert!(pop(&*store, "t", "g", 8, 10_000, 300).await.is_empty());
    assert_about(t0.elapsed(), 300, "answered empty");
}

#[tokio::test]
async fn tag_filter_skips_other_tags() {
    let (_dir, store) = fresh("t", "g", 17).await;
    append(
        &*store,
        "t",
        vec![
            msg("a1", Some("a")),
            msg("b1", Some("b")),
            msg("n1", None),
            msg("c1", Some("c")),
        ],
    )
    .await;
    let got = store
        .pop(PopRequest {
            filter: Some(Filter {
                kind: filter::Kind::Tag as i32,
                expression: "a || c".into(),
            }),
            ..pop_request("t", "g", 10, 10_000, 0)
        })
        .await
        .unwrap()
        .messages;
    let mut bodies: Vec<String> = got.iter().map(body).collect();
    bodies.sort();
    assert_eq!(bodies, vec!["a1", "c1"]);
}

#[tokio::test]
async fn type_conflict_and_unknown_names_are_refused() {
    let (_dir, store) = fresh("t", "g", 17).await;
    let mut m = msg("x", None);
    m.kind = MessageKind::Fifo as i32;
    let err = store
        .append(AppendRequest {
            topic: "t".into(),
            messages: vec![m],
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TypeConflict { .. }), "{err:?}");
    let err = store
        .append(AppendRequest {
            topic: "nope".into(),
            messages: vec![msg("x", None)],
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::TopicNotFound { topic } if topic == "nope"),
        "{err:?}"
    );
    let err = store
        .pop(pop_request("t", "nope", 1, 0, 0))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::GroupNotFound { group } if group == "nope"),
        "{err:?}"
    );
}

#[tokio::test]
async fn concurrent_sends_all_land_with_distinct_offsets() {
    let (_dir, store) = fresh("t", "g", 17).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let r = append(&*s, "t", vec![msg(&format!("c{i}"), None)]).await;
            r.results[0].clone()
        }));
    }
    let mut positions = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert!(positions.insert((r.queue, r.offset)));
    }
    let d = store
        .describe_topic(DescribeTopicRequest { name: "t".into() })
        .await
        .unwrap();
    assert_eq!(d.queues.iter().map(|q| q.max_offset).sum::<u64>(), 200);
}

/// A pop stops at 16 MiB of messages (a single bigger one goes alone), so
/// its reply always fits the store link; what it leaves is delivered by
/// the next pops, each message once, with its first attempt.
#[tokio::test]
async fn a_pop_is_bounded_by_bytes_and_leaves_the_rest_for_the_next() {
    let (_dir, store) = fresh("t", "g", 2).await;
    let big = |i: usize| StoredMessage {
        body: vec![b'x'; 3 << 20].into(),
        ..msg(&format!("m{i}"), None)
    };
    append(&*store, "t", (0..12).map(big).collect()).await;
    append(
        &*store,
        "t",
        vec![StoredMessage {
            body: vec![b'y'; 20 << 20].into(),
            ..msg("huge", None)
        }],
    )
    .await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let got = pop(&*store, "t", "g", 32, 60_000, 0).await;
        if got.is_empty() {
            break;
        }
        let bytes: usize = got
            .iter()
            .map(|p| p.message.as_ref().unwrap().body.len())
            .sum();
        assert!(
            got.len() == 1 || bytes <= 16 << 20,
            "{} messages, {bytes} bytes in one pop",
            got.len()
        );
        for p in &got {
            assert_eq!(p.attempt, 1);
            assert!(seen.insert(p.message.as_ref().unwrap().message_id.clone()));
            ack(&*store, "g", p).await;
        }
    }
    assert_eq!(seen.len(), 13, "every message delivered once");
    assert!(seen.contains("huge"));
}

/// Released deliveries (their reply never reached a consumer) are visible
/// at once and their attempt is not counted: with one attempt allowed,
/// nothing reaches the dead-letter queue.
#[tokio::test]
async fn released_deliveries_come_back_at_once_without_counting_an_attempt() {
    let (_dir, store) = fresh("t", "g", 1).await;
    send(&*store, "t", &["a", "b"]).await;
    for _ in 0..3 {
        let got = pop(&*store, "t", "g", 10, 60_000, 0).await;
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|p| p.attempt == 1), "{got:?}");
        assert_eq!(release(&*store, "g", &got).await, 2);
    }
    let got = pop(&*store, "t", "g", 10, 60_000, 0).await;
    assert_eq!(got.len(), 2);
    for p in &got {
        ack(&*store, "g", p).await;
    }
    // Releasing what is acked does nothing.
    assert_eq!(release(&*store, "g", &got).await, 0);
    let d = describe(&*store, "g").await;
    assert_eq!((d.backlog[0].ready, d.backlog[0].inflight), (0, 0), "{d:?}");
}

/// A pop dropped after it recorded its deliveries but before it answered
/// (its consumer went away) undoes them: visible at once, first attempt.
#[tokio::test]
async fn a_pop_dropped_before_answering_leaves_its_messages_visible() {
    use std::future::Future;
    use std::task::Poll;
    let (_dir, store) = fresh("t", "g", 17).await;
    send(&*store, "t", &["a"]).await;
    let req = pop_request("t", "g", 1, 60_000, 0);
    {
        let mut fut = std::pin::pin!(store.pop(req));
        // One poll takes the message and then waits for the WAL sync of
        // its delivery; the future is dropped there.
        let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        assert!(first.is_pending(), "the delivery's sync was already done");
    }
    let got = pop(&*store, "t", "g", 10, 60_000, 0).await;
    assert_eq!(got.len(), 1, "the message stayed invisible");
    assert_eq!(got[0].attempt, 1);
}

/// A consumer's ChangeInvisibleDuration retires the handle it was given:
/// only the new one acks, changes or dead-letters from then on, also after
/// a restart. A proxy's background renewal keeps the consumer's handle.
#[tokio::test]
async fn a_change_retires_the_handle_it_changed_unless_it_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    setup(&*store, "t", "g", 5).await;
    send(&*store, "t", &["only"]).await;
    let got = pop(&*store, "t", "g", 1, 60_000, 0).await;
    let first = delivery("g", &got[0]).unwrap();
    let change = |d: &DeliveryRef, keep_handle: bool| ChangeInvisibleRequest {
        delivery: Some(d.clone()),
        invisible_ms: 60_000,
        expected_visible_at_ms: 0,
        keep_handle,
    };

    let renewed = store.change_invisible(change(&first, true)).await.unwrap();
    assert_eq!(renewed.handle_seq, 0, "a renewal keeps the handle");
    let changed = store.change_invisible(change(&first, false)).await.unwrap();
    assert_eq!(changed.handle_seq, 1);
    let second = DeliveryRef {
        handle_seq: changed.handle_seq,
        ..first.clone()
    };
    let stale = |r: Result<(), StoreError>| {
        assert!(matches!(r, Err(StoreError::StaleDelivery { .. })), "{r:?}");
    };
    stale(
        store
            .ack(AckRequest {
                delivery: Some(first.clone()),
            })
            .await
            .map(|_| ()),
    );
    stale(
        store
            .change_invisible(change(&first, false))
            .await
            .map(|_| ()),
    );
    stale(
        store
            .forward_to_dlq(ForwardToDlqRequest {
                delivery: Some(first.clone()),
            })
            .await
            .map(|_| ()),
    );
    let d = describe(&*store, "g").await;
    assert_eq!(d.backlog[0].inflight, 1, "the refusals left it in flight");

    // The new handle's sequence is on disk: after a restart the old handle
    // still cannot ack, the new one can.
    store.shutdown();
    drop(store);
    let store = open(dir.path());
    stale(
        store
            .ack(AckRequest {
                delivery: Some(first),
            })
            .await
            .map(|_| ()),
    );
    store
        .ack(AckRequest {
            delivery: Some(second),
        })
        .await
        .unwrap();
    let d = describe(&*store, "g").await;
    assert_eq!((d.backlog[0].ready, d.backlog[0].inflight), (0, 0), "{d:?}");
}
