//! Translation between the client protocol's messages and the store's.

use md5::{Digest as _, Md5};
use pier_proto::rocketmq::{
    self as rmq, DeadLetterQueue, Digest, DigestType, Encoding, MessageType, Resource,
    SystemProperties,
};
use pier_proto::store::{MessageKind, StoredMessage};
use prost_types::{Duration as PbDuration, Timestamp};

use crate::status::Rejection;

/// Milliseconds since the epoch as a protobuf Timestamp.
pub fn timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A protobuf Timestamp in ms, saturating: clients may send any seconds
/// and nanos.
pub fn timestamp_ms(t: &Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(t.nanos) / 1_000_000)
}

/// Milliseconds as a protobuf Duration.
pub fn duration(ms: u64) -> PbDuration {
    PbDuration {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

/// A protobuf Duration in ms; `None` when negative or malformed.
pub fn duration_ms(d: &PbDuration) -> Option<u64> {
    if d.seconds < 0 || d.nanos < 0 {
        return None;
    }
    (d.seconds as u64)
        .checked_mul(1000)?
        .checked_add(d.nanos as u64 / 1_000_000)
}

/// The MD5 of a body in upper-case hex, as the clients check it.
pub fn md5_upper_hex(body: &[u8]) -> String {
    hex::encode_upper(Md5::digest(body))
}

/// The store kind of a message: its declared type, or, for clients that
/// leave it unset, what its fields imply (as the Java client decides).
pub fn kind_of(m: &rmq::Message) -> Result<MessageKind, Rejection> {
    let sp = m.system_properties.as_ref();
    let declared = sp.map_or(0, |s| s.message_type);
    let group = sp.is_some_and(|s| s.message_group.is_some());
    let due = sp.is_some_and(|s| s.delivery_timestamp.is_some());
    // A declared type must agree with the fields that make a type: the
    // official clients derive the type from them, and RocketMQ's proxy
    // checks the topic against the type the fields imply, so a FIFO message
    // without a group or a NORMAL one with a delivery time would otherwise
    // be stored as something other than what the sender meant.
    let conflict = |what: &str| {
        Err(Rejection::new(
            rmq::Code::MessagePropertyConflictWithType,
            what.to_owned(),
        ))
    };
    Ok(
        match MessageType::try_from(declared).unwrap_or(MessageType::Unspecified) {
            MessageType::Normal if group => {
                return conflict("a NORMAL message cannot carry a message_group; send it as FIFO")
            }
            MessageType::Normal if due => {
                return conflict(
                    "a NORMAL message cannot carry a delivery_timestamp; send it as DELAY",
                )
            }
            MessageType::Normal => MessageKind::Normal,
            MessageType::Fifo if !group => return conflict("a FIFO message needs a message_group"),
            MessageType::Fifo if due => {
                return conflict("a FIFO message cannot carry a delivery_timestamp")
            }
            MessageType::Fifo => MessageKind::Fifo,
            MessageType::Delay if !due => {
                return conflict("a DELAY message needs a delivery_timestamp")
            }
            MessageType::Delay => MessageKind::Delay,
            MessageType::Transaction => MessageKind::Transaction,
            MessageType::Unspecified => match sp {
                Some(s) if s.message_group.is_some() => MessageKind::Fifo,
                Some(s) if s.delivery_timestamp.is_some() => MessageKind::Delay,
                _ => MessageKind::Normal,
            },
            other => {
                return Err(Rejection::new(
                    rmq::Code::MessagePropertyConflictWithType,
                    format!("{} messages are not supported by Pier", other.as_str_name()),
                ))
            }
        },
    )
}

/// Builds the stored form of a validated client message.
pub fn to_stored(m: rmq::Message, kind: MessageKind) -> StoredMessage {
    let sp = m.system_properties.unwrap_or_default();
    StoredMessage {
        topic: String::new(),
        queue: u32::try_from(sp.queue_id).unwrap_or(u32::MAX),
        offset: 0,
        body_md5: md5_upper_hex(&m.body),
        message_id: sp.message_id,
        tag: sp.tag,
        keys: sp.keys,
        user_properties: m.user_properties.into_iter().collect(),
        body: m.body,
        born_at_ms: sp.born_timestamp.as_ref().map_or(0, timestamp_ms),
        born_host: sp.born_host,
        stored_at_ms: 0,
        visible_since_ms: 0,
        kind: kind as i32,
        message_group: sp.message_group.unwrap_or_default(),
        deliver_at_ms: sp.delivery_timestamp.as_ref().map_or(0, timestamp_ms),
        trace_context: sp.trace_context.unwrap_or_default(),
        dlq_origin_topic: String::new(),
        dlq_origin_message_id: String::new(),
        redrive_group: String::new(),
        txn_check_after_ms: sp
            .orphaned_transaction_recovery_duration
            .as_ref()
            .and_then(duration_ms)
            .unwrap_or(0),
    }
}

fn message_type(kind: i32) -> MessageType {
    match MessageKind::try_from(kind).unwrap_or(MessageKind::Normal) {
        MessageKind::Fifo => MessageType::Fifo,
        MessageKind::Delay => MessageType::Delay,
        MessageKind::Transaction => MessageType::Transaction,
        _ => MessageType::Normal,
    }
}

/// What a consumer receives for one delivery.
pub struct Delivery<'a> {
    /// The topic as the consumer named it, echoed back.
    pub topic: &'a Resource,
    /// The handle that acks or changes this delivery.
    pub receipt_handle: String,
    /// Delivery attempt, from 1.
    pub attempt: u32,
    /// How long the message stays invisible.
    pub invisible_ms: u64,
    /// The address reported as the message's store host.
    pub store_host: &'a str,
}

/// Builds a delivered message with every field the official clients read
/// (protocol.md §4.9.3): an MD5 digest and IDENTITY encoding included.
pub fn to_delivered(m: StoredMessage, d: Delivery<'_>) -> rmq::Message {
    let digest = if m.body_md5.is_empty() {
        md5_upper_hex(&m.body)
    } else {
        m.body_md5
    };
    let dead_letter_queue = (!m.dlq_origin_topic.is_empty()).then_some(DeadLetterQueue {
        topic: m.dlq_origin_topic,
        message_id: m.dlq_origin_message_id,
    });
    rmq::Message {
        topic: Some(d.topic.clone()),
        user_properties: m.user_properties.into_iter().collect(),
        system_properties: Some(SystemProperties {
            tag: m.tag,
            keys: m.keys,
            message_id: m.message_id,
            body_digest: Some(Digest {
                r#type: DigestType::Md5 as i32,
                checksum: digest,
            }),
            body_encoding: Encoding::Identity as i32,
            message_type: message_type(m.kind) as i32,
            born_timestamp: Some(timestamp(m.born_at_ms)),
            born_host: m.born_host,
            store_timestamp: Some(timestamp(m.stored_at_ms)),
            store_host: d.store_host.to_owned(),
            delivery_timestamp: (m.deliver_at_ms > 0).then(|| timestamp(m.deliver_at_ms)),
            receipt_handle: Some(d.receipt_handle),
            queue_id: m.queue as i32,
            queue_offset: Some(m.offset as i64),
            invisible_duration: Some(duration(d.invisible_ms)),
            delivery_attempt: Some(d.attempt as i32),
            message_group: (!m.message_group.is_empty()).then_some(m.message_group),
            trace_context: (!m.trace_context.is_empty()).then_some(m.trace_context),
            orphaned_transaction_recovery_duration: None,
            dead_letter_queue,
            lite_topic: None,
            priority: None,
        }),
        body: m.body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_upper_hex_md5() {
        assert_eq!(md5_upper_hex(b"hello"), "5D41402ABC4B2A76B9719D911017C592");
    }

    #[test]
    fn time_conversions() {
        assert_eq!(
            timestamp_ms(&timestamp(1_700_000_000_123)),
            1_700_000_000_123
        );
        assert_eq!(duration_ms(&duration(1500)), Some(1500));
        assert_eq!(
            duration_ms(&PbDuration {
                seconds: -1,
                nanos: 0
            }),
            None
        );
    }

    #[test]
    fn declared_type_must_match_its_fields() {
        let m = |t: MessageType, group: bool, due: bool| rmq::Message {
            system_properties: Some(rmq::SystemProperties {
                message_type: t as i32,
                message_group: group.then(|| "g".to_owned()),
                delivery_timestamp: due.then(|| timestamp(1_700_000_000_000)),
                ..Default::default()
            }),
            ..Default::default()
        };
        let code = |m: rmq::Message| kind_of(&m).map_err(|r| r.code);
        let conflict = Err(rmq::Code::MessagePropertyConflictWithType);
        assert_eq!(
            code(m(MessageType::Normal, false, false)),
            Ok(MessageKind::Normal)
        );
        assert_eq!(code(m(MessageType::Normal, true, false)), conflict);
        assert_eq!(code(m(MessageType::Normal, false, true)), conflict);
        assert_eq!(
            code(m(MessageType::Fifo, true, false)),
            Ok(MessageKind::Fifo)
        );
        assert_eq!(code(m(MessageType::Fifo, false, false)), conflict);
        assert_eq!(code(m(MessageType::Fifo, true, true)), conflict);
        assert_eq!(
            code(m(MessageType::Delay, false, true)),
            Ok(MessageKind::Delay)
        );
        assert_eq!(code(m(MessageType::Delay, false, false)), conflict);
        // Transactions may carry either; an unset type is derived.
        assert_eq!(
            code(m(MessageType::Transaction, true, false)),
            Ok(MessageKind::Transaction)
        );
        assert_eq!(
            code(m(MessageType::Unspecified, true, false)),
            Ok(MessageKind::Fifo)
        );
        assert_eq!(
            code(m(MessageType::Unspecified, false, true)),
            Ok(MessageKind::Delay)
        );
    }
}
