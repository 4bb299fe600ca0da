//! Deadlines follow the store's clock: a test moves a [`ManualClock`] and
//! the store redelivers, without sleeping.

use std::sync::Arc;

use pier_store::{ManualClock, Store, StoreOptions};

use crate::common::*;

#[tokio::test]
async fn invisible_deadlines_follow_a_manual_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = Store::open_with_clock(dir.path(), StoreOptions::default(), clock.clone()).unwrap();
    setup(&store, "t", "g", 3).await;
    send(&store, "t", &["m"]).await;

    let first = pop(&store, "t", "g", 1, 10_000, 0).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].visible_at_ms, 1_010_000);
    assert_eq!(first[0].message.as_ref().unwrap().stored_at_ms, 1_000_000);

    // Time stands still: invisible however long the test takes.
    clock.advance(9_999);
    assert!(pop(&store, "t", "g", 1, 10_000, 0).await.is_empty());

    clock.advance(1);
    let second = pop(&store, "t", "g", 1, 10_000, 0).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempt, 2);

    // A changed deadline is counted from the clock's now too.
    let r = change_invisible(&store, "g", &second[0], 500).await;
    assert_eq!(r.visible_at_ms, 1_010_000 + 500);

    let d = describe(&store, "g").await;
    assert_eq!((d.backlog[0].ready, d.backlog[0].inflight), (0, 1));
    clock.advance(500);
    let d = describe(&store, "g").await;
    assert_eq!(
        (d.backlog[0].ready, d.backlog[0].inflight),
        (1, 0),
        "due again: counted as ready"
    );
}
