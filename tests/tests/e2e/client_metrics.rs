//! `--metrics-collector proxy` (issue 16): the Settings reply turns the
//! official clients' own metrics on and names their access point; the
//! proxy serves the OTLP metrics Export service on its client port and
//! forwards what it receives to its OTLP endpoint (here the tests'
//! receiver, built from the official opentelemetry-proto definitions).
//!
//! The official Java client exports every minute and once more when it
//! closes, so a short scenario's metrics arrive when its clients close.

use std::path::Path;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use pier_proto::rocketmq::{Address, AddressScheme, Endpoints, Settings};
use pier_tests::otlp::Receiver;
use pier_tests::raw::{producer_settings, Raw};
use pier_tests::Node;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

fn collector_proxy(data: &Path, otlp: &str, protocol: &str) -> Node {
    Node::standalone_with_env(
        data,
        &[
            "--metrics-listen",
            "",
            "--metrics-collector",
            "proxy",
            "--otlp-endpoint",
            otlp,
            "--otlp-protocol",
            protocol,
        ],
        // The proxy's own metrics go to the same receiver: rarely, so the
        // clients' are what the test looks for.
        &[("OTEL_METRIC_EXPORT_INTERVAL", "600000")],
    )
}

/// One gauge point, as a client would export it.
fn export_request(service: &str, name: &str) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(service.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: name.into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint::default()],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Waits up to 30 s for the receiver to have `name` from `service` (from
/// any service when `None`).
async fn wait_for_metric(receiver: &Receiver, service: Option<&str>, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let names = receiver.metric_names();
        if names
            .iter()
            .any(|(s, n)| n == name && service.is_none_or(|want| s == want))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} from {service:?} not forwarded within 30 s; received: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Settings reply a producer gets, having named `access_point`.
async fn settings_reply(raw: &Raw, access_point: Endpoints) -> Settings {
    let settings = Settings {
        access_point: Some(access_point),
        ..producer_settings("cm-topic")
    };
    let (_open, _stream, reply) = raw.telemetry_with(settings).await;
    reply
}

/// Raw calls: the Settings reply names the client's access point; an
/// Export over gRPC reaches the collector, over HTTP/protobuf and over
/// gRPC; a body that is no Export request is refused with INVALID_ARGUMENT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_collects_client_metrics_and_forwards_them() {
    let receiver = Receiver::start();
    for (protocol, url) in [
        ("http/protobuf", format!("http://{}", receiver.addr)),
        ("grpc", format!("http://{}", receiver.grpc_addr)),
    ] {
        let data = tempfile::tempdir().expect("temp dir");
        let proxy = collector_proxy(data.path(), &url, protocol);
        let raw = Raw::connect(&proxy.endpoint()).await;
        raw.create_topic("cm-topic", 1).await;
        let (host, port) = proxy.addr.split_once(':').expect("host:port");
        let ap = Endpoints {
            scheme: AddressScheme::IPv4 as i32,
            addresses: vec![Address {
                host: host.into(),
                port: port.parse().expect("port"),
            }],
        };
        let s = settings_reply(&raw, ap.clone()).await;
        let m = s.metric.expect("metric settings");
        assert!(m.on, "metrics turned on");
        assert_eq!(m.endpoints, Some(ap), "the client's own access point");

        let mut client = MetricsServiceClient::connect(format!("http://{}", proxy.addr))
            .await
            .expect("connect the OTLP client to the proxy");
        let service = format!("raw-client-{}", protocol.replace('/', "-"));
        let reply = client
            .export(export_request(&service, "rocketmq_send_cost_time"))
            .await
            .expect("export accepted")
            .into_inner();
        assert_eq!(reply.partial_success, None, "nothing dropped");
        wait_for_metric(&receiver, Some(&service), "rocketmq_send_cost_time").await;

        // A field 1 that is a number (a Duration's seconds), not the
        // repeated message an Export request has there.
        let mut grpc = tonic::client::Grpc::new(raw.channel());
        grpc.ready().await.expect("ready");
        let refused = grpc
            .unary::<_, (), _>(
                tonic::Request::new(prost_types::Duration {
                    seconds: 5,
                    nanos: 0,
                }),
                tonic::codegen::http::uri::PathAndQuery::from_static(EXPORT_PATH),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .expect_err("garbage refused");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    }
}

/// The official Java client, told by Settings to export its metrics to the
/// proxy, does so (on close at the latest); the proxy forwards them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_java_clients_metrics_reach_the_collector_through_the_proxy() {
    let receiver = Receiver::start();
    let data = tempfile::tempdir().expect("temp dir");
    let proxy = collector_proxy(
        data.path(),
        &format!("http://{}", receiver.addr),
        "http/protobuf",
    );
    let raw = Raw::connect(&proxy.endpoint()).await;
    raw.create_topic("cm-java", 1).await;
    raw.create_group("cm-java-g", 17).await;
    let run = pier_tests::java::scenario(
        "normal",
        &proxy.addr,
        &[
            ("timeout", "120"),
            ("topic", "cm-java"),
            ("group", "cm-java-g"),
            ("count", "5"),
        ],
    )
    .await;
    let summary = run.summary_ok("java normal with client metrics");
    assert_eq!(summary["received"], 5, "{summary}");
    // The Java client's own histogram, forwarded by the proxy.
    wait_for_metric(&receiver, None, "rocketmq_send_cost_time").await;
}

/// With auth on, the Export service sits behind the same check as the
/// other calls: an unsigned export is refused with UNAUTHENTICATED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_an_unsigned_export_is_refused() {
    let receiver = Receiver::start();
    let data = tempfile::tempdir().expect("temp dir");
    let url = format!("http://{}", receiver.addr);
    let proxy = Node::start(
        "pier-proxy",
        &[
            "--listen",
            "127.0.0.1:0",
            "--data",
            data.path().to_str().expect("utf-8"),
            "--metrics-collector",
            "proxy",
            "--otlp-endpoint",
            &url,
            "--auth",
            "--admin-user",
            "root",
            "--admin-secret",
            "root-secret-long-enough-for-the-check",
        ],
    );
    let mut client = MetricsServiceClient::connect(format!("http://{}", proxy.addr))
        .await
        .expect("connect the OTLP client to the proxy");
    let refused = client
        .export(export_request("unsigned", "rocketmq_send_cost_time"))
        .await
        .expect_err("unsigned export refused");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    assert!(receiver.metric_names().is_empty());
}
