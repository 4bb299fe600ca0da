//! Pier's own Rust SDK (`pier-sdk`) against real processes, in both modes
//! (standalone; one store + two proxies): producer (send, batch, FIFO,
//! delay, recall, transactions with a checker answering server checks),
//! SimpleConsumer (receive, ack, change invisibility), PushConsumer (FIFO
//! order, nack -> redelivery -> DLQ, local FIFO retries, graceful shutdown)
//! and proxies going away (killed mid-consumption, restarted, unreachable).
//!
//! Modules: [`produce`] (producer and SimpleConsumer paths), [`push`]
//! (PushConsumer), [`failover`]; the shared helpers are below.

use std::time::{Duration, Instant};

use pier::{ClientConfig, Code, FilterExpression, MessageView, SimpleConsumer};
use pier_proto::admin::TopicType;
use pier_tests::*;

mod failover;
mod produce;
mod push;

pub(crate) fn config(nodes: &[&Node]) -> ClientConfig {
    let list: Vec<String> = nodes.iter().map(|n| n.endpoint()).collect();
    ClientConfig::new(&list.join(","))
        .unwrap()
        .with_request_timeout(Duration::from_secs(5))
}

/// A Pier in `mode` with `topic` (`kind`, 2 queues) and `group` (5
/// attempts) reading it, and the SDK's configuration naming its proxies.
pub(crate) async fn start(
    mode: Mode,
    topic: &str,
    kind: TopicType,
    group: &str,
) -> (Pier, ClientConfig) {
    let p = Pier::start(mode, &[]).await;
    p.topic_and_group(topic, kind, 2, group, 5).await;
    let cfg = config(&p.proxies());
    (p, cfg)
}

/// A group whose failed messages come back after 100 ms.
pub(crate) async fn quick_group(c: &Raw, name: &str, fifo: bool, max_attempts: u32) {
    c.create_group_with_backoff(name, fifo, max_attempts, 100)
        .await;
}

/// Polls `cond` every 50 ms until it holds or `limit` passes.
pub(crate) async fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn simple(
    cfg: ClientConfig,
    group: &str,
    topic: &str,
    wait: Duration,
) -> SimpleConsumer {
    SimpleConsumer::builder(cfg, group)
        .subscribe(topic, FilterExpression::all())
        .await_duration(wait)
        .start()
        .await
        .unwrap()
}

/// A reader of `%DLQ%<group>`, once the server created it (on its first
/// dead letter).
pub(crate) async fn dlq_reader(cfg: ClientConfig, raw: &Raw, group: &str) -> SimpleConsumer {
    raw.create_group("dlq-reader", 5).await;
    let topic = format!("%DLQ%{group}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match SimpleConsumer::builder(cfg.clone(), "dlq-reader")
            .subscribe(topic.as_str(), FilterExpression::all())
            .await_duration(Duration::from_secs(1))
            .start()
            .await
        {
            Ok(c) => return c,
            Err(e) if e.code() == Some(Code::TopicNotFound) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{topic}: {e}"),
        }
    }
}

/// Asserts that a receive of up to `batch` messages gets none.
pub(crate) async fn assert_nothing_to_receive(c: &SimpleConsumer, batch: usize) {
    let got = c.receive(batch, Duration::from_secs(30)).await.unwrap();
    assert!(got.is_empty(), "{got:?}");
}

/// Receives `n` messages without acking them (each invisible for
/// `invisible`), within 20 s.
pub(crate) async fn hold(c: &SimpleConsumer, n: usize, invisible: Duration) -> Vec<MessageView> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut held = Vec::new();
    while held.len() < n && Instant::now() < deadline {
        held.extend(c.receive(32, invisible).await.unwrap());
    }
    assert_eq!(held.len(), n, "every message received once");
    held
}

/// Receives until `n` messages arrived (acking them) or `limit` passes.
pub(crate) async fn drain(c: &SimpleConsumer, n: usize, limit: Duration) -> Vec<MessageView> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        for m in c.receive(32, Duration::from_secs(30)).await.unwrap() {
            c.ack(&m).await.unwrap();
            got.push(m);
        }
    }
    got
}
