//! What survives a restart: messages, in-flight state, cursors, acks; and
//! retention.

use std::time::Duration;

use pier_proto::admin::*;
use pier_proto::store::*;
use pier_store::{StoreApi, StoreError};

use crate::common::*;

#[tokio::test]
async fn restart_keeps_messages_inflight_state_and_cursors() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        setup(&*store, "t", "g", 17).await;
        send(&*store, "t", &["a", "b", "c", "d"]).await;
        let got = pop(&*store, "t", "g", 2, 60_000, 0).await;
        assert_eq!(got.len(), 2);
        ack(&*store, "g", &got[0]).await;
        store.shutdown();
    }
    let store = open(dir.path());
    // Creating again with the same settings is a no-op.
    assert!(!create_topic(&*store, "t", TopicType::Normal, 4).await);
    let d = describe(&*store, "g").await;
    assert_eq!(d.backlog[0].inflight, 1, "{d:?}");
    assert_eq!(d.backlog[0].ready, 2, "{d:?}");
    // The two never-delivered messages come next, not the delivered ones.
    let rest = pop(&*store, "t", "g", 10, 60_000, 0).await;
    assert_eq!(rest.len(), 2);
    // New sends continue after the old offsets.
    send(&*store, "t", &["e"]).await;
    let e = pop(&*store, "t", "g", 10, 60_000, 0).await;
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
        setup(&*store, "t", "g", 17).await;
        send(&*store, "t", &ids).await;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut kept = Vec::new();
                loop {
                    let got = pop(&*store, "t", "g", 32, 60_000, 0).await;
                    if got.is_empty() {
                        return kept;
                    }
                    for p in got {
                        let b = body(&p);
                        let n: u32 = b[1..].parse().unwrap();
                        if n.is_multiple_of(3) {
                            // Left in flight, with a changed deadline.
                            change_invisible(&*store, "g", &p, 120_000).await;
                            kept.push(b);
                        } else {
                            ack(&*store, "g", &p).await;
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
    let d = describe(&*store, "g").await;
    assert_eq!(d.backlog[0].inflight, 667, "{d:?}");
    assert_eq!(d.backlog[0].ready, 0, "{d:?}");
    // Nothing acked comes back, and nothing kept is visible before its
    // changed deadline.
    assert!(pop(&*store, "t", "g", 32, 60_000, 0).await.is_empty());
}

#[tokio::test]
async fn ack_many_answers_each_delivery_in_order_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    {
        let store = open(dir.path());
        setup(&*store, "t", "g", 17).await;
        setup(&*store, "u", "h", 17).await;
        send(&*store, "t", &ids).await;
        send(&*store, "u", &["other"]).await;
        let got = pop(&*store, "t", "g", 40, 60_000, 0).await;
        assert_eq!(got.len(), 40);
        let other = pop(&*store, "u", "h", 1, 60_000, 0).await;
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
        let results: Vec<_> = r.outcomes.into_iter().map(pier_store::ack_result).collect();
        assert_eq!(results.len(), n + 4);
        assert!(results[..n].iter().all(Result::is_ok), "{results:?}");
        assert!(matches!(results[n], Err(StoreError::StaleDelivery { .. })));
        assert!(matches!(
            results[n + 1],
            Err(StoreError::StaleDelivery { .. })
        ));
        assert!(matches!(
            results[n + 2],
            Err(StoreError::GroupNotFound { .. })
        ));
        assert!(results[n + 3].is_ok(), "{results:?}");
        // The acked ones are gone at once; the others are still in flight.
        let d = describe(&*store, "g").await;
        assert_eq!(d.backlog[0].inflight, 20, "{d:?}");
        store.shutdown();
    }
    // After a restart the acks hold: the 20 others are still in flight
    // (invisible until their deadline), and the other subscription's is gone.
    let store = open(dir.path());
    assert!(pop(&*store, "t", "g", 40, 60_000, 0).await.is_empty());
    let d = describe(&*store, "g").await;
    assert_eq!(d.backlog[0].inflight, 20, "{d:?}");
    assert_eq!(d.backlog[0].ready, 0, "{d:?}");
    let h = describe(&*store, "h").await;
    assert_eq!(h.backlog[0].inflight, 0, "{h:?}");
}

#[tokio::test]
async fn retention_deletes_expired_messages_and_cursors_follow() {
    let (_dir, store) = fresh("t", "g", 17).await;
    send(&*store, "t", &["old1", "old2", "old3"]).await;
    // One delivered and left in flight, so its redelivery meets a deleted message.
    let inflight = pop(&*store, "t", "g", 1, 50, 0).await;
    assert_eq!(inflight.len(), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(&*store, "t", &["new"]).await;
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
    let got = pop(&*store, "t", "g", 10, 10_000, 0).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), vec!["new"]);
    let d = describe(&*store, "g").await;
    assert_eq!(d.backlog[0].inflight, 1, "{d:?}");
    assert_eq!(d.backlog[0].ready, 0, "{d:?}");
}
