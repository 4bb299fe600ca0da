//! The data plane over `apache.rocketmq.v2.MessagingService`: sending one
//! message, receiving (pop with long polling) and acknowledging.
//!
//! The server answers these calls with gRPC OK and the outcome in a body
//! `Status`; every non-OK code becomes [`Error::Status`] with the raw code
//! kept, so codes newer than this crate's proto never cause a panic.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use pier_proto::rocketmq::messaging_service_client::MessagingServiceClient;
use pier_proto::rocketmq::receive_message_response::Content;
use pier_proto::rocketmq::{
    AckMessageEntry, AckMessageRequest, Broker, Code, Encoding, FilterExpression, FilterType,
    Message, MessageQueue, MessageType, Permission, ReceiveMessageRequest, ReceiveMessageResponse,
    Resource, SendMessageRequest, SystemProperties,
};

use crate::connect::{self, deadline, request, Connection, HeaderChannel, ServerAddr};
use crate::error::{check, Error, Result};

/// Name Pier gives its (single, logical) broker in routes.
pub const BROKER_NAME: &str = "pier";

/// Extra time a receive's deadline gets over its long-polling time.
pub const RECEIVE_DEADLINE_MARGIN: Duration = Duration::from_secs(3);

/// A fresh message id: a random UUID as 32 upper-case hex digits.
pub fn new_message_id() -> String {
    format!("{:X}", uuid::Uuid::new_v4().simple())
}

fn resource(name: &str) -> Resource {
    Resource {
        resource_namespace: String::new(),
        name: name.to_owned(),
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Destination topic.
    pub topic: String,
    /// Payload, sent as is (`IDENTITY` encoding).
    pub body: Vec<u8>,
    /// Optional tag consumers can filter on.
    pub tag: Option<String>,
    /// Message keys (for lookups).
    pub keys: Vec<String>,
    /// User properties.
    pub properties: BTreeMap<String, String>,
    /// Message group: makes the message FIFO (for FIFO topics).
    pub message_group: Option<String>,
    /// Delivery time: makes the message a DELAY message (for delay topics).
    pub deliver_at: Option<SystemTime>,
}

impl OutgoingMessage {
    /// A NORMAL message with no tag, key or property.
    pub fn new(topic: impl Into<String>, body: impl Into<Vec<u8>>) -> OutgoingMessage {
        OutgoingMessage {
            topic: topic.into(),
            body: body.into(),
            tag: None,
            keys: Vec::new(),
            properties: BTreeMap::new(),
            message_group: None,
            deliver_at: None,
        }
    }

    /// The message type the fields imply: FIFO with a message group, DELAY
    /// with a delivery time, NORMAL otherwise.
    pub fn message_type(&self) -> MessageType {
        if self.message_group.is_some() {
            MessageType::Fifo
        } else if self.deliver_at.is_some() {
            MessageType::Delay
        } else {
            MessageType::Normal
        }
    }

    /// Checks what the server would reject anyway, with a clearer message.
    pub fn validate(&self) -> Result<()> {
        if self.topic.trim().is_empty() {
            return Err(Error::invalid("the topic name is empty"));
        }
        if self.message_group.is_some() && self.deliver_at.is_some() {
            return Err(Error::invalid(
                "a message cannot have both a message group and a delivery time",
            ));
        }
        if let Some(k) = self.properties.keys().find(|k| k.trim().is_empty()) {
            return Err(Error::invalid(format!("property key {k:?} is blank")));
        }
        Ok(())
    }

    /// The wire form, with the given id and birth time (`queue_id` 0).
    pub fn to_proto(&self, message_id: &str, born: SystemTime, born_host: &str) -> Message {
        Message {
            topic: Some(resource(&self.topic)),
            user_properties: self
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            system_properties: Some(SystemProperties {
                tag: self.tag.clone(),
                keys: self.keys.clone(),
                message_id: message_id.to_owned(),
                body_encoding: Encoding::Identity as i32,
                message_type: self.message_type() as i32,
                born_timestamp: Some(prost_types::Timestamp::from(born)),
                born_host: born_host.to_owned(),
                queue_id: 0,
                message_group: self.message_group.clone(),
                delivery_timestamp: self.deliver_at.map(prost_types::Timestamp::from),
                ..Default::default()
            }),
            body: self.body.clone(),
        }
    }
}

/// Where a sent message was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// The message's id.
    pub message_id: String,
    /// Its offset in the queue.
    pub offset: i64,
}

/// What to receive and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveOptions {
    /// Topic to receive from.
    pub topic: String,
    /// Consumer group receiving.
    pub group: String,
    /// Most messages to return.
    pub max_messages: i32,
    /// How long to wait for a message when none is ready (long polling).
    pub wait: Duration,
    /// How long received messages stay invisible to the group before they
    /// are delivered again (unless acked).
    pub invisible: Duration,
    /// Tag filter (`*`, `TagA`, `TagA || TagB`); `None` receives everything.
    pub tag_expression: Option<String>,
}

impl ReceiveOptions {
    /// Up to 16 messages, waiting 5 s, invisible for 30 s, every tag.
    pub fn new(topic: impl Into<String>, group: impl Into<String>) -> ReceiveOptions {
        ReceiveOptions {
            topic: topic.into(),
            group: group.into(),
            max_messages: 16,
            wait: Duration::from_secs(5),
            invisible: Duration::from_secs(30),
            tag_expression: None,
        }
    }

    /// Checks the options before any call.
    pub fn validate(&self) -> Result<()> {
        if self.topic.trim().is_empty() {
            return Err(Error::invalid("the topic name is empty"));
        }
        if self.group.trim().is_empty() {
            return Err(Error::invalid("the consumer group name is empty"));
        }
        if self.max_messages < 1 {
            return Err(Error::invalid(
                "the maximum number of messages must be at least 1",
            ));
        }
        if self.invisible < Duration::from_secs(1) {
            return Err(Error::invalid(
                "the invisible duration must be at least 1 s",
            ));
        }
        Ok(())
    }

    /// The request, addressed to "any queue" (id -1) of Pier's broker at `addr`.
    pub fn to_request(&self, addr: &ServerAddr) -> ReceiveMessageRequest {
        ReceiveMessageRequest {
            group: Some(resource(&self.group)),
            message_queue: Some(MessageQueue {
                topic: Some(resource(&self.topic)),
                id: -1,
                permission: Permission::ReadWrite as i32,
                broker: Some(Broker {
                    name: BROKER_NAME.to_owned(),
                    id: 0,
                    endpoints: Some(addr.endpoints()),
                }),
                accept_message_types: Vec::new(),
            }),
            filter_expression: Some(FilterExpression {
                r#type: FilterType::Tag as i32,
                expression: self
                    .tag_expression
                    .clone()
                    .unwrap_or_else(|| "*".to_owned()),
            }),
            batch_size: self.max_messages,
            invisible_duration: Some(duration(self.invisible)),
            auto_renew: false,
            long_polling_timeout: Some(duration(self.wait)),
            attempt_id: None,
        }
    }
}

fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

fn timestamp_ms(t: &prost_types::Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(t.nanos) / 1_000_000)
}

/// A delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// Topic it was sent to.
    pub topic: String,
    /// Its id.
    pub message_id: String,
    /// Tag, if any.
    pub tag: Option<String>,
    /// Keys.
    pub keys: Vec<String>,
    /// User properties.
    pub properties: BTreeMap<String, String>,
    /// 1 on the first delivery, +1 on each redelivery.
    pub delivery_attempt: i32,
    /// Queue it is stored in.
    pub queue_id: i32,
    /// Offset in that queue.
    pub queue_offset: Option<i64>,
    /// FIFO message group, if any.
    pub message_group: Option<String>,
    /// When the producer created it (ms since the epoch).
    pub born_at_ms: Option<i64>,
    /// Producer host.
    pub born_host: String,
    /// Handle to ack (or change the invisibility of) this delivery.
    pub receipt_handle: String,
    /// Payload.
    pub body: Vec<u8>,
}

impl ReceivedMessage {
    /// Reads a delivered wire message; fails when it has no receipt handle.
    pub fn from_proto(m: Message) -> Result<ReceivedMessage> {
        let sp = m.system_properties.ok_or_else(|| {
            Error::Protocol("a delivered message has no system properties".into())
        })?;
        let receipt_handle = sp.receipt_handle.ok_or_else(|| {
            Error::Protocol(format!(
                "delivered message {} has no receipt handle",
                sp.message_id
            ))
        })?;
        Ok(ReceivedMessage {
            topic: m.topic.map(|t| t.name).unwrap_or_default(),
            message_id: sp.message_id,
            tag: sp.tag,
            keys: sp.keys,
            properties: m.user_properties.into_iter().collect(),
            delivery_attempt: sp.delivery_attempt.unwrap_or(1),
            queue_id: sp.queue_id,
            queue_offset: sp.queue_offset,
            message_group: sp.message_group,
            born_at_ms: sp.born_timestamp.as_ref().map(timestamp_ms),
            born_host: sp.born_host,
            receipt_handle,
            body: m.body,
        })
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl From<&crate::message::MessageView> for ReceivedMessage {
    fn from(m: &crate::message::MessageView) -> ReceivedMessage {
        ReceivedMessage {
            topic: m.topic().to_owned(),
            message_id: m.message_id().to_owned(),
            tag: m.tag().map(str::to_owned),
            keys: m.keys().to_vec(),
            properties: m.properties().clone(),
            delivery_attempt: m.delivery_attempt(),
            queue_id: m.queue_id(),
            queue_offset: m.queue_offset(),
            message_group: m.message_group().map(str::to_owned),
            born_at_ms: m.born_time().and_then(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .ok()
                    .and_then(|d| i64::try_from(d.as_millis()).ok())
            }),
            born_host: m.born_host().to_owned(),
            receipt_handle: m.receipt_handle().to_owned(),
            body: m.body().to_vec(),
        }
    }
}

/// Reads a ReceiveMessage response stream, as the official clients do: the
/// last status frame decides. OK gives the messages, `MESSAGE_NOT_FOUND`
/// gives none, any other code is an error. Without a status frame the
/// messages (if any) are returned.
pub fn read_receive_frames(
    frames: impl IntoIterator<Item = ReceiveMessageResponse>,
) -> Result<Vec<Message>> {
    let mut status = None;
    let mut messages = Vec::new();
    for f in frames {
        match f.content {
            Some(Content::Status(s)) => status = Some(s),
            Some(Content::Message(m)) => messages.push(m),
            Some(Content::DeliveryTimestamp(_)) | None => {}
        }
    }
    match status {
        Some(s) if s.code == Code::MessageNotFound as i32 => Ok(Vec::new()),
        Some(s) => check(Some(&s)).map(|()| messages),
        None if !messages.is_empty() => Ok(messages),
        None => Err(Error::Protocol(
            "ReceiveMessage answered without a status".into(),
        )),
    }
}

/// Messaging client over a [`Connection`].
#[derive(Debug, Clone)]
pub struct Messaging {
    client: MessagingServiceClient<HeaderChannel>,
    addr: ServerAddr,
    timeout: Duration,
}

impl Messaging {
    /// A messaging client sharing `conn`'s channel.
    pub fn new(conn: &Connection) -> Messaging {
        Messaging {
            client: conn.messaging_client(),
            addr: conn.addr().clone(),
            timeout: conn.request_timeout(),
        }
    }

    /// Sends one message with a fresh id.
    pub async fn send(&mut self, message: &OutgoingMessage) -> Result<SendReceipt> {
        message.validate()?;
        let id = new_message_id();
        let req = SendMessageRequest {
            messages: vec![message.to_proto(&id, SystemTime::now(), &connect::hostname())],
        };
        let t = self.timeout;
        let resp = deadline(t, async {
            Ok(self
                .client
                .send_message(request(req, t))
                .await?
                .into_inner())
        })
        .await?;
        match resp.entries.first() {
            Some(entry) => {
                // The entry's status is the precise one; the top-level status
                // summarises the batch.
                check(entry.status.as_ref().or(resp.status.as_ref()))?;
                Ok(SendReceipt {
                    message_id: if entry.message_id.is_empty() {
                        id
                    } else {
                        entry.message_id.clone()
                    },
                    offset: entry.offset,
                })
            }
            None => {
                check(resp.status.as_ref())?;
                Err(Error::Protocol(
                    "SendMessage answered OK without a result entry".into(),
                ))
            }
        }
    }

    /// Receives up to `options.max_messages` messages, long-polling for
    /// `options.wait` (the gRPC deadline is that plus
    /// [`RECEIVE_DEADLINE_MARGIN`]). No message is `Ok(vec![])`.
    pub async fn receive(&mut self, options: &ReceiveOptions) -> Result<Vec<ReceivedMessage>> {
        options.validate()?;
        let req = options.to_request(&self.addr);
        let t = options.wait.saturating_add(RECEIVE_DEADLINE_MARGIN);
        let frames = deadline(t, async {
            let mut stream = self
                .client
                .receive_message(request(req, t))
                .await?
                .into_inner();
            let mut frames = Vec::new();
            while let Some(f) = stream.message().await? {
                frames.push(f);
            }
            Ok(frames)
        })
        .await?;
        read_receive_frames(frames)?
            .into_iter()
            .map(ReceivedMessage::from_proto)
            .collect()
    }

    /// Acknowledges a delivery: the group is done with the message.
    pub async fn ack(&mut self, group: &str, message: &ReceivedMessage) -> Result<()> {
        let req = AckMessageRequest {
            group: Some(resource(group)),
            topic: Some(resource(&message.topic)),
            entries: vec![AckMessageEntry {
                message_id: message.message_id.clone(),
                receipt_handle: message.receipt_handle.clone(),
                lite_topic: None,
            }],
        };
        let t = self.timeout;
        let resp = deadline(t, async {
            Ok(self.client.ack_message(request(req, t)).await?.into_inner())
        })
        .await?;
        let entry_status = resp.entries.first().and_then(|e| e.status.as_ref());
        check(entry_status.or(resp.status.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pier_proto::rocketmq::Status;

    fn status(code: Code) -> ReceiveMessageResponse {
        ReceiveMessageResponse {
            content: Some(Content::Status(Status {
                code: code as i32,
                message: "m".into(),
            })),
        }
    }

    fn raw_status(code: i32) -> ReceiveMessageResponse {
        ReceiveMessageResponse {
            content: Some(Content::Status(Status {
                code,
                message: "new".into(),
            })),
        }
    }

    fn message(id: &str) -> ReceiveMessageResponse {
        let m = OutgoingMessage::new("t", b"x".to_vec()).to_proto(id, SystemTime::UNIX_EPOCH, "h");
        ReceiveMessageResponse {
            content: Some(Content::Message(m)),
        }
    }

    fn stamp() -> ReceiveMessageResponse {
        ReceiveMessageResponse {
            content: Some(Content::DeliveryTimestamp(prost_types::Timestamp::default())),
        }
    }

    #[test]
    fn message_ids_are_32_upper_hex() {
        let id = new_message_id();
        assert_eq!(id.len(), 32);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
            "{id}"
        );
        assert_ne!(id, new_message_id());
    }

    #[test]
    fn outgoing_message_wire_form() {
        let mut m = OutgoingMessage::new("orders", b"hi".to_vec());
        m.tag = Some("TagA".into());
        m.keys = vec!["k1".into(), "k2".into()];
        m.properties.insert("a".into(), "1".into());
        let born = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let p = m.to_proto("ID1", born, "host1");
        assert_eq!(p.topic.unwrap().name, "orders");
        assert_eq!(p.body, b"hi");
        assert_eq!(p.user_properties.get("a").map(String::as_str), Some("1"));
        let sp = p.system_properties.unwrap();
        assert_eq!(sp.message_id, "ID1");
        assert_eq!(sp.tag.as_deref(), Some("TagA"));
        assert_eq!(sp.keys, vec!["k1", "k2"]);
        assert_eq!(sp.message_type, MessageType::Normal as i32);
        assert_eq!(sp.body_encoding, Encoding::Identity as i32);
        assert_eq!(sp.queue_id, 0);
        assert_eq!(sp.born_host, "host1");
        assert_eq!(
            timestamp_ms(sp.born_timestamp.as_ref().unwrap()),
            1_700_000_000_123
        );
        assert!(sp.message_group.is_none() && sp.delivery_timestamp.is_none());
    }

    #[test]
    fn message_type_follows_fields() {
        let mut m = OutgoingMessage::new("t", b"x".to_vec());
        m.message_group = Some("g".into());
        assert_eq!(m.message_type(), MessageType::Fifo);
        assert!(m.validate().is_ok());
        m.deliver_at = Some(SystemTime::now());
        assert!(matches!(m.validate(), Err(Error::InvalidArgument(_))));
        m.message_group = None;
        assert_eq!(m.message_type(), MessageType::Delay);
        assert!(OutgoingMessage::new(" ", b"x".to_vec()).validate().is_err());
    }

    #[test]
    fn receive_request_shape() {
        let addr: ServerAddr = "127.0.0.1:8081".parse().unwrap();
        let mut o = ReceiveOptions::new("orders", "g1");
        o.wait = Duration::from_secs(7);
        o.tag_expression = Some("A || B".into());
        let r = o.to_request(&addr);
        assert_eq!(r.group.unwrap().name, "g1");
        let mq = r.message_queue.unwrap();
        assert_eq!(mq.topic.unwrap().name, "orders");
        assert_eq!(mq.id, -1);
        assert_eq!(mq.permission, Permission::ReadWrite as i32);
        let broker = mq.broker.unwrap();
        assert_eq!(broker.name, "pier");
        assert_eq!(broker.endpoints.unwrap().addresses[0].port, 8081);
        assert_eq!(r.batch_size, 16);
        assert_eq!(r.long_polling_timeout.unwrap().seconds, 7);
        assert_eq!(r.invisible_duration.unwrap().seconds, 30);
        assert!(!r.auto_renew);
        let f = r.filter_expression.unwrap();
        assert_eq!(
            (f.r#type, f.expression.as_str()),
            (FilterType::Tag as i32, "A || B")
        );
        assert_eq!(
            ReceiveOptions::new("t", "g")
                .to_request(&addr)
                .filter_expression
                .unwrap()
                .expression,
            "*"
        );
    }

    #[test]
    fn receive_options_validation() {
        assert!(ReceiveOptions::new("t", "g").validate().is_ok());
        assert!(ReceiveOptions::new("t", "").validate().is_err());
        let mut o = ReceiveOptions::new("t", "g");
        o.max_messages = 0;
        assert!(o.validate().is_err());
        let mut o = ReceiveOptions::new("t", "g");
        o.invisible = Duration::from_millis(500);
        assert!(o.validate().is_err());
    }

    #[test]
    fn receive_frames_ok() {
        let msgs =
            read_receive_frames([status(Code::Ok), message("A"), message("B"), stamp()]).unwrap();
        assert_eq!(msgs.len(), 2);
        // Frames may come in any order.
        let msgs = read_receive_frames([message("A"), status(Code::Ok)]).unwrap();
        assert_eq!(msgs.len(), 1);
    }

    #[test]
    fn receive_frames_not_found_is_empty() {
        assert!(
            read_receive_frames([status(Code::MessageNotFound), stamp()])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn receive_frames_errors_keep_the_code() {
        let e = read_receive_frames([status(Code::ConsumerGroupNotFound), stamp()]).unwrap_err();
        assert_eq!(e.code(), Some(Code::ConsumerGroupNotFound));
        let e = read_receive_frames([raw_status(49999)]).unwrap_err();
        assert!(matches!(e, Error::Status { code: 49999, .. }), "{e:?}");
    }

    #[test]
    fn receive_frames_without_status() {
        assert_eq!(read_receive_frames([message("A")]).unwrap().len(), 1);
        assert!(matches!(
            read_receive_frames([stamp()]),
            Err(Error::Protocol(_))
        ));
    }

    #[test]
    fn received_message_needs_a_receipt_handle() {
        let m =
            OutgoingMessage::new("t", b"x".to_vec()).to_proto("ID", SystemTime::UNIX_EPOCH, "h");
        assert!(matches!(
            ReceivedMessage::from_proto(m.clone()),
            Err(Error::Protocol(_))
        ));
        let mut m = m;
        if let Some(sp) = m.system_properties.as_mut() {
            sp.receipt_handle = Some("RH".into());
            sp.delivery_attempt = Some(2);
            sp.queue_offset = Some(5);
        }
        let r = ReceivedMessage::from_proto(m).unwrap();
        assert_eq!(
            (r.message_id.as_str(), r.delivery_attempt, r.queue_offset),
            ("ID", 2, Some(5))
        );
        assert_eq!(r.receipt_handle, "RH");
        assert_eq!(r.body_text(), "x");
    }
}
