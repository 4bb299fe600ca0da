//! Helpers shared by the store's tests.

use std::sync::Arc;

use pier_proto::admin::*;
use pier_proto::store::*;
use pier_store::{Store, StoreApi, StoreOptions};

pub(crate) fn open(dir: &std::path::Path) -> Arc<Store> {
    Arc::new(Store::open(dir, StoreOptions::default()).expect("open store"))
}

/// A store in a new directory with a NORMAL topic of 4 queues and a group.
pub(crate) async fn fresh(
    topic: &str,
    group: &str,
    max_attempts: u32,
) -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    setup(&*store, topic, group, max_attempts).await;
    (dir, store)
}

/// Appends messages, which must be accepted.
pub(crate) async fn append(
    store: &dyn StoreApi,
    topic: &str,
    messages: Vec<StoredMessage>,
) -> AppendResponse {
    let topic = topic.into();
    store
        .append(AppendRequest { topic, messages })
        .await
        .unwrap()
}

/// Creates a topic; returns whether it was new.
pub(crate) async fn create_topic(
    store: &dyn StoreApi,
    name: &str,
    r#type: TopicType,
    queues: u32,
) -> bool {
    let topic = Topic {
        name: name.into(),
        r#type: r#type as i32,
        queues,
        created_at_ms: 0,
    };
    let r = store.create_topic(CreateTopicRequest { topic: Some(topic) });
    r.await.unwrap().created
}

/// Creates a consumer group (0 attempts: the default).
pub(crate) async fn create_group(store: &dyn StoreApi, name: &str, fifo: bool, max_attempts: u32) {
    let group = ConsumerGroup {
        name: name.into(),
        fifo,
        max_attempts,
        ..Default::default()
    };
    let r = store.create_group(CreateGroupRequest { group: Some(group) });
    r.await.unwrap();
}

/// A NORMAL topic of 4 queues and a group.
pub(crate) async fn setup(store: &dyn StoreApi, topic: &str, group: &str, max_attempts: u32) {
    create_topic(store, topic, TopicType::Normal, 4).await;
    create_group(store, group, false, max_attempts).await;
}

/// Acks a delivery, which must be current.
pub(crate) async fn ack(store: &dyn StoreApi, group: &str, p: &PoppedMessage) {
    let delivery = delivery(group, p);
    store.ack(AckRequest { delivery }).await.unwrap();
}

/// Makes a current delivery invisible for `invisible_ms` from now.
pub(crate) async fn change_invisible(
    store: &dyn StoreApi,
    group: &str,
    p: &PoppedMessage,
    invisible_ms: u64,
) -> ChangeInvisibleResponse {
    let req = ChangeInvisibleRequest {
        delivery: delivery(group, p),
        invisible_ms,
        expected_visible_at_ms: 0,
        keep_handle: false,
    };
    store.change_invisible(req).await.unwrap()
}

/// Releases deliveries (back to the queue, no attempt counted); returns
/// how many were still current.
pub(crate) async fn release(store: &dyn StoreApi, group: &str, got: &[PoppedMessage]) -> u32 {
    let deliveries = got.iter().filter_map(|p| delivery(group, p)).collect();
    let req = ReleaseRequest { deliveries };
    store.release(req).await.unwrap().released
}

/// Describes a group.
pub(crate) async fn describe(store: &dyn StoreApi, group: &str) -> DescribeGroupResponse {
    let req = DescribeGroupRequest { name: group.into() };
    store.describe_group(req).await.unwrap()
}

pub(crate) fn msg(id: &str, tag: Option<&str>) -> StoredMessage {
    StoredMessage {
        message_id: id.into(),
        tag: tag.map(str::to_owned),
        body: id.as_bytes().to_vec().into(),
        kind: MessageKind::Normal as i32,
        queue: u32::MAX,
        ..Default::default()
    }
}

/// Sends NORMAL messages whose ids are also their bodies.
pub(crate) async fn send(store: &dyn StoreApi, topic: &str, ids: &[&str]) {
    append(store, topic, ids.iter().map(|i| msg(i, None)).collect()).await;
}

pub(crate) async fn pop(
    store: &dyn StoreApi,
    topic: &str,
    group: &str,
    max: u32,
    invisible_ms: u64,
    poll_ms: u64,
) -> Vec<PoppedMessage> {
    let req = pop_request(topic, group, max, invisible_ms, poll_ms);
    store.pop(req).await.unwrap().messages
}

/// A pop of up to `max` messages of `topic` for `group`, without a filter.
pub(crate) fn pop_request(
    topic: &str,
    group: &str,
    max: u32,
    invisible_ms: u64,
    poll_ms: u64,
) -> PopRequest {
    PopRequest {
        group: group.into(),
        topic: topic.into(),
        filter: None,
        max_messages: max,
        invisible_ms,
        poll_ms,
    }
}

pub(crate) fn delivery(group: &str, p: &PoppedMessage) -> Option<DeliveryRef> {
    let m = p.message.as_ref().unwrap();
    Some(DeliveryRef {
        group: group.into(),
        topic: m.topic.clone(),
        queue: m.queue,
        offset: m.offset,
        attempt: p.attempt,
        handle_seq: 0,
    })
}

pub(crate) fn body(p: &PoppedMessage) -> String {
    String::from_utf8(p.message.as_ref().unwrap().body.to_vec()).unwrap()
}

pub(crate) async fn delay_topic(store: &dyn StoreApi, name: &str) {
    create_topic(store, name, TopicType::Delay, 2).await;
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
