//! FIFO, delay and transactional messages with the official RocketMQ 5
//! Python client (`rocketmq-python-client` 5.1.2) in the four deployments of `four_modes!` (standalone; a cluster, the client given both proxies):
//! the scripts tests/python/{fifo,delay,transaction}.py do the work and
//! print one JSON summary line, which is checked here. Tools are installed by
//! `tests/scripts/setup-tools.sh` (run from here).

use pier_proto::admin::TopicType::{Delay, Fifo, Transaction};
use pier_tests::assert_fields;
use pier_tests::external::*;
use pier_tests::{four_modes, Client, Mode, Pier};

async fn python_fifo_groups_in_order(mode: Mode) {
    let line = "fifo.py --topic py-fifo --group py-fifo-group --groups 3 --count 100 --timeout 45";
    let (pier, r) = Pier::scenario(mode, Client::Python, (Fifo, 4), line).await;
    assert_eq!(r["fifo_mode"], true, "Settings must say fifo: {r}");
    assert_fields!(r, {"sent": 300, "received": 300});
    for g in ["g0", "g1", "g2"] {
        let s = &r["groups"][g];
        assert_eq!(s["in_order"], true, "{g}: {s}");
        assert_eq!(s["received"], 100, "{g}: {s}");
        assert_eq!(s["duplicates"], 0, "{g}: {s}");
    }
    assert_fields!(r, {"nacks": 0, "dlq": 0});
    assert_drained(&pier.raw, "py-fifo-group").await;
}

async fn python_delay_delivered_on_time(mode: Mode) {
    let line = "delay.py --topic py-delay --group py-delay-group --delay 3 --timeout 30";
    let (pier, r) = Pier::scenario(mode, Client::Python, (Delay, 2), line).await;
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
    assert_drained(&pier.raw, "py-delay-group").await;
}

async fn python_transactions_commit_rollback_orphan(mode: Mode) {
    let line = "transaction.py --topic py-tx --group py-tx-group --timeout 40 --tail 3";
    let (pier, r) = Pier::scenario(mode, Client::Python, (Transaction, 2), line).await;
    assert_fields!(r["received"], {"commit": 1, "rollback": 0, "orphan": 1});
    assert!(
        r["orphan_check_after_s"].is_number(),
        "checker not called: {r}"
    );
    assert_eq!(r["checks_by_case"]["orphan"], 1, "{r}");
    assert_drained(&pier.raw, "py-tx-group").await;
}

four_modes!(
    python_fifo_groups_in_order,
    python_delay_delivered_on_time,
    python_transactions_commit_rollback_orphan,
);
