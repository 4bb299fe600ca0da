//! RecallMessage: cancel a delay message before it fires, named by the
//! recall handle its send returned.

use pier_proto::rocketmq::*;
use pier_proto::store as st;
use pier_store::auth::policy::Action;
use tonic::{Request, Response};

use super::{Inner, RpcResult, Target};
use crate::auth::Need;
use crate::context::ClientContext;
use crate::status::{ok, Rejection};
use crate::validate;

pub(super) async fn recall_message(
    inner: &Inner,
    request: Request<RecallMessageRequest>,
) -> RpcResult<RecallMessageResponse> {
    let ctx = ClientContext::of(&request);
    let req = request.into_inner();
    let target = Target::new(req.topic.as_ref(), None);
    let resp = match inner.recall(&ctx, req).await {
        Ok(message_id) => RecallMessageResponse {
            status: Some(ok()),
            message_id,
        },
        Err(rej) => {
            inner.faults.report("RecallMessage", target, &rej);
            RecallMessageResponse {
                status: Some(rej.to_status(&ctx)),
                message_id: String::new(),
            }
        }
    };
    Ok(Response::new(resp))
}

impl Inner {
    async fn recall(
        &self,
        ctx: &ClientContext,
        req: RecallMessageRequest,
    ) -> Result<String, Rejection> {
        self.admit(ctx)?;
        let topic = validate::topic(req.topic.as_ref(), &ctx.namespace)?;
        self.authorize(ctx, &[Need::topic(&topic, Action::Pub)])?;
        if req.recall_handle.trim().is_empty() {
            return Err(Rejection::new(Code::BadRequest, "recall_handle is empty"));
        }
        let (handle_topic, timer) = self
            .receipts
            .open_recall(&req.recall_handle)
            .inspect_err(crate::metrics::receipt_rejected)
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
}
