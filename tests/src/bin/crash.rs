//! The crash checker: does Pier keep every promise it made when it is
//! killed with SIGKILL, again and again?
//!
//! ```text
//! crash --mode standalone|cluster [--cycles N] [--kill-every-ms MIN..MAX]
//!       [--down-ms MIN..MAX] [--seed S] [--json OUT] [...]
//! ```
//!
//! It starts Pier itself (standalone: one `pier-proxy` with its embedded
//! store; cluster: one `pier-store` and two `pier-proxy`), creates a topic
//! and a consumer group through the admin API, and runs producers and
//! consumers over the raw `apache.rocketmq.v2` API. Every body carries a
//! unique id. A send counts as acked only when SendMessage answered OK; a
//! consumer records every delivery (id, `delivery_attempt`) and acks it, and
//! the id counts as acked-by-consumer only when AckMessage answered OK for
//! it. Meanwhile, in cycles, the checker kills the node (standalone), or the
//! store and one proxy in turn (cluster), waits, restarts it on the same
//! port and data directory, and waits until it answers again.
//!
//! After the cycles it stops producing, drains until every acked send was
//! delivered and nothing more came for an invisible duration plus 2 s (or a
//! bound passed), and reports: acked sends, consumed, lost, duplicates,
//! redelivered-after-ack, attempt counters that went back, and the time to
//! the first OK send after each restart. It exits with status 1 when
//! anything acked was lost or an acked message came back, 2 when it could
//! not run (a process did not start).
//!
//! The binaries it starts are the ones next to it (`cargo build --workspace
//! --bins`); `tests/scripts/crash.sh` runs both modes on a release build.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Parser;
use pier_proto::admin::{ConsumerGroup, CreateGroupRequest, CreateTopicRequest, Topic, TopicType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

// A binary's root resolves modules next to itself (src/bin/); this one's
// live in src/bin/crash/.
#[path = "crash/ledger.rs"]
mod ledger;
#[path = "crash/load.rs"]
mod load;
#[path = "crash/pier.rs"]
mod pier;

use ledger::{Ledger, Tally};
use load::{Load, LoadConfig};
use pier::{DataDir, Mode, Pier};

const TOPIC: &str = "crash-topic";
const GROUP: &str = "crash-group";
/// High enough that no message reaches the dead-letter queue during a run
/// (a dead-lettered message would look lost).
const MAX_ATTEMPTS: u32 = 1000;
/// How long a restarted process may take to answer again.
const READY_WITHIN: Duration = Duration::from_secs(30);

#[derive(Parser, Debug)]
#[command(
    name = "crash",
    about = "Kill Pier in cycles and check nothing acknowledged is undone"
)]
struct Args {
    #[arg(long, value_enum, default_value = "standalone")]
    mode: Mode,
    /// Kill-and-restart cycles.
    #[arg(long, default_value_t = 10)]
    cycles: usize,
    /// Time the load runs before each kill, drawn in this range (ms).
    #[arg(long, default_value = "2000..5000", value_parser = parse_range)]
    kill_every_ms: MsRange,
    /// Time between a kill and the restart, drawn in this range (ms).
    #[arg(long, default_value = "300..1000", value_parser = parse_range)]
    down_ms: MsRange,
    /// Seed of the schedule [default: from the clock; printed].
    #[arg(long)]
    seed: Option<u64>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Data directory (kept) [default: a temporary one, removed].
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, default_value_t = 4)]
    producers: usize,
    #[arg(long, default_value_t = 4)]
    consumers: usize,
    /// Most sends per second, all producers together.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    #[arg(long, default_value_t = 256)]
    body_bytes: usize,
    /// Messages asked for per ReceiveMessage.
    #[arg(long, default_value_t = 16)]
    batch: i32,
    /// Invisible duration of a receive (ms).
    #[arg(long, default_value_t = 3000)]
    invisible_ms: u64,
    /// Longest drain after the last cycle (ms).
    #[arg(long, default_value_t = 60_000)]
    drain_ms: u64,
    /// Queues of the topic.
    #[arg(long, default_value_t = 4)]
    queues: u32,
}

/// An inclusive range of milliseconds, `MIN..MAX` or `N` on the command line.
#[derive(Clone, Copy, Debug, Serialize)]
struct MsRange {
    min: u64,
    max: u64,
}

fn parse_range(s: &str) -> Result<MsRange, String> {
    let num = |v: &str| v.trim().parse::<u64>().map_err(|e| format!("{v:?}: {e}"));
    let (min, max) = match s.split_once("..") {
        Some((a, b)) => (num(a)?, num(b.trim_start_matches('='))?),
        None => (num(s)?, num(s)?),
    };
    if min > max {
        return Err(format!("{min} > {max}"));
    }
    Ok(MsRange { min, max })
}

impl MsRange {
    fn draw(&self, rng: &mut StdRng) -> Duration {
        Duration::from_millis(rng.gen_range(self.min..=self.max))
    }
}

/// One kill and restart.
#[derive(Debug, Serialize)]
struct Cycle {
    cycle: usize,
    killed: Vec<String>,
    /// When the kill happened, from the start of the load.
    at_ms: u64,
    /// Kill to restart.
    down_ms: u64,
    /// Restart to every endpoint answering.
    ready_ms: u64,
    /// Restart to the first SendMessage answered OK (none: no OK send
    /// before the next kill).
    first_ok_send_ms: Option<u64>,
    /// When the restart began (ns on the ledger's clock).
    #[serde(skip)]
    restart_ns: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    mode: Mode,
    seed: u64,
    cycles: usize,
    kill_every_ms: MsRange,
    down_ms: MsRange,
    producers: usize,
    consumers: usize,
    rate: u32,
    invisible_ms: u64,
    /// From the start of the load to the end of the drain.
    duration_ms: u64,
    drain_ms: u64,
    /// Every acked send was delivered and the server then stayed quiet.
    drained: bool,
    #[serde(flatten)]
    tally: Tally,
    first_ok_send_max_ms: Option<u64>,
    restarts: Vec<Cycle>,
    /// lost == 0 and redelivered_after_ack == 0.
    ok: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("crash: no runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // SIGTERM or Ctrl-C drops the run, and with it the Pier processes
    // (each is killed when dropped): a stopped checker leaves none behind.
    let interrupted = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            r = tokio::signal::ctrl_c() => r?,
        }
        anyhow::Ok(())
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = run(args) => r,
            r = interrupted => Err(match r {
                Ok(()) => anyhow::anyhow!("interrupted"),
                Err(e) => anyhow::anyhow!("cannot watch signals: {e}"),
            }),
        }
    });
    match outcome {
        Ok(report) if report.ok => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("crash: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<Report> {
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let mut rng = StdRng::seed_from_u64(seed);
    eprintln!(
        "crash: mode {:?}, {} cycles, seed {seed}",
        args.mode, args.cycles
    );
    let data = match &args.data {
        Some(p) => DataDir::Given(p.clone()),
        None => DataDir::Temp(tempfile::tempdir().context("temp dir")?),
    };
    let mut pier = Pier::start(args.mode, data).await?;
    let clients = pier::clients(&pier.client_endpoints()).await;
    let Some(first) = clients.first() else {
        bail!("no client endpoint");
    };
    create_resources(first, args.queues).await?;
    pier.wait_ready(TOPIC, READY_WITHIN).await?;

    let ledger = Arc::new(Ledger::new());
    let producers = args.producers.max(1);
    let cfg = LoadConfig {
        topic: TOPIC.into(),
        group: GROUP.into(),
        tag: format!("crash{seed}"),
        body_bytes: args.body_bytes,
        send_gap: Duration::from_secs_f64(producers as f64 / f64::from(args.rate.max(1))),
        batch: args.batch,
        invisible_ms: args.invisible_ms,
        poll_ms: 1000,
    };
    let mut load = Load::start(
        cfg,
        clients,
        Arc::clone(&ledger),
        producers,
        args.consumers.max(1),
    );

    let mut restarts = Vec::new();
    let mut failure = None;
    for cycle in 0..args.cycles {
        tokio::time::sleep(args.kill_every_ms.draw(&mut rng)).await;
        match kill_and_restart(&mut pier, &ledger, cycle, args.down_ms.draw(&mut rng)).await {
            Ok(c) => {
                eprintln!(
                    "crash: cycle {}/{}: killed {} at {} ms, down {} ms, answering {} ms after restart",
                    cycle + 1,
                    args.cycles,
                    c.killed.join("+"),
                    c.at_ms,
                    c.down_ms,
                    c.ready_ms
                );
                restarts.push(c);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if failure.is_none() {
        // Load after the last restart too.
        tokio::time::sleep(args.kill_every_ms.draw(&mut rng)).await;
    }
    for c in &mut restarts {
        c.first_ok_send_ms = first_ok(&ledger, c);
    }

    load.stop_producers().await;
    let drain_start = Instant::now();
    let drained = if failure.is_none() {
        drain(
            &ledger,
            args.invisible_ms,
            Duration::from_millis(args.drain_ms),
        )
        .await
    } else {
        false
    };
    let drain_ms = drain_start.elapsed().as_millis() as u64;
    load.stop_consumers().await;
    pier.stop().await;
    if let Some(e) = failure {
        return Err(e);
    }

    let tally = ledger.tally();
    let ok = tally.lost == 0 && tally.redelivered_after_ack == 0;
    let report = Report {
        mode: args.mode,
        seed,
        cycles: args.cycles,
        kill_every_ms: args.kill_every_ms,
        down_ms: args.down_ms,
        producers,
        consumers: args.consumers.max(1),
        rate: args.rate,
        invisible_ms: args.invisible_ms,
        duration_ms: ledger.now() / 1_000_000,
        drain_ms,
        drained,
        first_ok_send_max_ms: restarts.iter().filter_map(|c| c.first_ok_send_ms).max(),
        tally,
        restarts,
        ok,
    };
    print_summary(&report);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).context("encode report")?;
        std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(report)
}

async fn create_resources(c: &pier_tests::Raw, queues: u32) -> anyhow::Result<()> {
    c.admin()
        .create_topic(CreateTopicRequest {
            topic: Some(Topic {
                name: TOPIC.into(),
                r#type: TopicType::Normal as i32,
                queues,
                created_at_ms: 0,
            }),
        })
        .await
        .context("create topic")?;
    c.admin()
        .create_group(CreateGroupRequest {
            group: Some(ConsumerGroup {
                name: GROUP.into(),
                max_attempts: MAX_ATTEMPTS,
                ..Default::default()
            }),
        })
        .await
        .context("create group")?;
    Ok(())
}

async fn kill_and_restart(
    pier: &mut Pier,
    ledger: &Ledger,
    cycle: usize,
    down: Duration,
) -> anyhow::Result<Cycle> {
    let at = ledger.now();
    let killed = pier.kill(cycle).await;
    tokio::time::sleep(down).await;
    let restart = ledger.now();
    ledger.await_first_ok(cycle, restart);
    pier.restart(cycle).await?;
    pier.wait_ready(TOPIC, READY_WITHIN).await?;
    let ready = ledger.now();
    Ok(Cycle {
        cycle,
        killed,
        at_ms: at / 1_000_000,
        down_ms: (restart - at) / 1_000_000,
        ready_ms: (ready - restart) / 1_000_000,
        first_ok_send_ms: None,
        restart_ns: restart,
    })
}

/// Restart of `c` to its first OK send, if one came.
fn first_ok(ledger: &Ledger, c: &Cycle) -> Option<u64> {
    ledger
        .first_ok(c.cycle)
        .map(|t| t.saturating_sub(c.restart_ns) / 1_000_000)
}

/// Waits until every acked send was delivered and no delivery came for an
/// invisible duration plus 2 s (long enough for a message whose ack the
/// server forgot to come back), or `bound` passes. Returns whether it
/// drained.
async fn drain(ledger: &Ledger, invisible_ms: u64, bound: Duration) -> bool {
    let quiet = (invisible_ms + 2000) * 1_000_000;
    let start = Instant::now();
    let quiet_from = ledger.now();
    loop {
        let (undelivered, last) = ledger.undelivered();
        let since = ledger.now().saturating_sub(last.max(quiet_from));
        if undelivered == 0 && since >= quiet {
            return true;
        }
        if start.elapsed() > bound {
            eprintln!("crash: drain bound reached, {undelivered} acked sends undelivered");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn print_summary(r: &Report) {
    let t = &r.tally;
    println!(
        "crash {:?}: {} cycles in {:.1} s (seed {}), drained: {} ({} ms)",
        r.mode,
        r.restarts.len(),
        r.duration_ms as f64 / 1000.0,
        r.seed,
        r.drained,
        r.drain_ms
    );
    println!(
        "  sent acked {}, send failed {}, consumed {}, LOST {}, duplicates {}, REDELIVERED AFTER ACK {}, attempts reset {}",
        t.sent_acked,
        t.send_failed,
        t.consumed,
        t.lost,
        t.duplicates,
        t.redelivered_after_ack,
        t.attempts_reset
    );
    println!(
        "  deliveries {}, consumer acked {}, ack failed {}, receive failed {}, delivered after a failed send {}, foreign {}",
        t.deliveries,
        t.consumer_acked,
        t.ack_failed,
        t.receive_failed,
        t.delivered_unconfirmed_send,
        t.foreign_deliveries
    );
    let firsts: Vec<String> = r
        .restarts
        .iter()
        .map(|c| c.first_ok_send_ms.map_or("-".into(), |v| v.to_string()))
        .collect();
    println!("  first OK send after restart (ms): {}", firsts.join(" "));
    if !t.lost_sample.is_empty() {
        println!("  lost ids (first): {:?}", t.lost_sample);
    }
    for h in &t.redelivered_sample {
        println!("  redelivered after ack: {h}");
    }
    println!("  verdict: {}", if r.ok { "PASS" } else { "FAIL" });
}
