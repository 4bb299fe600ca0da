//! The one way the store runs a background thread. A [`Worker`] owns the
//! thread and the sending side of the channel that feeds it; it stops the
//! same way for every thread: dropping that sender (the thread finishes
//! what is queued, then its `recv` fails and it returns) and joining it.
//! It stops on [`Worker::stop`] or, failing that, on drop, so no thread
//! outlives its owner.
//!
//! The threads: `pier-commit` (group commit), `pier-state` (consumption
//! state), `pier-timer` (delay timers), `pier-txn-check` (transaction
//! checks) and `pier-retention` (expiry).

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Result, StoreError};

/// A background thread and the sending side of its channel (`S`: a
/// `Sender` or a `SyncSender`).
pub(crate) struct Worker<S> {
    tx: Mutex<Option<S>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<S: Clone> Worker<S> {
    /// Starts `run` on a thread called `name`; `tx` feeds it.
    pub(crate) fn spawn(
        name: &'static str,
        tx: S,
        run: impl FnOnce() + Send + 'static,
    ) -> Result<Worker<S>> {
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(run)
            .map_err(|e| StoreError::storage(format!("starting the {name} thread"), e))?;
        Ok(Worker {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Returns a sender, or `ShuttingDown` once [`Worker::stop`] ran.
    pub(crate) fn sender(&self) -> Result<S> {
        self.tx.lock().clone().ok_or(StoreError::ShuttingDown)
    }
}

/// A worker that runs a task periodically and takes no other input.
pub(crate) type Periodic = Worker<mpsc::Sender<()>>;

/// Starts a thread called `name` that calls `tick` every `period` until
/// stopped.
pub(crate) fn every(
    name: &'static str,
    period: Duration,
    mut tick: impl FnMut() + Send + 'static,
) -> Result<Periodic> {
    let (tx, rx) = mpsc::channel::<()>();
    Worker::spawn(name, tx, move || {
        // Nothing is ever sent: the channel only ends when the worker stops.
        while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(period) {
            tick();
        }
    })
}

/// Returns `first` and whatever else is queued already, up to `limit` as
/// counted by `size`: what a thread that batches its work takes at once.
pub(crate) fn gather<T>(
    rx: &mpsc::Receiver<T>,
    first: T,
    limit: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<T> {
    let mut total = size(&first);
    let mut items = vec![first];
    while total < limit {
        match rx.try_recv() {
            Ok(item) => {
                total += size(&item);
                items.push(item);
            }
            Err(_) => break,
        }
    }
    items
}

impl<S> Worker<S> {
    /// Lets the thread finish what is queued, then waits for it. Senders
    /// handed out earlier must be gone by then, or this waits for them.
    pub(crate) fn stop(&self) {
        self.tx.lock().take();
        let thread = self.thread.lock().take();
        if let Some(t) = thread {
            if t.join().is_err() {
                tracing::error!("a store thread panicked");
            }
        }
    }
}

impl<S> Drop for Worker<S> {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_channel_worker_finishes_its_queue_before_stopping() {
        let (tx, rx) = mpsc::channel::<u32>();
        let sum = Arc::new(AtomicUsize::new(0));
        let s = sum.clone();
        let w = Worker::spawn("test-worker", tx, move || {
            while let Ok(n) = rx.recv() {
                s.fetch_add(n as usize, Ordering::SeqCst);
            }
        })
        .unwrap();
        let tx = w.sender().unwrap();
        for n in 1..=10 {
            tx.send(n).unwrap();
        }
        drop(tx);
        w.stop();
        assert_eq!(sum.load(Ordering::SeqCst), 55);
        assert!(matches!(w.sender(), Err(StoreError::ShuttingDown)));
    }

    #[test]
    fn a_periodic_worker_ticks_and_stops_on_drop() {
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = ticks.clone();
        let w = every("test-ticker", Duration::from_millis(5), move || {
            t.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while ticks.load(Ordering::SeqCst) < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(w);
        let after = ticks.load(Ordering::SeqCst);
        assert!(after >= 3);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(ticks.load(Ordering::SeqCst), after, "no tick after drop");
    }
}
