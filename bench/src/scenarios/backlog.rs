//! `backlog`: 1,000,000 messages waiting. Server RSS with the backlog, and
//! pop throughput from it compared with the same drain from a small backlog.
//! With the peers, RocketMQ's RSS with the same backlog too.

use std::time::{Duration, Instant};

use super::{body_1k, start, Ctx};
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
    let mut outcomes: Vec<Outcome> = sides.iter().map(|_| Outcome::empty()).collect();
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
    drop(sides);
    out.extend(rocketmq(ctx, big, &body).await?);
    Ok(out)
}

/// RocketMQ with the same big backlog: the RSS of its processes (name
/// server, and broker with proxy in one JVM) once it is filled, read as
/// Pier's is. ASYNC_FLUSH fills faster and the flush mode does not change
/// what stays in memory. The record's throughput is the fill's.
async fn rocketmq(ctx: &Ctx, big: u64, body: &[u8]) -> anyhow::Result<Vec<Record>> {
    let mut out = Vec::new();
    for spec in ctx.systems(false, true, false) {
        if spec.label != "rocketmq async_flush" {
            continue;
        }
        let Some(sys) = start(&spec).await? else {
            continue;
        };
        let t = Instant::now();
        fill(
            sys.as_ref(),
            big,
            64,
            body,
            &format!("backlog fill {big} ({})", spec.label),
        )
        .await?;
        let o = Outcome {
            msgs: big,
            elapsed: t.elapsed(),
            hist: histogram(),
        };
        let config = format!(
            "{}; {big} waiting, filled by 64 clients (throughput: the fill's); RSS with the backlog, name server + broker/proxy JVM, the commit log's mapped pages included",
            sys.config()
        );
        let r = Record::new("backlog", &sys.name(), config, 64, &o, rss_mib(&sys.pids()));
        r.announce();
        out.push(r);
    }
    Ok(out)
}
