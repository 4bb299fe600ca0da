//! Cases on SendMessage.

use super::*;

pub(crate) async fn cases_send(pr: &mut Probe) -> anyhow::Result<()> {
    let p = pr.p.clone_ref();
    let sink = "cmp-sink";
    type Edit = Box<dyn Fn(&mut Message)>;
    pub(crate) fn e(f: impl Fn(&mut Message) + 'static) -> Edit {
        Box::new(f)
    }
    pub(crate) fn set(f: impl Fn(&mut SystemProperties) + 'static) -> Edit {
        Box::new(move |m: &mut Message| {
            if let Some(s) = m.system_properties.as_mut() {
                f(s)
            }
        })
    }
    let cases: Vec<(&str, &str, &str, MessageType, Edit)> = vec![
        (
            "send.ok",
            "SendMessage of a NORMAL message to a NORMAL topic",
            sink,
            MessageType::Normal,
            e(|_| {}),
        ),
        (
            "send.unknown_topic",
            "SendMessage to an unknown topic",
            "cmp-notopic",
            MessageType::Normal,
            e(|_| {}),
        ),
        (
            "send.empty_topic",
            "SendMessage with an empty topic name",
            "",
            MessageType::Normal,
            e(|_| {}),
        ),
        (
            "send.bad_topic_chars",
            "SendMessage to topic \"bad topic!\"",
            "bad topic!",
            MessageType::Normal,
            e(|_| {}),
        ),
        (
            "send.topic_too_long",
            "SendMessage to a 200-character topic name",
            "",
            MessageType::Normal,
            e(|m| m.topic = Some(resource(&"t".repeat(200)))),
        ),
        (
            "send.system_topic",
            "SendMessage to RMQ_SYS_TRANS_HALF_TOPIC",
            "RMQ_SYS_TRANS_HALF_TOPIC",
            MessageType::Normal,
            e(|_| {}),
        ),
        (
            "send.normal_to_fifo",
            "SendMessage: NORMAL message to a FIFO topic",
            "cmp-fifo",
            MessageType::Normal,
            e(|_| {}),
        ),
        (
            "send.fifo_to_normal",
            "SendMessage: FIFO message (with group) to a NORMAL topic",
            sink,
            MessageType::Fifo,
            set(|s| s.message_group = Some("grp".into())),
        ),
        (
            "send.fifo_without_group",
            "SendMessage: FIFO message without message_group to a FIFO topic",
            "cmp-fifo",
            MessageType::Fifo,
            e(|_| {}),
        ),
        (
            "send.fifo_group_64",
            "SendMessage: FIFO message with a 64-byte message_group",
            "cmp-fifo",
            MessageType::Fifo,
            set(|s| s.message_group = Some("g".repeat(64))),
        ),
        (
            "send.delay_to_normal",
            "SendMessage: DELAY message to a NORMAL topic",
            sink,
            MessageType::Delay,
            set(|s| s.delivery_timestamp = Some(now_ts(10_000))),
        ),
        (
            "send.normal_to_delay",
            "SendMessage: NORMAL message to a DELAY topic",
            "cmp-delay",
            MessageType::Normal,
            e(|_| {}),
        ),
        (
            "send.delay_without_timestamp",
            "SendMessage: DELAY message without delivery_timestamp",
            "cmp-delay",
            MessageType::Delay,
            e(|_| {}),
        ),
        (
            "send.tx_to_normal",
            "SendMessage: TRANSACTION message to a NORMAL topic",
            sink,
            MessageType::Transaction,
            e(|_| {}),
        ),
        (
            "send.normal_to_tx",
            "SendMessage: NORMAL message to a TRANSACTION topic",
            "cmp-tx",
            MessageType::Normal,
            e(|_| {}),
        ),
        (
            "send.type_unspecified",
            "SendMessage with message_type UNSPECIFIED to a NORMAL topic",
            sink,
            MessageType::Unspecified,
            e(|_| {}),
        ),
        (
            "send.normal_with_group",
            "SendMessage: NORMAL message carrying a message_group, to a NORMAL topic",
            sink,
            MessageType::Normal,
            set(|s| s.message_group = Some("grp".into())),
        ),
        (
            "send.normal_with_timestamp",
            "SendMessage: NORMAL message carrying a delivery_timestamp (10 s), to a NORMAL topic",
            sink,
            MessageType::Normal,
            set(|s| s.delivery_timestamp = Some(now_ts(10_000))),
        ),
        (
            "send.delay_past_pier_max",
            "SendMessage: delivery_timestamp 41 days ahead (Pier's max is 40 days)",
            "cmp-delay",
            MessageType::Delay,
            set(|s| s.delivery_timestamp = Some(now_ts(41 * 24 * 3_600_000))),
        ),
        (
            "send.delay_past_max",
            "SendMessage: delivery_timestamp 25 h ahead (RocketMQ's max is 24 h)",
            "cmp-delay",
            MessageType::Delay,
            set(|s| s.delivery_timestamp = Some(now_ts(25 * 3_600_000))),
        ),
        (
            "send.delay_23h",
            "SendMessage: delivery_timestamp 23 h ahead",
            "cmp-delay",
            MessageType::Delay,
            set(|s| s.delivery_timestamp = Some(now_ts(23 * 3_600_000))),
        ),
        (
            "send.delay_in_past",
            "SendMessage: delivery_timestamp 1 min in the past",
            "cmp-delay",
            MessageType::Delay,
            set(|s| s.delivery_timestamp = Some(now_ts(-60_000))),
        ),
        (
            "send.body_4mib",
            "SendMessage with a body of exactly 4 MiB",
            sink,
            MessageType::Normal,
            e(|m| m.body = vec![b'a'; MAX_BODY].into()),
        ),
        (
            "send.body_over_limit",
            "SendMessage with a body of 4 MiB + 1 byte",
            sink,
            MessageType::Normal,
            e(|m| m.body = vec![b'a'; MAX_BODY + 1].into()),
        ),
        (
            "send.body_empty",
            "SendMessage with an empty body",
            sink,
            MessageType::Normal,
            e(|m| m.body.clear()),
        ),
        (
            "send.reserved_property",
            "SendMessage with user property UNIQ_KEY (reserved)",
            sink,
            MessageType::Normal,
            e(|m| {
                m.user_properties.insert("UNIQ_KEY".into(), "v".into());
            }),
        ),
        (
            "send.reserved_property_delay",
            "SendMessage with user property TIMER_DELIVER_MS (reserved)",
            sink,
            MessageType::Normal,
            e(|m| {
                m.user_properties
                    .insert("TIMER_DELIVER_MS".into(), "1".into());
            }),
        ),
        (
            "send.property_control_char",
            "SendMessage with a property key containing \\u0001",
            sink,
            MessageType::Normal,
            e(|m| {
                m.user_properties.insert("a\u{1}".into(), "v".into());
            }),
        ),
        (
            "send.too_many_properties",
            "SendMessage with 129 user properties",
            sink,
            MessageType::Normal,
            e(|m| {
                for i in 0..129 {
                    m.user_properties.insert(format!("k{i}"), "v".into());
                }
            }),
        ),
        (
            "send.properties_too_large",
            "SendMessage with a 17 KiB user property",
            sink,
            MessageType::Normal,
            e(|m| {
                m.user_properties
                    .insert("big".into(), "v".repeat(17 * 1024));
            }),
        ),
        (
            "send.empty_message_id",
            "SendMessage with an empty message_id",
            sink,
            MessageType::Normal,
            set(|s| s.message_id.clear()),
        ),
        (
            "send.tag_with_bar",
            "SendMessage with tag \"a|b\"",
            sink,
            MessageType::Normal,
            set(|s| s.tag = Some("a|b".into())),
        ),
        (
            "send.blank_tag",
            "SendMessage with a blank tag",
            sink,
            MessageType::Normal,
            set(|s| s.tag = Some("  ".into())),
        ),
        (
            "send.blank_key",
            "SendMessage with an empty key",
            sink,
            MessageType::Normal,
            set(|s| s.keys = vec![String::new()]),
        ),
        (
            "send.key_control_char",
            "SendMessage with a key containing \\u0001",
            sink,
            MessageType::Normal,
            set(|s| s.keys = vec!["a\u{1}".into()]),
        ),
        (
            "send.no_system_properties",
            "SendMessage without system_properties",
            sink,
            MessageType::Normal,
            e(|m| m.system_properties = None),
        ),
        (
            "send.no_topic",
            "SendMessage without a topic",
            sink,
            MessageType::Normal,
            e(|m| m.topic = None),
        ),
    ];
    for (id, title, topic, kind, edit) in cases {
        let mut m = pr.msg(topic, kind, "x");
        edit(&mut m);
        let (o, _) = pr.send(&p, m).await;
        pr.row(id, title, o);
    }

    // Batches: empty, mixed topics, good ones.
    let (o, entries) = pr.send_many(&p, Vec::new()).await;
    pr.row(
        "send.batch_empty",
        "SendMessage with no messages",
        o.detail(format!("{} entries", entries.len())),
    );
    let mixed = vec![
        pr.msg(sink, MessageType::Normal, "a"),
        pr.msg("cmp-normal2", MessageType::Normal, "b"),
    ];
    let (o, entries) = pr.send_many(&p, mixed).await;
    pr.row(
        "send.batch_mixed_topics",
        "SendMessage batch of two messages to two topics",
        o.detail(format!("{} entries", entries.len())),
    );
    let two = vec![
        pr.msg(sink, MessageType::Normal, "a"),
        pr.msg(sink, MessageType::Normal, "b"),
    ];
    let (o, entries) = pr.send_many(&p, two).await;
    pr.row(
        "send.batch_ok",
        "SendMessage batch of two messages to one topic",
        Obs::new(
            format!("{}, {} result entries", o.outcome, entries.len()),
            o.message.clone(),
        ),
    );
    let mut bad = pr.msg(sink, MessageType::Normal, "b");
    bad.body.clear();
    let mixed = vec![pr.msg(sink, MessageType::Normal, "a"), bad];
    let (o, entries) = pr.send_many(&p, mixed).await;
    let each: Vec<String> = entries
        .iter()
        .map(|e| status_obs(e.status.as_ref()).outcome)
        .collect();
    pr.row(
        "send.batch_one_bad",
        "SendMessage batch: one good message and one with an empty body",
        Obs::new(
            format!("{} [{}]", o.outcome, each.join(", ")),
            o.message.clone(),
        ),
    );

    // No client id header.
    let m = pr.msg(sink, MessageType::Normal, "x");
    let r = p
        .raw
        .messaging()
        .send_message(tonic::Request::new(SendMessageRequest {
            messages: vec![m],
        }))
        .await;
    let o = match r {
        Ok(r) => status_obs(r.into_inner().status.as_ref()),
        Err(e) => Obs::transport(&e),
    };
    pr.row(
        "send.no_client_id",
        "SendMessage without the x-mq-client-id header",
        o,
    );

    // The same message id twice: both accepted? delivered twice?
    let c = pr.c.clone_ref();
    pr.drain(&c, "cmp-normal").await;
    let m = pr.msg("cmp-normal", MessageType::Normal, "dup");
    let (a, _) = pr.send(&p, m.clone()).await;
    let (b, _) = pr.send(&p, m.clone()).await;
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(12);
    while Instant::now() < deadline {
        let r = pr
            .receive(&c, "cmp-normal", RecvOpts::new(32, 30_000, 5_000))
            .await;
        if r.msgs.is_empty() && n > 0 {
            break;
        }
        for x in &r.msgs {
            if body(x) == "dup" {
                n += 1;
            }
            pr.ack(&c, "cmp-g", "cmp-normal", x, &handle_of(x)).await;
        }
    }
    pr.row(
        "send.duplicate_message_id",
        "SendMessage of the same message (same message_id) twice, then receive",
        Obs::new(
            format!("{} + {}, delivered {n}×", a.outcome, b.outcome),
            b.message.clone(),
        ),
    );
    Ok(())
}
