//! Operations (README, Operations) through the `pier` CLI, in both modes:
//! topic and group updates, dead-letter redrive, resetting a group's
//! position, purging a topic or a group's backlog, lag in `group describe`,
//! finding a message with each group's state, and the admin audit log with
//! the authenticated user.

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pier_proto::rocketmq::*;
use pier_tests::signing::{auth_flags, ROOT};
use pier_tests::*;

fn pier(ep: &str, args: &[&str]) -> Output {
    Command::new(bin("pier"))
        .args(["--endpoint", ep])
        .args(args)
        .env_remove("PIER_ACCESS_KEY")
        .env_remove("PIER_SECRET_KEY")
        .stdin(Stdio::null())
        .output()
        .expect("run pier")
}

/// Runs `pier` off the test's runtime threads (it blocks).
async fn run(ep: &str, args: &[&str]) -> Output {
    let ep = ep.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        pier(&ep, &args)
    })
    .await
    .expect("pier ran")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn ok(ep: &str, args: &[&str]) -> String {
    let o = run(ep, args).await;
    assert!(
        o.status.success(),
        "pier {args:?} failed: {}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// `pier <args>`, which must fail saying `says` on stderr; returns stderr.
async fn refused(ep: &str, args: &[&str], says: &str) -> String {
    let o = run(ep, args).await;
    let err = stderr(&o);
    assert!(!o.status.success(), "pier {args:?} succeeded: {err}");
    assert!(err.contains(says), "pier {args:?}: {err}");
    err
}

/// A command line's words (no argument here holds a space).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// `pier --json …` parsed.
async fn json(ep: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(ok(ep, &all).await.trim()).expect("json")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

/// Starts Pier in `mode` with a topic of `queues` queues and consumer
/// groups (name, max attempts) on it.
async fn start_with(mode: Mode, topic: &str, queues: u32, groups: &[(&str, u32)]) -> Pier {
    let p = Pier::start(mode, &[]).await;
    p.raw.create_topic(topic, queues).await;
    for &(name, max_attempts) in groups {
        p.raw.create_group(name, max_attempts).await;
    }
    p
}

/// Receives (and acks) until nothing more arrives within `poll_ms`;
/// returns the bodies.
async fn drain(c: &Raw, group: &str, topic: &str, poll_ms: u64) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let (code, msgs) = c.receive(group, topic, 16, 30_000, poll_ms).await;
        if code != Code::Ok || msgs.is_empty() {
            return bodies;
        }
        for m in &msgs {
            assert_eq!(c.ack(group, topic, &handle(m)).await, Code::Ok);
            bodies.push(body(m));
        }
    }
}

async fn update_topic_and_group(mode: Mode) {
    let p = Pier::start(mode, &[]).await;
    let ep = p.raw.endpoint.clone();
    p.raw.create_topic("ops-upd", 2).await;
    p.raw.create_group("ops-upd-g", 17).await;

    let out = ok(&ep, &["topic", "update", "ops-upd", "--queues", "4"]).await;
    assert_eq!(out.trim(), "updated topic ops-upd (normal, 4 queues)");
    // The type may change (RocketMQ's message.type is changeable); the
    // queue count given stays.
    let v = json(&ep, &["topic", "update", "ops-upd", "--type", "fifo"]).await;
    assert_eq!(v["topic"]["type"], "fifo");
    assert_eq!(v["topic"]["queues"], 4);
    // Queues never shrink: one line, non-zero, INVALID_ARGUMENT.
    let err = refused(
        &ep,
        &["topic", "update", "ops-upd", "--queues", "2"],
        "can grow but not shrink",
    )
    .await;
    assert_eq!(err.trim().lines().count(), 1);
    refused(
        &ep,
        &["topic", "update", "ops-none", "--queues", "2"],
        "NOT_FOUND",
    )
    .await;

    ok(
        &ep,
        &["group", "update", "ops-upd-g", "--max-attempts", "3"],
    )
    .await;
    let v = json(
        &ep,
        &words("group update ops-upd-g --fifo true --retry-customized 1000,5000"),
    )
    .await;
    assert_eq!(v["group"]["max_attempts"], 3, "{v}");
    assert_eq!(v["group"]["fifo"], true);
    assert_eq!(
        v["group"]["retry_policy"]["customized"]["next_ms"],
        serde_json::json!([1000, 5000])
    );
    let d = p.raw.describe_group("ops-upd-g").await;
    let g = d.group.expect("group");
    assert_eq!((g.max_attempts, g.fifo), (3, true));
}

async fn dead_letter_is_redriven_and_consumed_once(mode: Mode) {
    let p = start_with(
        mode,
        "ops-dlq",
        2,
        &[("ops-dlq-g", 2), ("ops-dlq-other", 17)],
    )
    .await;
    let (c, ep) = (&p.raw, p.raw.endpoint.clone());
    let sent = c.send(message("ops-dlq", "poison")).await;
    let id = sent.entries[0].message_id.clone();
    c.send(message("ops-dlq", "fine")).await;
    // Another group consumes both normally.
    let mut other = drain(c, "ops-dlq-other", "ops-dlq", 500).await;
    other.sort();
    assert_eq!(other, ["fine", "poison"]);

    // ops-dlq-g acks "fine" and never "poison": two attempts, then the DLQ.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "never dead-lettered");
        let (_, msgs) = c.receive("ops-dlq-g", "ops-dlq", 16, 1_000, 300).await;
        for m in &msgs {
            if body(m) == "fine" {
                c.ack("ops-dlq-g", "ops-dlq", &handle(m)).await;
            }
        }
        if c.describe_group("ops-dlq-g").await.dlq == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Refusals, each with its code: an empty time range, an unknown group.
    refused(
        &ep,
        &words("dlq redrive --group ops-dlq-g --since 1h --until 2h"),
        "INVALID_ARGUMENT",
    )
    .await;
    refused(
        &ep,
        &["dlq", "redrive", "--group", "ops-nobody"],
        "NOT_FOUND",
    )
    .await;
    // A filter that matches nothing moves nothing.
    let v = json(
        &ep,
        &["dlq", "redrive", "--group", "ops-dlq-g", "--key", "nope"],
    )
    .await;
    assert_eq!(v["redriven"], 0);
    let out = ok(
        &ep,
        &words(&format!(
            "dlq redrive --group ops-dlq-g --message-id {id} --rate 10"
        )),
    )
    .await;
    assert!(out.contains("moved 1 dead-lettered message"), "{out}");
    // Moved: it left the DLQ.
    assert_eq!(c.describe_group("ops-dlq-g").await.dlq, 0);

    // The group gets it once more, from attempt 1, with its original id.
    let (code, msgs) = c.receive("ops-dlq-g", "ops-dlq", 16, 30_000, 3_000).await;
    assert_eq!(code, Code::Ok);
    assert_eq!(msgs.len(), 1);
    assert_eq!(body(&msgs[0]), "poison");
    assert_eq!(attempt(&msgs[0]), 1);
    assert_eq!(
        msgs[0]
            .system_properties
            .as_ref()
            .map(|s| s.message_id.as_str()),
        Some(id.as_str())
    );
    assert_eq!(
        c.ack("ops-dlq-g", "ops-dlq", &handle(&msgs[0])).await,
        Code::Ok
    );
    assert!(drain(c, "ops-dlq-g", "ops-dlq", 500).await.is_empty());
    // The other group, which had consumed it, does not see it again.
    assert!(drain(c, "ops-dlq-other", "ops-dlq", 500).await.is_empty());
    // Nothing left to redrive.
    let v = json(&ep, &["dlq", "redrive", "--group", "ops-dlq-g"]).await;
    assert_eq!(v["redriven"], 0);
}

async fn reset_by_timestamp_redelivers_what_came_after(mode: Mode) {
    let p = start_with(mode, "ops-reset", 2, &[("ops-reset-g", 17)]).await;
    let (c, ep) = (&p.raw, p.raw.endpoint.clone());
    for b in ["a", "b", "c"] {
        c.send(message("ops-reset", b)).await;
    }
    assert_eq!(drain(c, "ops-reset-g", "ops-reset", 500).await.len(), 3);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let at = now_ms();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for b in ["d", "e"] {
        c.send(message("ops-reset", b)).await;
    }
    assert_eq!(drain(c, "ops-reset-g", "ops-reset", 500).await.len(), 2);
    // One message held in flight: the reset is refused, with its code.
    c.send(message("ops-reset", "f")).await;
    let (_, held) = c
        .receive("ops-reset-g", "ops-reset", 1, 30_000, 2_000)
        .await;
    assert_eq!(held.len(), 1);
    let at_arg = at.to_string();
    let reset = [
        "group",
        "reset",
        "ops-reset-g",
        "--topic",
        "ops-reset",
        "--to",
        &at_arg,
    ];
    let o = run(&ep, &reset).await;
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("FAILED_PRECONDITION") && err.contains("force"),
        "{err}"
    );
    let mut forced = reset.to_vec();
    forced.push("--force");
    let v = json(&ep, &forced).await;
    assert_eq!(v["dropped_inflight"], 1, "{v}");
    // Exactly what was stored after the time comes again.
    let got: BTreeSet<String> = drain(c, "ops-reset-g", "ops-reset", 500)
        .await
        .into_iter()
        .collect();
    let want: BTreeSet<String> = ["d", "e", "f"].iter().map(|s| s.to_string()).collect();
    assert_eq!(got, want);
    // The handle of the dropped delivery is stale now.
    assert_ne!(
        c.ack("ops-reset-g", "ops-reset", &handle(&held[0])).await,
        Code::Ok
    );
    // Oldest: everything again; one queue only is accepted, a bad one not.
    ok(
        &ep,
        &words("group reset ops-reset-g --topic ops-reset --to oldest"),
    )
    .await;
    assert_eq!(drain(c, "ops-reset-g", "ops-reset", 500).await.len(), 6);
    refused(
        &ep,
        &words("group reset ops-reset-g --topic ops-reset --to newest --queue 9"),
        "INVALID_ARGUMENT",
    )
    .await;
}

async fn purge_leaves_other_groups_alone(mode: Mode) {
    let p = start_with(
        mode,
        "ops-purge",
        2,
        &[("ops-purge-a", 17), ("ops-purge-b", 17)],
    )
    .await;
    let (c, ep) = (&p.raw, p.raw.endpoint.clone());
    for b in ["1", "2", "3"] {
        c.send(message("ops-purge", b)).await;
    }
    // Both groups have a backlog of 3 (the gauges see it once received).
    let _ = c.receive("ops-purge-a", "ops-purge", 1, 30_000, 0).await;
    let v = json(&ep, &["group", "describe", "ops-purge-a"]).await;
    assert_eq!(v["backlog"][0]["inflight"], 1, "{v}");
    assert!(v["backlog"][0]["lag_ms"].as_i64().is_some(), "{v}");

    let out = ok(
        &ep,
        &["group", "purge", "ops-purge-a", "--topic", "ops-purge"],
    )
    .await;
    assert!(out.contains("1 in-flight delivery(ies) dropped"), "{out}");
    assert!(drain(c, "ops-purge-a", "ops-purge", 500).await.is_empty());
    assert_eq!(drain(c, "ops-purge-b", "ops-purge", 500).await.len(), 3);

    // Purging the topic empties it for every group; new messages flow.
    for b in ["4", "5"] {
        c.send(message("ops-purge", b)).await;
    }
    let v = json(&ep, &["topic", "purge", "ops-purge"]).await;
    assert_eq!(v["purged"], 5);
    assert!(drain(c, "ops-purge-a", "ops-purge", 300).await.is_empty());
    assert!(drain(c, "ops-purge-b", "ops-purge", 300).await.is_empty());
    c.send(message("ops-purge", "6")).await;
    assert_eq!(drain(c, "ops-purge-b", "ops-purge", 2_000).await, ["6"]);
}

async fn find_message_shows_each_groups_state(mode: Mode) {
    let p = start_with(
        mode,
        "ops-find",
        1,
        &[
            ("ops-find-acker", 17),
            ("ops-find-holder", 17),
            ("ops-find-dead", 1),
            ("ops-find-expired", 17),
        ],
    )
    .await;
    let (c, ep) = (&p.raw, p.raw.endpoint.clone());
    let sent_after = now_ms() - 1;
    let mut m = message("ops-find", "the order");
    if let Some(sp) = m.system_properties.as_mut() {
        sp.keys = vec!["order-42".into()];
    }
    let id = c.send(m).await.entries[0].message_id.clone();
    c.send(message("ops-find", "another")).await;

    assert_eq!(drain(c, "ops-find-acker", "ops-find", 500).await.len(), 2);
    let (_, held) = c
        .receive("ops-find-holder", "ops-find", 16, 60_000, 2_000)
        .await;
    assert_eq!(held.len(), 2);
    // Received and never acked: ready again once its invisibility ends.
    let (_, expired) = c
        .receive("ops-find-expired", "ops-find", 16, 1_000, 2_000)
        .await;
    assert_eq!(expired.len(), 2);
    let expires = Instant::now() + Duration::from_millis(1_200);
    // One attempt allowed: both go to the DLQ once their invisibility ends.
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.describe_group("ops-find-dead").await.dlq < 2 {
        assert!(Instant::now() < deadline, "never dead-lettered");
        let _ = c.receive("ops-find-dead", "ops-find", 16, 1_000, 300).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep_until(expires.into()).await;

    let v = json(
        &ep,
        &[
            "message", "find", "--topic", "ops-find", "--key", "order-42",
        ],
    )
    .await;
    let found = v["messages"].as_array().expect("messages");
    assert_eq!(found.len(), 1, "{v}");
    assert_eq!(found[0]["message_id"], id.as_str());
    assert_eq!(found[0]["body"], "the order");
    let state = |g: &str| {
        found[0]["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .find(|s| s["group"] == g)
            .cloned()
            .unwrap_or_else(|| panic!("no state for {g}: {v}"))
    };
    assert_eq!(state("ops-find-acker")["state"], "acked");
    assert_eq!(state("ops-find-holder")["state"], "inflight");
    assert_eq!(state("ops-find-holder")["attempt"], 1);
    assert_eq!(state("ops-find-dead")["state"], "dead-lettered");
    assert_eq!(state("ops-find-expired")["state"], "ready");
    assert_eq!(state("ops-find-expired")["attempt"], 1);
    // By time range alone: both messages, oldest first.
    let since = sent_after.to_string();
    let v = json(
        &ep,
        &["message", "find", "--topic", "ops-find", "--since", &since],
    )
    .await;
    let in_range = v["messages"].as_array().expect("messages");
    assert_eq!(in_range.len(), 2, "{v}");
    assert_eq!(in_range[0]["message_id"], id.as_str());
    // By id, as text.
    let out = ok(&ep, &["message", "show", &id, "--topic", "ops-find"]).await;
    assert!(
        out.contains("order-42") && out.contains("inflight"),
        "{out}"
    );
    // Acked by the holder now; then unknown ids fail with one line.
    for m in &held {
        c.ack("ops-find-holder", "ops-find", &handle(m)).await;
    }
    let v = json(&ep, &["message", "show", &id, "--topic", "ops-find"]).await;
    let holder = v["messages"][0]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|s| s["group"] == "ops-find-holder")
        .cloned();
    assert_eq!(holder.expect("holder")["state"], "acked");
    refused(
        &ep,
        &["message", "show", "NOPE", "--topic", "ops-find"],
        "not found",
    )
    .await;
}

both_modes!(
    find_message_shows_each_groups_state,
    update_topic_and_group,
    dead_letter_is_redriven_and_consumed_once,
    reset_by_timestamp_redelivers_what_came_after,
    purge_leaves_other_groups_alone,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_need_an_admin_and_are_logged_with_the_user() {
    let data = tempfile::tempdir().unwrap();
    let proxy = Node::standalone_with(data.path(), &auth_flags());
    let ep = proxy.endpoint();
    let as_root = |args: &[&str]| {
        let mut v = vec!["--access-key", ROOT.0, "--secret-key", ROOT.1];
        v.extend_from_slice(args);
        v.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let strs = |v: &[String]| v.iter().map(String::as_str).collect::<Vec<_>>().join(" ");
    let a = as_root(&["topic", "create", "ops-audit"]);
    ok(&ep, &a.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let a = as_root(&["user", "create", "bob", "--secret", "bob-secret"]);
    ok(&ep, &a.iter().map(String::as_str).collect::<Vec<_>>()).await;
    // A user that is not an admin is refused the new RPCs.
    refused(
        &ep,
        &words("--access-key bob --secret-key bob-secret topic purge ops-audit"),
        "not an admin",
    )
    .await;
    let a = as_root(&["topic", "purge", "ops-audit"]);
    ok(&ep, &a.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let line = proxy.wait_log(
        &["admin action", "PurgeTopic", "root", "OK"],
        Duration::from_secs(5),
    );
    assert!(line.is_some(), "no audit line for {}", strs(&a));
}
