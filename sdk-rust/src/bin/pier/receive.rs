//! `pier receive`: receives messages for a consumer group through the
//! SDK's simple consumer, prints them, then acks them.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use pier::{ClientConfig, FilterExpression, MessageView, SimpleConsumer};
use serde_json::{json, Value};

use crate::args::ReceiveArgs;

fn filter_of(a: &ReceiveArgs) -> FilterExpression {
    FilterExpression::Tag(a.tag.clone().unwrap_or_else(|| "*".into()))
}

/// Receives once, prints what came, and acks it unless `--no-ack`.
pub(crate) async fn run(config: ClientConfig, a: ReceiveArgs, json: bool) -> anyhow::Result<()> {
    let consumer = SimpleConsumer::builder(config, a.group.clone())
        .subscribe(a.topic.clone(), filter_of(&a))
        .await_duration(Duration::from_secs(a.wait))
        .start()
        .await?;
    let result = receive_with(&consumer, &a, json).await;
    consumer.shutdown().await;
    result
}

async fn receive_with(
    consumer: &SimpleConsumer,
    a: &ReceiveArgs,
    json: bool,
) -> anyhow::Result<()> {
    let max = usize::try_from(a.max).unwrap_or(1);
    let views = consumer
        .receive(max, Duration::from_secs(a.invisible))
        .await?;
    // Print first, then ack: a message is never acked before it was shown.
    if json {
        let list: Vec<Value> = views.iter().map(message_json).collect();
        println!("{}", json!({ "messages": list }));
    } else if views.is_empty() {
        println!("no message");
    } else {
        for m in &views {
            println!("{}", message_line(m));
        }
    }
    if !a.no_ack {
        for m in &views {
            consumer
                .ack(m)
                .await
                .with_context(|| format!("ack of message {} failed", m.message_id()))?;
        }
    }
    Ok(())
}

/// One text line per message (line breaks in the body escaped).
fn message_line(m: &MessageView) -> String {
    let body = m.body_text().replace('\n', "\\n");
    format!(
        "message_id={} attempt={} tag={} body={}",
        m.message_id(),
        m.delivery_attempt(),
        m.tag().unwrap_or("-"),
        body
    )
}

/// Every field of a message, for `--json`.
fn message_json(m: &MessageView) -> Value {
    let born_at_ms = m.born_time().and_then(|t| {
        t.duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_millis()).ok())
    });
    json!({
        "message_id": m.message_id(),
        "topic": m.topic(),
        "tag": m.tag(),
        "keys": m.keys(),
        "properties": m.properties(),
        "delivery_attempt": m.delivery_attempt(),
        "queue_id": m.queue_id(),
        "queue_offset": m.queue_offset(),
        "message_group": m.message_group(),
        "born_at_ms": born_at_ms,
        "born_host": m.born_host(),
        "receipt_handle": m.receipt_handle(),
        "body": m.body_text(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::tests::parse;
    use crate::args::Command;

    #[test]
    fn receive_arguments() {
        let cli = parse(&["receive", "orders", "--group", "g1"]).unwrap();
        let Command::Receive(a) = cli.command else {
            panic!("not receive")
        };
        assert_eq!((a.max, a.wait, a.invisible, a.no_ack), (16, 5, 30, false));
        assert!(a.tag.is_none());
        assert_eq!(filter_of(&a), FilterExpression::all());

        let cli = parse(&[
            "receive",
            "orders",
            "--group",
            "g1",
            "--max",
            "3",
            "--wait",
            "0",
            "--invisible",
            "60",
            "--tag",
            "A || B",
            "--no-ack",
        ])
        .unwrap();
        let Command::Receive(a) = cli.command else {
            panic!("not receive")
        };
        assert_eq!((a.max, a.wait, a.invisible), (3, 0, 60));
        assert_eq!(filter_of(&a), FilterExpression::Tag("A || B".into()));
        assert!(a.no_ack);

        assert!(
            parse(&["receive", "orders"]).is_err(),
            "--group is required"
        );
        assert!(parse(&["receive", "orders", "--group", "g", "--max", "0"]).is_err());
        assert!(parse(&["receive", "orders", "--group", "g", "--invisible", "0"]).is_err());
    }

    #[test]
    fn renders_messages() {
        use pier_proto::rocketmq::{Message as WireMessage, Resource, SystemProperties};
        let wire = WireMessage {
            topic: Some(Resource {
                resource_namespace: String::new(),
                name: "orders".into(),
            }),
            user_properties: [("k".to_owned(), "v".to_owned())].into(),
            system_properties: Some(SystemProperties {
                message_id: "ABC".into(),
                delivery_attempt: Some(2),
                queue_offset: Some(4),
                born_host: "h".into(),
                born_timestamp: Some(prost_types::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 123_456_789,
                }),
                receipt_handle: Some("RH".into()),
                ..Default::default()
            }),
            body: bytes::Bytes::from_static(b"line1\nline2 \xff"),
        };
        let m = MessageView::from_proto(wire).unwrap();
        assert_eq!(
            message_line(&m),
            "message_id=ABC attempt=2 tag=- body=line1\\nline2 \u{fffd}"
        );
        let v = message_json(&m);
        assert_eq!(v["queue_offset"], 4);
        assert_eq!(v["tag"], Value::Null);
        assert_eq!(v["born_at_ms"], 1_700_000_000_123_i64);
        assert_eq!(v["properties"]["k"], "v");
        assert_eq!(v["receipt_handle"], "RH");
        assert_eq!(v["body"], "line1\nline2 \u{fffd}");
    }
}
