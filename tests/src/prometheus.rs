//! Metrics in tests: reading a node's `/metrics` page, and a real Prometheus
//! (Debian's, unpacked by `tests/scripts/setup-prometheus.sh`) started on an
//! ephemeral port with a temporary directory, stopped by PID when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::setup_once;

/// GETs `path` from `addr` over HTTP/1.0; returns the status code and body.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_owned()))
}

/// A node's metrics page (`GET /metrics` on its `metrics_addr`).
pub fn scrape(metrics_addr: &str) -> String {
    let (code, body) = http_get(metrics_addr, "/metrics").expect("scrape /metrics");
    assert_eq!(code, 200, "GET /metrics: {body}");
    body
}

/// The value of the sample `name{labels}` in a metrics page, where `labels`
/// are `key="value"` pairs the sample must carry (others may be there).
pub fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
        if n != name {
            return None;
        }
        let all = labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        all.then(|| value.parse().ok()).flatten()
    })
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server for one test.
pub struct Prometheus {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Installs Prometheus if needed, and starts it scraping `jobs` (job
    /// name, targets) every second, with `rule_files` loaded.
    pub fn start(jobs: &[(&str, Vec<String>)], rule_files: &[PathBuf]) -> Prometheus {
        let out = setup_once("setup-prometheus.sh");
        let bin_dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n",
        );
        for r in rule_files {
            cfg.push_str(&format!("  - {:?}\n", r.display().to_string()));
        }
        cfg.push_str("scrape_configs:\n");
        for (job, targets) in jobs {
            cfg.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: {targets:?}\n"
            ));
        }
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, cfg).expect("write prometheus.yml");
        // Prometheus cannot report a port it picked: take a free one.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(bin_dir.join("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(http_get(&p.addr, "/-/ready"), Ok((200, _))) {
            assert!(Instant::now() < deadline, "prometheus not ready in 30 s");
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    /// Runs an instant query; returns the JSON answer's `data.result`.
    pub fn query(&self, expr: &str) -> serde_json::Value {
        let (code, body) = http_get(&self.addr, &format!("/api/v1/query?query={}", encode(expr)))
            .expect("query prometheus");
        assert_eq!(code, 200, "{expr}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("query answer is JSON");
        v["data"]["result"].clone()
    }

    /// The single value `expr` gives, once it satisfies `ok` (polled for up
    /// to `within`, as scrapes come every second); the last value otherwise.
    pub fn wait_value(&self, expr: &str, within: Duration, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + within;
        loop {
            let v = self.query(expr)[0]["value"][1]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN);
            if ok(v) || Instant::now() >= deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The rule groups Prometheus loaded (`/api/v1/rules`).
    pub fn rules(&self) -> serde_json::Value {
        let (_, body) = http_get(&self.addr, "/api/v1/rules").expect("rules");
        serde_json::from_str(&body).expect("rules answer is JSON")
    }

    /// The repository's `deploy/observability` directory.
    pub fn deploy_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/observability")
    }

    /// promtool from the same package.
    pub fn promtool() -> PathBuf {
        let out = setup_once("setup-prometheus.sh");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("promtool")
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
