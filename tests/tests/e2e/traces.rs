//! Traces and JSON logs (issue 16), end to end with real processes: spans
//! exported over OTLP/HTTP to a receiver decoding them with the official
//! `opentelemetry-proto` definitions.

use std::time::{Duration, Instant};

use pier_proto::rocketmq::Code;
use pier_tests::otlp::{Exporting, ReceivedSpan, Receiver};
use pier_tests::raw::{message, Raw};
use pier_tests::Node;

/// The producer's trace, as an official client writes it into the
/// message's `trace_context` (W3C `traceparent`, sampled).
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PRODUCER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{PRODUCER_SPAN}-01")
}

/// Spans are exported every 100 ms instead of every 5 s.
const FAST_EXPORT: [(&str, &str); 1] = [("OTEL_BSP_SCHEDULE_DELAY", "100")];

fn traced_message(topic: &str) -> pier_proto::rocketmq::Message {
    let mut m = message(topic, "traced");
    if let Some(sp) = m.system_properties.as_mut() {
        sp.trace_context = Some(traceparent());
    }
    m
}

/// Waits (bounded) until `done` holds for the spans received.
async fn spans_until(
    receiver: &Receiver,
    what: &str,
    done: impl Fn(&[ReceivedSpan]) -> bool,
) -> Vec<ReceivedSpan> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let spans = receiver.spans();
        if done(&spans) {
            return spans;
        }
        if Instant::now() > deadline {
            let seen: Vec<_> = spans
                .iter()
                .map(|s| (s.service.as_str(), s.span.name.as_str(), s.trace_id()))
                .collect();
            panic!("{what}: not received within 20 s; spans: {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn find<'a>(spans: &'a [ReceivedSpan], service: &str, name: &str) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|s| s.service == service && s.span.name == name && s.trace_id() == TRACE_ID)
}

/// Cluster mode: the producer's trace id is on the proxy's send span, the
/// store's spans sit below it across the store link, and the consumer's
/// receive span links back to the send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_is_one_trace_across_proxy_and_store() {
    let receiver = Receiver::start();
    let endpoint = format!("http://{}", receiver.addr);
    let data = tempfile::tempdir().expect("temp dir");
    let tracing = ["--otlp-endpoint", &endpoint, "--trace-sample-ratio", "1"];
    let mut store_args = vec![
        "--listen",
        "127.0.0.1:0",
        "--data",
        data.path().to_str().expect("utf-8"),
    ];
    store_args.extend(tracing);
    let mut store = Node::start_with_env("pier-store", &store_args, &FAST_EXPORT);
    let mut proxy_args = vec!["--listen", "127.0.0.1:0", "--store", &store.addr];
    proxy_args.extend(tracing);
    let mut proxy = Node::start_with_env("pier-proxy", &proxy_args, &FAST_EXPORT);

    let c = Raw::connect(&proxy.endpoint()).await;
    c.create_topic("traced", 1).await;
    c.create_group("traced-g", 16).await;
    let sent = c.send(traced_message("traced")).await;
    assert_eq!(sent.status.expect("status").code, Code::Ok as i32);
    let (code, msgs) = c.receive("traced-g", "traced", 1, 30_000, 0).await;
    assert_eq!(code, Code::Ok);
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        msgs[0]
            .system_properties
            .as_ref()
            .and_then(|s| s.trace_context.clone()),
        Some(traceparent()),
        "the consumer gets the producer's trace context"
    );

    let spans = spans_until(&receiver, "the spans of the message", |spans| {
        find(spans, "pier-proxy", "send").is_some()
            && find(spans, "pier-store", "store.group_commit").is_some()
            && spans.iter().any(|s| s.span.name == "receive")
    })
    .await;
    // The proxy's send span continues the producer's span.
    let send = find(&spans, "pier-proxy", "send").expect("send span");
    assert_eq!(send.parent_span_id(), PRODUCER_SPAN);
    assert_eq!(
        send.attribute("messaging.destination.name").as_deref(),
        Some("traced")
    );
    // Below it: the proxy's call to the store, the store's server span for
    // that call (across the link), the append, the group commit.
    let call = find(&spans, "pier-proxy", "store.append").expect("client span of the store call");
    assert_eq!(call.parent_span_id(), send.span_id());
    let served = find(&spans, "pier-store", "pier.store.v1.Store/Append")
        .expect("the store's server span, continuing the proxy's trace");
    assert_eq!(served.parent_span_id(), call.span_id());
    let append = find(&spans, "pier-store", "store.append").expect("store append span");
    assert_eq!(append.parent_span_id(), served.span_id());
    let commit = find(&spans, "pier-store", "store.group_commit").expect("group commit span");
    assert_eq!(commit.parent_span_id(), append.span_id());
    assert_eq!(
        commit.attribute("pier.batch.messages").as_deref(),
        Some("1")
    );
    // The consumer's receive span links to the message's send context.
    let receive = spans
        .iter()
        .find(|s| s.service == "pier-proxy" && s.span.name == "receive")
        .expect("receive span");
    assert!(
        receive
            .links()
            .contains(&(TRACE_ID.to_owned(), PRODUCER_SPAN.to_owned())),
        "receive links: {:?}",
        receive.links()
    );
    // An ack and a long poll with nothing to deliver have their store
    // spans too (in the traces of those RPCs).
    assert_eq!(
        c.ack("traced-g", "traced", &pier_tests::raw::handle(&msgs[0]))
            .await,
        Code::Ok
    );
    let (code, _) = c.receive("traced-g", "traced", 1, 30_000, 300).await;
    assert_eq!(code, Code::MessageNotFound);
    let spans = spans_until(&receiver, "the ack and long-poll spans", |spans| {
        let on_store = |name: &str| {
            spans
                .iter()
                .any(|s| s.service == "pier-store" && s.span.name == name)
        };
        on_store("store.ack") && on_store("store.long_poll_wait")
    })
    .await;
    let wait = spans
        .iter()
        .find(|s| s.span.name == "store.long_poll_wait")
        .expect("long-poll span");
    let pop = spans
        .iter()
        .find(|s| s.span.span_id == wait.span.parent_span_id)
        .expect("the long poll's parent");
    assert_eq!(pop.span.name, "store.pop");
    assert!(proxy.stop(), "the proxy stops cleanly with tracing on");
    assert!(store.stop(), "the store stops cleanly with tracing on");
}

/// Standalone, sampling a tiny share of new traces: a producer's sampled
/// trace is still followed (parent-based), here given as a `traceparent`
/// user property, and the store's spans sit under the send span in-process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampled_producer_trace_is_followed_at_a_tiny_ratio() {
    let mut t = Exporting::start(&["--trace-sample-ratio", "0.000001"], &FAST_EXPORT).await;
    t.c.create_topic("followed", 1).await;
    let mut m = message("followed", "x");
    m.user_properties
        .insert("traceparent".into(), traceparent());
    let sent = t.c.send(m).await;
    assert_eq!(sent.status.expect("status").code, Code::Ok as i32);
    let spans = spans_until(&t.receiver, "the followed send", |spans| {
        find(spans, "pier-proxy", "store.group_commit").is_some()
    })
    .await;
    let send = find(&spans, "pier-proxy", "send").expect("send span");
    assert_eq!(send.parent_span_id(), PRODUCER_SPAN);
    let append = find(&spans, "pier-proxy", "store.append").expect("append span");
    assert_eq!(append.parent_span_id(), send.span_id());
    assert!(t.node.stop());
    // Nothing else was sampled: every span exported is of the producer's
    // trace (the RPCs' own new traces fell outside the ratio).
    let others: Vec<_> = t
        .receiver
        .spans()
        .into_iter()
        .filter(|s| s.trace_id() != TRACE_ID)
        .map(|s| s.span.name)
        .collect();
    assert!(others.is_empty(), "spans of other traces: {others:?}");
}

/// `--trace-sample-ratio 0` turns tracing off: not even a sampled caller's
/// trace is exported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_zero_exports_nothing() {
    let mut t = Exporting::start(&["--trace-sample-ratio", "0"], &FAST_EXPORT).await;
    t.c.create_topic("untraced", 1).await;
    t.c.create_group("untraced-g", 16).await;
    let sent = t.c.send(traced_message("untraced")).await;
    assert_eq!(sent.status.expect("status").code, Code::Ok as i32);
    let (code, _) = t.c.receive("untraced-g", "untraced", 1, 30_000, 0).await;
    assert_eq!(code, Code::Ok);
    // A clean stop flushes whatever was queued.
    assert!(t.node.stop());
    let spans = t.receiver.spans();
    assert!(spans.is_empty(), "{} spans exported", spans.len());
}

/// `--log-format json`: log lines are JSON objects, and a line written
/// inside a traced request carries its trace id (here the auth layer's
/// refusal of an unsigned call that came with a `traceparent`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_carry_the_trace_id() {
    let mut env = FAST_EXPORT.to_vec();
    env.push(("RUST_LOG", "info,pier_proxy=debug"));
    let mut t = Exporting::start(
        &[
            "--trace-sample-ratio",
            "1",
            "--auth",
            "--log-format",
            "json",
        ],
        &env,
    )
    .await;
    let mut req = t.c.req(pier_proto::rocketmq::SendMessageRequest {
        messages: vec![message("refused", "x")],
    });
    req.metadata_mut().insert(
        "traceparent",
        traceparent().parse().expect("ascii metadata"),
    );
    // Refused (no signature); how is not the point here.
    let _ = t.c.messaging().send_message(req).await;
    let line = t
        .node
        .wait_log(&["call refused"], Duration::from_secs(10))
        .expect("a debug line for the refused call");
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    assert_eq!(v["level"], "DEBUG", "{line}");
    assert_eq!(v["span"]["trace_id"], TRACE_ID, "{line}");
    // An admin call refused with a gRPC status marks its span failed.
    let refused =
        t.c.admin()
            .create_topic(pier_proto::admin::CreateTopicRequest::default())
            .await;
    assert_eq!(
        refused.expect_err("unsigned admin call").code(),
        tonic::Code::Unauthenticated
    );
    // The server span of the send is exported with the caller's trace id.
    let admin_span = "pier.admin.v1.AdminService/CreateTopic";
    let spans = spans_until(&t.receiver, "the refused calls' server spans", |spans| {
        find(
            spans,
            "pier-proxy",
            "apache.rocketmq.v2.MessagingService/SendMessage",
        )
        .is_some()
            && spans.iter().any(|s| s.span.name == admin_span)
    })
    .await;
    let admin = spans
        .iter()
        .find(|s| s.span.name == admin_span)
        .expect("admin span");
    assert_eq!(
        admin.span.status.as_ref().map(|s| s.code),
        Some(2),
        "status ERROR: {:?}",
        admin.span.status
    );
    assert_eq!(
        admin.attribute("rpc.grpc.status_code").as_deref(),
        Some("16")
    );
    assert!(t.node.stop());
}

/// A delayed and a transactional message continue the producer's trace
/// when they become visible: the timer thread's `store.delay_fire` span and
/// the commit's `store.txn_commit` span sit under the producer's span, and
/// the group commit of the fired message under `store.delay_fire`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_and_transactional_messages_continue_their_trace() {
    use pier_proto::admin::TopicType;
    use pier_proto::rocketmq::{
        EndTransactionRequest, MessageType, TransactionResolution, TransactionSource,
    };
    let mut t = Exporting::start(&["--trace-sample-ratio", "1"], &FAST_EXPORT).await;
    t.c.create_typed_topic("later", TopicType::Delay, 1).await;
    t.c.create_typed_topic("paid", TopicType::Transaction, 1)
        .await;

    let mut delayed = traced_message("later");
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        + 1_000;
    if let Some(sp) = delayed.system_properties.as_mut() {
        sp.message_type = MessageType::Delay as i32;
        sp.delivery_timestamp = Some(prost_types::Timestamp {
            seconds: at_ms / 1000,
            nanos: ((at_ms % 1000) * 1_000_000) as i32,
        });
    }
    let sent = t.c.send(delayed).await;
    assert_eq!(sent.status.expect("status").code, Code::Ok as i32);

    let mut half = traced_message("paid");
    if let Some(sp) = half.system_properties.as_mut() {
        sp.message_type = MessageType::Transaction as i32;
    }
    let sent = t.c.send(half).await;
    let entry = sent.entries[0].clone();
    assert_eq!(entry.status.expect("status").code, Code::Ok as i32);
    let ended =
        t.c.messaging()
            .end_transaction(t.c.req(EndTransactionRequest {
                topic: Some(pier_tests::raw::resource("paid")),
                message_id: entry.message_id,
                transaction_id: entry.transaction_id,
                resolution: TransactionResolution::Commit as i32,
                source: TransactionSource::SourceClient as i32,
                trace_context: String::new(),
            }))
            .await
            .expect("end transaction")
            .into_inner();
    assert_eq!(ended.status.expect("status").code, Code::Ok as i32);

    let spans = spans_until(&t.receiver, "the fire and commit spans", |spans| {
        find(spans, "pier-proxy", "store.delay_fire").is_some()
            && find(spans, "pier-proxy", "store.txn_commit").is_some()
    })
    .await;
    let fire = find(&spans, "pier-proxy", "store.delay_fire").expect("fire span");
    assert_eq!(fire.parent_span_id(), PRODUCER_SPAN);
    let commit = find(&spans, "pier-proxy", "store.txn_commit").expect("commit span");
    assert_eq!(commit.parent_span_id(), PRODUCER_SPAN);
    assert_eq!(
        commit.attribute("messaging.destination.name").as_deref(),
        Some("paid")
    );
    let spans = spans_until(&t.receiver, "the fired message's group commit", |spans| {
        spans
            .iter()
            .any(|s| s.span.name == "store.group_commit" && s.parent_span_id() == fire.span_id())
    })
    .await;
    assert!(!spans.is_empty());
    assert!(t.node.stop());
}
