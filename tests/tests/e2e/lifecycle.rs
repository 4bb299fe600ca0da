//! Auto-renewed receipts (push consumers), graceful shutdown, and failures
//! the server caused (what the client is told, what the log says).

use std::time::{Duration, Instant};

use pier_proto::rocketmq::*;
use pier_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_renew_keeps_a_delivery_invisible_and_its_first_handle_valid() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("proxy.toml");
    // A 2 s invisibility that the proxy must keep renewing.
    std::fs::write(&config, "auto_renew_invisible_ms = 2000\n").unwrap();
    let store_dir = data.path().join("store");
    let proxy = Node::start(
        "pier-proxy",
        &[
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--data",
            store_dir.to_str().unwrap(),
        ],
    );
    let c = Raw::connect(&proxy.endpoint()).await;
    c.create_topic("renew", 1).await;
    c.create_group("push", 17).await;
    c.send(message("renew", "slow-work")).await;

    let req = ReceiveMessageRequest {
        group: Some(resource("push")),
        message_queue: Some(c.queue("renew")),
        filter_expression: None,
        batch_size: 0, // Node push sends 0 when the batch size is unset.
        invisible_duration: None,
        auto_renew: true,
        long_polling_timeout: Some(prost_types::Duration {
            seconds: 2,
            nanos: 0,
        }),
        attempt_id: Some("a1".into()),
    };
    let (code, msgs) = c.receive_raw(req).await;
    assert_eq!(code, Code::Ok);
    assert_eq!(msgs.len(), 1);
    let first = handle(&msgs[0]);

    // Three invisibility periods later the message is still not visible to
    // the group: the proxy renewed it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (code, none) = c.receive("push", "renew", 1, 30_000, 0).await;
    assert_eq!(
        code,
        Code::MessageNotFound,
        "auto-renewed message was redelivered: {none:?}"
    );
    // And the handle of the first delivery still acks it.
    assert_eq!(c.ack("push", "renew", &first).await, Code::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_long_polls_and_exits_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let mut proxy = Node::standalone(data.path());
    let c = Raw::connect(&proxy.endpoint()).await;
    c.create_topic("quiet", 1).await;
    c.create_group("waiter", 17).await;
    // An open Telemetry stream (every client keeps one) must not hold the stop.
    let (_keep, mut telemetry) = c.producer_stream("quiet").await;
    let c2 = c.clone();
    let poll = tokio::spawn(async move {
        let t0 = Instant::now();
        let r = c2.receive("waiter", "quiet", 1, 30_000, 15_000).await;
        (r, t0.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped = tokio::task::spawn_blocking(move || proxy.stop())
        .await
        .unwrap();
    let ((code, msgs), waited) = poll.await.unwrap();
    assert_eq!(code, Code::MessageNotFound);
    assert!(msgs.is_empty());
    assert!(
        waited < Duration::from_secs(5),
        "long poll held shutdown for {waited:?}"
    );
    assert!(stopped, "proxy exited with an error");
    let end = tokio::time::timeout(Duration::from_secs(2), telemetry.message()).await;
    assert!(
        matches!(end, Ok(Ok(None)) | Ok(Err(_))),
        "telemetry stream ended: {end:?}"
    );
}

/// The WARN lines a node logged until it has been quiet for `quiet`.
fn warn_lines(node: &Node, quiet: Duration) -> Vec<String> {
    let mut warns = Vec::new();
    while let Ok(line) = node.log.recv_timeout(quiet) {
        if line.contains("WARN") {
            warns.push(line);
        }
    }
    warns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_fails_sends_with_one_warn_line_not_one_per_call() {
    let data = tempfile::tempdir().unwrap();
    let mut store = Node::store(data.path());
    let proxy = Node::proxy_of(&store);
    let c = Raw::connect(&proxy.endpoint()).await;
    c.create_topic("orders", 1).await;
    let before = c.send(message("orders", "before")).await;
    assert_eq!(before.status.map(|s| s.code), Some(Code::Ok as i32));

    store.kill();
    for i in 0..30 {
        let r = c.send(message("orders", &format!("during-{i}"))).await;
        let s = r.status.expect("a status");
        assert_eq!(s.code, Code::ProxyTimeout as i32, "{s:?}");
        assert_eq!(s.message, "store unavailable; retry later");
        assert_eq!(r.entries.len(), 1);
    }
    let warns: Vec<String> = warn_lines(&proxy, Duration::from_secs(1))
        .into_iter()
        .filter(|l| l.contains("SendMessage"))
        .collect();
    assert_eq!(warns.len(), 1, "one line for 30 failed sends: {warns:#?}");
    let line = &warns[0];
    for part in ["topic orders", "store unavailable", "suppressed=0"] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
}

/// `--wal-dir`: the embedded store's write-ahead log goes there, a kill -9
/// loses no acknowledged send, and a restart without the setting is
/// refused (RocksDB would open the store without the writes only in its
/// log) with an error saying where the log is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wal_dir_holds_the_log_and_a_restart_without_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (data, wal) = (dir.path().join("data"), dir.path().join("wal"));
    let with_wal = ["--wal-dir", wal.to_str().unwrap()];
    let mut proxy = Node::standalone_with(&data, &with_wal);
    let c = Raw::connect(&proxy.endpoint()).await;
    c.create_topic("walled", 1).await;
    c.create_group("readers", 16).await;
    let sent = c.send(message("walled", "kept")).await;
    assert_eq!(sent.status.expect("a status").code(), Code::Ok);
    proxy.kill();

    let logs = |d: &std::path::Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".log")
            })
            .count()
    };
    assert!(logs(&wal) > 0, "the log is in --wal-dir");
    assert_eq!(logs(&data), 0, "and not beside the data");

    let out = run_to_exit(
        "pier-proxy",
        [
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "",
            "--data",
            data.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("write-ahead log"), "{stderr}");
    let wal_real = std::fs::canonicalize(&wal).unwrap();
    assert!(
        stderr.contains(wal_real.to_str().unwrap()),
        "names where the log is: {stderr}"
    );

    let proxy = Node::standalone_with(&data, &with_wal);
    let c = Raw::connect(&proxy.endpoint()).await;
    let (code, got) = c.receive("readers", "walled", 1, 30_000, 2_000).await;
    assert_eq!(code, Code::Ok);
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["kept"]);
}
