//! Transactions: EndTransaction (commit, rollback, or still unknown), and
//! the relay of the store's transaction checks to a producer connected to
//! this proxy.

use futures::StreamExt;
use pier_proto::rocketmq::*;
use pier_proto::store as st;
use tokio::sync::mpsc;

use super::{Inner, Messaging};
use crate::context::ClientContext;
use crate::convert::{self, Delivery};
use crate::status::{ok, Rejection};

impl Inner {
    pub(super) async fn end_transaction(
        &self,
        ctx: &ClientContext,
        req: EndTransactionRequest,
    ) -> Result<EndTransactionResponse, Rejection> {
        let topic = self.admit_producer(ctx, req.topic.as_ref())?;
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
        self.store
            .end_transaction(st::EndTransactionRequest {
                topic,
                transaction_id: req.transaction_id,
                resolution: resolution as i32,
            })
            .await?;
        Ok(EndTransactionResponse { status: Some(ok()) })
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
        // Never waits: one relay task serves every check of this proxy, and a
        // producer that stops reading its stream must not hold up the
        // others'. A check it misses comes again after the store's back-off.
        match session.sender.try_send(Ok(cmd)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!(topic = %check.topic, "producer's stream is full; this transaction check is skipped")
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!("producer stream closed before a transaction check")
            }
        }
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
}
