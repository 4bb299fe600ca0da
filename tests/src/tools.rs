//! The external test tools (official clients, grpcurl) that tests/scripts
//! install outside the clone.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

/// Where the test tools (Python venv with the official client, grpcurl)
/// live; `tests/scripts/setup-tools.sh` installs them.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("PIER_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".cache/pier-tools")
        })
}

/// Runs `tests/scripts/<script>` at most once per test process (the
/// scripts are idempotent and fast when their tools are installed) and
/// returns its output; panics when it fails. Its stderr (progress) goes to
/// the test's.
pub fn setup_once(script: &str) -> Output {
    static DONE: OnceLock<Mutex<Vec<(String, Output)>>> = OnceLock::new();
    let done = DONE.get_or_init(Default::default);
    // Held while the script runs, so concurrent tests wait for one run.
    let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, out)) = done.iter().find(|(s, _)| s == script) {
        return out.clone();
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let out = run_ok(
        Command::new("bash").arg(&path).stderr(Stdio::inherit()),
        &format!("tests/scripts/{script}"),
    );
    done.push((script.to_owned(), out.clone()));
    out
}

/// Runs `cmd` with stdin closed to its end and returns its output,
/// asserting that it succeeded (showing its stderr otherwise).
pub fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The stdout of a command that must have succeeded (its stdout and stderr
/// shown otherwise).
pub fn stdout_ok(out: &Output, what: &str) -> String {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs the tools installer (idempotent, fast when already installed).
pub fn ensure_tools() -> PathBuf {
    setup_once("setup-tools.sh");
    tools_dir()
}
