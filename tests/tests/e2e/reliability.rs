//! What an OK answer promises across a crash (`kill -9`): an acked message
//! is never delivered again, and a delivery's attempt count is not reset.
//! And a receive whose messages add up to more than the store link carries
//! delivers them over several receives instead of failing and counting
//! attempts for messages nobody saw. (The long-running version with
//! producers and consumers under repeated kills is the crash checker.)

use std::time::{Duration, Instant};

use pier_proto::rocketmq::*;
use pier_tests::*;

/// A standalone node, or a store node with one proxy; the part a crash
/// kills is the one holding the data (the node, or the store).
struct Deployment {
    data: tempfile::TempDir,
    durable: Node,
    proxy: Option<Node>,
}

impl Deployment {
    fn start(cluster: bool) -> Deployment {
        let data = tempfile::tempdir().unwrap();
        if cluster {
            let store = Node::store(data.path());
            let proxy = Node::proxy_of(&store);
            Deployment {
                data,
                durable: store,
                proxy: Some(proxy),
            }
        } else {
            let node = Node::standalone(data.path());
            Deployment {
                data,
                durable: node,
                proxy: None,
            }
        }
    }

    fn endpoint(&self) -> String {
        self.proxy.as_ref().unwrap_or(&self.durable).endpoint()
    }

    /// `kill -9`, then a restart on the same data and the same port (a
    /// cluster's proxy keeps its store address).
    fn crash_and_restart(&mut self) {
        self.durable.kill();
        let listen = format!("127.0.0.1:{}", self.durable.port());
        let dir = self.data.path().to_str().unwrap().to_owned();
        let binary = if self.proxy.is_some() {
            "pier-store"
        } else {
            "pier-proxy"
        };
        self.durable = Node::start(binary, &["--listen", &listen, "--data", &dir]);
    }
}

/// Receives until `want` messages came or `within` passed, retrying while
/// the node is still coming back.
async fn receive_all(c: &Raw, topic: &str, want: usize, within: Duration) -> Vec<Message> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        let req = ReceiveMessageRequest {
            filter_expression: None,
            invisible_duration: Some(millis(3_000)),
            long_polling_timeout: Some(millis(1_000)),
            ..c.receive_request("g", topic, 32)
        };
        let stream = c.messaging().receive_message(c.req(req)).await;
        let Ok(stream) = stream else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut stream = stream.into_inner();
        while let Ok(Some(frame)) = stream.message().await {
            if let Some(receive_message_response::Content::Message(m)) = frame.content {
                got.push(m);
            }
        }
    }
    got
}

async fn acks_and_attempts_survive_a_kill(cluster: bool) {
    let mut d = Deployment::start(cluster);
    let c = Raw::connect(&d.endpoint()).await;
    c.create_topic("t", 4).await;
    c.create_group("g", 17).await;
    for i in 0..300 {
        assert_eq!(
            c.send(message("t", &format!("m{i}")))
                .await
                .status
                .unwrap()
                .code,
            Code::Ok as i32
        );
    }
    // Every message acked one by one, as the official consumers do.
    let mut acked = 0;
    while acked < 300 {
        let got = receive_all(&c, "t", 1, Duration::from_secs(5)).await;
        assert!(!got.is_empty(), "only {acked} of 300 delivered");
        for m in &got {
            assert_eq!(c.ack("g", "t", &handle(m)).await, Code::Ok);
            acked += 1;
        }
    }
    // One more, received and left in flight: its first attempt is recorded.
    c.send(message("t", "probe")).await;
    let probe = receive_all(&c, "t", 1, Duration::from_secs(5)).await;
    assert_eq!(probe.len(), 1);
    assert_eq!(attempt(&probe[0]), 1);

    // The crash comes right after the last OK answers.
    d.crash_and_restart();
    let c = Raw::connect(&d.endpoint()).await;
    // Past the 3 s invisibility, only the probe comes back, as attempt 2
    // (looking for less than another invisibility, long polls included, so
    // it comes back once).
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let again = receive_all(&c, "t", 2, Duration::from_millis(1500)).await;
    let bodies: Vec<String> = again
        .iter()
        .map(|m| format!("{} attempt {}", body(m), attempt(m)))
        .collect();
    assert_eq!(
        bodies,
        vec!["probe attempt 2"],
        "acked messages came back, or the attempt count was reset"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_acks_and_attempts_survive_a_kill() {
    acks_and_attempts_survive_a_kill(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_acks_and_attempts_survive_a_kill() {
    acks_and_attempts_survive_a_kill(true).await;
}

/// Twenty 4 MiB messages, asked for 32 at a time through a cluster proxy
/// by a group allowing 2 attempts: every one is delivered, first attempt,
/// none dead-lettered (the store link carries at most 64 MiB per reply).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_receives_of_big_messages_deliver_all_and_dead_letter_none() {
    let d = Deployment::start(true);
    let c = Raw::connect(&d.endpoint()).await;
    c.create_topic("t", 4).await;
    c.create_group("g", 2).await;
    for i in 0..20 {
        let m = message_with_id("t", format!("BIG{i:04}"), vec![b'x'; 4 << 20]);
        assert_eq!(c.send(m).await.status.unwrap().code, Code::Ok as i32);
    }
    // Two receives left unacked, as a push consumer asking for 32 might.
    for _ in 0..2 {
        let (code, got) = c.receive("g", "t", 32, 1_000, 0).await;
        assert_eq!(code, Code::Ok);
        assert!(!got.is_empty());
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut seen = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 20 && Instant::now() < deadline {
        let (code, got) = c.receive("g", "t", 32, 30_000, 1_000).await;
        assert!(
            code == Code::Ok || code == Code::MessageNotFound,
            "{code:?}"
        );
        for m in &got {
            assert_eq!(c.ack("g", "t", &handle(m)).await, Code::Ok);
            seen.insert(m.system_properties.as_ref().unwrap().message_id.clone());
        }
    }
    assert_eq!(seen.len(), 20, "messages lost to the dead-letter queue");
}
