//! Auto-renewal of push consumers' receipts (protocol.md §4.9.2): a receive
//! with `auto_renew` gets an invisibility chosen here, and a background task
//! keeps extending it until the message is acked or nacked, the client goes
//! away, or the renewal limit is reached. The delivery attempt does not
//! change, so the first receipt handle stays valid throughout.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use pier_proto::store::{ChangeInvisibleRequest, DeliveryRef};
use pier_store::{StoreApi, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::faults::FaultLog;
use crate::status::Rejection;

/// Renew when a delivery has less than this left.
const RENEW_AHEAD_MS: i64 = 10_000;
const SCAN_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Entry {
    client_id: String,
    delivery: DeliveryRef,
    visible_at_ms: i64,
    until_ms: i64,
}

/// Renews the invisibility of push consumers' deliveries in the background
/// until they are acked, nacked or held too long (`auto_renew_max_ms`).
pub struct Renewer {
    /// Keyed by receipt handle, as acks and nacks name them.
    entries: DashMap<String, Entry>,
    invisible_ms: u64,
    max_ms: i64,
}

impl Renewer {
    /// A renewer giving deliveries `invisible_ms` at a time, for at most `max_ms`.
    pub fn new(invisible_ms: u64, max_ms: u64) -> Arc<Renewer> {
        Arc::new(Renewer {
            entries: DashMap::new(),
            invisible_ms,
            max_ms: max_ms as i64,
        })
    }

    /// The invisibility given to auto-renewed deliveries.
    pub fn invisible_ms(&self) -> u64 {
        self.invisible_ms
    }

    /// Renews the delivery `handle` names, received by `client_id`, until
    /// it is forgotten.
    pub fn track(
        &self,
        handle: String,
        client_id: &str,
        delivery: DeliveryRef,
        visible_at_ms: i64,
    ) {
        self.entries.insert(
            handle,
            Entry {
                client_id: client_id.to_owned(),
                delivery,
                visible_at_ms,
                until_ms: pier_store::now_ms() + self.max_ms,
            },
        );
    }

    /// Stops renewing a delivery (acked, nacked, dead-lettered).
    pub fn forget(&self, handle: &str) {
        self.entries.remove(handle);
    }

    /// Stops renewing every delivery of a client that went away.
    pub fn forget_client(&self, client_id: &str) {
        self.entries.retain(|_, e| e.client_id != client_id);
    }

    /// Deliveries being renewed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no delivery is being renewed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Runs the renewal loop until `stop` turns true.
    pub fn spawn(
        self: &Arc<Self>,
        store: Arc<dyn StoreApi>,
        mut stop: watch::Receiver<bool>,
        faults: Arc<FaultLog>,
    ) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SCAN_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => this.renew_due(&*store, &faults).await,
                    _ = stop.changed() => break,
                }
            }
        })
    }

    async fn renew_due(&self, store: &dyn StoreApi, faults: &FaultLog) {
        let now = pier_store::now_ms();
        let due: Vec<(String, Entry)> = self
            .entries
            .iter()
            .filter(|e| e.visible_at_ms - now < RENEW_AHEAD_MS)
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        for (handle, e) in due {
            if now >= e.until_ms {
                self.entries.remove(&handle);
                continue;
            }
            let res = store
                .change_invisible(ChangeInvisibleRequest {
                    delivery: Some(e.delivery.clone()),
                    invisible_ms: self.invisible_ms,
                    expected_visible_at_ms: e.visible_at_ms,
                    // The consumer knows nothing of it: its handle must
                    // still ack.
                    keep_handle: true,
                })
                .await;
            match res {
                Ok(r) => {
                    if let Some(mut cur) = self.entries.get_mut(&handle) {
                        cur.visible_at_ms = r.visible_at_ms;
                    }
                }
                // Acked, nacked or redelivered elsewhere: nothing to renew.
                Err(StoreError::StaleDelivery { .. })
                | Err(StoreError::TopicNotFound { .. })
                | Err(StoreError::GroupNotFound { .. }) => {
                    self.entries.remove(&handle);
                }
                // Will be retried at the next scan. During a store outage
                // every tracked receipt fails at every scan: the fault log
                // keeps that to a line now and then.
                Err(err) => {
                    let rej = Rejection::from(err);
                    let d = &e.delivery;
                    let resource = format!("group {} topic {}", d.group, d.topic);
                    match &rej.fault {
                        Some(f) => faults.report_fault("auto-renew", &resource, f),
                        None => {
                            tracing::debug!(%resource, error = %rej.message, "renewing a receipt failed; will retry")
                        }
                    }
                }
            }
        }
    }
}
