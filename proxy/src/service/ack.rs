//! What a consumer does with a delivery: AckMessage, ChangeInvisibleDuration
//! (a nack, or more time) and ForwardMessageToDeadLetterQueue. Each opens
//! the receipt handle first: a forged or foreign one never reaches the store.

use pier_proto::rocketmq::*;
use pier_proto::store::{self as st, DeliveryRef};
use pier_store::auth::policy::Action;
use tonic::{Request, Response};

use super::{batch_status, entry_status, Inner, RpcResult, Target, MAX_INVISIBLE_MS};
use crate::auth::Need;
use crate::context::ClientContext;
use crate::convert;
use crate::metrics;
use crate::receipt::Receipt;
use crate::status::{ok, Rejection};
use crate::validate;

/// Not answered through `reply!`: Java and Python keep whatever handle
/// comes back, even with an error, so an error returns the handle they sent.
pub(super) async fn change_invisible_duration(
    inner: &Inner,
    request: Request<ChangeInvisibleDurationRequest>,
) -> RpcResult<ChangeInvisibleDurationResponse> {
    let ctx = ClientContext::of(&request);
    let req = request.into_inner();
    let resp = match inner.change_invisible(&ctx, &req).await {
        Ok(handle) => ChangeInvisibleDurationResponse {
            status: Some(ok()),
            receipt_handle: handle,
        },
        Err(rej) => {
            let target = Target::new(req.topic.as_ref(), req.group.as_ref());
            inner.faults.report("ChangeInvisibleDuration", target, &rej);
            ChangeInvisibleDurationResponse {
                status: Some(rej.to_status(&ctx)),
                receipt_handle: req.receipt_handle,
            }
        }
    };
    Ok(Response::new(resp))
}

impl Inner {
    /// What every call about a delivery checks first: the call is admitted,
    /// its group and topic are valid names, and its user may consume the
    /// topic as that group. Returns the full (group, topic) names.
    fn admit_consumer(
        &self,
        ctx: &ClientContext,
        group: Option<&Resource>,
        topic: Option<&Resource>,
    ) -> Result<(String, String), Rejection> {
        self.admit(ctx)?;
        let group = validate::group(group, &ctx.namespace)?;
        let topic = validate::topic(topic, &ctx.namespace)?;
        self.authorize(
            ctx,
            &[Need::topic(&topic, Action::Sub), Need::group(&group)],
        )?;
        Ok((group, topic))
    }

    /// Opens a receipt handle and checks it belongs to this group and topic.
    fn delivery(
        &self,
        handle: &str,
        group: &str,
        topic: &str,
    ) -> Result<(Receipt, DeliveryRef), Rejection> {
        let r = self
            .receipts
            .open(handle)
            .inspect_err(metrics::receipt_rejected)?;
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
            handle_seq: r.handle_seq,
        };
        Ok((r, d))
    }

    pub(super) async fn ack(
        &self,
        ctx: &ClientContext,
        req: AckMessageRequest,
    ) -> Result<AckMessageResponse, Rejection> {
        // A call the auth layer refused is answered here, entry by entry.
        self.authorize(ctx, &[])?;
        let (group, topic) = self.admit_consumer(ctx, req.group.as_ref(), req.topic.as_ref())?;
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
                Ok(r) => Err(Rejection::internal(format!(
                    "the store answered {} outcomes for {} acks",
                    r.outcomes.len(),
                    sent.len()
                ))),
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
            // The reply is built here, so failures the server caused are
            // reported here (once per kind of cause: the log is
            // rate-limited by it anyway).
            let mut reported = Vec::new();
            for rej in results.iter().filter_map(|r| r.as_ref().err()) {
                if let Some(f) = &rej.fault {
                    if !reported.contains(&f.kind) {
                        reported.push(f.kind);
                        self.faults.report_fault(
                            "AckMessage",
                            format_args!("group {group} topic {topic}"),
                            f,
                        );
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
        let (group, topic) = self.admit_consumer(ctx, req.group.as_ref(), req.topic.as_ref())?;
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
        // The store retires the handle the consumer used: only the new one
        // acks from now on (an old copy of the message a consumer still
        // holds cannot ack it from under the newer one).
        let changed = self
            .store
            .change_invisible(st::ChangeInvisibleRequest {
                delivery: Some(d),
                invisible_ms: ms,
                expected_visible_at_ms: 0,
                keep_handle: false,
            })
            .await?;
        Ok(self.receipts.issue(&Receipt {
            handle_seq: changed.handle_seq,
            issued_ms: pier_store::now_ms(),
            ..receipt
        }))
    }

    pub(super) async fn forward_to_dlq(
        &self,
        ctx: &ClientContext,
        req: ForwardMessageToDeadLetterQueueRequest,
    ) -> Result<ForwardMessageToDeadLetterQueueResponse, Rejection> {
        let (group, topic) = self.admit_consumer(ctx, req.group.as_ref(), req.topic.as_ref())?;
        let (_, d) = self.delivery(&req.receipt_handle, &group, &topic)?;
        self.renewer.forget(&req.receipt_handle);
        self.store
            .forward_to_dlq(st::ForwardToDlqRequest { delivery: Some(d) })
            .await?;
        Ok(ForwardMessageToDeadLetterQueueResponse { status: Some(ok()) })
    }
}
