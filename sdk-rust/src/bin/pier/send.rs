//! `pier send`: sends one message through the SDK's producer.

use std::time::Duration;

use pier::{ClientConfig, Message, Producer};
use serde_json::json;

use crate::args::SendArgs;
use crate::render::emit;

/// The message the arguments describe.
pub(crate) fn outgoing(a: SendArgs) -> pier::Result<Message> {
    let mut b = Message::builder(a.topic, a.body.into_bytes());
    if let Some(tag) = a.tag {
        b = b.tag(tag);
    }
    for k in a.keys {
        b = b.key(k);
    }
    for (k, v) in a.properties {
        b = b.property(k, v);
    }
    if let Some(g) = a.message_group {
        b = b.message_group(g);
    }
    if let Some(secs) = a.delay {
        b = b.delay(Duration::from_secs(secs));
    }
    b.build()
}

/// Sends the message and prints its id and offset.
pub(crate) async fn run(config: ClientConfig, a: SendArgs, json: bool) -> anyhow::Result<()> {
    let message = outgoing(a)?;
    let producer = Producer::builder(config)
        .topic(message.topic())
        .start()
        .await?;
    let result = producer.send(&message).await;
    producer.shutdown().await;
    let receipt = result?;
    emit(
        json,
        &format!(
            "sent message_id={} offset={}",
            receipt.message_id, receipt.offset
        ),
        &json!({ "topic": message.topic(), "message_id": receipt.message_id, "offset": receipt.offset }),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::tests::parse;
    use crate::args::Command;

    #[test]
    fn send_arguments() {
        let cli = parse(&[
            "send",
            "orders",
            "hello world",
            "--tag",
            "TagA",
            "--key",
            "k1",
            "--key",
            "k2",
            "--property",
            "a=1",
            "--property",
            "b=x=y",
            "--property",
            "empty=",
        ])
        .unwrap();
        let Command::Send(a) = cli.command else {
            panic!("not send")
        };
        let m = outgoing(a).unwrap();
        assert_eq!(m.topic(), "orders");
        assert_eq!(m.body(), b"hello world");
        assert_eq!(m.tag(), Some("TagA"));
        assert_eq!(m.keys(), ["k1", "k2"]);
        assert_eq!(m.properties().get("a").map(String::as_str), Some("1"));
        assert_eq!(m.properties().get("b").map(String::as_str), Some("x=y"));
        assert_eq!(m.properties().get("empty").map(String::as_str), Some(""));
        assert!(m.message_group().is_none() && m.delivery_time().is_none());

        assert!(parse(&["send", "t", "b", "--property", "novalue"]).is_err());
        assert!(parse(&["send", "t", "b", "--property", "=v"]).is_err());
        assert!(parse(&["send", "t"]).is_err());
        assert!(parse(&["send", "t", "b", "--message-group", "g", "--delay", "5"]).is_err());
        let Command::Send(a) = parse(&["send", "t", "b", "--delay", "5"]).unwrap().command else {
            panic!()
        };
        assert!(outgoing(a).unwrap().delivery_time().is_some());
    }
}
