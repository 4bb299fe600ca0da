//! Running the official RocketMQ 5 Go client (tests/go, built by
//! tests/scripts/setup-go.sh into `$PIER_TOOLS_DIR/go/bin/pier-go-scenarios`)
//! against a standalone Pier or a cluster (one store, two proxies).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

pub use crate::deploy::{Mode, Pier};
use crate::{setup_once, tools_dir};

/// Builds the Go scenarios program once per test process (fast when it is
/// up to date) and returns its path.
pub fn ensure_go() -> PathBuf {
    setup_once("setup-go.sh");
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
