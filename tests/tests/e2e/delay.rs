//! Delay messages and RecallMessage through real proxies, in both modes.

use std::time::Duration;

use pier_proto::admin::TopicType;
use pier_proto::rocketmq::*;
use pier_tests::*;
use pier_tests::{both_modes, Mode};

fn delayed(topic: &str, body: &str, at_ms: i64) -> Message {
    let mut m = message(topic, body);
    let sp = m.system_properties.as_mut().unwrap();
    sp.message_type = MessageType::Delay as i32;
    sp.delivery_timestamp = Some(prost_types::Timestamp {
        seconds: at_ms / 1000,
        nanos: ((at_ms % 1000) * 1_000_000) as i32,
    });
    m
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn recall(c: &Raw, topic: &str, handle: &str) -> (Code, String) {
    let r = c
        .messaging()
        .recall_message(c.req(RecallMessageRequest {
            topic: Some(resource(topic)),
            recall_handle: handle.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    (
        Code::try_from(r.status.unwrap().code).unwrap(),
        r.message_id,
    )
}

/// Sends through `a`, consumes through `b`.
async fn delay_and_recall(mode: Mode) {
    let p = Pier::start(mode, &[]).await;
    let other = p.other().await;
    let (a, b) = (&p.raw, &other);
    a.create_typed_topic("timed", TopicType::Delay, 2).await;
    a.create_group("timed-readers", 17).await;

    let due = now_ms() + 1_500;
    let r = a.send(delayed("timed", "wake-up", due)).await;
    let entry = &r.entries[0];
    assert_eq!(
        entry.status.as_ref().unwrap().code,
        Code::Ok as i32,
        "{r:?}"
    );
    assert!(
        !entry.recall_handle.is_empty(),
        "delay sends return a recall handle"
    );
    let doomed = a.send(delayed("timed", "never", due)).await;
    let doomed_handle = doomed.entries[0].recall_handle.clone();
    let (code, id) = recall(a, "timed", &doomed_handle).await;
    assert_eq!(code, Code::Ok);
    assert_eq!(id, doomed.entries[0].message_id);
    let (code, _) = recall(b, "timed", &doomed_handle).await;
    assert_eq!(code, Code::NotFound, "a second recall finds nothing");
    let (code, _) = recall(a, "timed", "not-a-handle").await;
    assert_eq!(code, Code::BadRequest);

    let (code, early) = b.receive("timed-readers", "timed", 8, 30_000, 500).await;
    assert_eq!(
        code,
        Code::MessageNotFound,
        "hidden before its time: {early:?}"
    );
    let (code, msgs) = b.receive("timed-readers", "timed", 8, 30_000, 5_000).await;
    let late = now_ms() - due;
    assert_eq!(code, Code::Ok);
    assert_eq!(msgs.iter().map(body).collect::<Vec<_>>(), vec!["wake-up"]);
    let sp = msgs[0].system_properties.as_ref().unwrap();
    assert_eq!(sp.message_type, MessageType::Delay as i32);
    assert!(sp.delivery_timestamp.is_some());
    assert!((0..500).contains(&late), "delivered {late} ms late");
    assert_eq!(
        a.ack("timed-readers", "timed", &handle(&msgs[0])).await,
        Code::Ok
    );

    // Recalling a delivered message is an error, not a silent success.
    let (code, _) = recall(a, "timed", &entry.recall_handle).await;
    assert_eq!(code, Code::NotFound);
    // The recalled one never shows up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, _) = b.receive("timed-readers", "timed", 8, 30_000, 300).await;
    assert_eq!(code, Code::MessageNotFound);
}

both_modes!(delay_and_recall);
