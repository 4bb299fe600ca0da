//! How a [`StoreError`] crosses a process boundary: a stable kind naming
//! the variant, and its context fields as text. The gRPC store link carries
//! them in a status's metadata (`server` / `remote`), an `AckMany` outcome
//! in its two string fields; both sides rebuild the same variant.

use pier_proto::store::AckOutcome;

use super::{Result, StorageCause, StoreError};

/// Separates the fields of an error in their text form; a backslash escapes
/// it (and itself) inside a field.
const SEPARATOR: char = '\u{1f}';

/// The cause a storage failure reported by a store node reads as.
const REMOTE_CAUSE: &str = "see the store node's log";

impl StoreError {
    /// Returns the stable name of the variant, used on the wire between
    /// proxy and store.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::TopicNotFound { .. } => "topic-not-found",
            StoreError::GroupNotFound { .. } => "group-not-found",
            StoreError::UserNotFound { .. } => "user-not-found",
            StoreError::AlreadyExists { .. } => "already-exists",
            StoreError::InvalidArgument { .. } => "invalid-argument",
            StoreError::TypeConflict { .. } => "type-conflict",
            StoreError::IllegalFilter { .. } => "illegal-filter",
            StoreError::StaleDelivery { .. } => "stale-delivery",
            StoreError::TransactionNotFound { .. } => "transaction-not-found",
            StoreError::TimerNotFound { .. } => "timer-not-found",
            StoreError::TooManyInflight { .. } => "too-many-inflight",
            StoreError::GroupBusy { .. } => "group-busy",
            StoreError::ShuttingDown => "shutting-down",
            StoreError::Storage { .. } => "storage",
            StoreError::Poisoned => "poisoned",
            StoreError::Unavailable { .. } => "unavailable",
            StoreError::Link { .. } => "link",
        }
    }

    /// Returns the context fields of the variant, in declaration order.
    fn fields(&self) -> Vec<String> {
        match self {
            StoreError::TopicNotFound { topic } | StoreError::TimerNotFound { topic } => {
                vec![topic.clone()]
            }
            StoreError::GroupNotFound { group } => vec![group.clone()],
            StoreError::UserNotFound { user } => vec![user.clone()],
            StoreError::AlreadyExists {
                what,
                name,
                existing,
            } => vec![what.clone(), name.clone(), existing.clone()],
            StoreError::InvalidArgument { reason }
            | StoreError::IllegalFilter { reason }
            | StoreError::Unavailable { reason } => vec![reason.clone()],
            StoreError::TypeConflict {
                topic,
                topic_type,
                kind,
            } => vec![topic.clone(), topic_type.clone(), kind.clone()],
            StoreError::StaleDelivery {
                group,
                topic,
                queue,
                offset,
                attempt,
            } => vec![
                group.clone(),
                topic.clone(),
                queue.to_string(),
                offset.to_string(),
                attempt.to_string(),
            ],
            StoreError::TransactionNotFound { transaction_id } => vec![transaction_id.clone()],
            StoreError::TooManyInflight {
                group,
                inflight,
                limit,
            } => vec![group.clone(), inflight.to_string(), limit.to_string()],
            StoreError::GroupBusy {
                group,
                topic,
                inflight,
            } => vec![group.clone(), topic.clone(), inflight.to_string()],
            StoreError::Link { code, reason } => vec![code.clone(), reason.clone()],
            // The cause stays on the node where it happened, which logged
            // it (`server`): storage details do not travel.
            StoreError::Storage { operation, .. } => vec![operation.clone()],
            StoreError::ShuttingDown | StoreError::Poisoned => Vec::new(),
        }
    }

    /// Returns the fields of the variant as one string (see [`SEPARATOR`]).
    pub(crate) fn encoded_fields(&self) -> String {
        let mut out = String::new();
        for (i, field) in self.fields().iter().enumerate() {
            if i > 0 {
                out.push(SEPARATOR);
            }
            for c in field.chars() {
                if c == SEPARATOR || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
        }
        out
    }

    /// Rebuilds an error from its kind and [`StoreError::encoded_fields`].
    pub(crate) fn from_wire(kind: &str, encoded: &str) -> StoreError {
        let mut f = split_fields(encoded).into_iter();
        let mut next = || f.next().unwrap_or_default();
        match kind {
            "topic-not-found" => StoreError::TopicNotFound { topic: next() },
            "group-not-found" => StoreError::GroupNotFound { group: next() },
            "user-not-found" => StoreError::UserNotFound { user: next() },
            "already-exists" => StoreError::AlreadyExists {
                what: next(),
                name: next(),
                existing: next(),
            },
            "invalid-argument" => StoreError::InvalidArgument { reason: next() },
            "type-conflict" => StoreError::TypeConflict {
                topic: next(),
                topic_type: next(),
                kind: next(),
            },
            "illegal-filter" => StoreError::IllegalFilter { reason: next() },
            "stale-delivery" => StoreError::StaleDelivery {
                group: next(),
                topic: next(),
                queue: next().parse().unwrap_or_default(),
                offset: next().parse().unwrap_or_default(),
                attempt: next().parse().unwrap_or_default(),
            },
            "transaction-not-found" => StoreError::TransactionNotFound {
                transaction_id: next(),
            },
            "timer-not-found" => StoreError::TimerNotFound { topic: next() },
            "too-many-inflight" => StoreError::TooManyInflight {
                group: next(),
                inflight: next().parse().unwrap_or_default(),
                limit: next().parse().unwrap_or_default(),
            },
            "group-busy" => StoreError::GroupBusy {
                group: next(),
                topic: next(),
                inflight: next().parse().unwrap_or_default(),
            },
            "shutting-down" => StoreError::ShuttingDown,
            "storage" => StoreError::Storage {
                operation: next(),
                source: StorageCause::Remote(REMOTE_CAUSE.into()),
            },
            "poisoned" => StoreError::Poisoned,
            "unavailable" => StoreError::Unavailable { reason: next() },
            "link" => StoreError::Link {
                code: next(),
                reason: next(),
            },
            // The node answered, so it is not unavailable: it speaks a
            // newer version of the link.
            other => StoreError::Link {
                code: "Unknown".into(),
                reason: format!("the store answered with an unknown error kind {other:?}"),
            },
        }
    }
}

/// Splits what [`StoreError::encoded_fields`] joined.
fn split_fields(encoded: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = encoded.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(escaped), Some(last)) = (chars.next(), fields.last_mut()) {
                    last.push(escaped);
                }
            }
            SEPARATOR => fields.push(String::new()),
            c => {
                if let Some(last) = fields.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    fields
}

/// Returns one entry's result of an `AckMany` as it travels.
pub(crate) fn ack_outcome(r: Result<()>) -> AckOutcome {
    match r {
        Ok(()) => AckOutcome::default(),
        Err(e) => AckOutcome {
            error_kind: e.kind().to_owned(),
            error: e.encoded_fields(),
        },
    }
}

/// Returns the result an `AckMany` outcome stands for.
pub fn ack_result(o: AckOutcome) -> Result<()> {
    if o.error_kind.is_empty() {
        Ok(())
    } else {
        Err(StoreError::from_wire(&o.error_kind, &o.error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(e: &StoreError) -> StoreError {
        StoreError::from_wire(e.kind(), &e.encoded_fields())
    }

    #[test]
    fn every_variant_comes_back_with_its_fields() {
        let cases = [
            StoreError::TopicNotFound { topic: "t".into() },
            StoreError::GroupNotFound { group: "g".into() },
            StoreError::AlreadyExists {
                what: "topic".into(),
                name: "t".into(),
                existing: "type FIFO, 4 queues".into(),
            },
            StoreError::invalid("odd \\ input \u{1f} with separators"),
            StoreError::TypeConflict {
                topic: "t".into(),
                topic_type: "FIFO".into(),
                kind: "NORMAL".into(),
            },
            StoreError::IllegalFilter { reason: "r".into() },
            StoreError::StaleDelivery {
                group: "g".into(),
                topic: "t".into(),
                queue: 3,
                offset: 42,
                attempt: 2,
            },
            StoreError::TransactionNotFound {
                transaction_id: "ab".into(),
            },
            StoreError::TimerNotFound { topic: "d".into() },
            StoreError::TooManyInflight {
                group: "g".into(),
                inflight: 7,
                limit: 5,
            },
            StoreError::GroupBusy {
                group: "g".into(),
                topic: "t".into(),
                inflight: 3,
            },
            StoreError::ShuttingDown,
            StoreError::Poisoned,
            StoreError::Unavailable {
                reason: "down".into(),
            },
            StoreError::Link {
                code: "OutOfRange".into(),
                reason: "too large".into(),
            },
        ];
        for e in &cases {
            let back = round_trip(e);
            assert_eq!(back.kind(), e.kind());
            assert_eq!(back.to_string(), e.to_string());
        }
    }

    #[test]
    fn storage_failures_travel_without_their_cause() {
        let e = StoreError::storage("appending messages", StorageCause::Corrupt("bad".into()));
        assert_eq!(
            e.report(),
            "storage failure while appending messages: corrupt store: bad"
        );
        let back = round_trip(&e);
        assert_eq!(back.to_string(), "storage failure while appending messages");
        assert_eq!(
            back.report(),
            "storage failure while appending messages: on the store node: see the store node's log"
        );
        assert_eq!(round_trip(&back).report(), back.report());
    }

    #[test]
    fn unknown_kinds_are_a_link_failure_not_unavailability() {
        assert!(matches!(
            StoreError::from_wire("from-the-future", ""),
            StoreError::Link { .. }
        ));
    }
}
