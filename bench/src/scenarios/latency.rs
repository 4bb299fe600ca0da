//! `latency`: open loop at a fixed rate. Send latency runs from each
//! message's intended send time; end-to-end latency from that same time to
//! its delivery to a long-polling consumer.
//!
//! The goal is an absolute figure, but most of a durable send's latency is
//! the disk's fsync, which on a shared machine swings from run to run. So the
//! same open-loop send at the same rate is also measured, in the same run,
//! against every system that fsyncs before it answers: the durable peers and
//! a bare RocksDB synced write (the disk with nothing in front of it).
//! Pier's sends are measured twice: alone, as the others are (the figure
//! the goals compare), and during the end-to-end run, with consumers
//! receiving and acking beside them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{body_1k, start, Ctx};
use crate::load::{gather, histogram, open_send, Outcome, Task};
use crate::pier::Pier;
use crate::record::Record;
use crate::system::{rss_mib, Ack, System};

const CONSUMERS: usize = 4;
/// Senders in flight at most: far more than 2,000 msg/s needs at a few ms
/// each, so a slow reply never holds back the next intended send.
const WORKERS: usize = 256;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Record>> {
    let rate = ctx.size(2_000.0, 200.0);
    let duration = ctx.size(Duration::from_secs(60), Duration::from_secs(2));
    let mut out = Vec::new();
    // Pier in the modes `--only` leaves in (both when it names none).
    let specs = ctx.systems(true, false, true);
    for cluster in [false, true] {
        if cluster && ctx.quick {
            break;
        }
        let label = if cluster {
            "pier cluster"
        } else {
            "pier standalone"
        };
        if !specs.iter().any(|s| s.label.starts_with(label)) {
            continue;
        }
        let pier = if cluster {
            Pier::cluster(2, None).await?
        } else {
            Pier::standalone().await?
        };
        out.extend(measure(&pier, rate, duration).await?);
    }
    for spec in specs {
        if !spec.synced || spec.label.starts_with("pier") {
            continue;
        }
        let Some(sys) = start(&spec).await? else {
            continue;
        };
        let label = format!("latency {} at {rate}/s", spec.label);
        let body = body_1k();
        let o = open_send(
            sys.as_ref(),
            rate,
            duration,
            WORKERS,
            move |_| body.clone(),
            &label,
        )
        .await?;
        let r = Record::new(
            "latency",
            &sys.name(),
            format!("{}; send", sys.config()),
            WORKERS,
            &o,
            rss_mib(&sys.pids()),
        )
        .with_rate(rate);
        r.announce();
        out.push(r);
    }
    Ok(out)
}

async fn measure(pier: &Pier, rate: f64, duration: Duration) -> anyhow::Result<Vec<Record>> {
    // One of Pier's rows: `part` of this run, at `rate`.
    let row = |part: &str, clients: usize, o: &Outcome, rss: Option<f64>| {
        Record::new(
            "latency",
            "pier",
            format!("{}; {part}", pier.config()),
            clients,
            o,
            rss,
        )
        .with_rate(rate)
    };
    // Sends alone first, as every other system is measured: with consumers
    // draining at the same time, Pier's receives and acks write and sync
    // consumption state beside the sends (two more WAL syncs per message
    // here), which the other systems' send figures do not carry.
    let label = format!("latency {} at {rate}/s, sends alone", pier.config());
    let body = body_1k();
    let alone = open_send(pier, rate, duration, WORKERS, move |_| body.clone(), &label).await?;
    let alone = row("send", WORKERS, &alone, rss_mib(&pier.pids()));
    alone.announce();
    // A fresh topic and group, so the consumers below get none of those.
    pier.reset().await?;

    // Every body carries its intended send time, in microseconds since
    // `base`, so the consumer can charge the whole path to the message.
    let base = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut consumers: Vec<Task> = Vec::new();
    for _ in 0..CONSUMERS {
        let c = pier.pier_client();
        let stop = stop.clone();
        consumers.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let msgs = c.receive(32, Duration::from_secs(1)).await?;
                let now = base.elapsed().as_micros() as u64;
                for m in &msgs {
                    let sent = m
                        .body
                        .get(..8)
                        .and_then(|b| b.try_into().ok())
                        .map_or(now, u64::from_le_bytes);
                    h.record(now.saturating_sub(sent).max(1)).ok();
                }
                n += msgs.len() as u64;
                if !msgs.is_empty() {
                    c.ack(&msgs, Ack::Batched).await?;
                }
            }
            anyhow::Ok((n, h))
        }));
    }
    let label = format!("latency {} at {rate}/s", pier.config());
    let sent = open_send(
        pier,
        rate,
        duration,
        WORKERS,
        move |due| {
            let mut b = vec![b'x'; 1024];
            let at = due.saturating_duration_since(base).as_micros() as u64;
            b[..8].copy_from_slice(&at.to_le_bytes());
            b
        },
        &label,
    )
    .await?;
    // Let the consumers take what is still in flight, then stop them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let e2e = gather(consumers, base, indicatif::ProgressBar::hidden()).await?;
    if e2e.msgs < sent.msgs {
        eprintln!("  warning: {} of {} delivered", e2e.msgs, sent.msgs);
    }
    let rss = rss_mib(&pier.pids());
    let send = row("end-to-end run: its sends", WORKERS, &sent, rss);
    // Delivered over the time the sends took.
    let e2e = Outcome {
        elapsed: sent.elapsed,
        ..e2e
    };
    let e2e = row(
        "end to end (send to long-polling consumer)",
        CONSUMERS,
        &e2e,
        rss,
    );
    send.announce();
    e2e.announce();
    Ok(vec![alone, send, e2e])
}
