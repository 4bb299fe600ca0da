//! Helpers for tests that drive an official client as a child process
//! printing one JSON summary line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::Raw;

/// Runs a script of tests/python with the tools' venv, off the async
/// runtime, with more environment variables `env` (e.g. the TLS roots).
pub async fn python_env(
    tools: &Path,
    script: &str,
    args: Vec<String>,
    env: &[(&'static str, PathBuf)],
) -> Output {
    let py = tools.join("venv/bin/python");
    run_script(py, "python", script, args, env.to_vec(), &[]).await
}

/// Runs `node tests/node/<script> <args>` off the async runtime, with
/// the official client the tools installed on `NODE_PATH` and more
/// environment variables `env` (e.g. the TLS roots). With
/// `NODE_EXTRA_CA_CERTS` among them, `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH` is
/// removed: grpc-js takes its roots from that file instead of Node's store
/// when it is set (some hosts set it globally).
pub async fn node_env(
    tools: &Path,
    script: &str,
    args: Vec<String>,
    env: &[(&'static str, PathBuf)],
) -> Output {
    let modules = tools.join("node/node_modules");
    assert!(
        modules.join("rocketmq-client-nodejs/package.json").exists(),
        "rocketmq-client-nodejs is not installed in {} (are node and npm on PATH? see tests/scripts/setup-tools.sh)",
        modules.display()
    );
    run_script(
        "node".into(),
        "node",
        script,
        args,
        [("NODE_PATH", modules)]
            .into_iter()
            .chain(env.iter().cloned())
            .collect(),
        if env.iter().any(|(k, _)| *k == "NODE_EXTRA_CA_CERTS") {
            &["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"][..]
        } else {
            &[]
        },
    )
    .await
}

/// `program tests/<dir>/<script> <args>` off the async runtime, with a
/// temporary `HOME` (the clients write logs under it), extra environment
/// variables and some removed.
async fn run_script(
    program: PathBuf,
    dir: &str,
    script: &str,
    args: Vec<String>,
    env: Vec<(&'static str, PathBuf)>,
    remove: &'static [&'static str],
) -> Output {
    let script: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(script);
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(&program);
        cmd.arg(script)
            .args(args)
            .env("HOME", std::env::temp_dir())
            .stdin(Stdio::null());
        cmd.envs(env);
        for k in remove {
            cmd.env_remove(k);
        }
        cmd.output()
            .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
    })
    .await
    .expect("script task")
}

pub fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

/// A client's options written as on a command line, split at white space
/// (no value the tests pass holds a space).
pub fn cli(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

/// Asserts that the JSON summary `$summary` holds each field of the JSON
/// object that follows with that value (fields not named are not checked):
/// `assert_fields!(r, {"sent": 10, "duplicates": 0})`.
#[macro_export]
macro_rules! assert_fields {
    ($summary:expr, $($fields:tt)+) => {
        $crate::external::assert_fields(&$summary, $crate::serde_json::json!($($fields)+))
    };
}

/// [`assert_fields!`](crate::assert_fields) as a function.
pub fn assert_fields(summary: &serde_json::Value, expected: serde_json::Value) {
    let serde_json::Value::Object(fields) = expected else {
        panic!("expected fields must be a JSON object, not {expected}");
    };
    for (name, want) in fields {
        assert_eq!(summary[name.as_str()], want, "{name}: {summary}");
    }
}

/// tests/python/producer.py sending `count` messages, then
/// simple_consumer.py expecting them. Both get the options `common` (the
/// endpoint, the topic, the body prefix; keys or `--tls` where needed) and
/// the environment `env`; the consumer also `consumer` (its group and
/// timeout). Asserts that every message was sent; returns the consumer's
/// summary, its own verdict checked.
pub async fn python_send_then_receive(
    tools: &Path,
    common: &str,
    count: usize,
    consumer: &str,
    env: &[(&'static str, PathBuf)],
) -> serde_json::Value {
    let line = format!("{common} --count {count}");
    let sent = python_env(tools, "producer.py", cli(&line), env).await;
    let sent = summary(&sent, "producer.py");
    assert_eq!(sent["sent"], count, "{sent}");
    let line = format!("{common} --expect {count} {consumer}");
    let got = python_env(tools, "simple_consumer.py", cli(&line), env).await;
    summary_ok(&got, "simple_consumer.py")
}

/// Asserts a zero exit status and returns the JSON summary (the last
/// stdout line). On failure shows stdout and the tail of stderr
/// (clients log a lot there).
pub fn summary(out: &Output, what: &str) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {stdout}\nstderr (tail): {tail}",
        out.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{what}: bad JSON summary {last:?}: {e}"))
}

/// [`summary`], also asserting the client's own verdict `"ok": true`.
pub fn summary_ok(out: &Output, what: &str) -> serde_json::Value {
    let v = summary(out, what);
    assert_eq!(v["ok"], true, "{what}: {v}");
    eprintln!("{what}: {v}");
    v
}

/// Nothing ready or in flight remains for `group`.
pub async fn assert_drained(c: &Raw, group: &str) {
    let d = c.describe_group(group).await;
    let left: u64 = d.backlog.iter().map(|b| b.ready + b.inflight).sum();
    assert_eq!(left, 0, "{group}: {d:?}");
}
