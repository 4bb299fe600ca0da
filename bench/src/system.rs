//! The one code path every system is driven through: Pier, each peer, and
//! the machine's ceilings implement these two traits, and the scenarios only
//! ever talk to them.

use std::time::{Duration, Instant};

use async_trait::async_trait;

/// A running system under test (server processes started by the bench).
#[async_trait]
pub trait System: Send + Sync {
    /// Short name in the report: `pier`, `redis`, `rabbitmq`, `nats`, ...
    fn name(&self) -> String;
    /// The configuration that matters for the figure, e.g. `appendfsync=always`.
    fn config(&self) -> String;
    /// Server process ids, for RSS (empty when the system runs in-process).
    fn pids(&self) -> Vec<u32>;
    /// One client connection; the load driver opens one per task (systems
    /// that multiplex, like gRPC, may share a few connections among them).
    async fn client(&self) -> anyhow::Result<Box<dyn Client>>;
    /// Empties the queue between runs (the next run starts from nothing).
    async fn reset(&self) -> anyhow::Result<()>;
}

/// How a consumer acknowledges what it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// One ack per message (what the official clients do), the acks of one
    /// receive sent together rather than each waiting for the last one's
    /// reply: a push consumer acks from its consumption threads as each
    /// message is done, and RabbitMQ's and NATS' acks are one-way frames
    /// anyway. Request/reply systems (Pier and RocketMQ over gRPC, Redis)
    /// still wait for every reply before the next receive.
    EachMessage,
    /// One ack call for the whole batch received.
    Batched,
}

#[async_trait]
pub trait Client: Send {
    /// Sends one message and returns once the system says it is durable.
    async fn send(&mut self, body: &[u8]) -> anyhow::Result<()>;
    /// Receives up to `max` messages (waiting briefly when none are there),
    /// acknowledges them, and returns how many were consumed (0: none came).
    async fn pop(&mut self, max: usize, ack: Ack) -> anyhow::Result<usize>;
}

/// Resident set size of the given processes together, in MiB (from /proc).
pub fn rss_mib(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    let mut total = 0.0;
    for pid in pids {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb: f64 = s
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        total += kb / 1024.0;
    }
    Some(total)
}

/// The fields of `/proc/<pid>/stat` after the command name, which may hold
/// spaces and parentheses, so they start after the last ')': state (0),
/// parent pid (1), ..., utime (11), stime (12).
pub fn proc_stat(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        s.rsplit_once(')')?
            .1
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    )
}

/// The direct children of `pid`, from /proc.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    let parent = pid.to_string();
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| proc_stat(p).is_some_and(|f| f.get(1) == Some(&parent)))
        .collect()
}

/// CPU time (user + system) the given processes have used, in seconds.
pub fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut total = 0.0;
    for &pid in pids {
        let f = proc_stat(pid)?;
        let utime: f64 = f.get(11)?.parse().ok()?;
        let stime: f64 = f.get(12)?.parse().ok()?;
        total += (utime + stime) / ticks.max(1.0);
    }
    Some(total)
}

/// Waits until the processes are quiet (under 5% of a core over a second)
/// or `limit` has passed; answers how long it waited. After a large fill a
/// store is still flushing and compacting: that work belongs to the fill,
/// and measuring a drain over it would charge it to the drain.
pub async fn settle(pids: &[u32], limit: Duration) -> Duration {
    let start = Instant::now();
    let mut last = cpu_seconds(pids);
    while start.elapsed() < limit {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = cpu_seconds(pids);
        match (last, now) {
            (Some(a), Some(b)) if b - a < 0.05 => break,
            (_, None) => break,
            _ => last = now,
        }
    }
    start.elapsed()
}

/// Starts a system; the scenarios start one at a time, measure it, and drop
/// it (which stops its processes) before the next.
pub type Start = fn() -> futures::future::BoxFuture<'static, anyhow::Result<Box<dyn System>>>;

/// A system a scenario may measure.
pub struct Spec {
    pub label: &'static str,
    /// Whether the system consumes (the machine ceilings only write).
    pub pops: bool,
    /// Whether every acknowledged write is on disk (fsynced) before the
    /// reply: the systems a durable send latency can be compared with.
    pub synced: bool,
    pub start: Start,
}

impl Spec {
    /// A system that both sends and pops (every one but the ceilings).
    pub fn popping(label: &'static str, synced: bool, start: Start) -> Spec {
        Spec {
            label,
            pops: true,
            synced,
            start,
        }
    }
}

/// A started system behind the trait object the scenarios measure.
pub fn boxed<S: System + 'static>(s: anyhow::Result<S>) -> anyhow::Result<Box<dyn System>> {
    Ok(Box::new(s?))
}
