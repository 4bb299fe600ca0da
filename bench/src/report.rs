//! The report of a run: `latest.json` (records), `latest.md` (goals first,
//! as ratios against the peers measured in the same run, then every table)
//! and SVG charts next to them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::record::Record;

/// Merges `new` into the records already at `path` (a scenario run on its
/// own replaces that scenario's earlier records and keeps the others), and
/// writes the JSON, the Markdown report and the charts.
pub fn write(path: &Path, new: Vec<Record>, command: &str) -> anyhow::Result<Vec<Record>> {
    let mut records: Vec<Record> = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    // Which command produced each scenario's records, and when: a scenario
    // rerun on its own (its peers with it) replaces only its own rows, so
    // the report says which run each table comes from.
    let runs_path = path.with_file_name("runs.json");
    let mut runs: BTreeMap<String, Run> = std::fs::read(&runs_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let at = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    for n in &new {
        runs.insert(
            n.scenario.clone(),
            Run {
                command: command.to_owned(),
                at: at.clone(),
            },
        );
    }
    records.retain(|r| !new.iter().any(|n| n.scenario == r.scenario));
    records.extend(new);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    std::fs::write(path, serde_json::to_string_pretty(&records)?)?;
    std::fs::write(&runs_path, serde_json::to_string_pretty(&runs)?)?;
    let charts = charts(dir, &records);
    std::fs::write(
        path.with_extension("md"),
        markdown(&records, &runs, &charts),
    )?;
    Ok(records)
}

/// The command that produced a scenario's records.
#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct Run {
    command: String,
    at: String,
}

fn best<'a>(
    records: &'a [Record],
    scenario: &str,
    pred: impl Fn(&Record) -> bool,
) -> Option<&'a Record> {
    records
        .iter()
        .filter(|r| r.scenario == scenario && pred(r))
        .max_by(|a, b| a.throughput_msgs_per_s.total_cmp(&b.throughput_msgs_per_s))
}

fn is(r: &Record, system: &str, config: &str) -> bool {
    r.system == system && r.config.contains(config)
}

/// One goal line: what, the figure, the target, met or not.
struct Goal {
    what: String,
    figure: String,
    target: String,
    met: Option<bool>,
}

fn ratio_goal(what: &str, pier: Option<&Record>, peer: Option<&Record>, at_least: f64) -> Goal {
    match (pier, peer) {
        (Some(p), Some(q)) if q.throughput_msgs_per_s > 0.0 => {
            let ratio = p.throughput_msgs_per_s / q.throughput_msgs_per_s;
            Goal {
                what: what.into(),
                figure: format!(
                    "{ratio:.2}x ({:.0} vs {:.0} msg/s)",
                    p.throughput_msgs_per_s, q.throughput_msgs_per_s
                ),
                target: format!(">= {at_least}x"),
                met: Some(ratio >= at_least),
            }
        }
        _ => Goal {
            what: what.into(),
            figure: "not measured in this run".into(),
            target: format!(">= {at_least}x"),
            met: None,
        },
    }
}

/// Pier's p99 against a peer's in the same open-loop run: met when not
/// above it.
fn p99_goal(what: String, pier: Option<&Record>, peer: Option<&Record>) -> Goal {
    let target = "<= 1x".to_owned();
    match (pier, peer) {
        (Some(p), Some(q)) => Goal {
            what,
            figure: format!(
                "{:.2}x ({:.2} vs {:.2} ms; p50 {:.2} vs {:.2})",
                p.p99_ms / q.p99_ms.max(1e-9),
                p.p99_ms,
                q.p99_ms,
                p.p50_ms,
                q.p50_ms
            ),
            target,
            met: Some(p.p99_ms <= q.p99_ms),
        },
        _ => Goal {
            what,
            figure: "not measured in this run".into(),
            target,
            met: None,
        },
    }
}

fn goals(r: &[Record]) -> Vec<Goal> {
    let mut g = Vec::new();
    let pier_send = best(r, "send", |x| is(x, "pier", "standalone"));
    for (what, system, config) in [
        ("send vs Redis appendfsync always", "redis", "always"),
        ("send vs RabbitMQ quorum queue", "rabbitmq", ""),
    ] {
        g.push(ratio_goal(
            what,
            pier_send,
            best(r, "send", |x| is(x, system, config)),
            1.0,
        ));
    }
    // "Far above" NATS with sync_interval always: read as at least 2x.
    g.push(ratio_goal(
        "send vs NATS JetStream sync_interval always",
        pier_send,
        best(r, "send", |x| is(x, "nats", "always")),
        2.0,
    ));
    // Apache RocketMQ 5 itself, driven by the same client. (" SYNC_FLUSH"
    // with its space: "ASYNC_FLUSH" contains "SYNC_FLUSH".)
    for (what, config, at_least) in [
        ("send vs RocketMQ SYNC_FLUSH", " SYNC_FLUSH", 2.0),
        ("send vs RocketMQ ASYNC_FLUSH", "ASYNC_FLUSH", 1.0),
    ] {
        g.push(ratio_goal(
            what,
            pier_send,
            best(r, "send", |x| is(x, "rocketmq", config)),
            at_least,
        ));
    }
    let ceiling = ["rocksdb", "tonic-echo"]
        .iter()
        .filter_map(|s| best(r, "send", |x| x.system == *s))
        .min_by(|a, b| a.throughput_msgs_per_s.total_cmp(&b.throughput_msgs_per_s));
    // Issue 19: at least 0.9 of the lower of the two ceilings.
    g.push(ratio_goal(
        "send efficiency (Pier / lower ceiling)",
        pier_send,
        ceiling,
        0.9,
    ));
    // Pier's pop (standalone) with `acks` ("one ack per batch", "ack per message").
    let pier_pop = |acks: &str| {
        best(r, "pop", |x| {
            is(x, "pier", "standalone") && x.config.contains(acks)
        })
    };
    let redis_pop = best(r, "pop", |x| {
        is(x, "redis", "always") && x.config.contains("one ack per batch")
    });
    g.push(ratio_goal(
        "pop, batched acks, vs Redis XREADGROUP+XACK (always)",
        pier_pop("one ack per batch"),
        redis_pop,
        1.0,
    ));
    g.push(ratio_goal(
        "pop, ack per message, vs Redis batched (always)",
        pier_pop("ack per message"),
        redis_pop,
        0.5,
    ));
    // Issue 19, each peer acking the same way: an ack per message at least
    // RabbitMQ quorum's rate and 0.7 of NATS `always`'s; batched acks at
    // least every durable peer's (Redis above).
    let peer_pop = |system: &str, config: &str, acks: &str| {
        best(r, "pop", |x| {
            is(x, system, config) && x.config.contains(acks)
        })
    };
    for (what, system, config, acks, at_least) in [
        (
            "pop, ack per message, vs RabbitMQ quorum (ack per message)",
            "rabbitmq",
            "",
            "ack per message",
            1.0,
        ),
        (
            "pop, ack per message, vs NATS JetStream always (ack per message)",
            "nats",
            "always",
            "ack per message",
            0.7,
        ),
        (
            "pop, batched acks, vs RabbitMQ quorum (batched)",
            "rabbitmq",
            "",
            "one ack per batch",
            1.0,
        ),
        (
            "pop, batched acks, vs NATS JetStream always (batched)",
            "nats",
            "always",
            "one ack per batch",
            1.0,
        ),
        (
            "pop, batched acks, vs RocketMQ SYNC_FLUSH (batched)",
            "rocketmq",
            " SYNC_FLUSH",
            "one ack per batch",
            1.0,
        ),
    ] {
        g.push(ratio_goal(
            what,
            pier_pop(acks),
            peer_pop(system, config, acks),
            at_least,
        ));
    }
    // RocketMQ's better figure of its two flush modes (acks are writes in
    // both; the faster one is the stricter comparison).
    g.push(ratio_goal(
        "pop, ack per message, vs RocketMQ (ack per message, its faster flush mode)",
        pier_pop("ack per message"),
        best(r, "pop", |x| {
            x.system == "rocketmq" && x.config.contains("ack per message")
        }),
        2.0,
    ));
    // Mixed has no target in the issue: its figure is the highest rate each
    // system held with a flat backlog, shown next to Redis (always).
    let flat = |system: &str, config: &str| {
        r.iter()
            .filter(|x| {
                x.scenario == "mixed" && is(x, system, config) && x.config.contains("(flat)")
            })
            .filter_map(|x| x.rate)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    };
    if let Some(p) = flat("pier", "standalone") {
        g.push(Goal {
            what: "mixed: highest rate with a flat backlog".into(),
            figure: match flat("redis", "always") {
                Some(q) => format!(
                    "Pier {p:.0} msg/s, Redis (always) {q:.0} msg/s: {:.2}x",
                    p / q
                ),
                None => format!("Pier {p:.0} msg/s"),
            },
            target: "(figure only)".into(),
            met: None,
        });
    }
    let raw_each = pier_pop("ack per message");
    g.push(ratio_goal(
        "sdk PushConsumer (acks queued behind calls in flight share a call) vs raw pop, ack per message",
        best(r, "sdk", |x| x.system == "pier"),
        raw_each,
        0.8,
    ));
    let latency = |part: &str, name: &str, limit: f64| {
        let rec = r.iter().find(|x| {
            x.scenario == "latency" && is(x, "pier", "standalone") && x.config.contains(part)
        });
        Goal {
            what: format!("latency, open loop: {name} p99 (standalone)"),
            figure: rec.map_or("not measured".into(), |x| {
                let mut f = format!(
                    "{:.2} ms (p50 {:.2}, p99.9 {:.2})",
                    x.p99_ms, x.p50_ms, x.p999_ms
                );
                // The systems that fsync before answering, sent to at the
                // same rate in the same run: how much of the p99 is the disk.
                // Only synced configurations are measured there, one per
                // system, so the system's name says which.
                let others: Vec<String> = r
                    .iter()
                    .filter(|y| part == "; send" && y.scenario == "latency" && y.system != "pier")
                    .map(|y| format!("{} {:.2} ms", y.system, y.p99_ms))
                    .collect();
                if !others.is_empty() {
                    let _ = write!(f, "; p99 at the same rate: {}", others.join(", "));
                }
                f
            }),
            target: format!("<= {limit} ms"),
            met: rec.map(|x| x.p99_ms <= limit),
        }
    };
    g.push(latency("; send", "send", 10.0));
    g.push(latency("end to end", "end to end", 20.0));
    let pier_p99 = r.iter().find(|x| {
        x.scenario == "latency" && is(x, "pier", "standalone") && x.config.contains("; send")
    });
    // The same open-loop send, same rate, same run (issue 19: at most
    // Redis `always`'s p99; at most RocketMQ `SYNC_FLUSH`'s).
    for (name, system, config) in [
        ("Redis appendfsync always", "redis", "always"),
        ("RocketMQ SYNC_FLUSH", "rocketmq", " SYNC_FLUSH"),
    ] {
        let peer = r
            .iter()
            .find(|x| x.scenario == "latency" && is(x, system, config));
        g.push(p99_goal(
            format!("latency, open loop: send p99 vs {name} at the same rate"),
            pier_p99,
            peer,
        ));
    }
    let backlog: Vec<&Record> = r
        .iter()
        .filter(|x| x.scenario == "backlog" && x.system == "pier")
        .collect();
    let rocketmq_backlog = r
        .iter()
        .find(|x| x.scenario == "backlog" && x.system == "rocketmq");
    if let [small, big] = backlog[..] {
        let rss = big.rss_mib.unwrap_or(f64::NAN);
        g.push(Goal {
            what: format!(
                "backlog: server RSS with {}",
                big.config
                    .split("; ")
                    .nth(1)
                    .and_then(|c| c.split(',').next())
                    .unwrap_or("the big backlog")
            ),
            figure: format!("{rss:.0} MiB"),
            target: "<= 512 MiB".into(),
            met: Some(rss <= 512.0),
        });
        g.push(ratio_goal(
            "backlog: pop with the big backlog vs small",
            Some(big),
            Some(small),
            0.8,
        ));
        if let Some(q) = rocketmq_backlog.and_then(|q| q.rss_mib) {
            g.push(Goal {
                what: "backlog: server RSS vs RocketMQ's, same backlog".into(),
                figure: format!("{rss:.0} vs {q:.0} MiB ({:.2}x)", rss / q.max(1e-9)),
                target: "<= 0.25x".into(),
                met: Some(rss <= q / 4.0),
            });
        }
    }
    let scale: Vec<&Record> = r.iter().filter(|x| x.scenario == "scale").collect();
    if let [one, two] = scale[..] {
        g.push(ratio_goal(
            "scale: two proxies vs one (proxy-bound)",
            Some(two),
            Some(one),
            1.6,
        ));
    }
    g
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(String::new(), |kb| {
            format!(", {:.0} GiB RAM", kb / 1048576.0)
        });
    format!("{cores} cores ({cpu}){mem}")
}

fn markdown(records: &[Record], runs: &BTreeMap<String, Run>, charts: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Pier benchmark report\n");
    let _ = writeln!(s, "- Machine: {}", machine());
    let _ = writeln!(
        s,
        "- Within a scenario every system is measured in the same run, one at a time (`paired`: running side by side, loaded in turns), on 127.0.0.1, 1 KiB bodies, release build."
    );
    let _ = writeln!(s, "- Runs (command, time, scenarios it produced):");
    let mut commands: Vec<(&str, &str)> = runs
        .values()
        .map(|r| (r.command.as_str(), r.at.as_str()))
        .collect();
    commands.sort();
    commands.dedup();
    for (command, at) in commands {
        let scenarios: Vec<&str> = runs
            .iter()
            .filter(|(_, r)| r.command == command && r.at == at)
            .map(|(k, _)| k.as_str())
            .collect();
        let _ = writeln!(s, "  - `{command}` ({at}): {}", scenarios.join(", "));
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "## Goals\n\n| goal | figure | target | met |\n|---|---|---|---|"
    );
    for g in goals(records) {
        let met = match g.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        let _ = writeln!(s, "| {} | {} | {} | {met} |", g.what, g.figure, g.target);
    }
    for c in charts {
        let _ = writeln!(s, "\n![{c}]({c})");
    }
    let mut scenarios: Vec<&str> = records.iter().map(|r| r.scenario.as_str()).collect();
    scenarios.dedup();
    for sc in scenarios {
        let _ = writeln!(
            s,
            "\n## {sc}\n\n| system | config | concurrency | rate | msgs | msgs/s | p50 ms | p99 ms | p99.9 ms | max ms | RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for r in records.iter().filter(|r| r.scenario == sc) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                r.system,
                r.config,
                r.concurrency,
                r.rate.map_or("-".into(), |v| format!("{v:.0}")),
                r.msgs,
                r.throughput_msgs_per_s,
                r.p50_ms,
                r.p99_ms,
                r.p999_ms,
                r.max_ms,
                r.rss_mib.map_or("-".into(), |v| format!("{v:.0}"))
            );
        }
    }
    s
}

/// Draws the charts; returns their file names (relative to the report).
/// A chart that fails to draw is left out with a message, never fatal.
fn charts(dir: &Path, records: &[Record]) -> Vec<String> {
    let mut out = Vec::new();
    let send: Vec<&Record> = records.iter().filter(|r| r.scenario == "send").collect();
    if !send.is_empty() {
        let name = "send-throughput.svg";
        match send_chart(&dir.join(name), &send) {
            Ok(()) => out.push(name.to_owned()),
            Err(e) => eprintln!("chart {name}: {e}"),
        }
        let name = "send-latency.svg";
        match latency_chart(&dir.join(name), &send) {
            Ok(()) => out.push(name.to_owned()),
            Err(e) => eprintln!("chart {name}: {e}"),
        }
    }
    out
}

fn series_name(r: &Record) -> String {
    let config = r.config.split(';').next().unwrap_or("");
    format!("{} ({config})", r.system)
}

/// The canvas of a chart and the builder of its plot, with `caption`:
/// every chart of the report has the same size, margins and font.
fn canvas(path: &Path) -> anyhow::Result<DrawingArea<SVGBackend<'_>, plotters::coord::Shift>> {
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    Ok(root)
}

fn plot<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    caption: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70);
    b
}

/// Draws each named series as a line with dots, and their legend at the
/// upper left.
fn draw_lines<'a, 'b: 'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>,
    series: Vec<(String, Vec<(f64, f64)>)>,
) -> anyhow::Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, (name, pts)) in series.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn send_chart(path: &Path, send: &[&Record]) -> anyhow::Result<()> {
    let root = canvas(path)?;
    let max_y = send
        .iter()
        .map(|r| r.throughput_msgs_per_s)
        .fold(1.0, f64::max)
        * 1.1;
    let max_c = send.iter().map(|r| r.concurrency).max().unwrap_or(1) as f64;
    let mut chart = plot(&root, "send: durable msg/s vs concurrency (1 KiB)")
        .build_cartesian_2d((0.8f64..max_c * 1.25).log_scale(), 0f64..max_y)?;
    chart
        .configure_mesh()
        .x_desc("concurrency")
        .y_desc("msg/s")
        .draw()?;
    let mut names: Vec<String> = send.iter().map(|r| series_name(r)).collect();
    names.dedup();
    let series = names
        .into_iter()
        .map(|name| {
            let pts = send
                .iter()
                .filter(|r| series_name(r) == name)
                .map(|r| (r.concurrency as f64, r.throughput_msgs_per_s))
                .collect();
            (name, pts)
        })
        .collect();
    draw_lines(&mut chart, series)?;
    root.present()?;
    Ok(())
}

/// p50 / p99 / p99.9 / max of each system's send at concurrency 16.
fn latency_chart(path: &Path, send: &[&Record]) -> anyhow::Result<()> {
    let at: Vec<&&Record> = send.iter().filter(|r| r.concurrency == 16).collect();
    let root = canvas(path)?;
    let max_y = at.iter().map(|r| r.max_ms).fold(1.0, f64::max) * 1.5;
    let mut chart = plot(&root, "send latency at concurrency 16 (ms, log scale)")
        .build_cartesian_2d(0f64..3.2, (0.01f64..max_y).log_scale())?;
    chart
        .configure_mesh()
        .x_labels(4)
        .x_label_formatter(&|x| {
            ["p50", "p99", "p99.9", "max"]
                .get(x.round() as usize)
                .copied()
                .unwrap_or("")
                .to_owned()
        })
        .y_desc("ms")
        .draw()?;
    let series = at
        .iter()
        .map(|r| {
            let pts = [r.p50_ms, r.p99_ms, r.p999_ms, r.max_ms]
                .iter()
                .enumerate()
                .map(|(k, v)| (k as f64, v.max(0.01)))
                .collect();
            (series_name(r), pts)
        })
        .collect();
    draw_lines(&mut chart, series)?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(scenario: &str, system: &str, config: &str, msgs_per_s: f64, p99_ms: f64) -> Record {
        Record {
            scenario: scenario.into(),
            system: system.into(),
            config: config.into(),
            concurrency: 16,
            rate: None,
            duration_s: 10.0,
            msgs: 0,
            throughput_msgs_per_s: msgs_per_s,
            p50_ms: p99_ms / 2.0,
            p99_ms,
            p999_ms: p99_ms,
            max_ms: p99_ms,
            rss_mib: None,
        }
    }

    fn goal<'a>(goals: &'a [Goal], what: &str) -> &'a Goal {
        goals
            .iter()
            .find(|g| g.what == what)
            .unwrap_or_else(|| panic!("no goal {what:?}"))
    }

    #[test]
    fn each_pop_goal_compares_pier_with_the_peer_acking_the_same_way() {
        let r = [
            rec(
                "pop",
                "pier",
                "standalone; batch 32, ack per message",
                40.0,
                1.0,
            ),
            rec(
                "pop",
                "pier",
                "standalone; batch 32, one ack per batch",
                140.0,
                1.0,
            ),
            rec(
                "pop",
                "rabbitmq",
                "quorum; batch 32, ack per message",
                50.0,
                1.0,
            ),
            rec(
                "pop",
                "rabbitmq",
                "quorum; batch 32, one ack per batch",
                100.0,
                1.0,
            ),
            rec(
                "pop",
                "nats",
                "sync_interval=always; batch 32, ack per message",
                50.0,
                1.0,
            ),
        ];
        let g = goals(&r);
        let each = goal(
            &g,
            "pop, ack per message, vs RabbitMQ quorum (ack per message)",
        );
        assert_eq!(
            (each.met, each.figure.starts_with("0.80x")),
            (Some(false), true)
        );
        let batched = goal(&g, "pop, batched acks, vs RabbitMQ quorum (batched)");
        assert_eq!(
            (batched.met, batched.figure.starts_with("1.40x")),
            (Some(true), true)
        );
        // 40 / 50 = 0.8 of NATS: above its 0.7.
        let nats = goal(
            &g,
            "pop, ack per message, vs NATS JetStream always (ack per message)",
        );
        assert_eq!(nats.met, Some(true));
        let missing = goal(&g, "pop, batched acks, vs NATS JetStream always (batched)");
        assert_eq!(missing.met, None);
    }

    #[test]
    fn the_send_p99_goal_is_met_only_at_or_below_the_peers() {
        let pier = rec("latency", "pier", "standalone, flush=sync; send", 0.0, 1.5);
        let redis = rec("latency", "redis", "appendfsync=always; send", 0.0, 1.0);
        let above = p99_goal("x".into(), Some(&pier), Some(&redis));
        assert_eq!(above.met, Some(false));
        assert!(above.figure.starts_with("1.50x"), "{}", above.figure);
        assert_eq!(
            p99_goal("x".into(), Some(&redis), Some(&pier)).met,
            Some(true)
        );
        assert_eq!(p99_goal("x".into(), Some(&pier), None).met, None);
    }
}
