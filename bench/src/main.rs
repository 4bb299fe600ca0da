//! `pier-bench`: measures Pier's message types over the client protocol.
//!
//! Scenarios (each starts its own standalone `pier-proxy` on 127.0.0.1 with
//! a temporary data directory, and stops it):
//! - `fifo`: drain a FIFO backlog with receive (batch 32) + per-message ack,
//!   with 1 and with 10,000 active message groups;
//! - `delay`: delivery lateness (p50/p99/max) of due delay messages while
//!   1,000,000 other timers are pending, and the server's RSS;
//! - `txn`: half send + commit round trip.
//!
//! Results are appended as JSON records to `bench/results/latest.json` and
//! printed as a Markdown table.

#[allow(dead_code)] // wired up by the scenarios being written
mod ceiling;
#[allow(dead_code)] // wired up by the scenarios being written
mod peers;
#[allow(dead_code)] // wired up by the scenarios being written
mod pier;
mod scenarios;
#[allow(dead_code)]
mod system;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "pier-bench", about = "Benchmarks of Pier's message types")]
struct Args {
    #[command(subcommand)]
    scenario: Scenario,
    /// Small sizes (seconds, not minutes): checks the tool works.
    #[arg(long, global = true)]
    quick: bool,
    /// Where the JSON records go.
    #[arg(long, global = true, default_value = "bench/results/latest.json")]
    out: PathBuf,
}

#[derive(Subcommand, Clone, Copy)]
enum Scenario {
    Fifo,
    Delay,
    Txn,
    /// Every scenario above.
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.scenario {
        Scenario::EchoServer { listen } => return ceiling::echo_server(listen).await,
        Scenario::PeersCheck => return peers::check::peers_check().await,
        _ => {}
    }
    let mut records = Vec::new();
    let run = |s: Scenario| {
        matches!(args.scenario, Scenario::Types)
            || std::mem::discriminant(&s) == std::mem::discriminant(&args.scenario)
    };
    if run(Scenario::Fifo) {
        records.extend(scenarios::types::fifo(args.quick).await?);
    }
    if run(Scenario::Delay) {
        records.extend(scenarios::types::delay(args.quick).await?);
    }
    if run(Scenario::Txn) {
        records.extend(scenarios::types::txn(args.quick).await?);
    }
    println!(
        "| scenario | config | concurrency | msgs | msgs/s | p50 ms | p99 ms | max ms | RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &records {
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
            r.scenario,
            r.config,
            r.concurrency,
            r.msgs,
            r.throughput_msgs_per_s,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            r.rss_mib.map_or("-".into(), |v| format!("{v:.0}"))
        );
    }
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&records)?)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// Runs process `pid` on one CPU only (`taskset`), e.g. to make a proxy the
/// bottleneck of a scaling run on a small machine.
pub fn pin_process(pid: u32, cpu: usize) -> anyhow::Result<()> {
    let ok = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()?
        .success();
    anyhow::ensure!(ok, "taskset failed for pid {pid}");
    Ok(())
}
