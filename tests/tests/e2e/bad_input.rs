//! Every validation rule answers with its code in the body status, and no
//! malformed input crashes or hangs the server.

use std::time::Duration;

use pier_proto::admin::TopicType;
use pier_proto::rocketmq::*;
use pier_tests::*;
use pier_tests::{both_modes, Mode};

/// The overall status code of one SendMessage call.
async fn send_status(c: &Raw, req: tonic::Request<SendMessageRequest>) -> i32 {
    let r = c.messaging().send_message(req).await.unwrap().into_inner();
    r.status.unwrap().code
}

async fn send_code(c: &Raw, m: Message) -> Code {
    let r = c.send(m).await;
    assert_eq!(r.entries.len(), 1, "one entry per message even on error");
    Code::try_from(r.entries[0].status.as_ref().unwrap().code).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_codes() {
    let pier = Pier::with_topic(Mode::Standalone, ("t", TopicType::Normal, 2), "g").await;
    let c = pier.raw.clone();

    let sp = |f: &dyn Fn(&mut SystemProperties)| {
        let mut m = message("t", "x");
        f(m.system_properties.as_mut().unwrap());
        m
    };
    assert_eq!(send_code(&c, message("t", "ok")).await, Code::Ok);
    assert_eq!(
        send_code(&c, message("no_such_topic", "x")).await,
        Code::TopicNotFound
    );
    assert_eq!(
        send_code(&c, message("bad topic!", "x")).await,
        Code::IllegalTopic
    );
    assert_eq!(
        send_code(&c, message(&"x".repeat(128), "x")).await,
        Code::IllegalTopic
    );
    assert_eq!(
        send_code(&c, sp(&|s| s.message_id.clear())).await,
        Code::IllegalMessageId
    );
    assert_eq!(
        send_code(&c, sp(&|s| s.tag = Some("a|b".into()))).await,
        Code::IllegalMessageTag
    );
    assert_eq!(
        send_code(&c, sp(&|s| s.tag = Some("  ".into()))).await,
        Code::IllegalMessageTag
    );
    assert_eq!(
        send_code(&c, sp(&|s| s.keys = vec!["".into()])).await,
        Code::IllegalMessageKey
    );
    assert_eq!(
        send_code(&c, sp(&|s| s.keys = vec!["a\u{1}".into()])).await,
        Code::IllegalMessageKey
    );
    assert_eq!(
        send_code(&c, sp(&|s| s.message_group = Some("g".repeat(64)))).await,
        Code::IllegalMessageGroup
    );
    // A FIFO message on a NORMAL topic conflicts with the topic's type.
    assert_eq!(
        send_code(
            &c,
            sp(&|s| {
                s.message_type = MessageType::Fifo as i32;
                s.message_group = Some("grp".into());
            })
        )
        .await,
        Code::MessagePropertyConflictWithType
    );
    assert_eq!(
        send_code(
            &c,
            sp(&|s| {
                s.delivery_timestamp = Some(prost_types::Timestamp {
                    seconds: 4_000_000_000,
                    nanos: 0,
                })
            })
        )
        .await,
        Code::IllegalDeliveryTime
    );
    let mut m = message("t", "x");
    m.user_properties.insert("UNIQ_KEY".into(), "v".into());
    assert_eq!(send_code(&c, m).await, Code::IllegalMessagePropertyKey);
    let mut m = message("t", "x");
    for i in 0..129 {
        m.user_properties.insert(format!("k{i}"), "v".into());
    }
    assert_eq!(send_code(&c, m).await, Code::MessagePropertiesTooLarge);
    let mut m = message("t", "x");
    m.user_properties
        .insert("big".into(), "v".repeat(17 * 1024));
    assert_eq!(send_code(&c, m).await, Code::MessagePropertiesTooLarge);
    let mut m = message("t", "");
    m.body.clear();
    assert_eq!(send_code(&c, m).await, Code::MessageBodyEmpty);

    // 4 MiB body plus properties is accepted; one byte more is too large.
    let mut m = message("t", "");
    m.body = vec![b'a'; 4 * 1024 * 1024].into();
    m.user_properties.insert("p".into(), "v".repeat(8 * 1024));
    assert_eq!(send_code(&c, m).await, Code::Ok);
    let mut m = message("t", "");
    m.body = vec![b'a'; 4 * 1024 * 1024 + 1].into();
    assert_eq!(send_code(&c, m).await, Code::MessageBodyTooLarge);

    // Batch rules: empty, mixed topics.
    assert_eq!(
        send_status(&c, c.req(SendMessageRequest { messages: vec![] })).await,
        Code::MessageCorrupted as i32
    );
    assert_eq!(
        send_status(
            &c,
            c.req(SendMessageRequest {
                messages: vec![message("t", "a"), message("u", "b")],
            })
        )
        .await,
        Code::MessageCorrupted as i32
    );

    // Missing client id.
    assert_eq!(
        send_status(
            &c,
            tonic::Request::new(SendMessageRequest {
                messages: vec![message("t", "a")],
            })
        )
        .await,
        Code::ClientIdRequired as i32
    );

    // Route: unknown topic (with a hint), no endpoints.
    let r = c
        .messaging()
        .query_route(c.req(QueryRouteRequest {
            topic: Some(resource("missing")),
            endpoints: Some(c.endpoints()),
        }))
        .await
        .unwrap()
        .into_inner();
    let st = r.status.unwrap();
    assert_eq!(st.code, Code::TopicNotFound as i32);
    assert!(st.message.contains("pier topic create"), "{}", st.message);
    let r = c
        .messaging()
        .query_route(c.req(QueryRouteRequest {
            topic: Some(resource("t")),
            endpoints: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status.unwrap().code, Code::IllegalAccessPoint as i32);

    // Receive: unknown group, bad invisible time, SQL filter.
    let (code, _) = c.receive("nogroup", "t", 1, 30_000, 0).await;
    assert_eq!(code, Code::ConsumerGroupNotFound);
    let (code, _) = c.receive("g", "t", 1, 13 * 3600 * 1000, 0).await;
    assert_eq!(code, Code::IllegalInvisibleTime);
    let mut req = ReceiveMessageRequest {
        group: Some(resource("g")),
        message_queue: Some(c.queue("t")),
        filter_expression: Some(FilterExpression {
            r#type: FilterType::Sql as i32,
            expression: "a > 1".into(),
        }),
        batch_size: 1,
        invisible_duration: Some(prost_types::Duration {
            seconds: 30,
            nanos: 0,
        }),
        auto_renew: false,
        long_polling_timeout: None,
        attempt_id: None,
    };
    assert_eq!(
        c.receive_raw(req.clone()).await.0,
        Code::IllegalFilterExpression
    );
    req.filter_expression = None;
    req.invisible_duration = None;
    assert_eq!(c.receive_raw(req).await.0, Code::IllegalInvisibleTime);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_receipt_handles() {
    let pier = Pier::with_topic(Mode::Standalone, ("t", TopicType::Normal, 1), "g").await;
    let c = pier.raw.clone();
    c.create_group("other", 17).await;
    c.send(message("t", "m")).await;
    let (_, msgs) = c.receive("g", "t", 1, 30_000, 1_000).await;
    let good = handle(&msgs[0]);

    assert_eq!(
        c.ack("g", "t", "garbage!!").await,
        Code::InvalidReceiptHandle
    );
    assert_eq!(c.ack("g", "t", "").await, Code::InvalidReceiptHandle);
    assert_eq!(
        c.ack("g", "t", &good[..good.len() / 2]).await,
        Code::InvalidReceiptHandle
    );
    let mut forged = good.clone().into_bytes();
    let i = forged.len() - 3;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        c.ack("g", "t", std::str::from_utf8(&forged).unwrap()).await,
        Code::InvalidReceiptHandle
    );
    // A handle of group g used for group "other".
    assert_eq!(c.ack("other", "t", &good).await, Code::InvalidReceiptHandle);

    // ChangeInvisibleDuration always returns a usable handle, also on error.
    let r = change_invisible(&c, "garbage", 5).await;
    assert_eq!(r.status.unwrap().code, Code::InvalidReceiptHandle as i32);
    assert_eq!(r.receipt_handle, "garbage");
    let r = change_invisible(&c, &good, 60).await;
    assert_eq!(r.status.unwrap().code, Code::Ok as i32);
    assert!(!r.receipt_handle.is_empty());

    // The genuine handle still works after all that, exactly once.
    assert_eq!(c.ack("g", "t", &r.receipt_handle).await, Code::Ok);
    assert_eq!(c.ack("g", "t", &good).await, Code::InvalidReceiptHandle);

    // And the server still answers promptly.
    let t0 = std::time::Instant::now();
    let r = c
        .messaging()
        .heartbeat(c.req(HeartbeatRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status.unwrap().code, Code::Ok as i32);
    assert!(t0.elapsed() < Duration::from_secs(2));
}

/// One AckMessage with good, bad and already-acked entries: each entry gets
/// its own code, in request order (the proxy acks entries concurrently), and
/// only the good ones take effect. Standalone and through a store node.
async fn batch_ack_answers_each_entry_in_order(mode: Mode) {
    let p = Pier::start(mode, &[]).await;
    let c = &p.raw;
    c.create_topic("t", 2).await;
    c.create_group("g", 17).await;
    for i in 0..40 {
        c.send(message("t", &format!("m{i}"))).await;
    }
    let mut msgs = Vec::new();
    while msgs.len() < 40 {
        let (_, got) = c.receive("g", "t", 32, 30_000, 1_000).await;
        assert!(!got.is_empty(), "{mode:?}: only {} received", msgs.len());
        msgs.extend(got);
    }
    // One acked beforehand: its second ack must fail.
    assert_eq!(c.ack("g", "t", &handle(&msgs[5])).await, Code::Ok);
    let mut entries = Vec::new();
    let mut expected = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let (h, code) = match i {
            5 => (handle(m), Code::InvalidReceiptHandle),
            i if i % 7 == 3 => ("garbage".to_string(), Code::InvalidReceiptHandle),
            _ => (handle(m), Code::Ok),
        };
        entries.push(AckMessageEntry {
            message_id: format!("e{i}"),
            receipt_handle: h,
            lite_topic: None,
        });
        expected.push((format!("e{i}"), code));
    }
    let r = c
        .messaging()
        .ack_message(c.req(AckMessageRequest {
            group: Some(resource("g")),
            topic: Some(resource("t")),
            entries,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status.unwrap().code, Code::MultipleResults as i32);
    let got: Vec<(String, Code)> = r
        .entries
        .iter()
        .map(|e| {
            (
                e.message_id.clone(),
                Code::try_from(e.status.as_ref().unwrap().code).unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected, "{mode:?}");
    // The messages whose handle was garbage are still in flight and
    // come back after their invisible time; the acked ones never do.
    let left = expected
        .iter()
        .enumerate()
        .filter(|(i, (_, code))| *i != 5 && *code != Code::Ok)
        .count();
    let d = c.describe_group("g").await;
    let inflight: u64 = d.backlog.iter().map(|b| b.inflight).sum();
    assert_eq!(inflight as usize, left, "{mode:?}: {d:?}");
}

both_modes!(batch_ack_answers_each_entry_in_order);

/// RocketMQ's system topic and group names are refused as its proxy refuses
/// them (ILLEGAL_TOPIC / ILLEGAL_CONSUMER_GROUP), and cannot be created
/// through the admin API (tests/compare: route.system_topic,
/// send.system_topic, recv.system_group).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketmq_system_names_are_reserved() {
    let pier = Pier::with_topic(Mode::Standalone, ("t", TopicType::Normal, 1), "g").await;
    let c = pier.raw.clone();

    for name in ["RMQ_SYS_TRANS_HALF_TOPIC", "TBW102", "rmq_sys_anything"] {
        let r = c
            .messaging()
            .query_route(c.req(QueryRouteRequest {
                topic: Some(resource(name)),
                endpoints: Some(c.endpoints()),
            }))
            .await
            .unwrap()
            .into_inner();
        let st = r.status.unwrap();
        assert_eq!(st.code, Code::IllegalTopic as i32, "{name}: {st:?}");
        assert!(st.message.contains("reserved"), "{}", st.message);
        assert_eq!(
            send_code(&c, message(name, "x")).await,
            Code::IllegalTopic,
            "{name}"
        );
        let created = c
            .admin()
            .create_topic(pier_proto::admin::CreateTopicRequest {
                topic: Some(pier_proto::admin::Topic {
                    name: name.into(),
                    ..Default::default()
                }),
            })
            .await;
        let err = created.expect_err("a reserved topic name cannot be created");
        assert!(err.message().contains("reserved"), "{err:?}");
    }
    let (code, _) = c.receive("CID_RMQ_SYS_TRANS", "t", 1, 30_000, 0).await;
    assert_eq!(code, Code::IllegalConsumerGroup);
    let created = c
        .admin()
        .create_group(pier_proto::admin::CreateGroupRequest {
            group: Some(pier_proto::admin::ConsumerGroup {
                name: "CID_RMQ_SYS_TRANS".into(),
                ..Default::default()
            }),
        })
        .await;
    assert!(created.is_err(), "a reserved group name cannot be created");
    // Names that only look alike still work.
    c.create_topic("RMQ_SYS_TRANS_HALF_TOPIC_2", 1).await;
    assert_eq!(
        send_code(&c, message("RMQ_SYS_TRANS_HALF_TOPIC_2", "x")).await,
        Code::Ok
    );
}

/// A message whose declared type disagrees with its fields (FIFO without a
/// message group, DELAY without a delivery time, NORMAL with either) gets
/// MESSAGE_PROPERTY_CONFLICT_WITH_TYPE, as from RocketMQ, instead of being
/// stored as something the sender did not mean (tests/compare:
/// send.fifo_without_group, send.delay_without_timestamp,
/// send.normal_with_group, send.normal_with_timestamp).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_type_must_match_its_fields() {
    let pier = Pier::start(Mode::Standalone, &[]).await;
    let c = pier.raw.clone();
    c.create_topic("n", 1).await;
    c.create_typed_topic("f", pier_proto::admin::TopicType::Fifo, 1)
        .await;
    c.create_typed_topic("d", pier_proto::admin::TopicType::Delay, 1)
        .await;
    // A delivery time in the past: a DELAY message with it is stored for
    // delivery at once, so the topic's offsets count it.
    let soon = prost_types::Timestamp {
        seconds: 1_000_000_000,
        nanos: 0,
    };
    let typed = |topic: &str, t: MessageType, group: Option<&str>, due: bool| {
        let mut m = message(topic, "x");
        let sp = m.system_properties.as_mut().unwrap();
        sp.message_type = t as i32;
        sp.message_group = group.map(str::to_owned);
        sp.delivery_timestamp = due.then_some(soon);
        m
    };
    for (m, want) in [
        (
            typed("f", MessageType::Fifo, None, false),
            Code::MessagePropertyConflictWithType,
        ),
        (
            typed("d", MessageType::Delay, None, false),
            Code::MessagePropertyConflictWithType,
        ),
        (
            typed("n", MessageType::Normal, Some("g"), false),
            Code::MessagePropertyConflictWithType,
        ),
        (
            typed("n", MessageType::Normal, None, true),
            Code::MessagePropertyConflictWithType,
        ),
        (
            typed("f", MessageType::Fifo, Some("g"), true),
            Code::MessagePropertyConflictWithType,
        ),
        (typed("f", MessageType::Fifo, Some("g"), false), Code::Ok),
        (typed("d", MessageType::Delay, None, true), Code::Ok),
        (typed("n", MessageType::Normal, None, false), Code::Ok),
    ] {
        let what = format!("{:?}", m.system_properties);
        let r = c.send(m).await;
        let st = r.entries[0].status.clone().unwrap();
        assert_eq!(st.code, want as i32, "{what}: {st:?}");
        if want != Code::Ok {
            assert!(!st.message.is_empty());
        }
    }
    // Nothing of the refused ones was stored.
    for (topic, n) in [("f", 1u64), ("d", 1), ("n", 1)] {
        let d = c
            .admin()
            .describe_topic(pier_proto::admin::DescribeTopicRequest { name: topic.into() })
            .await
            .unwrap()
            .into_inner();
        let stored: u64 = d.queues.iter().map(|q| q.max_offset).sum();
        assert_eq!(stored, n, "{topic}: {d:?}");
    }
}

/// ChangeInvisibleDuration of `handle` (group "g", topic "t") to `secs`.
async fn change_invisible(c: &Raw, handle: &str, secs: i64) -> ChangeInvisibleDurationResponse {
    c.messaging()
        .change_invisible_duration(c.req(ChangeInvisibleDurationRequest {
            group: Some(resource("g")),
            topic: Some(resource("t")),
            receipt_handle: handle.into(),
            invisible_duration: Some(prost_types::Duration {
                seconds: secs,
                nanos: 0,
            }),
            message_id: String::new(),
            lite_topic: None,
            suspend: None,
        }))
        .await
        .unwrap()
        .into_inner()
}
