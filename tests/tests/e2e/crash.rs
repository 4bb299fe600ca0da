//! The crash checker (src/bin/crash.rs), short: about ten SIGKILL cycles
//! per mode, asserting nothing acknowledged is undone: no acked send lost,
//! no message delivered again after its AckMessage answered OK.
//!
//! Until acks are durable in the store (issue 14), the second assertion
//! fails: an ack is answered from memory and written later, so a kill
//! forgets some, and their messages come back.
//!
//! Long runs are by hand: `tests/scripts/crash.sh 100`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pier_tests::bin;

/// Runs the checker in `mode` and returns its JSON report.
fn run_checker(mode: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let mut child = Command::new(bin("crash"))
        .args(["--mode", mode, "--cycles", "10"])
        .args(["--kill-every-ms", "1500..3000", "--down-ms", "300..1000"])
        .args([
            "--rate",
            "400",
            "--invisible-ms",
            "3000",
            "--drain-ms",
            "20000",
        ])
        .args(["--seed", "14"])
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // Ten cycles take about 45 s; past the bound, stop the checker by its
    // PID (SIGTERM: it kills the Pier processes it started), then for sure.
    let deadline = Instant::now() + Duration::from_secs(150);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            let _ = child.wait();
            panic!("crash checker ({mode}) did not finish within 150 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("crash checker ({mode}, {status}) wrote no report: {e}"));
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    // The exit status is the verdict.
    assert_eq!(
        status.success(),
        report["ok"] == true,
        "{mode}: {status} {report}"
    );
    report
}

fn check(mode: &str) {
    let r = run_checker(mode);
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
    // The run did what it claims: every cycle killed and restarted, with
    // load before and after.
    let restarts = r["restarts"].as_array().unwrap();
    assert_eq!(restarts.len(), 10, "{r}");
    assert!(n("sent_acked") >= 200, "too little load: {r}");
    // Pier came back each time: a send was answered OK after every restart.
    for c in restarts {
        assert!(c["first_ok_send_ms"].is_u64(), "no OK send after {c}: {r}");
    }
    assert_eq!(n("foreign_deliveries"), 0, "{r}");
    assert_eq!(n("lost"), 0, "{mode}: acked sends lost: {r}");
    assert_eq!(
        n("redelivered_after_ack"),
        0,
        "{mode}: messages came back after their ack answered OK: {r}"
    );
}

#[test]
fn standalone_kill_cycles_undo_nothing_acknowledged() {
    check("standalone");
}

#[test]
fn cluster_kill_cycles_undo_nothing_acknowledged() {
    check("cluster");
}
