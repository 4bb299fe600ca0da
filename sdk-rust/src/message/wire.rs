//! The wire side of messages: a [`Message`] as `apache.rocketmq.v2.Message`,
//! and the frames of a `ReceiveMessage` answer.

use std::time::SystemTime;

use pier_proto::rocketmq::receive_message_response::Content;
use pier_proto::rocketmq::{
    Code, Encoding, Message as WireMessage, ReceiveMessageResponse, Resource, SystemProperties,
};

use super::Message;
use crate::error::{check, Error, Result};

impl Message {
    /// The wire form in `namespace`, with the given id and birth time
    /// (`queue_id` 0: the producer picks the queue).
    pub(crate) fn to_proto(
        &self,
        namespace: &str,
        message_id: &str,
        born: SystemTime,
        born_host: &str,
    ) -> WireMessage {
        let f = &self.inner;
        WireMessage {
            topic: Some(Resource {
                resource_namespace: namespace.to_owned(),
                name: f.topic.clone(),
            }),
            user_properties: f
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            system_properties: Some(SystemProperties {
                tag: f.tag.clone(),
                keys: f.keys.clone(),
                message_id: message_id.to_owned(),
                body_encoding: Encoding::Identity as i32,
                message_type: self.message_type() as i32,
                born_timestamp: Some(prost_types::Timestamp::from(born)),
                born_host: born_host.to_owned(),
                queue_id: 0,
                message_group: f.message_group.clone(),
                delivery_timestamp: f.deliver_at.map(prost_types::Timestamp::from),
                ..Default::default()
            }),
            // A reference count: the wire message shares the body.
            body: f.body.clone(),
        }
    }
}

/// Reads a ReceiveMessage response stream, as the official clients do: the
/// last status frame decides. OK gives the messages, `MESSAGE_NOT_FOUND`
/// gives none, any other code is an error. Without a status frame the
/// messages (if any) are returned.
pub(crate) fn read_receive_frames(
    frames: impl IntoIterator<Item = ReceiveMessageResponse>,
) -> Result<Vec<WireMessage>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use pier_proto::rocketmq::{MessageType, Status};
    use std::time::Duration;

    fn status(code: i32) -> ReceiveMessageResponse {
        ReceiveMessageResponse {
            content: Some(Content::Status(Status {
                code,
                message: "m".into(),
            })),
        }
    }

    fn message(id: &str) -> ReceiveMessageResponse {
        let m = Message::builder("t", b"x".to_vec()).build().unwrap();
        ReceiveMessageResponse {
            content: Some(Content::Message(m.to_proto(
                "",
                id,
                SystemTime::UNIX_EPOCH,
                "h",
            ))),
        }
    }

    fn stamp() -> ReceiveMessageResponse {
        ReceiveMessageResponse {
            content: Some(Content::DeliveryTimestamp(prost_types::Timestamp::default())),
        }
    }

    const OK: i32 = Code::Ok as i32;

    #[test]
    fn wire_form() {
        let m = Message::builder("orders", "hi")
            .tag("TagA")
            .key("k1")
            .key("k2")
            .property("a", "1")
            .build()
            .unwrap();
        let born = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let p = m.to_proto("staging", "ID1", born, "host1");
        let topic = p.topic.unwrap();
        assert_eq!(
            (topic.name.as_str(), topic.resource_namespace.as_str()),
            ("orders", "staging")
        );
        assert_eq!(p.body, &b"hi"[..]);
        assert_eq!(p.user_properties.get("a").map(String::as_str), Some("1"));
        let sp = p.system_properties.unwrap();
        assert_eq!(sp.message_id, "ID1");
        assert_eq!(sp.tag.as_deref(), Some("TagA"));
        assert_eq!(sp.keys, vec!["k1", "k2"]);
        assert_eq!(sp.message_type, MessageType::Normal as i32);
        assert_eq!(sp.body_encoding, Encoding::Identity as i32);
        assert_eq!(sp.queue_id, 0);
        assert_eq!(sp.born_host, "host1");
        let born = sp.born_timestamp.unwrap();
        assert_eq!((born.seconds, born.nanos), (1_700_000_000, 123_000_000));
        assert!(sp.message_group.is_none() && sp.delivery_timestamp.is_none());
    }

    #[test]
    fn receive_frames_ok() {
        let msgs = read_receive_frames([status(OK), message("A"), message("B"), stamp()]).unwrap();
        assert_eq!(msgs.len(), 2);
        // Frames may come in any order.
        let msgs = read_receive_frames([message("A"), status(OK)]).unwrap();
        assert_eq!(msgs.len(), 1);
    }

    #[test]
    fn receive_frames_not_found_is_empty() {
        let none = read_receive_frames([status(Code::MessageNotFound as i32), stamp()]);
        assert!(none.unwrap().is_empty());
    }

    #[test]
    fn receive_frames_errors_keep_the_code() {
        let e =
            read_receive_frames([status(Code::ConsumerGroupNotFound as i32), stamp()]).unwrap_err();
        assert_eq!(e.code(), Some(Code::ConsumerGroupNotFound));
        let e = read_receive_frames([status(49999)]).unwrap_err();
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
}
