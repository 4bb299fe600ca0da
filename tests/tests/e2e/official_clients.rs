//! The official RocketMQ 5 Python client (`rocketmq-python-client` 5.1.2
//! from PyPI) and the real `grpcurl`, against Pier: the client in the four deployments of `four_modes!`
//! (in a cluster, given both proxies), grpcurl against a standalone node.
//! Tools are installed by `tests/scripts/setup-tools.sh` (run from here).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use pier_tests::external::*;
use pier_tests::*;
use pier_tests::{four_modes, Mode};

async fn python_producer_simple_and_push_consumers(mode: Mode) {
    let tools = ensure_tools();
    let pier = Pier::start(mode, &[]).await;
    let (endpoint, c) = (pier.access_point.clone(), pier.raw.clone());
    c.create_topic("py-orders", 4).await;
    c.create_group("py-simple", 17).await;
    c.create_group("py-push", 17).await;

    let line = format!("--endpoint {endpoint} --topic py-orders --count 1000 --prefix py");
    let sent = pier.python(&tools, "producer.py", cli(&line)).await;
    let produced = summary(&sent, "producer");
    assert_eq!(produced["sent"], 1000);

    // Both consumers at once, each in its own group.
    let consume = |script: &'static str, group: &'static str| {
        let line = format!(
            "--endpoint {endpoint} --topic py-orders --group {group} --expect 1000 --timeout 120 \
             --prefix py"
        );
        pier.python(&tools, script, cli(&line))
    };
    let (simple, push) = tokio::join!(
        consume("simple_consumer.py", "py-simple"),
        consume("push_consumer.py", "py-push")
    );
    let simple = summary(&simple, "simple consumer");
    assert_fields!(simple, {"received": 1000, "duplicates": 0});
    let push = summary(&push, "push consumer");
    assert_fields!(push, {"received": 1000, "duplicates": 0});

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

/// One call with a JSON request, as a client would send it (client id
/// header included); returns the JSON reply.
fn call(tools: &Path, ep: &str, method: &str, request: &str) -> serde_json::Value {
    let out = grpcurl(
        tools,
        &[
            "-plaintext",
            "-H",
            "x-mq-client-id: grpcurl@1",
            "-d",
            request,
            ep,
            method,
        ],
    );
    let reply = stdout_ok(&out, method);
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{method}: {e}: {reply}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_by_hand() {
    let tools = ensure_tools();
    let data = tempfile::tempdir().unwrap();
    let proxy = Node::standalone(data.path());
    let ep = proxy.endpoint();
    let c = Raw::connect(&ep).await;
    c.create_topic("hand", 2).await;

    let list = stdout_ok(&grpcurl(&tools, &["-plaintext", &ep, "list"]), "list");
    for svc in [
        "apache.rocketmq.v2.MessagingService",
        "pier.admin.v1.AdminService",
        "grpc.health.v1.Health",
    ] {
        assert!(list.contains(svc), "{svc} missing from:\n{list}");
    }
    // Only what the proxy serves is listed.
    assert!(!list.contains("pier.store.v1.Store"), "{list}");
    let desc = stdout_ok(
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
    let v = call(
        &tools,
        &ep,
        "apache.rocketmq.v2.MessagingService/QueryRoute",
        &route_req,
    );
    assert_eq!(v["status"]["code"], "OK", "{v}");
    assert_eq!(v["messageQueues"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v["messageQueues"][0]["permission"], "READ_WRITE");

    let send_req = r#"{"messages":[{"topic":{"name":"hand"},"systemProperties":{"messageId":"GRPCURL0001","messageType":"NORMAL","bodyEncoding":"IDENTITY"},"body":"aGVsbG8="}]}"#;
    let v = call(
        &tools,
        &ep,
        "apache.rocketmq.v2.MessagingService/SendMessage",
        send_req,
    );
    assert_eq!(v["status"]["code"], "OK", "{v}");
    assert_eq!(v["entries"][0]["messageId"], "GRPCURL0001");

    // The admin API by hand too.
    let topics = stdout_ok(
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

four_modes!(python_producer_simple_and_push_consumers);
