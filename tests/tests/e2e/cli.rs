//! The `pier` CLI against a real standalone proxy: admin commands, send and
//! receive, idempotent create, and one-line errors with a non-zero status.

use std::process::{Command, Output, Stdio};

use pier_tests::*;

fn pier(endpoint: &str, args: &[&str]) -> Output {
    Command::new(bin("pier"))
        .arg("--endpoint")
        .arg(endpoint)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run pier")
}

fn ok(out: &Output) -> String {
    stdout_ok(out, "pier")
}

#[test]
fn admin_send_and_receive() {
    let data = tempfile::tempdir().unwrap();
    let proxy = Node::standalone(data.path());
    let ep = proxy.endpoint();

    let create = [
        "topic",
        "create",
        "cli-orders",
        "--type",
        "normal",
        "--queues",
        "2",
    ];
    ok(&pier(&ep, &create));
    // Re-running a create with the same settings succeeds (scripts re-run it).
    ok(&pier(&ep, &create));
    // Different settings for an existing topic: refused, one line, non-zero.
    let clash = pier(
        &ep,
        &[
            "topic",
            "create",
            "cli-orders",
            "--type",
            "fifo",
            "--queues",
            "2",
        ],
    );
    assert!(!clash.status.success());
    assert_eq!(
        String::from_utf8_lossy(&clash.stderr)
            .trim()
            .lines()
            .count(),
        1
    );

    ok(&pier(
        &ep,
        &["group", "create", "cli-group", "--max-attempts", "5"],
    ));
    ok(&pier(
        &ep,
        &["group", "create", "cli-group", "--max-attempts", "5"],
    ));
    assert!(ok(&pier(&ep, &["topic", "list"])).contains("cli-orders"));
    assert!(ok(&pier(&ep, &["group", "list"])).contains("cli-group"));
    assert!(ok(&pier(&ep, &["topic", "describe", "cli-orders"])).contains("cli-orders"));

    ok(&pier(
        &ep,
        &[
            "send",
            "cli-orders",
            "hello from the cli",
            "--tag",
            "greeting",
        ],
    ));
    let receive = |wait: &str| {
        ok(&pier(
            &ep,
            &[
                "receive",
                "cli-orders",
                "--group",
                "cli-group",
                "--wait",
                wait,
            ],
        ))
    };
    let got = receive("2");
    assert!(got.contains("hello from the cli"), "{got}");
    // It was acked: nothing is left.
    let none = receive("1");
    assert!(!none.contains("hello from the cli"), "{none}");
    let described = ok(&pier(&ep, &["--json", "group", "describe", "cli-group"]));
    let v: serde_json::Value = serde_json::from_str(described.trim()).expect("json");
    assert!(v.to_string().contains("cli-orders"), "{v}");

    // Errors: unknown topic, unreachable server.
    let missing = pier(&ep, &["send", "nope", "x"]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("TOPIC_NOT_FOUND"), "{err}");
    assert_eq!(err.trim().lines().count(), 1);
    let down = pier("127.0.0.1:1", &["topic", "list"]);
    assert!(!down.status.success());

    ok(&pier(&ep, &["group", "delete", "cli-group"]));
    ok(&pier(&ep, &["topic", "delete", "cli-orders"]));
    assert!(!ok(&pier(&ep, &["topic", "list"])).contains("cli-orders"));
}
