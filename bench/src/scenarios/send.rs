//! `send`: durable send throughput and latency, closed loop, at several
//! concurrencies, for Pier and every peer's durable mode plus the machine's
//! ceilings.

use std::time::Duration;

use super::{body_1k, each_step, Ctx};
use crate::load::closed_send;
use crate::record::Record;
use crate::system::rss_mib;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Record>> {
    let concurrencies = match ctx.concurrency.as_slice() {
        [] => ctx.size(vec![1, 16, 64, 256], vec![1, 16]),
        asked => asked.to_vec(),
    };
    let duration = ctx.size(Duration::from_secs(10), Duration::from_secs(1));
    let body = body_1k();
    let systems = ctx.systems(true, false, true);
    each_step(systems, &concurrencies, async |spec, sys, c| {
        let label = format!("send {} c={c}", spec.label);
        let o = closed_send(sys, c, duration, &body, &label).await?;
        let rss = rss_mib(&sys.pids());
        Ok((
            Record::new("send", &sys.name(), sys.config(), c, &o, rss),
            true,
        ))
    })
    .await
}
