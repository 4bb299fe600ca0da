//! Property tests of the proxy's decoders of untrusted input (issue 14):
//! receipt and recall handles, request validation, the wire conversions of
//! times and types, and the `grpc-timeout` header. For any input they must
//! return a typed answer (a value or an error carrying a protocol code),
//! never panic; what they issue must decode back to what was put in; and a
//! handle that was not issued exactly as presented must be refused.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use pier_proto::rocketmq::{Code, Message, Resource, SystemProperties};
use pier_proxy::context::parse_grpc_timeout;
use pier_proxy::convert;
use pier_proxy::receipt::{Receipt, ReceiptError, ReceiptKey};
use pier_proxy::status::Rejection;
use pier_proxy::validate::{self, Limits};
use proptest::prelude::*;
use prost_types::{Duration as PbDuration, Timestamp};

const SECRET: &[u8] = b"fleet secret of the tests";

fn key() -> ReceiptKey {
    ReceiptKey::new(SECRET)
}

/// Names as clients send them: short valid ones, unicode, blanks, control
/// characters and separators, and over-long ones.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9%|_-]{1,20}",
        any::<String>(),
        Just(String::new()),
        Just(" ".to_owned()),
        "[\\x00-\\x1f|% ]{1,4}",
        "[a-z]{100,300}",
    ]
}

/// Any i64, with the edges (where arithmetic overflows) drawn often.
fn wide_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        Just(i64::MIN),
        Just(i64::MAX),
        Just(i64::MIN / 1000),
        Just(i64::MAX / 1000),
        -10_000i64..10_000,
    ]
}

fn wide_i32() -> impl Strategy<Value = i32> {
    prop_oneof![
        any::<i32>(),
        Just(i32::MIN),
        Just(i32::MAX),
        0i32..1_000_000_000
    ]
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (wide_i64(), wide_i32()).prop_map(|(seconds, nanos)| Timestamp { seconds, nanos })
}

fn receipt() -> impl Strategy<Value = Receipt> {
    (
        "\\PC{0,130}",
        "\\PC{0,130}",
        any::<u32>(),
        any::<u64>(),
        any::<u32>(),
        prop_oneof![Just(0u32), any::<u32>()],
        any::<i64>(),
    )
        .prop_map(
            |(group, topic, queue, offset, attempt, handle_seq, issued_ms)| Receipt {
                group,
                topic,
                queue,
                offset,
                attempt,
                handle_seq,
                issued_ms,
            },
        )
}

fn resource() -> impl Strategy<Value = Resource> {
    (name(), prop_oneof![Just(String::new()), name()]).prop_map(|(name, resource_namespace)| {
        Resource {
            resource_namespace,
            name,
        }
    })
}

fn message() -> impl Strategy<Value = Message> {
    let sp = (
        prop_oneof![Just("0A1B2C".to_owned()), name()],
        proptest::option::of(name()),
        proptest::collection::vec(name(), 0..4),
        proptest::option::of(name()),
        proptest::option::of(timestamp()),
        proptest::option::of(timestamp()),
        prop_oneof![0i32..8, any::<i32>()],
        any::<i32>(),
    )
        .prop_map(
            |(message_id, tag, keys, message_group, due, born, message_type, queue_id)| {
                SystemProperties {
                    message_id,
                    tag,
                    keys,
                    message_group,
                    delivery_timestamp: due,
                    born_timestamp: born,
                    message_type,
                    queue_id,
                    ..Default::default()
                }
            },
        );
    (
        proptest::option::of(resource()),
        proptest::option::of(sp),
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec((name(), name()), 0..4),
    )
        .prop_map(|(topic, system_properties, body, props)| Message {
            topic,
            system_properties,
            body: body.into(),
            user_properties: props.into_iter().collect::<HashMap<_, _>>(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn receipts_round_trip(r in receipt()) {
        let k = key();
        prop_assert_eq!(k.open(&k.issue(&r)), Ok(r));
    }

    #[test]
    fn any_string_opens_to_a_typed_error(s in any::<String>()) {
        // Without the secret nobody produces a valid tag: every input is
        // refused, as malformed or as forged, and none panics.
        prop_assert!(key().open(&s).is_err());
        prop_assert!(key().open_recall(&s).is_err());
    }

    #[test]
    fn any_bytes_open_to_a_typed_error(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let s = URL_SAFE_NO_PAD.encode(&b);
        prop_assert!(key().open(&s).is_err());
        prop_assert!(key().open_recall(&s).is_err());
    }

    #[test]
    fn a_flipped_bit_is_refused(r in receipt(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let k = key();
        let mut b = URL_SAFE_NO_PAD.decode(k.issue(&r)).unwrap();
        let i = at.index(b.len());
        b[i] ^= 1 << bit;
        let refused = k.open(&URL_SAFE_NO_PAD.encode(&b));
        prop_assert_eq!(refused, Err(ReceiptError::Forged));
    }

    #[test]
    fn a_cut_or_extended_handle_is_refused(
        r in receipt(),
        keep in any::<prop::sample::Index>(),
        extra in proptest::collection::vec(any::<u8>(), 1..20),
    ) {
        let k = key();
        let b = URL_SAFE_NO_PAD.decode(k.issue(&r)).unwrap();
        let cut = &b[..keep.index(b.len())];
        prop_assert!(k.open(&URL_SAFE_NO_PAD.encode(cut)).is_err());
        let mut longer = b.clone();
        longer.extend_from_slice(&extra);
        prop_assert!(k.open(&URL_SAFE_NO_PAD.encode(&longer)).is_err());
    }

    #[test]
    fn a_changed_character_is_refused(r in receipt(), at in any::<prop::sample::Index>(), c in "[A-Za-z0-9_-]") {
        let k = key();
        let h = k.issue(&r);
        let i = at.index(h.len());
        prop_assume!(h[i..].chars().next() != c.chars().next());
        let mut changed = h.clone();
        changed.replace_range(i..=i, &c);
        prop_assert!(k.open(&changed).is_err(), "{changed} was accepted");
    }

    #[test]
    fn another_secret_is_forged(r in receipt(), other in proptest::collection::vec(any::<u8>(), 0..64)) {
        prop_assume!(other != SECRET);
        let h = key().issue(&r);
        prop_assert_eq!(ReceiptKey::new(&other).open(&h), Err(ReceiptError::Forged));
        let recall = key().issue_recall(&r.topic, &r.offset.to_be_bytes());
        prop_assert_eq!(ReceiptKey::new(&other).open_recall(&recall), Err(ReceiptError::Forged));
    }

    #[test]
    fn recalls_round_trip_and_refuse_tampering(
        topic in "\\PC{0,130}",
        timer in proptest::collection::vec(any::<u8>(), 0..40),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let k = key();
        let h = k.issue_recall(&topic, &timer);
        prop_assert_eq!(k.open_recall(&h), Ok((topic.clone(), timer.clone())));
        // The two kinds of handle are not interchangeable.
        prop_assert!(k.open(&h).is_err());
        let mut b = URL_SAFE_NO_PAD.decode(&h).unwrap();
        let i = at.index(b.len());
        b[i] ^= 1 << bit;
        prop_assert_eq!(k.open_recall(&URL_SAFE_NO_PAD.encode(&b)), Err(ReceiptError::Forged));
    }

    #[test]
    fn names_validate_to_their_code(r in proptest::option::of(resource()), ns in name()) {
        type Validator = fn(Option<&Resource>, &str) -> Result<String, Rejection>;
        let kinds: [(Validator, usize, Code); 2] = [
            (validate::topic, validate::MAX_TOPIC_LEN, Code::IllegalTopic),
            (validate::group, validate::MAX_GROUP_LEN, Code::IllegalConsumerGroup),
        ];
        for (check, max_len, code) in kinds {
            match check(r.as_ref(), &ns) {
                Ok(full) => {
                    let r = r.as_ref().unwrap();
                    prop_assert!(!r.name.is_empty() && r.name.len() <= max_len);
                    prop_assert!(full.ends_with(&r.name));
                }
                Err(e) => prop_assert_eq!(e.code, code),
            }
        }
    }

    #[test]
    fn messages_validate_to_a_message_code(
        m in message(),
        // Now is a real clock: anywhere from 1970 to well past 2100.
        now_ms in 0i64..5_000_000_000_000,
        max_delay_ms in prop_oneof![any::<u64>(), 0u64..100_000_000],
    ) {
        let limits = Limits {
            max_body_size: 32,
            max_delay_ms,
            max_send_messages: 1024,
            max_send_bytes: 1 << 20,
        };
        match validate::message(&m, &limits, now_ms) {
            Ok(()) => {
                prop_assert!(!m.body.is_empty() && m.body.len() <= 32);
                prop_assert!(m.system_properties.is_some());
            }
            Err(e) => prop_assert!(
                matches!(
                    e.code,
                    Code::MessageCorrupted
                        | Code::IllegalMessageId
                        | Code::MessageBodyEmpty
                        | Code::MessageBodyTooLarge
                        | Code::IllegalMessageTag
                        | Code::IllegalMessageKey
                        | Code::IllegalMessageGroup
                        | Code::MessagePropertiesTooLarge
                        | Code::IllegalMessagePropertyKey
                        | Code::IllegalDeliveryTime
                ),
                "{:?}: {}", e.code, e.message
            ),
        }
        match convert::kind_of(&m) {
            Ok(_) => {}
            Err(e) => prop_assert_eq!(e.code, Code::MessagePropertyConflictWithType),
        }
        // Conversion to the stored form takes any message (times and queue
        // ids included) without panicking.
        let kind = convert::kind_of(&m).unwrap_or(pier_proto::store::MessageKind::Normal);
        let stored = convert::to_stored(m.clone(), kind);
        prop_assert_eq!(stored.body, m.body);
    }

    #[test]
    fn times_convert_without_overflow(t in timestamp(), secs in wide_i64(), nanos in wide_i32()) {
        let ms = convert::timestamp_ms(&t);
        if t.nanos >= 0 && t.nanos < 1_000_000_000 && t.seconds.checked_mul(1000).is_some() {
            if let Some(exact) = (t.seconds * 1000).checked_add(i64::from(t.nanos) / 1_000_000) {
                prop_assert_eq!(ms, exact);
            }
        }
        // A negative or malformed duration is None, never a panic.
        let d = PbDuration { seconds: secs, nanos };
        if let Some(ms) = convert::duration_ms(&d) {
            prop_assert!(secs >= 0 && nanos >= 0 && ms / 1000 >= secs as u64);
        }
    }

    #[test]
    fn wire_times_round_trip(ms in -(1i64 << 60)..(1i64 << 60), dur in 0u64..(i64::MAX as u64 / 1000)) {
        prop_assert_eq!(convert::timestamp_ms(&convert::timestamp(ms)), ms);
        prop_assert_eq!(convert::duration_ms(&convert::duration(dur)), Some(dur));
    }

    #[test]
    fn any_grpc_timeout_parses_or_is_none(s in prop_oneof![any::<String>(), "[0-9]{0,12}[HMSmunQé]"]) {
        // Only ASCII digits and a known unit make a timeout.
        if parse_grpc_timeout(&s).is_some() {
            prop_assert!(s.is_ascii());
            prop_assert!(s[..s.len() - 1].parse::<u64>().is_ok());
        }
    }
}
