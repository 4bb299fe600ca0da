//! `send`: durable send throughput and latency, closed loop, at several
//! concurrencies, for Pier and every peer's durable mode plus the machine's
//! ceilings.

use std::time::Duration;

use super::{body_1k, start, Ctx};
use crate::load::closed_send;
use crate::record::Record;
use crate::system::rss_mib;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Record>> {
    let concurrencies = ctx.size(vec![1, 16, 64, 256], vec![1, 16]);
    let duration = ctx.size(Duration::from_secs(10), Duration::from_secs(1));
    let body = body_1k();
    let mut out = Vec::new();
    for spec in ctx.systems(true, false, true) {
        let Some(sys) = start(&spec).await? else {
            continue;
        };
        for &c in &concurrencies {
            sys.reset().await?;
            let label = format!("send {} c={c}", spec.label);
            let o = closed_send(sys.as_ref(), c, duration, &body, &label).await?;
            let r = Record::new(
                "send",
                &sys.name(),
                sys.config(),
                c,
                &o,
                rss_mib(&sys.pids()),
            );
            r.announce();
            out.push(r);
        }
    }
    Ok(out)
}
