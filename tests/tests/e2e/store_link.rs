//! Authentication of the store link (README, Authentication and ACLs): a
//! store node given `--cluster-secret` serves only callers proving it, a
//! proxy with the same secret works, one with another secret cannot serve
//! and says why, and health and reflection stay open.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use pier_proto::admin::admin_service_client::AdminServiceClient;
use pier_proto::admin::{CreateTopicRequest, ListTopicsRequest};
use pier_proto::rocketmq::Code;
use pier_proto::store::store_client::StoreClient;
use pier_proto::store::{AuthSnapshotRequest, ReceiptSecretRequest};
use pier_tests::*;
use sha2::Sha256;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

const SECRET: &str = "link-secret-for-tests";
const TOKEN_HEADER: &str = "x-pier-cluster-token";

/// A token as the proxies make it (see `pier_store`'s `link_auth`), written
/// here again from the format: `v1.<unix ms>.<hex HMAC-SHA256>`.
fn token(secret: &str, at_ms: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(b"pier-store-link\0");
    mac.update(at_ms.to_string().as_bytes());
    format!("v1.{at_ms}.{}", hex::encode(mac.finalize().into_bytes()))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn with_token<T>(msg: T, token: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(t) = token {
        r.metadata_mut()
            .insert(TOKEN_HEADER, MetadataValue::try_from(t).unwrap());
    }
    r
}

async fn channel(endpoint: &str) -> Channel {
    Channel::from_shared(format!("http://{endpoint}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap()
}

/// The code of a Store and an admin call carrying `token`, and the
/// message of the Store call.
async fn calls_with(ch: &Channel, token: Option<&str>) -> Vec<(tonic::Code, String)> {
    let mut store = StoreClient::new(ch.clone());
    let mut admin = AdminServiceClient::new(ch.clone());
    let code = |r: Result<(), tonic::Status>| match r {
        Ok(()) => (tonic::Code::Ok, String::new()),
        Err(s) => (s.code(), s.message().to_owned()),
    };
    // The call `$client.$rpc($req)` with `token`, as its code and message.
    macro_rules! call {
        ($client:ident . $rpc:ident($req:expr)) => {
            code($client.$rpc(with_token($req, token)).await.map(drop))
        };
    }
    vec![
        call!(store.auth_snapshot(AuthSnapshotRequest::default())),
        call!(store.receipt_secret(ReceiptSecretRequest {})),
        call!(admin.list_topics(ListTopicsRequest::default())),
        call!(admin.create_topic(CreateTopicRequest {
            topic: Some(pier_proto::admin::Topic {
                name: "sneaked-in".into(),
                queues: 1,
                ..Default::default()
            }),
        })),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_a_cluster_secret_serves_only_callers_proving_it() {
    let data = tempfile::tempdir().unwrap();
    let store = Node::store_with(data.path(), &["--cluster-secret", SECRET]);
    assert!(
        store
            .wait_log(&["no --cluster-secret"], Duration::from_millis(500))
            .is_none(),
        "a store with a secret warned that it has none"
    );
    let ch = channel(&store.endpoint()).await;

    // Without a token, with another secret's, with an old one, or with a
    // bare secret: every Store and admin call is refused.
    let stale = token(SECRET, now_ms() - 10 * 60 * 1000);
    let wrong = token("another-secret", now_ms());
    for (what, t) in [
        ("no token", None),
        ("another secret", Some(wrong.as_str())),
        ("a stale token", Some(stale.as_str())),
        ("the bare secret", Some(SECRET)),
    ] {
        for (code, message) in calls_with(&ch, t).await {
            assert_eq!(code, tonic::Code::Unauthenticated, "{what}: {message}");
            assert!(message.contains("refused"), "{what}: {message}");
        }
    }
    let (_, refusal) = &calls_with(&ch, None).await[0];
    assert!(refusal.contains("--cluster-secret"), "{refusal}");
    // One WARN line for the peer, not one per refusal.
    let line = store
        .wait_log(&["refused an unauthenticated call"], Duration::from_secs(5))
        .expect("the refusal is logged");
    assert!(line.contains("127.0.0.1"), "{line}");
    assert!(!line.contains(SECRET), "{line}");
    assert!(
        store
            .wait_log(&["refused an unauthenticated call"], Duration::from_secs(1))
            .is_none(),
        "refusals of one peer are logged once a minute"
    );
    // Nothing was created by the refused calls.
    let fresh = token(SECRET, now_ms());
    for (code, message) in calls_with(&ch, Some(&fresh)).await {
        assert_eq!(code, tonic::Code::Ok, "{message}");
    }

    // Health and reflection need no token.
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health is open")
        .into_inner();
    assert_eq!(serving.status, 1, "SERVING");
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut reflection = ServerReflectionClient::new(ch.clone());
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::once(ask))
        .await
        .expect("reflection is open")
        .into_inner();
    let listed = replies.message().await.unwrap().expect("a reply");
    assert!(
        format!("{listed:?}").contains("pier.store.v1.Store"),
        "{listed:?}"
    );

    // A proxy given the secret (here by environment) serves clients.
    let proxy = Node::start_with_env(
        "pier-proxy",
        &["--listen", "127.0.0.1:0", "--store", &store.endpoint()],
        &[("PIER_CLUSTER_SECRET", SECRET)],
    );
    let raw = Raw::connect(&proxy.endpoint()).await;
    raw.assert_round_trip("linked", 1, "proved").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_with_another_secret_cannot_serve_and_says_why() {
    let data = tempfile::tempdir().unwrap();
    let store = Node::store_with(data.path(), &["--cluster-secret", SECRET]);

    // It needs the receipt key from the store at start: it stops, naming
    // the cause.
    let out = run_to_exit(
        "pier-proxy",
        [
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "",
            "--store",
            &store.endpoint(),
            "--cluster-secret",
            "not-the-secret",
        ],
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Unauthenticated"), "{stderr}");
    assert!(stderr.contains("another secret"), "{stderr}");
    assert!(!stderr.contains("not-the-secret"), "{stderr}");

    // Given its receipt key, it starts, but every call through it fails
    // and its log says why.
    let proxy = Node::proxy_of_with(
        &store,
        &[
            "--cluster-secret",
            "not-the-secret",
            "--receipt-secret",
            "some-receipt-key",
        ],
    );
    let raw = Raw::connect(&proxy.endpoint()).await;
    let listed = raw.admin().list_topics(ListTopicsRequest::default()).await;
    assert!(listed.is_err(), "{listed:?}");
    let sent = raw.send(message("anything", "refused")).await;
    assert_ne!(sent.status.unwrap().code(), Code::Ok);
    let line = proxy
        .wait_log(
            &["store link failed", "another secret"],
            Duration::from_secs(5),
        )
        .expect("the proxy logs the refusal");
    assert!(!line.contains("not-the-secret"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_store_port_is_reported_at_start() {
    let data = tempfile::tempdir().unwrap();
    let store = Node::store(data.path());
    assert!(
        store
            .wait_log(&["WARN", "no --cluster-secret"], Duration::from_secs(5))
            .is_some(),
        "a store without a secret warns once"
    );
    let proxy = Node::start(
        "pier-proxy",
        &[
            "--listen",
            "127.0.0.1:0",
            "--store",
            &store.endpoint(),
            "--auth",
        ],
    );
    assert!(
        proxy
            .wait_log(
                &["WARN", "--auth without --cluster-secret"],
                Duration::from_secs(5)
            )
            .is_some(),
        "a proxy with --auth and no secret warns"
    );
}

/// `pier-proxy` over `store` with `extra` flags.
fn proxy_with(store: &Node, extra: &[&str]) -> Node {
    let ep = store.endpoint();
    let mut args = vec!["--listen", "127.0.0.1:0", "--store", ep.as_str()];
    args.extend_from_slice(extra);
    Node::start("pier-proxy", &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_on_the_store_link() {
    use pier_tests::tls::TestPki;
    let pki = TestPki::new("mutual");
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (
        certs.path().join("proxy.pem"),
        certs.path().join("proxy.key"),
    );
    pki.issue_client("pier proxy", &cert, &key);
    let stranger = TestPki::new("stranger");
    let (bad_cert, bad_key) = (certs.path().join("bad.pem"), certs.path().join("bad.key"));
    stranger.issue_client("pier proxy", &bad_cert, &bad_key);

    let data = tempfile::tempdir().unwrap();
    let ca = pki.ca.display().to_string();
    let flags = pki.flags();
    let mut store_flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    store_flags.extend(["--tls-client-ca", &ca, "--cluster-secret", SECRET]);
    let store = Node::store_with(data.path(), &store_flags);

    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let proxy = proxy_with(
        &store,
        &[
            "--store-tls-ca",
            &ca,
            "--store-tls-cert",
            &cert,
            "--store-tls-key",
            &key,
            "--cluster-secret",
            SECRET,
        ],
    );
    let raw = Raw::connect(&proxy.endpoint()).await;
    raw.create_topic("mutual", 1).await;
    let sent = raw.send(message("mutual", "both sides known")).await;
    assert_eq!(sent.status.unwrap().code(), Code::Ok);

    // Without a client certificate, or with one of another CA, the TLS
    // handshake fails: the proxy (started with its own receipt key) cannot
    // serve.
    let (bad_cert, bad_key) = (
        bad_cert.display().to_string(),
        bad_key.display().to_string(),
    );
    for extra in [
        vec![],
        vec!["--store-tls-cert", &bad_cert, "--store-tls-key", &bad_key],
    ] {
        let mut flags = vec![
            "--store-tls-ca",
            ca.as_str(),
            "--cluster-secret",
            SECRET,
            "--receipt-secret",
            "some-receipt-key",
        ];
        flags.extend(extra);
        let bad = proxy_with(&store, &flags);
        let raw = Raw::connect(&bad.endpoint()).await;
        let listed = raw.admin().list_topics(ListTopicsRequest::default()).await;
        assert!(listed.is_err(), "{flags:?}: {listed:?}");
    }
}
