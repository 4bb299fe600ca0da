//! Helpers for tests driving Pier's own Rust SDK (`pier-sdk`): a producer
//! and the numbered messages most of them send.

use pier::{ClientConfig, Message, Producer};

/// A started producer of `topic`.
pub async fn producer(cfg: &ClientConfig, topic: &str) -> Producer {
    Producer::builder(cfg.clone())
        .topic(topic)
        .start()
        .await
        .unwrap_or_else(|e| panic!("producer of {topic}: {e}"))
}

/// The messages `{prefix}-{i}` for `i` in `range`, to `topic`.
pub fn numbered(topic: &str, prefix: &str, range: std::ops::Range<usize>) -> Vec<Message> {
    range
        .map(|i| {
            Message::builder(topic, format!("{prefix}-{i}"))
                .build()
                .expect("a valid message")
        })
        .collect()
}

/// Sends `messages` one at a time.
pub async fn send_each(producer: &Producer, messages: &[Message]) {
    for m in messages {
        producer.send(m).await.expect("send");
    }
}
