//! What the producers and consumers saw, message by message, and the
//! verdict drawn from it once the run is over.
//!
//! Every time is in nanoseconds since the ledger was created (one monotonic
//! clock for every task), so "this receive was asked for after that ack was
//! answered" is a plain comparison.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

/// One delivery of a message to a consumer.
#[derive(Clone, Copy, Debug)]
struct Delivery {
    /// `delivery_attempt` as the server numbered it.
    attempt: i32,
    /// When the ReceiveMessage that carried it was sent.
    asked: u64,
    /// When that receive's stream ended.
    got: u64,
}

/// Everything known about one message id.
#[derive(Debug, Default)]
struct Record {
    /// SendMessage answered OK for it: the server promised it is durable.
    sent_ok: bool,
    /// When an AckMessage first answered OK for one of its deliveries.
    acked: Option<u64>,
    deliveries: Vec<Delivery>,
}

#[derive(Default)]
struct Inner {
    records: HashMap<u64, Record>,
    /// Sends that failed or timed out: the message may or may not exist.
    send_failed: u64,
    /// Ack entries that did not answer OK (or whose call failed).
    ack_failed: u64,
    /// Receives whose call or stream failed.
    receive_failed: u64,
    /// Delivered bodies that are not this run's (should never happen).
    foreign: u64,
    /// Time of the last delivery of anything.
    last_delivery: u64,
    /// The restart whose first OK send is awaited: (cycle, restart time).
    awaiting_first_ok: Option<(usize, u64)>,
    /// Per cycle: the first OK send's answer time.
    first_ok: HashMap<usize, u64>,
}

/// The shared record of a run; cheap to call from every task.
pub struct Ledger {
    origin: Instant,
    next_id: AtomicU64,
    inner: Mutex<Inner>,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger {
            origin: Instant::now(),
            next_id: AtomicU64::new(0),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Nanoseconds since the ledger was created.
    pub fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A task that panicked while holding the lock left whole records
        // behind (every update is one statement), so keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh id, registered before its send so that a delivery racing the
    /// send's answer finds it.
    pub fn new_id(&self) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().records.insert(id, Record::default());
        id
    }

    pub fn sent_ok(&self, id: u64) {
        let now = self.now();
        let mut g = self.lock();
        if let Some(r) = g.records.get_mut(&id) {
            r.sent_ok = true;
        }
        if let Some((cycle, since)) = g.awaiting_first_ok {
            if now >= since {
                g.first_ok.insert(cycle, now);
                g.awaiting_first_ok = None;
            }
        }
    }

    pub fn send_failed(&self) {
        self.lock().send_failed += 1;
    }

    pub fn receive_failed(&self) {
        self.lock().receive_failed += 1;
    }

    pub fn ack_failed(&self, entries: u64) {
        self.lock().ack_failed += entries;
    }

    /// Records one delivery; `id` is None for a body this run did not send.
    pub fn delivered(&self, id: Option<u64>, attempt: i32, asked: u64, got: u64) {
        let mut g = self.lock();
        g.last_delivery = g.last_delivery.max(got);
        match id.and_then(|id| g.records.get_mut(&id)) {
            Some(r) => r.deliveries.push(Delivery {
                attempt,
                asked,
                got,
            }),
            None => g.foreign += 1,
        }
    }

    /// AckMessage answered OK for a delivery of `id` at `at`.
    pub fn acked(&self, id: u64, at: u64) {
        if let Some(r) = self.lock().records.get_mut(&id) {
            r.acked.get_or_insert(at);
        }
    }

    /// From now on, the next OK send is the first after `cycle`'s restart
    /// (begun at `since`).
    pub fn await_first_ok(&self, cycle: usize, since: u64) {
        self.lock().awaiting_first_ok = Some((cycle, since));
    }

    pub fn first_ok(&self, cycle: usize) -> Option<u64> {
        self.lock().first_ok.get(&cycle).copied()
    }

    /// Acked sends not delivered yet, and the time of the last delivery.
    pub fn undelivered(&self) -> (u64, u64) {
        let g = self.lock();
        let n = g
            .records
            .values()
            .filter(|r| r.sent_ok && r.deliveries.is_empty())
            .count();
        (n as u64, g.last_delivery)
    }

    /// The verdict over everything recorded.
    pub fn tally(&self) -> Tally {
        let g = self.lock();
        let mut t = Tally {
            send_failed: g.send_failed,
            receive_failed: g.receive_failed,
            ack_failed: g.ack_failed,
            foreign_deliveries: g.foreign,
            ..Tally::default()
        };
        let mut lost_ids = Vec::new();
        for (&id, r) in &g.records {
            t.deliveries += r.deliveries.len() as u64;
            if r.sent_ok {
                t.sent_acked += 1;
                if r.deliveries.is_empty() {
                    t.lost += 1;
                    lost_ids.push(id);
                } else {
                    t.consumed += 1;
                }
            } else if !r.deliveries.is_empty() {
                // The send failed or timed out, yet the message was stored:
                // allowed (the outcome was unknown to the producer).
                t.delivered_unconfirmed_send += 1;
            }
            if r.acked.is_some() {
                t.consumer_acked += 1;
            }
            if r.deliveries.len() > 1 {
                t.duplicates += 1;
            }
            // Only a receive sent after the ack answered OK is proof: a
            // slower, older receive may still be on its way.
            if let Some(acked) = r.acked {
                if r.deliveries.iter().any(|d| d.asked > acked) {
                    t.redelivered_after_ack += 1;
                    if t.redelivered_sample.len() < SAMPLE {
                        t.redelivered_sample.push(history(id, r));
                    }
                }
            }
            // The same rule for attempts: a delivery asked for after an
            // earlier one had arrived must carry a higher attempt.
            let reset = r.deliveries.iter().any(|later| {
                r.deliveries
                    .iter()
                    .any(|earlier| earlier.got < later.asked && later.attempt <= earlier.attempt)
            });
            if reset {
                t.attempts_reset += 1;
            }
        }
        lost_ids.sort_unstable();
        lost_ids.truncate(SAMPLE);
        t.lost_sample = lost_ids;
        t
    }
}

/// How many ids a sample shows.
const SAMPLE: usize = 10;

/// One message's story for the report: its deliveries (attempt, when the
/// receive was asked for and when it arrived) and its ack, in ms.
fn history(id: u64, r: &Record) -> String {
    let ms = |ns: u64| ns / 1_000_000;
    let mut parts: Vec<String> = r
        .deliveries
        .iter()
        .map(|d| {
            format!(
                "attempt {} asked {} got {}",
                d.attempt,
                ms(d.asked),
                ms(d.got)
            )
        })
        .collect();
    if let Some(a) = r.acked {
        parts.push(format!("first ack OK {}", ms(a)));
    }
    format!("id {id}: {}", parts.join(", "))
}

/// Counts over the whole run, in messages (ids) unless said otherwise.
#[derive(Debug, Default, Serialize)]
pub struct Tally {
    /// SendMessage answered OK.
    pub sent_acked: u64,
    /// Sends that failed or timed out (outcome unknown; not retried).
    pub send_failed: u64,
    /// Acked sends delivered at least once.
    pub consumed: u64,
    /// Acked sends never delivered.
    pub lost: u64,
    /// The first lost ids, to look up in the logs.
    pub lost_sample: Vec<u64>,
    /// Messages delivered more than once (at-least-once allows it).
    pub duplicates: u64,
    /// Messages delivered by a receive sent after an AckMessage had
    /// answered OK for them.
    pub redelivered_after_ack: u64,
    /// The first of them, with their deliveries and ack (times in ms).
    pub redelivered_sample: Vec<String>,
    /// Messages with a delivery whose `delivery_attempt` is not above that
    /// of a delivery that had arrived before it was asked for (the counter
    /// went back or did not advance).
    pub attempts_reset: u64,
    /// Deliveries of every message, duplicates included.
    pub deliveries: u64,
    /// Messages an AckMessage answered OK for.
    pub consumer_acked: u64,
    /// Ack entries that did not answer OK.
    pub ack_failed: u64,
    /// Receives whose call or stream failed.
    pub receive_failed: u64,
    /// Messages whose send failed yet were delivered.
    pub delivered_unconfirmed_send: u64,
    /// Deliveries of bodies this run did not send.
    pub foreign_deliveries: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_asked_for_after_the_ack_is_a_redelivery_and_an_older_one_is_not() {
        let l = Ledger::new();
        let a = l.new_id();
        let b = l.new_id();
        l.sent_ok(a);
        l.sent_ok(b);
        l.delivered(Some(a), 1, 10, 20);
        l.acked(a, 30);
        // A receive asked at 25 (before the ack answered) may be older.
        l.delivered(Some(a), 2, 25, 40);
        l.delivered(Some(b), 1, 10, 20);
        l.acked(b, 30);
        l.delivered(Some(b), 1, 35, 50);
        let t = l.tally();
        assert_eq!(t.sent_acked, 2);
        assert_eq!(t.lost, 0);
        assert_eq!(t.duplicates, 2);
        assert_eq!(t.redelivered_after_ack, 1);
        assert_eq!(t.attempts_reset, 1, "b came back with attempt 1");
    }

    #[test]
    fn an_acked_send_never_delivered_is_lost() {
        let l = Ledger::new();
        let a = l.new_id();
        let _unsure = l.new_id();
        l.sent_ok(a);
        let t = l.tally();
        assert_eq!(
            (t.sent_acked, t.lost, t.lost_sample.clone()),
            (1, 1, vec![a])
        );
        assert_eq!(l.undelivered().0, 1);
    }
}
