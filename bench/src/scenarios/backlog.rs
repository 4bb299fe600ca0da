//! `backlog`: 1,000,000 messages waiting. Server RSS with the backlog, and
//! pop throughput from it compared with the same drain from a small backlog.

use super::{body_1k, Ctx};
use crate::load::{drain, fill};
use crate::pier::Pier;
use crate::record::Record;
use crate::scenarios::pop::{BATCH, CONSUMERS};
use crate::system::{rss_mib, Ack, System};

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
        let label = format!("backlog drain {drained} of {waiting}");
        let o = drain(&pier, CONSUMERS, drained, BATCH, Ack::EachMessage, &label).await?;
        let config = format!(
            "{}; {waiting} waiting, drain {drained} (batch {BATCH}, ack per message); RSS with the backlog",
            pier.config()
        );
        let r = Record::new("backlog", "pier", config, CONSUMERS, &o, rss);
        r.announce();
        out.push(r);
    }
    Ok(out)
}
