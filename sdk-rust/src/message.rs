//! Messages: [`Message`] (immutable, built with [`MessageBuilder`]) to send,
//! [`MessageView`] for what a consumer receives.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pier_proto::rocketmq::{Message as WireMessage, MessageType};

use crate::error::{Error, Result};
use crate::messaging::OutgoingMessage;

/// A message to send. Immutable once built; cheap to clone.
///
/// ```
/// use std::time::Duration;
/// use pier::Message;
///
/// let m = Message::builder("orders", "hello")
///     .tag("created")
///     .key("order-42")
///     .property("region", "eu")
///     .build()?;
/// assert_eq!(m.topic(), "orders");
///
/// // FIFO: messages of one group are consumed in send order.
/// let fifo = Message::builder("trades", "buy").message_group("account-7").build()?;
/// // DELAY: invisible to consumers until the delivery time.
/// let later = Message::builder("reminders", "ping").delay(Duration::from_secs(30)).build()?;
/// # let _ = (fifo, later);
/// # Ok::<(), pier::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    inner: Arc<OutgoingMessage>,
}

impl Message {
    /// Starts building a message for `topic` with `body`.
    pub fn builder(topic: impl Into<String>, body: impl Into<Vec<u8>>) -> MessageBuilder {
        MessageBuilder {
            inner: OutgoingMessage::new(topic, body),
        }
    }

    /// Destination topic.
    pub fn topic(&self) -> &str {
        &self.inner.topic
    }

    /// Payload.
    pub fn body(&self) -> &[u8] {
        &self.inner.body
    }

    /// Tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.inner.tag.as_deref()
    }

    /// Keys.
    pub fn keys(&self) -> &[String] {
        &self.inner.keys
    }

    /// User properties.
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.inner.properties
    }

    /// FIFO message group, if any.
    pub fn message_group(&self) -> Option<&str> {
        self.inner.message_group.as_deref()
    }

    /// Delivery time (DELAY message), if any.
    pub fn delivery_time(&self) -> Option<SystemTime> {
        self.inner.deliver_at
    }

    /// The type the message is sent as (without transactions): FIFO with a
    /// group, DELAY with a delivery time, NORMAL otherwise.
    pub fn message_type(&self) -> MessageType {
        self.inner.message_type()
    }

    pub(crate) fn outgoing(&self) -> &OutgoingMessage {
        &self.inner
    }
}

/// Builds a [`Message`].
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    inner: OutgoingMessage,
}

impl MessageBuilder {
    /// Sets the tag consumers can filter on.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.inner.tag = Some(tag.into());
        self
    }

    /// Adds a key (for lookups).
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.inner.keys.push(key.into());
        self
    }

    /// Sets a user property.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner.properties.insert(key.into(), value.into());
        self
    }

    /// Makes the message FIFO within `group` (for FIFO topics).
    pub fn message_group(mut self, group: impl Into<String>) -> Self {
        self.inner.message_group = Some(group.into());
        self
    }

    /// Makes the message a DELAY message delivered at `at` (for delay topics).
    pub fn delivery_time(mut self, at: SystemTime) -> Self {
        self.inner.deliver_at = Some(at);
        self
    }

    /// Shorthand for [`delivery_time`](Self::delivery_time)`(now + delay)`.
    pub fn delay(self, delay: Duration) -> Self {
        self.delivery_time(SystemTime::now() + delay)
    }

    /// Checks the message and builds it.
    pub fn build(self) -> Result<Message> {
        self.inner.validate()?;
        if let Some(tag) = &self.inner.tag {
            if tag.trim().is_empty() || tag.contains('|') {
                return Err(Error::invalid(format!(
                    "tag {tag:?} is blank or contains '|'"
                )));
            }
        }
        if let Some(g) = &self.inner.message_group {
            if g.trim().is_empty() {
                return Err(Error::invalid("the message group is blank"));
            }
        }
        Ok(Message {
            inner: Arc::new(self.inner),
        })
    }
}

#[derive(Debug)]
struct ViewInner {
    topic: String,
    message_id: String,
    tag: Option<String>,
    keys: Vec<String>,
    properties: BTreeMap<String, String>,
    body: Vec<u8>,
    message_group: Option<String>,
    delivery_time: Option<SystemTime>,
    born_time: Option<SystemTime>,
    born_host: String,
    delivery_attempt: i32,
    queue_id: i32,
    queue_offset: Option<i64>,
    receipt_handle: String,
    dead_letter_source: Option<(String, String)>,
}

/// A received message: what a consumer (or a transaction checker) sees.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct MessageView {
    inner: Arc<ViewInner>,
    /// Index of the endpoint it came from (acks go there first).
    pub(crate) origin: usize,
}

fn time(t: &prost_types::Timestamp) -> Option<SystemTime> {
    let secs = u64::try_from(t.seconds).ok()?;
    let nanos = u32::try_from(t.nanos).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

impl MessageView {
    /// Reads a wire message; a delivered one must carry a receipt handle
    /// (`need_handle`), the one of a transaction check does not.
    pub(crate) fn from_wire(
        m: WireMessage,
        origin: usize,
        need_handle: bool,
    ) -> Result<MessageView> {
        let sp = m.system_properties.ok_or_else(|| {
            Error::Protocol("a message from the server has no system properties".into())
        })?;
        let receipt_handle = match sp.receipt_handle {
            Some(h) => h,
            None if need_handle => {
                return Err(Error::Protocol(format!(
                    "delivered message {} has no receipt handle",
                    sp.message_id
                )))
            }
            None => String::new(),
        };
        Ok(MessageView {
            inner: Arc::new(ViewInner {
                topic: m.topic.map(|t| t.name).unwrap_or_default(),
                message_id: sp.message_id,
                tag: sp.tag,
                keys: sp.keys,
                properties: m.user_properties.into_iter().collect(),
                body: m.body,
                message_group: sp.message_group,
                delivery_time: sp.delivery_timestamp.as_ref().and_then(time),
                born_time: sp.born_timestamp.as_ref().and_then(time),
                born_host: sp.born_host,
                delivery_attempt: sp.delivery_attempt.unwrap_or(1),
                queue_id: sp.queue_id,
                queue_offset: sp.queue_offset,
                receipt_handle,
                dead_letter_source: sp.dead_letter_queue.map(|d| (d.topic, d.message_id)),
            }),
            origin,
        })
    }

    /// The same delivery with a new receipt handle.
    pub(crate) fn with_receipt_handle(&self, handle: String) -> MessageView {
        let i = &self.inner;
        MessageView {
            inner: Arc::new(ViewInner {
                topic: i.topic.clone(),
                message_id: i.message_id.clone(),
                tag: i.tag.clone(),
                keys: i.keys.clone(),
                properties: i.properties.clone(),
                body: i.body.clone(),
                message_group: i.message_group.clone(),
                delivery_time: i.delivery_time,
                born_time: i.born_time,
                born_host: i.born_host.clone(),
                delivery_attempt: i.delivery_attempt,
                queue_id: i.queue_id,
                queue_offset: i.queue_offset,
                receipt_handle: handle,
                dead_letter_source: i.dead_letter_source.clone(),
            }),
            origin: self.origin,
        }
    }

    /// Topic (without namespace).
    pub fn topic(&self) -> &str {
        &self.inner.topic
    }

    /// Message id.
    pub fn message_id(&self) -> &str {
        &self.inner.message_id
    }

    /// Tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.inner.tag.as_deref()
    }

    /// Keys.
    pub fn keys(&self) -> &[String] {
        &self.inner.keys
    }

    /// User properties.
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.inner.properties
    }

    /// Payload.
    pub fn body(&self) -> &[u8] {
        &self.inner.body
    }

    /// Payload as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.inner.body).into_owned()
    }

    /// FIFO message group, if any.
    pub fn message_group(&self) -> Option<&str> {
        self.inner.message_group.as_deref()
    }

    /// Delivery time of a DELAY message.
    pub fn delivery_time(&self) -> Option<SystemTime> {
        self.inner.delivery_time
    }

    /// When the producer created it.
    pub fn born_time(&self) -> Option<SystemTime> {
        self.inner.born_time
    }

    /// Producer host.
    pub fn born_host(&self) -> &str {
        &self.inner.born_host
    }

    /// 1 on the first delivery, +1 on each redelivery.
    pub fn delivery_attempt(&self) -> i32 {
        self.inner.delivery_attempt
    }

    /// Queue the message is stored in.
    pub fn queue_id(&self) -> i32 {
        self.inner.queue_id
    }

    /// Offset in that queue, when the server tells.
    pub fn queue_offset(&self) -> Option<i64> {
        self.inner.queue_offset
    }

    /// Opaque handle naming this delivery (for ack and invisibility
    /// changes); empty for the message of a transaction check.
    pub fn receipt_handle(&self) -> &str {
        &self.inner.receipt_handle
    }

    /// For a message read from a dead-letter queue: the original topic and
    /// message id.
    pub fn dead_letter_source(&self) -> Option<(&str, &str)> {
        self.inner
            .dead_letter_source
            .as_ref()
            .map(|(t, id)| (t.as_str(), id.as_str()))
    }

    /// Body size in bytes (what the push consumer's cache counts).
    pub(crate) fn size(&self) -> usize {
        self.inner.body.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_checks_fields() {
        assert!(Message::builder("t", "x").tag("a|b").build().is_err());
        assert!(Message::builder("t", "x")
            .message_group(" ")
            .build()
            .is_err());
        assert!(Message::builder("", "x").build().is_err());
        assert!(Message::builder("t", "x")
            .message_group("g")
            .delay(Duration::from_secs(1))
            .build()
            .is_err());
        let m = Message::builder("t", "x")
            .key("k")
            .property("p", "v")
            .build()
            .unwrap();
        assert_eq!(m.keys(), ["k"]);
        assert_eq!(m.properties().get("p").map(String::as_str), Some("v"));
        assert_eq!(m.message_type(), MessageType::Normal);
    }

    #[test]
    fn view_reads_the_wire_message() {
        let m = Message::builder("t", "body").tag("T").build().unwrap();
        let mut wire = m.outgoing().to_proto("ID", SystemTime::now(), "h");
        assert!(MessageView::from_wire(wire.clone(), 0, true).is_err());
        let v = MessageView::from_wire(wire.clone(), 1, false).unwrap();
        assert_eq!(v.receipt_handle(), "");
        if let Some(sp) = wire.system_properties.as_mut() {
            sp.receipt_handle = Some("RH".into());
            sp.delivery_attempt = Some(3);
        }
        let v = MessageView::from_wire(wire, 1, true).unwrap();
        assert_eq!(
            (v.message_id(), v.tag(), v.delivery_attempt()),
            ("ID", Some("T"), 3)
        );
        assert_eq!(v.body_text(), "body");
        let v2 = v.with_receipt_handle("RH2".into());
        assert_eq!((v2.receipt_handle(), v2.origin), ("RH2", 1));
    }
}
