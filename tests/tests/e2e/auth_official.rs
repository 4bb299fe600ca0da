//! The official Python 5.1.2, Node.js 1.0.8 and Rust 5.0.0 clients against
//! a Pier with auth on, using a user's keys: the normal scenario passes, a
//! wrong secret gets UNAUTHORIZED, a missing permission FORBIDDEN.

use std::process::Output;

use pier_proto::admin::{AclDecision, AclRule, ConsumerGroup, TopicType};
use pier_tests::external::*;
use pier_tests::signing::*;
use pier_tests::*;
use pier_tests::{both_modes, Mode};

/// A Pier with auth on, in either mode.
struct AuthPier {
    _data: tempfile::TempDir,
    /// Kept running until the test ends.
    _nodes: Vec<Node>,
    /// Every proxy, joined with ';' (Python's multi-address form).
    access_point: String,
    /// The first proxy (Node and Rust take one address).
    first: String,
}

/// A Pier with auth on in `mode`; `app` may produce and consume the
/// `auth-*` topics as the `auth-*` groups, `reader` may only consume.
async fn pier_with_users(mode: Mode, topic: &str, group: &str) -> AuthPier {
    let data = tempfile::tempdir().unwrap();
    let nodes = match mode {
        Mode::Standalone => vec![Node::standalone_with(data.path(), &auth_flags())],
        Mode::Cluster => {
            let store = Node::store_with(
                data.path(),
                &["--admin-user", ROOT.0, "--admin-secret", ROOT.1],
            );
            let proxy = || {
                Node::start(
                    "pier-proxy",
                    &["--listen", "127.0.0.1:0", "--store", &store.addr, "--auth"],
                )
            };
            let (a, b) = (proxy(), proxy());
            vec![store, a, b]
        }
        Mode::Balanced | Mode::Secure => {
            unreachable!("the auth scenarios run standalone and in a cluster")
        }
    };
    let proxies: Vec<String> = match mode {
        Mode::Standalone => vec![nodes[0].endpoint()],
        Mode::Cluster | Mode::Balanced | Mode::Secure => {
            nodes[1..].iter().map(Node::endpoint).collect()
        }
    };
    let pier = AuthPier {
        _data: data,
        access_point: proxies.join(";"),
        first: proxies[0].clone(),
        _nodes: nodes,
    };
    let root = admin_as(&pier.first, ROOT.0, ROOT.1).await;
    root.create_topic(topic, TopicType::Normal, 4)
        .await
        .unwrap();
    root.create_group(ConsumerGroup {
        name: group.into(),
        max_attempts: 17,
        ..Default::default()
    })
    .await
    .unwrap();
    let allow = |user: &str, resource: &str, actions: &[&str]| AclRule {
        user: user.into(),
        resource: resource.into(),
        actions: actions.iter().map(|a| a.to_string()).collect(),
        decision: AclDecision::Allow as i32,
        sources: Vec::new(),
    };
    root.create_user("app", "app-secret", false).await.unwrap();
    root.create_user("reader", "reader-secret", false)
        .await
        .unwrap();
    for rule in [
        allow("app", "Topic:auth-*", &["Pub", "Sub"]),
        allow("app", "Group:auth-*", &["Sub"]),
        allow("reader", "Topic:auth-*", &["Sub"]),
        allow("reader", "Group:auth-*", &["Sub"]),
    ] {
        root.grant_acl(rule).await.unwrap();
    }
    pier
}

fn all_output(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A failed run whose output names `code` (the code's name or number).
fn assert_refused(o: &Output, what: &str, names: &[&str]) {
    let text = all_output(o);
    assert!(!o.status.success(), "{what} should fail:\n{text}");
    assert!(
        names.iter().any(|n| text.contains(n)),
        "{what}: none of {names:?} in:\n{}",
        &text[text.len().saturating_sub(4000)..]
    );
}

async fn python_client_with_keys(mode: Mode) {
    let tools = ensure_tools();
    let pier = pier_with_users(mode, "auth-py", "auth-py-group").await;
    let ep = pier.access_point.clone();
    let common = |ak: &str, sk: &str| {
        format!("--endpoint {ep} --topic auth-py --prefix py --timeout 60 --access-key {ak} --secret-key {sk}")
    };
    let producer = |ak: &str, sk: &str| {
        let line = format!("{} --count 1", common(ak, sk));
        python_env(&tools, "producer.py", cli(&line), &[])
    };
    let consumer = "--group auth-py-group";
    let r = python_send_then_receive(&tools, &common("app", "app-secret"), 50, consumer, &[]).await;
    assert_eq!(r["received"], 50, "{r}");

    // The Python client reports only "failed to fetch topic route" or the
    // like; its log file (under $HOME, the temp dir) has the server's code.
    let log = std::env::temp_dir().join("logs/rocketmq_python/rocketmq_client.log");
    let before = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
    let wrong = producer("app", "not-the-secret").await;
    assert_refused(&wrong, "wrong secret", &["failed"]);
    let seen = std::fs::read(&log).unwrap_or_default();
    let seen = String::from_utf8_lossy(seen.get(before..).unwrap_or_default());
    assert!(
        seen.lines()
            .any(|l| l.contains("40100") && l.contains("bad signature for user \"app\"")),
        "no UNAUTHORIZED in {}",
        log.display()
    );
    let reader = producer("reader", "reader-secret").await;
    assert_refused(&reader, "no Pub", &["FORBIDDEN", "40300", "lacks Pub"]);
}

async fn node_client_with_keys(mode: Mode) {
    let tools = ensure_tools();
    let pier = pier_with_users(mode, "auth-node", "auth-node-group").await;
    let ep = pier.first.clone();
    let ok = node_script(&tools, &ep, "app", "app-secret", "50").await;
    let r = summary_ok(&ok, "normal.js");
    assert_eq!(r["received"], 50, "{r}");
    let wrong = node_script(&tools, &ep, "app", "not-the-secret", "1").await;
    assert_refused(
        &wrong,
        "wrong secret",
        &["UNAUTHORIZED", "40100", "bad signature"],
    );
    let reader = node_script(&tools, &ep, "reader", "reader-secret", "1").await;
    assert_refused(&reader, "no Pub", &["FORBIDDEN", "40300", "lacks Pub"]);
}

async fn node_script(tools: &std::path::Path, ep: &str, ak: &str, sk: &str, count: &str) -> Output {
    let line = format!(
        "--endpoint {ep} --topic auth-node --group auth-node-group --count {count} --prefix node \
         --timeout 60 --tail 1 --access-key {ak} --secret-key {sk}"
    );
    node_env(tools, "normal.js", cli(&line), &[]).await
}

async fn rust_client_with_keys(mode: Mode) {
    let pier = pier_with_users(mode, "auth-rust", "auth-rust-group").await;
    let ep = pier.first.clone();
    let run = |ak: &'static str, sk: &'static str, count: &'static str| {
        let line = format!(
            "--case normal --endpoint {ep} --topic auth-rust --group auth-rust-group \
             --count {count} --timeout 60 --access-key {ak} --secret-key {sk}"
        );
        pier_tests::rust_client::run_client(cli(&line))
    };
    let ok = run("app", "app-secret", "50").await;
    let r = summary_ok(&ok, "rust-client normal");
    assert_eq!(r["received"], 50, "{r}");
    let wrong = run("app", "not-the-secret", "1").await;
    assert_refused(
        &wrong,
        "wrong secret",
        &["Unauthorized", "UNAUTHORIZED", "40100", "bad signature"],
    );
    let reader = run("reader", "reader-secret", "1").await;
    assert_refused(
        &reader,
        "no Pub",
        &["Forbidden", "FORBIDDEN", "40300", "lacks Pub"],
    );
}

both_modes!(
    python_client_with_keys,
    node_client_with_keys,
    rust_client_with_keys
);
