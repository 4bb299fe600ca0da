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

/// The RocksDB database of a stopped store, opened directly (to damage it).
fn raw_db(dir: &std::path::Path) -> rocksdb::DB {
    let opts = rocksdb::Options::default();
    let cfs = rocksdb::DB::list_cf(&opts, dir).expect("column families");
    rocksdb::DB::open_cf(&opts, dir, &cfs).expect("open")
}

/// Overwrites the `n`th record of the message log (in key order) with
/// bytes no decoder accepts, as a damaged disk might.
fn corrupt_log_record(dir: &std::path::Path, n: usize) {
    let db = raw_db(dir);
    let log = db.cf_handle("log").expect("the log");
    let (key, _) = db
        .iterator_cf(log, rocksdb::IteratorMode::Start)
        .nth(n)
        .expect("record n")
        .expect("readable");
    db.put_cf(log, key, b"\xff\xff\xff\xff not a message")
        .expect("overwrite");
}

/// A message that cannot be read stops neither the rest of a pop nor, when
/// it is due again, the redeliveries of its group: what the pop took
/// before it goes out (it was recorded as delivered), the unreadable one
/// waits an invisible time without an attempt counted, and a pop that
/// took nothing fails with the cause.
#[tokio::test]
async fn an_unreadable_message_does_not_swallow_the_pop_around_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        create_topic(&*store, "c", TopicType::Normal, 1).await;
        create_group(&*store, "g", false, 17).await;
        send(&*store, "c", &["a", "b", "c", "d"]).await;
        // "a" in flight, due again in 300 ms.
        let got = pop(&*store, "c", "g", 1, 300, 0).await;
        assert_eq!(body(&got[0]), "a");
        store.shutdown();
    }
    corrupt_log_record(dir.path(), 0); // "a"
    corrupt_log_record(dir.path(), 2); // "c"
    tokio::time::sleep(Duration::from_millis(400)).await;
    let store = open(dir.path());
    // "a" is due but unreadable, "b" is taken, "c" stops the scan.
    let got = pop(&*store, "c", "g", 10, 60_000, 0).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["b"]);
    ack(&*store, "g", &got[0]).await;
    // Nothing to take before "c": the pop says why.
    let err = store
        .pop(pop_request("c", "g", 10, 60_000, 0))
        .await
        .expect_err("an unreadable message");
    assert!(matches!(err, StoreError::Storage { .. }), "{err:?}");
    let d = describe(&*store, "g").await;
    assert_eq!(d.backlog[0].inflight, 1, "\"a\" waits, {d:?}");
}

/// An in-flight entry whose record cannot be read is not lost behind the
/// cursor: its message is delivered again at once.
#[tokio::test]
async fn an_unreadable_inflight_entry_is_delivered_again() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        create_topic(&*store, "c", TopicType::Normal, 1).await;
        create_group(&*store, "g", false, 17).await;
        send(&*store, "c", &["a", "b"]).await;
        let got = pop(&*store, "c", "g", 1, 3_600_000, 0).await;
        assert_eq!(body(&got[0]), "a");
        store.shutdown();
    }
    {
        let db = raw_db(dir.path());
        let pop_cf = db.cf_handle("pop").expect("the consumption state");
        let inflight: Vec<Box<[u8]>> = db
            .iterator_cf(pop_cf, rocksdb::IteratorMode::Start)
            .map(|kv| kv.expect("readable").0)
            .filter(|k| k.first() == Some(&b'i'))
            .collect();
        assert_eq!(inflight.len(), 1);
        db.put_cf(pop_cf, &inflight[0], b"\xff").expect("overwrite");
    }
    let store = open(dir.path());
    let got = pop(&*store, "c", "g", 10, 60_000, 0).await;
    let mut bodies: Vec<String> = got.iter().map(body).collect();
    bodies.sort();
    assert_eq!(bodies, ["a", "b"], "\"a\" again, though its hour is not up");
}

/// A queue whose head cannot be read holds up only its own retention.
#[tokio::test]
async fn retention_goes_past_a_queue_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    // Topics are swept in no set order: with seven others, one sweep that
    // stopped at the damaged queue would almost surely leave some behind.
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    {
        let store = open(dir.path());
        for name in names {
            create_topic(&*store, name, TopicType::Normal, 1).await;
            send(&*store, name, &[name]).await;
        }
        store.shutdown();
    }
    // Topic "a" was created first: its record comes first.
    corrupt_log_record(dir.path(), 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let store = open(dir.path());
    assert!(
        store.sweep_retention(50).is_err(),
        "the failure is reported"
    );
    for name in names {
        let d = store
            .describe_topic(DescribeTopicRequest { name: name.into() })
            .await
            .unwrap();
        let kept: u64 = d.queues.iter().map(|q| q.max_offset - q.min_offset).sum();
        assert_eq!(kept, u64::from(name == "a"), "topic {name}");
    }
}

/// A topic recorded with an impossible queue count stops the store at
/// start, saying so (a send would otherwise divide by zero).
#[tokio::test]
async fn a_topic_recorded_without_queues_stops_the_start() {
    use prost::Message as _;
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        create_topic(&*store, "q", TopicType::Normal, 2).await;
        store.shutdown();
    }
    {
        let db = raw_db(dir.path());
        let meta = db.cf_handle("meta").expect("the catalog");
        let (key, value) = db
            .iterator_cf(meta, rocksdb::IteratorMode::Start)
            .map(|kv| kv.expect("readable"))
            .find(|(k, _)| k.first() == Some(&b't'))
            .expect("the topic's record");
        let mut topic = Topic::decode(&value[4..]).expect("a topic");
        assert_eq!(topic.queues, 2);
        topic.queues = 0;
        let mut damaged = value[..4].to_vec();
        damaged.extend_from_slice(&topic.encode_to_vec());
        db.put_cf(meta, key, damaged).expect("overwrite");
    }
    let err = pier_store::Store::open(dir.path(), pier_store::StoreOptions::default())
        .err()
        .expect("a refused start");
    assert!(
        err.report().contains("recorded with 0 queues"),
        "{}",
        err.report()
    );
}
