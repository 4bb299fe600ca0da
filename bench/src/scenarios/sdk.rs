//! `sdk`: Pier's own Rust SDK draining the same backlog as `pop`: a
//! PushConsumer with as many concurrent receives as `pop` has consumers,
//! acking each message as the SDK does (each message its own entry; the
//! acks that queue behind calls in flight share an `AckMessage` call). Its
//! figure is compared with the raw `pop` figure with one ack call per
//! message (goal: within 20%).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pier::{ClientConfig, ConsumeResult, FilterExpression, MessageView, PushConsumer};

use super::{body_1k, Ctx};
use crate::load::{fill, histogram, progress, Outcome};
use crate::pier::Pier;
use crate::record::Record;
use crate::scenarios::pop::{BATCH, CONSUMERS};
use crate::system::{rss_mib, System};

pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Record>> {
    let n: u64 = ctx.size(100_000, 2_000);
    let pier = Pier::standalone().await?;
    fill(&pier, n, 64, &body_1k(), "sdk fill").await?;
    let (topic, group) = pier.topic_and_group();
    let pb = progress("sdk push consumer drain", Some(n));
    let count = Arc::new(AtomicU64::new(0));
    let seen = count.clone();
    let bar = pb.clone();
    let config = ClientConfig::new(&pier.endpoint())?;
    let start = Instant::now();
    let consumer = PushConsumer::builder(config, group.as_str())
        .subscribe(topic.as_str(), FilterExpression::all())
        .receive_concurrency(CONSUMERS)
        .consumption_concurrency(64)
        .max_cache_messages(4096)
        .listener(move |_m: MessageView| {
            seen.fetch_add(1, Ordering::Relaxed);
            bar.inc(1);
            async { ConsumeResult::Success }
        })
        .start()
        .await?;
    let deadline = start + Duration::from_secs(if ctx.quick { 30 } else { 300 });
    while count.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    consumer.shutdown().await;
    pb.finish_and_clear();
    let msgs = count.load(Ordering::Relaxed);
    if msgs < n {
        eprintln!("  warning: the SDK consumed only {msgs} of {n}");
    }
    let o = Outcome {
        msgs,
        elapsed,
        hist: histogram(),
    };
    let config = format!(
        "{}; {n} backlog, PushConsumer, {CONSUMERS} receives of up to {BATCH}, each message acked (acks queued behind calls in flight share a call)",
        pier.config()
    );
    let r = Record::new("sdk", "pier", config, CONSUMERS, &o, rss_mib(&pier.pids()));
    r.announce();
    Ok(vec![r])
}
