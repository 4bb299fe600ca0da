//! FIFO, delay and transactional messages with the official RocketMQ 5
//! Python client (`rocketmq-python-client` 5.1.2) in the four deployments of `four_modes!` (standalone; a cluster, the client given both proxies):
//! the scripts tests/python/{fifo,delay,transaction}.py do the work and
//! print one JSON summary line, which is checked here. Tools are installed by
//! `tests/scripts/setup-tools.sh` (run from here).

use std::time::Instant;

use pier_proto::admin::TopicType;
use pier_tests::external::*;
use pier_tests::*;
use pier_tests::{four_modes, Mode};

async fn python_fifo_groups_in_order(mode: Mode) {
    let tools = ensure_tools();
    let pier = Pier::start(mode, &[]).await;
    let (ep, c) = (pier.access_point.clone(), pier.raw.clone());
    c.create_typed_topic("py-fifo", TopicType::Fifo, 4).await;
    c.create_fifo_group("py-fifo-group", 0).await;

    let started = Instant::now();
    let out = pier
        .python(
            &tools,
            "fifo.py",
            args(&[
                "--endpoint",
                &ep,
                "--topic",
                "py-fifo",
                "--group",
                "py-fifo-group",
                "--groups",
                "3",
                "--count",
                "100",
                "--timeout",
                "45",
            ]),
        )
        .await;
    let r = summary(&out, "fifo.py");
    eprintln!(
        "fifo.py: {:.1} s in all, send {} s, send + consume {} s",
        started.elapsed().as_secs_f64(),
        r["send_s"],
        r["consume_s"]
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["fifo_mode"], true, "Settings must say fifo: {r}");
    assert_eq!(r["sent"], 300, "{r}");
    assert_eq!(r["received"], 300, "{r}");
    for g in ["g0", "g1", "g2"] {
        let s = &r["groups"][g];
        assert_eq!(s["in_order"], true, "{g}: {s}");
        assert_eq!(s["received"], 100, "{g}: {s}");
        assert_eq!(s["duplicates"], 0, "{g}: {s}");
    }
    assert_eq!(r["nacks"], 0, "{r}");
    assert_eq!(r["dlq"], 0, "{r}");
    assert_drained(&c, "py-fifo-group").await;
}

async fn python_delay_delivered_on_time(mode: Mode) {
    let tools = ensure_tools();
    let pier = Pier::start(mode, &[]).await;
    let (ep, c) = (pier.access_point.clone(), pier.raw.clone());
    c.create_typed_topic("py-delay", TopicType::Delay, 2).await;
    c.create_group("py-delay-group", 0).await;

    let started = Instant::now();
    let out = pier
        .python(
            &tools,
            "delay.py",
            args(&[
                "--endpoint",
                &ep,
                "--topic",
                "py-delay",
                "--group",
                "py-delay-group",
                "--delay",
                "3",
                "--timeout",
                "30",
            ]),
        )
        .await;
    let r = summary(&out, "delay.py");
    eprintln!(
        "delay.py: {:.1} s in all, lateness {} ms after the intended time, {} ms after the whole second sent",
        started.elapsed().as_secs_f64(),
        r["lateness_ms"],
        r["lateness_vs_sent_ms"]
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["received"], 1, "{r}");
    let late = r["lateness_ms"].as_i64().expect("lateness_ms");
    // The client sends whole seconds: up to 1 s before the intended time.
    assert!((-1000..1500).contains(&late), "lateness {late} ms: {r}");
    assert!(
        r["lateness_vs_sent_ms"]
            .as_i64()
            .expect("lateness_vs_sent_ms")
            >= 0,
        "delivered before the timestamp sent: {r}"
    );
    assert_drained(&c, "py-delay-group").await;
}

async fn python_transactions_commit_rollback_orphan(mode: Mode) {
    let tools = ensure_tools();
    let pier = Pier::start(mode, &[]).await;
    let (ep, c) = (pier.access_point.clone(), pier.raw.clone());
    c.create_typed_topic("py-tx", TopicType::Transaction, 2)
        .await;
    c.create_group("py-tx-group", 0).await;

    let started = Instant::now();
    let out = pier
        .python(
            &tools,
            "transaction.py",
            args(&[
                "--endpoint",
                &ep,
                "--topic",
                "py-tx",
                "--group",
                "py-tx-group",
                "--timeout",
                "40",
                "--tail",
                "3",
            ]),
        )
        .await;
    let r = summary(&out, "transaction.py");
    eprintln!(
        "transaction.py: {:.1} s in all, orphan check {} s after the send, delivered after {}",
        started.elapsed().as_secs_f64(),
        r["orphan_check_after_s"],
        r["delivered_after_s"]
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["received"]["commit"], 1, "{r}");
    assert_eq!(r["received"]["rollback"], 0, "{r}");
    assert_eq!(r["received"]["orphan"], 1, "{r}");
    assert!(
        r["orphan_check_after_s"].is_number(),
        "checker not called: {r}"
    );
    assert_eq!(r["checks_by_case"]["orphan"], 1, "{r}");
    assert_drained(&c, "py-tx-group").await;
}

four_modes!(
    python_fifo_groups_in_order,
    python_delay_delivered_on_time,
    python_transactions_commit_rollback_orphan,
);
