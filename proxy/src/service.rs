//! `apache.rocketmq.v2.MessagingService`: what the official clients call.
//!
//! Every handler validates its input, calls the store through [`StoreApi`],
//! and answers with gRPC OK and the outcome in the body `Status`
//! (protocol.md §4.1). Only Telemetry uses gRPC errors, as the reference does.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use pier_proto::rocketmq::messaging_service_server::MessagingService;
use pier_proto::rocketmq::*;
use pier_proto::store::{self as st, DeliveryRef};
use pier_store::{StoreApi, StoreError};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Streaming};

use crate::config::ProxyConfig;
use crate::context::ClientContext;
use crate::convert::{self, Delivery};
use crate::receipt::{Receipt, ReceiptKey};
use crate::renew::Renewer;
use crate::session::Sessions;
use crate::status::{ok, Rejection};
use crate::validate::{self, Limits};

/// Name every route gives the (single, logical) broker.
pub const BROKER_NAME: &str = "pier";
/// Messages a consumer asks for when its request says 0 (Node push without
/// `receive_batch_size`, protocol.md §4.9.2).
const DEFAULT_BATCH: u32 = 32;
const MAX_BATCH: u32 = 1024;
const MIN_INVISIBLE_MS: u64 = 1_000;
const MAX_INVISIBLE_MS: u64 = 12 * 3600 * 1000;
/// A long poll ends this long before the client's deadline (Rust 5.0.0 sets
/// its deadline equal to the poll time, protocol.md §4.9.3).
const POLL_RESERVE_MS: u64 = 500;
/// Without a `long_polling_timeout`, poll for the deadline minus half the
/// default request timeout (3 s), as the reference does.
const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 3_000;

type RpcResult<T> = Result<Response<T>, tonic::Status>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

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
    store_host: String,
    draining: watch::Receiver<bool>,
}

fn require_client(ctx: &ClientContext) -> Result<&str, Rejection> {
    ctx.client_id.as_deref().ok_or_else(|| {
        Rejection::new(
            Code::ClientIdRequired,
            "the x-mq-client-id header is required",
        )
    })
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

fn accept_types(t: i32) -> Vec<i32> {
    use pier_proto::admin::TopicType;
    let mt = match TopicType::try_from(t).unwrap_or(TopicType::Normal) {
        TopicType::Fifo => MessageType::Fifo,
        TopicType::Delay => MessageType::Delay,
        TopicType::Transaction => MessageType::Transaction,
        _ => MessageType::Normal,
    };
    vec![mt as i32]
}

/// The access point as the client gave it, with a scheme filled in when the
/// client left it unset (Python needs one to dial, protocol.md §4.4).
fn access_point(e: Option<Endpoints>) -> Result<Endpoints, Rejection> {
    let mut e = e.filter(|e| !e.addresses.is_empty()).ok_or_else(|| {
        Rejection::new(
            Code::IllegalAccessPoint,
            "endpoints (the access point the client was configured with) are required",
        )
    })?;
    if e.scheme == AddressScheme::Unspecified as i32 {
        let host = &e.addresses[0].host;
        e.scheme = if host.parse::<std::net::Ipv4Addr>().is_ok() {
            AddressScheme::IPv4 as i32
        } else if host.parse::<std::net::Ipv6Addr>().is_ok() {
            AddressScheme::IPv6 as i32
        } else {
            AddressScheme::DomainName as i32
        };
    }
    Ok(e)
}

impl Messaging {
    pub fn new(
        store: Arc<dyn StoreApi>,
        cfg: Arc<ProxyConfig>,
        sessions: Arc<Sessions>,
        renewer: Arc<Renewer>,
        store_host: String,
        draining: watch::Receiver<bool>,
    ) -> Messaging {
        Messaging {
            inner: Arc::new(Inner {
                receipts: ReceiptKey::new(cfg.receipt_secret.as_bytes()),
                limits: Limits {
                    max_body_size: cfg.max_body_size,
                    max_delay_ms: cfg.max_delay_ms,
                },
                store,
                cfg,
                sessions,
                renewer,
                store_host,
                draining,
            }),
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
            Ok(r) => r.topic.ok_or_else(|| {
                Rejection::new(Code::InternalServerError, "store returned no topic")
            }),
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
                r.topic.ok_or_else(|| {
                    Rejection::new(Code::InternalServerError, "store returned no topic")
                })
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
            Ok(r) => r.group.ok_or_else(|| {
                Rejection::new(Code::InternalServerError, "store returned no group")
            }),
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
                r.group.ok_or_else(|| {
                    Rejection::new(Code::InternalServerError, "store returned no group")
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn query_route(
        &self,
        ctx: &ClientContext,
        req: QueryRouteRequest,
    ) -> Result<QueryRouteResponse, Rejection> {
        require_client(ctx)?;
        let name = validate::topic(req.topic.as_ref(), &ctx.namespace)?;
        let endpoints = access_point(req.endpoints)?;
        let topic = self.topic(&name).await?;
        let types = accept_types(topic.r#type);
        let message_queues = (0..topic.queues)
            .map(|id| MessageQueue {
                topic: req.topic.clone(),
                id: id as i32,
                permission: Permission::ReadWrite as i32,
                broker: Some(Broker {
                    name: BROKER_NAME.into(),
                    id: 0,
                    endpoints: Some(endpoints.clone()),
                }),
                accept_message_types: types.clone(),
            })
            .collect();
        Ok(QueryRouteResponse {
            status: Some(ok()),
            message_queues,
        })
    }

    async fn send(
        &self,
        ctx: &ClientContext,
        req: SendMessageRequest,
    ) -> Result<SendMessageResponse, Rejection> {
        require_client(ctx)?;
        let Some(first) = req.messages.first() else {
            return Err(Rejection::new(
                Code::MessageCorrupted,
                "the request carries no message",
            ));
        };
        let topic_res = first.topic.clone();
        if req.messages.iter().any(|m| m.topic != topic_res) {
            return Err(Rejection::new(
                Code::MessageCorrupted,
                "all messages of one SendMessage request must be for the same topic",
            ));
        }
        let topic = validate::topic(topic_res.as_ref(), &ctx.namespace)?;
        let now = pier_store::now_ms();
        let mut outcomes: Vec<Result<(), Rejection>> = Vec::with_capacity(req.messages.len());
        let mut ids = Vec::with_capacity(req.messages.len());
        let mut accepted = Vec::new();
        for m in req.messages {
            ids.push(
                m.system_properties
                    .as_ref()
                    .map(|s| s.message_id.clone())
                    .unwrap_or_default(),
            );
            let checked =
                validate::message(&m, &self.limits, now).and_then(|()| convert::kind_of(&m));
            match checked {
                Ok(kind) => {
                    outcomes.push(Ok(()));
                    accepted.push(convert::to_stored(m, kind));
                }
                Err(r) => outcomes.push(Err(r)),
            }
        }
        let mut offsets = Vec::new();
        if !accepted.is_empty() {
            let append = st::AppendRequest {
                topic: topic.clone(),
                messages: accepted,
            };
            // The retry after auto-creating the topic needs the request
            // twice; only then is it copied (bodies and all).
            let res = if self.cfg.auto_create {
                let mut res = self.store.append(append.clone()).await;
                if matches!(res, Err(StoreError::TopicNotFound { .. })) {
                    self.topic(&topic).await?;
                    res = self.store.append(append).await;
                }
                res
            } else {
                self.store.append(append).await
            };
            match res {
                Ok(r) => offsets = r.results,
                Err(e) => {
                    let rej = Rejection::from(e);
                    for o in outcomes.iter_mut().filter(|o| o.is_ok()) {
                        *o = Err(rej.clone());
                    }
                }
            }
        }
        let mut offsets = offsets.into_iter();
        let receipts = &self.receipts;
        let entries: Vec<SendResultEntry> = outcomes
            .iter()
            .zip(ids)
            .map(|(o, message_id)| {
                let stored = if o.is_ok() { offsets.next() } else { None };
                SendResultEntry {
                    status: Some(entry_status(o, ctx)),
                    message_id,
                    transaction_id: stored
                        .as_ref()
                        .map(|r| r.transaction_id.clone())
                        .unwrap_or_default(),
                    offset: stored.as_ref().map_or(0, |r| r.offset as i64),
                    recall_handle: stored
                        .filter(|r| !r.timer.is_empty())
                        .map(|r| receipts.issue_recall(&topic, &r.timer))
                        .unwrap_or_default(),
                }
            })
            .collect();
        let statuses: Vec<Status> = entries.iter().filter_map(|e| e.status.clone()).collect();
        Ok(SendMessageResponse {
            status: Some(batch_status(&statuses)),
            entries,
        })
    }

    async fn query_assignment(
        &self,
        ctx: &ClientContext,
        req: QueryAssignmentRequest,
    ) -> Result<QueryAssignmentResponse, Rejection> {
        require_client(ctx)?;
        let topic_name = validate::topic(req.topic.as_ref(), &ctx.namespace)?;
        let group_name = validate::group(req.group.as_ref(), &ctx.namespace)?;
        let endpoints = access_point(req.endpoints)?;
        let topic = self.topic(&topic_name).await?;
        let group = self.group(&group_name).await?;
        let queue = |id: i32| Assignment {
            message_queue: Some(MessageQueue {
                topic: req.topic.clone(),
                id,
                permission: Permission::ReadWrite as i32,
                broker: Some(Broker {
                    name: BROKER_NAME.into(),
                    id: 0,
                    endpoints: Some(endpoints.clone()),
                }),
                accept_message_types: accept_types(topic.r#type),
            }),
        };
        // Pop semantics: the store hands out messages of every queue, so a
        // non-FIFO consumer needs one assignment meaning "any queue" (id -1,
        // as the reference proxy answers); FIFO consumers get every queue.
        let assignments = if group.fifo {
            (0..topic.queues as i32).map(queue).collect()
        } else {
            vec![queue(-1)]
        };
        Ok(QueryAssignmentResponse {
            status: Some(ok()),
            assignments,
        })
    }

    /// How long a receive may wait, per protocol.md §4.9.3.
    fn poll_ms(&self, ctx: &ClientContext, req: &ReceiveMessageRequest) -> u64 {
        let deadline_ms = ctx.deadline.map(|d| d.as_millis() as u64);
        let wanted = match &req.long_polling_timeout {
            Some(d) => convert::duration_ms(d).unwrap_or(0),
            None => deadline_ms.map_or(self.cfg.max_long_poll_ms, |d| {
                d.saturating_sub(DEFAULT_REQUEST_TIMEOUT_MS / 2)
            }),
        };
        let mut poll = wanted.min(self.cfg.max_long_poll_ms);
        if let Some(d) = deadline_ms {
            poll = poll.min(d.saturating_sub(POLL_RESERVE_MS));
        }
        poll
    }

    async fn receive(
        &self,
        ctx: &ClientContext,
        req: ReceiveMessageRequest,
    ) -> Result<Vec<Message>, Rejection> {
        let client_id = require_client(ctx)?.to_owned();
        let group = validate::group(req.group.as_ref(), &ctx.namespace)?;
        let mq = req
            .message_queue
            .as_ref()
            .ok_or_else(|| Rejection::new(Code::BadRequest, "message_queue is required"))?;
        let topic_res = mq.topic.clone().unwrap_or_default();
        let topic = validate::topic(Some(&topic_res), &ctx.namespace)?;
        let filter = req.filter_expression.as_ref().map(|f| st::Filter {
            kind: match FilterType::try_from(f.r#type).unwrap_or(FilterType::Unspecified) {
                FilterType::Sql => st::filter::Kind::Sql92 as i32,
                _ => st::filter::Kind::Tag as i32,
            },
            expression: f.expression.clone(),
        });
        let invisible_ms = if req.auto_renew {
            self.renewer.invisible_ms()
        } else {
            let d = req.invisible_duration.as_ref().ok_or_else(|| {
                Rejection::new(
                    Code::IllegalInvisibleTime,
                    "invisible_duration is required unless auto_renew is set",
                )
            })?;
            let ms = convert::duration_ms(d).ok_or_else(|| {
                Rejection::new(Code::IllegalInvisibleTime, "invisible_duration is negative")
            })?;
            if !(MIN_INVISIBLE_MS..=MAX_INVISIBLE_MS).contains(&ms) {
                return Err(Rejection::new(
                    Code::IllegalInvisibleTime,
                    format!("invisible_duration must be between 1 s and 12 h, not {ms} ms"),
                ));
            }
            ms
        };
        let batch = match req.batch_size {
            n if n <= 0 => DEFAULT_BATCH,
            n => (n as u32).min(MAX_BATCH),
        };
        let pop = st::PopRequest {
            group: group.clone(),
            topic: topic.clone(),
            filter,
            max_messages: batch,
            invisible_ms,
            poll_ms: self.poll_ms(ctx, &req),
        };
        if self.cfg.auto_create {
            self.topic(&topic).await?;
            self.group(&group).await?;
        }
        let mut draining = self.draining.clone();
        if *draining.borrow() {
            return Ok(Vec::new());
        }
        let popped = tokio::select! {
            r = self.store.pop(pop) => r?,
            _ = draining.wait_for(|d| *d) => return Ok(Vec::new()),
        };
        let mut out = Vec::with_capacity(popped.messages.len());
        for p in popped.messages {
            let Some(m) = p.message else { continue };
            let receipt = Receipt {
                group: group.clone(),
                topic: topic.clone(),
                queue: m.queue,
                offset: m.offset,
                attempt: p.attempt,
                issued_ms: pier_store::now_ms(),
            };
            let handle = self.receipts.issue(&receipt);
            if req.auto_renew {
                self.renewer.track(
                    handle.clone(),
                    &client_id,
                    DeliveryRef {
                        group: group.clone(),
                        topic: topic.clone(),
                        queue: m.queue,
                        offset: m.offset,
                        attempt: p.attempt,
                    },
                    p.visible_at_ms,
                );
            }
            out.push(convert::to_delivered(
                m,
                Delivery {
                    topic: &topic_res,
                    receipt_handle: handle,
                    attempt: p.attempt,
                    invisible_ms,
                    store_host: &self.store_host,
                },
            ));
        }
        Ok(out)
    }

    /// Opens a receipt handle and checks it belongs to this group and topic.
    fn delivery(
        &self,
        handle: &str,
        group: &str,
        topic: &str,
    ) -> Result<(Receipt, DeliveryRef), Rejection> {
        let r = self.receipts.open(handle)?;
        if r.group != group || r.topic != topic {
            return Err(Rejection::new(
                Code::InvalidReceiptHandle,
                format!(
                    "receipt handle was issued to group {} for topic {}, not group {group} for topic {topic}",
                    r.group, r.topic
                ),
            ));
        }
        let d = DeliveryRef {
            group: r.group.clone(),
            topic: r.topic.clone(),
            queue: r.queue,
            offset: r.offset,
            attempt: r.attempt,
        };
        Ok((r, d))
    }

    async fn ack(
        &self,
        ctx: &ClientContext,
        req: AckMessageRequest,
    ) -> Result<AckMessageResponse, Rejection> {
        require_client(ctx)?;
        let group = validate::group(req.group.as_ref(), &ctx.namespace)?;
        let topic = validate::topic(req.topic.as_ref(), &ctx.namespace)?;
        if req.entries.is_empty() {
            return Err(Rejection::new(
                Code::BadRequest,
                "the request carries no entry to ack",
            ));
        }
        // Each entry is answered on its own, but the valid ones go to the
        // store in one call: one lock and one state write for the batch, and
        // one round trip in a cluster.
        let mut results: Vec<Result<(), Rejection>> = Vec::with_capacity(req.entries.len());
        let mut deliveries = Vec::new();
        let mut sent = Vec::new();
        for (i, e) in req.entries.iter().enumerate() {
            match self.delivery(&e.receipt_handle, &group, &topic) {
                Ok((_, d)) => {
                    deliveries.push(d);
                    sent.push(i);
                    results.push(Ok(()));
                }
                Err(r) => results.push(Err(r)),
            }
        }
        if !deliveries.is_empty() {
            let outcomes = match self.store.ack_many(st::AckManyRequest { deliveries }).await {
                Ok(r) if r.outcomes.len() == sent.len() => Ok(r.outcomes),
                Ok(r) => Err(Rejection::new(
                    Code::InternalServerError,
                    format!(
                        "the store answered {} outcomes for {} acks",
                        r.outcomes.len(),
                        sent.len()
                    ),
                )),
                Err(e) => Err(Rejection::from(e)),
            };
            match outcomes {
                Ok(outcomes) => {
                    for (i, o) in sent.into_iter().zip(outcomes) {
                        results[i] = pier_store::ack_result(o).map_err(Rejection::from);
                    }
                }
                Err(rej) => {
                    for i in sent {
                        results[i] = Err(rej.clone());
                    }
                }
            }
        }
        let entries: Vec<AckMessageResultEntry> = req
            .entries
            .into_iter()
            .zip(results)
            .map(|(e, res)| {
                self.renewer.forget(&e.receipt_handle);
                AckMessageResultEntry {
                    status: Some(entry_status(&res, ctx)),
                    message_id: e.message_id,
                    receipt_handle: e.receipt_handle,
                }
            })
            .collect();
        let statuses: Vec<Status> = entries.iter().filter_map(|e| e.status.clone()).collect();
        Ok(AckMessageResponse {
            status: Some(batch_status(&statuses)),
            entries,
        })
    }

    async fn change_invisible(
        &self,
        ctx: &ClientContext,
        req: &ChangeInvisibleDurationRequest,
    ) -> Result<String, Rejection> {
        require_client(ctx)?;
        let group = validate::group(req.group.as_ref(), &ctx.namespace)?;
        let topic = validate::topic(req.topic.as_ref(), &ctx.namespace)?;
        let (receipt, d) = self.delivery(&req.receipt_handle, &group, &topic)?;
        let ms = req
            .invisible_duration
            .as_ref()
            .and_then(convert::duration_ms)
            .ok_or_else(|| {
                Rejection::new(
                    Code::IllegalInvisibleTime,
                    "invisible_duration is missing or negative",
                )
            })?;
        if ms > MAX_INVISIBLE_MS {
            return Err(Rejection::new(
                Code::IllegalInvisibleTime,
                format!("invisible_duration must be at most 12 h, not {ms} ms"),
            ));
        }
        self.renewer.forget(&req.receipt_handle);
        self.store
            .change_invisible(st::ChangeInvisibleRequest {
                delivery: Some(d),
                invisible_ms: ms,
                expected_visible_at_ms: 0,
            })
            .await?;
        Ok(self.receipts.issue(&Receipt {
            issued_ms: pier_store::now_ms(),
            ..receipt
        }))
    }

    async fn forward_to_dlq(
        &self,
        ctx: &ClientContext,
        req: ForwardMessageToDeadLetterQueueRequest,
    ) -> Result<(), Rejection> {
        require_client(ctx)?;
        let group = validate::group(req.group.as_ref(), &ctx.namespace)?;
        let topic = validate::topic(req.topic.as_ref(), &ctx.namespace)?;
        let (_, d) = self.delivery(&req.receipt_handle, &group, &topic)?;
        self.renewer.forget(&req.receipt_handle);
        self.store
            .forward_to_dlq(st::ForwardToDlqRequest { delivery: Some(d) })
            .await?;
        Ok(())
    }

    async fn end_transaction(
        &self,
        ctx: &ClientContext,
        req: EndTransactionRequest,
    ) -> Result<(), Rejection> {
        require_client(ctx)?;
        let topic = validate::topic(req.topic.as_ref(), &ctx.namespace)?;
        if req.transaction_id.trim().is_empty() {
            return Err(Rejection::new(
                Code::InvalidTransactionId,
                "transaction_id is empty",
            ));
        }
        // UNSPECIFIED is what Python and Rust checkers send for UNKNOWN: the
        // transaction stays pending and will be checked again.
        let resolution = match TransactionResolution::try_from(req.resolution) {
            Ok(TransactionResolution::Commit) => st::Resolution::Commit,
            Ok(TransactionResolution::Rollback) => st::Resolution::Rollback,
            _ => st::Resolution::Unknown,
        };
        match self
            .store
            .end_transaction(st::EndTransactionRequest {
                topic,
                transaction_id: req.transaction_id,
                resolution: resolution as i32,
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn relay_check(&self, check: st::TransactionCheck) {
        let Some((session, topic)) = self.sessions.producer_of(&check.topic) else {
            tracing::debug!(topic = %check.topic, "no producer of this topic on this proxy for a transaction check");
            return;
        };
        let Some(message) = check.message else { return };
        let message = convert::to_delivered(
            message,
            Delivery {
                topic: &topic,
                receipt_handle: String::new(),
                attempt: 1,
                invisible_ms: 0,
                store_host: &self.store_host,
            },
        );
        let cmd = TelemetryCommand {
            status: Some(ok()),
            command: Some(
                telemetry_command::Command::RecoverOrphanedTransactionCommand(
                    RecoverOrphanedTransactionCommand {
                        message: Some(message),
                        transaction_id: check.transaction_id,
                    },
                ),
            ),
        };
        if session.sender.send(Ok(cmd)).await.is_err() {
            tracing::debug!("producer stream closed before a transaction check");
        }
    }

    async fn recall(
        &self,
        ctx: &ClientContext,
        req: RecallMessageRequest,
    ) -> Result<String, Rejection> {
        require_client(ctx)?;
        let topic = validate::topic(req.topic.as_ref(), &ctx.namespace)?;
        if req.recall_handle.trim().is_empty() {
            return Err(Rejection::new(Code::BadRequest, "recall_handle is empty"));
        }
        let (handle_topic, timer) = self
            .receipts
            .open_recall(&req.recall_handle)
            .map_err(|e| Rejection::new(Code::BadRequest, format!("recall handle: {e}")))?;
        if handle_topic != topic {
            return Err(Rejection::new(
                Code::BadRequest,
                format!("recall handle belongs to topic {handle_topic}, not {topic}"),
            ));
        }
        let r = self
            .store
            .recall(st::RecallRequest { topic, timer })
            .await?;
        Ok(r.message_id)
    }

    /// The server's half of the settings exchange (protocol.md §4.5, §8):
    /// the client's settings with the server-decided fields filled in.
    async fn settings_reply(&self, ctx: &ClientContext, mut s: Settings) -> Settings {
        use retry_policy::Strategy;
        use settings::PubSub;
        let client_type =
            ClientType::try_from(s.client_type.unwrap_or(0)).unwrap_or(ClientType::Unspecified);
        match client_type {
            ClientType::Producer => {
                s.backoff_policy = Some(RetryPolicy {
                    max_attempts: 3,
                    strategy: Some(Strategy::ExponentialBackoff(ExponentialBackoff {
                        initial: Some(convert::duration(10)),
                        max: Some(convert::duration(1_000)),
                        multiplier: 2.0,
                    })),
                });
                let mut p = match s.pub_sub.take() {
                    Some(PubSub::Publishing(p)) => p,
                    _ => Publishing::default(),
                };
                p.max_body_size = self.cfg.max_body_size.min(i32::MAX as usize) as i32;
                p.validate_message_type = true;
                s.pub_sub = Some(PubSub::Publishing(p));
            }
            ClientType::PushConsumer
            | ClientType::SimpleConsumer
            | ClientType::PullConsumer
            | ClientType::LitePushConsumer
            | ClientType::LiteSimpleConsumer => {
                let mut sub = match s.pub_sub.take() {
                    Some(PubSub::Subscription(sub)) => sub,
                    _ => Subscription::default(),
                };
                let group = match validate::group(sub.group.as_ref(), &ctx.namespace) {
                    Ok(name) => self.group(&name).await.ok(),
                    Err(_) => None,
                }
                .unwrap_or_else(|| pier_proto::admin::ConsumerGroup {
                    max_attempts: pier_store::DEFAULT_MAX_ATTEMPTS,
                    ..Default::default()
                });
                sub.fifo = Some(group.fifo);
                sub.receive_batch_size = Some(DEFAULT_BATCH as i32);
                sub.long_polling_timeout = Some(convert::duration(self.cfg.max_long_poll_ms));
                if matches!(
                    client_type,
                    ClientType::LitePushConsumer | ClientType::LiteSimpleConsumer
                ) {
                    sub.lite_subscription_quota = Some(0);
                    sub.max_lite_topic_size = Some(64);
                }
                s.pub_sub = Some(PubSub::Subscription(sub));
                s.backoff_policy = Some(consumer_backoff(&group));
            }
            _ => {}
        }
        s.metric = Some(Metric {
            on: false,
            endpoints: None,
        });
        s
    }
}

/// The retry policy consumers of a group follow after a failed consumption.
fn consumer_backoff(group: &pier_proto::admin::ConsumerGroup) -> RetryPolicy {
    use pier_proto::admin::retry_policy::Strategy as GroupStrategy;
    use retry_policy::Strategy;
    let strategy = match group.retry_policy.as_ref().and_then(|p| p.strategy.clone()) {
        Some(GroupStrategy::Customized(c)) => Strategy::CustomizedBackoff(CustomizedBackoff {
            next: c.next_ms.iter().map(|ms| convert::duration(*ms)).collect(),
        }),
        Some(GroupStrategy::Exponential(e)) => Strategy::ExponentialBackoff(ExponentialBackoff {
            initial: Some(convert::duration(e.initial_ms)),
            max: Some(convert::duration(e.max_ms)),
            multiplier: e.multiplier,
        }),
        // Exponential by default: the one strategy every official client
        // reads (Node ignores customized backoff, protocol.md §8).
        None => Strategy::ExponentialBackoff(ExponentialBackoff {
            initial: Some(convert::duration(1_000)),
            max: Some(convert::duration(2 * 3600 * 1000)),
            multiplier: 2.0,
        }),
    };
    RetryPolicy {
        max_attempts: group.max_attempts as i32,
        strategy: Some(strategy),
    }
}

// tonic's stream item type fixes the error type to `tonic::Status`.
#[allow(clippy::result_large_err)]
fn frame(c: receive_message_response::Content) -> Result<ReceiveMessageResponse, tonic::Status> {
    Ok(ReceiveMessageResponse { content: Some(c) })
}

fn not_implemented(what: &str) -> Status {
    Status {
        code: Code::NotImplemented as i32,
        message: format!("{what} is not implemented by Pier; use ReceiveMessage (pop) consumption"),
    }
}

macro_rules! reply {
    ($request:ident, $inner:expr, $body:expr, $err:expr) => {{
        let ctx = ClientContext::from_metadata($request.metadata());
        let req = $request.into_inner();
        let resp = match $body(&$inner, &ctx, req).await {
            Ok(r) => r,
            Err(rej) => $err(rej.to_status(&ctx)),
        };
        Ok(Response::new(resp))
    }};
}

#[tonic::async_trait]
impl MessagingService for Messaging {
    async fn query_route(
        &self,
        request: Request<QueryRouteRequest>,
    ) -> RpcResult<QueryRouteResponse> {
        reply!(request, self.inner, Inner::query_route, |s| {
            QueryRouteResponse {
                status: Some(s),
                message_queues: vec![],
            }
        })
    }

    async fn heartbeat(&self, request: Request<HeartbeatRequest>) -> RpcResult<HeartbeatResponse> {
        // Always OK, even for an empty probe (Go) or an unknown client.
        let ctx = ClientContext::from_metadata(request.metadata());
        if let Some(id) = &ctx.client_id {
            self.inner.sessions.touch(id);
        }
        Ok(Response::new(HeartbeatResponse { status: Some(ok()) }))
    }

    async fn send_message(
        &self,
        request: Request<SendMessageRequest>,
    ) -> RpcResult<SendMessageResponse> {
        // Clients index the entries (Rust 5.0.0 takes entries[0], Python
        // asserts exactly one): a request-level failure still answers one
        // entry per message.
        let ids: Vec<String> = request
            .get_ref()
            .messages
            .iter()
            .map(|m| {
                m.system_properties
                    .as_ref()
                    .map(|s| s.message_id.clone())
                    .unwrap_or_default()
            })
            .collect();
        reply!(request, self.inner, Inner::send, |s: Status| {
            SendMessageResponse {
                entries: ids
                    .into_iter()
                    .map(|message_id| SendResultEntry {
                        status: Some(s.clone()),
                        message_id,
                        ..Default::default()
                    })
                    .collect(),
                status: Some(s),
            }
        })
    }

    async fn query_assignment(
        &self,
        request: Request<QueryAssignmentRequest>,
    ) -> RpcResult<QueryAssignmentResponse> {
        reply!(request, self.inner, Inner::query_assignment, |s| {
            QueryAssignmentResponse {
                status: Some(s),
                assignments: vec![],
            }
        })
    }

    type ReceiveMessageStream = BoxStream<ReceiveMessageResponse>;

    async fn receive_message(
        &self,
        request: Request<ReceiveMessageRequest>,
    ) -> RpcResult<Self::ReceiveMessageStream> {
        use receive_message_response::Content;
        let ctx = ClientContext::from_metadata(request.metadata());
        let req = request.into_inner();
        let frames: Vec<Content> = match self.inner.receive(&ctx, req).await {
            Ok(msgs) if msgs.is_empty() => vec![Content::Status(Status {
                code: Code::MessageNotFound as i32,
                message: "no new message".into(),
            })],
            Ok(msgs) => std::iter::once(Content::Status(ok()))
                .chain(msgs.into_iter().map(Content::Message))
                .collect(),
            Err(rej) => vec![Content::Status(rej.to_status(&ctx))],
        };
        let frames = frames
            .into_iter()
            .chain(std::iter::once(Content::DeliveryTimestamp(
                convert::timestamp(pier_store::now_ms()),
            )))
            .map(frame);
        Ok(Response::new(Box::pin(tokio_stream::iter(frames))))
    }

    async fn ack_message(
        &self,
        request: Request<AckMessageRequest>,
    ) -> RpcResult<AckMessageResponse> {
        reply!(request, self.inner, Inner::ack, |s| AckMessageResponse {
            status: Some(s),
            entries: vec![],
        })
    }

    async fn forward_message_to_dead_letter_queue(
        &self,
        request: Request<ForwardMessageToDeadLetterQueueRequest>,
    ) -> RpcResult<ForwardMessageToDeadLetterQueueResponse> {
        let ctx = ClientContext::from_metadata(request.metadata());
        let status = match self.inner.forward_to_dlq(&ctx, request.into_inner()).await {
            Ok(()) => ok(),
            Err(rej) => rej.to_status(&ctx),
        };
        Ok(Response::new(ForwardMessageToDeadLetterQueueResponse {
            status: Some(status),
        }))
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
        let ctx = ClientContext::from_metadata(request.metadata());
        let status = match self.inner.end_transaction(&ctx, request.into_inner()).await {
            Ok(()) => ok(),
            Err(rej) => rej.to_status(&ctx),
        };
        Ok(Response::new(EndTransactionResponse {
            status: Some(status),
        }))
    }

    type TelemetryStream = BoxStream<TelemetryCommand>;

    async fn telemetry(
        &self,
        request: Request<Streaming<TelemetryCommand>>,
    ) -> RpcResult<Self::TelemetryStream> {
        let ctx = ClientContext::from_metadata(request.metadata());
        let Some(client_id) = ctx.client_id.clone() else {
            return Err(tonic::Status::invalid_argument(
                "the x-mq-client-id header is required",
            ));
        };
        let (tx, rx) = mpsc::channel(16);
        let stream_id = self
            .inner
            .sessions
            .open(&client_id, &ctx.namespace, tx.clone());
        let mut inbound = request.into_inner();
        let this = self.clone();
        // Answer at once (the response headers go out now: Rust 5.0.0 blocks
        // its start on them) and read the client's commands in the background.
        tokio::spawn(async move {
            loop {
                let cmd = tokio::select! {
                    m = inbound.message() => m,
                    _ = tx.closed() => break,
                };
                match cmd {
                    Ok(Some(cmd)) => {
                        this.on_telemetry(&ctx, &client_id, stream_id, cmd, &tx)
                            .await
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(client = %client_id, error = %e, "telemetry stream broke");
                        break;
                    }
                }
            }
            if this.inner.sessions.close(&client_id, Some(stream_id)) {
                // The client went away: stop renewing its deliveries, so they
                // become visible to the rest of the group.
                this.inner.renewer.forget_client(&client_id);
                tracing::debug!(client = %client_id, "telemetry session closed");
            }
        });
        // The stream ends when the proxy drains, so a graceful stop does not
        // wait for clients that keep their Telemetry open forever.
        let mut draining = self.inner.draining.clone();
        let stream = ReceiverStream::new(rx).take_until(async move {
            let _ = draining.wait_for(|d| *d).await;
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn notify_client_termination(
        &self,
        request: Request<NotifyClientTerminationRequest>,
    ) -> RpcResult<NotifyClientTerminationResponse> {
        let ctx = ClientContext::from_metadata(request.metadata());
        if let Some(id) = &ctx.client_id {
            self.inner.sessions.close(id, None);
            self.inner.renewer.forget_client(id);
        }
        Ok(Response::new(NotifyClientTerminationResponse {
            status: Some(ok()),
        }))
    }

    async fn change_invisible_duration(
        &self,
        request: Request<ChangeInvisibleDurationRequest>,
    ) -> RpcResult<ChangeInvisibleDurationResponse> {
        let ctx = ClientContext::from_metadata(request.metadata());
        let req = request.into_inner();
        // Java and Python keep whatever handle comes back, even with an
        // error, so an error returns the handle they sent.
        let resp = match self.inner.change_invisible(&ctx, &req).await {
            Ok(handle) => ChangeInvisibleDurationResponse {
                status: Some(ok()),
                receipt_handle: handle,
            },
            Err(rej) => ChangeInvisibleDurationResponse {
                status: Some(rej.to_status(&ctx)),
                receipt_handle: req.receipt_handle,
            },
        };
        Ok(Response::new(resp))
    }

    async fn recall_message(
        &self,
        request: Request<RecallMessageRequest>,
    ) -> RpcResult<RecallMessageResponse> {
        let ctx = ClientContext::from_metadata(request.metadata());
        let req = request.into_inner();
        let resp = match self.inner.recall(&ctx, req).await {
            Ok(message_id) => RecallMessageResponse {
                status: Some(ok()),
                message_id,
            },
            Err(rej) => RecallMessageResponse {
                status: Some(rej.to_status(&ctx)),
                message_id: String::new(),
            },
        };
        Ok(Response::new(resp))
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

impl Messaging {
    /// Relays the store's transaction checks to a live producer of the topic
    /// connected to this proxy, until the proxy drains. Every proxy gets
    /// every check, so a producer is reached through whichever proxy holds
    /// its Telemetry stream.
    pub async fn relay_transaction_checks(self) {
        let mut draining = self.inner.draining.clone();
        loop {
            if *draining.borrow() {
                return;
            }
            match self.inner.store.watch_transaction_checks().await {
                Ok(mut checks) => loop {
                    let next = tokio::select! {
                        c = checks.next() => c,
                        _ = draining.wait_for(|d| *d) => return,
                    };
                    match next {
                        Some(Ok(check)) => self.inner.relay_check(check).await,
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "transaction check stream broke");
                            break;
                        }
                        None => break,
                    }
                },
                Err(e) => tracing::debug!(error = %e, "cannot watch transaction checks yet"),
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = draining.wait_for(|d| *d) => return,
            }
        }
    }

    async fn on_telemetry(
        &self,
        ctx: &ClientContext,
        client_id: &str,
        stream_id: u64,
        cmd: TelemetryCommand,
        tx: &mpsc::Sender<Result<TelemetryCommand, tonic::Status>>,
    ) {
        use telemetry_command::Command;
        match cmd.command {
            Some(Command::Settings(s)) => {
                let reply = self.inner.settings_reply(ctx, s).await;
                self.inner
                    .sessions
                    .update_settings(client_id, stream_id, &reply);
                let out = TelemetryCommand {
                    status: Some(ok()),
                    command: Some(Command::Settings(reply)),
                };
                if tx.send(Ok(out)).await.is_err() {
                    tracing::debug!(client = %client_id, "telemetry stream closed before settings reply");
                }
            }
            Some(other) => {
                tracing::debug!(client = %client_id, command = ?std::mem::discriminant(&other), "telemetry command ignored");
            }
            None => {}
        }
    }
}
