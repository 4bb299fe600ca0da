//! `scale`: one proxy vs two proxies over one store, same total load, with
//! each proxy limited to a fixed CPU share (see `cpu.rs`) so the proxies are
//! the bottleneck, not the store or the load generator on this small machine.

use std::time::Duration;

use super::{body_1k, Ctx};
use crate::load::closed_send;
use crate::pier::Pier;
use crate::record::Record;
use crate::system::{rss_mib, System};

/// Each proxy's CPU: a quarter core. One proxy then tops out well below
/// what the store and the load generator can do with the rest.
const PROXY_CPU: f64 = 0.25;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Record>> {
    let duration = ctx.size(Duration::from_secs(10), Duration::from_secs(1));
    let concurrency = ctx.size(128, 16);
    let body = body_1k();
    let mut out = Vec::new();
    for proxies in [1, 2] {
        let pier = match Pier::cluster(proxies, Some(PROXY_CPU)).await {
            Ok(p) => p,
            // Without a cgroup the scenario still runs (the smoke run must
            // work anywhere), but its ratio means little: the config says so.
            Err(e) => {
                eprintln!("  no CPU limit for the proxies ({e:#}); running unlimited");
                Pier::cluster(proxies, None).await?
            }
        };
        let label = format!("scale {proxies} proxies");
        let o = closed_send(&pier, concurrency, duration, &body, &label).await?;
        let r = Record::new(
            "scale",
            "pier",
            pier.config(),
            concurrency,
            &o,
            rss_mib(&pier.pids()),
        );
        r.announce();
        out.push(r);
    }
    Ok(out)
}
