//! FIFO consumption: one message in flight per message group, no
//! head-of-line blocking, locks across restarts.

use std::time::Duration;

use pier_proto::admin::*;
use pier_proto::store::*;
use pier_store::StoreApi;

use crate::common::*;

/// A FIFO topic "f" and a FIFO group "ordered".
async fn fifo_setup(store: &dyn StoreApi, queues: u32) {
    create_topic(store, "f", TopicType::Fifo, queues).await;
    create_group(store, "ordered", true, 17).await;
}

#[tokio::test]
async fn fifo_one_in_flight_per_message_group_and_no_head_of_line_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    fifo_setup(&*store, 4).await;
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

    let first = pop(&*store, "f", "ordered", 32, 200, 0).await;
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
        ack(&*store, "ordered", p).await;
        let b = body(p);
        seen.entry(b[..1].to_string()).or_default().push(b);
    }
    for _ in 0..20 {
        let got = pop(&*store, "f", "ordered", 32, 200, 0).await;
        for p in &got {
            let b = body(p);
            if b.starts_with('a') {
                continue;
            }
            seen.entry(b[..1].to_string()).or_default().push(b);
            ack(&*store, "ordered", p).await;
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
    let again = pop(&*store, "f", "ordered", 32, 10_000, 0).await;
    assert_eq!(again.iter().map(body).collect::<Vec<_>>(), vec!["a0"]);
    assert!(again[0].attempt > 1);
    ack(&*store, "ordered", &again[0]).await;
    let mut rest = Vec::new();
    for _ in 0..10 {
        for p in pop(&*store, "f", "ordered", 32, 10_000, 0).await {
            rest.push(body(&p)[..2].to_string());
            ack(&*store, "ordered", &p).await;
        }
    }
    assert_eq!(rest, vec!["a1", "a2", "a3", "a4"]);
}

#[tokio::test]
async fn fifo_locks_and_parked_messages_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let store = open(dir.path());
        fifo_setup(&*store, 2).await;
        append(
            &*store,
            "f",
            vec![grouped("k1", "k"), grouped("k2", "k"), grouped("k3", "k")],
        )
        .await;
        let got = pop(&*store, "f", "ordered", 32, 60_000, 0).await;
        assert_eq!(got.iter().map(body).collect::<Vec<_>>(), vec!["k1"]);
        store.shutdown();
        got
    };
    let k1 = &first[0];
    let store = open(dir.path());
    // k1 still holds the group after the restart: nothing else is delivered.
    assert!(pop(&*store, "f", "ordered", 32, 60_000, 0).await.is_empty());
    let d = describe(&*store, "ordered").await;
    assert_eq!((d.backlog[0].ready, d.backlog[0].inflight), (2, 1), "{d:?}");

    // Acked after the restart, k1 lets k2 go; k2's lock is on disk too:
    // after one more restart k2 still holds the group, and its ack lets k3
    // go.
    ack(&*store, "ordered", k1).await;
    let got = pop(&*store, "f", "ordered", 32, 60_000, 0).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), vec!["k2"]);
    store.shutdown();
    drop(store);
    let store = open(dir.path());
    assert!(pop(&*store, "f", "ordered", 32, 60_000, 0).await.is_empty());
    ack(&*store, "ordered", &got[0]).await;
    let last = pop(&*store, "f", "ordered", 32, 60_000, 0).await;
    assert_eq!(last.iter().map(body).collect::<Vec<_>>(), vec!["k3"]);
}
