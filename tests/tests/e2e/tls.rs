//! TLS and the connection limit on a real `pier-proxy` / `pier-store`: TLS
//! and plaintext on one port (ALPN `h2`), `--tls-required`, certificate
//! reload (SIGHUP and file change) without dropping open connections, the
//! connection limit, the store link over TLS, and Pier's SDK and CLI with
//! TLS. Certificates come from `pier_tests::tls` (a test CA).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pier::{ClientConfig, FilterExpression, Producer, SimpleConsumer};
use pier_proto::admin::ListTopicsRequest;
use pier_proto::rocketmq::Code;
use pier_tests::tls::{handshake, plain_channel, tls_channel, TestPki};
use pier_tests::*;
use tonic::transport::Channel;

fn proxy(data: &std::path::Path, pki: &TestPki, extra: &[&str]) -> Node {
    let flags = pki.flags();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    Node::standalone_with(data, &args)
}

/// One admin call over `channel`: the topics' count, or the status.
async fn list_topics(channel: Channel) -> Result<usize, tonic::Status> {
    let mut admin = pier_proto::admin::admin_service_client::AdminServiceClient::new(channel);
    let mut req = tonic::Request::new(ListTopicsRequest::default());
    req.set_timeout(Duration::from_secs(5));
    Ok(admin.list_topics(req).await?.into_inner().topics.len())
}

/// Whether a fresh connection over `connect` can make a call.
async fn works(
    connect: impl std::future::Future<Output = Result<Channel, tonic::transport::Error>>,
) -> bool {
    match connect.await {
        Ok(c) => list_topics(c).await.is_ok(),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_plaintext_share_the_client_port() {
    let pki = TestPki::new("one-port");
    let data = tempfile::tempdir().unwrap();
    let node = proxy(data.path(), &pki, &[]);
    let ep = node.endpoint();

    // Plaintext: create a topic and send to it.
    let plain = Raw::connect(&ep).await;
    plain.create_topic("both", 2).await;
    let sent = plain.send(message("both", "over h2c")).await;
    assert_eq!(sent.status.unwrap().code(), Code::Ok);

    // TLS on the same port: the same data, and a send (tonic insists on
    // ALPN h2).
    let tls = Raw::over(&ep, tls_channel(&ep, &pki.ca_pem()).await.unwrap());
    assert_eq!(list_topics(tls.channel()).await.unwrap(), 1);
    let sent = tls.send(message("both", "over TLS")).await;
    assert_eq!(sent.status.unwrap().code(), Code::Ok);
    tls.create_group("readers", 5).await;
    let (code, got) = tls.receive("readers", "both", 10, 30_000, 2_000).await;
    assert_eq!(code, Code::Ok);
    let mut bodies: Vec<String> = got.iter().map(body).collect();
    bodies.sort();
    assert_eq!(bodies, ["over TLS", "over h2c"]);

    // ALPN: the server picks h2, also when offered among others; a client
    // offering only HTTP/1.1 is refused in the handshake.
    let ca = pki.ca_pem();
    let picked = handshake(&ep, &ca, &[b"h2"]).await.unwrap();
    assert_eq!(picked.as_deref(), Some(&b"h2"[..]));
    let picked = handshake(&ep, &ca, &[b"http/1.1", b"h2"]).await.unwrap();
    assert_eq!(picked.as_deref(), Some(&b"h2"[..]));
    assert!(handshake(&ep, &ca, &[b"http/1.1"]).await.is_err());
    // A client trusting another CA refuses the certificate.
    let other = TestPki::new("stranger");
    assert!(!works(tls_channel(&ep, &other.ca_pem())).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_required_refuses_plaintext() {
    let pki = TestPki::new("required");
    let data = tempfile::tempdir().unwrap();
    let node = proxy(data.path(), &pki, &["--tls-required"]);
    let ep = node.endpoint();
    assert!(!works(plain_channel(&ep)).await, "plaintext is refused");
    assert!(
        node.wait_log(&["plaintext", "tls_required"], Duration::from_secs(5))
            .is_some(),
        "the refusal is logged"
    );
    assert!(works(tls_channel(&ep, &pki.ca_pem())).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_on_sighup_and_on_change_keeping_open_connections() {
    let first = TestPki::new("first");
    let second = TestPki::new("second");
    let data = tempfile::tempdir().unwrap();
    let node = proxy(data.path(), &first, &[]);
    let ep = node.endpoint();

    let open = tls_channel(&ep, &first.ca_pem()).await.unwrap();
    assert!(list_topics(open.clone()).await.is_ok());

    // New files from another CA, then SIGHUP.
    second.issue(&first.cert, &first.key);
    let hup = Command::new("kill")
        .args(["-HUP", &node.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    assert!(
        node.wait_log(&["TLS certificate reloaded"], Duration::from_secs(10))
            .is_some(),
        "no reload logged"
    );
    assert!(
        works(tls_channel(&ep, &second.ca_pem())).await,
        "a new connection gets the new certificate"
    );
    assert!(
        !works(tls_channel(&ep, &first.ca_pem())).await,
        "the old certificate is no longer shown"
    );
    // The connection opened before the reload still works (had it been
    // dropped, the channel would reconnect, see the new certificate and
    // fail: it trusts only the first CA).
    for _ in 0..3 {
        assert!(list_topics(open.clone()).await.is_ok());
    }

    // A broken file is refused, logged, and the certificate in use stays.
    std::fs::write(&first.cert, "not a certificate").unwrap();
    assert!(
        node.wait_log(&["not reloaded"], Duration::from_secs(15))
            .is_some(),
        "the bad file is reported"
    );
    assert!(works(tls_channel(&ep, &second.ca_pem())).await);
    // Logged once: the next polls (every 3 s) see the same files.
    assert!(
        node.wait_log(&["not reloaded"], Duration::from_secs(7))
            .is_none(),
        "the same bad file is reported again"
    );

    // Good files again, no signal: picked up by the file watch.
    first.issue(&first.cert, &first.key);
    assert!(
        node.wait_log(&["TLS certificate reloaded"], Duration::from_secs(15))
            .is_some(),
        "a file change is picked up without a signal"
    );
    assert!(works(tls_channel(&ep, &first.ca_pem())).await);
    assert!(list_topics(open).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_refuses_one_more_and_frees_a_closed_slot() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::standalone_with(data.path(), &["--max-connections", "2"]);
    let ep = node.endpoint();
    let a = plain_channel(&ep).await.unwrap();
    let b = plain_channel(&ep).await.unwrap();
    assert!(list_topics(a.clone()).await.is_ok());
    assert!(list_topics(b.clone()).await.is_ok());

    let third = plain_channel(&ep).await;
    let refused = match third {
        Err(_) => true,
        Ok(c) => list_topics(c).await.is_err(),
    };
    assert!(refused, "a third connection is refused");
    assert!(
        node.wait_log(&["max_connections"], Duration::from_secs(5))
            .is_some(),
        "the refusal is logged"
    );
    // The two open ones are not disturbed.
    assert!(list_topics(a.clone()).await.is_ok());
    assert!(list_topics(b).await.is_ok());

    // Closing one frees its slot (the server notices the close at once).
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if works(plain_channel(&ep)).await {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was not reused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_with_tls_on_the_store_link() {
    let pki = TestPki::new("store-link");
    let data = tempfile::tempdir().unwrap();
    let flags = pki.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let store = Node::store_with(data.path(), &flags);
    let ca = pki.ca.display().to_string();
    let proxy = Node::proxy_of_with(&store, &["--store-tls-ca", &ca]);
    let raw = Raw::connect(&proxy.endpoint()).await;
    raw.assert_round_trip("linked", 2, "through TLS").await;

    // The store speaks TLS only; a proxy without the CA (plaintext) or
    // trusting another CA cannot use it.
    assert!(!works(plain_channel(&store.endpoint())).await);
    let stranger = TestPki::new("stranger");
    let wrong_ca = stranger.ca.display().to_string();
    for extra in [vec![], vec!["--store-tls-ca", wrong_ca.as_str()]] {
        // With its own receipt key: a proxy fetches the store's at start
        // and, the store being unreachable to it, would wait for it.
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--receipt-secret",
            "k",
            "--store",
        ];
        let store_ep = store.endpoint();
        args.push(&store_ep);
        args.extend(extra);
        let bad = Node::start("pier-proxy", &args);
        let r = list_topics(plain_channel(&bad.endpoint()).await.unwrap()).await;
        assert!(r.is_err(), "{args:?}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_and_the_cli_over_tls() {
    let t = pier_tests::tls::TlsPier::start("sdk", "sdk-tls", "sdk-tls-readers").await;
    let (pki, ep) = (&t.pki, t.c.endpoint.clone());

    let cfg = ClientConfig::new(&ep)
        .unwrap()
        .with_tls_ca(&pki.ca)
        .with_request_timeout(Duration::from_secs(5));
    let producer = pier_tests::sdk::producer(&cfg, "sdk-tls").await;
    pier_tests::sdk::send_each(&producer, &pier_tests::sdk::numbered("sdk-tls", "m", 0..5)).await;
    let consumer = SimpleConsumer::builder(cfg, "sdk-tls-readers")
        .subscribe("sdk-tls", FilterExpression::all())
        .await_duration(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 5 && Instant::now() < deadline {
        for m in consumer.receive(10, Duration::from_secs(30)).await.unwrap() {
            consumer.ack(&m).await.unwrap();
            got.push(m.body_text());
        }
    }
    got.sort();
    assert_eq!(got, ["m-0", "m-1", "m-2", "m-3", "m-4"]);
    producer.shutdown().await;
    consumer.shutdown().await;

    // The system's roots do not include the test CA.
    let untrusted = ClientConfig::new(&ep).unwrap().with_tls(true);
    assert!(Producer::builder(untrusted)
        .topic("sdk-tls")
        .start()
        .await
        .is_err());

    // The CLI: --tls-ca, PIER_TLS with SSL_CERT_FILE (the system roots are
    // read from there), and plaintext refused.
    let pier = |args: &[&str], env: &[(&str, &str)]| {
        Command::new(bin("pier"))
            .args(["--endpoint", &ep])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let ca = pki.ca.display().to_string();
    let out = pier(&["--tls-ca", &ca, "topic", "list"], &[]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("sdk-tls"));
    let out = pier(
        &["topic", "list"],
        &[("PIER_TLS", "true"), ("SSL_CERT_FILE", &ca)],
    );
    assert!(out.status.success(), "{out:?}");
    let out = pier(&["topic", "list"], &[]);
    assert!(!out.status.success(), "plaintext is refused: {out:?}");
}
