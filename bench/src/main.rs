//! `pier-bench`: measures Pier over the client protocol, side by side with
//! the durable peers a user would pick instead (Redis Streams, RabbitMQ
//! quorum queues, NATS JetStream, Apache RocketMQ 5 itself) and with this
//! machine's ceilings (a synced RocksDB write, a gRPC echo), all in the
//! same run.
//!
//! `pier-bench all` runs every scenario; each also runs on its own. Every
//! system is started by the bench on 127.0.0.1 with a temporary data
//! directory and stopped before the next one starts. Results: records in
//! `bench/results/latest.json`, a report in `latest.md`, SVG charts beside.

// The load generator shares the machine with the system it measures: glibc
// malloc was a fifth of its CPU in send profiles, CPU the servers then lacked.
// The same allocator as Pier's binaries (the echo ceiling runs in this
// binary too, so it gets it as well).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod ceiling;
mod cpu;
mod load;
mod peers;
mod pier;
mod record;
mod report;
mod scenarios;
mod system;
mod transport;
mod v2;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use scenarios::Ctx;

#[derive(Parser)]
#[command(
    name = "pier-bench",
    about = "Pier measured against durable peers, in one run"
)]
struct Args {
    #[command(subcommand)]
    scenario: Scenario,
    /// Small sizes and Pier only (seconds, not minutes): checks the tool
    /// works. Its figures mean nothing.
    #[arg(long, global = true)]
    quick: bool,
    /// Pier only: do not install or start the peers.
    #[arg(long, global = true)]
    no_peers: bool,
    /// Only the systems whose label contains one of these (comma
    /// separated), e.g. `--only "pier standalone,tonic-echo,redis appendfsync=always"`.
    #[arg(long, global = true, value_delimiter = ',')]
    only: Vec<String>,
    /// `send` and `paired` only: these concurrencies instead of their
    /// defaults (1, 16, 64 and 256; 16 and 256), comma separated.
    #[arg(long, global = true, value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Where the JSON records go (the report and charts go beside it).
    #[arg(long, global = true, default_value = "bench/results/latest.json")]
    out: PathBuf,
}

#[derive(Subcommand, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// Every scenario below, peers included.
    All,
    /// Durable send, closed loop, concurrency 1/16/64/256.
    Send,
    /// Drain a backlog: receive 32 + ack per message, and batched acks.
    Pop,
    /// Open loop at 2,000 msg/s: send and end-to-end latency.
    Latency,
    /// Producers and consumers at once: highest rate with a flat backlog.
    Mixed,
    /// 1,000,000 waiting messages: RSS and pop throughput.
    Backlog,
    /// One proxy vs two over one store, proxies CPU-bound.
    Scale,
    /// Pier's Rust SDK PushConsumer draining the `pop` backlog.
    Sdk,
    /// FIFO drain with 1 and 10,000 active message groups.
    Fifo,
    /// Delay lateness with 1,000,000 pending timers.
    Delay,
    /// Transaction half send + commit round trip.
    Txn,
    /// The cost of a setting: the Pier systems of `--only` side by side,
    /// send load in short slices taking turns (not part of `all`).
    Paired,
    /// fifo, delay and txn.
    Types,
    /// The tonic-echo ceiling's server (started by the bench itself).
    #[command(hide = true)]
    EchoServer {
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
    /// Starts each peer and ceiling, round-trips messages, stops it.
    #[command(hide = true)]
    PeersCheck,
    /// Rewrites the report and charts from the records, measuring nothing.
    Report,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.scenario {
        Scenario::EchoServer { listen } => return ceiling::echo_server(listen).await,
        Scenario::PeersCheck => return peers::check::peers_check().await,
        Scenario::Report => {
            report::write(&args.out, Vec::new(), "")?;
            return Ok(());
        }
        _ => {}
    }
    ensure_pier_binaries()?;
    let ctx = Ctx {
        quick: args.quick,
        peers: !args.no_peers && !args.quick,
        only: args.only.clone(),
        concurrency: args.concurrency.clone(),
    };
    if ctx.peers {
        peers::ensure_installed(&ctx.only)?;
    }
    // Peers run in their own process groups (so dropping one kills its whole
    // tree), and a SIGTERM reaches only this process: either signal must
    // stop what the run started explicitly, or it outlives the bench.
    tokio::spawn(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        peers::kill_all();
        kill_children();
        std::process::exit(130);
    });
    use Scenario::*;
    let run = |s: Scenario| {
        args.scenario == s
            || (args.scenario == All && s != Paired)
            || (args.scenario == Types && matches!(s, Fifo | Delay | Txn))
    };
    let mut records = Vec::new();
    for s in [
        Send, Pop, Latency, Mixed, Backlog, Scale, Sdk, Fifo, Delay, Txn, Paired,
    ] {
        if run(s) {
            records.extend(measure(s, &ctx).await?);
        }
    }
    let command = std::iter::once("pier-bench".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    report::write(&args.out, records, &command)?;
    eprintln!(
        "wrote {} and {}",
        args.out.display(),
        args.out.with_extension("md").display()
    );
    Ok(())
}

/// Runs one scenario (not `All` or `Types`: `main` expands those).
async fn measure(s: Scenario, ctx: &Ctx) -> anyhow::Result<Vec<record::Record>> {
    use Scenario::*;
    match s {
        Send => scenarios::send::run(ctx).await,
        Pop => scenarios::pop::run(ctx).await,
        Latency => scenarios::latency::run(ctx).await,
        Mixed => scenarios::mixed::run(ctx).await,
        Backlog => scenarios::backlog::run(ctx).await,
        Scale => scenarios::scale::run(ctx).await,
        Sdk => scenarios::sdk::run(ctx).await,
        Fifo => scenarios::types::fifo(ctx.quick).await,
        Delay => scenarios::types::delay(ctx.quick).await,
        Txn => scenarios::types::txn(ctx.quick).await,
        Paired => scenarios::paired::run(ctx).await,
        All | Types | EchoServer { .. } | PeersCheck | Report => Ok(Vec::new()),
    }
}

/// Kills this process's children (Pier nodes, the echo server, peers'
/// group leaders): they would otherwise outlive a bench stopped by a signal,
/// since drops do not run on `exit`.
fn kill_children() {
    for pid in system::children_of(std::process::id()) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The bench starts `pier-proxy` and `pier-store` from its own directory
/// (`target/<profile>/`). `cargo run -p pier-bench` builds only the bench,
/// so under `cargo run` (which sets `CARGO`) they are built here too, with
/// the same profile and target directory: built on a fresh checkout, and
/// brought up to date otherwise, so a run never measures a stale server.
/// Started directly (CI, or a copy of the binaries for `scripts/ab.sh`),
/// the bench uses the binaries beside it as they are and only builds them
/// when missing, and only where cargo would have put them: a copy of the
/// bench alone in another directory (`/tmp/x/pier-bench`) says what is
/// missing instead of building a workspace into that directory's parent.
fn ensure_pier_binaries() -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow::anyhow!("the bench binary has no directory"))?;
    let present = ["pier-proxy", "pier-store"]
        .iter()
        .all(|b| dir.join(b).exists());
    let manifest = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"));
    if present && (std::env::var_os("CARGO").is_none() || !manifest.exists()) {
        return Ok(());
    }
    anyhow::ensure!(
        manifest.exists(),
        "pier-proxy/pier-store not found next to {} and no workspace to build them from",
        exe.display()
    );
    let profile = dir.file_name().and_then(|n| n.to_str());
    anyhow::ensure!(
        matches!(profile, Some("debug" | "release")),
        "pier-proxy/pier-store not found next to {}: copy them beside it (the bench \
         builds them only in a cargo target directory's debug/ or release/)",
        exe.display()
    );
    let target = dir
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no target directory above {}", dir.display()))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args([
        "build",
        "-p",
        "pier-proxy",
        "-p",
        "pier-store",
        "--manifest-path",
    ])
    .arg(&manifest)
    .arg("--target-dir")
    .arg(target);
    if profile == Some("release") {
        cmd.arg("--release");
    }
    eprintln!("building pier-proxy and pier-store in {}", dir.display());
    anyhow::ensure!(
        cmd.status()?.success(),
        "building pier-proxy/pier-store failed"
    );
    Ok(())
}
