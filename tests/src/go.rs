//! Running the official RocketMQ 5 Go client (tests/go, built by
//! tests/scripts/setup-go.sh into `$PIER_TOOLS_DIR/go/bin/pier-go-scenarios`)
//! against a standalone Pier or a cluster (one store, two proxies).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use tempfile::TempDir;

use crate::{tools_dir, Node, Raw};

/// Builds the Go scenarios program once per test process (fast when it is
/// up to date) and returns its path.
pub fn ensure_go() -> PathBuf {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/setup-go.sh");
    ONCE.call_once(|| {
        let status = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .status()
            .expect("run setup-go.sh");
        assert!(status.success(), "tests/scripts/setup-go.sh failed");
    });
    let bin = tools_dir().join("go/bin/pier-go-scenarios");
    assert!(bin.exists(), "{} missing after setup-go.sh", bin.display());
    bin
}

/// Runs `pier-go-scenarios -case <case> -endpoint <endpoint> <args>` off the
/// async runtime. The client's log goes to stderr.
pub async fn scenario(case: &str, endpoint: &str, args: &[&str]) -> Output {
    let bin = ensure_go();
    let mut argv: Vec<String> = vec![
        "-case".into(),
        case.into(),
        "-endpoint".into(),
        endpoint.into(),
    ];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let what = case.to_owned();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let out = Command::new(bin)
            .args(&argv)
            // The client would otherwise write logs under $HOME/logs.
            .env("HOME", std::env::temp_dir())
            .stdin(Stdio::null())
            .output()
            .expect("run pier-go-scenarios");
        eprintln!(
            "go {what}: {:.1} s, exit {}",
            started.elapsed().as_secs_f64(),
            out.status
        );
        out
    })
    .await
    .expect("go scenario task")
}

/// Where the Go client talks to: a standalone proxy, or a store with two
/// proxies that the client is given together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Standalone,
    Cluster,
}

/// A running Pier for one test; everything stops when it is dropped.
pub struct Pier {
    /// The client's access point: one address, or every proxy joined with
    /// ';' (the Go client's multi-address form).
    pub access_point: String,
    /// Admin and raw access through the first proxy.
    pub raw: Raw,
    pub nodes: Vec<Node>,
    _data: TempDir,
}

impl Pier {
    /// Starts Pier in `mode`. `store_flags` go to the node holding the data
    /// (the standalone proxy, or `pier-store`), e.g. the transaction-check
    /// policy.
    pub async fn start(mode: Mode, store_flags: &[&str]) -> Pier {
        let data = tempfile::tempdir().expect("temp dir");
        let nodes = match mode {
            Mode::Standalone => vec![Node::standalone_with(data.path(), store_flags)],
            Mode::Cluster => {
                let store = Node::store_with(data.path(), store_flags);
                let a = Node::proxy_of(&store);
                let b = Node::proxy_of(&store);
                vec![store, a, b]
            }
        };
        let proxies: Vec<String> = match mode {
            Mode::Standalone => vec![nodes[0].endpoint()],
            Mode::Cluster => nodes[1..].iter().map(Node::endpoint).collect(),
        };
        let raw = Raw::connect(&proxies[0]).await;
        Pier {
            access_point: proxies.join(";"),
            raw,
            nodes,
            _data: data,
        }
    }
}
