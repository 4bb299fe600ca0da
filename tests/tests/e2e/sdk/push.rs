//! PushConsumer: FIFO order, local retries and DLQ, nack -> redelivery ->
//! DLQ, graceful shutdown.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pier::{ConsumeResult, FilterExpression, Message, MessageView, PushConsumer};
use pier_proto::admin::TopicType;
use pier_tests::prometheus::{sample, scrape};
use pier_tests::*;

use super::*;

// ---------------------------------------------------------------------------

/// A FIFO group: every message group consumed in send order, one failure
/// retried locally (order kept), a message that always fails forwarded to
/// the DLQ after max attempts without blocking its group.
async fn fifo_push(mode: Mode) {
    let p = Pier::start(mode, &[]).await;
    let (cfg, raw) = (config(&p.proxies()), &p.raw);
    raw.create_typed_topic("trades", TopicType::Fifo, 4).await;
    quick_group(raw, "matcher", true, 3).await;
    let producer = sdk::producer(&cfg, "trades").await;
    for i in 0..20 {
        for g in ["g1", "g2", "g3"] {
            let body = if g == "g2" && i == 5 {
                "poison".to_owned()
            } else {
                format!("{g}-{i}")
            };
            producer
                .send(
                    &Message::builder("trades", body)
                        .message_group(g)
                        .build()
                        .unwrap(),
                )
                .await
                .unwrap();
        }
    }
    let order: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
    let attempts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let (o, a) = (order.clone(), attempts.clone());
    let consumer = PushConsumer::builder(cfg.clone(), "matcher")
        .subscribe("trades", FilterExpression::all())
        .listener(move |m: MessageView| {
            let (o, a) = (o.clone(), a.clone());
            async move {
                let body = m.body_text();
                let n = {
                    let mut a = a.lock().unwrap();
                    let n = a.entry(body.clone()).or_default();
                    *n += 1;
                    *n
                };
                if body == "poison" || (body == "g1-3" && n == 1) {
                    return ConsumeResult::Failure;
                }
                let group = m.message_group().unwrap().to_owned();
                o.lock().unwrap().entry(group).or_default().push(body);
                ConsumeResult::Success
            }
        })
        .start()
        .await
        .unwrap();
    assert!(consumer.is_fifo());
    wait_until(Duration::from_secs(30), "59 messages consumed", || {
        order.lock().unwrap().values().map(Vec::len).sum::<usize>() == 59
    })
    .await;
    for (g, bodies) in order.lock().unwrap().iter() {
        let expected: Vec<String> = (0..20)
            .map(|i| format!("{g}-{i}"))
            .filter(|b| b != "g2-5")
            .collect();
        assert_eq!(bodies, &expected, "group {g} out of order");
    }
    assert_eq!(
        attempts.lock().unwrap()["poison"],
        3,
        "max attempts, then the DLQ"
    );
    assert_eq!(attempts.lock().unwrap()["g1-3"], 2, "retried once locally");
    consumer.shutdown().await;

    let dlq = dlq_reader(cfg, raw, "matcher").await;
    let dead = drain(&dlq, 1, Duration::from_secs(10)).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body_text(), "poison");
    dlq.shutdown().await;
    producer.shutdown().await;
}

both_modes!(fifo_push);

// ---------------------------------------------------------------------------

/// Concurrent consumption: a failure is a nack, the server redelivers with
/// attempt + 1 after the retry delay, then dead-letters after max attempts.
async fn nack_redelivery_dlq(mode: Mode) {
    let p = Pier::start(mode, &[]).await;
    let (cfg, raw) = (config(&p.proxies()), &p.raw);
    raw.create_topic("events", 2).await;
    quick_group(raw, "indexer", false, 3).await;
    let producer = sdk::producer(&cfg, "events").await;
    for i in 0..30 {
        let body = if i == 7 {
            "poison".to_owned()
        } else {
            format!("e-{i}")
        };
        producer
            .send(&Message::builder("events", body).build().unwrap())
            .await
            .unwrap();
    }
    let ok: Arc<Mutex<Vec<String>>> = Arc::default();
    let poison_attempts: Arc<Mutex<Vec<i32>>> = Arc::default();
    let (k, p) = (ok.clone(), poison_attempts.clone());
    let consumer = PushConsumer::builder(cfg.clone(), "indexer")
        .subscribe("events", FilterExpression::all())
        .max_cache_messages(8)
        .consumption_concurrency(4)
        .receive_concurrency(2)
        .listener(move |m: MessageView| {
            let (k, p) = (k.clone(), p.clone());
            async move {
                if m.body_text() == "poison" {
                    p.lock().unwrap().push(m.delivery_attempt());
                    return ConsumeResult::Failure;
                }
                k.lock().unwrap().push(m.body_text());
                ConsumeResult::Success
            }
        })
        .start()
        .await
        .unwrap();
    assert!(!consumer.is_fifo());
    wait_until(
        Duration::from_secs(30),
        "29 consumed and 3 poison attempts",
        || ok.lock().unwrap().len() >= 29 && poison_attempts.lock().unwrap().len() >= 3,
    )
    .await;
    let dlq = dlq_reader(cfg, raw, "indexer").await;
    let dead = drain(&dlq, 1, Duration::from_secs(15)).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body_text(), "poison");
    tokio::time::sleep(Duration::from_millis(500)).await;
    consumer.shutdown().await;
    let mut attempts = poison_attempts.lock().unwrap().clone();
    attempts.sort();
    assert_eq!(attempts, vec![1, 2, 3]);
    let ok = ok.lock().unwrap().clone();
    assert_eq!(ok.len(), 29, "each good message consumed once");
    assert_eq!(ok.iter().collect::<HashSet<_>>().len(), 29);
    assert_eq!(consumer.consumed(), 29);
    dlq.shutdown().await;
    producer.shutdown().await;
}

both_modes!(nack_redelivery_dlq);

// ---------------------------------------------------------------------------

/// Shutdown stops receiving and finishes every message already received;
/// nothing received is left unconsumed, and the rest stays for the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_consumer_shutdown_finishes_in_flight_messages() {
    let (_pier, cfg) = start(Mode::Standalone, "jobs", TopicType::Normal, "workers").await;
    let producer = sdk::producer(&cfg, "jobs").await;
    let batch = sdk::numbered("jobs", "job", 0..100);
    producer.send_batch(&batch).await.unwrap();

    let started = Arc::new(AtomicUsize::new(0));
    let finished: Arc<Mutex<HashSet<String>>> = Arc::default();
    // Listeners running now, and the most ever at once.
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (s, f, r, top) = (
        started.clone(),
        finished.clone(),
        running.clone(),
        most.clone(),
    );
    let consumer = PushConsumer::builder(cfg.clone(), "workers")
        .subscribe("jobs", FilterExpression::all())
        .max_cache_messages(10)
        .consumption_concurrency(2)
        .receive_concurrency(3)
        .listener(move |m: MessageView| {
            let (s, f, r, top) = (s.clone(), f.clone(), r.clone(), top.clone());
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                top.fetch_max(r.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                f.lock().unwrap().insert(m.body_text());
                r.fetch_sub(1, Ordering::SeqCst);
                ConsumeResult::Success
            }
        })
        .start()
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), "consumption to start", || {
        assert!(consumer.cached_messages() <= 10, "the cache bound holds");
        started.load(Ordering::SeqCst) >= 6
    })
    .await;
    consumer.shutdown().await;
    assert_eq!(consumer.cached_messages(), 0);
    let done = finished.lock().unwrap().clone();
    assert_eq!(
        started.load(Ordering::SeqCst),
        done.len(),
        "every started message finished"
    );
    assert!(done.len() < 100, "shutdown stopped receiving");
    // Acks no longer hold a consumption slot, but listeners still do.
    assert_eq!(most.load(Ordering::SeqCst), 2, "consumption_concurrency");

    // The rest is still there for the group, and nothing finished comes back.
    let rest = simple(cfg, "workers", "jobs", Duration::from_secs(1)).await;
    let left = drain(&rest, 100 - done.len(), Duration::from_secs(20)).await;
    let left: HashSet<String> = left.iter().map(MessageView::body_text).collect();
    assert_eq!(left.len(), 100 - done.len());
    assert!(left.is_disjoint(&done));
    rest.shutdown().await;
    producer.shutdown().await;
}

/// Acks that queue behind calls in flight share an `AckMessage` call, and
/// each message is still acked for good: none comes back, and the proxy
/// served fewer ack calls than there were messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_consumer_acks_share_calls_and_hold() {
    let (pier, cfg) = start(Mode::Standalone, "bulk", TopicType::Normal, "bulkers").await;
    let producer = sdk::producer(&cfg, "bulk").await;
    let n = 300;
    producer
        .send_batch(&sdk::numbered("bulk", "m", 0..n))
        .await
        .unwrap();

    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let s = seen.clone();
    let consumer = PushConsumer::builder(cfg.clone(), "bulkers")
        .subscribe("bulk", FilterExpression::all())
        .consumption_concurrency(32)
        .invisible_duration(Duration::from_secs(3))
        .listener(move |m: MessageView| {
            *s.lock().unwrap().entry(m.body_text()).or_default() += 1;
            async { ConsumeResult::Success }
        })
        .start()
        .await
        .unwrap();
    wait_until(Duration::from_secs(20), "every message consumed", || {
        seen.lock().unwrap().len() == n
    })
    .await;
    // Past the invisible duration: an ack that did not hold would show as
    // a second delivery.
    tokio::time::sleep(Duration::from_secs(4)).await;
    consumer.shutdown().await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), n);
    assert!(seen.values().all(|&k| k == 1), "redelivered: {seen:?}");

    let page = scrape(
        pier.proxies()[0]
            .metrics_addr
            .as_deref()
            .expect("the launcher turns the metrics endpoint on"),
    );
    let calls = sample(
        &page,
        "rocketmq_rpc_latency_count",
        &[("request_code", "AckMessage"), ("response_code", "OK")],
    )
    .unwrap_or(0.0);
    assert!(
        calls >= (n / 64) as f64 && calls < n as f64,
        "{calls} AckMessage calls for {n} messages"
    );
    producer.shutdown().await;
}
