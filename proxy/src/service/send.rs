//! SendMessage: validate each message, append the valid ones to the store
//! in one call, answer one entry per message.

use pier_proto::rocketmq::*;
use pier_proto::store as st;
use pier_store::auth::policy::Action;
use pier_store::StoreError;
use tonic::Request;

use super::{batch_status, entry_status, Inner, RpcResult, Target};
use crate::auth::Need;
use crate::context::ClientContext;
use crate::convert;
use crate::status::Rejection;
use crate::validate;

fn message_ids(req: &SendMessageRequest) -> Vec<String> {
    req.messages
        .iter()
        .map(|m| {
            m.system_properties
                .as_ref()
                .map(|s| s.message_id.clone())
                .unwrap_or_default()
        })
        .collect()
}

pub(super) async fn send_message(
    inner: &Inner,
    request: Request<SendMessageRequest>,
) -> RpcResult<SendMessageResponse> {
    // Clients index the entries (Rust 5.0.0 takes entries[0], Python
    // asserts exactly one): a request-level failure still answers one
    // entry per message.
    let ids = message_ids(request.get_ref());
    // A span continuing the producer's trace (its messages' trace_context).
    let trace = crate::trace::SendTrace::of(request.get_ref());
    crate::trace::send(trace, async move {
        reply!(
            "SendMessage",
            request,
            inner,
            |r: &SendMessageRequest| Target::new(
                r.messages.first().and_then(|m| m.topic.as_ref()),
                None
            ),
            Inner::send,
            |s: Status| SendMessageResponse {
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
        )
    })
    .await
}

impl Inner {
    async fn send(
        &self,
        ctx: &ClientContext,
        req: SendMessageRequest,
    ) -> Result<SendMessageResponse, Rejection> {
        self.admit_batch(ctx)?;
        let Some(first) = req.messages.first() else {
            return Err(Rejection::new(
                Code::MessageCorrupted,
                "the request carries no message",
            ));
        };
        validate::send_request(&req.messages, &self.limits)?;
        let topic_res = first.topic.clone();
        if req.messages.iter().any(|m| m.topic != topic_res) {
            return Err(Rejection::new(
                Code::MessageCorrupted,
                "all messages of one SendMessage request must be for the same topic",
            ));
        }
        let topic = validate::topic(topic_res.as_ref(), &ctx.namespace)?;
        self.authorize(ctx, &[Need::topic(&topic, Action::Pub)])?;
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
                    // Every valid entry fails alike; the reply is built
                    // here, so the failure is reported here.
                    let rej = Rejection::from(e);
                    self.faults
                        .report("SendMessage", format_args!("topic {topic}"), &rej);
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
}
