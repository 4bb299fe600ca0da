//! `backlog`: 1,000,000 messages waiting. Server RSS with the backlog, and
//! pop throughput from it compared with the same drain from a small backlog.

use std::time::Duration;

use super::{body_1k, Ctx};
use crate::load::{drain, fill, histogram, Outcome};
use crate::pier::Pier;
use crate::record::Record;
use crate::scenarios::pop::{BATCH, CONSUMERS};
use crate::system::{rss_mib, settle, Ack, System};

/// The drains take turns in this many parts.
const TURNS: u64 = 5;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Record>> {
    let big: u64 = ctx.size(1_000_000, 5_000);
    let drained: u64 = ctx.size(100_000, 1_000);
    let body = body_1k();
    // Both backlogs are built first (one Pier each), then drained in turns,
    // a part of each at a time: over the minutes a run takes, this machine's
    // fsync latency and CPU steal drift by more than the difference being
    // measured, and taking turns puts that drift on both sides alike.
    // Concurrent consumers take a little more than each part asks (up to a
    // batch each): the small backlog has that much extra, so its last part
    // does not run dry and wait out the drain's idle timeout.
    let small = drained + TURNS * (CONSUMERS * BATCH) as u64;
    let mut sides = Vec::new();
    for waiting in [small, big] {
        let pier = Pier::standalone().await?;
        fill(
            &pier,
            waiting,
            64,
            &body,
            &format!("backlog fill {waiting}"),
        )
        .await?;
        let rss = rss_mib(&pier.pids());
        sides.push((waiting, pier, rss));
    }
    // A store still flushing or compacting after its fill would charge that
    // work to the drain; both wait until they are idle.
    let limit = ctx.size(Duration::from_secs(180), Duration::from_secs(5));
    let mut settled = Duration::ZERO;
    for (_, pier, _) in &sides {
        settled = settled.max(settle(&pier.pids(), limit).await);
    }
    let mut outcomes: Vec<Outcome> = sides
        .iter()
        .map(|_| Outcome {
            msgs: 0,
            elapsed: Duration::ZERO,
            hist: histogram(),
        })
        .collect();
    for turn in 1..=TURNS {
        for ((waiting, pier, _), total) in sides.iter().zip(outcomes.iter_mut()) {
            let label = format!("backlog drain of {waiting}, part {turn}/{TURNS}");
            let o = drain(
                pier,
                CONSUMERS,
                drained / TURNS,
                BATCH,
                Ack::EachMessage,
                &label,
            )
            .await?;
            total.msgs += o.msgs;
            total.elapsed += o.elapsed;
            total.hist.add(o.hist).ok();
        }
    }
    let mut out = Vec::new();
    for ((waiting, pier, rss), o) in sides.iter().zip(outcomes) {
        let config = format!(
            "{}; {waiting} waiting, drain {drained} (batch {BATCH}, ack per message) in {TURNS} parts taking turns with the other backlog, once both stores were idle ({:.0} s after the fills); RSS with the backlog",
            pier.config(),
            settled.as_secs_f64()
        );
        let r = Record::new("backlog", "pier", config, CONSUMERS, &o, *rss);
        r.announce();
        out.push(r);
    }
    Ok(out)
}
