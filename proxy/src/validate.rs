//! Input checks of the client protocol (protocol.md §4.3, §4.7): each
//! failure carries its specific code and says what is wrong.

use pier_proto::rocketmq::{Code, Message, Resource};

use crate::status::Rejection;

/// Limits that apply to every message, and to each SendMessage.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest message body accepted, in bytes.
    pub max_body_size: usize,
    /// Longest delivery time ahead for delay messages, in ms.
    pub max_delay_ms: u64,
    /// Most messages in one SendMessage.
    pub max_send_messages: usize,
    /// Most body bytes in one SendMessage.
    pub max_send_bytes: usize,
}

/// Most user properties on one message.
pub const MAX_USER_PROPERTIES: usize = 128;
/// Most bytes of user property keys and values on one message, with its
/// tag, keys, born host and trace context.
pub const MAX_PROPERTIES_BYTES: usize = 16 * 1024;
/// Longest message id a producer may give (RocketMQ's are 32-34
/// characters).
pub const MAX_MESSAGE_ID_LEN: usize = 128;
/// Longest message group, in bytes.
pub const MAX_MESSAGE_GROUP_BYTES: usize = 64;
/// Longest topic name (as RocketMQ).
pub const MAX_TOPIC_LEN: usize = 127;
/// Longest namespace (of a Resource, or the `x-mq-namespace` header).
pub const MAX_NAMESPACE_LEN: usize = 127;
/// Longest consumer group name (as RocketMQ).
pub const MAX_GROUP_LEN: usize = 120;

/// Property keys RocketMQ reserves for itself (protocol.md §9.1).
const RESERVED_KEYS: &[&str] = &[
    "TRACE_ON",
    "MSG_REGION",
    "KEYS",
    "TAGS",
    "WAIT",
    "DELAY",
    "RETRY_TOPIC",
    "REAL_TOPIC",
    "REAL_QID",
    "TRAN_MSG",
    "PGROUP",
    "MIN_OFFSET",
    "MAX_OFFSET",
    "BUYER_ID",
    "ORIGIN_MESSAGE_ID",
    "TRANSFER_FLAG",
    "CORRECTION_FLAG",
    "MQ2_FLAG",
    "RECONSUME_TIME",
    "UNIQ_KEY",
    "MAX_RECONSUME_TIMES",
    "CONSUME_START_TIME",
    "POP_CK",
    "POP_CK_OFFSET",
    "1ST_POP_TIME",
    "TRAN_PREPARED_QUEUE_OFFSET",
    "DUP_INFO",
    "EXTEND_UNIQ_INFO",
    "INSTANCE_ID",
    "CORRELATION_ID",
    "REPLY_TO_CLIENT",
    "TTL",
    "ARRIVE_TIME",
    "PUSH_REPLY_TIME",
    "CLUSTER",
    "MSG_TYPE",
    "INNER_MULTI_QUEUE_OFFSET",
    "TIMER_DELAY_MS",
    "TIMER_DELAY_SEC",
    "TIMER_DELIVER_MS",
    "TIMER_ENQUEUE_MS",
    "TIMER_DEQUEUE_MS",
    "TIMER_ROLL_TIMES",
    "TIMER_OUT_MS",
    "TIMER_DEL_UNIQKEY",
    "TIMER_DELAY_LEVEL",
    "__BORNHOST",
    "BORN_TIMESTAMP",
    "DLQ_ORIGIN_TOPIC",
    "DLQ_ORIGIN_MESSAGE_ID",
    "__CRC32#",
];

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

fn name_ok(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-'))
}

/// The store-side name of a resource: the namespace (from the Resource, else
/// the `x-mq-namespace` header) joined to the name with '%', as RocketMQ does.
pub fn full_name(r: &Resource, header_ns: &str) -> String {
    let ns = if r.resource_namespace.is_empty() {
        header_ns
    } else {
        &r.resource_namespace
    };
    if ns.is_empty() {
        r.name.clone()
    } else {
        format!("{ns}%{}", r.name)
    }
}

/// How a kind of resource name is checked, and refused.
struct NameRules {
    /// What the messages call it.
    what: &'static str,
    /// The code a bad name is refused with.
    code: Code,
    max_len: usize,
    /// Names RocketMQ keeps for itself, and what for.
    reserved: fn(&str) -> bool,
    reserved_for: &'static str,
}

const TOPIC: NameRules = NameRules {
    what: "topic",
    code: Code::IllegalTopic,
    max_len: MAX_TOPIC_LEN,
    reserved: pier_store::reserved_topic,
    reserved_for: "RocketMQ's system topics",
};

const GROUP: NameRules = NameRules {
    what: "consumer group",
    code: Code::IllegalConsumerGroup,
    max_len: MAX_GROUP_LEN,
    reserved: pier_store::reserved_group,
    reserved_for: "RocketMQ's system groups",
};

/// The full name of a valid topic (see [`full_name`]).
pub fn topic(r: Option<&Resource>, header_ns: &str) -> Result<String, Rejection> {
    checked_name(r, header_ns, &TOPIC)
}

/// The full name of a valid consumer group (see [`full_name`]).
pub fn group(r: Option<&Resource>, header_ns: &str) -> Result<String, Rejection> {
    checked_name(r, header_ns, &GROUP)
}

fn checked_name(
    r: Option<&Resource>,
    header_ns: &str,
    rules: &NameRules,
) -> Result<String, Rejection> {
    let what = rules.what;
    let refuse = |reason: String| Err(Rejection::new(rules.code, reason));
    let Some(r) = r else {
        return refuse(format!("{what} is required"));
    };
    let name = r.name.as_str();
    if name.is_empty() {
        return refuse(format!("{what} name is empty"));
    }
    if name.len() > rules.max_len {
        return refuse(format!(
            "{what} name is {} characters long; the limit is {}",
            name.len(),
            rules.max_len
        ));
    }
    if !name_ok(name) {
        return refuse(format!(
            "{what} name {name:?} may only contain letters, digits, '%', '|', '_' and '-'"
        ));
    }
    // The Resource's namespace, else the `x-mq-namespace` header: part of
    // the full name either way, so held to the same rules.
    let ns = if r.resource_namespace.is_empty() {
        header_ns
    } else {
        &r.resource_namespace
    };
    if ns.len() > MAX_NAMESPACE_LEN || !name_ok(ns) {
        return refuse(format!(
            "namespace of {what} {name:?} must be at most {MAX_NAMESPACE_LEN} letters, digits, '%', '|', '_' and '-'"
        ));
    }
    if (rules.reserved)(name) {
        return refuse(format!(
            "{what} name {name:?} is reserved for {}",
            rules.reserved_for
        ));
    }
    Ok(full_name(r, header_ns))
}

/// Checks the size of a whole SendMessage request, before any message is
/// looked at: it bounds the memory and store write one call may take.
pub fn send_request(messages: &[Message], limits: &Limits) -> Result<(), Rejection> {
    if messages.len() > limits.max_send_messages {
        // PAYLOAD_TOO_LARGE, not TOO_MANY_REQUESTS: the same request would
        // fail again, so the clients must not retry it (they raise it as
        // PayloadTooLargeException); the message says to split the batch.
        return Err(Rejection::new(
            Code::PayloadTooLarge,
            format!(
                "the request carries {} messages; the limit is {} per SendMessage: send smaller batches",
                messages.len(),
                limits.max_send_messages
            ),
        ));
    }
    let bytes: usize = messages.iter().map(|m| m.body.len()).sum();
    if bytes > limits.max_send_bytes {
        // The code of an oversized body, which every client knows (Rust
        // 5.0.0 included) and does not retry.
        return Err(Rejection::new(
            Code::MessageBodyTooLarge,
            format!(
                "the bodies of this request take {bytes} bytes; the limit is {} per SendMessage: send smaller batches",
                limits.max_send_bytes
            ),
        ));
    }
    Ok(())
}

/// Checks one message of a SendMessage request.
pub fn message(m: &Message, limits: &Limits, now_ms: i64) -> Result<(), Rejection> {
    let sp = m
        .system_properties
        .as_ref()
        .ok_or_else(|| Rejection::new(Code::MessageCorrupted, "system_properties are missing"))?;
    if sp.message_id.trim().is_empty() {
        return Err(Rejection::new(
            Code::IllegalMessageId,
            "message_id is empty",
        ));
    }
    if sp.message_id.len() > MAX_MESSAGE_ID_LEN {
        return Err(Rejection::new(
            Code::IllegalMessageId,
            format!(
                "message_id is {} bytes long; the limit is {MAX_MESSAGE_ID_LEN}",
                sp.message_id.len()
            ),
        ));
    }
    if m.body.is_empty() {
        return Err(Rejection::new(
            Code::MessageBodyEmpty,
            "message body is empty",
        ));
    }
    if m.body.len() > limits.max_body_size {
        return Err(Rejection::new(
            Code::MessageBodyTooLarge,
            format!(
                "message body is {} bytes; the limit is {} bytes",
                m.body.len(),
                limits.max_body_size
            ),
        ));
    }
    // Stored with the message and handed to every consumer: they count
    // with the properties.
    let mut props_bytes = sp.born_host.len() + sp.trace_context.as_ref().map_or(0, String::len);
    if let Some(tag) = &sp.tag {
        if tag.trim().is_empty() {
            return Err(Rejection::new(Code::IllegalMessageTag, "tag is blank"));
        }
        if tag.contains('|') {
            return Err(Rejection::new(
                Code::IllegalMessageTag,
                format!("tag {tag:?} contains '|'"),
            ));
        }
        if has_control(tag) {
            return Err(Rejection::new(
                Code::IllegalMessageTag,
                "tag contains control characters",
            ));
        }
        props_bytes += tag.len();
    }
    for key in &sp.keys {
        if key.trim().is_empty() {
            return Err(Rejection::new(
                Code::IllegalMessageKey,
                "a message key is blank",
            ));
        }
        if has_control(key) {
            return Err(Rejection::new(
                Code::IllegalMessageKey,
                format!("message key {key:?} contains control characters"),
            ));
        }
        props_bytes += key.len();
    }
    if let Some(g) = &sp.message_group {
        if g.trim().is_empty() {
            return Err(Rejection::new(
                Code::IllegalMessageGroup,
                "message group is blank",
            ));
        }
        if g.len() >= MAX_MESSAGE_GROUP_BYTES {
            return Err(Rejection::new(
                Code::IllegalMessageGroup,
                format!(
                    "message group is {} bytes; it must be shorter than {MAX_MESSAGE_GROUP_BYTES}",
                    g.len()
                ),
            ));
        }
        if has_control(g) {
            return Err(Rejection::new(
                Code::IllegalMessageGroup,
                "message group contains control characters",
            ));
        }
    }
    if m.user_properties.len() > MAX_USER_PROPERTIES {
        return Err(Rejection::new(
            Code::MessagePropertiesTooLarge,
            format!(
                "message has {} user properties; the limit is {MAX_USER_PROPERTIES}",
                m.user_properties.len()
            ),
        ));
    }
    for (k, v) in &m.user_properties {
        if k.trim().is_empty() {
            return Err(Rejection::new(
                Code::IllegalMessagePropertyKey,
                "a user property key is blank",
            ));
        }
        if RESERVED_KEYS.contains(&k.as_str()) {
            return Err(Rejection::new(
                Code::IllegalMessagePropertyKey,
                format!("user property key {k:?} is reserved by RocketMQ"),
            ));
        }
        if has_control(k) || has_control(v) {
            return Err(Rejection::new(
                Code::IllegalMessagePropertyKey,
                format!("user property {k:?} contains control characters"),
            ));
        }
        props_bytes += k.len() + v.len();
    }
    if props_bytes > MAX_PROPERTIES_BYTES {
        return Err(Rejection::new(
            Code::MessagePropertiesTooLarge,
            format!("properties, tag, keys, born host and trace context take {props_bytes} bytes; the limit is {MAX_PROPERTIES_BYTES}"),
        ));
    }
    if let Some(t) = &sp.delivery_timestamp {
        // Saturating: the timestamp is the client's, any i64 pair.
        let ahead_ms = crate::convert::timestamp_ms(t).saturating_sub(now_ms);
        if ahead_ms > i64::try_from(limits.max_delay_ms).unwrap_or(i64::MAX) {
            return Err(Rejection::new(
                Code::IllegalDeliveryTime,
                format!(
                    "delivery time is {} s ahead; the limit is {} s",
                    ahead_ms / 1000,
                    limits.max_delay_ms / 1000
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use pier_proto::rocketmq::SystemProperties;

    fn limits() -> Limits {
        Limits {
            max_body_size: 16,
            max_delay_ms: 1000,
            max_send_messages: 3,
            max_send_bytes: 20,
        }
    }

    fn good() -> Message {
        Message {
            topic: Some(Resource {
                name: "t".into(),
                ..Default::default()
            }),
            body: Bytes::from_static(b"hi"),
            system_properties: Some(SystemProperties {
                message_id: "id".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn code(m: &Message) -> Code {
        message(m, &limits(), 0)
            .map(|_| Code::Ok)
            .unwrap_or_else(|r| r.code)
    }

    #[test]
    fn each_rule_has_its_code() {
        assert_eq!(code(&good()), Code::Ok);
        let mut m = good();
        m.body = vec![0; 17].into();
        assert_eq!(code(&m), Code::MessageBodyTooLarge);
        let mut m = good();
        m.body.clear();
        assert_eq!(code(&m), Code::MessageBodyEmpty);
        let mut m = good();
        m.system_properties.as_mut().unwrap().message_id.clear();
        assert_eq!(code(&m), Code::IllegalMessageId);
        let mut m = good();
        m.system_properties.as_mut().unwrap().tag = Some("a|b".into());
        assert_eq!(code(&m), Code::IllegalMessageTag);
        let mut m = good();
        m.system_properties.as_mut().unwrap().keys = vec![" ".into()];
        assert_eq!(code(&m), Code::IllegalMessageKey);
        let mut m = good();
        m.system_properties.as_mut().unwrap().message_group = Some("g".repeat(64));
        assert_eq!(code(&m), Code::IllegalMessageGroup);
        let mut m = good();
        m.user_properties.insert("UNIQ_KEY".into(), "x".into());
        assert_eq!(code(&m), Code::IllegalMessagePropertyKey);
        let mut m = good();
        m.user_properties
            .insert("k".into(), "x".repeat(MAX_PROPERTIES_BYTES));
        assert_eq!(code(&m), Code::MessagePropertiesTooLarge);
        // Stored and echoed to consumers: bounded as the properties are.
        let mut m = good();
        m.system_properties.as_mut().unwrap().message_id = "i".repeat(MAX_MESSAGE_ID_LEN);
        assert_eq!(code(&m), Code::Ok);
        m.system_properties.as_mut().unwrap().message_id.push('i');
        assert_eq!(code(&m), Code::IllegalMessageId);
        let mut m = good();
        m.system_properties.as_mut().unwrap().born_host = "h".repeat(MAX_PROPERTIES_BYTES + 1);
        assert_eq!(code(&m), Code::MessagePropertiesTooLarge);
        let mut m = good();
        m.system_properties.as_mut().unwrap().trace_context =
            Some("0".repeat(MAX_PROPERTIES_BYTES + 1));
        assert_eq!(code(&m), Code::MessagePropertiesTooLarge);
        let mut m = good();
        m.system_properties.as_mut().unwrap().delivery_timestamp = Some(prost_types::Timestamp {
            seconds: 5,
            nanos: 0,
        });
        assert_eq!(code(&m), Code::IllegalDeliveryTime);
    }

    #[test]
    fn request_limits_have_their_codes() {
        let code = |msgs: &[Message]| {
            send_request(msgs, &limits())
                .map(|_| Code::Ok)
                .unwrap_or_else(|r| r.code)
        };
        let m = good(); // 2 bytes of body
        assert_eq!(code(&[m.clone(), m.clone(), m.clone()]), Code::Ok);
        assert_eq!(
            code(&[m.clone(), m.clone(), m.clone(), m.clone()]),
            Code::PayloadTooLarge
        );
        let mut big = good();
        big.body = vec![1; 16].into();
        assert_eq!(code(&[big.clone(), m.clone()]), Code::Ok, "18 bytes");
        let r = send_request(&[big.clone(), big], &limits()).unwrap_err();
        assert_eq!(r.code, Code::MessageBodyTooLarge);
        assert!(r.message.contains("32 bytes"), "{}", r.message);
    }

    #[test]
    fn names() {
        let r = |n: &str| Resource {
            name: n.into(),
            resource_namespace: String::new(),
        };
        assert_eq!(topic(Some(&r("ok_-1")), "").unwrap(), "ok_-1");
        assert_eq!(topic(Some(&r("ok")), "ns").unwrap(), "ns%ok");
        assert_eq!(
            topic(Some(&r("bad name")), "").unwrap_err().code,
            Code::IllegalTopic
        );
        assert_eq!(
            topic(Some(&r(&"x".repeat(128))), "").unwrap_err().code,
            Code::IllegalTopic
        );
        assert_eq!(
            group(Some(&r("")), "").unwrap_err().code,
            Code::IllegalConsumerGroup
        );
        assert_eq!(
            group(None, "").unwrap_err().code,
            Code::IllegalConsumerGroup
        );
        // RocketMQ's system names are refused as its proxy refuses them.
        for t in ["RMQ_SYS_TRANS_HALF_TOPIC", "TBW102", "rmq_sys_x"] {
            assert_eq!(topic(Some(&r(t)), "").unwrap_err().code, Code::IllegalTopic);
        }
        assert_eq!(
            group(Some(&r("CID_RMQ_SYS_TRANS")), "").unwrap_err().code,
            Code::IllegalConsumerGroup
        );
        // The namespace, from the Resource or the header, as a name.
        let ns = |ns: &str| Resource {
            name: "t".into(),
            resource_namespace: ns.into(),
        };
        assert_eq!(topic(Some(&ns("a-b")), "header").unwrap(), "a-b%t");
        for bad in ["a b", "a/b", &"n".repeat(MAX_NAMESPACE_LEN + 1)] {
            assert_eq!(
                topic(Some(&ns(bad)), "").unwrap_err().code,
                Code::IllegalTopic
            );
            assert_eq!(
                group(Some(&r("g")), bad).unwrap_err().code,
                Code::IllegalConsumerGroup,
                "header {bad:?}"
            );
        }
        assert!(topic(Some(&r("t")), &"n".repeat(MAX_NAMESPACE_LEN)).is_ok());
        // Look-alikes are fine.
        assert!(topic(Some(&r("RMQ_SYS_TRANS_HALF_TOPIC2")), "").is_ok());
        assert!(group(Some(&r("CID_RMQ_SYSX")), "").is_ok());
    }
}
