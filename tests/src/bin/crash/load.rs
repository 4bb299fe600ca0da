//! Producers and consumers over the raw `apache.rocketmq.v2` API, writing
//! what they see into the [`Ledger`].
//!
//! A producer never resends an id: a send that failed or timed out has an
//! unknown outcome, and resending it would make a duplicate that is the
//! producer's doing, not the server's. Each worker talks to one endpoint and
//! moves to the next one after a failed call (cluster mode has two proxies).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pier_proto::rocketmq::*;
use pier_tests::{message_with_id, resource, Raw};
use tokio::task::JoinHandle;

use super::ledger::Ledger;

/// Settings shared by every worker.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub topic: String,
    pub group: String,
    /// Tag that marks this run's bodies.
    pub tag: String,
    pub body_bytes: usize,
    /// Pause between two sends of one producer.
    pub send_gap: Duration,
    pub batch: i32,
    pub invisible_ms: u64,
    pub poll_ms: u64,
}

/// Failed calls wait this long before the next one, so that an outage is
/// not a busy loop.
const BACKOFF: Duration = Duration::from_millis(20);
/// Deadline of one send or ack (the server's own timeouts are shorter).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The running workers; each group stops when its flag is set.
pub struct Load {
    pub stop_producing: Arc<AtomicBool>,
    pub stop_consuming: Arc<AtomicBool>,
    producers: Vec<JoinHandle<()>>,
    consumers: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(
        cfg: LoadConfig,
        clients: Vec<Raw>,
        ledger: Arc<Ledger>,
        producers: usize,
        consumers: usize,
    ) -> Load {
        let stop_producing = Arc::new(AtomicBool::new(false));
        let stop_consuming = Arc::new(AtomicBool::new(false));
        let n = clients.len().max(1);
        let producers = (0..producers)
            .map(|i| {
                let w = Worker::new(&cfg, &clients, i % n, &ledger, &stop_producing);
                tokio::spawn(w.produce())
            })
            .collect();
        let consumers = (0..consumers)
            .map(|i| {
                let w = Worker::new(&cfg, &clients, i % n, &ledger, &stop_consuming);
                tokio::spawn(w.consume())
            })
            .collect();
        Load {
            stop_producing,
            stop_consuming,
            producers,
            consumers,
        }
    }

    /// Stops the producers and waits for their last sends to be answered.
    pub async fn stop_producers(&mut self) {
        self.stop_producing.store(true, Ordering::SeqCst);
        for h in self.producers.drain(..) {
            let _ = h.await;
        }
    }

    pub async fn stop_consumers(&mut self) {
        self.stop_consuming.store(true, Ordering::SeqCst);
        for h in self.consumers.drain(..) {
            let _ = h.await;
        }
    }
}

struct Worker {
    cfg: LoadConfig,
    clients: Vec<Raw>,
    current: usize,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn new(
        cfg: &LoadConfig,
        clients: &[Raw],
        current: usize,
        ledger: &Arc<Ledger>,
        stop: &Arc<AtomicBool>,
    ) -> Worker {
        Worker {
            cfg: cfg.clone(),
            clients: clients.to_vec(),
            current,
            ledger: Arc::clone(ledger),
            stop: Arc::clone(stop),
        }
    }

    fn client(&self) -> &Raw {
        &self.clients[self.current % self.clients.len()]
    }

    /// After a failed call: the next endpoint, after a pause.
    async fn fail_over(&mut self) {
        self.current = (self.current + 1) % self.clients.len().max(1);
        tokio::time::sleep(BACKOFF).await;
    }

    async fn produce(mut self) {
        while !self.stop.load(Ordering::SeqCst) {
            let id = self.ledger.new_id();
            let mut body = format!("{}:{id}:", self.cfg.tag).into_bytes();
            body.resize(self.cfg.body_bytes.max(body.len()), b'x');
            // Official clients draw a fresh id per message; this one is
            // derived from the run's id, which is just as unique.
            let msg = message_with_id(&self.cfg.topic, format!("C{id:031X}"), body);
            let mut req = self.client().req(SendMessageRequest {
                messages: vec![msg],
            });
            req.set_timeout(CALL_TIMEOUT);
            let ok = match self.client().messaging().send_message(req).await {
                Ok(r) => {
                    let r = r.into_inner();
                    is_ok(r.status.as_ref())
                        && r.entries.len() == 1
                        && r.entries.iter().all(|e| is_ok(e.status.as_ref()))
                }
                Err(_) => false,
            };
            if ok {
                self.ledger.sent_ok(id);
                tokio::time::sleep(self.cfg.send_gap).await;
            } else {
                self.ledger.send_failed();
                self.fail_over().await;
            }
        }
    }

    async fn consume(mut self) {
        while !self.stop.load(Ordering::SeqCst) {
            let asked = self.ledger.now();
            let (complete, msgs) = self.receive().await;
            let got = self.ledger.now();
            // Whatever arrived was delivered, even if the stream then broke.
            let mut to_ack = Vec::new();
            for m in &msgs {
                let sp = m.system_properties.as_ref();
                let attempt = sp.and_then(|s| s.delivery_attempt).unwrap_or(0);
                let id = self.id_of(&m.body);
                self.ledger.delivered(id, attempt, asked, got);
                let handle = sp.and_then(|s| s.receipt_handle.clone());
                if let (Some(id), Some(handle)) = (id, handle) {
                    let message_id = sp.map(|s| s.message_id.clone()).unwrap_or_default();
                    to_ack.push((id, message_id, handle));
                }
            }
            if !to_ack.is_empty() {
                self.ack(to_ack).await;
            }
            if !complete {
                self.ledger.receive_failed();
                self.fail_over().await;
            }
        }
    }

    /// One ReceiveMessage: the messages that arrived, and whether the call
    /// ended with a status frame (OK or "nothing to deliver").
    async fn receive(&self) -> (bool, Vec<Message>) {
        use receive_message_response::Content;
        let c = self.client();
        let req = ReceiveMessageRequest {
            group: Some(resource(&self.cfg.group)),
            message_queue: Some(c.queue(&self.cfg.topic)),
            filter_expression: Some(FilterExpression {
                r#type: FilterType::Tag as i32,
                expression: "*".into(),
            }),
            batch_size: self.cfg.batch,
            invisible_duration: Some(duration(self.cfg.invisible_ms)),
            auto_renew: false,
            long_polling_timeout: Some(duration(self.cfg.poll_ms)),
            attempt_id: None,
        };
        let mut req = c.req(req);
        req.set_timeout(Duration::from_millis(self.cfg.poll_ms) + CALL_TIMEOUT);
        let mut msgs = Vec::new();
        let mut stream = match c.messaging().receive_message(req).await {
            Ok(r) => r.into_inner(),
            Err(_) => return (false, msgs),
        };
        let mut status = None;
        loop {
            match stream.message().await {
                Ok(Some(frame)) => match frame.content {
                    Some(Content::Message(m)) => msgs.push(m),
                    Some(Content::Status(s)) => status = Some(s.code),
                    _ => {}
                },
                Ok(None) => break,
                Err(_) => return (false, msgs),
            }
        }
        let fine = [Code::Ok as i32, Code::MessageNotFound as i32];
        (status.is_some_and(|s| fine.contains(&s)), msgs)
    }

    /// Acks one receive's messages in one call; an id counts as acked only
    /// for an entry answered OK.
    async fn ack(&mut self, batch: Vec<(u64, String, String)>) {
        let entries = batch
            .iter()
            .map(|(_, message_id, handle)| AckMessageEntry {
                message_id: message_id.clone(),
                receipt_handle: handle.clone(),
                lite_topic: None,
            })
            .collect();
        let c = self.client();
        let mut req = c.req(AckMessageRequest {
            group: Some(resource(&self.cfg.group)),
            topic: Some(resource(&self.cfg.topic)),
            entries,
        });
        req.set_timeout(CALL_TIMEOUT);
        let answer = c.messaging().ack_message(req).await;
        let at = self.ledger.now();
        let mut failed = batch.len() as u64;
        match answer {
            Ok(r) => {
                for e in r.into_inner().entries {
                    if !is_ok(e.status.as_ref()) {
                        continue;
                    }
                    // Entries name the handle they answer; match on it
                    // rather than on the order.
                    if let Some((id, _, _)) = batch.iter().find(|b| b.2 == e.receipt_handle) {
                        self.ledger.acked(*id, at);
                        failed = failed.saturating_sub(1);
                    }
                }
                self.ledger.ack_failed(failed);
            }
            Err(_) => {
                self.ledger.ack_failed(failed);
                self.fail_over().await;
            }
        }
    }

    /// The id in a body of this run (`TAG:ID:padding`).
    fn id_of(&self, body: &[u8]) -> Option<u64> {
        let s = std::str::from_utf8(body).ok()?;
        let rest = s.strip_prefix(self.cfg.tag.as_str())?.strip_prefix(':')?;
        rest.split(':').next()?.parse().ok()
    }
}

fn is_ok(s: Option<&Status>) -> bool {
    s.is_some_and(|s| s.code == Code::Ok as i32)
}

fn duration(ms: u64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}
