//! Load drivers shared by every scenario and every system: closed loop
//! (each task sends as fast as its answers come back), open loop (sends at
//! fixed intended times, latency counted from the intended time so a stall
//! is not hidden by the sender waiting it out: no coordinated omission),
//! and draining a backlog.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;

use crate::system::{Ack, Client, System};

/// Latencies are recorded in microseconds.
// The bounds are constants the library accepts (1 <= low, high >= 2 * low,
// 3 significant digits), so this cannot fail at run time.
#[allow(clippy::expect_used)]
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

/// What one run measured.
pub struct Outcome {
    pub msgs: u64,
    pub elapsed: Duration,
    pub hist: Histogram<u64>,
}

impl Outcome {
    /// Nothing yet: the start of a sum over slices or turns.
    pub fn empty() -> Outcome {
        Outcome {
            msgs: 0,
            elapsed: Duration::ZERO,
            hist: histogram(),
        }
    }

    pub fn throughput(&self) -> f64 {
        self.msgs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal, as in CI).
pub fn progress(label: &str, len: Option<u64>) -> ProgressBar {
    let pb = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let template = if len.is_some() {
        "{prefix:>40} [{bar:30}] {pos}/{len} {per_sec} {elapsed}"
    } else {
        "{prefix:>40} {spinner} {pos} msgs {per_sec} {elapsed}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_prefix(label.to_owned());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// Closed loop: `concurrency` clients, each sending its next message when
/// the previous one is durable, for `duration`.
pub async fn closed_send(
    sys: &dyn System,
    concurrency: usize,
    duration: Duration,
    body: &[u8],
    label: &str,
) -> anyhow::Result<Outcome> {
    let body: Arc<[u8]> = body.into();
    let pace = Pace::Closed(duration);
    send_load(sys, concurrency, label, None, pace, move |_| body.clone()).await
}

/// Open loop: message `i` is due at `start + i / rate`; `workers` clients
/// take the next due message. Latency runs from the due time, so a slow
/// answer also delays (and is charged to) the messages queued behind it.
pub async fn open_send(
    sys: &dyn System,
    rate: f64,
    duration: Duration,
    workers: usize,
    body: impl Fn(Instant) -> Vec<u8> + Send + Sync + 'static,
    label: &str,
) -> anyhow::Result<Outcome> {
    let total = (rate * duration.as_secs_f64()) as u64;
    let pace = Pace::Open {
        rate,
        total,
        next: AtomicU64::new(0),
        due: Arc::new(Semaphore::new(0)),
    };
    send_load(sys, workers, label, Some(total), pace, body).await
}

/// When the load tasks of [`send_load`] send.
enum Pace {
    /// Each task sends as soon as its previous answer is back, until the
    /// duration has passed.
    Closed(Duration),
    /// Message `i` is due at `start + i / rate`, `total` messages in all;
    /// `next` is the next message a task may take, once [`Ticker`] has
    /// added a permit to `due` for it.
    Open {
        rate: f64,
        total: u64,
        next: AtomicU64,
        due: Arc<Semaphore>,
    },
}

impl Pace {
    /// Waits for the next send a task may make and gives the time its
    /// latency runs from, or `None` when the load is over.
    async fn next(&self, start: Instant) -> Option<Instant> {
        match self {
            Pace::Closed(duration) => (start.elapsed() < *duration).then(Instant::now),
            Pace::Open {
                rate,
                total,
                next,
                due,
            } => {
                // Every permit stands for a message already due, so the
                // message taken after it is due too (at most as many are
                // taken as permits were added).
                due.acquire().await.ok()?.forget();
                let i = next.fetch_add(1, Ordering::Relaxed);
                (i < *total).then(|| start + Duration::from_secs_f64(i as f64 / rate))
            }
        }
    }

    /// Starts releasing the open loop's messages as they fall due, for
    /// `tasks` load tasks; nothing for a closed loop.
    fn start(&self, start: Instant, tasks: usize) -> Option<Ticker> {
        match self {
            Pace::Closed(_) => None,
            Pace::Open {
                rate, total, due, ..
            } => Some(Ticker::start(start, *rate, *total, tasks, due.clone())),
        }
    }
}

/// Releases open-loop messages at their due times, from a thread of its
/// own. A task sleeping on tokio's timer (1 ms grain, rounded up) woke up
/// to a millisecond late, and that wait was charged to every system's
/// latency: most of a p50 of 1.2 ms over a 0.1 ms fsync. An OS thread
/// sleeping until the next due time is late by tens of microseconds.
struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    fn start(start: Instant, rate: f64, total: u64, tasks: usize, due: Arc<Semaphore>) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let mut released = 0u64;
            while released < total && !stopped.load(Ordering::Relaxed) {
                // Messages 0..=elapsed*rate are due by now.
                let now_due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(total);
                if now_due > released {
                    due.add_permits((now_due - released) as usize);
                    released = now_due;
                }
                let next = start + Duration::from_secs_f64(released as f64 / rate);
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            // One more permit per task, each of which then finds the load
            // over (also when it was stopped early: no task waits forever).
            due.add_permits(tasks);
        });
        Ticker { stop }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Sends from `clients` clients at `pace`, with a progress bar of `len`
/// messages (a spinner without); `body` makes the message sent at a time.
async fn send_load<B: AsRef<[u8]> + Send>(
    sys: &dyn System,
    clients: usize,
    label: &str,
    len: Option<u64>,
    pace: Pace,
    body: impl Fn(Instant) -> B + Send + Sync + 'static,
) -> anyhow::Result<Outcome> {
    let pb = progress(label, len);
    let clients = connect(sys, clients).await?;
    let (pace, body) = (Arc::new(pace), Arc::new(body));
    let start = Instant::now();
    let _ticker = pace.start(start, clients.len());
    let mut tasks = Vec::new();
    for mut c in clients {
        let (pace, body, mut tally) = (pace.clone(), body.clone(), Tally::new(&pb));
        tasks.push(tokio::spawn(async move {
            while let Some(t) = pace.next(start).await {
                c.send(body(t).as_ref()).await?;
                tally.record(t, 1);
            }
            anyhow::Ok(tally.done())
        }));
    }
    gather(tasks, start, pb).await
}

/// Fills the queue with `n` messages (closed loop, `concurrency` clients).
pub async fn fill(
    sys: &dyn System,
    n: u64,
    concurrency: usize,
    body: &[u8],
    label: &str,
) -> anyhow::Result<()> {
    let pb = progress(label, Some(n));
    let left = Arc::new(AtomicU64::new(n));
    let body: Arc<[u8]> = body.into();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let mut c = sys.client().await?;
        let (left, body, pb) = (left.clone(), body.clone(), pb.clone());
        tasks.push(tokio::spawn(async move {
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1))
                .is_ok()
            {
                c.send(&body).await?;
                pb.inc(1);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    pb.finish_and_clear();
    Ok(())
}

/// Drains `total` messages with `concurrency` consumers receiving up to
/// `batch` at a time. The histogram holds the time of one pop (receive and
/// its acks). Gives up when nothing arrives for `idle`. The elapsed time
/// ends at the last message consumed: consumers still in an empty long poll
/// when the backlog is gone (RocketMQ's proxy holds an empty receive at
/// least 5 s, Pier the 100 ms asked) would otherwise add their wait to it.
pub async fn drain(
    sys: &dyn System,
    concurrency: usize,
    total: u64,
    batch: usize,
    ack: Ack,
    label: &str,
) -> anyhow::Result<Outcome> {
    let pb = progress(label, Some(total));
    let clients = connect(sys, concurrency).await?;
    let done = Arc::new(AtomicU64::new(0));
    let idle = Duration::from_secs(5);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut c in clients {
        let (done, mut tally) = (done.clone(), Tally::new(&pb));
        tasks.push(tokio::spawn(async move {
            let mut last = Instant::now();
            let mut end = start;
            while done.load(Ordering::Relaxed) < total && last.elapsed() < idle {
                let t = Instant::now();
                let got = c.pop(batch, ack).await? as u64;
                if got > 0 {
                    tally.record(t, got);
                    done.fetch_add(got, Ordering::Relaxed);
                    last = Instant::now();
                    end = last;
                }
            }
            let (n, h) = tally.done();
            anyhow::Ok((n, h, end))
        }));
    }
    let mut hist = histogram();
    let mut msgs = 0;
    let mut end = start;
    for t in tasks {
        let (n, h, e) = t.await??;
        msgs += n;
        hist.add(h).ok();
        end = end.max(e);
    }
    pb.finish_and_clear();
    Ok(Outcome {
        msgs,
        elapsed: end - start,
        hist,
    })
}

/// Consumes until `stop` is set, counting messages (for mixed loads).
pub fn consume_until(
    mut c: Box<dyn crate::system::Client>,
    batch: usize,
    stop: Arc<AtomicBool>,
    consumed: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let got = c.pop(batch, Ack::Batched).await?;
            consumed.fetch_add(got as u64, Ordering::Relaxed);
        }
        Ok(())
    })
}

/// One client per load task.
async fn connect(sys: &dyn System, n: usize) -> anyhow::Result<Vec<Box<dyn Client>>> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(sys.client().await?);
    }
    Ok(clients)
}

/// What one load task counts: messages and the latency of their calls,
/// shown on the progress bar as they come.
struct Tally {
    n: u64,
    h: Histogram<u64>,
    pb: ProgressBar,
}

impl Tally {
    fn new(pb: &ProgressBar) -> Tally {
        Tally {
            n: 0,
            h: histogram(),
            pb: pb.clone(),
        }
    }

    /// Counts `msgs` messages of a call that started (or was due) at `since`.
    fn record(&mut self, since: Instant, msgs: u64) {
        self.h
            .record(since.elapsed().as_micros().max(1) as u64)
            .ok();
        self.n += msgs;
        self.pb.inc(msgs);
    }

    fn done(self) -> (u64, Histogram<u64>) {
        (self.n, self.h)
    }
}

/// One load task's count and latencies.
pub type Task = tokio::task::JoinHandle<anyhow::Result<(u64, Histogram<u64>)>>;

/// Adds up what the load tasks counted and measured, since `start`, and
/// clears `pb` once they are all done.
pub async fn gather(tasks: Vec<Task>, start: Instant, pb: ProgressBar) -> anyhow::Result<Outcome> {
    let mut hist = histogram();
    let mut msgs = 0;
    for t in tasks {
        let (n, h) = t.await??;
        msgs += n;
        hist.add(h).ok();
    }
    pb.finish_and_clear();
    Ok(Outcome {
        msgs,
        elapsed: start.elapsed(),
        hist,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_open_loop_hands_out_each_message_once_never_before_it_is_due() {
        let (rate, total, tasks) = (2_000.0, 200, 4);
        let pace = Arc::new(Pace::Open {
            rate,
            total,
            next: AtomicU64::new(0),
            due: Arc::new(Semaphore::new(0)),
        });
        let start = Instant::now();
        let _ticker = pace.start(start, tasks);
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let pace = pace.clone();
            handles.push(tokio::spawn(async move {
                let mut dues = Vec::new();
                while let Some(due) = pace.next(start).await {
                    assert!(Instant::now() >= due, "handed out before its due time");
                    dues.push(due);
                }
                dues
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.expect("load task"));
        }
        assert_eq!(all.len() as u64, total, "as many as the load has");
        all.sort();
        all.dedup();
        assert_eq!(all.len() as u64, total, "every message once, none twice");
        let last = start + Duration::from_secs_f64((total - 1) as f64 / rate);
        assert_eq!(all.last().copied(), Some(last));
    }
}
