//! `mixed`: producers (open loop) and consumers at once, stepping the rate
//! up until the backlog stops staying flat. The highest flat rate is the
//! figure; each step is recorded.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{each_step, Ctx};
use crate::load::{consume_until, open_send};
use crate::record::Record;
use crate::system::rss_mib;

const CONSUMERS: usize = 16;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Record>> {
    let rates = ctx.size(
        vec![
            2_000.0, 5_000.0, 10_000.0, 15_000.0, 20_000.0, 25_000.0, 30_000.0, 40_000.0,
        ],
        vec![200.0],
    );
    let duration = ctx.size(Duration::from_secs(8), Duration::from_secs(1));
    let systems = ctx.systems(false, true, false);
    each_step(systems, &rates, async |spec, sys, rate| {
        let stop = Arc::new(AtomicBool::new(false));
        let consumed = Arc::new(AtomicU64::new(0));
        let mut consumers = Vec::new();
        for _ in 0..CONSUMERS {
            let c = sys.client().await?;
            consumers.push(consume_until(c, 32, stop.clone(), consumed.clone()));
        }
        let label = format!("mixed {} at {rate}/s", spec.label);
        let sent = open_send(sys, rate, duration, 256, |_| vec![b'x'; 1024], &label).await?;
        let taken = consumed.load(Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        for c in consumers {
            c.await??;
        }
        // Flat: the producers kept the rate, and what is left waiting at
        // the end is under half a second's worth.
        // (Open loop: the run lasts `duration` plus the last answer's
        // latency when the system keeps up, and longer when it doesn't.)
        let slack = Duration::from_millis(250).max(duration / 20);
        let kept_rate = sent.elapsed <= duration + slack;
        let backlog = sent.msgs.saturating_sub(taken);
        let kept_backlog = (backlog as f64) < rate * 0.5;
        let flat = kept_rate && kept_backlog;
        let verdict = match (kept_rate, kept_backlog) {
            (true, true) => "flat",
            (false, _) => "producers fell behind the rate",
            (true, false) => "backlog grew",
        };
        let config = format!(
            "{}; {CONSUMERS} consumers, backlog at end {backlog} ({verdict})",
            sys.config()
        );
        let rss = rss_mib(&sys.pids());
        let r = Record::new("mixed", &sys.name(), config, 256, &sent, rss).with_rate(rate);
        // A rate the system did not keep up with ends its steps.
        Ok((r, flat))
    })
    .await
}
