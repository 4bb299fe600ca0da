//! `backlog`: 1,000,000 messages waiting. Server RSS with the backlog, and
//! pop throughput from it compared with the same drain from a small backlog.

use std::time::Duration;

use super::{body_1k, Ctx};
use crate::load::{drain, fill};
use crate::pier::Pier;
use crate::record::Record;
use crate::scenarios::pop::{BATCH, CONSUMERS};
use crate::system::{rss_mib, settle, Ack, System};

pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Record>> {
    let big: u64 = ctx.size(1_000_000, 5_000);
    let drained: u64 = ctx.size(100_000, 1_000);
    let body = body_1k();
    let mut out = Vec::new();
    for waiting in [drained, big] {
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
        // Both sizes wait alike, so the ratio compares the backlogs, not
        // how much of the fill's compaction overlaps the drain.
        let settled = settle(
            &pier.pids(),
            ctx.size(Duration::from_secs(180), Duration::from_secs(5)),
        )
        .await;
        let label = format!("backlog drain {drained} of {waiting}");
        let o = drain(&pier, CONSUMERS, drained, BATCH, Ack::EachMessage, &label).await?;
        let config = format!(
            "{}; {waiting} waiting, drain {drained} (batch {BATCH}, ack per message) once the store was idle ({:.0} s after the fill); RSS with the backlog",
            pier.config(),
            settled.as_secs_f64()
        );
        let r = Record::new("backlog", "pier", config, CONSUMERS, &o, rss);
        r.announce();
        out.push(r);
    }
    Ok(out)
}
