//! Helpers shared by the store's tests.

use std::sync::Arc;

use pier_proto::admin::*;
use pier_proto::store::*;
use pier_store::{Store, StoreApi, StoreOptions};

pub(crate) fn open(dir: &std::path::Path) -> Arc<Store> {
    Arc::new(Store::open(dir, StoreOptions::default()).expect("open store"))
}

pub(crate) async fn setup(store: &dyn StoreApi, topic: &str, group: &str, max_attempts: u32) {
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

pub(crate) fn msg(id: &str, tag: Option<&str>) -> StoredMessage {
    StoredMessage {
        message_id: id.into(),
        tag: tag.map(str::to_owned),
        body: id.as_bytes().to_vec(),
        kind: MessageKind::Normal as i32,
        queue: u32::MAX,
        ..Default::default()
    }
}

pub(crate) async fn send(store: &dyn StoreApi, topic: &str, ids: &[&str]) {
    store
        .append(AppendRequest {
            topic: topic.into(),
            messages: ids.iter().map(|i| msg(i, None)).collect(),
        })
        .await
        .unwrap();
}

pub(crate) async fn pop(
    store: &dyn StoreApi,
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

pub(crate) fn delivery(group: &str, p: &PoppedMessage) -> Option<DeliveryRef> {
    let m = p.message.as_ref().unwrap();
    Some(DeliveryRef {
        group: group.into(),
        topic: m.topic.clone(),
        queue: m.queue,
        offset: m.offset,
        attempt: p.attempt,
    })
}

pub(crate) fn body(p: &PoppedMessage) -> String {
    String::from_utf8(p.message.as_ref().unwrap().body.clone()).unwrap()
}

pub(crate) async fn delay_topic(store: &dyn StoreApi, name: &str) {
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

pub(crate) fn delayed(id: &str, at_ms: i64) -> StoredMessage {
    StoredMessage {
        kind: MessageKind::Delay as i32,
        deliver_at_ms: at_ms,
        ..msg(id, None)
    }
}

pub(crate) fn grouped(id: &str, group: &str) -> StoredMessage {
    StoredMessage {
        kind: MessageKind::Fifo as i32,
        message_group: group.into(),
        // A different queue hint per message, as clients in several
        // languages would pick: order must hold anyway.
        queue: id.len() as u32 % 4,
        ..msg(id, None)
    }
}
