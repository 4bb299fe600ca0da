//! RecallMessage: cancel a delay message before it fires, named by the
//! recall handle its send returned.

use pier_proto::rocketmq::*;
use pier_proto::store as st;

use super::Inner;
use crate::context::ClientContext;
use crate::status::{ok, Rejection};

impl Inner {
    pub(super) async fn recall(
        &self,
        ctx: &ClientContext,
        req: RecallMessageRequest,
    ) -> Result<RecallMessageResponse, Rejection> {
        let topic = self.admit_producer(ctx, req.topic.as_ref())?;
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
        Ok(RecallMessageResponse {
            status: Some(ok()),
            message_id: r.message_id,
        })
    }
}
