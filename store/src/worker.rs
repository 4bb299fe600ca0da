//! A background thread that works through what a channel brings it, shared
//! by the commit thread and the state writer: both stop the same way, by
//! dropping the last sender (the thread finishes what is queued, then its
//! `recv` fails) and joining it.

use std::thread::JoinHandle;

use parking_lot::Mutex;

use crate::error::{Result, StoreError};

/// The thread and the sending side of its channel (`S`: a `Sender` or a
/// `SyncSender`).
pub(crate) struct Worker<S> {
    tx: Mutex<Option<S>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<S: Clone> Worker<S> {
    /// Starts `run` on a thread called `name`; `tx` feeds it.
    pub fn spawn(name: &str, tx: S, run: impl FnOnce() + Send + 'static) -> Worker<S> {
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(run)
            .unwrap_or_else(|e| panic!("spawn the {name} thread: {e}"));
        Worker {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        }
    }

    /// A sender, or `ShuttingDown` once [`Worker::stop`] ran.
    pub fn sender(&self) -> Result<S> {
        self.tx.lock().clone().ok_or(StoreError::ShuttingDown)
    }
}

impl<S> Worker<S> {
    /// Lets the thread finish what is queued, then waits for it. Senders
    /// handed out earlier must be gone by then, or this waits for them.
    pub fn stop(&self) {
        self.tx.lock().take();
        let thread = self.thread.lock().take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl<S> Drop for Worker<S> {
    fn drop(&mut self) {
        self.stop();
    }
}
