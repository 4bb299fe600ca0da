//! Behaviour of the store library: durability, pop semantics, redelivery,
//! dead-lettering, long polling, filtering and restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pier_proto::admin::*;
use pier_proto::store::*;
use pier_store::{Store, StoreApi, StoreError, StoreOptions};

fn open(dir: &std::path::Path) -> Arc<Store> {
    Arc::new(Store::open(dir, StoreOptions::default()).expect("open store"))
}

async fn setup(store: &Store, topic: &str, group: &str, max_attempts: u32) {
    store
        .create_topic(CreateTopicRequest {
            topic: Some(Topic {
                name: topic.into(),
                r#type: TopicType::Normal as i32,
                queues: 4,
                created_at_ms: 0,
            }),
        })
        .await
        .unwrap();
    store
        .create_group(CreateGroupRequest {
            group: Some(ConsumerGroup {
                name: group.into(),
                max_attempts,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
}

fn msg(id: &str, tag: Option<&str>) -> StoredMessage {
    StoredMessage {
        message_id: id.into(),
        tag: tag.map(str::to_owned),
        body: id.as_bytes().to_vec(),
        kind: MessageKind::Normal as i32,
        queue: u32::MAX,
        ..Default::default()
    }
}

async fn send(store: &Store, topic: &str, ids: &[&str]) {
    store
        .append(AppendRequest {
            topic: topic.into(),
            messages: ids.iter().map(|i| msg(i, None)).collect(),
        })
        .await
        .unwrap();
}

async fn pop(
    store: &Store,
    topic: &str,
    group: &str,
    max: u32,
    invisible_ms: u64,
    poll_ms: u64,
) -> Vec<PoppedMessage> {
    store
        .pop(PopRequest {
            group: group.into(),
            topic: topic.into(),
            filter: None,
            max_messages: max,
            invisible_ms,
            poll_ms,
        })
        .await
        .unwrap()
        .messages
}

fn delivery(group: &str, p: &PoppedMessage) -> Option<DeliveryRef> {
    let m = p.message.as_ref().unwrap();
    Some(DeliveryRef {
        group: group.into(),
        topic: m.topic.clone(),
        queue: m.queue,
        offset: m.offset,
        attempt: p.attempt,
    })
}

fn body(p: &PoppedMessage) -> String {
    String::from_utf8(p.message.as_ref().unwrap().body.clone()).unwrap()
}

#[tokio::test]
async fn every_message_is_delivered_once_and_ack_is_final() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    setup(&store, "t", "g", 17).await;
    let ids: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    send(&store, "t", &refs).await;

    let mut seen = std::collections::HashSet::new();
    loop {
        let got = pop(&store, "t", "g", 32, 30_000, 0).await;
        if got.is_empty() {
            break;
        }
        for p in &got {
            assert_eq!(p.attempt, 1);
            assert!(seen.insert(body(p)), "duplicate delivery of {}", body(p));
            store
                .ack(AckRequest {
                    delivery: delivery("g", p),
                })
                .await
                .unwrap();
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
            }),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StaleDelivery(_)), "{err:?}");
    let d = store
        .describe_group(DescribeGroupRequest { name: "g".into() })
        .await
        .unwrap();
    assert_eq!(d.backlog[0].ready, 0);
    assert_eq!(d.backlog[0].inflight, 0);
}

#[tokio::test]
async fn expired_message_comes_back_with_next_attempt_then_goes_to_dlq() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    setup(&store, "t", "g", 2).await;
    send(&store, "t", &["only"]).await;

    let first = pop(&store, "t", "g", 1, 100, 0).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempt, 1);
    // Invisible for 100 ms: a second pop finds nothing at once...
    assert!(pop(&store, "t", "g", 1, 100, 0).await.is_empty());
    // ...but a long poll is woken when it becomes visible again.
    let t0 = Instant::now();
    let second = pop(&store, "t", "g", 1, 100, 5_000).await;
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
    assert!(matches!(err, StoreError::StaleDelivery(_)));

    // Attempt 2 of 2 expires: the message moves to %DLQ%g instead.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(pop(&store, "t", "g", 1, 100, 0).await.is_empty());
    let d = store
        .describe_group(DescribeGroupRequest { name: "g".into() })
        .await
        .unwrap();
    assert_eq!(d.dlq, 1);
    store
        .create_group(CreateGroupRequest {
            group: Some(ConsumerGroup {
                name: "dlq-reader".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let dead = pop(&store, "%DLQ%g", "dlq-reader", 10, 10_000, 0).await;
    assert_eq!(dead.len(), 1);
    let m = dead[0].message.as_ref().unwrap();
    assert_eq!(m.dlq_origin_topic, "t");
    assert_eq!(m.dlq_origin_message_id, "only");
    assert_eq!(m.body, b"only");
}

#[tokio::test]
async fn long_poll_wakes_on_send() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    setup(&store, "t", "g", 17).await;
    let s2 = store.clone();
    let waiter = tokio::spawn(async move { pop(&s2, "t", "g", 8, 10_000, 5_000).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    send(&store, "t", &["hello"]).await;
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
#[tokio::test]
async fn long_poll_wakes_when_a_deadline_is_brought_forward() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    setup(&store, "t", "g", 17).await;
    send(&store, "t", &["nacked"]).await;
    let first = pop(&store, "t", "g", 1, 60_000, 0).await;
    assert_eq!(first.len(), 1);
    let s2 = store.clone();
    let waiter = tokio::spawn(async move { pop(&s2, "t", "g", 1, 60_000, 10_000).await });
    // Let the poll find nothing and go to sleep until its end.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    store
        .change_invisible(ChangeInvisibleRequest {
            delivery: delivery("g", &first[0]),
            invisible_ms: 200,
            expected_visible_at_ms: 0,
        })
        .await
        .unwrap();
    let got = waiter.await.unwrap();
    let took = t0.elapsed();
    assert_eq!(got.len(), 1);
    assert_eq!(body(&got[0]), "nacked");
    assert_eq!(got[0].attempt, 2);
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_secs(2),
        "redelivered {took:?} after the change, not about 200 ms"
    );
}

#[tokio::test]
async fn long_poll_times_out_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    setup(&store, "t", "g", 17).await;
    let t0 = Instant::now();
    assert!(pop(&store, "t", "g", 8, 10_000, 300).await.is_empty());
    let e = t0.elapsed();
    assert!(
        e >= Duration::from_millis(290) && e < Duration::from_secs(2),
        "{e:?}"
    );
}

#[tokio::test]
async fn tag_filter_skips_other_tags() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    setup(&store, "t", "g", 17).await;
    store
        .append(AppendRequest {
            topic: "t".into(),
            messages: vec![
                msg("a1", Some("a")),
                msg("b1", Some("b")),
                msg("n1", None),
                msg("c1", Some("c")),
            ],
        })
        .await
        .unwrap();
    let got = store
        .pop(PopRequest {
            group: "g".into(),
            topic: "t".into(),
            filter: Some(Filter {
                kind: filter::Kind::Tag as i32,
                expression: "a || c".into(),
            }),
            max_messages: 10,
            invisible_ms: 10_000,
            poll_ms: 0,
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
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    setup(&store, "t", "g", 17).await;
    let mut m = msg("x", None);
    m.kind = MessageKind::Fifo as i32;
    let err = store
        .append(AppendRequest {
            topic: "t".into(),
            messages: vec![m],
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TypeConflict(_)), "{err:?}");
    let err = store
        .append(AppendRequest {
            topic: "nope".into(),
            messages: vec![msg("x", None)],
        })
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::TopicNotFound("nope".into()));
    let err = store
        .pop(PopRequest {
            group: "nope".into(),
            topic: "t".into(),
            max_messages: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::GroupNotFound("nope".into()));
}

#[tokio::test]
async fn restart_keeps_messages_inflight_state_and_cursors() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        setup(&store, "t", "g", 17).await;
        send(&store, "t", &["a", "b", "c", "d"]).await;
        let got = pop(&store, "t", "g", 2, 60_000, 0).await;
        assert_eq!(got.len(), 2);
        store
            .ack(AckRequest {
                delivery: delivery("g", &got[0]),
            })
            .await
            .unwrap();
        store.shutdown();
    }
    let store = open(dir.path());
    // Creating again with the same settings is a no-op.
    let again = store
        .create_topic(CreateTopicRequest {
            topic: Some(Topic {
                name: "t".into(),
                r#type: TopicType::Normal as i32,
                queues: 4,
                created_at_ms: 0,
            }),
        })
        .await
        .unwrap();
    assert!(!again.created);
    let d = store
        .describe_group(DescribeGroupRequest { name: "g".into() })
        .await
        .unwrap();
    assert_eq!(d.backlog[0].inflight, 1, "{d:?}");
    assert_eq!(d.backlog[0].ready, 2, "{d:?}");
    // The two never-delivered messages come next, not the delivered ones.
    let rest = pop(&store, "t", "g", 10, 60_000, 0).await;
    assert_eq!(rest.len(), 2);
    // New sends continue after the old offsets.
    send(&store, "t", &["e"]).await;
    let e = pop(&store, "t", "g", 10, 60_000, 0).await;
    assert_eq!(e.len(), 1);
    assert_eq!(body(&e[0]), "e");
}

/// State changes are written behind the callers' backs, merged; what a
/// restart finds must still be the last change of each message: the pop's
/// put, then the ack's delete or the invisibility change's new put.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_after_many_concurrent_acks_finds_exactly_the_unacked() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..2000).map(|i| format!("m{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let kept = {
        let store = open(dir.path());
        setup(&store, "t", "g", 17).await;
        send(&store, "t", &ids).await;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut kept = Vec::new();
                loop {
                    let got = pop(&store, "t", "g", 32, 60_000, 0).await;
                    if got.is_empty() {
                        return kept;
                    }
                    for p in got {
                        let b = body(&p);
                        let n: u32 = b[1..].parse().unwrap();
                        if n.is_multiple_of(3) {
                            // Left in flight, with a changed deadline.
                            store
                                .change_invisible(ChangeInvisibleRequest {
                                    delivery: delivery("g", &p),
                                    invisible_ms: 120_000,
                                    expected_visible_at_ms: 0,
                                })
                                .await
                                .unwrap();
                            kept.push(b);
                        } else {
                            store
                                .ack(AckRequest {
                                    delivery: delivery("g", &p),
                                })
                                .await
                                .unwrap();
                        }
                    }
                }
            }));
        }
        let mut kept = Vec::new();
        for t in tasks {
            kept.extend(t.await.unwrap());
        }
        store.shutdown();
        kept
    };
    assert_eq!(kept.len(), 667);
    let store = open(dir.path());
    let d = store
        .describe_group(DescribeGroupRequest { name: "g".into() })
        .await
        .unwrap();
    assert_eq!(d.backlog[0].inflight, 667, "{d:?}");
    assert_eq!(d.backlog[0].ready, 0, "{d:?}");
    // Nothing acked comes back, and nothing kept is visible before its
    // changed deadline.
    assert!(pop(&store, "t", "g", 32, 60_000, 0).await.is_empty());
}

#[tokio::test]
async fn ack_many_answers_each_delivery_in_order_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    {
        let store = open(dir.path());
        setup(&store, "t", "g", 17).await;
        setup(&store, "u", "h", 17).await;
        send(&store, "t", &ids).await;
        send(&store, "u", &["other"]).await;
        let got = pop(&store, "t", "g", 40, 60_000, 0).await;
        assert_eq!(got.len(), 40);
        let other = pop(&store, "u", "h", 1, 60_000, 0).await;
        // Every other message of "t", then: one of them again (already
        // acked by then), one with a wrong attempt, one of an unknown group,
        // and one of another subscription.
        let mut deliveries: Vec<DeliveryRef> = got
            .iter()
            .step_by(2)
            .map(|p| delivery("g", p).unwrap())
            .collect();
        let n = deliveries.len();
        deliveries.push(deliveries[0].clone());
        let mut wrong_attempt = delivery("g", &got[1]).unwrap();
        wrong_attempt.attempt = 7;
        deliveries.push(wrong_attempt);
        deliveries.push(delivery("nobody", &got[3]).unwrap());
        deliveries.push(delivery("h", &other[0]).unwrap());
        let r = store.ack_many(AckManyRequest { deliveries }).await.unwrap();
        let results: Vec<_> = r
            .outcomes
            .into_iter()
            .map(pier_store::error::ack_result)
            .collect();
        assert_eq!(results.len(), n + 4);
        assert!(results[..n].iter().all(Result::is_ok), "{results:?}");
        assert!(matches!(results[n], Err(StoreError::StaleDelivery(_))));
        assert!(matches!(results[n + 1], Err(StoreError::StaleDelivery(_))));
        assert!(matches!(results[n + 2], Err(StoreError::GroupNotFound(_))));
        assert!(results[n + 3].is_ok(), "{results:?}");
        // The acked ones are gone at once; the others are still in flight.
        let d = store
            .describe_group(DescribeGroupRequest { name: "g".into() })
            .await
            .unwrap();
        assert_eq!(d.backlog[0].inflight, 20, "{d:?}");
        store.shutdown();
    }
    // After a restart the acks hold: the 20 others are still in flight
    // (invisible until their deadline), and the other subscription's is gone.
    let store = open(dir.path());
    assert!(pop(&store, "t", "g", 40, 60_000, 0).await.is_empty());
    let d = store
        .describe_group(DescribeGroupRequest { name: "g".into() })
        .await
        .unwrap();
    assert_eq!(d.backlog[0].inflight, 20, "{d:?}");
    assert_eq!(d.backlog[0].ready, 0, "{d:?}");
    let h = store
        .describe_group(DescribeGroupRequest { name: "h".into() })
        .await
        .unwrap();
    assert_eq!(h.backlog[0].inflight, 0, "{h:?}");
}

#[tokio::test]
async fn concurrent_sends_all_land_with_distinct_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    setup(&store, "t", "g", 17).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.append(AppendRequest {
                topic: "t".into(),
                messages: vec![msg(&format!("c{i}"), None)],
            })
            .await
            .unwrap()
            .results[0]
                .clone()
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

#[tokio::test]
async fn retention_deletes_expired_messages_and_cursors_follow() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    setup(&store, "t", "g", 17).await;
    send(&store, "t", &["old1", "old2", "old3"]).await;
    // One delivered and left in flight, so its redelivery meets a deleted message.
    let inflight = pop(&store, "t", "g", 1, 50, 0).await;
    assert_eq!(inflight.len(), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(&store, "t", &["new"]).await;
    let deleted = store.sweep_retention(80).unwrap();
    assert_eq!(deleted, 3);
    let d = store
        .describe_topic(DescribeTopicRequest { name: "t".into() })
        .await
        .unwrap();
    assert_eq!(
        d.queues
            .iter()
            .map(|q| q.max_offset - q.min_offset)
            .sum::<u64>(),
        1
    );
    // Only the message within retention is delivered; the expired in-flight
    // one is dropped instead of redelivered.
    let got = pop(&store, "t", "g", 10, 10_000, 0).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), vec!["new"]);
    let d = store
        .describe_group(DescribeGroupRequest { name: "g".into() })
        .await
        .unwrap();
    assert_eq!(d.backlog[0].inflight, 1, "{d:?}");
    assert_eq!(d.backlog[0].ready, 0, "{d:?}");
}

async fn delay_topic(store: &Store, name: &str) {
    store
        .create_topic(CreateTopicRequest {
            topic: Some(Topic {
                name: name.into(),
                r#type: TopicType::Delay as i32,
                queues: 2,
                created_at_ms: 0,
            }),
        })
        .await
        .unwrap();
}

fn delayed(id: &str, at_ms: i64) -> StoredMessage {
    StoredMessage {
        kind: MessageKind::Delay as i32,
        deliver_at_ms: at_ms,
        ..msg(id, None)
    }
}

#[tokio::test]
async fn delay_message_is_hidden_until_due_then_delivered_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    setup(&store, "t", "g", 17).await;
    delay_topic(&store, "d").await;
    let due = pier_store::now_ms() + 400;
    let r = store
        .append(AppendRequest {
            topic: "d".into(),
            messages: vec![delayed("later", due)],
        })
        .await
        .unwrap();
    assert!(
        !r.results[0].timer.is_empty(),
        "a scheduled message gets a timer"
    );
    assert!(
        pop(&store, "d", "g", 1, 10_000, 0).await.is_empty(),
        "hidden before its time"
    );
    let got = pop(&store, "d", "g", 1, 10_000, 3_000).await;
    let late = pier_store::now_ms() - due;
    assert_eq!(got.len(), 1);
    assert_eq!(body(&got[0]), "later");
    assert_eq!(got[0].message.as_ref().unwrap().deliver_at_ms, due);
    assert!(
        (0..200).contains(&late),
        "delivered {late} ms after its time"
    );
}

#[tokio::test]
async fn recall_cancels_a_pending_delay_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    setup(&store, "t", "g", 17).await;
    delay_topic(&store, "d").await;
    let r = store
        .append(AppendRequest {
            topic: "d".into(),
            messages: vec![delayed("cancel-me", pier_store::now_ms() + 300)],
        })
        .await
        .unwrap();
    let timer = r.results[0].timer.clone();
    let id = store
        .recall(RecallRequest {
            topic: "d".into(),
            timer: timer.clone(),
        })
        .await
        .unwrap()
        .message_id;
    assert_eq!(id, "cancel-me");
    let again = store
        .recall(RecallRequest {
            topic: "d".into(),
            timer,
        })
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::NotFound(_)), "{again:?}");
    assert!(
        pop(&store, "d", "g", 1, 10_000, 800).await.is_empty(),
        "a recalled message is never delivered"
    );
    let bogus = store
        .recall(RecallRequest {
            topic: "d".into(),
            timer: b"nonsense".to_vec(),
        })
        .await
        .unwrap_err();
    assert!(matches!(bogus, StoreError::NotFound(_)));
}

#[tokio::test]
async fn timers_survive_restart_and_overdue_ones_fire_at_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        setup(&store, "t", "g", 17).await;
        delay_topic(&store, "d").await;
        let now = pier_store::now_ms();
        store
            .append(AppendRequest {
                topic: "d".into(),
                messages: vec![
                    delayed("overdue", now + 200),
                    delayed("future", now + 1_500),
                ],
            })
            .await
            .unwrap();
        store.shutdown();
    }
    // Down past the first timer's time.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let store = open(dir.path());
    let first = pop(&store, "d", "g", 2, 10_000, 1_000).await;
    assert_eq!(first.iter().map(body).collect::<Vec<_>>(), vec!["overdue"]);
    let second = pop(&store, "d", "g", 2, 10_000, 3_000).await;
    assert_eq!(second.iter().map(body).collect::<Vec<_>>(), vec!["future"]);
}

#[tokio::test]
async fn half_messages_survive_restart_and_commit_once() {
    let dir = tempfile::tempdir().unwrap();
    let txn_id;
    {
        let store = open(dir.path());
        setup(&store, "t", "g", 17).await;
        store
            .create_topic(CreateTopicRequest {
                topic: Some(Topic {
                    name: "tx".into(),
                    r#type: TopicType::Transaction as i32,
                    queues: 1,
                    created_at_ms: 0,
                }),
            })
            .await
            .unwrap();
        let r = store
            .append(AppendRequest {
                topic: "tx".into(),
                messages: vec![StoredMessage {
                    kind: MessageKind::Transaction as i32,
                    ..msg("pending", None)
                }],
            })
            .await
            .unwrap();
        txn_id = r.results[0].transaction_id.clone();
        assert_eq!(txn_id.len(), 32);
        assert!(pop(&store, "tx", "g", 1, 10_000, 0).await.is_empty());
        store.shutdown();
    }
    let store = open(dir.path());
    let end = |resolution: Resolution| EndTransactionRequest {
        topic: "tx".into(),
        transaction_id: txn_id.clone(),
        resolution: resolution as i32,
    };
    store
        .end_transaction(end(Resolution::Unknown))
        .await
        .unwrap();
    assert!(
        pop(&store, "tx", "g", 1, 10_000, 0).await.is_empty(),
        "UNKNOWN keeps it pending"
    );
    let r = store
        .end_transaction(end(Resolution::Commit))
        .await
        .unwrap();
    assert_eq!(r.message_id, "pending");
    let again = store
        .end_transaction(end(Resolution::Commit))
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::NotFound(_)));
    let got = pop(&store, "tx", "g", 10, 10_000, 0).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), vec!["pending"]);
}

fn grouped(id: &str, group: &str) -> StoredMessage {
    StoredMessage {
        kind: MessageKind::Fifo as i32,
        message_group: group.into(),
        // A different queue hint per message, as clients in several
        // languages would pick: order must hold anyway.
        queue: id.len() as u32 % 4,
        ..msg(id, None)
    }
}

#[tokio::test]
async fn fifo_one_in_flight_per_message_group_and_no_head_of_line_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create_topic(CreateTopicRequest {
            topic: Some(Topic {
                name: "f".into(),
                r#type: TopicType::Fifo as i32,
                queues: 4,
                created_at_ms: 0,
            }),
        })
        .await
        .unwrap();
    store
        .create_group(CreateGroupRequest {
            group: Some(ConsumerGroup {
                name: "ordered".into(),
                fifo: true,
                max_attempts: 17,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let mut messages = Vec::new();
    for i in 0..5 {
        for g in ["a", "b", "c"] {
            messages.push(grouped(&format!("{g}{i}{}", "x".repeat(i)), g));
        }
    }
    store
        .append(AppendRequest {
            topic: "f".into(),
            messages,
        })
        .await
        .unwrap();

    let first = pop(&store, "f", "ordered", 32, 200, 0).await;
    let mut bodies: Vec<String> = first.iter().map(body).collect();
    bodies.sort();
    assert_eq!(
        bodies,
        vec!["a0", "b0", "c0"],
        "one message per group in flight"
    );

    // Group a is slow (never acked); b and c go on without waiting for it.
    let mut seen = std::collections::HashMap::<String, Vec<String>>::new();
    for p in first.iter().filter(|p| !body(p).starts_with('a')) {
        store
            .ack(AckRequest {
                delivery: delivery("ordered", p),
            })
            .await
            .unwrap();
        let b = body(p);
        seen.entry(b[..1].to_string()).or_default().push(b);
    }
    for _ in 0..20 {
        let got = pop(&store, "f", "ordered", 32, 200, 0).await;
        for p in &got {
            let b = body(p);
            if b.starts_with('a') {
                continue;
            }
            seen.entry(b[..1].to_string()).or_default().push(b);
            store
                .ack(AckRequest {
                    delivery: delivery("ordered", p),
                })
                .await
                .unwrap();
        }
    }
    for g in ["b", "c"] {
        let order: Vec<String> = seen[g].iter().map(|b| b[..2].to_string()).collect();
        assert_eq!(
            order,
            (0..5).map(|i| format!("{g}{i}")).collect::<Vec<_>>(),
            "group {g} in order"
        );
    }

    // a0 expired meanwhile: it comes back first, attempt > 1, before a1.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let again = pop(&store, "f", "ordered", 32, 10_000, 0).await;
    assert_eq!(again.iter().map(body).collect::<Vec<_>>(), vec!["a0"]);
    assert!(again[0].attempt > 1);
    store
        .ack(AckRequest {
            delivery: delivery("ordered", &again[0]),
        })
        .await
        .unwrap();
    let mut rest = Vec::new();
    for _ in 0..10 {
        for p in pop(&store, "f", "ordered", 32, 10_000, 0).await {
            rest.push(body(&p)[..2].to_string());
            store
                .ack(AckRequest {
                    delivery: delivery("ordered", &p),
                })
                .await
                .unwrap();
        }
    }
    assert_eq!(rest, vec!["a1", "a2", "a3", "a4"]);
}

#[tokio::test]
async fn fifo_locks_and_parked_messages_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .create_topic(CreateTopicRequest {
                topic: Some(Topic {
                    name: "f".into(),
                    r#type: TopicType::Fifo as i32,
                    queues: 2,
                    created_at_ms: 0,
                }),
            })
            .await
            .unwrap();
        store
            .create_group(CreateGroupRequest {
                group: Some(ConsumerGroup {
                    name: "ordered".into(),
                    fifo: true,
                    ..Default::default()
                }),
            })
            .await
            .unwrap();
        store
            .append(AppendRequest {
                topic: "f".into(),
                messages: vec![grouped("k1", "k"), grouped("k2", "k"), grouped("k3", "k")],
            })
            .await
            .unwrap();
        let got = pop(&store, "f", "ordered", 32, 60_000, 0).await;
        assert_eq!(got.iter().map(body).collect::<Vec<_>>(), vec!["k1"]);
        store.shutdown();
    }
    let store = open(dir.path());
    // k1 still holds the group after the restart: nothing else is delivered.
    assert!(pop(&store, "f", "ordered", 32, 60_000, 0).await.is_empty());
    let d = store
        .describe_group(DescribeGroupRequest {
            name: "ordered".into(),
        })
        .await
        .unwrap();
    assert_eq!((d.backlog[0].ready, d.backlog[0].inflight), (2, 1), "{d:?}");
}
