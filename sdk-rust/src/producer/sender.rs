//! What a producer does on the wire: routes (the queue count per topic),
//! the wire form of each message (queue choice, namespace, transaction
//! fields), and sends with retries under the server's back-off policy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use pier_proto::rocketmq::settings::PubSub;
use pier_proto::rocketmq::{Message as WireMessage, MessageType, SendMessageRequest};

use crate::connect::request;
use crate::error::{check, Error, Result};
use crate::identity;
use crate::message::Message;
use crate::retry;
use crate::session::ClientCore;
use crate::time::duration;

/// Where and how a message was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// The message id.
    pub message_id: String,
    /// Offset in its queue.
    pub offset: i64,
    /// Transaction id (transactional messages).
    pub transaction_id: Option<String>,
    /// Handle for [`Producer::recall`](crate::Producer::recall) (delay
    /// messages).
    pub recall_handle: Option<String>,
    /// Index of the endpoint that stored it (a transaction ends there).
    pub(crate) origin: usize,
}

/// The state behind every clone of a producer and its transactions.
pub(crate) struct Sender {
    pub(crate) core: Arc<ClientCore>,
    /// Queue count per topic, from its route.
    queues: Mutex<HashMap<String, usize>>,
    next_queue: AtomicUsize,
    orphan_check_after: Option<Duration>,
    pub(crate) transactional: bool,
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.core.abort();
    }
}

/// FNV-1a: a stable message group → queue mapping.
fn group_hash(group: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in group.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as usize
}

impl Sender {
    pub(crate) fn new(
        core: Arc<ClientCore>,
        orphan_check_after: Option<Duration>,
        transactional: bool,
    ) -> Sender {
        Sender {
            core,
            queues: Mutex::new(HashMap::new()),
            next_queue: AtomicUsize::new(0),
            orphan_check_after,
            transactional,
        }
    }

    /// The topic's queue count, fetching (and declaring) its route once.
    pub(crate) async fn route(&self, topic: &str) -> Result<usize> {
        if let Some(n) = self.queues.lock().ok().and_then(|q| q.get(topic).copied()) {
            return Ok(n);
        }
        let queues = self.core.query_route(topic).await?;
        let n = queues.len();
        if let Ok(mut q) = self.queues.lock() {
            q.insert(topic.to_owned(), n);
        }
        let resource = self.core.resource(topic);
        self.core.update_local(|s| {
            if let Some(PubSub::Publishing(p)) = s.pub_sub.as_mut() {
                if !p.topics.contains(&resource) {
                    p.topics.push(resource);
                }
            }
        });
        Ok(n)
    }

    /// The server's body size limit, when its Settings name one.
    fn max_body_size(&self) -> Option<usize> {
        self.core
            .with_server_settings(|s| match s?.pub_sub.as_ref()? {
                PubSub::Publishing(p) if p.max_body_size > 0 => {
                    usize::try_from(p.max_body_size).ok()
                }
                _ => None,
            })
    }

    fn wire(&self, message: &Message, queues: usize, transactional: bool) -> Result<WireMessage> {
        if let Some(max) = self.max_body_size() {
            if message.body().len() > max {
                return Err(Error::invalid(format!(
                    "the body is {} bytes, more than the server's limit of {max}",
                    message.body().len()
                )));
            }
        }
        if transactional && (message.message_group().is_some() || message.delivery_time().is_some())
        {
            return Err(Error::invalid(
                "a transactional message cannot have a message group or a delivery time",
            ));
        }
        let queue = match message.message_group() {
            Some(g) => group_hash(g) % queues.max(1),
            None => self.next_queue.fetch_add(1, Ordering::Relaxed) % queues.max(1),
        };
        let mut wire = message.to_proto(
            self.core.config.namespace(),
            &identity::new_message_id(),
            SystemTime::now(),
            &identity::hostname(),
        );
        if let Some(sp) = wire.system_properties.as_mut() {
            sp.queue_id = i32::try_from(queue).unwrap_or(0);
            if transactional {
                sp.message_type = MessageType::Transaction as i32;
                sp.orphaned_transaction_recovery_duration = self.orphan_check_after.map(duration);
            }
        }
        Ok(wire)
    }

    /// Sends one message, or a batch of one topic and one type, in one
    /// request; the receipts are in the messages' order. Transient failures
    /// are retried with the server's back-off policy.
    pub(crate) async fn send_all(
        &self,
        messages: &[Message],
        transactional: bool,
    ) -> Result<Vec<SendReceipt>> {
        let Some(first) = messages.first() else {
            return Ok(Vec::new());
        };
        if messages.iter().any(|m| m.topic() != first.topic()) {
            return Err(Error::invalid("a batch must target one topic"));
        }
        if messages
            .iter()
            .any(|m| m.message_type() != first.message_type())
        {
            return Err(Error::invalid("a batch must hold one message type"));
        }
        let queues = self.route(first.topic()).await?;
        let wire = messages
            .iter()
            .map(|m| self.wire(m, queues, transactional))
            .collect::<Result<Vec<_>>>()?;
        // The ids `wire` gave the messages, to answer with.
        let ids: Vec<String> = wire
            .iter()
            .filter_map(|m| m.system_properties.as_ref())
            .map(|s| s.message_id.clone())
            .collect();
        let req = SendMessageRequest { messages: wire };
        let policy = self.core.retry_policy(retry::default_producer_policy());
        let attempts = policy.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let r = self
                .core
                .unary(None, |mut rpc, t| {
                    let req = req.clone();
                    async move { Ok(rpc.send_message(request(req, t)).await?.into_inner()) }
                })
                .await;
            let result = r.and_then(|(origin, resp)| {
                if resp.entries.len() != ids.len() {
                    check(resp.status.as_ref())?;
                    return Err(Error::Protocol(format!(
                        "SendMessage returned {} results for {} messages",
                        resp.entries.len(),
                        ids.len()
                    )));
                }
                resp.entries
                    .into_iter()
                    .zip(&ids)
                    .map(|(e, id)| {
                        // The entry's status is the precise one; the
                        // top-level status summarises the batch.
                        check(e.status.as_ref().or(resp.status.as_ref()))?;
                        Ok(SendReceipt {
                            message_id: if e.message_id.is_empty() {
                                id.clone()
                            } else {
                                e.message_id
                            },
                            offset: e.offset,
                            transaction_id: Some(e.transaction_id).filter(|t| !t.is_empty()),
                            recall_handle: Some(e.recall_handle).filter(|h| !h.is_empty()),
                            origin,
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            });
            match result {
                Err(e) if e.is_retryable() && attempt < attempts && !self.core.is_shut_down() => {
                    let delay = retry::retry_delay(&policy, attempt);
                    tracing::debug!(attempt, error = %e, ?delay, "send failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Sends one message and returns its receipt.
    pub(crate) async fn send_one(
        &self,
        message: &Message,
        transactional: bool,
    ) -> Result<SendReceipt> {
        self.send_all(std::slice::from_ref(message), transactional)
            .await?
            .pop()
            .ok_or_else(|| Error::Protocol("SendMessage returned no result".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_map_to_stable_queues() {
        assert_eq!(group_hash("a") % 8, group_hash("a") % 8);
        assert_ne!(group_hash("a"), group_hash("b"));
    }
}
