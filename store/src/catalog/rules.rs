//! What makes a topic or group definition valid, and the defaults filled in
//! when a field is left at zero.

use pier_proto::admin::{ConsumerGroup, Topic, TopicType};

use crate::error::{Result, StoreError};

/// Queues of a topic created without a count.
pub(crate) const DEFAULT_QUEUES: u32 = 8;
/// Most queues a topic may have.
pub(crate) const MAX_QUEUES: u32 = 1024;
/// Delivery attempts of a group created without a count, as RocketMQ's
/// default of 16 retries.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 17;
/// Most delivery attempts a group may allow.
const MAX_ATTEMPTS: u32 = 1000;
/// Longest topic or group name, as RocketMQ.
const MAX_NAME_LEN: usize = 127;

/// Topic names Apache RocketMQ keeps for its system topics (its
/// `TopicValidator` set, 5.5.0). Its proxy answers ILLEGAL_TOPIC for them, and
/// tools and clients written for RocketMQ treat them as internal, so Pier
/// refuses them as user topics too.
const RESERVED_TOPICS: &[&str] = &[
    "TBW102",
    "SCHEDULE_TOPIC_XXXX",
    "BenchmarkTest",
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRACE_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    "SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
    "CHECKPOINT_TOPIC",
    "RMQ_SYS_ROCKSDB_TRANS_HALF_TOPIC",
    "RMQ_SYS_ROCKSDB_TRANS_OP_HALF_TOPIC",
];

/// Whether `name` is one of RocketMQ's system topic names (the set above, or
/// its `rmq_sys_` prefix).
pub fn reserved_topic(name: &str) -> bool {
    RESERVED_TOPICS.contains(&name) || name.starts_with("rmq_sys_")
}

/// Whether `name` is a RocketMQ system consumer group (prefix `CID_RMQ_SYS_`,
/// which its proxy refuses with ILLEGAL_CONSUMER_GROUP).
pub fn reserved_group(name: &str) -> bool {
    name.starts_with("CID_RMQ_SYS_")
}

/// Checks the name of a `what` (see [`check_name`]) and refuses one that
/// is `reserved` for `why`.
fn check_usable_name(what: &str, name: &str, reserved: bool, why: &str) -> Result<()> {
    check_name(what, name)?;
    if reserved {
        return Err(StoreError::invalid(format!(
            "{what} name {name:?} is reserved for {why}"
        )));
    }
    Ok(())
}

/// Fills in defaults and checks a topic definition.
pub(crate) fn normalize_topic(mut t: Topic) -> Result<Topic> {
    check_usable_name(
        "topic",
        &t.name,
        reserved_topic(&t.name),
        "RocketMQ's system topics",
    )?;
    if t.r#type == TopicType::Unspecified as i32 {
        t.r#type = TopicType::Normal as i32;
    }
    if TopicType::try_from(t.r#type).is_err() {
        return Err(StoreError::invalid(format!(
            "unknown topic type {}",
            t.r#type
        )));
    }
    default_up_to(&mut t.queues, DEFAULT_QUEUES, MAX_QUEUES, |n| {
        format!("a topic has at most {MAX_QUEUES} queues, not {n}")
    })?;
    Ok(t)
}

/// Fills in defaults and checks a group definition.
pub(crate) fn normalize_group(mut g: ConsumerGroup) -> Result<ConsumerGroup> {
    check_usable_name(
        "consumer group",
        &g.name,
        reserved_group(&g.name),
        "RocketMQ's system groups (prefix CID_RMQ_SYS_)",
    )?;
    default_up_to(
        &mut g.max_attempts,
        DEFAULT_MAX_ATTEMPTS,
        MAX_ATTEMPTS,
        |n| format!("max attempts must be between 1 and {MAX_ATTEMPTS}, not {n}"),
    )?;
    Ok(g)
}

/// Replaces 0 by `default`, then refuses a value above `max` with the
/// reason `refusal` gives.
fn default_up_to(
    value: &mut u32,
    default: u32,
    max: u32,
    refusal: impl FnOnce(u32) -> String,
) -> Result<()> {
    if *value == 0 {
        *value = default;
    }
    if *value > max {
        return Err(StoreError::invalid(refusal(*value)));
    }
    Ok(())
}

/// Names follow RocketMQ: `[%|a-zA-Z0-9_-]`, at most 127 characters.
fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(StoreError::invalid(format!("{what} name is empty")));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(StoreError::invalid(format!(
            "{what} name {name:?} is longer than {MAX_NAME_LEN} characters"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-')))
    {
        return Err(StoreError::invalid(format!(
            "{what} name {name:?} contains {c:?}; allowed are letters, digits, '%', '|', '_' and '-'"
        )));
    }
    Ok(())
}

/// Returns the protocol's name of a topic type.
pub(crate) fn type_name(t: i32) -> &'static str {
    match TopicType::try_from(t) {
        Ok(TopicType::Normal) => "NORMAL",
        Ok(TopicType::Fifo) => "FIFO",
        Ok(TopicType::Delay) => "DELAY",
        Ok(TopicType::Transaction) => "TRANSACTION",
        _ => "UNSPECIFIED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_rocketmq_rules() {
        assert!(check_name("topic", "%DLQ%g_1-x|y").is_ok());
        for bad in ["", "a b", "é", &"x".repeat(128)] {
            assert!(
                matches!(
                    check_name("topic", bad),
                    Err(StoreError::InvalidArgument { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn defaults_fill_zero_fields() {
        let t = normalize_topic(Topic {
            name: "t".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            (t.r#type, t.queues),
            (TopicType::Normal as i32, DEFAULT_QUEUES)
        );
        let g = normalize_group(ConsumerGroup {
            name: "g".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(g.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert!(normalize_group(ConsumerGroup {
            name: "g".into(),
            max_attempts: MAX_ATTEMPTS + 1,
            ..Default::default()
        })
        .is_err());
    }
}
