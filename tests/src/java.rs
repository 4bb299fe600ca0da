//! Runs `pier.Scenarios` of tests/java, which drives the official RocketMQ 5
//! Java client (`org.apache.rocketmq:rocketmq-client-java`, pinned in
//! tests/java/pom.xml) against a Pier and prints one JSON summary line.
//! `tests/scripts/setup-java.sh` builds it outside the clone (see there).

use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use crate::setup_once;

/// Builds tests/java once per test binary (fast when already built) and
/// returns the runnable classpath.
pub fn ensure_java() -> &'static str {
    static CLASSPATH: OnceLock<String> = OnceLock::new();
    CLASSPATH.get_or_init(|| {
        let started = Instant::now();
        let out = setup_once("setup-java.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let cp = stdout.lines().last().unwrap_or_default().trim().to_owned();
        assert!(!cp.is_empty(), "setup-java.sh printed no classpath");
        eprintln!("setup-java.sh: {:.1} s", started.elapsed().as_secs_f64());
        cp
    })
}

/// One run of a scenario: `case` against `endpoints` (`host:port`, several
/// joined with `;` as the Java client takes them), with `--name value`
/// options. The client's own log goes to a temporary directory, whose tail
/// is shown when the run fails.
pub struct Run {
    pub output: Output,
    pub secs: f64,
    log_dir: tempfile::TempDir,
}

pub async fn scenario(case: &str, endpoints: &str, opts: &[(&str, &str)]) -> Run {
    // The first call may build (minutes when cold): off the async runtime.
    let cp = tokio::task::spawn_blocking(|| ensure_java().to_owned())
        .await
        .expect("setup-java task");
    let log_dir = tempfile::tempdir().expect("temp dir for the client's log");
    let mut cmd = Command::new("java");
    cmd.args([
        // Startup time matters more than peak speed for these short runs.
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Xmx512m",
    ])
    .arg(format!("-Drocketmq.log.root={}", log_dir.path().display()))
    .arg(format!("-Duser.home={}", log_dir.path().display()))
    .args([
        "-cp",
        &cp,
        "pier.Scenarios",
        "--case",
        case,
        "--endpoints",
        endpoints,
    ]);
    for (k, v) in opts {
        cmd.arg(format!("--{k}")).arg(v);
    }
    cmd.stdin(Stdio::null());
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || cmd.output().expect("run java"))
        .await
        .expect("java task");
    Run {
        output,
        secs: started.elapsed().as_secs_f64(),
        log_dir,
    }
}

impl Run {
    /// The JSON summary, after asserting a zero exit status and the
    /// scenario's own verdict `"ok": true`. On failure shows stdout, the
    /// tail of stderr and the tail of the client's log.
    pub fn summary_ok(&self, what: &str) -> serde_json::Value {
        let stdout = String::from_utf8_lossy(&self.output.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(last);
        let ok = self.output.status.success()
            && parsed
                .as_ref()
                .is_ok_and(|v| v["ok"] == serde_json::Value::Bool(true));
        if !ok {
            panic!(
                "{what} failed ({}):\nstdout: {stdout}\nstderr (tail):\n{}\nclient log (tail):\n{}",
                self.output.status,
                tail(&String::from_utf8_lossy(&self.output.stderr), 40),
                tail(&self.client_log(), 60),
            );
        }
        let v = parsed.expect("checked above");
        eprintln!("{what} ({:.1} s): {v}", self.secs);
        v
    }

    fn client_log(&self) -> String {
        std::fs::read_to_string(self.log_dir.path().join("rocketmq-client.log"))
            .unwrap_or_else(|e| format!("(no client log: {e})"))
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
