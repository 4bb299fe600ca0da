//! `pop`: drain a backlog with receive (batch 32) and acks, one ack call per
//! message (as the official clients do; a receive's acks are sent together,
//! see `Ack::EachMessage`) and one per batch.

use super::{body_1k, start, Ctx};
use crate::load::{drain, fill};
use crate::record::Record;
use crate::system::{rss_mib, Ack};

pub const BATCH: usize = 32;
pub const CONSUMERS: usize = 16;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Record>> {
    let n: u64 = ctx.size(100_000, 2_000);
    let body = body_1k();
    let mut out = Vec::new();
    for spec in ctx.systems(false, true, false) {
        let Some(sys) = start(&spec).await? else {
            continue;
        };
        for ack in [Ack::EachMessage, Ack::Batched] {
            sys.reset().await?;
            fill(sys.as_ref(), n, 64, &body, &format!("fill {}", spec.label)).await?;
            let label = format!("pop {} {ack:?}", spec.label);
            let o = drain(sys.as_ref(), CONSUMERS, n, BATCH, ack, &label).await?;
            if o.msgs < n {
                eprintln!("  warning: {} drained only {} of {n}", spec.label, o.msgs);
            }
            let acks = match ack {
                Ack::EachMessage => "ack per message",
                Ack::Batched => "one ack per batch",
            };
            let config = format!("{}; {n} backlog, batch {BATCH}, {acks}", sys.config());
            let r = Record::new(
                "pop",
                &sys.name(),
                config,
                CONSUMERS,
                &o,
                rss_mib(&sys.pids()),
            );
            r.announce();
            out.push(r);
        }
    }
    Ok(out)
}
