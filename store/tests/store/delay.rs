//! Delay messages: hidden until due, recall, timers across restarts.

use std::time::Duration;

use pier_proto::store::*;
use pier_store::{StoreApi, StoreError};

use crate::common::*;

#[tokio::test]
async fn delay_message_is_hidden_until_due_then_delivered_promptly() {
    let (_dir, store) = fresh("t", "g", 17).await;
    delay_topic(&*store, "d").await;
    let due = pier_store::now_ms() + 400;
    let r = append(&*store, "d", vec![delayed("later", due)]).await;
    assert!(
        !r.results[0].timer.is_empty(),
        "a scheduled message gets a timer"
    );
    assert!(
        pop(&*store, "d", "g", 1, 10_000, 0).await.is_empty(),
        "hidden before its time"
    );
    let got = pop(&*store, "d", "g", 1, 10_000, 3_000).await;
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
    let (_dir, store) = fresh("t", "g", 17).await;
    delay_topic(&*store, "d").await;
    let r = append(
        &*store,
        "d",
        vec![delayed("cancel-me", pier_store::now_ms() + 300)],
    )
    .await;
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
    assert!(
        matches!(again, StoreError::TimerNotFound { .. }),
        "{again:?}"
    );
    assert!(
        pop(&*store, "d", "g", 1, 10_000, 800).await.is_empty(),
        "a recalled message is never delivered"
    );
    let bogus = store
        .recall(RecallRequest {
            topic: "d".into(),
            timer: b"nonsense".to_vec(),
        })
        .await
        .unwrap_err();
    assert!(matches!(bogus, StoreError::TimerNotFound { .. }));
}

#[tokio::test]
async fn timers_survive_restart_and_overdue_ones_fire_at_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        setup(&*store, "t", "g", 17).await;
        delay_topic(&*store, "d").await;
        let now = pier_store::now_ms();
        append(
            &*store,
            "d",
            vec![
                delayed("overdue", now + 200),
                delayed("future", now + 1_500),
            ],
        )
        .await;
        store.shutdown();
    }
    // Down past the first timer's time.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let store = open(dir.path());
    let first = pop(&*store, "d", "g", 2, 10_000, 1_000).await;
    assert_eq!(first.iter().map(body).collect::<Vec<_>>(), vec!["overdue"]);
    let second = pop(&*store, "d", "g", 2, 10_000, 3_000).await;
    assert_eq!(second.iter().map(body).collect::<Vec<_>>(), vec!["future"]);
}

/// Retention counts from when a message became visible: a delay message
/// due long after it was sent is not deleted the moment it fires.
#[tokio::test]
async fn retention_counts_from_when_a_delay_message_fell_due() {
    let (_dir, store) = fresh("t", "g", 17).await;
    delay_topic(&*store, "d").await;
    send(&*store, "t", &["sent-early"]).await;
    append(
        &*store,
        "d",
        vec![delayed("due-later", pier_store::now_ms() + 500)],
    )
    .await;
    // Sent ~800 ms ago, both; the delay message fell due ~300 ms ago.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let deleted = store.sweep_retention(500).unwrap();
    assert_eq!(deleted, 1, "only the message visible for 800 ms expires");
    assert!(pop(&*store, "t", "g", 10, 10_000, 0).await.is_empty());
    let got = pop(&*store, "d", "g", 10, 10_000, 0).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), vec!["due-later"]);
}
