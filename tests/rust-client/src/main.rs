//! Drives the official RocketMQ 5 Rust crate (`rocketmq` 5.0.0 from crates.io)
//! against a Pier endpoint and prints one JSON summary line.
//!
//! ```text
//! rust-client --endpoint HOST:PORT --topic T --group G --count N
//!             [--case normal|fifo|delay|transaction] [--timeout SECS]
//!             [--groups K] [--delay SECS] [--access-key AK --secret-key SK]
//! ```
//!
//! Exit code 0 only when every check of the case passed; the whole run is
//! bounded by `--timeout` (the crate can hang, e.g. on Telemetry headers), after
//! which the process exits with code 3.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rocketmq::conf::{ClientOption, ProducerOption, SimpleConsumerOption};
use rocketmq::model::common::{FilterExpression, FilterType};
use rocketmq::model::message::{Message, MessageBuilder, MessageView};
use rocketmq::model::transaction::{Transaction, TransactionResolution};
use rocketmq::{Producer, SimpleConsumer};

struct Args {
    endpoint: String,
    topic: String,
    group: String,
    count: usize,
    case: String,
    timeout: u64,
    groups: usize,
    delay: i64,
    /// A user's keys: every call is signed (a server with auth on).
    access_key: String,
    secret_key: String,
    /// The client's TLS on: it trusts the system's roots, which
    /// rustls-native-certs 0.6 reads from `SSL_CERT_FILE` when set.
    tls: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        endpoint: String::new(),
        topic: String::new(),
        group: String::new(),
        count: 10,
        case: "normal".into(),
        timeout: 120,
        groups: 4,
        delay: 3,
        access_key: String::new(),
        secret_key: String::new(),
        tls: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--endpoint" => a.endpoint = v,
            "--topic" => a.topic = v,
            "--group" => a.group = v,
            "--count" => a.count = num(&v)? as usize,
            "--case" => a.case = v,
            "--timeout" => a.timeout = num(&v)?,
            "--groups" => a.groups = num(&v)?.max(1) as usize,
            "--delay" => a.delay = num(&v)? as i64,
            "--access-key" => a.access_key = v,
            "--secret-key" => a.secret_key = v,
            "--tls" => a.tls = v == "true",
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.endpoint.is_empty() || a.topic.is_empty() || a.group.is_empty() {
        return Err("--endpoint, --topic and --group are required".into());
    }
    Ok(a)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn client_option(a: &Args) -> ClientOption {
    let mut o = ClientOption::default();
    o.set_access_url(&a.endpoint);
    if !a.access_key.is_empty() {
        o.set_access_key(&a.access_key);
        o.set_secret_key(&a.secret_key);
    }
    o.set_enable_tls(a.tls);
    // Short polls keep the receive loop responsive (the crate's default is 40 s).
    o.set_long_polling_timeout(Duration::from_secs(5));
    o
}

fn err(e: impl std::fmt::Debug) -> String {
    format!("{e:?}")
}

/// A JSON object written by hand: (key, already-encoded JSON value).
fn json(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", body.join(","))
}

fn jstr(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Shuts the producer down, then the consumer; a failure ends the case
/// with an error naming which one.
macro_rules! shut_down {
    ($producer:expr, $consumer:expr) => {
        $producer
            .shutdown()
            .await
            .map_err(|e| format!("producer shutdown: {e:?}"))?;
        $consumer
            .shutdown()
            .await
            .map_err(|e| format!("consumer shutdown: {e:?}"))?;
    };
}

async fn start_producer(a: &Args) -> Result<Producer, String> {
    let mut po = ProducerOption::default();
    po.set_topics(vec![a.topic.clone()]);
    let mut p = Producer::new(po, client_option(a)).map_err(err)?;
    p.start()
        .await
        .map_err(|e| format!("producer start: {e:?}"))?;
    Ok(p)
}

async fn start_consumer(a: &Args) -> Result<SimpleConsumer, String> {
    let mut co = SimpleConsumerOption::default();
    co.set_topics(vec![a.topic.clone()]);
    co.set_consumer_group(a.group.clone());
    let mut c = SimpleConsumer::new(co, client_option(a)).map_err(err)?;
    c.start()
        .await
        .map_err(|e| format!("consumer start: {e:?}"))?;
    Ok(c)
}

/// Sends `count` messages, the `i`-th one made by `build`; returns the
/// message ids the server answered with.
async fn send_all<M: Message, E: std::fmt::Debug>(
    producer: &Producer,
    count: usize,
    build: impl Fn(usize) -> Result<M, E>,
) -> Result<HashSet<String>, String> {
    let mut ids = HashSet::new();
    for i in 0..count {
        let msg = build(i).map_err(err)?;
        let r = producer
            .send(msg)
            .await
            .map_err(|e| format!("send {i}: {e:?}"))?;
        ids.insert(r.message_id().to_string());
    }
    Ok(ids)
}

/// Receives (and acks each message right away) until `done` says so; `seen`
/// is called for every message, in the order received, before its ack.
async fn consume(
    c: &SimpleConsumer,
    topic: &str,
    mut seen: impl FnMut(&MessageView) -> bool,
) -> Result<usize, String> {
    let filter = FilterExpression::new(FilterType::Tag, "*");
    let mut received = 0;
    loop {
        let batch = c
            .receive(topic, &filter)
            .await
            .map_err(|e| format!("receive: {e:?}"))?;
        let mut finished = false;
        for m in batch {
            received += 1;
            if seen(&m) {
                finished = true;
            }
            c.ack(&m).await.map_err(|e| format!("ack: {e:?}"))?;
        }
        if finished {
            return Ok(received);
        }
    }
}

/// One more short receive: anything it returns is counted as extra (and acked).
async fn drain_extra(c: &SimpleConsumer, topic: &str) -> Result<Vec<String>, String> {
    let filter = FilterExpression::new(FilterType::Tag, "*");
    let batch = c
        .receive_with(topic, &filter, 32, Duration::from_secs(15))
        .await
        .map_err(|e| format!("receive: {e:?}"))?;
    let mut bodies = Vec::new();
    for m in batch {
        bodies.push(String::from_utf8_lossy(m.body()).into_owned());
        c.ack(&m).await.map_err(|e| format!("ack: {e:?}"))?;
    }
    Ok(bodies)
}

async fn case_normal(a: &Args) -> Result<(bool, Vec<(&'static str, String)>), String> {
    let producer = start_producer(a).await?;
    let consumer = start_consumer(a).await?;
    let t0 = Instant::now();
    let ids = send_all(&producer, a.count, |i| {
        MessageBuilder::builder()
            .set_topic(a.topic.clone())
            .set_tag("rust")
            .set_keys(vec![format!("key-{i}")])
            .set_body(format!("rust-{i}").into_bytes())
            .build()
    })
    .await?;
    let send_ms = t0.elapsed().as_millis();
    let expected: HashSet<String> = (0..a.count).map(|i| format!("rust-{i}")).collect();
    let mut bad_tag = 0usize;
    let t1 = Instant::now();
    let Tally {
        got,
        duplicates,
        unexpected,
    } = receive_expected(&consumer, &a.topic, &expected, |m| {
        if m.tag() != Some("rust") {
            bad_tag += 1;
        }
    })
    .await?;
    let recv_ms = t1.elapsed().as_millis();
    let extra = drain_extra(&consumer, &a.topic).await?;
    let missing = expected.len() - got.len();
    shut_down!(producer, consumer);
    let ok = ids.len() == a.count
        && missing == 0
        && duplicates == 0
        && unexpected == 0
        && bad_tag == 0
        && extra.is_empty();
    Ok((
        ok,
        vec![
            ("sent", a.count.to_string()),
            ("unique_ids", ids.len().to_string()),
            ("received", got.len().to_string()),
            ("duplicates", duplicates.to_string()),
            ("unexpected", unexpected.to_string()),
            ("missing", missing.to_string()),
            ("bad_tag", bad_tag.to_string()),
            ("extra", extra.len().to_string()),
            ("send_ms", send_ms.to_string()),
            ("receive_ms", recv_ms.to_string()),
        ],
    ))
}

async fn case_fifo(a: &Args) -> Result<(bool, Vec<(&'static str, String)>), String> {
    let producer = start_producer(a).await?;
    let consumer = start_consumer(a).await?;
    send_all(&producer, a.count, |i| {
        let (g, seq) = (i % a.groups, i / a.groups);
        MessageBuilder::fifo_message_builder(
            a.topic.clone(),
            format!("fifo-{g}-{seq}").into_bytes(),
            format!("group-{g}"),
        )
        .build()
    })
    .await?;
    let mut next: HashMap<usize, usize> = HashMap::new();
    let mut t = Tally::default();
    let (mut out_of_order, mut wrong_group) = (0usize, 0usize);
    if a.count > 0 {
        consume(&consumer, &a.topic, |m| {
            let b = String::from_utf8_lossy(m.body()).into_owned();
            let parts: Vec<usize> = b
                .trim_start_matches("fifo-")
                .split('-')
                .filter_map(|s| s.parse().ok())
                .collect();
            if parts.len() == 2 {
                let (g, seq) = (parts[0], parts[1]);
                if m.message_group() != Some(format!("group-{g}").as_str()) {
                    wrong_group += 1;
                }
                let n = next.entry(g).or_insert(0);
                if seq != *n {
                    out_of_order += 1;
                }
                *n = seq + 1;
            }
            t.record(m, None);
            t.got.len() >= a.count
        })
        .await?;
    }
    let (got, duplicates) = (t.got, t.duplicates);
    let extra = drain_extra(&consumer, &a.topic).await?;
    shut_down!(producer, consumer);
    let ok = got.len() == a.count
        && out_of_order == 0
        && duplicates == 0
        && wrong_group == 0
        && extra.is_empty();
    Ok((
        ok,
        vec![
            ("sent", a.count.to_string()),
            ("groups", a.groups.to_string()),
            ("received", got.len().to_string()),
            ("out_of_order", out_of_order.to_string()),
            ("duplicates", duplicates.to_string()),
            ("wrong_group", wrong_group.to_string()),
            ("extra", extra.len().to_string()),
        ],
    ))
}

async fn case_delay(a: &Args) -> Result<(bool, Vec<(&'static str, String)>), String> {
    let producer = start_producer(a).await?;
    let consumer = start_consumer(a).await?;
    // The crate takes whole seconds.
    let deliver_at = now_ms() / 1000 + a.delay;
    send_all(&producer, a.count, |i| {
        MessageBuilder::delay_message_builder(
            a.topic.clone(),
            format!("delay-{i}").into_bytes(),
            deliver_at,
        )
        .build()
    })
    .await?;
    let sent_done = now_ms();
    let mut t = Tally::default();
    let (mut early, mut wrong_ts) = (0usize, 0usize);
    let mut max_late_ms = i64::MIN;
    if a.count > 0 {
        consume(&consumer, &a.topic, |m| {
            let now = now_ms();
            let due = deliver_at * 1000;
            if now < due {
                early += 1;
            }
            max_late_ms = max_late_ms.max(now - due);
            // MessageView::delivery_timestamp is what the server sent, in seconds
            // (the crate keeps only Timestamp.seconds).
            if m.delivery_timestamp() != Some(deliver_at) {
                wrong_ts += 1;
            }
            t.record(m, None);
            t.got.len() >= a.count
        })
        .await?;
    }
    let (got, duplicates) = (t.got, t.duplicates);
    shut_down!(producer, consumer);
    let ok = got.len() == a.count && early == 0 && wrong_ts == 0 && duplicates == 0;
    Ok((
        ok,
        vec![
            ("sent", a.count.to_string()),
            ("received", got.len().to_string()),
            ("early", early.to_string()),
            ("wrong_timestamp", wrong_ts.to_string()),
            ("duplicates", duplicates.to_string()),
            ("max_late_ms", max_late_ms.to_string()),
            (
                "sent_before_due_ms",
                (deliver_at * 1000 - sent_done).to_string(),
            ),
        ],
    ))
}

async fn case_transaction(a: &Args) -> Result<(bool, Vec<(&'static str, String)>), String> {
    let checks = Arc::new(AtomicUsize::new(0));
    let mut po = ProducerOption::default();
    po.set_topics(vec![a.topic.clone()]);
    let counter = checks.clone();
    let mut producer = Producer::new_transaction_producer(
        po,
        client_option(a),
        Box::new(move |_tx_id, _message| {
            counter.fetch_add(1, Ordering::SeqCst);
            TransactionResolution::ROLLBACK
        }),
    )
    .map_err(err)?;
    producer
        .start()
        .await
        .map_err(|e| format!("producer start: {e:?}"))?;
    let consumer = start_consumer(a).await?;
    let mut committed = HashSet::new();
    let mut rolled_back = 0usize;
    for i in 0..a.count {
        let body = format!("tx-{i}");
        let msg =
            MessageBuilder::transaction_message_builder(a.topic.clone(), body.clone().into_bytes())
                .build()
                .map_err(err)?;
        let tx = producer
            .send_transaction_message(msg)
            .await
            .map_err(|e| format!("send {i}: {e:?}"))?;
        if i % 2 == 0 {
            tx.commit()
                .await
                .map_err(|e| format!("commit {i}: {e:?}"))?;
            committed.insert(body);
        } else {
            tx.rollback()
                .await
                .map_err(|e| format!("rollback {i}: {e:?}"))?;
            rolled_back += 1;
        }
    }
    let t = receive_expected(&consumer, &a.topic, &committed, |_| {}).await?;
    let (got, unexpected, duplicates) = (t.got, t.unexpected, t.duplicates);
    let extra = drain_extra(&consumer, &a.topic).await?;
    shut_down!(producer, consumer);
    let ok = got.len() == committed.len() && unexpected == 0 && duplicates == 0 && extra.is_empty();
    Ok((
        ok,
        vec![
            ("committed", committed.len().to_string()),
            ("rolled_back", rolled_back.to_string()),
            ("received", got.len().to_string()),
            ("unexpected", unexpected.to_string()),
            ("duplicates", duplicates.to_string()),
            ("extra", extra.len().to_string()),
            ("checks", checks.load(Ordering::SeqCst).to_string()),
        ],
    ))
}

/// Receives until every body of `expected` arrived (or the time is up),
/// tallying each delivery; `also` sees every message too.
async fn receive_expected(
    c: &SimpleConsumer,
    topic: &str,
    expected: &HashSet<String>,
    mut also: impl FnMut(&MessageView),
) -> Result<Tally, String> {
    let mut t = Tally::default();
    if !expected.is_empty() {
        consume(c, topic, |m| {
            also(m);
            t.record(m, Some(expected));
            t.got.len() == expected.len()
        })
        .await?;
    }
    Ok(t)
}

/// The bodies received, each kept once: a body received again counts as a
/// duplicate, one not expected as unexpected (and is not kept).
#[derive(Default)]
struct Tally {
    got: HashSet<String>,
    duplicates: usize,
    unexpected: usize,
}

impl Tally {
    /// Records one delivery; `expected` `None` takes any body.
    fn record(&mut self, m: &MessageView, expected: Option<&HashSet<String>>) {
        let body = String::from_utf8_lossy(m.body()).into_owned();
        if expected.is_some_and(|e| !e.contains(&body)) {
            self.unexpected += 1;
        } else if !self.got.insert(body) {
            self.duplicates += 1;
        }
    }
}

async fn run(a: &Args) -> Result<(bool, Vec<(&'static str, String)>), String> {
    match a.case.as_str() {
        "normal" => case_normal(a).await,
        "fifo" => case_fifo(a).await,
        "delay" => case_delay(a).await,
        "transaction" => case_transaction(a).await,
        other => Err(format!("unknown case {other}")),
    }
}

fn finish(case: &str, started: Instant, ok: bool, mut fields: Vec<(&str, String)>, code: i32) -> ! {
    let mut all = vec![("ok", ok.to_string()), ("case", jstr(case))];
    all.append(&mut fields);
    all.push(("elapsed_ms", started.elapsed().as_millis().to_string()));
    println!("{}", json(&all));
    // Exit at once: the crate's background tasks must not keep the process alive.
    std::process::exit(code)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let started = Instant::now();
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => finish("?", started, false, vec![("error", jstr(&e))], 2),
    };
    match tokio::time::timeout(Duration::from_secs(a.timeout), run(&a)).await {
        Ok(Ok((ok, fields))) => finish(&a.case, started, ok, fields, if ok { 0 } else { 1 }),
        Ok(Err(e)) => finish(&a.case, started, false, vec![("error", jstr(&e))], 1),
        Err(_) => finish(
            &a.case,
            started,
            false,
            vec![("error", jstr(&format!("timed out after {} s", a.timeout)))],
            3,
        ),
    }
}
