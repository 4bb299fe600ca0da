//! What the proxy counts, on the process's OpenTelemetry meter (installed by
//! the binary, see `pier_node::metrics`; a no-op without one).
//!
//! The message flow (in, out, sizes, DLQ) and the backlog gauges are the
//! store's to count, once, however many proxies send; the proxy counts what
//! only it sees:
//!
//! - `rocketmq_rpc_latency`: the tower layer in [`crate::layers`]
//!   (`pier_node::metrics::rpc`);
//! - `rocketmq_producer_connections`, `rocketmq_consumer_connections`: the
//!   Telemetry sessions, read when scraped ([`Connections`]);
//! - `pier_proxy_store_call_latency`: every call to the store, in-process
//!   or over `pier.store.v1` ([`MeteredStore`]);
//! - `pier_proxy_receipt_rejections_total`: receipt handles refused as
//!   malformed or forged ([`receipt_rejected`]).

use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use async_trait::async_trait;
use opentelemetry::metrics::{Counter, Histogram, ObservableGauge};
use opentelemetry::KeyValue;
use pier_node::metrics::rpc::LATENCY_BUCKETS_MS;
use pier_node::metrics::LabelCap;
use pier_proto::admin::*;
use pier_proto::store::*;
use pier_store::{CheckStream, StoreApi, MAX_GROUP_LABELS};

use crate::receipt::ReceiptError;
use crate::session::Sessions;

const METER: &str = "pier-proxy";

struct Instruments {
    store_calls: Histogram<f64>,
    receipt_rejections: Counter<u64>,
    groups: LabelCap,
}

fn get() -> &'static Instruments {
    static I: OnceLock<Instruments> = OnceLock::new();
    pier_node::metrics::made_once(&I, METER, |m| Instruments {
        store_calls: m
            .f64_histogram("pier_proxy_store_call_latency")
            .with_description(
                "Latency of the proxy's calls to its store (pop includes its long poll)",
            )
            .with_unit("milliseconds")
            .with_boundaries(LATENCY_BUCKETS_MS.to_vec())
            .build(),
        receipt_rejections: m
            .u64_counter("pier_proxy_receipt_rejections_total")
            .with_description("Receipt handles refused as malformed or forged")
            .build(),
        groups: LabelCap::new(MAX_GROUP_LABELS),
    })
}

/// Counts a receipt handle the proxy refused (used as
/// `.inspect_err(metrics::receipt_rejected)`).
pub fn receipt_rejected(e: &ReceiptError) {
    let reason = match e {
        ReceiptError::Malformed(_) => "malformed",
        ReceiptError::Forged => "forged",
    };
    get()
        .receipt_rejections
        .add(1, &[KeyValue::new("reason", reason)]);
}

/// The connection gauges, registered while the proxy runs.
pub struct Connections(#[allow(dead_code)] Vec<ObservableGauge<u64>>);

impl Connections {
    /// Registers the gauges counting `sessions`' clients: producers by
    /// language, consumers by group and language (RocketMQ's labels).
    pub fn register(sessions: &Arc<Sessions>) -> Connections {
        // The callbacks use `get()`'s label cap: its instruments are built
        // now, as building one inside a callback deadlocks (a collection
        // holds the SDK's pipeline lock that instrument creation takes).
        let _ = get();
        let m = opentelemetry::global::meter(METER);
        let gauge = |name: &'static str, what: &'static str, producers: bool| {
            let sessions: Weak<Sessions> = Arc::downgrade(sessions);
            m.u64_observable_gauge(name)
                .with_description(what)
                .with_callback(move |o| {
                    let Some(sessions) = sessions.upgrade() else {
                        return;
                    };
                    let mut counts: std::collections::HashMap<(String, String), u64> =
                        Default::default();
                    for c in sessions.list("", "") {
                        let producer = c.client_type == "PRODUCER";
                        let consumer = c.client_type.ends_with("CONSUMER");
                        if (producers && producer) || (!producers && consumer) {
                            *counts.entry((c.group, c.language)).or_default() += 1;
                        }
                    }
                    for ((group, language), n) in counts {
                        let mut labels = vec![KeyValue::new("language", language)];
                        if !producers {
                            labels.push(KeyValue::new("consumer_group", get().groups.fold(&group)));
                        }
                        o.observe(n, &labels);
                    }
                })
                .build()
        };
        Connections(vec![
            gauge(
                "rocketmq_producer_connections",
                "Producers connected to this proxy (Telemetry sessions)",
                true,
            ),
            gauge(
                "rocketmq_consumer_connections",
                "Consumers connected to this proxy (Telemetry sessions)",
                false,
            ),
        ])
    }
}

/// A [`StoreApi`] that times every call it passes on.
pub struct MeteredStore(pub Arc<dyn StoreApi>);

impl MeteredStore {
    /// Wraps `store`.
    pub fn wrap(store: Arc<dyn StoreApi>) -> Arc<dyn StoreApi> {
        Arc::new(MeteredStore(store))
    }
}

/// Records one store call's latency and outcome.
fn timed<T>(op: &'static str, started: Instant, r: &pier_store::Result<T>) {
    let outcome = match r {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    };
    get().store_calls.record(
        started.elapsed().as_secs_f64() * 1000.0,
        &[
            KeyValue::new("operation", op),
            KeyValue::new("outcome", outcome),
        ],
    );
}

macro_rules! metered {
    ($($name:ident: $req:ty => $resp:ty;)*) => {
        #[async_trait]
        impl StoreApi for MeteredStore {
            $(
                async fn $name(&self, req: $req) -> pier_store::Result<$resp> {
                    let started = Instant::now();
                    let r = self.0.$name(req).await;
                    timed(stringify!($name), started, &r);
                    r
                }
            )*

            async fn watch_transaction_checks(&self) -> pier_store::Result<CheckStream> {
                // A stream open for the proxy's life: nothing to time.
                self.0.watch_transaction_checks().await
            }

            async fn auth_snapshot(
                &self,
                req: AuthSnapshotRequest,
            ) -> pier_store::Result<AuthSnapshotResponse> {
                // A long poll: its time is the wait for a change.
                self.0.auth_snapshot(req).await
            }
        }
    };
}

metered!(
    append: AppendRequest => AppendResponse;
    pop: PopRequest => PopResponse;
    ack: AckRequest => AckResponse;
    ack_many: AckManyRequest => AckManyResponse;
    change_invisible: ChangeInvisibleRequest => ChangeInvisibleResponse;
    release: ReleaseRequest => ReleaseResponse;
    forward_to_dlq: ForwardToDlqRequest => ForwardToDlqResponse;
    recall: RecallRequest => RecallResponse;
    end_transaction: EndTransactionRequest => EndTransactionResponse;
    get_topic: GetTopicRequest => GetTopicResponse;
    get_group: GetGroupRequest => GetGroupResponse;
    create_topic: CreateTopicRequest => CreateTopicResponse;
    update_topic: UpdateTopicRequest => UpdateTopicResponse;
    delete_topic: DeleteTopicRequest => DeleteTopicResponse;
    list_topics: ListTopicsRequest => ListTopicsResponse;
    describe_topic: DescribeTopicRequest => DescribeTopicResponse;
    create_group: CreateGroupRequest => CreateGroupResponse;
    update_group: UpdateGroupRequest => UpdateGroupResponse;
    delete_group: DeleteGroupRequest => DeleteGroupResponse;
    list_groups: ListGroupsRequest => ListGroupsResponse;
    describe_group: DescribeGroupRequest => DescribeGroupResponse;
    create_user: CreateUserRequest => CreateUserResponse;
    delete_user: DeleteUserRequest => DeleteUserResponse;
    list_users: ListUsersRequest => ListUsersResponse;
    describe_user: DescribeUserRequest => DescribeUserResponse;
    grant_acl: GrantAclRequest => GrantAclResponse;
    revoke_acl: RevokeAclRequest => RevokeAclResponse;
    list_acls: ListAclsRequest => ListAclsResponse;
    redrive_dlq: RedriveDlqRequest => RedriveDlqResponse;
    reset_offset: ResetOffsetRequest => ResetOffsetResponse;
    purge_topic: PurgeTopicRequest => PurgeTopicResponse;
    find_messages: FindMessagesRequest => FindMessagesResponse;
    receipt_secret: ReceiptSecretRequest => ReceiptSecretResponse;
);
