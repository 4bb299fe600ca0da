//! Behaviour side by side: the same edge cases, through the raw
//! `apache.rocketmq.v2` gRPC API, against Apache RocketMQ 5 and Pier.
//!
//! ```text
//! compare probe --endpoint HOST:PORT --system NAME --out FILE.json
//! compare table --rocketmq A.json --pier B.json [--scenarios FILE.tsv]
//!               [--meta FILE] --out RESULTS.md
//! ```
//!
//! `probe` runs every case against one endpoint and writes what it saw (per
//! case: the compared outcome, the server's status message, details). It acts
//! as the official clients do: each client opens its Telemetry stream and
//! sends its Settings first, heartbeats every 10 s, and takes its message
//! queues from QueryRoute. The resources must exist beforehand (created by
//! tests/compare/run.sh on both systems): see [`TOPICS`] and [`GROUPS`].
//!
//! `table` joins two such files into the Markdown table of
//! tests/compare/RESULTS.md. A row is "same" when both outcomes are equal;
//! otherwise it takes the argued verdict of [`VERDICTS`] when that entry
//! still matches what was seen, and is flagged UNEXPLAINED otherwise (the
//! command then exits with status 1, after writing the table).
//!
//! This is a hand-run tool, not a test: it never panics on what the servers
//! answer; a failed call is itself the observation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use pier_proto::rocketmq::*;
use pier_tests::{resource, Raw};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

mod cases_change;
mod cases_delay;
mod cases_fifo;
mod cases_other;
mod cases_receive;
mod cases_send;
mod cases_session;
mod cases_tx;
mod obs;
mod probe;
mod run;
mod session;
mod table;
mod verdicts;

use cases_change::*;
use cases_delay::*;
use cases_fifo::*;
use cases_other::*;
use cases_receive::*;
use cases_send::*;
use cases_session::*;
use cases_tx::*;
use obs::*;
use probe::*;
use run::*;
use session::*;
use table::*;
use verdicts::*;

/// Topics the probe uses, with their message type; run.sh creates them with
/// one queue each, on both systems.
pub const TOPICS: &[(&str, &str)] = &[
    ("cmp-normal", "NORMAL"),
    ("cmp-normal2", "NORMAL"),
    ("cmp-sink", "NORMAL"),
    ("cmp-fifo", "FIFO"),
    ("cmp-delay", "DELAY"),
    ("cmp-tx", "TRANSACTION"),
];

/// Consumer groups the probe uses (`fifo` = orderly group).
pub const GROUPS: &[(&str, bool)] = &[
    ("cmp-g", false),
    ("cmp-g2", false),
    ("cmp-fifo-g", true),
    ("cmp-delay-g", false),
];

pub(crate) const MAX_BODY: usize = 4 * 1024 * 1024;
/// Invisible time for messages whose handles the cases play with: longer
/// than the run, so they never come back on their own.
pub(crate) const LONG_INVISIBLE_MS: i64 = 3_600_000;

// Command line

struct Args(Vec<String>);

impl Args {
    fn get(&self, flag: &str) -> anyhow::Result<&str> {
        self.0
            .iter()
            .position(|a| a == flag)
            .and_then(|i| self.0.get(i + 1))
            .map(String::as_str)
            .ok_or_else(|| anyhow!("{flag} is required"))
    }
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = argv.first().cloned() else {
        bail!("usage: compare probe --endpoint HOST:PORT --system NAME --out FILE | compare table --rocketmq A --pier B --out MD [--scenarios TSV] [--meta FILE] | compare resources");
    };
    let args = Args(argv);
    match cmd.as_str() {
        "probe" => {
            let endpoint = args.get("--endpoint")?.to_owned();
            let system = args.get("--system")?.to_owned();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let t0 = Instant::now();
            let (rows, strays) = rt.block_on(probe(&endpoint))?;
            let cases: Vec<Value> = rows
                .into_iter()
                .map(|(id, title, o)| {
                    json!({"id": id, "title": title, "outcome": o.outcome, "message": o.message, "detail": o.detail})
                })
                .collect();
            let out = json!({"system": system, "endpoint": endpoint, "seconds": t0.elapsed().as_secs_f64(), "cases": cases, "strays": strays});
            std::fs::write(args.get("--out")?, serde_json::to_string_pretty(&out)?)?;
            eprintln!(
                "{system}: {} cases in {}",
                out["cases"].as_array().map_or(0, Vec::len),
                secs(t0.elapsed())
            );
            // Sessions and their tasks end with the runtime.
            rt.shutdown_timeout(Duration::from_secs(2));
            Ok(())
        }
        "table" => {
            if table(&args)? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        // The resources run.sh creates: "topic NAME TYPE" / "group NAME fifo|normal".
        "resources" => {
            for (t, kind) in TOPICS {
                println!("topic {t} {kind}");
            }
            for (g, fifo) in GROUPS {
                println!("group {g} {}", if *fifo { "fifo" } else { "normal" });
            }
            Ok(())
        }
        other => bail!("unknown command {other}"),
    }
}
