//! [`MessageView`]: a received message, read from its wire form.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use pier_proto::rocketmq::Message as WireMessage;

use crate::error::{Error, Result};
use crate::time;

#[derive(Debug, Clone)]
struct ViewInner {
    topic: String,
    message_id: String,
    tag: Option<String>,
    keys: Vec<String>,
    properties: BTreeMap<String, String>,
    body: Bytes,
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

impl MessageView {
    /// Reads a delivered wire message (one from a `ReceiveMessage` answer);
    /// fails when it has no system properties or no receipt handle.
    pub fn from_proto(m: WireMessage) -> Result<MessageView> {
        MessageView::from_wire(m, 0, true)
    }

    /// Reads a wire message that came from endpoint `origin`; a delivered
    /// one must carry a receipt handle (`need_handle`), the one of a
    /// transaction check does not.
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
                delivery_time: sp.delivery_timestamp.as_ref().and_then(time::system_time),
                born_time: sp.born_timestamp.as_ref().and_then(time::system_time),
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
        MessageView {
            inner: Arc::new(ViewInner {
                receipt_handle: handle,
                ..(*self.inner).clone()
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

    header_accessors!();

    /// Payload.
    pub fn body(&self) -> &[u8] {
        &self.inner.body
    }

    /// Payload as shared `Bytes` (a reference count, not a copy: it is the
    /// buffer the reply was decoded from).
    pub fn body_bytes(&self) -> Bytes {
        self.inner.body.clone()
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
    use crate::message::Message;

    #[test]
    fn view_reads_the_wire_message() {
        let m = Message::builder("t", "body").tag("T").build().unwrap();
        let mut wire = m.to_proto("", "ID", SystemTime::now(), "h");
        assert!(MessageView::from_wire(wire.clone(), 0, true).is_err());
        assert!(matches!(
            MessageView::from_proto(wire.clone()),
            Err(Error::Protocol(_))
        ));
        let v = MessageView::from_wire(wire.clone(), 1, false).unwrap();
        assert_eq!(v.receipt_handle(), "");
        if let Some(sp) = wire.system_properties.as_mut() {
            sp.receipt_handle = Some("RH".into());
            sp.delivery_attempt = Some(3);
            sp.queue_offset = Some(5);
        }
        let v = MessageView::from_wire(wire.clone(), 1, true).unwrap();
        assert_eq!(
            (v.message_id(), v.tag(), v.delivery_attempt()),
            ("ID", Some("T"), 3)
        );
        assert_eq!(v.body_text(), "body");
        assert_eq!(v.queue_offset(), Some(5));
        let v2 = v.with_receipt_handle("RH2".into());
        assert_eq!((v2.receipt_handle(), v2.origin), ("RH2", 1));
        assert_eq!(v2.message_id(), "ID");
        let public = MessageView::from_proto(wire).unwrap();
        assert_eq!((public.receipt_handle(), public.origin), ("RH", 0));
    }
}
