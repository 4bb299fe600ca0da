//! A consumer's acks, coalesced (the push consumer's and the simple
//! consumer's alike): the acks made while earlier acks to the same address
//! and topic are on the wire go out together, as the entries of one
//! `AckMessage` call, when one of those calls returns. Nothing waits on
//! purpose: an ack with a call slot free leaves at once, alone if nothing
//! else is queued, so an application acking one message at a time sees a
//! call per ack as before.
//!
//! Why: every ack used to be a call of its own, and the SDK then spent
//! about twice the CPU per message of a bare gRPC client (`perf stat`,
//! bench/results/HISTORY.md); the server commits one call's entries
//! together anyway. Each message still gets its own entry's status, so an
//! expired receipt handle fails that message's ack only.
//!
//! A call is in flight on each of at most [`CALLS`] slots per (address,
//! topic) so acks keep being pipelined behind the server's syncs; the
//! calls run in tasks of the client core, so a consumer that stops waiting
//! (shutdown) does not stall the others queued behind it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pier_proto::rocketmq::{AckMessageEntry, AckMessageRequest, AckMessageResponse};
use tokio::sync::oneshot;

use crate::error::{check, Error, Result};
use crate::message::MessageView;
use crate::session::ClientCore;

/// Calls in flight at once per (address, topic).
const CALLS: usize = 4;
/// Entries per call at most.
const MAX_ENTRIES: usize = 64;

/// One ack waiting for its call's answer.
struct Waiting {
    entry: AckMessageEntry,
    answer: oneshot::Sender<Result<()>>,
}

#[derive(Default)]
struct Lane {
    queued: Vec<Waiting>,
    calls: usize,
}

/// The acks of one consumer (see the module comment).
pub(crate) struct Acks {
    core: Arc<ClientCore>,
    group: String,
    lanes: Mutex<HashMap<(usize, String), Lane>>,
}

impl std::fmt::Debug for Acks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acks").field("group", &self.group).finish()
    }
}

impl Acks {
    pub(crate) fn new(core: Arc<ClientCore>, group: String) -> Arc<Acks> {
        Arc::new(Acks {
            core,
            group,
            lanes: Mutex::new(HashMap::new()),
        })
    }

    /// Acks `m` (at the address it came from first, then the others: Pier
    /// accepts a receipt handle on every proxy); returns its entry's answer.
    pub(crate) async fn ack(self: &Arc<Self>, m: &MessageView) -> Result<()> {
        if self.core.is_shut_down() {
            return Err(Error::Shutdown);
        }
        let (answer, answered) = oneshot::channel();
        let key = (m.origin, m.topic().to_owned());
        let waiting = Waiting {
            entry: AckMessageEntry {
                message_id: m.message_id().to_owned(),
                receipt_handle: m.receipt_handle().to_owned(),
                lite_topic: None,
            },
            answer,
        };
        let first = {
            let mut lanes = self.lanes.lock().map_err(|_| Error::Shutdown)?;
            let lane = lanes.entry(key.clone()).or_default();
            lane.queued.push(waiting);
            if lane.calls < CALLS {
                lane.calls += 1;
                Some(take_batch(&mut lane.queued))
            } else {
                None
            }
        };
        if let Some(batch) = first {
            let acks = self.clone();
            self.core
                .spawn(async move { acks.send_while_queued(key, batch).await });
        }
        // Dropped unanswered only when the client shuts down. A shutdown
        // also cancels the tasks that held call slots, which then never
        // give them back: an ack queued behind them must not wait for them.
        tokio::select! {
            biased;
            answer = answered => answer.unwrap_or(Err(Error::Shutdown)),
            () = self.core.cancellation().cancelled() => Err(Error::Shutdown),
        }
    }

    /// Sends `batch`, then whatever queued meanwhile, until the lane's
    /// queue is empty; then gives the call slot back.
    async fn send_while_queued(&self, key: (usize, String), mut batch: Vec<Waiting>) {
        loop {
            self.send(&key, batch).await;
            let Ok(mut lanes) = self.lanes.lock() else {
                return;
            };
            let Some(lane) = lanes.get_mut(&key) else {
                return;
            };
            if lane.queued.is_empty() {
                lane.calls -= 1;
                if lane.calls == 0 {
                    lanes.remove(&key);
                }
                return;
            }
            batch = take_batch(&mut lane.queued);
        }
    }

    /// One `AckMessage` call for `batch`; each entry's answer goes to its
    /// waiter.
    async fn send(&self, key: &(usize, String), batch: Vec<Waiting>) {
        let (origin, topic) = key;
        let req = AckMessageRequest {
            group: Some(self.core.resource(&self.group)),
            topic: Some(self.core.resource(topic)),
            entries: batch.iter().map(|w| w.entry.clone()).collect(),
        };
        let resp = self
            .core
            .call(Some(*origin), req, |mut rpc, r| async move {
                rpc.ack_message(r).await
            })
            .await;
        for w in batch {
            let answer = match &resp {
                Ok(resp) => entry_answer(resp, &w.entry.receipt_handle),
                Err(e) => Err(e.copy_for_each()),
            };
            // The waiter may have gone (shutdown): nothing to tell.
            let _ = w.answer.send(answer);
        }
    }
}

fn take_batch(queued: &mut Vec<Waiting>) -> Vec<Waiting> {
    let n = queued.len().min(MAX_ENTRIES);
    queued.drain(..n).collect()
}

/// The answer of an `AckMessage` response for the entry of
/// `receipt_handle`: its own status (matched by handle, as a server may
/// answer entries in any order), else the response's.
fn entry_answer(resp: &AckMessageResponse, receipt_handle: &str) -> Result<()> {
    let own = resp
        .entries
        .iter()
        .find(|e| e.receipt_handle == receipt_handle)
        .and_then(|e| e.status.as_ref());
    check(own.or(resp.status.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pier_proto::rocketmq::{AckMessageResultEntry, Code, Status};

    fn status(code: Code) -> Option<Status> {
        Some(Status {
            code: code as i32,
            message: format!("{code:?}"),
        })
    }

    fn entry(handle: &str) -> AckMessageEntry {
        AckMessageEntry {
            message_id: format!("id-{handle}"),
            receipt_handle: handle.into(),
            lite_topic: None,
        }
    }

    #[test]
    fn each_entry_gets_its_own_status_whatever_the_order() {
        let resp = AckMessageResponse {
            status: status(Code::MultipleResults),
            entries: vec![
                AckMessageResultEntry {
                    message_id: "id-b".into(),
                    receipt_handle: "b".into(),
                    status: status(Code::InvalidReceiptHandle),
                },
                AckMessageResultEntry {
                    message_id: "id-a".into(),
                    receipt_handle: "a".into(),
                    status: status(Code::Ok),
                },
            ],
        };
        assert!(entry_answer(&resp, "a").is_ok());
        let b = entry_answer(&resp, "b").unwrap_err();
        assert_eq!(b.code(), Some(Code::InvalidReceiptHandle));
        // An entry the server left out gets the response's status.
        let c = entry_answer(&resp, "c").unwrap_err();
        assert_eq!(c.code(), Some(Code::MultipleResults));
    }

    #[test]
    fn a_failed_call_fails_each_entry_alike() {
        let e = Error::rpc(tonic::Code::Unavailable, "down");
        let copy = e.copy_for_each();
        assert_eq!(copy.grpc_code(), Some(tonic::Code::Unavailable));
        assert!(copy.is_retryable() && copy.is_transport());
        let s = Error::from_status(&status(Code::BadRequest).unwrap());
        assert_eq!(s.copy_for_each().code(), Some(Code::BadRequest));
        assert!(!s.copy_for_each().is_retryable());
    }

    #[test]
    fn batches_are_bounded() {
        let mut queued: Vec<Waiting> = (0..MAX_ENTRIES + 5)
            .map(|i| Waiting {
                entry: entry(&i.to_string()),
                answer: oneshot::channel().0,
            })
            .collect();
        assert_eq!(take_batch(&mut queued).len(), MAX_ENTRIES);
        assert_eq!(take_batch(&mut queued).len(), 5);
        assert!(queued.is_empty());
    }
}
