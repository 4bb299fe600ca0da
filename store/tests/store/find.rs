//! Finding messages through the message index: by each key, by id, in
//! entry order with a limit, after a restart; and the index entries leave
//! with their messages (purge, retention, topic deletion, redrive).

use std::time::Duration;

use pier_proto::admin::*;
use pier_proto::store::*;
use pier_store::StoreApi;

use crate::common::*;

fn keyed(id: &str, keys: &[&str]) -> StoredMessage {
    StoredMessage {
        keys: keys.iter().map(|k| k.to_string()).collect(),
        ..msg(id, None)
    }
}

async fn find(store: &dyn StoreApi, req: FindMessagesRequest) -> (Vec<String>, bool) {
    let r = store.find_messages(req).await.unwrap();
    let ids = r.messages.into_iter().map(|m| m.message_id).collect();
    (ids, r.truncated)
}

async fn by_key(store: &dyn StoreApi, topic: &str, key: &str, limit: u32) -> (Vec<String>, bool) {
    let req = FindMessagesRequest {
        topic: topic.into(),
        key: key.into(),
        limit,
        ..Default::default()
    };
    find(store, req).await
}

async fn by_id(store: &dyn StoreApi, topic: &str, id: &str) -> Vec<String> {
    let req = FindMessagesRequest {
        topic: topic.into(),
        message_id: id.into(),
        ..Default::default()
    };
    find(store, req).await.0
}

#[tokio::test]
async fn a_message_is_found_by_each_of_its_keys_and_its_id_after_a_restart() {
    let (dir, store) = fresh("t", "g", 17).await;
    let long_a = format!("{}-a", "x".repeat(300));
    let long_b = format!("{}-b", "x".repeat(300));
    let messages = vec![
        keyed("M1", &["order-1", "user-7", "region-eu", &long_a]),
        keyed("M2", &["order-2", "user-7", &long_b]),
    ];
    append(&*store, "t", messages).await;
    // M1: its id and 4 keys; M2: its id and 3 keys.
    assert_eq!(store.index_entries().unwrap(), 9);
    check(&*store, &long_a, &long_b).await;
    store.shutdown();
    drop(store);
    let store = open(dir.path());
    check(&*store, &long_a, &long_b).await;
    assert_eq!(store.index_entries().unwrap(), 9);
    store.shutdown();
}

/// What `a_message_is_found_by_each_of_its_keys_and_its_id_after_a_restart` finds.
async fn check(store: &dyn StoreApi, long_a: &str, long_b: &str) {
    for key in ["order-1", "region-eu"] {
        assert_eq!(by_key(store, "t", key, 0).await.0, ["M1"], "{key}");
    }
    assert_eq!(by_key(store, "t", "user-7", 0).await.0, ["M1", "M2"]);
    // Keys longer than what the index keeps are told apart by the
    // message's own keys.
    assert_eq!(by_key(store, "t", long_a, 0).await.0, ["M1"]);
    assert_eq!(by_key(store, "t", long_b, 0).await.0, ["M2"]);
    assert!(by_key(store, "t", "order", 0).await.0.is_empty());
    assert_eq!(by_id(store, "t", "M2").await, ["M2"]);
    assert!(by_id(store, "t", "M").await.is_empty());
    // An id and a key together: both must match.
    let req = FindMessagesRequest {
        topic: "t".into(),
        message_id: "M2".into(),
        key: "order-1".into(),
        ..Default::default()
    };
    assert!(find(store, req).await.0.is_empty());
}

#[tokio::test]
async fn a_shared_key_finds_every_message_oldest_first_with_a_limit() {
    let (_dir, store) = fresh("t", "g", 17).await;
    let ids: Vec<String> = (0..10).map(|i| format!("S{i}")).collect();
    let mut times = Vec::new();
    for id in &ids {
        // Round robin over 4 queues; a few ms apart, so entry order is
        // send order across queues.
        append(&*store, "t", vec![keyed(id, &["shared"])]).await;
        times.push(pier_store::now_ms());
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    send(&*store, "t", &["unkeyed"]).await;
    let (all, truncated) = by_key(&*store, "t", "shared", 100).await;
    assert_eq!(all, ids);
    assert!(!truncated);
    let (first, truncated) = by_key(&*store, "t", "shared", 4).await;
    assert_eq!(first, ids[..4]);
    assert!(truncated, "more matched than the limit");
    // A time range is a seek in the same entries.
    let req = FindMessagesRequest {
        topic: "t".into(),
        key: "shared".into(),
        since_ms: times[4] + 1,
        until_ms: times[7] + 1,
        ..Default::default()
    };
    assert_eq!(find(&*store, req).await.0, ids[5..8]);
    // A time range alone: every message of the topic in it, oldest first.
    let req = FindMessagesRequest {
        topic: "t".into(),
        since_ms: times[4] + 1,
        limit: 3,
        ..Default::default()
    };
    let (ids_in_range, truncated) = find(&*store, req).await;
    assert_eq!(ids_in_range, ids[5..8]);
    assert!(truncated);
    // Nothing to find by is refused.
    let req = FindMessagesRequest {
        topic: "t".into(),
        ..Default::default()
    };
    let refused = store.find_messages(req).await.unwrap_err();
    assert!(
        matches!(refused, pier_store::StoreError::InvalidArgument { .. }),
        "{refused:?}"
    );
}

#[tokio::test]
async fn index_entries_leave_with_their_messages() {
    let (_dir, store) = fresh("t", "g", 17).await;
    create_topic(&*store, "other", TopicType::Normal, 2).await;
    append(&*store, "t", vec![keyed("P1", &["k"]), keyed("P2", &["k"])]).await;
    append(&*store, "other", vec![keyed("O1", &["k"])]).await;
    assert_eq!(store.index_entries().unwrap(), 6);

    // Purge: this topic's entries go, the other topic's stay.
    let req = PurgeTopicRequest { topic: "t".into() };
    assert_eq!(store.purge_topic(req).await.unwrap().purged, 2);
    assert_eq!(store.index_entries().unwrap(), 2);
    assert!(by_key(&*store, "t", "k", 0).await.0.is_empty());
    assert_eq!(by_key(&*store, "other", "k", 0).await.0, ["O1"]);

    // Retention: the expired message's entries go with it.
    append(&*store, "t", vec![keyed("R1", &["k", "r"])]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    append(&*store, "t", vec![keyed("R2", &["k"])]).await;
    // "other"'s message expires too.
    assert_eq!(store.sweep_retention(80).unwrap(), 2);
    assert_eq!(store.index_entries().unwrap(), 2, "R2's id and key");
    assert_eq!(by_key(&*store, "t", "k", 0).await.0, ["R2"]);
    assert!(by_key(&*store, "t", "r", 0).await.0.is_empty());

    // Deleting the topic takes the rest.
    let req = DeleteTopicRequest { name: "t".into() };
    store.delete_topic(req).await.unwrap();
    assert_eq!(store.index_entries().unwrap(), 0);
    store.shutdown();
}

/// A purge deletes index entries in several writes when there are many.
#[tokio::test]
async fn a_purge_of_many_messages_deletes_every_entry() {
    let (_dir, store) = fresh("t", "g", 17).await;
    for batch in 0..60 {
        let messages = (0..100)
            .map(|i| keyed(&format!("B{batch}-{i}"), &["k"]))
            .collect();
        append(&*store, "t", messages).await;
    }
    assert_eq!(store.index_entries().unwrap(), 12_000);
    let req = PurgeTopicRequest { topic: "t".into() };
    assert_eq!(store.purge_topic(req).await.unwrap().purged, 6_000);
    assert_eq!(store.index_entries().unwrap(), 0);
    append(&*store, "t", vec![keyed("after", &["k"])]).await;
    assert_eq!(by_key(&*store, "t", "k", 0).await.0, ["after"]);
    store.shutdown();
}

#[tokio::test]
async fn a_dead_letter_is_found_and_its_entries_leave_when_redriven() {
    let (_dir, store) = fresh("t", "g", 1).await;
    append(&*store, "t", vec![keyed("D1", &["k"])]).await;
    // One attempt: the delivery's end sends it to %DLQ%g.
    let got = pop(&*store, "t", "g", 1, 50, 0).await;
    assert_eq!(got.len(), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while describe(&*store, "g").await.dlq < 1 {
        assert!(std::time::Instant::now() < deadline, "never dead-lettered");
        let _ = pop(&*store, "t", "g", 1, 50, 100).await;
    }
    // The original (id, key) and the dead letter (id, key).
    assert_eq!(store.index_entries().unwrap(), 4);
    let req = FindMessagesRequest {
        topic: "t".into(),
        key: "k".into(),
        ..Default::default()
    };
    let found = store.find_messages(req).await.unwrap().messages;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].groups[0].state, "dead-lettered");
    assert_eq!(by_id(&*store, "%DLQ%g", "D1").await, ["D1"]);

    let req = RedriveDlqRequest {
        group: "g".into(),
        ..Default::default()
    };
    assert_eq!(store.redrive_dlq(req).await.unwrap().redriven, 1);
    // The dead letter's entries left; the redriven copy has its own.
    assert!(by_id(&*store, "%DLQ%g", "D1").await.is_empty());
    assert_eq!(store.index_entries().unwrap(), 4);
    assert_eq!(by_key(&*store, "t", "k", 0).await.0, ["D1", "D1"]);
    store.shutdown();
}
