//! [`Transaction`]: half messages sent through a producer, delivered
//! together at the commit or discarded at the rollback.

use std::sync::Arc;

use pier_proto::rocketmq::{
    EndTransactionRequest, TransactionResolution as WireResolution, TransactionSource,
};

use super::sender::{SendReceipt, Sender};
use crate::error::{check, Error, Result};
use crate::message::Message;

/// A transaction of a [`Producer`](crate::Producer): its messages are
/// delivered at [`commit`](Self::commit), discarded at
/// [`rollback`](Self::rollback). A transaction dropped without either is
/// resolved later by the server's check.
pub struct Transaction {
    sender: Arc<Sender>,
    sent: Vec<(String, SendReceipt)>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("client_id", &self.sender.core.client_id)
            .field("sent", &self.sent)
            .finish()
    }
}

impl Transaction {
    pub(crate) fn new(sender: Arc<Sender>) -> Transaction {
        Transaction {
            sender,
            sent: Vec::new(),
        }
    }

    /// Sends a half message: stored, invisible until the commit.
    pub async fn send(&mut self, message: &Message) -> Result<SendReceipt> {
        let receipt = self.sender.send_one(message, true).await?;
        if receipt.transaction_id.is_none() {
            return Err(Error::Protocol(
                "the server returned no transaction id for a transactional message".into(),
            ));
        }
        self.sent
            .push((message.topic().to_owned(), receipt.clone()));
        Ok(receipt)
    }

    /// Delivers every message of the transaction.
    pub async fn commit(self) -> Result<()> {
        self.end(WireResolution::Commit).await
    }

    /// Discards every message of the transaction.
    pub async fn rollback(self) -> Result<()> {
        self.end(WireResolution::Rollback).await
    }

    async fn end(self, resolution: WireResolution) -> Result<()> {
        let core = &self.sender.core;
        for (topic, receipt) in &self.sent {
            let req = EndTransactionRequest {
                topic: Some(core.resource(topic)),
                message_id: receipt.message_id.clone(),
                transaction_id: receipt.transaction_id.clone().unwrap_or_default(),
                resolution: resolution as i32,
                source: TransactionSource::SourceClient as i32,
                trace_context: String::new(),
            };
            let resp = core
                .call(Some(receipt.origin), req, |mut rpc, r| async move {
                    rpc.end_transaction(r).await
                })
                .await?;
            check(resp.status.as_ref())?;
        }
        Ok(())
    }
}
