//! End to end through real processes, in both modes: standalone (one
//! proxy with its embedded store) and cluster (one store, two proxies).

use std::collections::HashSet;
use std::time::Duration;

use pier_proto::rocketmq::Code;
use pier_tests::*;
use pier_tests::{both_modes, Mode};

async fn backlog(c: &Raw, group: &str) -> (u64, u64, u64) {
    let d = c.describe_group(group).await;
    let ready = d.backlog.iter().map(|b| b.ready).sum();
    let inflight = d.backlog.iter().map(|b| b.inflight).sum();
    (ready, inflight, d.dlq)
}

/// Send through `a`, receive through `b`, ack through `a`; then
/// redelivery with attempt 2, and the DLQ after max attempts.
async fn consume_across(a: &Raw, b: &Raw) {
    a.create_topic("orders", 4).await;
    a.create_group("billing", 2).await;
    let mut sent = HashSet::new();
    for i in 0..20 {
        let body = format!("order-{i}");
        let r = a.send(message("orders", &body)).await;
        assert_eq!(r.entries.len(), 1);
        assert_eq!(
            r.entries[0].status.as_ref().unwrap().code,
            Code::Ok as i32,
            "{r:?}"
        );
        sent.insert(body);
    }

    let mut got = HashSet::new();
    while got.len() < sent.len() {
        let (code, msgs) = b.receive("billing", "orders", 8, 30_000, 2_000).await;
        assert_eq!(
            code,
            Code::Ok,
            "receive found nothing with {} of 20 seen",
            got.len()
        );
        for m in msgs {
            assert_eq!(attempt(&m), 1);
            let sp = m.system_properties.as_ref().unwrap();
            assert_eq!(sp.body_digest.as_ref().unwrap().checksum.len(), 32);
            assert!(got.insert(body(&m)), "duplicate {}", body(&m));
            assert_eq!(a.ack("billing", "orders", &handle(&m)).await, Code::Ok);
        }
    }
    assert_eq!(got, sent);
    let (code, msgs) = b.receive("billing", "orders", 8, 30_000, 0).await;
    assert_eq!(code, Code::MessageNotFound);
    assert!(msgs.is_empty());
    assert_eq!(backlog(a, "billing").await, (0, 0, 0));

    // Not acked within its invisible time: delivered again, attempt 2.
    a.send(message("orders", "flaky")).await;
    let (_, first) = b.receive("billing", "orders", 1, 1_000, 2_000).await;
    assert_eq!(first.len(), 1);
    assert_eq!(attempt(&first[0]), 1);
    let (_, again) = a.receive("billing", "orders", 1, 1_000, 5_000).await;
    assert_eq!(again.len(), 1, "redelivered after the invisible time");
    assert_eq!(attempt(&again[0]), 2);
    assert_eq!(body(&again[0]), "flaky");
    // The first handle is stale now.
    assert_eq!(
        a.ack("billing", "orders", &handle(&first[0])).await,
        Code::InvalidReceiptHandle
    );

    // Attempt 2 of max 2 expires: the message goes to %DLQ%billing.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (code, none) = b.receive("billing", "orders", 1, 1_000, 500).await;
    assert_eq!(code, Code::MessageNotFound);
    assert!(none.is_empty());
    assert_eq!(
        backlog(a, "billing").await.2,
        1,
        "one message dead-lettered"
    );
}

/// [`consume_across`], then a restart of the node holding the data:
/// acknowledged sends survive it, acked ones stay acked.
async fn end_to_end_and_restart(mode: Mode) {
    let mut p = Pier::start(mode, &[]).await;
    let other = p.other().await;
    consume_across(&p.raw, &other).await;

    for i in 0..10 {
        let r = p.raw.send(message("orders", &format!("durable-{i}"))).await;
        assert_eq!(r.status.unwrap().code, Code::Ok as i32);
    }
    assert!(p.restart_data_node().await, "clean exit on SIGTERM");
    let (a, b) = (p.raw.clone(), p.other().await);
    let mut got = HashSet::new();
    for _ in 0..40 {
        let (code, msgs) = b.receive("billing", "orders", 32, 30_000, 500).await;
        if code == Code::ProxyTimeout {
            // The proxies of a cluster reconnect to the restarted store.
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        for m in &msgs {
            assert_eq!(a.ack("billing", "orders", &handle(m)).await, Code::Ok);
            got.insert(body(m));
        }
        if got.len() == 10 {
            break;
        }
    }
    let want: HashSet<String> = (0..10).map(|i| format!("durable-{i}")).collect();
    assert_eq!(got, want);
}

both_modes!(end_to_end_and_restart);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loses_no_acknowledged_send() {
    let data = tempfile::tempdir().unwrap();
    let mut proxy = Node::standalone(data.path());
    let c = Raw::connect(&proxy.endpoint()).await;
    c.create_topic("ledger", 2).await;
    c.create_group("audit", 17).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let r = c.send(message("ledger", &format!("entry-{i}"))).await;
            (
                i,
                r.entries[0].status.as_ref().unwrap().code == Code::Ok as i32,
            )
        }));
    }
    let mut acked = HashSet::new();
    for t in tasks {
        let (i, ok) = t.await.unwrap();
        if ok {
            acked.insert(format!("entry-{i}"));
        }
    }
    assert_eq!(acked.len(), 200);
    proxy.kill();
    let proxy = Node::standalone(data.path());
    let c = Raw::connect(&proxy.endpoint()).await;
    let mut got = HashSet::new();
    loop {
        let (_, msgs) = c.receive("audit", "ledger", 64, 30_000, 500).await;
        if msgs.is_empty() {
            break;
        }
        got.extend(msgs.iter().map(body));
    }
    assert!(
        acked.is_subset(&got),
        "lost after SIGKILL: {:?}",
        acked.difference(&got).collect::<Vec<_>>()
    );
}
