//! The index over a data directory written before it existed, and the
//! entries one message gets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pier_proto::admin::{FindMessagesRequest, Topic, TopicType};
use pier_proto::store::{AppendRequest, MessageKind, StoredMessage};

use super::*;
use crate::api::StoreApi;
use crate::{Store, StoreOptions};

fn keyed(id: &str, keys: &[&str]) -> StoredMessage {
    StoredMessage {
        message_id: id.into(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
        body: id.as_bytes().to_vec().into(),
        kind: MessageKind::Normal as i32,
        queue: u32::MAX,
        ..Default::default()
    }
}

async fn find_key(store: &Store, key: &str) -> Vec<String> {
    let req = FindMessagesRequest {
        topic: "t".into(),
        key: key.into(),
        ..Default::default()
    };
    let found = store.find_messages(req).await.unwrap().messages;
    found.into_iter().map(|m| m.message_id).collect()
}

#[test]
fn a_message_gets_one_entry_per_distinct_key_and_its_id() {
    let mut m = keyed("ID", &["a", "b", "a", ""]);
    m.stored_at_ms = 7;
    let e = Entries::of(3, &m);
    let from_bytes = Entries::of_encoded(3, &m.encode_to_vec());
    let keys: Vec<_> = e.keys(1, 2).collect();
    assert_eq!(keys, from_bytes.keys(1, 2).collect::<Vec<_>>());
    assert_eq!(keys.len(), 3, "id, a, b");
    assert!(keys
        .iter()
        .all(|k| keys::index_position(k) == Some((7, 1, 2))));
    let many: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    let m = StoredMessage {
        keys: many,
        ..keyed("", &[])
    };
    assert_eq!(Entries::of(3, &m).keys(0, 0).count(), MAX_KEYS_PER_MESSAGE);
    // A value that is no message gets no entries (and no panic).
    assert_eq!(Entries::of_encoded(3, &[0xff; 9]).keys(0, 0).count(), 0);
}

/// A directory from before the index: its messages have no entries, and
/// are still found (by the scan below the watermark), next to new ones
/// found through the index.
#[tokio::test]
async fn messages_from_before_the_index_are_found_by_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    {
        let topic = Topic {
            name: "t".into(),
            r#type: TopicType::Normal as i32,
            queues: 2,
            created_at_ms: 0,
        };
        let store = Store::open_with_topic(dir.path(), topic).await;
        let messages = vec![keyed("old-1", &["k"]), keyed("old-2", &["k", "x"])];
        let req = AppendRequest {
            topic: "t".into(),
            messages,
        };
        store.append(req).await.unwrap();
        store.shutdown();
    }
    {
        // What an older version left: no entries, no format record.
        let db = Db::open(dir.path(), None).unwrap();
        let mut batch = db.batch().unwrap();
        batch.delete_range(Cf::Index, &[0u8][..], &[0xffu8][..]);
        db.write(batch, Durability::Synced, "forgetting the index")
            .unwrap();
    }
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.index_entries().unwrap(), 0);
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let req = AppendRequest {
        topic: "t".into(),
        messages: vec![keyed("new-1", &["k"])],
    };
    store.append(req).await.unwrap();
    assert_eq!(store.index_entries().unwrap(), 2, "the new message only");
    assert_eq!(find_key(&store, "k").await, ["old-1", "old-2", "new-1"]);
    assert_eq!(find_key(&store, "x").await, ["old-2"]);
    // A purge takes every entry of the topic.
    store
        .purge_topic(pier_proto::admin::PurgeTopicRequest { topic: "t".into() })
        .await
        .unwrap();
    assert!(find_key(&store, "k").await.is_empty());
    assert_eq!(store.index_entries().unwrap(), 0);
    store.shutdown();
}
