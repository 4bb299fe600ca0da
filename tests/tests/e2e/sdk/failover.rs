//! Proxies going away: one killed mid-consumption, one restarted, one
//! never reachable.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pier::{
    ClientConfig, ConsumeResult, FilterExpression, Message, MessageView, Producer, PushConsumer,
    TransactionResolution,
};
use pier_proto::admin::TopicType;
use pier_tests::*;

use super::*;

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
    let producer = sdk::producer(&cfg, "stream").await;
    for chunk in sdk::numbered("stream", "m", 0..300).chunks(50) {
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
    sdk::send_each(&producer, &sdk::numbered("stream", "m", 300..400)).await;
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
    let (p, _) = start(Mode::Standalone, "orders", TopicType::Normal, "billing").await;
    // Port 1 on loopback: connection refused.
    let cfg = ClientConfig::new(&format!("127.0.0.1:1,{}", p.raw.endpoint))
        .unwrap()
        .with_request_timeout(Duration::from_secs(2));
    let producer = sdk::producer(&cfg, "orders").await;
    sdk::send_each(&producer, &sdk::numbered("orders", "m", 0..20)).await;
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
