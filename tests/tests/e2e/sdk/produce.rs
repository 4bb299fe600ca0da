//! Producer paths and the SimpleConsumer: send, batch, filters, ack,
//! invisibility, delay and recall, transactions, namespaces.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pier::{
    Code, Credentials, Error, FilterExpression, Message, MessageView, Producer, SimpleConsumer,
    TransactionResolution,
};
use pier_proto::admin::TopicType;
use pier_tests::*;

use super::*;

// ---------------------------------------------------------------------------

/// Send (one, batch, tags), receive, ack, change the invisibility; errors
/// keep their protocol code.
async fn produce_and_receive(mode: Mode) {
    let p = Pier::start(mode, &[]).await;
    // Sent through one proxy, received through every one, last first (acks
    // may land on either: receipt handles are valid on every proxy).
    let mut proxies = p.proxies();
    let send_cfg = config(&proxies[..1]);
    proxies.reverse();
    let (recv_cfg, raw) = (config(&proxies), &p.raw);
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
    assert_nothing_to_receive(&tagged, 8).await;
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
    assert_nothing_to_receive(&consumer, 8).await;

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

both_modes!(produce_and_receive);

// ---------------------------------------------------------------------------

/// Delay messages arrive at their time; a recalled one never does.
async fn delay_and_recall(mode: Mode) {
    let (_pier, cfg) = start(mode, "reminders", TopicType::Delay, "reminder-svc").await;
    let producer = sdk::producer(&cfg, "reminders").await;
    let sent_at = Instant::now();
    let in_two_seconds = |body: &'static str| {
        Message::builder("reminders", body)
            .delay(Duration::from_secs(2))
            .build()
            .unwrap()
    };
    producer.send(&in_two_seconds("later")).await.unwrap();
    let recalled = producer.send(&in_two_seconds("recalled")).await.unwrap();
    let handle = recalled
        .recall_handle
        .clone()
        .expect("delay messages have a recall handle");
    assert_eq!(
        producer.recall("reminders", &handle).await.unwrap(),
        recalled.message_id
    );

    let consumer = simple(cfg, "reminder-svc", "reminders", Duration::from_secs(1)).await;
    assert_nothing_to_receive(&consumer, 4).await;
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
    assert_nothing_to_receive(&consumer, 4).await;
    consumer.shutdown().await;
    producer.shutdown().await;
}

both_modes!(delay_and_recall);

// ---------------------------------------------------------------------------

/// Commit delivers, rollback discards, and a transaction left open is
/// resolved by the producer's checker when the server asks.
async fn transactions(mode: Mode) {
    let (_pier, cfg) = start(mode, "payments", TopicType::Transaction, "ledger").await;
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
    for body in ["orphan-commit", "orphan-rollback"] {
        let mut tx = producer.begin_transaction().unwrap();
        tx.send(&Message::builder("payments", body).build().unwrap())
            .await
            .unwrap();
        drop(tx);
    }

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
    assert_nothing_to_receive(&consumer, 4).await;
    consumer.shutdown().await;
    producer.shutdown().await;
}

both_modes!(transactions);

// ---------------------------------------------------------------------------

/// A namespace prefixes every topic and group (`<ns>%<name>` on Pier);
/// the application only ever names the short ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_scopes_topics_and_groups() {
    // Created by their full names; the clients name the short ones.
    let (topic, group) = ("staging%orders", "staging%billing");
    let (_pier, plain) = start(Mode::Standalone, topic, TopicType::Normal, group).await;
    let cfg = plain.clone().with_namespace("staging");
    let producer = sdk::producer(&cfg, "orders").await;
    producer
        .send(&Message::builder("orders", "scoped").build().unwrap())
        .await
        .unwrap();
    // Without the namespace the topic does not exist.
    let e = Producer::builder(plain)
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

/// Acks the application makes at once (from tasks of its own) share
/// `AckMessage` calls, and each is still answered for its own message: a
/// stale handle among them fails alone, the others hold (nothing comes
/// back past the invisible duration), with fewer calls than acks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_consumer_acks_at_once_share_calls_each_answered_alone() {
    let (pier, cfg) = start(Mode::Standalone, "picks", TopicType::Normal, "pickers").await;
    let producer = sdk::producer(&cfg, "picks").await;
    let n = 200;
    producer
        .send_batch(&sdk::numbered("picks", "m", 0..n))
        .await
        .unwrap();
    let consumer = Arc::new(simple(cfg.clone(), "pickers", "picks", Duration::from_secs(1)).await);
    let mut held = hold(&consumer, n, Duration::from_secs(3)).await;
    // One message's handle goes stale: its invisibility changed.
    let stale = held.pop().unwrap();
    let renewed = consumer
        .change_invisible_duration(&stale, Duration::from_secs(3))
        .await
        .unwrap();

    let mut acks = tokio::task::JoinSet::new();
    for m in held.iter().cloned().chain([stale.clone()]) {
        let c = consumer.clone();
        acks.spawn(async move { (m.message_id().to_owned(), c.ack(&m).await) });
    }
    let mut failed = Vec::new();
    while let Some(done) = acks.join_next().await {
        let (id, answer) = done.unwrap();
        if let Err(e) = answer {
            failed.push((id, e.code()));
        }
    }
    assert_eq!(
        failed,
        vec![(
            stale.message_id().to_owned(),
            Some(Code::InvalidReceiptHandle)
        )],
        "only the stale handle fails"
    );
    consumer.ack(&renewed).await.unwrap();
    // Past the invisible duration: an ack that did not hold would show as
    // a redelivery.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_nothing_to_receive(&consumer, 32).await;

    let page = pier_tests::prometheus::scrape(
        pier.proxies()[0]
            .metrics_addr
            .as_deref()
            .expect("the launcher turns the metrics endpoint on"),
    );
    // gRPC OK: a call's entries carry their RocketMQ codes in its body.
    let calls = pier_tests::prometheus::sample(
        &page,
        "rocketmq_rpc_latency_count",
        &[("request_code", "AckMessage"), ("response_code", "OK")],
    )
    .unwrap_or(0.0);
    assert!(
        calls >= 2.0 && calls < n as f64,
        "{calls} AckMessage calls for {} acks",
        n + 1
    );
    consumer.shutdown().await;
    producer.shutdown().await;
}

/// Acks after the consumer shut down fail at once with `Shutdown`, more of
/// them than there are call slots too: none waits for a call that the
/// shutdown cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_consumer_acks_after_shutdown_fail_at_once() {
    let (_pier, cfg) = start(Mode::Standalone, "late", TopicType::Normal, "laters").await;
    let producer = sdk::producer(&cfg, "late").await;
    producer
        .send_batch(&sdk::numbered("late", "m", 0..8))
        .await
        .unwrap();
    let consumer = simple(cfg.clone(), "laters", "late", Duration::from_secs(1)).await;
    let held = hold(&consumer, 8, Duration::from_secs(30)).await;
    consumer.shutdown().await;
    for m in &held {
        let answer = tokio::time::timeout(Duration::from_secs(5), consumer.ack(m))
            .await
            .expect("an ack after shutdown answers at once");
        assert!(matches!(answer, Err(Error::Shutdown)), "{answer:?}");
    }
    producer.shutdown().await;
}
