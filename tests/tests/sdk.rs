//! Pier's own Rust SDK (`pier-sdk`) against real processes, in both modes
//! (standalone; one store + two proxies): producer (send, batch, FIFO,
//! delay, recall, transactions with a checker answering server checks),
//! SimpleConsumer (receive, ack, change invisibility), PushConsumer (FIFO
//! order, nack -> redelivery -> DLQ, local FIFO retries, graceful shutdown)
//! and a proxy killed during push consumption.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pier::{
    ClientConfig, Code, ConsumeResult, Credentials, Error, FilterExpression, Message, MessageView,
    Producer, PushConsumer, SimpleConsumer, TransactionResolution,
};
use pier_proto::admin::{
    retry_policy, ConsumerGroup, CreateGroupRequest, CustomizedBackoff, RetryPolicy, TopicType,
};
use pier_tests::*;

fn config(nodes: &[&Node]) -> ClientConfig {
    let list: Vec<String> = nodes.iter().map(|n| n.endpoint()).collect();
    ClientConfig::new(&list.join(","))
        .unwrap()
        .with_request_timeout(Duration::from_secs(5))
}

/// A group whose failed messages come back after 100 ms.
async fn quick_group(c: &Raw, name: &str, fifo: bool, max_attempts: u32) {
    c.admin()
        .create_group(CreateGroupRequest {
            group: Some(ConsumerGroup {
                name: name.into(),
                fifo,
                max_attempts,
                retry_policy: Some(RetryPolicy {
                    strategy: Some(retry_policy::Strategy::Customized(CustomizedBackoff {
                        next_ms: vec![100],
                    })),
                }),
                created_at_ms: 0,
            }),
        })
        .await
        .unwrap();
}

/// Polls `cond` every 50 ms until it holds or `limit` passes.
async fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn simple(cfg: ClientConfig, group: &str, topic: &str, wait: Duration) -> SimpleConsumer {
    SimpleConsumer::builder(cfg, group)
        .subscribe(topic, FilterExpression::all())
        .await_duration(wait)
        .start()
        .await
        .unwrap()
}

/// A reader of `%DLQ%<group>`, once the server created it (on its first
/// dead letter).
async fn dlq_reader(cfg: ClientConfig, raw: &Raw, group: &str) -> SimpleConsumer {
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

/// Receives until `n` messages arrived (acking them) or `limit` passes.
async fn drain(c: &SimpleConsumer, n: usize, limit: Duration) -> Vec<MessageView> {
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

// ---------------------------------------------------------------------------

/// Send (one, batch, tags), receive, ack, change the invisibility; errors
/// keep their protocol code.
async fn produce_and_receive(send_cfg: ClientConfig, recv_cfg: ClientConfig, raw: &Raw) {
    raw.create_topic("orders", 4).await;
    raw.create_group("billing", 5).await;

    let e = Producer::builder(send_cfg.clone())
        .topic("no-such-topic")
        .start()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(Code::TopicNotFound), "{e}");

    // Credentials are sent (signed); Pier without ACLs accepts them.
    let producer = Producer::builder(send_cfg.with_credentials(Credentials::new("app", "secret")))
        .topic("orders")
        .start()
        .await
        .unwrap();
    let r = producer
        .send(
            &Message::builder("orders", "one")
                .tag("a")
                .key("k1")
                .property("p", "v")
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(!r.message_id.is_empty());
    let batch: Vec<Message> = (0..9)
        .map(|i| {
            Message::builder("orders", format!("batch-{i}"))
                .tag("b")
                .build()
                .unwrap()
        })
        .collect();
    let receipts = producer.send_batch(&batch).await.unwrap();
    assert_eq!(receipts.len(), 9);
    assert_eq!(
        receipts
            .iter()
            .map(|r| &r.message_id)
            .collect::<HashSet<_>>()
            .len(),
        9
    );

    // A tag filter sees only its messages.
    let tagged = SimpleConsumer::builder(recv_cfg.clone(), "tag-a")
        .subscribe("orders", FilterExpression::Tag("a".into()))
        .await_duration(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    raw.create_group("tag-a", 5).await;
    let got = drain(&tagged, 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body_text(), "one");
    assert_eq!(got[0].properties().get("p").map(String::as_str), Some("v"));
    assert_eq!(got[0].keys(), ["k1"]);
    assert!(tagged
        .receive(8, Duration::from_secs(30))
        .await
        .unwrap()
        .is_empty());
    tagged.shutdown().await;

    let consumer = simple(recv_cfg, "billing", "orders", Duration::from_secs(2)).await;
    let mut bodies = HashSet::new();
    let mut kept = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    while bodies.len() < 10 && Instant::now() < deadline {
        for m in consumer.receive(4, Duration::from_secs(30)).await.unwrap() {
            assert!(m.receipt_handle().len() > 10);
            assert_eq!(m.delivery_attempt(), 1);
            bodies.insert(m.body_text());
            if kept.is_none() {
                kept = Some(m);
            } else {
                consumer.ack(&m).await.unwrap();
            }
        }
    }
    assert_eq!(bodies.len(), 10, "{bodies:?}");

    // Not acked: make it visible again at once; it comes back (attempt 2)
    // and the old handle no longer acks.
    let kept = kept.unwrap();
    let changed = consumer
        .change_invisible_duration(&kept, Duration::ZERO)
        .await
        .unwrap();
    assert_ne!(changed.receipt_handle(), kept.receipt_handle());
    let again = drain_one(&consumer).await;
    assert_eq!(again.message_id(), kept.message_id());
    assert_eq!(again.delivery_attempt(), 2);
    let stale = consumer.ack(&kept).await.unwrap_err();
    assert_eq!(stale.code(), Some(Code::InvalidReceiptHandle), "{stale}");
    assert!(matches!(stale, Error::Status { code: 40013, .. }));
    consumer.ack(&again).await.unwrap();
    assert!(consumer
        .receive(8, Duration::from_secs(30))
        .await
        .unwrap()
        .is_empty());

    let e = consumer
        .receive(0, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
    consumer.shutdown().await;
    producer.shutdown().await;
    let e = producer
        .send(&Message::builder("orders", "late").build().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Shutdown), "{e}");
}

async fn drain_one(c: &SimpleConsumer) -> MessageView {
    for _ in 0..10 {
        if let Some(m) = c.receive(1, Duration::from_secs(30)).await.unwrap().pop() {
            return m;
        }
    }
    panic!("no message came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_produce_and_receive() {
    let data = tempfile::tempdir().unwrap();
    let p = Node::standalone(data.path());
    let raw = Raw::connect(&p.endpoint()).await;
    produce_and_receive(config(&[&p]), config(&[&p]), &raw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_produce_and_receive() {
    let data = tempfile::tempdir().unwrap();
    let store = Node::store(data.path());
    let (pa, pb) = (Node::proxy_of(&store), Node::proxy_of(&store));
    let raw = Raw::connect(&pa.endpoint()).await;
    // Sent through one proxy, received through both (acks may land on
    // either: receipt handles are valid on every proxy).
    produce_and_receive(config(&[&pa]), config(&[&pb, &pa]), &raw).await;
}

// ---------------------------------------------------------------------------

/// Delay messages arrive at their time; a recalled one never does.
async fn delay_and_recall(cfg: ClientConfig, raw: &Raw) {
    raw.create_typed_topic("reminders", TopicType::Delay, 2)
        .await;
    raw.create_group("reminder-svc", 5).await;
    let producer = Producer::builder(cfg.clone())
        .topic("reminders")
        .start()
        .await
        .unwrap();
    let sent_at = Instant::now();
    producer
        .send(
            &Message::builder("reminders", "later")
                .delay(Duration::from_secs(2))
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let recalled = producer
        .send(
            &Message::builder("reminders", "recalled")
                .delay(Duration::from_secs(2))
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let handle = recalled
        .recall_handle
        .clone()
        .expect("delay messages have a recall handle");
    assert_eq!(
        producer.recall("reminders", &handle).await.unwrap(),
        recalled.message_id
    );

    let consumer = simple(cfg, "reminder-svc", "reminders", Duration::from_secs(1)).await;
    assert!(consumer
        .receive(4, Duration::from_secs(30))
        .await
        .unwrap()
        .is_empty());
    let got = drain(&consumer, 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body_text(), "later");
    assert!(
        sent_at.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        sent_at.elapsed()
    );
    assert!(got[0].delivery_time().is_some());
    // The recalled one stays away.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(consumer
        .receive(4, Duration::from_secs(30))
        .await
        .unwrap()
        .is_empty());
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_delay_and_recall() {
    let data = tempfile::tempdir().unwrap();
    let p = Node::standalone(data.path());
    delay_and_recall(config(&[&p]), &Raw::connect(&p.endpoint()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_delay_and_recall() {
    let data = tempfile::tempdir().unwrap();
    let store = Node::store(data.path());
    let (pa, pb) = (Node::proxy_of(&store), Node::proxy_of(&store));
    delay_and_recall(config(&[&pa, &pb]), &Raw::connect(&pa.endpoint()).await).await;
}

// ---------------------------------------------------------------------------

/// Commit delivers, rollback discards, and a transaction left open is
/// resolved by the producer's checker when the server asks.
async fn transactions(cfg: ClientConfig, raw: &Raw) {
    raw.create_typed_topic("payments", TopicType::Transaction, 2)
        .await;
    raw.create_group("ledger", 5).await;
    let checked: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = checked.clone();
    let producer = Producer::builder(cfg.clone())
        .topic("payments")
        .orphan_check_after(Duration::from_secs(1))
        .transaction_checker(move |m: MessageView| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(m.body_text());
                if m.body_text() == "orphan-commit" {
                    TransactionResolution::Commit
                } else {
                    TransactionResolution::Rollback
                }
            }
        })
        .start()
        .await
        .unwrap();

    // Transactions need a checker.
    let plain = Producer::builder(cfg.clone()).start().await.unwrap();
    assert!(matches!(
        plain.begin_transaction(),
        Err(Error::InvalidArgument(_))
    ));
    plain.shutdown().await;

    let mut tx = producer.begin_transaction().unwrap();
    let r = tx
        .send(&Message::builder("payments", "committed").build().unwrap())
        .await
        .unwrap();
    assert!(r.transaction_id.is_some());
    tx.commit().await.unwrap();
    let mut tx = producer.begin_transaction().unwrap();
    tx.send(&Message::builder("payments", "rolled-back").build().unwrap())
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    // Left open: the server asks the checker after ~1 s.
    let mut tx = producer.begin_transaction().unwrap();
    tx.send(
        &Message::builder("payments", "orphan-commit")
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    drop(tx);
    let mut tx = producer.begin_transaction().unwrap();
    tx.send(
        &Message::builder("payments", "orphan-rollback")
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    drop(tx);

    let consumer = simple(cfg, "ledger", "payments", Duration::from_secs(1)).await;
    let got = drain(&consumer, 2, Duration::from_secs(25)).await;
    let bodies: HashSet<String> = got.iter().map(MessageView::body_text).collect();
    assert_eq!(
        bodies,
        HashSet::from(["committed".to_owned(), "orphan-commit".to_owned()])
    );
    wait_until(Duration::from_secs(15), "the rollback check", || {
        checked
            .lock()
            .unwrap()
            .iter()
            .any(|b| b == "orphan-rollback")
    })
    .await;
    assert!(checked
        .lock()
        .unwrap()
        .iter()
        .all(|b| b.starts_with("orphan")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(consumer
        .receive(4, Duration::from_secs(30))
        .await
        .unwrap()
        .is_empty());
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_transactions_with_checker() {
    let data = tempfile::tempdir().unwrap();
    let p = Node::standalone(data.path());
    transactions(config(&[&p]), &Raw::connect(&p.endpoint()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_transactions_with_checker() {
    let data = tempfile::tempdir().unwrap();
    let store = Node::store(data.path());
    let (pa, pb) = (Node::proxy_of(&store), Node::proxy_of(&store));
    transactions(config(&[&pa, &pb]), &Raw::connect(&pa.endpoint()).await).await;
}

// ---------------------------------------------------------------------------

/// A FIFO group: every message group consumed in send order, one failure
/// retried locally (order kept), a message that always fails forwarded to
/// the DLQ after max attempts without blocking its group.
async fn fifo_push(cfg: ClientConfig, raw: &Raw) {
    raw.create_typed_topic("trades", TopicType::Fifo, 4).await;
    quick_group(raw, "matcher", true, 3).await;
    let producer = Producer::builder(cfg.clone())
        .topic("trades")
        .start()
        .await
        .unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_fifo_push_consumer() {
    let data = tempfile::tempdir().unwrap();
    let p = Node::standalone(data.path());
    fifo_push(config(&[&p]), &Raw::connect(&p.endpoint()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_fifo_push_consumer() {
    let data = tempfile::tempdir().unwrap();
    let store = Node::store(data.path());
    let (pa, pb) = (Node::proxy_of(&store), Node::proxy_of(&store));
    fifo_push(config(&[&pa, &pb]), &Raw::connect(&pa.endpoint()).await).await;
}

// ---------------------------------------------------------------------------

/// Concurrent consumption: a failure is a nack, the server redelivers with
/// attempt + 1 after the retry delay, then dead-letters after max attempts.
async fn nack_redelivery_dlq(cfg: ClientConfig, raw: &Raw) {
    raw.create_topic("events", 2).await;
    quick_group(raw, "indexer", false, 3).await;
    let producer = Producer::builder(cfg.clone())
        .topic("events")
        .start()
        .await
        .unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_push_nack_redelivery_dlq() {
    let data = tempfile::tempdir().unwrap();
    let p = Node::standalone(data.path());
    nack_redelivery_dlq(config(&[&p]), &Raw::connect(&p.endpoint()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_push_nack_redelivery_dlq() {
    let data = tempfile::tempdir().unwrap();
    let store = Node::store(data.path());
    let (pa, pb) = (Node::proxy_of(&store), Node::proxy_of(&store));
    nack_redelivery_dlq(config(&[&pa, &pb]), &Raw::connect(&pa.endpoint()).await).await;
}

// ---------------------------------------------------------------------------

/// Shutdown stops receiving and finishes every message already received;
/// nothing received is left unconsumed, and the rest stays for the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_consumer_shutdown_finishes_in_flight_messages() {
    let data = tempfile::tempdir().unwrap();
    let p = Node::standalone(data.path());
    let raw = Raw::connect(&p.endpoint()).await;
    raw.create_topic("jobs", 2).await;
    raw.create_group("workers", 5).await;
    let cfg = config(&[&p]);
    let producer = Producer::builder(cfg.clone())
        .topic("jobs")
        .start()
        .await
        .unwrap();
    let batch: Vec<Message> = (0..100)
        .map(|i| {
            Message::builder("jobs", format!("job-{i}"))
                .build()
                .unwrap()
        })
        .collect();
    producer.send_batch(&batch).await.unwrap();

    let started = Arc::new(AtomicUsize::new(0));
    let finished: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (s, f) = (started.clone(), finished.clone());
    let consumer = PushConsumer::builder(cfg.clone(), "workers")
        .subscribe("jobs", FilterExpression::all())
        .max_cache_messages(10)
        .consumption_concurrency(2)
        .receive_concurrency(3)
        .listener(move |m: MessageView| {
            let (s, f) = (s.clone(), f.clone());
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                f.lock().unwrap().insert(m.body_text());
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

    // The rest is still there for the group, and nothing finished comes back.
    let rest = simple(cfg, "workers", "jobs", Duration::from_secs(1)).await;
    let left = drain(&rest, 100 - done.len(), Duration::from_secs(20)).await;
    let left: HashSet<String> = left.iter().map(MessageView::body_text).collect();
    assert_eq!(left.len(), 100 - done.len());
    assert!(left.is_disjoint(&done));
    rest.shutdown().await;
    producer.shutdown().await;
}

// ---------------------------------------------------------------------------

/// Cluster: a PushConsumer and a Producer configured with both proxies; one
/// proxy is killed mid-consumption. Both keep working through the other and
/// every message is consumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_proxy_killed_during_push_consumption() {
    let data = tempfile::tempdir().unwrap();
    let store = Node::store(data.path());
    let mut pa = Node::proxy_of(&store);
    let pb = Node::proxy_of(&store);
    let raw = Raw::connect(&pb.endpoint()).await;
    raw.create_topic("stream", 4).await;
    raw.create_group("sink", 16).await;
    let cfg = config(&[&pa, &pb]);
    let producer = Producer::builder(cfg.clone())
        .topic("stream")
        .start()
        .await
        .unwrap();
    let first: Vec<Message> = (0..300)
        .map(|i| {
            Message::builder("stream", format!("m-{i}"))
                .build()
                .unwrap()
        })
        .collect();
    for chunk in first.chunks(50) {
        producer.send_batch(chunk).await.unwrap();
    }

    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let s = seen.clone();
    let consumer = PushConsumer::builder(cfg.clone(), "sink")
        .subscribe("stream", FilterExpression::all())
        // Messages a dying proxy took from the store but never delivered
        // come back after this.
        .invisible_duration(Duration::from_secs(3))
        .max_cache_messages(16)
        .listener(move |m: MessageView| {
            let s = s.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                s.lock().unwrap().insert(m.body_text());
                ConsumeResult::Success
            }
        })
        .start()
        .await
        .unwrap();
    wait_until(Duration::from_secs(20), "some consumption", || {
        seen.lock().unwrap().len() >= 60
    })
    .await;
    pa.kill();
    // The producer fails over too.
    for i in 300..400 {
        producer
            .send(
                &Message::builder("stream", format!("m-{i}"))
                    .build()
                    .unwrap(),
            )
            .await
            .unwrap();
    }
    wait_until(Duration::from_secs(60), "all 400 messages consumed", || {
        seen.lock().unwrap().len() == 400
    })
    .await;
    consumer.shutdown().await;
    producer.shutdown().await;
    let seen = seen.lock().unwrap();
    assert!((0..400).all(|i| seen.contains(&format!("m-{i}"))));
}

// ---------------------------------------------------------------------------

/// A namespace prefixes every topic and group (`<ns>%<name>` on Pier);
/// the application only ever names the short ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_scopes_topics_and_groups() {
    let data = tempfile::tempdir().unwrap();
    let p = Node::standalone(data.path());
    let raw = Raw::connect(&p.endpoint()).await;
    raw.create_topic("staging%orders", 2).await;
    raw.create_group("staging%billing", 5).await;
    let cfg = config(&[&p]).with_namespace("staging");
    let producer = Producer::builder(cfg.clone())
        .topic("orders")
        .start()
        .await
        .unwrap();
    producer
        .send(&Message::builder("orders", "scoped").build().unwrap())
        .await
        .unwrap();
    // Without the namespace the topic does not exist.
    let e = Producer::builder(config(&[&p]))
        .topic("orders")
        .start()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(Code::TopicNotFound));

    let consumer = simple(cfg, "billing", "orders", Duration::from_secs(1)).await;
    let m = drain_one(&consumer).await;
    assert_eq!(m.body_text(), "scoped");
    assert_eq!(m.topic(), "orders");
    let m = consumer
        .change_invisible_duration(&m, Duration::from_secs(5))
        .await
        .unwrap();
    consumer.ack(&m).await.unwrap();
    consumer.shutdown().await;
    producer.shutdown().await;
}

// ---------------------------------------------------------------------------

/// Standalone proxy restarted on the same port and data: the clients
/// reconnect (Telemetry sessions too: the restarted proxy reaches the
/// producer's checker) and consumption carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_reconnect_after_a_proxy_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut p = Node::standalone(data.path());
    let port = p.port();
    let raw = Raw::connect(&p.endpoint()).await;
    raw.create_typed_topic("ledger", TopicType::Transaction, 2)
        .await;
    raw.create_group("auditor", 5).await;
    let cfg = config(&[&p]);
    let checks = Arc::new(AtomicUsize::new(0));
    let c = checks.clone();
    let producer = Producer::builder(cfg.clone())
        .topic("ledger")
        .orphan_check_after(Duration::from_secs(1))
        .transaction_checker(move |_m: MessageView| {
            c.fetch_add(1, Ordering::SeqCst);
            async { TransactionResolution::Commit }
        })
        .start()
        .await
        .unwrap();
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let s = seen.clone();
    let consumer = PushConsumer::builder(cfg, "auditor")
        .subscribe("ledger", FilterExpression::all())
        .listener(move |m: MessageView| {
            let s = s.clone();
            async move {
                s.lock().unwrap().insert(m.body_text());
                ConsumeResult::Success
            }
        })
        .start()
        .await
        .unwrap();
    let send = |body: String| {
        let producer = producer.clone();
        async move {
            let mut tx = producer.begin_transaction().unwrap();
            tx.send(&Message::builder("ledger", body).build().unwrap())
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    };
    for i in 0..10 {
        send(format!("before-{i}")).await;
    }
    wait_until(
        Duration::from_secs(15),
        "consumption before the restart",
        || seen.lock().unwrap().len() == 10,
    )
    .await;

    assert!(p.stop(), "clean stop");
    let dir = data.path().to_str().unwrap().to_owned();
    let listen = format!("127.0.0.1:{port}");
    let _p2 = Node::start("pier-proxy", &["--listen", &listen, "--data", &dir]);
    for i in 0..10 {
        send(format!("after-{i}")).await;
    }
    // Left open: only a re-established Telemetry session lets the new
    // proxy process ask the checker.
    let mut tx = producer.begin_transaction().unwrap();
    tx.send(&Message::builder("ledger", "orphan").build().unwrap())
        .await
        .unwrap();
    drop(tx);
    wait_until(
        Duration::from_secs(30),
        "consumption after the restart",
        || seen.lock().unwrap().len() == 21,
    )
    .await;
    assert!(checks.load(Ordering::SeqCst) >= 1);
    consumer.shutdown().await;
    producer.shutdown().await;
}

// ---------------------------------------------------------------------------

/// An address that never answers, listed first, does not stop the clients:
/// calls fail over to the live one, and consumption runs there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_in_the_list_is_skipped() {
    let data = tempfile::tempdir().unwrap();
    let p = Node::standalone(data.path());
    let raw = Raw::connect(&p.endpoint()).await;
    raw.create_topic("orders", 2).await;
    raw.create_group("billing", 5).await;
    // Port 1 on loopback: connection refused.
    let cfg = ClientConfig::new(&format!("127.0.0.1:1,{}", p.endpoint()))
        .unwrap()
        .with_request_timeout(Duration::from_secs(2));
    let producer = Producer::builder(cfg.clone())
        .topic("orders")
        .start()
        .await
        .unwrap();
    for i in 0..20 {
        producer
            .send(
                &Message::builder("orders", format!("m-{i}"))
                    .build()
                    .unwrap(),
            )
            .await
            .unwrap();
    }
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    let consumer = PushConsumer::builder(cfg.clone(), "billing")
        .subscribe("orders", FilterExpression::all())
        .listener(move |_m: MessageView| {
            s.fetch_add(1, Ordering::SeqCst);
            async { ConsumeResult::Success }
        })
        .start()
        .await
        .unwrap();
    wait_until(Duration::from_secs(15), "20 consumed", || {
        seen.load(Ordering::SeqCst) == 20
    })
    .await;
    consumer.shutdown().await;
    producer.shutdown().await;

    // Only unreachable addresses: start fails, it does not hang.
    let t = Instant::now();
    let dead = ClientConfig::new("127.0.0.1:1")
        .unwrap()
        .with_request_timeout(Duration::from_secs(1));
    let e = Producer::builder(dead)
        .topic("orders")
        .start()
        .await
        .unwrap_err();
    assert!(e.is_transport(), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));
}
