//! The message-type scenarios (FIFO, delay, transactions), each against
//! its own standalone proxy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use pier_proto::admin::{ConsumerGroup, CreateGroupRequest, TopicType};
use pier_proto::rocketmq::*;
use pier_tests::{handle, message, resource, Node, Raw};

use crate::load::{histogram, Outcome};
pub use crate::record::Record;

/// A Pier record from a scenario's own count and latencies.
fn record(
    scenario: &str,
    config: String,
    concurrency: usize,
    elapsed: Duration,
    msgs: u64,
    hist: &Histogram<u64>,
    rss: Option<f64>,
) -> Record {
    let out = Outcome {
        msgs,
        elapsed,
        hist: hist.clone(),
    };
    Record::new(scenario, "pier", config, concurrency, &out, rss)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn rss_mib(pid: u32) -> Option<f64> {
    crate::system::rss_mib(&[pid])
}

fn body(size: usize, tag: &str) -> String {
    let mut b = tag.to_owned();
    b.extend(std::iter::repeat_n('x', size.saturating_sub(tag.len())));
    b
}

async fn start() -> anyhow::Result<(Node, Raw, tempfile::TempDir)> {
    let data = tempfile::tempdir()?;
    let node = Node::standalone(data.path());
    let c = Raw::connect(&node.endpoint()).await;
    Ok((node, c, data))
}

/// Sends `msgs` in requests of `per_request`, from `concurrency` tasks.
async fn load(
    c: &Raw,
    msgs: Vec<Message>,
    per_request: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let chunks: Vec<Vec<Message>> = msgs.chunks(per_request).map(<[Message]>::to_vec).collect();
    let chunks = Arc::new(tokio::sync::Mutex::new(chunks));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (c, chunks) = (c.clone(), chunks.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(chunk) = chunks.lock().await.pop() else {
                    return Ok(());
                };
                let r = c
                    .messaging()
                    .send_message(c.req(SendMessageRequest { messages: chunk }))
                    .await?
                    .into_inner();
                let code = r.status.map_or(0, |s| s.code);
                anyhow::ensure!(code == Code::Ok as i32, "load failed with code {code}");
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// FIFO: drain a backlog with receive (batch 32) + one ack per message.
pub async fn fifo(quick: bool) -> anyhow::Result<Vec<Record>> {
    let consumers = 16;
    let mut out = Vec::new();
    for groups in [1usize, 10_000] {
        // One group allows one message in flight at a time: a smaller
        // backlog gives the same rate in a bounded time.
        let n: usize = match (quick, groups) {
            (true, _) => 500,
            (false, 1) => 2_000,
            (false, _) => 20_000,
        };
        let (node, c, _data) = start().await?;
        c.create_typed_topic("fifo-bench", TopicType::Fifo, 8).await;
        c.admin()
            .create_group(CreateGroupRequest {
                group: Some(ConsumerGroup {
                    name: "fifo-bench".into(),
                    fifo: true,
                    ..Default::default()
                }),
            })
            .await?;
        let msgs: Vec<Message> = (0..n)
            .map(|i| {
                let mut m = message("fifo-bench", &body(1024, &format!("{i}")));
                let sp = m.system_properties.get_or_insert_with(Default::default);
                sp.message_type = MessageType::Fifo as i32;
                sp.message_group = Some(format!("g{}", i % groups));
                m
            })
            .collect();
        load(&c, msgs, 100, 8).await?;
        eprintln!("fifo: {n} messages in {groups} groups loaded; draining");
        let done = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..consumers {
            let (c, done) = (c.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let mut h = histogram();
                while done.load(Ordering::Relaxed) < n {
                    let t = Instant::now();
                    let (_, got) = c.receive("fifo-bench", "fifo-bench", 32, 30_000, 200).await;
                    for m in &got {
                        c.ack("fifo-bench", "fifo-bench", &handle(m)).await;
                    }
                    if !got.is_empty() {
                        h.record(t.elapsed().as_micros() as u64).ok();
                    }
                    done.fetch_add(got.len(), Ordering::Relaxed);
                }
                h
            }));
        }
        let mut h = histogram();
        for t in tasks {
            h.add(t.await?).ok();
        }
        let elapsed = t0.elapsed();
        out.push(record(
            "fifo",
            format!("{groups} message groups, receive 32 + ack each (latency: one receive and its acks)"),
            consumers,
            elapsed,
            done.load(Ordering::Relaxed) as u64,
            &h,
            rss_mib(node.pid()),
        ));
    }
    Ok(out)
}

/// Delay: lateness of due messages while many other timers are pending.
pub async fn delay(quick: bool) -> anyhow::Result<Vec<Record>> {
    let pending: usize = if quick { 10_000 } else { 1_000_000 };
    let probes: usize = if quick { 200 } else { 2_000 };
    let (node, c, _data) = start().await?;
    c.create_typed_topic("delay-bench", TopicType::Delay, 8)
        .await;
    c.create_group("delay-bench", 17).await;
    let base = now_ms() + 3_600_000;
    let t = Instant::now();
    let msgs: Vec<Message> = (0..pending)
        .map(|i| delayed("delay-bench", body(100, "p"), base + (i % 3_600_000) as i64))
        .collect();
    load(&c, msgs, 500, 8).await?;
    eprintln!(
        "delay: {pending} pending timers loaded in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let rss_loaded = rss_mib(node.pid());

    // Probes fall due over 10 s, starting 3 s from now.
    let start_at = now_ms() + 3_000;
    let step = 10_000 / probes as i64;
    let probe_msgs: Vec<Message> = (0..probes)
        .map(|i| {
            let at = start_at + i as i64 * step;
            delayed("delay-bench", format!("{at}:{}", body(1000, "")), at)
        })
        .collect();
    load(&c, probe_msgs, 50, 4).await?;
    let seen = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (c, seen) = (c.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            while seen.load(Ordering::Relaxed) < probes && t0.elapsed() < Duration::from_secs(60) {
                let (_, got) = c
                    .receive("delay-bench", "delay-bench", 32, 30_000, 1_000)
                    .await;
                let now = now_ms();
                for m in &got {
                    let text = String::from_utf8_lossy(&m.body);
                    if let Some(at) = text.split(':').next().and_then(|s| s.parse::<i64>().ok()) {
                        h.record(((now - at).max(0) * 1000) as u64 + 1).ok();
                    }
                    c.ack("delay-bench", "delay-bench", &handle(m)).await;
                }
                seen.fetch_add(got.len(), Ordering::Relaxed);
            }
            h
        }));
    }
    let mut h = histogram();
    for t in tasks {
        h.add(t.await?).ok();
    }
    let elapsed = t0.elapsed();
    let mut r = record(
        "delay",
        format!("lateness of {probes} due messages with {pending} pending timers (RSS after loading the timers)"),
        4,
        elapsed,
        seen.load(Ordering::Relaxed) as u64,
        &h,
        rss_loaded,
    );
    r.throughput_msgs_per_s = 0.0;
    Ok(vec![r])
}

fn delayed(topic: &str, text: String, at_ms: i64) -> Message {
    let mut m = message(topic, &text);
    let sp = m.system_properties.get_or_insert_with(Default::default);
    sp.message_type = MessageType::Delay as i32;
    sp.delivery_timestamp = Some(prost_types::Timestamp {
        seconds: at_ms / 1000,
        nanos: ((at_ms % 1000) * 1_000_000) as i32,
    });
    m
}

/// Transactions: half send + commit, one after the other, per task.
pub async fn txn(quick: bool) -> anyhow::Result<Vec<Record>> {
    let per_task: usize = if quick { 100 } else { 1_000 };
    let (node, c, _data) = start().await?;
    c.create_typed_topic("txn-bench", TopicType::Transaction, 8)
        .await;
    let mut out = Vec::new();
    for concurrency in [1usize, 16] {
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                let mut h = histogram();
                for i in 0..per_task {
                    let mut m = message("txn-bench", &body(1024, &format!("{i}")));
                    m.system_properties
                        .get_or_insert_with(Default::default)
                        .message_type = MessageType::Transaction as i32;
                    let t = Instant::now();
                    let sent = c.send(m).await;
                    let e = &sent.entries[0];
                    let r = c
                        .messaging()
                        .end_transaction(c.req(EndTransactionRequest {
                            topic: Some(resource("txn-bench")),
                            message_id: e.message_id.clone(),
                            transaction_id: e.transaction_id.clone(),
                            resolution: TransactionResolution::Commit as i32,
                            source: TransactionSource::SourceClient as i32,
                            trace_context: String::new(),
                        }))
                        .await?
                        .into_inner();
                    anyhow::ensure!(
                        r.status.map_or(0, |s| s.code) == Code::Ok as i32,
                        "commit failed"
                    );
                    h.record(t.elapsed().as_micros() as u64).ok();
                }
                Ok(h)
            }));
        }
        let mut h = histogram();
        for t in tasks {
            h.add(t.await??).ok();
        }
        out.push(record(
            "txn",
            "half send + commit round trip, 1 KiB".into(),
            concurrency,
            t0.elapsed(),
            (per_task * concurrency) as u64,
            &h,
            rss_mib(node.pid()),
        ));
    }
    Ok(out)
}
