//! Durable peers Pier is measured against in the same run: Redis Streams,
//! a RabbitMQ quorum queue, NATS JetStream and Apache RocketMQ 5 itself. Each is a [`System`] that
//! starts its own server process(es) on 127.0.0.1 (free ports, temporary
//! data directory), so nothing depends on a system service or on what else
//! runs on the machine, and kills everything it started when dropped.
//!
//! The servers come from `bench/scripts/install-peers.sh` (Debian packages,
//! a PyPI wheel, RocketMQ's jars from Maven Central through
//! `bench/scripts/rocketmq.sh`); [`install`] runs it.

#[doc(hidden)]
pub mod check;
pub mod nats;
pub mod rabbitmq;
pub mod redis;
pub mod rocketmq;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::system::boxed;

/// A system a scenario may measure (label, whether it pops, starter).
pub use crate::system::Spec as PeerSpec;

/// The durable peers, one entry per configuration.
pub fn durable_peers() -> Vec<PeerSpec> {
    vec![
        PeerSpec::popping("redis appendfsync=always", true, || {
            Box::pin(async { boxed(redis::Redis::start(redis::Fsync::Always).await) })
        }),
        PeerSpec::popping("redis appendfsync=everysec", false, || {
            Box::pin(async { boxed(redis::Redis::start(redis::Fsync::EverySec).await) })
        }),
        PeerSpec::popping("rabbitmq quorum queue", true, || {
            Box::pin(async { boxed(rabbitmq::RabbitMq::start().await) })
        }),
        PeerSpec::popping("nats jetstream sync_interval=always", true, || {
            Box::pin(async { boxed(nats::Nats::start(nats::Sync::Always).await) })
        }),
        PeerSpec::popping(
            "nats jetstream sync_interval=default (2 min)",
            false,
            || Box::pin(async { boxed(nats::Nats::start(nats::Sync::Default).await) }),
        ),
        PeerSpec::popping("rocketmq sync_flush", true, || {
            Box::pin(async { boxed(rocketmq::RocketMq::start(rocketmq::Flush::Sync).await) })
        }),
        PeerSpec::popping("rocketmq async_flush", false, || {
            Box::pin(async { boxed(rocketmq::RocketMq::start(rocketmq::Flush::Async).await) })
        }),
    ]
}

/// What this machine can do at best: a synced RocksDB write and a gRPC
/// round trip with no storage (see `crate::ceiling`).
pub fn ceilings() -> Vec<PeerSpec> {
    crate::ceiling::ceilings()
}

/// Where install-peers.sh puts the tools that are not Debian packages.
pub fn tools_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PIER_BENCH_TOOLS") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/pier-bench-tools")
}

pub(crate) const REDIS_SERVER: &str = "/usr/bin/redis-server";
/// The script itself, not /usr/sbin/rabbitmq-server: that wrapper switches
/// to the `rabbitmq` user and detaches from our process group.
pub(crate) const RABBITMQ_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

pub(crate) fn nats_server() -> PathBuf {
    tools_dir().join("bin/nats-server")
}

/// Whether every peer's server is installed.
pub fn installed() -> bool {
    native_installed() && rocketmq::installed()
}

/// Redis, RabbitMQ, NATS and the tools they need.
fn native_installed() -> bool {
    Path::new(REDIS_SERVER).exists()
        && Path::new(RABBITMQ_SERVER).exists()
        && nats_server().exists()
        && which("epmd").is_some()
        && which("taskset").is_some()
}

/// Installs what the peers a run selects (`--only`, as the scenarios
/// filter them; all when empty) need and lack: `--only rocketmq` fetches
/// RocketMQ's jars without installing Redis, RabbitMQ and NATS.
pub fn ensure_installed(only: &[String]) -> anyhow::Result<()> {
    let selected: Vec<&'static str> = durable_peers()
        .iter()
        .map(|s| s.label)
        .filter(|l| only.is_empty() || only.iter().any(|o| l.contains(o.as_str())))
        .collect();
    let native = selected.iter().any(|l| !l.starts_with("rocketmq"));
    let rocketmq = selected.iter().any(|l| l.starts_with("rocketmq"));
    if native && !native_installed() {
        eprintln!("installing the peers (bench/scripts/install-peers.sh)");
        return install();
    }
    if rocketmq && !rocketmq::installed() {
        eprintln!("installing RocketMQ (bench/scripts/rocketmq.sh install)");
        let status = Command::new("bash")
            .arg(rocketmq::script())
            .arg("install")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .context("running rocketmq.sh install")?;
        anyhow::ensure!(status.success(), "rocketmq.sh install failed: {status}");
    }
    Ok(())
}

/// Runs `bench/scripts/install-peers.sh` (idempotent; quick when all is
/// there already).
pub fn install() -> anyhow::Result<()> {
    let script = install_script();
    let status = Command::new("bash")
        .arg(&script)
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    anyhow::ensure!(status.success(), "{} failed: {status}", script.display());
    anyhow::ensure!(
        installed(),
        "{} ran but a peer is still missing",
        script.display()
    );
    Ok(())
}

fn install_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/install-peers.sh")
}

/// Fails with the fix when `binary` is missing.
pub(crate) fn require(binary: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        binary.exists(),
        "{} not found: run {} first",
        binary.display(),
        install_script().display()
    );
    Ok(())
}

pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.exists())
}

/// A port nobody listens on right now (the OS picks it; the tiny race until
/// the server binds it is acceptable on a benchmark machine).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Process groups of the servers alive now, for [`kill_all`].
static GROUPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Kills every server process the peers started and have not stopped yet:
/// for a Ctrl-C handler, since servers run in their own process groups
/// (so a whole tree can be killed) and so do not get the terminal's SIGINT.
pub fn kill_all() {
    let groups = GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
    for pgid in groups {
        kill_group(pgid);
    }
}

/// Records a process group started outside [`Server`] (RocketMQ's JVMs,
/// which its script starts in their own sessions) for [`kill_all`].
pub(crate) fn track_group(pgid: u32) {
    if let Ok(mut g) = GROUPS.lock() {
        g.push(pgid);
    }
}

pub(crate) fn untrack_group(pgid: u32) {
    if let Ok(mut g) = GROUPS.lock() {
        g.retain(|&p| p != pgid);
    }
}

fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// A server process started in its own process group; dropping it kills the
/// whole group (SIGKILL: the data directory is thrown away anyway), which
/// takes helpers like Erlang's `erl_child_setup` and our `epmd` with it.
pub(crate) struct Server {
    name: String,
    child: Child,
}

impl Server {
    /// Starts `cmd` in a new process group with its output in `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Server> {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdout(out).stderr(err);
        Server::spawn_with_stdio(name, cmd)
    }

    /// Starts `cmd` in a new process group, stdout/stderr as `cmd` says.
    pub fn spawn_with_stdio(name: &str, mut cmd: Command) -> anyhow::Result<Server> {
        use std::os::unix::process::CommandExt;
        cmd.stdin(Stdio::null()).process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({cmd:?})"))?;
        if let Ok(mut g) = GROUPS.lock() {
            g.push(child.id());
        }
        Ok(Server {
            name: name.to_owned(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's stdout, if it was piped and not taken yet.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Fails if the process has exited (with where to look).
    pub fn check_alive(&mut self, log: &Path) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            anyhow::bail!(
                "{} exited ({status}); end of {}:\n{}",
                self.name,
                log.display(),
                tail.join("\n")
            );
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pgid = self.child.id();
        kill_group(pgid);
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(mut g) = GROUPS.lock() {
            g.retain(|&p| p != pgid);
        }
    }
}

/// Calls `ready` until it succeeds, `server` dies, or `bound` passes.
pub(crate) async fn wait_ready<T, F, Fut>(
    server: &mut Server,
    log: &Path,
    bound: Duration,
    mut ready: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + bound;
    loop {
        server.check_alive(log)?;
        let err = match tokio::time::timeout(Duration::from_secs(5), ready()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e,
            Err(_) => anyhow::anyhow!("attempt timed out"),
        };
        if Instant::now() >= deadline {
            return Err(err.context(format!(
                "{} not ready within {bound:?} (log: {})",
                server.name,
                log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
