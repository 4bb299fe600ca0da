//! Transaction checks: the server asks what became of a transaction it
//! found pending (the producer crashed or never ended it), the
//! application's [`TransactionChecker`] decides, and the answer goes back
//! as an `EndTransaction` (source `SERVER_CHECK`).

use std::sync::Arc;

use futures::future::BoxFuture;
use pier_proto::rocketmq::{
    EndTransactionRequest, RecoverOrphanedTransactionCommand,
    TransactionResolution as WireResolution, TransactionSource,
};

use crate::connect::{deadline, request};
use crate::error::check;
use crate::message::{message_callback, MessageView};
use crate::session::{ClientCore, TransactionCheckHandler};

/// The outcome a [`TransactionChecker`] gives for a pending transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionResolution {
    /// Deliver the message.
    Commit,
    /// Discard the message.
    Rollback,
    /// Not decided yet: the server asks again later.
    Unknown,
}

/// Tells the server what became of a transaction it found pending (the
/// producer crashed or never ended it). Called with the half message; any
/// `Fn(MessageView) -> impl Future<Output = TransactionResolution>` closure
/// is a checker.
pub trait TransactionChecker: Send + Sync + 'static {
    /// Decides the outcome of the transaction `message` belongs to.
    fn check(&self, message: MessageView) -> BoxFuture<'static, TransactionResolution>;
}

message_callback!(TransactionChecker::check -> TransactionResolution);

/// Hands the session's transaction checks to the application's checker.
pub(crate) struct CheckAnswerer(pub(crate) Arc<dyn TransactionChecker>);

impl TransactionCheckHandler for CheckAnswerer {
    fn on_check(
        &self,
        core: Arc<ClientCore>,
        origin: usize,
        command: RecoverOrphanedTransactionCommand,
    ) -> BoxFuture<'static, ()> {
        Box::pin(answer(self.0.clone(), core, origin, command))
    }
}

/// Answers one check with EndTransaction to the address it came from first.
async fn answer(
    checker: Arc<dyn TransactionChecker>,
    core: Arc<ClientCore>,
    origin: usize,
    c: RecoverOrphanedTransactionCommand,
) {
    let Some(message) = c.message else {
        tracing::warn!(transaction_id = %c.transaction_id, "transaction check without a message");
        return;
    };
    let view = match MessageView::from_wire(message, origin, false) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "malformed transaction check");
            return;
        }
    };
    let resolution = match checker.check(view.clone()).await {
        TransactionResolution::Commit => WireResolution::Commit,
        TransactionResolution::Rollback => WireResolution::Rollback,
        // Unknown: say nothing; the server checks again later.
        TransactionResolution::Unknown => return,
    };
    let req = EndTransactionRequest {
        topic: Some(core.resource(view.topic())),
        message_id: view.message_id().to_owned(),
        transaction_id: c.transaction_id,
        resolution: resolution as i32,
        source: TransactionSource::SourceServerCheck as i32,
        trace_context: String::new(),
    };
    let t = core.timeout();
    let r = core
        .cluster
        .call(Some(origin), |mut rpc| {
            let req = req.clone();
            deadline(t, async move {
                let resp = rpc.end_transaction(request(req, t)).await?.into_inner();
                check(resp.status.as_ref())
            })
        })
        .await;
    if let Err(e) = r {
        tracing::warn!(message_id = view.message_id(), error = %e, "answering a transaction check failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    #[tokio::test]
    async fn closures_are_checkers() {
        let c: Arc<dyn TransactionChecker> = Arc::new(|m: MessageView| async move {
            if m.topic() == "t" {
                TransactionResolution::Commit
            } else {
                TransactionResolution::Rollback
            }
        });
        let wire = Message::builder("t", "x").build().unwrap().to_proto(
            "",
            "ID",
            std::time::SystemTime::now(),
            "h",
        );
        let view = MessageView::from_wire(wire, 0, false).unwrap();
        assert_eq!(c.check(view).await, TransactionResolution::Commit);
    }
}
