//! Metrics (issue 16): the nodes' `/metrics` pages, and a real Prometheus
//! (Debian's package, unpacked by `tests/scripts/setup-prometheus.sh`)
//! scraping a cluster while the official Python client sends and receives.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pier_proto::admin::TopicType;
use pier_proto::rocketmq::*;
use pier_tests::external::*;
use pier_tests::otlp::Exporting;
use pier_tests::prometheus::{sample, scrape, Prometheus};
use pier_tests::*;
use pier_tests::{both_modes, Mode};

fn metrics_addr(n: &Node) -> String {
    n.metrics_addr
        .clone()
        .expect("the launcher turns the metrics endpoint on")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_cluster_after_python_traffic() {
    let tools = ensure_tools();
    let topic = ("obs-orders", TopicType::Normal, 4);
    let pier = Pier::with_topic(Mode::Cluster, topic, "obs-readers").await;
    let proxies: Vec<String> = pier.proxies().into_iter().map(metrics_addr).collect();
    let prom = Prometheus::start(
        &[
            ("pier-store", vec![metrics_addr(pier.data_node())]),
            ("pier-proxy", proxies),
        ],
        &[Prometheus::deploy_dir().join("pier-alerts.yml")],
    );

    let common = format!(
        "--endpoint {} --topic obs-orders --prefix obs",
        pier.access_point
    );
    let consumer = "--group obs-readers --timeout 60";
    let got = python_send_then_receive(&tools, &common, 50, consumer, &[]).await;
    assert_eq!(got["received"], 50, "{got}");

    let within = Duration::from_secs(30);
    let every_target_up =
        prom.wait_value(r#"count(up{job=~"pier-.*"} == 1)"#, within, |v| v == 3.0);
    assert_eq!(every_target_up, 3.0, "store and both proxies scraped");
    let sent_in = prom.wait_value(
        r#"sum(rocketmq_messages_in_total{job="pier-store",topic="obs-orders",message_type="normal"})"#,
        within,
        |v| v == 50.0,
    );
    assert_eq!(sent_in, 50.0);
    let out = prom.wait_value(
        r#"sum(rocketmq_messages_out_total{job="pier-store",topic="obs-orders",consumer_group="obs-readers"})"#,
        within,
        |v| v >= 50.0,
    );
    assert!(out >= 50.0, "deliveries counted: {out}");
    let bytes = prom.wait_value(
        r#"sum(rocketmq_throughput_in_total{topic="obs-orders"})"#,
        within,
        |v| v > 0.0,
    );
    assert!(bytes >= 50.0 * 5.0, "body bytes counted: {bytes}");
    // Both proxies answered the client: the sends are spread over them.
    let sends = prom.wait_value(
        r#"sum(rocketmq_rpc_latency_count{job="pier-proxy",protocol_type="grpc",request_code="SendMessage",response_code="OK"})"#,
        within,
        |v| v >= 50.0,
    );
    assert!(sends >= 50.0, "SendMessage calls timed: {sends}");
    let p99 = prom.wait_value(
        r#"histogram_quantile(0.99, sum by (le) (rocketmq_rpc_latency_bucket{job="pier-proxy",request_code="SendMessage"}))"#,
        within,
        |v| v > 0.0,
    );
    assert!(p99 > 0.0 && p99 <= 60_000.0, "a p99 in range: {p99}");
    let appends = prom.wait_value(
        r#"sum(rocketmq_rpc_latency_count{job="pier-store",protocol_type="pier_store",request_code="Append"})"#,
        within,
        |v| v >= 50.0,
    );
    assert!(
        appends >= 50.0,
        "the store node times its own RPCs: {appends}"
    );
    let drained = prom.wait_value(
        r#"sum(rocketmq_consumer_ready_messages{consumer_group="obs-readers"}) + sum(rocketmq_consumer_inflight_messages{consumer_group="obs-readers"})"#,
        within,
        |v| v == 0.0,
    );
    assert_eq!(drained, 0.0, "everything acked: no backlog left");

    // The alert rules shipped in deploy/observability load and evaluate.
    let deadline = Instant::now() + within;
    loop {
        let rules = prom.rules();
        let all: Vec<serde_json::Value> = rules["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let healthy = all.iter().filter(|r| r["health"] == "ok").count();
        if all.len() == 6 && healthy == 6 {
            break;
        }
        assert!(Instant::now() < deadline, "rules not all healthy: {rules}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// After sends, receives and acks, the data node's gauges show the
/// backlog; a forward to the DLQ is counted.
async fn gauges_follow_sends_receives_and_acks(mode: Mode) {
    let pier = Pier::start(mode, &[]).await;
    let c = pier.raw.clone();
    let (topic, group) = ("gauge-orders", "gauge-readers");
    c.create_topic(topic, 2).await;
    c.create_group(group, 17).await;
    let n = 10;
    for i in 0..n {
        c.send(message(topic, &format!("m{i}"))).await;
    }
    let (received, acked) = (6, 4);
    let got = c
        .receive_n(group, topic, received, Duration::from_secs(20))
        .await;
    for m in &got[..acked] {
        assert_eq!(c.ack(group, topic, &handle(m)).await, Code::Ok);
    }

    let data = metrics_addr(pier.data_node());
    let labels = [("topic", topic), ("consumer_group", group)];
    let page = scrape(&data);
    let gauge = |page: &str, name: &str| sample(page, name, &labels);
    assert_eq!(
        gauge(&page, "rocketmq_consumer_ready_messages"),
        Some((n - received) as f64),
        "ready = sent - received"
    );
    assert_eq!(
        gauge(&page, "rocketmq_consumer_inflight_messages"),
        Some((received - acked) as f64),
        "in flight = received - acked"
    );
    assert_eq!(
        sample(&page, "rocketmq_messages_in_total", &[("topic", topic)]),
        Some(n as f64)
    );
    assert_eq!(
        gauge(&page, "rocketmq_messages_out_total"),
        Some(received as f64)
    );
    let lag = gauge(&page, "rocketmq_consumer_lag_latency").unwrap_or(-1.0);
    assert!(lag >= 0.0, "lag latency reported: {page}");
    assert_eq!(sample(&page, "rocketmq_topic_number", &[]), Some(1.0));

    // A consumer forwards one in-flight message to the DLQ.
    let m = &got[acked];
    let r = c
        .messaging()
        .forward_message_to_dead_letter_queue(
            c.req(ForwardMessageToDeadLetterQueueRequest {
                group: Some(resource(group)),
                topic: Some(resource(topic)),
                receipt_handle: handle(m),
                message_id: m
                    .system_properties
                    .as_ref()
                    .map(|p| p.message_id.clone())
                    .unwrap_or_default(),
                delivery_attempt: 1,
                max_delivery_attempts: 17,
                lite_topic: None,
            }),
        )
        .await
        .expect("ForwardMessageToDeadLetterQueue transport")
        .into_inner();
    assert_eq!(r.status.map(|s| s.code), Some(Code::Ok as i32));
    // The snapshot behind the gauges is reused for half a second.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let page = scrape(&data);
    assert_eq!(
        gauge(&page, "rocketmq_send_to_dlq_messages_total"),
        Some(1.0)
    );
    assert_eq!(
        gauge(&page, "rocketmq_consumer_inflight_messages"),
        Some((received - acked - 1) as f64)
    );

    // The proxy that served the client timed its calls.
    let proxy = scrape(&metrics_addr(pier.proxies()[0]));
    let sends = sample(
        &proxy,
        "rocketmq_rpc_latency_count",
        &[("request_code", "SendMessage"), ("response_code", "OK")],
    );
    assert_eq!(sends, Some(n as f64), "{proxy}");
}

both_modes!(gauges_follow_sends_receives_and_acks);

#[test]
fn an_empty_setting_turns_the_endpoint_off_and_a_taken_address_is_an_error() {
    let data = tempfile::tempdir().expect("temp dir");
    let off = Node::standalone_with(data.path(), &["--metrics-listen", ""]);
    assert_eq!(off.metrics_addr, None);
    drop(off);

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let data = tempfile::tempdir().expect("temp dir");
    let out = run_to_exit(
        "pier-proxy",
        [
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            &addr,
            "--data",
            data.path().to_str().expect("utf-8 path"),
        ],
        Duration::from_secs(20),
    );
    let (status, err) = (out.status, String::from_utf8_lossy(&out.stderr));
    assert!(!status.success());
    assert!(err.contains("cannot listen for metrics"), "{err}");
}

#[test]
fn the_shipped_prometheus_config_and_alert_rules_are_valid() {
    let out = Command::new(Prometheus::promtool())
        .args(["check", "config", "prometheus.yml"])
        .current_dir(Prometheus::deploy_dir())
        .stdin(Stdio::null())
        .output()
        .expect("run promtool");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("6 rules found"), "{text}");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Prometheus::deploy_dir().join("grafana-dashboard.json"))
            .expect("read the dashboard"),
    )
    .expect("the dashboard is JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    for name in [
        "rocketmq_messages_in_total",
        "rocketmq_consumer_ready_messages",
        "rocketmq_consumer_lag_latency",
        "rocketmq_rpc_latency_bucket",
        "pier_store_wal_sync_latency_bucket",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(name)),
            "no panel reads {name}"
        );
    }
}

/// `pier stats` reads the backlog, lag and dead letters from the admin API
/// (through a proxy of a cluster: the store node measures them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pier_stats_shows_the_backlog_per_group() {
    let topic = ("stats-orders", TopicType::Normal, 2);
    let pier = Pier::with_topic(Mode::Cluster, topic, "stats-readers").await;
    let c = pier.raw.clone();
    for i in 0..5 {
        c.send(message("stats-orders", &format!("m{i}"))).await;
    }
    c.receive_n("stats-readers", "stats-orders", 2, Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let ep = pier.proxies()[1].endpoint();
    let out = run_ok(
        Command::new(bin("pier"))
            .args(["--endpoint", &ep, "--json", "stats"])
            .args(["--interval", "0.2", "--group", "stats-readers"]),
        "pier stats",
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let g = &v["groups"][0];
    assert_eq!(g["group"], "stats-readers", "{v}");
    assert_eq!(g["topic"], "stats-orders", "{v}");
    assert_eq!(g["ready"], 3, "{v}");
    assert_eq!(g["inflight"], 2, "{v}");
    assert_eq!(g["dlq"], 0, "{v}");
    assert!(g["lag_ms"].as_i64().is_some_and(|l| l >= 50), "{v}");
    let topics = v["topics"].as_array().expect("topics");
    assert!(topics.iter().any(|t| t["topic"] == "stats-orders"), "{v}");
}

/// Creates `topic` (one queue) and sends three messages to it.
async fn send_three(c: &Raw, topic: &str) {
    c.create_topic(topic, 1).await;
    for i in 0..3 {
        c.send(message(topic, &format!("m{i}"))).await;
    }
}

/// `--otlp-endpoint`: the node pushes its metrics over OTLP/HTTP to a
/// collector (here a receiver decoding them with opentelemetry-proto).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_pushed_over_otlp() {
    let t = Exporting::start(&[], &[("OTEL_METRIC_EXPORT_INTERVAL", "300")]).await;
    let (c, receiver) = (&t.c, &t.receiver);
    send_three(c, "otlp-orders").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((service, n)) = receiver.latest_sum("rocketmq_messages_in_total") {
            if n == 3 {
                assert_eq!(service, "pier-proxy");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no push of rocketmq_messages_in_total = 3: {:?}",
            receiver.latest_sum("rocketmq_messages_in_total")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `--otlp-protocol grpc`: metrics and spans go over OTLP/gRPC, to the
/// receiver's gRPC port (the generated MetricsService / TraceService of
/// opentelemetry-proto).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_traces_are_pushed_over_otlp_grpc() {
    let t = Exporting::start(
        &["--otlp-protocol", "grpc", "--trace-sample-ratio", "1"],
        &[
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let (c, receiver) = (&t.c, &t.receiver);
    send_three(c, "grpc-orders").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pushed = receiver.latest_sum("rocketmq_messages_in_total");
        let sends = receiver
            .spans()
            .iter()
            .filter(|s| {
                s.service == "pier-proxy"
                    && s.span.name == "apache.rocketmq.v2.MessagingService/SendMessage"
            })
            .count();
        if pushed == Some(("pier-proxy".into(), 3)) && sends == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "over gRPC within 20 s: rocketmq_messages_in_total {pushed:?}, {sends} SendMessage spans"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A scrape of a node that has served nothing yet answers, and the node
/// keeps serving: the gauges' callbacks once built instruments while the
/// SDK held its collection lock, which deadlocked the node (seen with an
/// OTLP push due before the first call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_before_any_call_does_not_hang_the_node() {
    for binary in ["pier-proxy", "pier-store"] {
        let data = tempfile::tempdir().expect("temp dir");
        let node = Node::start(
            binary,
            &[
                "--listen",
                "127.0.0.1:0",
                "--data",
                data.path().to_str().expect("utf-8"),
            ],
        );
        let addr = metrics_addr(&node);
        let page = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::task::spawn_blocking(move || scrape(&addr)),
        )
        .await
        .unwrap_or_else(|_| panic!("{binary}: the first scrape hung"))
        .expect("scrape task");
        assert!(page.contains("rocketmq_topic_number"), "{binary}: {page}");
        if binary == "pier-proxy" {
            let c = Raw::connect(&node.endpoint()).await;
            tokio::time::timeout(Duration::from_secs(10), c.create_topic("after-scrape", 1))
                .await
                .expect("the proxy still answers after the scrape");
        }
    }
}
