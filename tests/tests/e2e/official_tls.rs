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
use pier_tests::tls::TlsPier;
use pier_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_with_tls() {
    let tools = ensure_tools();
    let t = TlsPier::start("python", "py-tls", "py-tls-g").await;
    let env = [("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", t.pki.ca.clone())];
    let common = format!(
        "--endpoint {} --topic py-tls --prefix pytls --tls",
        t.c.endpoint
    );
    let consumer = "--group py-tls-g --timeout 120";
    let got = python_send_then_receive(&tools, &common, 100, consumer, &env).await;
    assert_fields!(got, {"received": 100, "duplicates": 0});
    assert_drained(&t.c, "py-tls-g").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_with_tls() {
    let tools = ensure_tools();
    let t = TlsPier::start("node", "node-tls", "node-tls-g").await;
    let line = format!(
        "--endpoint {} --topic node-tls --group node-tls-g --count 100 --prefix nodetls \
         --timeout 120 --tls true",
        t.c.endpoint
    );
    let env = [("NODE_EXTRA_CA_CERTS", t.pki.ca.clone())];
    let out = node_env(&tools, "normal.js", cli(&line), &env).await;
    let r = summary_ok(&out, "normal.js over TLS");
    assert_fields!(r, {"sent": 100, "received": 100, "duplicates": 0});
    assert_drained(&t.c, "node-tls-g").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_with_its_default_tls() {
    let t = TlsPier::start("java", "j-tls", "j-tls-g").await;
    let opts = [
        ("timeout", "120"),
        ("topic", "j-tls"),
        ("group", "j-tls-g"),
        ("count", "50"),
        ("tls", "true"),
    ];
    let r = pier_tests::java::scenario("normal", &t.c.endpoint, &opts)
        .await
        .summary_ok("java normal over TLS");
    assert_fields!(r, {"sent": 50, "received": 50, "duplicates": 0});
    assert_drained(&t.c, "j-tls-g").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_with_its_default_tls() {
    let t = TlsPier::start("go", "go-tls", "go-tls-g").await;
    let args = [
        "-topic", "go-tls", "-group", "go-tls-g", "-count", "100", "-tls",
    ];
    let out = pier_tests::go::scenario("normal", &t.c.endpoint, &args).await;
    let r = summary_ok(&out, "go normal over TLS");
    assert_fields!(r, {"sent": 100, "received": 100, "duplicates": 0});
    assert_drained(&t.c, "go-tls-g").await;
}
