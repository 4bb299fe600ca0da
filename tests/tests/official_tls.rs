//! The official clients with their TLS on, against a standalone Pier that
//! requires TLS (`--tls-required`: a client that fell back to plaintext
//! would be refused). The clients' code is unchanged; each trusts the test
//! CA through its own standard setting:
//!
//! - Python 5.1.2 (`tls_enable=True`): gRPC C-core's
//!   `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`;
//! - Node.js 1.0.8 (`sslEnabled: true`): Node's `NODE_EXTRA_CA_CERTS`;
//! - Java and Go: TLS is their default and they trust any certificate, so
//!   nothing is set (they need ALPN `h2`, which Pier offers).
//!
//! The Rust crate 5.0.0 with TLS is in `official_rust.rs` (it builds there).

use pier_tests::external::*;
use pier_tests::tls::{tls_channel, TestPki};
use pier_tests::*;

/// A standalone Pier requiring TLS, and an admin client over TLS.
async fn tls_pier(pki: &TestPki, data: &std::path::Path) -> (Node, Raw) {
    let flags = pki.flags();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.push("--tls-required");
    let node = Node::standalone_with(data, &args);
    let ep = node.endpoint();
    let channel = tls_channel(&ep, &pki.ca_pem())
        .await
        .expect("TLS connection");
    (node, Raw::over(&ep, channel))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_with_tls() {
    let tools = ensure_tools();
    let pki = TestPki::new("python");
    let data = tempfile::tempdir().unwrap();
    let (_node, c) = tls_pier(&pki, data.path()).await;
    c.create_topic("py-tls", 2).await;
    c.create_group("py-tls-g", 17).await;
    let env = [("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", pki.ca.clone())];
    let sent = python_env(
        &tools,
        "producer.py",
        args(&[
            "--endpoint",
            &c.endpoint,
            "--topic",
            "py-tls",
            "--count",
            "100",
            "--prefix",
            "pytls",
            "--tls",
        ]),
        &env,
    )
    .await;
    assert_eq!(summary(&sent, "producer over TLS")["sent"], 100);
    let got = python_env(
        &tools,
        "simple_consumer.py",
        args(&[
            "--endpoint",
            &c.endpoint,
            "--topic",
            "py-tls",
            "--group",
            "py-tls-g",
            "--expect",
            "100",
            "--timeout",
            "120",
            "--prefix",
            "pytls",
            "--tls",
        ]),
        &env,
    )
    .await;
    let got = summary(&got, "simple consumer over TLS");
    assert_eq!(got["received"], 100, "{got}");
    assert_eq!(got["duplicates"], 0, "{got}");
    assert_drained(&c, "py-tls-g").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_with_tls() {
    let tools = ensure_tools();
    let pki = TestPki::new("node");
    let data = tempfile::tempdir().unwrap();
    let (_node, c) = tls_pier(&pki, data.path()).await;
    c.create_topic("node-tls", 2).await;
    c.create_group("node-tls-g", 17).await;
    let out = node_env(
        &tools,
        "normal.js",
        args(&[
            "--endpoint",
            &c.endpoint,
            "--topic",
            "node-tls",
            "--group",
            "node-tls-g",
            "--count",
            "100",
            "--prefix",
            "nodetls",
            "--timeout",
            "120",
            "--tls",
            "true",
        ]),
        &[("NODE_EXTRA_CA_CERTS", pki.ca.clone())],
    )
    .await;
    let r = summary_ok(&out, "normal.js over TLS");
    assert_eq!(r["sent"], 100, "{r}");
    assert_eq!(r["received"], 100, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_drained(&c, "node-tls-g").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_with_its_default_tls() {
    let pki = TestPki::new("java");
    let data = tempfile::tempdir().unwrap();
    let (_node, c) = tls_pier(&pki, data.path()).await;
    c.create_topic("j-tls", 2).await;
    c.create_group("j-tls-g", 17).await;
    let r = pier_tests::java::scenario(
        "normal",
        &c.endpoint,
        &[
            ("timeout", "120"),
            ("topic", "j-tls"),
            ("group", "j-tls-g"),
            ("count", "50"),
            ("tls", "true"),
        ],
    )
    .await
    .summary_ok("java normal over TLS");
    assert_eq!(r["sent"], 50, "{r}");
    assert_eq!(r["received"], 50, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_drained(&c, "j-tls-g").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_with_its_default_tls() {
    let pki = TestPki::new("go");
    let data = tempfile::tempdir().unwrap();
    let (_node, c) = tls_pier(&pki, data.path()).await;
    c.create_topic("go-tls", 2).await;
    c.create_group("go-tls-g", 17).await;
    let out = pier_tests::go::scenario(
        "normal",
        &c.endpoint,
        &[
            "-topic", "go-tls", "-group", "go-tls-g", "-count", "100", "-tls",
        ],
    )
    .await;
    let r = summary_ok(&out, "go normal over TLS");
    assert_eq!(r["sent"], 100, "{r}");
    assert_eq!(r["received"], 100, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_drained(&c, "go-tls-g").await;
}
