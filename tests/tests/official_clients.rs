//! The official RocketMQ 5 Python client (`rocketmq-python-client` 5.1.2
//! from PyPI) and the real `grpcurl`, against a standalone Pier.
//! Tools are installed by `tests/scripts/setup-tools.sh` (run from here).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use pier_tests::external::*;
use pier_tests::*;

fn python(tools: &Path, script: &str, args: &[&str]) -> Output {
    let py = tools.join("venv/bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    Command::new(py)
        .arg(script)
        .args(args)
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::null())
        .output()
        .expect("run python")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_producer_simple_and_push_consumers() {
    let tools = ensure_tools();
    let data = tempfile::tempdir().unwrap();
    let proxy = Node::standalone(data.path());
    let endpoint = proxy.endpoint();
    let c = Raw::connect(&endpoint).await;
    c.create_topic("py-orders", 4).await;
    c.create_group("py-simple", 17).await;
    c.create_group("py-push", 17).await;

    let ep = endpoint.clone();
    let t = tools.clone();
    let sent = tokio::task::spawn_blocking(move || {
        python(
            &t,
            "producer.py",
            &[
                "--endpoint",
                &ep,
                "--topic",
                "py-orders",
                "--count",
                "1000",
                "--prefix",
                "py",
            ],
        )
    })
    .await
    .unwrap();
    let produced = summary(&sent, "producer");
    assert_eq!(produced["sent"], 1000);

    let (ep, t) = (endpoint.clone(), tools.clone());
    let simple = tokio::task::spawn_blocking(move || {
        python(
            &t,
            "simple_consumer.py",
            &[
                "--endpoint",
                &ep,
                "--topic",
                "py-orders",
                "--group",
                "py-simple",
                "--expect",
                "1000",
                "--timeout",
                "120",
                "--prefix",
                "py",
            ],
        )
    });
    let (ep, t) = (endpoint.clone(), tools.clone());
    let push = tokio::task::spawn_blocking(move || {
        python(
            &t,
            "push_consumer.py",
            &[
                "--endpoint",
                &ep,
                "--topic",
                "py-orders",
                "--group",
                "py-push",
                "--expect",
                "1000",
                "--timeout",
                "120",
                "--prefix",
                "py",
            ],
        )
    });
    let simple = summary(&simple.await.unwrap(), "simple consumer");
    assert_eq!(simple["received"], 1000, "{simple}");
    assert_eq!(simple["duplicates"], 0, "{simple}");
    let push = summary(&push.await.unwrap(), "push consumer");
    assert_eq!(push["received"], 1000, "{push}");
    assert_eq!(push["duplicates"], 0, "{push}");

    // Both groups consumed everything: nothing ready or in flight remains.
    for g in ["py-simple", "py-push"] {
        assert_drained(&c, g).await;
    }
}

fn grpcurl(tools: &Path, args: &[&str]) -> Output {
    Command::new(tools.join("bin/grpcurl"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run grpcurl")
}

fn ok_stdout(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "grpcurl {what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_by_hand() {
    let tools = ensure_tools();
    let data = tempfile::tempdir().unwrap();
    let proxy = Node::standalone(data.path());
    let ep = proxy.endpoint();
    let c = Raw::connect(&ep).await;
    c.create_topic("hand", 2).await;

    let list = ok_stdout(&grpcurl(&tools, &["-plaintext", &ep, "list"]), "list");
    for svc in [
        "apache.rocketmq.v2.MessagingService",
        "pier.admin.v1.AdminService",
        "grpc.health.v1.Health",
    ] {
        assert!(list.contains(svc), "{svc} missing from:\n{list}");
    }
    // Only what the proxy serves is listed.
    assert!(!list.contains("pier.store.v1.Store"), "{list}");
    let desc = ok_stdout(
        &grpcurl(
            &tools,
            &[
                "-plaintext",
                &ep,
                "describe",
                "apache.rocketmq.v2.MessagingService",
            ],
        ),
        "describe",
    );
    assert!(desc.contains("rpc ReceiveMessage"), "{desc}");

    let port = proxy.port().to_string();
    let route_req = format!(
        r#"{{"topic":{{"name":"hand"}},"endpoints":{{"scheme":"IPv4","addresses":[{{"host":"127.0.0.1","port":{port}}}]}}}}"#
    );
    let route = ok_stdout(
        &grpcurl(
            &tools,
            &[
                "-plaintext",
                "-H",
                "x-mq-client-id: grpcurl@1",
                "-d",
                &route_req,
                &ep,
                "apache.rocketmq.v2.MessagingService/QueryRoute",
            ],
        ),
        "QueryRoute",
    );
    let v: serde_json::Value = serde_json::from_str(&route).unwrap();
    assert_eq!(v["status"]["code"], "OK", "{v}");
    assert_eq!(v["messageQueues"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v["messageQueues"][0]["permission"], "READ_WRITE");

    let send_req = r#"{"messages":[{"topic":{"name":"hand"},"systemProperties":{"messageId":"GRPCURL0001","messageType":"NORMAL","bodyEncoding":"IDENTITY"},"body":"aGVsbG8="}]}"#;
    let sent = ok_stdout(
        &grpcurl(
            &tools,
            &[
                "-plaintext",
                "-H",
                "x-mq-client-id: grpcurl@1",
                "-d",
                send_req,
                &ep,
                "apache.rocketmq.v2.MessagingService/SendMessage",
            ],
        ),
        "SendMessage",
    );
    let v: serde_json::Value = serde_json::from_str(&sent).unwrap();
    assert_eq!(v["status"]["code"], "OK", "{v}");
    assert_eq!(v["entries"][0]["messageId"], "GRPCURL0001");

    // The admin API by hand too.
    let topics = ok_stdout(
        &grpcurl(
            &tools,
            &[
                "-plaintext",
                "-d",
                "{}",
                &ep,
                "pier.admin.v1.AdminService/ListTopics",
            ],
        ),
        "ListTopics",
    );
    assert!(topics.contains("\"hand\""), "{topics}");
}
