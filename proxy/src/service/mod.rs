//! `apache.rocketmq.v2.MessagingService`: what the official clients call.
//!
//! Every handler validates its input, calls the store through [`StoreApi`],
//! and answers with gRPC OK and the outcome in the body `Status`
//! (protocol.md §4.1). Only Telemetry uses gRPC errors, as the reference does.
//!
//! One module per family of RPCs; this one holds what they share (the
//! [`Messaging`] state, the checks every call starts with, topic and group
//! lookups, batch statuses, the report of failures the server caused) and
//! the trait impl, which answers a plain unary RPC with its family's
//! handler through `reply!` and delegates the others:
//!
//! - `route`: QueryRoute, QueryAssignment, Heartbeat, and the settings a
//!   client is answered on its Telemetry stream;
//! - `send`: SendMessage;
//! - `receive`: ReceiveMessage (long poll);
//! - `ack`: AckMessage, ChangeInvisibleDuration, ForwardMessageToDeadLetterQueue;
//! - `transaction`: EndTransaction, and relaying the store's transaction checks;
//! - `recall`: RecallMessage;
//! - `telemetry`: the Telemetry stream, NotifyClientTermination.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use pier_proto::rocketmq::messaging_service_server::MessagingService;
use pier_proto::rocketmq::*;
use pier_proto::store as st;
use pier_store::auth::policy::Action;
use pier_store::{StoreApi, StoreError};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Streaming};

use crate::auth::{Gate, Need};
use crate::config::ProxyConfig;
use crate::context::ClientContext;
use crate::faults::FaultLog;
use crate::limits::RateLimiter;
use crate::receipt::ReceiptKey;
use crate::renew::Renewer;
use crate::session::Sessions;
use crate::status::{ok, Rejection};
use crate::validate::{self, Limits};

/// Answers a unary RPC whose handler returns `Result<reply, Rejection>`:
/// a rejection becomes the reply `$err` builds around its status, and is
/// logged when the server caused it (`faults`). `$resource` names what the
/// request is about, taken before the handler consumes it.
macro_rules! reply {
    ($rpc:literal, $request:ident, $inner:expr, $resource:expr, $body:expr, $err:expr) => {{
        let ctx = $crate::context::ClientContext::of(&$request);
        let req = $request.into_inner();
        let resource = $resource(&req);
        let resp = match $body($inner, &ctx, req).await {
            Ok(r) => r,
            Err(rej) => {
                $inner.faults.report($rpc, &resource, &rej);
                $err(rej.to_status(&ctx))
            }
        };
        Ok(tonic::Response::new(resp))
    }};
}

mod ack;
mod recall;
mod receive;
mod route;
mod send;
mod telemetry;
mod transaction;

pub use route::BROKER_NAME;

/// Messages a consumer asks for when its request says 0 (Node push without
/// `receive_batch_size`, protocol.md §4.9.2); also what settings suggest.
const DEFAULT_BATCH: u32 = 32;
/// Longest invisibility a receive or a change of invisibility may ask for.
const MAX_INVISIBLE_MS: u64 = 12 * 3600 * 1000;

type RpcResult<T> = Result<Response<T>, tonic::Status>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

/// The `MessagingService` the official clients call; cheap to clone.
#[derive(Clone)]
pub struct Messaging {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn StoreApi>,
    cfg: Arc<ProxyConfig>,
    receipts: ReceiptKey,
    sessions: Arc<Sessions>,
    renewer: Arc<Renewer>,
    limits: Limits,
    rate: RateLimiter,
    store_host: String,
    draining: watch::Receiver<bool>,
    faults: Arc<FaultLog>,
    /// Authorization of each request (authentication is done by then).
    gate: Arc<Gate>,
    /// Tasks the handlers start (Telemetry readers, releases of receives
    /// that never reached their consumer); waited for at the end.
    tasks: TaskTracker,
}

impl Messaging {
    // Each argument is one part `server` assembled; a struct of them would
    // only repeat this list.
    /// The service over `store`, with the parts `server` assembled.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn StoreApi>,
        cfg: Arc<ProxyConfig>,
        sessions: Arc<Sessions>,
        renewer: Arc<Renewer>,
        store_host: String,
        draining: watch::Receiver<bool>,
        faults: Arc<FaultLog>,
        security: Security,
    ) -> Messaging {
        Messaging {
            inner: Arc::new(Inner {
                receipts: ReceiptKey::new(security.receipt_key.expose()),
                gate: security.gate,
                limits: Limits {
                    max_body_size: cfg.max_body_size,
                    max_delay_ms: cfg.max_delay_ms,
                    max_send_messages: cfg.max_send_messages,
                    max_send_bytes: cfg.max_send_bytes,
                },
                rate: RateLimiter::new(&cfg),
                store,
                cfg,
                sessions,
                renewer,
                store_host,
                draining,
                faults,
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// Waits for the tasks the handlers started; call it once the server
    /// has stopped serving.
    pub async fn finish(&self) {
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// Drops the clients unseen for `client_expiry_ms` (no heartbeat, no
    /// settings), checking a few times per period, until the proxy drains.
    pub async fn expire_clients(self) {
        let ttl = self.inner.cfg.client_expiry_ms;
        let every = std::time::Duration::from_millis((ttl / 4).clamp(100, 10_000));
        let mut draining = self.inner.draining.clone();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = draining.wait_for(|d| *d) => return,
            }
            let cutoff = pier_store::now_ms().saturating_sub(ttl.min(i64::MAX as u64) as i64);
            for id in self.inner.sessions.expire(cutoff) {
                // Its auto-renewed deliveries go back to the rest of the group.
                self.inner.renewer.forget_client(&id);
                tracing::info!(client = %id, expiry_ms = ttl, "client expired: not seen for the expiry time");
            }
        }
    }
}

/// What the handlers check requests and sign receipts with.
pub struct Security {
    /// Authorization of each request.
    pub gate: Arc<Gate>,
    /// The key of receipt handles, shared by every proxy of a store.
    pub receipt_key: pier_store::auth::Secret,
}

impl Inner {
    /// Whether the call's user may do everything in `needs`.
    fn authorize(&self, ctx: &ClientContext, needs: &[Need<'_>]) -> Result<(), Rejection> {
        if let Some(refused) = &ctx.refused {
            return Err(refused.0.clone().into());
        }
        self.gate
            .authorize(ctx.user(), needs)
            .map_err(Rejection::from)
    }
}

fn require_client(ctx: &ClientContext) -> Result<&str, Rejection> {
    ctx.client_id.as_deref().ok_or_else(|| {
        Rejection::new(
            Code::ClientIdRequired,
            "the x-mq-client-id header is required",
        )
    })
}

impl Inner {
    /// What every RPC with a client checks first: the client id is there,
    /// and neither the client nor its user is over its request rate.
    fn admit<'c>(&self, ctx: &'c ClientContext) -> Result<&'c str, Rejection> {
        let id = require_client(ctx)?;
        self.rate.check(ctx)?;
        Ok(id)
    }

    /// What a batch RPC (send, ack) checks first: a call the auth layer
    /// refused is answered here, entry by entry, then it is admitted.
    fn admit_batch(&self, ctx: &ClientContext) -> Result<(), Rejection> {
        self.authorize(ctx, &[])?;
        self.admit(ctx)?;
        Ok(())
    }

    /// What a producer's call about one topic checks first (recall, end of
    /// a transaction): the call is admitted, the topic is a valid name and
    /// the user may publish to it. Returns the topic's full name.
    fn admit_producer(
        &self,
        ctx: &ClientContext,
        topic: Option<&Resource>,
    ) -> Result<String, Rejection> {
        self.admit(ctx)?;
        let topic = validate::topic(topic, &ctx.namespace)?;
        self.authorize(ctx, &[Need::topic(&topic, Action::Pub)])?;
        Ok(topic)
    }
}

fn entry_status(r: &Result<(), Rejection>, ctx: &ClientContext) -> Status {
    match r {
        Ok(()) => ok(),
        Err(rej) => rej.to_status(ctx),
    }
}

/// OK when every entry is OK, their shared code when they agree, else
/// MULTIPLE_RESULTS (protocol.md §4.1).
fn batch_status(entries: &[Status]) -> Status {
    match entries.first() {
        None => ok(),
        Some(first) if entries.iter().all(|e| e.code == first.code) => first.clone(),
        Some(_) => Status {
            code: Code::MultipleResults as i32,
            message: "entries have different results".into(),
        },
    }
}

fn not_implemented(what: &str) -> Status {
    Status {
        code: Code::NotImplemented as i32,
        message: format!("{what} is not implemented by Pier; use ReceiveMessage (pop) consumption"),
    }
}

/// What a request is about, for the log line of a failure: the topic and
/// group as the client named them.
#[derive(Default)]
struct Target {
    topic: Option<Resource>,
    group: Option<Resource>,
}

impl Target {
    fn new(topic: Option<&Resource>, group: Option<&Resource>) -> Target {
        Target {
            topic: topic.cloned(),
            group: group.cloned(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |r: &Resource| {
            if r.resource_namespace.is_empty() {
                r.name.clone()
            } else {
                format!("{}%{}", r.resource_namespace, r.name)
            }
        };
        match (&self.group, &self.topic) {
            (Some(g), Some(t)) => write!(f, "group {} topic {}", name(g), name(t)),
            (Some(g), None) => write!(f, "group {}", name(g)),
            (None, Some(t)) => write!(f, "topic {}", name(t)),
            (None, None) => f.write_str("-"),
        }
    }
}

impl Inner {
    /// Looks a topic up, creating it when auto-creation is on.
    async fn topic(&self, name: &str) -> Result<pier_proto::admin::Topic, Rejection> {
        match self
            .store
            .get_topic(st::GetTopicRequest { name: name.into() })
            .await
        {
            Ok(r) => r
                .topic
                .ok_or_else(|| Rejection::internal("the store returned no topic")),
            Err(StoreError::TopicNotFound { .. }) if self.cfg.auto_create => {
                let r = self
                    .store
                    .create_topic(pier_proto::admin::CreateTopicRequest {
                        topic: Some(pier_proto::admin::Topic {
                            name: name.into(),
                            ..Default::default()
                        }),
                    })
                    .await?;
                r.topic
                    .ok_or_else(|| Rejection::internal("the store returned no topic"))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Looks a group up, creating it when auto-creation is on.
    async fn group(&self, name: &str) -> Result<pier_proto::admin::ConsumerGroup, Rejection> {
        match self
            .store
            .get_group(st::GetGroupRequest { name: name.into() })
            .await
        {
            Ok(r) => r
                .group
                .ok_or_else(|| Rejection::internal("the store returned no group")),
            Err(StoreError::GroupNotFound { .. }) if self.cfg.auto_create => {
                let r = self
                    .store
                    .create_group(pier_proto::admin::CreateGroupRequest {
                        group: Some(pier_proto::admin::ConsumerGroup {
                            name: name.into(),
                            ..Default::default()
                        }),
                    })
                    .await?;
                r.group
                    .ok_or_else(|| Rejection::internal("the store returned no group"))
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[tonic::async_trait]
impl MessagingService for Messaging {
    async fn query_route(
        &self,
        request: Request<QueryRouteRequest>,
    ) -> RpcResult<QueryRouteResponse> {
        reply!(
            "QueryRoute",
            request,
            &self.inner,
            |r: &QueryRouteRequest| Target::new(r.topic.as_ref(), None),
            Inner::query_route,
            |s| QueryRouteResponse {
                status: Some(s),
                message_queues: vec![],
            }
        )
    }

    async fn heartbeat(&self, request: Request<HeartbeatRequest>) -> RpcResult<HeartbeatResponse> {
        route::heartbeat(&self.inner, request).await
    }

    async fn send_message(
        &self,
        request: Request<SendMessageRequest>,
    ) -> RpcResult<SendMessageResponse> {
        send::send_message(&self.inner, request).await
    }

    async fn query_assignment(
        &self,
        request: Request<QueryAssignmentRequest>,
    ) -> RpcResult<QueryAssignmentResponse> {
        reply!(
            "QueryAssignment",
            request,
            &self.inner,
            |r: &QueryAssignmentRequest| Target::new(r.topic.as_ref(), r.group.as_ref()),
            Inner::query_assignment,
            |s| QueryAssignmentResponse {
                status: Some(s),
                assignments: vec![],
            }
        )
    }

    type ReceiveMessageStream = BoxStream<ReceiveMessageResponse>;

    async fn receive_message(
        &self,
        request: Request<ReceiveMessageRequest>,
    ) -> RpcResult<Self::ReceiveMessageStream> {
        receive::receive_message(&self.inner, request).await
    }

    async fn ack_message(
        &self,
        request: Request<AckMessageRequest>,
    ) -> RpcResult<AckMessageResponse> {
        reply!(
            "AckMessage",
            request,
            &self.inner,
            |r: &AckMessageRequest| Target::new(r.topic.as_ref(), r.group.as_ref()),
            Inner::ack,
            |s| AckMessageResponse {
                status: Some(s),
                entries: vec![],
            }
        )
    }

    async fn forward_message_to_dead_letter_queue(
        &self,
        request: Request<ForwardMessageToDeadLetterQueueRequest>,
    ) -> RpcResult<ForwardMessageToDeadLetterQueueResponse> {
        reply!(
            "ForwardMessageToDeadLetterQueue",
            request,
            &self.inner,
            |r: &ForwardMessageToDeadLetterQueueRequest| Target::new(
                r.topic.as_ref(),
                r.group.as_ref()
            ),
            Inner::forward_to_dlq,
            |s| ForwardMessageToDeadLetterQueueResponse { status: Some(s) }
        )
    }

    type PullMessageStream = BoxStream<PullMessageResponse>;

    async fn pull_message(
        &self,
        _request: Request<PullMessageRequest>,
    ) -> RpcResult<Self::PullMessageStream> {
        let frame = PullMessageResponse {
            content: Some(pull_message_response::Content::Status(not_implemented(
                "PullMessage",
            ))),
        };
        Ok(Response::new(Box::pin(tokio_stream::iter([Ok(frame)]))))
    }

    async fn update_offset(
        &self,
        _request: Request<UpdateOffsetRequest>,
    ) -> RpcResult<UpdateOffsetResponse> {
        Ok(Response::new(UpdateOffsetResponse {
            status: Some(not_implemented("UpdateOffset")),
        }))
    }

    async fn get_offset(
        &self,
        _request: Request<GetOffsetRequest>,
    ) -> RpcResult<GetOffsetResponse> {
        Ok(Response::new(GetOffsetResponse {
            status: Some(not_implemented("GetOffset")),
            offset: 0,
        }))
    }

    async fn query_offset(
        &self,
        _request: Request<QueryOffsetRequest>,
    ) -> RpcResult<QueryOffsetResponse> {
        Ok(Response::new(QueryOffsetResponse {
            status: Some(not_implemented("QueryOffset")),
            offset: 0,
        }))
    }

    async fn end_transaction(
        &self,
        request: Request<EndTransactionRequest>,
    ) -> RpcResult<EndTransactionResponse> {
        reply!(
            "EndTransaction",
            request,
            &self.inner,
            |r: &EndTransactionRequest| Target::new(r.topic.as_ref(), None),
            Inner::end_transaction,
            |s| EndTransactionResponse { status: Some(s) }
        )
    }

    type TelemetryStream = BoxStream<TelemetryCommand>;

    async fn telemetry(
        &self,
        request: Request<Streaming<TelemetryCommand>>,
    ) -> RpcResult<Self::TelemetryStream> {
        telemetry::telemetry(&self.inner, request).await
    }

    async fn notify_client_termination(
        &self,
        request: Request<NotifyClientTerminationRequest>,
    ) -> RpcResult<NotifyClientTerminationResponse> {
        telemetry::notify_client_termination(&self.inner, request).await
    }

    async fn change_invisible_duration(
        &self,
        request: Request<ChangeInvisibleDurationRequest>,
    ) -> RpcResult<ChangeInvisibleDurationResponse> {
        ack::change_invisible_duration(&self.inner, request).await
    }

    async fn recall_message(
        &self,
        request: Request<RecallMessageRequest>,
    ) -> RpcResult<RecallMessageResponse> {
        reply!(
            "RecallMessage",
            request,
            &self.inner,
            |r: &RecallMessageRequest| Target::new(r.topic.as_ref(), None),
            Inner::recall,
            |s| RecallMessageResponse {
                status: Some(s),
                message_id: String::new(),
            }
        )
    }

    async fn sync_lite_subscription(
        &self,
        _request: Request<SyncLiteSubscriptionRequest>,
    ) -> RpcResult<SyncLiteSubscriptionResponse> {
        Ok(Response::new(SyncLiteSubscriptionResponse {
            status: Some(not_implemented("Lite topics")),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_names_what_the_client_named() {
        let r = |ns: &str, name: &str| Resource {
            resource_namespace: ns.into(),
            name: name.into(),
        };
        let t = r("", "orders");
        let g = r("prod", "billing");
        assert_eq!(Target::new(Some(&t), None).to_string(), "topic orders");
        assert_eq!(
            Target::new(Some(&t), Some(&g)).to_string(),
            "group prod%billing topic orders"
        );
        assert_eq!(Target::default().to_string(), "-");
    }
}
