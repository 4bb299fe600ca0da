//! ReceiveMessage: a long poll on the store (`pop`), each delivery wrapped
//! in a receipt handle and streamed, then the status frame.
//!
//! A consumer that goes away mid-receive does not cost its messages an
//! attempt or an invisible period: gone during the long poll, the store's
//! pop is dropped with the call and undoes itself; gone while the reply is
//! being written, the deliveries whose frames were never taken are released
//! ([`Handover`]).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use pier_proto::rocketmq::*;
use pier_proto::store::{self as st, DeliveryRef};
use pier_store::auth::policy::Action;
use pier_store::StoreApi;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response};

use super::{Inner, RpcResult, Target, DEFAULT_BATCH, MAX_INVISIBLE_MS};
use crate::auth::Need;
use crate::context::ClientContext;
use crate::convert::{self, Delivery};
use crate::receipt::Receipt;
use crate::status::{ok, Rejection};
use crate::validate;

const MAX_BATCH: u32 = 1024;
const MIN_INVISIBLE_MS: u64 = 1_000;
/// A long poll ends this long before the client's deadline (Rust 5.0.0 sets
/// its deadline equal to the poll time, protocol.md §4.9.3).
const POLL_RESERVE_MS: u64 = 500;
/// Without a `long_polling_timeout`, poll for the deadline minus half the
/// default request timeout (3 s), as the reference does.
const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 3_000;

// tonic's stream item type fixes the error type to `tonic::Status`.
#[allow(clippy::result_large_err)]
fn frame(c: receive_message_response::Content) -> Result<ReceiveMessageResponse, tonic::Status> {
    Ok(ReceiveMessageResponse { content: Some(c) })
}

pub(super) async fn receive_message(
    inner: &Inner,
    request: Request<ReceiveMessageRequest>,
) -> RpcResult<super::BoxStream<ReceiveMessageResponse>> {
    use receive_message_response::Content;
    let ctx = ClientContext::of(&request);
    let req = request.into_inner();
    let target = Target::new(
        req.message_queue.as_ref().and_then(|q| q.topic.as_ref()),
        req.group.as_ref(),
    );
    let mut deliveries = VecDeque::new();
    let received = crate::trace::receive(inner.receive(&ctx, req)).await;
    let mut frames: Vec<Content> = match received {
        Ok(msgs) if msgs.is_empty() => vec![Content::Status(Status {
            code: Code::MessageNotFound as i32,
            message: "no new message".into(),
        })],
        Ok(msgs) => std::iter::once(Content::Status(ok()))
            .chain(msgs.into_iter().map(|(m, d)| {
                deliveries.push_back(d);
                Content::Message(m)
            }))
            .collect(),
        Err(rej) => {
            inner.faults.report("ReceiveMessage", &target, &rej);
            vec![Content::Status(rej.to_status(&ctx))]
        }
    };
    frames.push(Content::DeliveryTimestamp(convert::timestamp(
        pier_store::now_ms(),
    )));
    Ok(Response::new(Box::pin(Handover {
        frames: frames.into_iter(),
        deliveries,
        store: inner.store.clone(),
        tasks: inner.tasks.clone(),
    })))
}

/// The frames of one receive, handed to the transport one at a time. If it
/// is dropped before every message frame was taken (the consumer's stream
/// closed while the reply was being written), the deliveries not taken are
/// released in the store: visible again at once, their attempt not counted.
struct Handover {
    frames: std::vec::IntoIter<receive_message_response::Content>,
    /// The delivery of each message frame not taken yet, in frame order.
    deliveries: VecDeque<DeliveryRef>,
    store: Arc<dyn StoreApi>,
    tasks: TaskTracker,
}

impl Stream for Handover {
    type Item = Result<ReceiveMessageResponse, tonic::Status>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.frames.next();
        if let Some(receive_message_response::Content::Message(_)) = &next {
            self.deliveries.pop_front();
        }
        Poll::Ready(next.map(frame))
    }
}

impl Drop for Handover {
    fn drop(&mut self) {
        if self.deliveries.is_empty() {
            return;
        }
        let deliveries: Vec<DeliveryRef> = self.deliveries.drain(..).collect();
        let store = self.store.clone();
        self.tasks.spawn(async move {
            let n = deliveries.len();
            match store.release(st::ReleaseRequest { deliveries }).await {
                Ok(r) => {
                    tracing::debug!(
                        released = r.released,
                        of = n,
                        "receive not taken by its consumer: released"
                    )
                }
                // They become visible after their invisible time instead.
                Err(e) => {
                    tracing::debug!(error = %e, "releasing a receive its consumer did not take")
                }
            }
        });
    }
}

impl Inner {
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
    ) -> Result<Vec<(Message, DeliveryRef)>, Rejection> {
        let client_id = self.admit(ctx)?.to_owned();
        let group = validate::group(req.group.as_ref(), &ctx.namespace)?;
        let mq = req
            .message_queue
            .as_ref()
            .ok_or_else(|| Rejection::new(Code::BadRequest, "message_queue is required"))?;
        let topic_res = mq.topic.clone().unwrap_or_default();
        let topic = validate::topic(Some(&topic_res), &ctx.namespace)?;
        self.authorize(
            ctx,
            &[Need::topic(&topic, Action::Sub), Need::group(&group)],
        )?;
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
                handle_seq: 0,
                issued_ms: pier_store::now_ms(),
            };
            let handle = self.receipts.issue(&receipt);
            let delivery = DeliveryRef {
                group: group.clone(),
                topic: topic.clone(),
                queue: m.queue,
                offset: m.offset,
                attempt: p.attempt,
                handle_seq: 0,
            };
            if req.auto_renew {
                self.renewer.track(
                    handle.clone(),
                    &client_id,
                    delivery.clone(),
                    p.visible_at_ms,
                );
            }
            let message = convert::to_delivered(
                m,
                Delivery {
                    topic: &topic_res,
                    receipt_handle: handle,
                    attempt: p.attempt,
                    invisible_ms,
                    store_host: &self.store_host,
                },
            );
            out.push((message, delivery));
        }
        Ok(out)
    }
}
