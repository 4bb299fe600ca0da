//! Starting and stopping the workspace's own `pier-store` and `pier-proxy`
//! binaries as child processes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Directory holding the workspace's binaries (next to the test binary).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // Tests run from target/<profile>/deps/<test>, tools such as pier-bench
    // from target/<profile>/<tool>: either way target/<profile>.
    let dir = exe.parent().expect("binary has a directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("deps has a parent").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not found: build the workspace binaries first (cargo build --workspace --bins)",
        p.display()
    );
    p
}

/// Runs `binary` with `args` until it exits, which must be within `within`
/// (one still running then is killed and the test fails): for starts that
/// are meant to be refused. Stdout is dropped, stderr kept.
pub fn run_to_exit<S: AsRef<std::ffi::OsStr>>(
    binary: &str,
    args: impl IntoIterator<Item = S>,
    within: Duration,
) -> std::process::Output {
    let mut child = Command::new(bin(binary))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {binary}: {e}"));
    let deadline = std::time::Instant::now() + within;
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{binary} kept running past {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// A running Pier process; killed (SIGTERM, then SIGKILL) when dropped.
pub struct Node {
    child: Option<Child>,
    pub addr: String,
    /// Address of the node's Prometheus endpoint (`/metrics`), when on.
    pub metrics_addr: Option<String>,
    pub log: mpsc::Receiver<String>,
}

impl Node {
    /// Starts `binary` with `args` and waits for its "listening" log line.
    /// A Pier node's metrics endpoint goes on an ephemeral port unless
    /// `args` say otherwise: many nodes share this host, none may take the
    /// default port.
    pub fn start(binary: &str, args: &[&str]) -> Node {
        Node::start_with_env(binary, args, &[])
    }

    /// [`Node::start`] with more environment variables.
    pub fn start_with_env(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Node {
        let mut args = args.to_vec();
        if (binary == "pier-proxy" || binary == "pier-store")
            && !args.iter().any(|a| a.starts_with("--metrics-listen"))
        {
            args.extend(["--metrics-listen", "127.0.0.1:0"]);
        }
        let mut child = Command::new(bin(binary))
            .args(&args)
            .env(
                "RUST_LOG",
                std::env::var("PIER_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        let name = binary.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("PIER_TEST_ECHO").is_some() {
                    eprintln!("[{name}] {line}");
                }
                if tx.send(line).is_err() {
                    // Keep draining so the child never blocks on a full pipe.
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut metrics_addr = None;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("listening") => {
                    let addr =
                        log_field(&line, "addr").unwrap_or_else(|| panic!("no addr= in {line:?}"));
                    return Node {
                        child: Some(child),
                        addr,
                        metrics_addr,
                        log: rx,
                    };
                }
                Ok(line) => {
                    // Logged before the client port's line.
                    if let Some(a) = log_field(&line, "metrics_addr") {
                        metrics_addr = Some(a);
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("{binary} did not report listening within 30 s");
                }
            }
        }
    }

    /// Standalone proxy with an embedded store in `data`.
    pub fn standalone(data: &Path) -> Node {
        Node::standalone_with(data, &[])
    }

    /// [`Node::standalone`] with more flags.
    pub fn standalone_with(data: &Path, extra: &[&str]) -> Node {
        Node::with_data("pier-proxy", data, extra, &[])
    }

    /// [`Node::standalone_with`] and environment variables (e.g. the
    /// OpenTelemetry export intervals).
    pub fn standalone_with_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Node {
        Node::with_data("pier-proxy", data, extra, env)
    }

    pub fn store(data: &Path) -> Node {
        Node::store_with(data, &[])
    }

    /// [`Node::store`] with more flags.
    pub fn store_with(data: &Path, extra: &[&str]) -> Node {
        Node::with_data("pier-store", data, extra, &[])
    }

    /// `binary` on an ephemeral port with its data in `data`.
    fn with_data(binary: &str, data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Node {
        let mut args = vec!["--listen", "127.0.0.1:0", "--data"];
        args.push(data.to_str().expect("utf-8 path"));
        args.extend_from_slice(extra);
        Node::start_with_env(binary, &args, env)
    }

    /// Waits (up to `within`) for a log line containing every one of
    /// `parts`; lines read on the way are consumed.
    pub fn wait_log(&self, parts: &[&str], within: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if parts.iter().all(|p| line.contains(p)) => return Some(line),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    pub fn proxy_of(store: &Node) -> Node {
        Node::proxy_of_with(store, &[])
    }

    /// [`Node::proxy_of`] with more flags.
    pub fn proxy_of_with(store: &Node, extra: &[&str]) -> Node {
        let mut args = vec!["--listen", "127.0.0.1:0", "--store", &store.addr];
        args.extend_from_slice(extra);
        Node::start("pier-proxy", &args)
    }

    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("addr has a port")
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit; returns whether
    /// the process exited with success.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Kills the process at once (SIGKILL): a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A field of a log line: `name=value` in text lines, `fields.name` in
/// JSON ones (`--log-format json`).
pub fn log_field(line: &str, name: &str) -> Option<String> {
    if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        return v["fields"][name].as_str().map(str::to_owned);
    }
    let prefix = format!("{name}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(prefix.as_str()))
        .map(str::to_owned)
}
