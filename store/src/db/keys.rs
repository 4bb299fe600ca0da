//! Key layouts of the column families. Every integer is big-endian so that
//! RocksDB's byte order is numeric order and range scans follow offsets.
//!
//! - `log`:   topic_id u32 | queue u32 | offset u64          -> StoredMessage
//! - `pop`:   b'c' | group_id u32 | topic_id u32 | queue u32   -> cursor u64
//!   `pop`:   b'i' | group_id u32 | topic_id u32 | queue u32 | offset u64
//!   -> attempt u32 | visible_at_ms i64 [| handle_seq u32, when not 0]
//!   (an in-flight delivery)
//!   `pop`: b'l' / b'p' | same tail -> message group (FIFO: the group an
//!   in-flight message locks / a message parked until its group unlocks)
//! - `meta`:  b't' | name -> Topic,  b'g' | name -> ConsumerGroup;
//!   b'u' (users) and b'a' (ACL rules): owned by `auth`, see there
//! - `timer`: due_ms u64 | topic_id u32 | seq u64 -> queue u32 | StoredMessage
//!   (a delay message waiting for its time; ordered by due time)
//! - `txn`:   b'h' | id (16 bytes) -> HalfMessage,
//!   b'c' | next_check_at_ms u64 | id -> () (half messages by check time)
//! - `index`: b'k' (a message key) or b'i' (a message id) | topic_id u32 |
//!   len u16 | the key or id (its first [`INDEX_VALUE_MAX`] bytes) |
//!   entered_ms u64 | queue u32 | offset u64 -> () (where a message with it
//!   is, in the order messages entered the log; owned by `log/index`)
//!   `index`: b'w' | topic_id u32 | queue u32 -> offset u64 (the queue's
//!   messages below it were stored before the index existed),
//!   b'v' -> format u32 (written once, when the index was first opened)

const TIMER_KEY_LEN: usize = 20;
/// Bytes of a key or id the index keeps: longer ones share an entry with
/// every value of the same first bytes, and lookups compare the message's
/// own keys, so a long key is still found (never a wrong message).
pub(crate) const INDEX_VALUE_MAX: usize = 128;
/// Length of the position (entered_ms | queue | offset) ending an index key.
const INDEX_POSITION_LEN: usize = 20;
/// Index entry tags: a message key, a message id, a queue's watermark.
pub(crate) const INDEX_KEY: u8 = b'k';
pub(crate) const INDEX_ID: u8 = b'i';
const INDEX_WATERMARK: u8 = b'w';
/// Where the index format is recorded.
pub(crate) const INDEX_VERSION_KEY: &[u8] = b"v";

/// Every index entry of one key or id of a topic starts with this.
pub(crate) fn index_prefix(tag: u8, topic_id: u32, value: &[u8]) -> Vec<u8> {
    let value = &value[..value.len().min(INDEX_VALUE_MAX)];
    let mut k = Vec::with_capacity(7 + value.len() + INDEX_POSITION_LEN);
    k.push(tag);
    k.extend_from_slice(&topic_id.to_be_bytes());
    // At most INDEX_VALUE_MAX, so it fits: the length ends the value, so
    // the entries of "a" never share a prefix with those of "ab".
    k.extend_from_slice(&(value.len() as u16).to_be_bytes());
    k.extend_from_slice(value);
    k
}

/// Ends an index prefix with a position: when the message entered the log
/// (negative times count as 0), its queue and offset.
pub(crate) fn index_key(mut prefix: Vec<u8>, entered_ms: i64, queue: u32, offset: u64) -> Vec<u8> {
    prefix.extend_from_slice(&(entered_ms.max(0) as u64).to_be_bytes());
    prefix.extend_from_slice(&queue.to_be_bytes());
    prefix.extend_from_slice(&offset.to_be_bytes());
    prefix
}

/// An index prefix followed by a time alone: where entries at or after it
/// start (a seek bound).
pub(crate) fn index_time_bound(prefix: &[u8], at_ms: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 8);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&(at_ms.max(0) as u64).to_be_bytes());
    k
}

/// (entered_ms, queue, offset) at the end of an index entry's key.
pub(crate) fn index_position(key: &[u8]) -> Option<(u64, u32, u64)> {
    let tail = key.get(key.len().checked_sub(INDEX_POSITION_LEN)?..)?;
    let at: [u8; 8] = tail.get(..8)?.try_into().ok()?;
    let q: [u8; 4] = tail.get(8..12)?.try_into().ok()?;
    let o: [u8; 8] = tail.get(12..20)?.try_into().ok()?;
    Some((
        u64::from_be_bytes(at),
        u32::from_be_bytes(q),
        u64::from_be_bytes(o),
    ))
}

/// The range holding every index entry with `tag` of one topic.
pub(crate) fn index_topic_range(tag: u8, topic_id: u32) -> (Vec<u8>, Vec<u8>) {
    let mut from = vec![tag];
    from.extend_from_slice(&topic_id.to_be_bytes());
    let to = match topic_id.checked_add(1) {
        Some(next) => {
            let mut to = vec![tag];
            to.extend_from_slice(&next.to_be_bytes());
            to
        }
        None => vec![tag + 1],
    };
    (from, to)
}

/// Both ranges of a topic's key and id entries, and its watermarks'.
pub(crate) fn index_topic_ranges(topic_id: u32) -> [(Vec<u8>, Vec<u8>); 3] {
    [INDEX_KEY, INDEX_ID, INDEX_WATERMARK].map(|tag| index_topic_range(tag, topic_id))
}

pub(crate) fn index_watermark_key(topic_id: u32, queue: u32) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = INDEX_WATERMARK;
    k[1..5].copy_from_slice(&topic_id.to_be_bytes());
    k[5..9].copy_from_slice(&queue.to_be_bytes());
    k
}

/// Decodes a big-endian u64 value (offsets kept as values).
pub(crate) fn decode_u64(v: &[u8]) -> Option<u64> {
    let b: [u8; 8] = v.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}
/// Length of a transaction's check-schedule key.
pub(crate) const TXN_DUE_KEY_LEN: usize = 25;

pub(crate) fn timer_key(due_ms: u64, topic_id: u32, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(TIMER_KEY_LEN);
    k.extend_from_slice(&due_ms.to_be_bytes());
    k.extend_from_slice(&topic_id.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// (due_ms, topic_id) of a timer key.
pub(crate) fn timer_parts(key: &[u8]) -> Option<(u64, u32)> {
    if key.len() != TIMER_KEY_LEN {
        return None;
    }
    let due: [u8; 8] = key[..8].try_into().ok()?;
    let topic: [u8; 4] = key[8..12].try_into().ok()?;
    Some((u64::from_be_bytes(due), u32::from_be_bytes(topic)))
}

pub(crate) fn log_key(topic_id: u32, queue: u32, offset: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..4].copy_from_slice(&topic_id.to_be_bytes());
    k[4..8].copy_from_slice(&queue.to_be_bytes());
    k[8..].copy_from_slice(&offset.to_be_bytes());
    k
}

pub(crate) fn log_offset(key: &[u8]) -> Option<u64> {
    let b: [u8; 8] = key.get(8..16)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

pub(crate) fn log_topic_prefix(topic_id: u32) -> [u8; 4] {
    topic_id.to_be_bytes()
}

pub(crate) fn cursor_key(group_id: u32, topic_id: u32, queue: u32) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = b'c';
    k[1..5].copy_from_slice(&group_id.to_be_bytes());
    k[5..9].copy_from_slice(&topic_id.to_be_bytes());
    k[9..13].copy_from_slice(&queue.to_be_bytes());
    k
}

/// A per-message entry of a group's consumption state: b'i' in flight,
/// b'l' the FIFO message group an in-flight message locks, b'p' parked (a
/// FIFO message waiting for its message group to unlock).
pub(crate) fn pop_entry_key(
    tag: u8,
    group_id: u32,
    topic_id: u32,
    queue: u32,
    offset: u64,
) -> [u8; 21] {
    let mut k = [0u8; 21];
    k[0] = tag;
    k[1..5].copy_from_slice(&group_id.to_be_bytes());
    k[5..9].copy_from_slice(&topic_id.to_be_bytes());
    k[9..13].copy_from_slice(&queue.to_be_bytes());
    k[13..21].copy_from_slice(&offset.to_be_bytes());
    k
}

/// Prefix of every cursor or in-flight key of one (group, topic).
pub(crate) fn pop_prefix(tag: u8, group_id: u32, topic_id: u32) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = tag;
    k[1..5].copy_from_slice(&group_id.to_be_bytes());
    k[5..9].copy_from_slice(&topic_id.to_be_bytes());
    k
}

/// The value of an in-flight entry. A handle_seq of 0 (no
/// ChangeInvisibleDuration yet, nearly every delivery) is left out: the
/// value stays 12 bytes, as stores before handle_seq wrote it.
pub(crate) fn encode_inflight(attempt: u32, visible_at_ms: i64, handle_seq: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&attempt.to_be_bytes());
    v.extend_from_slice(&visible_at_ms.to_be_bytes());
    if handle_seq != 0 {
        v.extend_from_slice(&handle_seq.to_be_bytes());
    }
    v
}

/// (attempt, visible_at_ms, handle_seq) of an in-flight entry's value.
pub(crate) fn decode_inflight(v: &[u8]) -> Option<(u32, i64, u32)> {
    let a: [u8; 4] = v.get(..4)?.try_into().ok()?;
    let d: [u8; 8] = v.get(4..12)?.try_into().ok()?;
    let seq = match v.get(12..) {
        None | Some([]) => 0,
        Some(rest) => u32::from_be_bytes(rest.try_into().ok()?),
    };
    Some((u32::from_be_bytes(a), i64::from_be_bytes(d), seq))
}

/// Parses `queue | offset` from the tail of an in-flight key.
pub(crate) fn inflight_position(key: &[u8]) -> Option<(u32, u64)> {
    let q: [u8; 4] = key.get(9..13)?.try_into().ok()?;
    let o: [u8; 8] = key.get(13..21)?.try_into().ok()?;
    Some((u32::from_be_bytes(q), u64::from_be_bytes(o)))
}

pub(crate) fn cursor_queue(key: &[u8]) -> Option<u32> {
    let q: [u8; 4] = key.get(9..13)?.try_into().ok()?;
    Some(u32::from_be_bytes(q))
}

pub(crate) fn meta_topic_key(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 1);
    k.push(b't');
    k.extend_from_slice(name.as_bytes());
    k
}

pub(crate) fn meta_group_key(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 1);
    k.push(b'g');
    k.extend_from_slice(name.as_bytes());
    k
}

pub(crate) fn txn_half_key(id: &[u8; 16]) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(b'h');
    k.extend_from_slice(id);
    k
}

pub(crate) fn txn_due_key(at_ms: i64, id: &[u8; 16]) -> Vec<u8> {
    let mut k = Vec::with_capacity(TXN_DUE_KEY_LEN);
    k.push(b'c');
    k.extend_from_slice(&(at_ms.max(0) as u64).to_be_bytes());
    k.extend_from_slice(id);
    k
}

/// (check time, transaction id) of a check-schedule key.
pub(crate) fn txn_due_parts(key: &[u8]) -> Option<(i64, [u8; 16])> {
    if key.len() != TXN_DUE_KEY_LEN || key.first() != Some(&b'c') {
        return None;
    }
    let at: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    let id: [u8; 16] = key.get(9..25)?.try_into().ok()?;
    Some((u64::from_be_bytes(at) as i64, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_offset() {
        let a = log_key(1, 2, 255);
        let b = log_key(1, 2, 256);
        assert!(a < b);
        assert_eq!(log_offset(&b), Some(256));
    }

    #[test]
    fn inflight_round_trip() {
        let k = pop_entry_key(b'i', 7, 9, 3, 42);
        assert_eq!(inflight_position(&k), Some((3, 42)));
        assert!(k.starts_with(&pop_prefix(b'i', 7, 9)));
        let v = encode_inflight(5, -3, 0);
        assert_eq!(v.len(), 12, "the layout of stores before handle_seq");
        assert_eq!(decode_inflight(&v), Some((5, -3, 0)));
        let v = encode_inflight(5, -3, 2);
        assert_eq!(decode_inflight(&v), Some((5, -3, 2)));
        // What a store before handle_seq reads of it: the same delivery.
        assert_eq!(&v[..12], &encode_inflight(5, -3, 0)[..]);
        assert_eq!(decode_inflight(&v[..14]), None, "a torn value");
    }

    #[test]
    fn index_keys_of_one_value_share_a_prefix_and_sort_by_time() {
        let p = index_prefix(INDEX_KEY, 3, b"order-1");
        let early = index_key(p.clone(), 5, 9, 1);
        let late = index_key(p.clone(), 6, 0, 0);
        assert!(early < late && early.starts_with(&p) && late.starts_with(&p));
        assert_eq!(index_position(&late), Some((6, 0, 0)));
        assert!(index_time_bound(&p, 6) <= late && index_time_bound(&p, 6) > early);
        // A longer key is not inside a shorter one's prefix.
        let longer = index_key(index_prefix(INDEX_KEY, 3, b"order-12"), 0, 0, 0);
        assert!(!longer.starts_with(&p));
        let (from, to) = index_topic_range(INDEX_KEY, 3);
        assert!(from[..] <= early[..] && early[..] < to[..]);
        let (_, last) = index_topic_range(INDEX_ID, u32::MAX);
        assert!(
            index_key(
                index_prefix(INDEX_ID, u32::MAX, &[0xff; 200]),
                i64::MAX,
                1,
                1
            ) < last
        );
    }

    #[test]
    fn txn_due_keys_sort_by_time_and_parse_back() {
        let id = [7u8; 16];
        assert!(txn_due_key(5, &id) < txn_due_key(6, &id));
        assert!(txn_due_key(1 << 40, &id) > txn_due_key(1 << 39, &[0xff; 16]));
        assert_eq!(txn_due_parts(&txn_due_key(9, &id)), Some((9, id)));
        assert_eq!(txn_due_parts(&txn_half_key(&id)), None);
    }
}

/// Properties of the key codecs over arbitrary input (issue 14): the
/// parsers read keys found on disk, so any bytes must give a value or
/// `None`, never a panic; what the builders write must parse back; and the
/// big-endian layout must sort keys in the numeric order scans rely on.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..40)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parsers_take_any_bytes(b in bytes()) {
            let _ = timer_parts(&b);
            let _ = log_offset(&b);
            let _ = decode_inflight(&b);
            let _ = inflight_position(&b);
            let _ = cursor_queue(&b);
            let _ = index_position(&b);
            let _ = decode_u64(&b);
            if let Some((at, _)) = txn_due_parts(&b) {
                prop_assert_eq!(b.len(), TXN_DUE_KEY_LEN);
                prop_assert!(at >= 0 || b[1] & 0x80 != 0);
            }
            prop_assert_eq!(timer_parts(&b).is_some(), b.len() == TIMER_KEY_LEN);
        }

        #[test]
        fn keys_parse_back(
            due in any::<u64>(), topic in any::<u32>(), seq in any::<u64>(),
            group in any::<u32>(), queue in any::<u32>(), offset in any::<u64>(),
            attempt in any::<u32>(), visible in any::<i64>(), id in any::<[u8; 16]>(),
            at in 0i64..i64::MAX, handle_seq in any::<u32>(),
        ) {
            prop_assert_eq!(timer_parts(&timer_key(due, topic, seq)), Some((due, topic)));
            prop_assert_eq!(log_offset(&log_key(topic, queue, offset)), Some(offset));
            for tag in [b'i', b'l', b'p'] {
                let k = pop_entry_key(tag, group, topic, queue, offset);
                prop_assert_eq!(inflight_position(&k), Some((queue, offset)));
                prop_assert!(k.starts_with(&pop_prefix(tag, group, topic)));
            }
            let c = cursor_key(group, topic, queue);
            prop_assert_eq!(cursor_queue(&c), Some(queue));
            prop_assert!(c.starts_with(&pop_prefix(b'c', group, topic)));
            prop_assert_eq!(decode_inflight(&encode_inflight(attempt, visible, handle_seq)), Some((attempt, visible, handle_seq)));
            prop_assert_eq!(txn_due_parts(&txn_due_key(at, &id)), Some((at, id)));
            prop_assert_eq!(txn_due_parts(&txn_half_key(&id)), None);
        }

        #[test]
        fn byte_order_is_numeric_order(
            a in (any::<u32>(), any::<u32>(), any::<u64>()),
            b in (any::<u32>(), any::<u32>(), any::<u64>()),
            due in (any::<u64>(), any::<u64>()),
        ) {
            prop_assert_eq!(log_key(a.0, a.1, a.2).cmp(&log_key(b.0, b.1, b.2)), a.cmp(&b));
            prop_assert_eq!(
                pop_entry_key(b'i', a.0, a.1, 0, a.2).cmp(&pop_entry_key(b'i', b.0, b.1, 0, b.2)),
                a.cmp(&b)
            );
            prop_assert_eq!(
                timer_key(due.0, a.0, a.2).cmp(&timer_key(due.1, b.0, b.2)),
                (due.0, a.0, a.2).cmp(&(due.1, b.0, b.2))
            );
            // A topic's log keys stay inside the range its deletion removes.
            let k = log_key(a.0, a.1, a.2);
            prop_assert!(k[..] >= log_topic_prefix(a.0)[..]);
            if let Some(next) = a.0.checked_add(1) {
                prop_assert!(k[..] < log_topic_prefix(next)[..]);
            }
        }

        #[test]
        fn meta_keys_keep_their_tag(name in "\\PC{0,200}") {
            let t = meta_topic_key(&name);
            let g = meta_group_key(&name);
            prop_assert_eq!(t.first(), Some(&b't'));
            prop_assert_eq!(g.first(), Some(&b'g'));
            prop_assert_eq!(&t[1..], name.as_bytes());
            prop_assert_eq!(&g[1..], name.as_bytes());
        }
    }
}
