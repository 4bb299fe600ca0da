//! Connected clients: listed by the proxy (`pier client list`, the admin
//! API), and dropped with their Telemetry stream once unseen for the expiry
//! time, as RocketMQ drops a client that stopped heartbeating.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pier_proto::rocketmq::*;
use pier_tests::*;

/// `pier client list --json` against `endpoint`: the client ids.
async fn listed(endpoint: &str) -> Vec<serde_json::Value> {
    let endpoint = endpoint.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin("pier"))
            .args(["--endpoint", &endpoint, "--json", "client", "list"])
            .stdin(Stdio::null())
            .output()
            .expect("run pier")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["client_expiry_ms"], 1500);
    v["clients"].as_array().cloned().unwrap_or_default()
}

fn ids(clients: &[serde_json::Value]) -> Vec<String> {
    let mut ids: Vec<String> = clients
        .iter()
        .map(|c| c["client_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_listed_and_expire_without_heartbeats() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::standalone_with(data.path(), &["--client-expiry-ms", "1500"]);
    let quiet = Raw::connect(&node.endpoint()).await;
    quiet.create_topic("t", 1).await;
    let busy = Raw::connect(&node.endpoint()).await;
    let (_keep_quiet, mut quiet_stream) = quiet.producer_stream("t").await;
    let (_keep_busy, _busy_stream) = busy.producer_stream("t").await;

    let clients = listed(&node.endpoint()).await;
    let mut both = vec![quiet.client_id.clone(), busy.client_id.clone()];
    both.sort();
    assert_eq!(ids(&clients), both);
    for c in &clients {
        assert_eq!(c["client_type"], "PRODUCER", "{c}");
        assert_eq!(c["language"], "JAVA", "{c}");
        assert_eq!(c["version"], "5.2.1", "{c}");
        assert_eq!(c["topics"], serde_json::json!(["t"]), "{c}");
    }

    // One client heartbeats every 300 ms, the other says nothing.
    let until = Instant::now() + Duration::from_millis(3500);
    while Instant::now() < until {
        let r = busy
            .messaging()
            .heartbeat(busy.req(HeartbeatRequest::default()))
            .await
            .expect("heartbeat");
        assert_eq!(r.into_inner().status.unwrap().code, Code::Ok as i32);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        ids(&listed(&node.endpoint()).await),
        vec![busy.client_id.clone()],
        "the quiet client was not dropped"
    );
    // And the dropped client's Telemetry stream has ended.
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = quiet_stream.message().await {}
    })
    .await;
    assert!(end.is_ok(), "the expired client's stream is still open");
}
