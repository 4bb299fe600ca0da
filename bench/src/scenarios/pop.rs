//! `pop`: drain a backlog with receive (batch 32) and acks, one ack call per
//! message (as the official clients do; a receive's acks are sent together,
//! see `Ack::EachMessage`) and one per batch.

use super::{body_1k, each_step, Ctx};
use crate::load::{drain, fill};
use crate::record::Record;
use crate::system::{rss_mib, Ack};

pub const BATCH: usize = 32;
pub const CONSUMERS: usize = 16;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Record>> {
    let n: u64 = ctx.size(100_000, 2_000);
    let body = body_1k();
    let systems = ctx.systems(false, true, false);
    let modes = [Ack::EachMessage, Ack::Batched];
    each_step(systems, &modes, async |spec, sys, ack| {
        fill(sys, n, 64, &body, &format!("fill {}", spec.label)).await?;
        let label = format!("pop {} {ack:?}", spec.label);
        let o = drain(sys, CONSUMERS, n, BATCH, ack, &label).await?;
        if o.msgs < n {
            eprintln!("  warning: {} drained only {} of {n}", spec.label, o.msgs);
        }
        let acks = match ack {
            Ack::EachMessage => "ack per message",
            Ack::Batched => "one ack per batch",
        };
        let config = format!("{}; {n} backlog, batch {BATCH}, {acks}", sys.config());
        let rss = rss_mib(&sys.pids());
        Ok((
            Record::new("pop", &sys.name(), config, CONSUMERS, &o, rss),
            true,
        ))
    })
    .await
}
