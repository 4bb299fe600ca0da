//! `pier stats`: per topic, messages in per second; per consumer group and
//! topic, messages out per second, ready, in flight, lag and dead letters.
//!
//! Read from the admin API twice, `--interval` apart: "in" is the growth of
//! the topic's queue offsets, "out" what left the group's backlog (acked or
//! dead-lettered) over the same time. Ready, in flight, lag and dead letters
//! are the second sample's. For history, scrape the nodes' /metrics instead.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pier::admin::Admin;
use pier_proto::admin::TopicBacklog;
use serde_json::{json, Value};

use crate::args::StatsArgs;
use crate::render::table;

/// What one sample read.
#[derive(Default)]
struct Sample {
    /// Messages ever appended, by topic (the sum of its queues' next offsets).
    appended: BTreeMap<String, u64>,
    /// Backlog by (group, topic), and each group's dead letters.
    backlog: BTreeMap<(String, String), TopicBacklog>,
    dlq: BTreeMap<String, u64>,
}

/// Runs `pier stats`; returns what to print.
pub(crate) async fn run(admin: &Admin, a: StatsArgs) -> anyhow::Result<(String, Value)> {
    let first = sample(admin, &a).await?;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(a.interval)).await;
    let second = sample(admin, &a).await?;
    Ok(render(&first, &second, started.elapsed().as_secs_f64()))
}

async fn sample(admin: &Admin, a: &StatsArgs) -> anyhow::Result<Sample> {
    let mut s = Sample::default();
    for t in admin.list_topics().await? {
        if a.topic.as_ref().is_some_and(|want| *want != t.name) {
            continue;
        }
        let d = admin.describe_topic(&t.name).await?;
        s.appended
            .insert(t.name, d.queues.iter().map(|q| q.max_offset).sum());
    }
    for g in admin.list_groups().await? {
        if a.group.as_ref().is_some_and(|want| *want != g.name) {
            continue;
        }
        let d = admin.describe_group(&g.name).await?;
        for b in d.backlog {
            if a.topic.as_ref().is_some_and(|want| *want != b.topic) {
                continue;
            }
            s.backlog.insert((g.name.clone(), b.topic.clone()), b);
        }
        s.dlq.insert(g.name, d.dlq);
    }
    Ok(s)
}

/// Per second, to one decimal.
fn rate(delta: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    (delta as f64 / secs * 10.0).round() / 10.0
}

fn render(first: &Sample, second: &Sample, secs: f64) -> (String, Value) {
    let appended = |s: &Sample, topic: &str| s.appended.get(topic).copied().unwrap_or(0);
    let topics: Vec<(String, f64)> = second
        .appended
        .iter()
        .map(|(t, n)| (t.clone(), rate(n.saturating_sub(appended(first, t)), secs)))
        .collect();
    let mut groups = Vec::new();
    for ((group, topic), b) in &second.backlog {
        let before = first.backlog.get(&(group.clone(), topic.clone()));
        let pending = |b: &TopicBacklog| b.ready + b.inflight;
        // What came in, minus what the backlog grew by, left it.
        let came_in = appended(second, topic).saturating_sub(appended(first, topic));
        let out = match before {
            Some(prev) => (came_in + pending(prev)).saturating_sub(pending(b)),
            None => 0,
        };
        groups.push(json!({
            "group": group,
            "topic": topic,
            "out_per_s": rate(out, secs),
            "ready": b.ready,
            "inflight": b.inflight,
            "lag_ms": b.lag_ms,
            "dlq": second.dlq.get(group).copied().unwrap_or(0),
        }));
    }
    let value = json!({
        "interval_s": (secs * 1000.0).round() / 1000.0,
        "topics": topics.iter().map(|(t, r)| json!({ "topic": t, "in_per_s": r })).collect::<Vec<_>>(),
        "groups": groups,
    });
    let mut text = if topics.is_empty() {
        "no topics\n".to_owned()
    } else {
        let rows: Vec<Vec<String>> = topics
            .iter()
            .map(|(t, r)| vec![t.clone(), format!("{r:.1}")])
            .collect();
        table(&["TOPIC", "IN/S"], &rows)
    };
    text.push('\n');
    if groups.is_empty() {
        text.push_str("no consumer group has consumed these topics yet");
    } else {
        let rows: Vec<Vec<String>> = groups
            .iter()
            .map(|g| {
                vec![
                    g["group"].as_str().unwrap_or_default().to_owned(),
                    g["topic"].as_str().unwrap_or_default().to_owned(),
                    format!("{:.1}", g["out_per_s"].as_f64().unwrap_or(0.0)),
                    g["ready"].to_string(),
                    g["inflight"].to_string(),
                    lag_text(g["lag_ms"].as_i64().unwrap_or(0)),
                    g["dlq"].to_string(),
                ]
            })
            .collect();
        text.push_str(&table(
            &["GROUP", "TOPIC", "OUT/S", "READY", "INFLIGHT", "LAG", "DLQ"],
            &rows,
        ));
    }
    (text, value)
}

/// A lag as `0s`, `850ms`, `12.3s`, `4m05s`.
fn lag_text(ms: i64) -> String {
    match ms {
        ms if ms <= 0 => "0s".into(),
        ms if ms < 1_000 => format!("{ms}ms"),
        ms if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        ms => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backlog(topic: &str, ready: u64, inflight: u64, lag_ms: i64) -> TopicBacklog {
        TopicBacklog {
            topic: topic.into(),
            ready,
            inflight,
            lag_ms,
        }
    }

    #[test]
    fn rates_come_from_the_two_samples() {
        let mut a = Sample::default();
        a.appended.insert("orders".into(), 100);
        a.backlog
            .insert(("g".into(), "orders".into()), backlog("orders", 30, 10, 0));
        let mut b = Sample::default();
        b.appended.insert("orders".into(), 120);
        b.backlog.insert(
            ("g".into(), "orders".into()),
            backlog("orders", 25, 5, 4_500),
        );
        b.dlq.insert("g".into(), 2);
        let (text, v) = render(&a, &b, 2.0);
        // 20 in; the backlog shrank from 40 to 30: 30 left it in 2 s.
        assert_eq!(v["topics"][0]["in_per_s"], 10.0);
        assert_eq!(v["groups"][0]["out_per_s"], 15.0);
        assert_eq!(v["groups"][0]["ready"], 25);
        assert_eq!(v["groups"][0]["dlq"], 2);
        assert!(text.contains("orders  10.0"), "{text}");
        assert!(
            text.contains("g      orders  15.0   25     5         4.5s  2"),
            "{text}"
        );
        assert_eq!(lag_text(245_000), "4m05s");
        assert_eq!(lag_text(850), "850ms");
    }
}
