//! `pier-bench peers-check`: a quick check that every peer and ceiling
//! starts, round-trips messages in both ack modes, and stops without
//! leaving processes behind, with a rough send rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::PeerSpec;
use crate::system::{Ack, System};

const BODY: [u8; 1024] = [b'x'; 1024];
const MESSAGES: usize = 100;
const CLIENTS: usize = 16;
const RATE_FOR: Duration = Duration::from_secs(2);

pub async fn peers_check() -> anyhow::Result<()> {
    if !super::installed() {
        super::install()?;
    }
    let mut failed = 0;
    for spec in super::durable_peers().into_iter().chain(super::ceilings()) {
        match check(&spec).await {
            Ok(line) => println!("{:<46} OK  {line}", spec.label),
            Err(e) => {
                failed += 1;
                println!("{:<46} FAILED  {e:#}", spec.label);
            }
        }
    }
    anyhow::ensure!(failed == 0, "{failed} peer(s) failed");
    Ok(())
}

async fn check(spec: &PeerSpec) -> anyhow::Result<String> {
    let t = Instant::now();
    let system = (spec.start)().await?;
    let started = t.elapsed();
    let pids = system.pids();
    let result = exercise(spec, system.as_ref()).await;
    drop(system);
    // Every server process must be gone once the system is dropped.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut alive: Vec<u32> = pids.clone();
    while !alive.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        alive.retain(|&p| running(p));
    }
    anyhow::ensure!(alive.is_empty(), "processes left after drop: {alive:?}");
    let (rate, timing) = result?;
    let pops = timing.map_or(String::new(), |t| {
        format!(
            "; pop: {} ms when empty, {} of 5 in {} ms",
            t.empty.as_millis(),
            t.partial,
            t.partial_took.as_millis()
        )
    });
    Ok(format!(
        "started in {:.1} s, {rate:.0} sends/s ({CLIENTS} clients, {} s){pops}",
        started.as_secs_f64(),
        RATE_FOR.as_secs()
    ))
}

/// How pops behave when the queue is empty or holds less than a batch.
struct PopTiming {
    empty: Duration,
    partial: usize,
    partial_took: Duration,
}

/// Returns the send rate and, for systems that pop, their pop timing.
async fn exercise(
    spec: &PeerSpec,
    system: &dyn System,
) -> anyhow::Result<(f64, Option<PopTiming>)> {
    let mut timing = None;
    if spec.pops {
        for ack in [Ack::EachMessage, Ack::Batched] {
            round_trip(system, ack)
                .await
                .with_context(|| format!("round trip, {ack:?}"))?;
        }
        let mut c = system.client().await?;
        let t = Instant::now();
        anyhow::ensure!(
            c.pop(32, Ack::EachMessage).await? == 0,
            "queue not empty after reset"
        );
        let empty = t.elapsed();
        // A pop must return what is there without waiting for a full batch.
        for _ in 0..5 {
            c.send(&BODY).await?;
        }
        let t = Instant::now();
        let partial = c.pop(32, Ack::EachMessage).await?;
        let partial_took = t.elapsed();
        anyhow::ensure!(partial > 0, "partial batch: nothing came back");
        timing = Some(PopTiming {
            empty,
            partial,
            partial_took,
        });
        system.reset().await?;
    }
    Ok((send_rate(system).await?, timing))
}

/// Sends MESSAGES, pops them back with `ack`, and checks nothing is left.
async fn round_trip(system: &dyn System, ack: Ack) -> anyhow::Result<()> {
    let mut c = system.client().await?;
    for _ in 0..MESSAGES {
        c.send(&BODY).await?;
    }
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while got < MESSAGES {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {got} of {MESSAGES} came back"
        );
        got += c.pop(32, ack).await?;
    }
    anyhow::ensure!(got == MESSAGES, "{got} messages came back, sent {MESSAGES}");
    anyhow::ensure!(drained(c.as_mut(), ack).await?, "acked messages came back");
    system.reset().await
}

/// Whether nothing more arrives (acked messages are not redelivered).
async fn drained(c: &mut dyn crate::system::Client, ack: Ack) -> anyhow::Result<bool> {
    Ok(c.pop(32, ack).await? == 0)
}

async fn send_rate(system: &dyn System) -> anyhow::Result<f64> {
    let sent = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(system.client().await?);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut c in clients {
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < RATE_FOR {
                c.send(&BODY).await?;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await.context("load task")??;
    }
    Ok(sent.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

/// Whether `pid` exists and is not a zombie (a killed grandchild stays a
/// zombie until init reaps it, which in a container can take a while).
fn running(pid: u32) -> bool {
    crate::system::proc_stat(pid).is_some_and(|f| f.first().is_some_and(|state| state != "Z"))
}
