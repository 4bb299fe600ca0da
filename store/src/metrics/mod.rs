//! What the store counts, on the process's OpenTelemetry meter (a node
//! binary installs the provider first, see `pier_node::metrics`; without
//! one, as in library tests, every instrument is a no-op).
//!
//! Names, units and labels follow RocketMQ 5's broker, so its dashboards
//! and alerts read Pier's numbers:
//!
//! - counted where they happen, from the owners' one-line calls into
//!   [`get`]: `rocketmq_messages_in_total`, `rocketmq_throughput_in_total`
//!   and `rocketmq_message_size` (a send, by `topic` and `message_type`),
//!   `rocketmq_messages_out_total` and `rocketmq_throughput_out_total` (a
//!   delivery, by `topic` and `consumer_group`),
//!   `rocketmq_send_to_dlq_messages_total`; Pier's own: the group commit's
//!   batch size, WAL sync latency, long polls waiting, transaction checks
//!   sent;
//! - read when scraped ([`gauges`]), from what the store keeps in memory
//!   anyway: ready and in-flight messages per subscription, queueing and
//!   lag latency, topic and group counts, storage size, pending timers and
//!   transactions.
//!
//! Topic and group labels are capped ([`MAX_TOPIC_LABELS`],
//! [`MAX_GROUP_LABELS`]); later names are counted under `other`.

pub(crate) mod gauges;

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::metrics::{Counter, Histogram, UpDownCounter};
use opentelemetry::KeyValue;
use pier_node::metrics::rpc::LATENCY_BUCKETS_MS;
use pier_node::metrics::LabelCap;
use pier_proto::store::{MessageKind, PoppedMessage, StoredMessage};

/// Most topic names used as label values.
pub const MAX_TOPIC_LABELS: usize = 1000;
/// Most consumer group names used as label values.
pub const MAX_GROUP_LABELS: usize = 1000;

/// Meter name of the store's instruments.
const METER: &str = "pier-store";

/// Bucket bounds of `rocketmq_message_size`, in bytes: RocketMQ's (1 KiB
/// to 4 MiB).
const SIZE_BUCKETS: [f64; 6] = [
    1024.0,
    4096.0,
    524_288.0,
    1_048_576.0,
    2_097_152.0,
    4_194_304.0,
];

/// Bucket bounds of the group commit's batch size, in messages.
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

/// The store's counters and histograms.
pub(crate) struct Metrics {
    messages_in: Counter<u64>,
    throughput_in: Counter<u64>,
    message_size: Histogram<u64>,
    messages_out: Counter<u64>,
    throughput_out: Counter<u64>,
    to_dlq: Counter<u64>,
    commit_batch: Histogram<u64>,
    wal_sync: Histogram<f64>,
    long_polls: UpDownCounter<i64>,
    txn_checks: Counter<u64>,
    pub(crate) topics: LabelCap,
    pub(crate) groups: LabelCap,
}

/// The store's instruments, made on first use from the global meter.
pub(crate) fn get() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    pier_node::metrics::made_once(&M, METER, |m| Metrics {
        messages_in: m
            .u64_counter("rocketmq_messages_in_total")
            .with_description("Messages sent (durably appended)")
            .with_unit("messages")
            .build(),
        throughput_in: m
            .u64_counter("rocketmq_throughput_in_total")
            .with_description("Body bytes of messages sent")
            .with_unit("bytes")
            .build(),
        message_size: m
            .u64_histogram("rocketmq_message_size")
            .with_description("Body size of messages sent")
            .with_unit("bytes")
            .with_boundaries(SIZE_BUCKETS.to_vec())
            .build(),
        messages_out: m
            .u64_counter("rocketmq_messages_out_total")
            .with_description("Messages delivered to consumers (redeliveries included)")
            .with_unit("messages")
            .build(),
        throughput_out: m
            .u64_counter("rocketmq_throughput_out_total")
            .with_description("Body bytes of messages delivered")
            .with_unit("bytes")
            .build(),
        to_dlq: m
            .u64_counter("rocketmq_send_to_dlq_messages_total")
            .with_description("Messages moved to a dead-letter queue")
            .with_unit("messages")
            .build(),
        commit_batch: m
            .u64_histogram("pier_store_commit_batch_messages")
            .with_description("Messages written by one group commit")
            .with_unit("messages")
            .with_boundaries(BATCH_BUCKETS.to_vec())
            .build(),
        wal_sync: m
            .f64_histogram("pier_store_wal_sync_latency")
            .with_description("Latency of writes synced to the write-ahead log (fsync)")
            .with_unit("milliseconds")
            .with_boundaries(LATENCY_BUCKETS_MS.to_vec())
            .build(),
        long_polls: m
            .i64_up_down_counter("pier_store_long_polls_waiting")
            .with_description("Receives waiting for a message (long polls)")
            .build(),
        txn_checks: m
            .u64_counter("pier_store_transaction_checks_sent_total")
            .with_description("Checks of unresolved transactions sent to producers")
            .build(),
        topics: LabelCap::new(MAX_TOPIC_LABELS),
        groups: LabelCap::new(MAX_GROUP_LABELS),
    })
}

/// RocketMQ's `message_type` label values.
fn message_type(kind: i32) -> &'static str {
    match MessageKind::try_from(kind) {
        Ok(MessageKind::Fifo) => "fifo",
        Ok(MessageKind::Delay) => "delay",
        Ok(MessageKind::Transaction) => "transaction",
        _ => "normal",
    }
}

impl Metrics {
    fn topic(&self, topic: &str) -> KeyValue {
        KeyValue::new("topic", self.topics.fold(topic))
    }

    fn group(&self, group: &str) -> KeyValue {
        KeyValue::new("consumer_group", self.groups.fold(group))
    }

    /// Messages durably appended to `topic` by a send.
    pub(crate) fn sent(&self, topic: &str, sent: Sent) {
        let topic = self.topic(topic);
        for (kind, size) in sent.0 {
            let labels = [
                topic.clone(),
                KeyValue::new("message_type", message_type(kind)),
            ];
            self.messages_in.add(1, &labels);
            self.throughput_in.add(size, &labels);
            self.message_size.record(size, &labels);
        }
    }

    /// Messages handed to `group` by a pop.
    pub(crate) fn delivered(&self, topic: &str, group: &str, messages: &[PoppedMessage]) {
        if messages.is_empty() {
            return;
        }
        let labels = [self.topic(topic), self.group(group)];
        let bytes = messages
            .iter()
            .filter_map(|p| p.message.as_ref())
            .map(|m| m.body.len() as u64)
            .sum();
        self.messages_out.add(messages.len() as u64, &labels);
        self.throughput_out.add(bytes, &labels);
    }

    /// A message of `topic` moved to `group`'s dead-letter queue.
    pub(crate) fn dead_lettered(&self, topic: &str, group: &str) {
        self.to_dlq.add(1, &[self.topic(topic), self.group(group)]);
    }

    /// One group commit wrote `messages` messages.
    pub(crate) fn committed(&self, messages: usize) {
        self.commit_batch.record(messages as u64, &[]);
    }

    /// A synced write (`operation` names it, e.g. "appending messages")
    /// took `took`.
    pub(crate) fn synced(&self, operation: &'static str, took: Duration) {
        self.wal_sync.record(
            took.as_secs_f64() * 1000.0,
            &[KeyValue::new("operation", operation)],
        );
    }

    /// A long poll starts waiting; it stops counting when the guard drops.
    pub(crate) fn long_poll(&self) -> LongPoll {
        self.long_polls.add(1, &[]);
        LongPoll(())
    }

    /// A transaction check was sent.
    pub(crate) fn txn_check_sent(&self) {
        self.txn_checks.add(1, &[]);
    }
}

/// The kind and body size of each message of a send, taken before the
/// messages move into the log and counted once they are durable.
pub(crate) struct Sent(Vec<(i32, u64)>);

impl Sent {
    pub(crate) fn of(messages: &[StoredMessage]) -> Sent {
        Sent(
            messages
                .iter()
                .map(|m| (m.kind, m.body.len() as u64))
                .collect(),
        )
    }
}

/// A long poll that is waiting (see [`Metrics::long_poll`]).
pub(crate) struct LongPoll(());

impl Drop for LongPoll {
    fn drop(&mut self) {
        get().long_polls.add(-1, &[]);
    }
}
