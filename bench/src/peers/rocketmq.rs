//! Apache RocketMQ 5 itself: a name server and a broker with its gRPC proxy
//! in local mode (one JVM), started and stopped by
//! `bench/scripts/rocketmq.sh` (released jars from Maven Central), driven
//! through the very `apache.rocketmq.v2` load client Pier is driven with
//! (`crate::v2`). Two configurations: `flushDiskType` SYNC_FLUSH (a send is
//! answered once the commit log is fsynced) and ASYNC_FLUSH (answered once
//! the message is in the page cache; a background thread flushes).
//!
//! What RocketMQ needs that Pier does not: topics and groups are created
//! with its admin tool (mqadmin, through the script), and a receive only
//! works for a client id whose Telemetry stream has sent consumer Settings
//! and which keeps heartbeating (the proxy drops the Settings of a consumer
//! the broker no longer lists, and the broker forgets a consumer after two
//! minutes without a heartbeat), as every official client does.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use pier_proto::rocketmq::telemetry_command::Command as TelemetryKind;
use pier_proto::rocketmq::*;
use pier_tests::{resource, Raw};
use tokio::sync::mpsc;

use crate::system::{Client, System};
use crate::v2::Conns;

/// Queues per topic and delivery attempts per group, as Pier's topics and
/// groups in the bench have.
const QUEUES: u32 = 8;
const MAX_RETRIES: u32 = 16;
/// The official clients heartbeat every 10 s.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    Sync,
    Async,
}

impl Flush {
    fn arg(self) -> &'static str {
        match self {
            Flush::Sync => "sync",
            Flush::Async => "async",
        }
    }
}

/// The install/start/stop script.
pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/rocketmq.sh")
}

/// Whether the jars are installed (the script's own check, so the version
/// it pins is named in one place).
pub fn installed() -> bool {
    std::process::Command::new("bash")
        .arg(script())
        .arg("installed")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs the script with `args`; returns its stdout, or fails with its stderr.
async fn run_script(args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("bash")
        .arg(script())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {} {}", script().display(), args.join(" ")))?;
    anyhow::ensure!(
        out.status.success(),
        "rocketmq.sh {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The running JVMs; dropping this stops them (the script's stop: SIGTERM,
/// SIGKILL after a bound) and forgets their process groups.
struct Instance {
    dir: tempfile::TempDir,
    pids: Vec<u32>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            // The data is thrown away: no need to wait long for a clean exit.
            .env("ROCKETMQ_STOP_BOUND", "5")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for &p in &self.pids {
            super::untrack_group(p);
        }
    }
}

pub struct RocketMq {
    flush: Flush,
    version: String,
    broker_name: String,
    conns: Conns,
    /// One Telemetry stream per connection's client id, kept open: the
    /// proxy forgets a client's Settings when its stream ends.
    telemetry: Vec<mpsc::Sender<TelemetryCommand>>,
    /// The Telemetry readers and the heartbeat loop, aborted on drop.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    generation: Arc<AtomicUsize>,
    /// Serialises resets (a reset sends Settings on the shared streams).
    reset_lock: tokio::sync::Mutex<()>,
    /// Dropped last: the clients above go away before the servers do.
    instance: Mutex<Instance>,
}

impl RocketMq {
    pub async fn start(flush: Flush) -> anyhow::Result<RocketMq> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().to_string_lossy().into_owned();
        let out = run_script(&["start", flush.arg(), &path]).await;
        // Whatever happened, whatever started must be stopped: the pids file
        // is the script's record of it.
        let pids: Vec<u32> = std::fs::read_to_string(dir.path().join("pids"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        for &p in &pids {
            super::track_group(p);
        }
        let instance = Instance { dir, pids };
        let out = out?;
        let var = |key: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_owned)
                .with_context(|| format!("rocketmq.sh start printed no {key}"))
        };
        let endpoint = var("GRPC")?;
        let broker_name = var("BROKER_NAME")?;
        let version = var("VERSION")?;
        let conns = Conns::connect(std::slice::from_ref(&endpoint)).await?;
        let mut rmq = RocketMq {
            flush,
            version,
            broker_name,
            conns,
            telemetry: Vec::new(),
            tasks: Vec::new(),
            generation: Arc::new(AtomicUsize::new(0)),
            reset_lock: tokio::sync::Mutex::new(()),
            instance: Mutex::new(instance),
        };
        rmq.create().await?;
        for raw in rmq.conns.raw.clone() {
            let (tx, reader) = rmq.open_telemetry_when_ready(&raw).await?;
            rmq.telemetry.push(tx);
            rmq.tasks.push(reader);
        }
        let beat = tokio::spawn(heartbeats(rmq.conns.raw.clone(), rmq.generation.clone()));
        rmq.tasks.push(beat);
        Ok(rmq)
    }

    fn names(&self) -> (String, String) {
        names(self.generation.load(Ordering::Relaxed))
    }

    /// The instance's data directory (for the script's admin commands).
    fn dir(&self) -> anyhow::Result<String> {
        let i = self
            .instance
            .lock()
            .map_err(|_| anyhow::anyhow!("instance lock poisoned"))?;
        Ok(i.dir.path().to_string_lossy().into_owned())
    }

    /// Creates this generation's topic and group (both mqadmin calls at
    /// once: each is a JVM start of a few seconds).
    async fn create(&self) -> anyhow::Result<()> {
        let (topic, group) = self.names();
        let dir = self.dir()?;
        let (queues, retries) = (QUEUES.to_string(), MAX_RETRIES.to_string());
        let topic_args = ["create-topic", &dir, &topic, "NORMAL", &queues];
        let group_args = ["create-group", &dir, &group, "normal", &retries];
        let (t, g) = tokio::join!(run_script(&topic_args), run_script(&group_args));
        t?;
        g?;
        Ok(())
    }

    /// A simple consumer's Settings for this generation's topic and group.
    fn settings(&self, raw: &Raw) -> TelemetryCommand {
        let (topic, group) = self.names();
        TelemetryCommand {
            status: None,
            command: Some(TelemetryKind::Settings(Settings {
                client_type: Some(ClientType::SimpleConsumer as i32),
                access_point: Some(raw.endpoints()),
                request_timeout: Some(prost_types::Duration {
                    seconds: 3,
                    nanos: 0,
                }),
                pub_sub: Some(settings::PubSub::Subscription(Subscription {
                    group: Some(resource(&group)),
                    subscriptions: vec![SubscriptionEntry {
                        topic: Some(resource(&topic)),
                        expression: Some(FilterExpression {
                            r#type: FilterType::Tag as i32,
                            expression: "*".into(),
                        }),
                    }],
                    ..Default::default()
                })),
                ..Default::default()
            })),
        }
    }

    /// [`Self::open_telemetry`], retried for up to 90 s while the proxy does
    /// not know the group yet: mqadmin has answered, but the broker's new
    /// subscription group can reach the proxy's view later (seen as "group
    /// not found: bench-group-0" right after a start; 30 s of retries were
    /// not always enough in the latency scenario).
    async fn open_telemetry_when_ready(
        &self,
        raw: &Raw,
    ) -> anyhow::Result<(mpsc::Sender<TelemetryCommand>, tokio::task::JoinHandle<()>)> {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        let mut said = false;
        loop {
            match self.open_telemetry(raw).await {
                Err(e)
                    if format!("{e:#}").contains("group not found")
                        && std::time::Instant::now() < deadline =>
                {
                    if !std::mem::replace(&mut said, true) {
                        eprintln!("  rocketmq: its proxy does not know the group yet; retrying for up to 90 s");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                other => return other,
            }
        }
    }

    /// Opens `raw`'s Telemetry stream, sends the Settings, waits for the
    /// proxy's answer, then keeps reading (and ignoring) what it pushes.
    async fn open_telemetry(
        &self,
        raw: &Raw,
    ) -> anyhow::Result<(mpsc::Sender<TelemetryCommand>, tokio::task::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(8);
        tx.send(self.settings(raw))
            .await
            .context("queueing settings")?;
        let mut req = raw.req(tokio_stream::wrappers::ReceiverStream::new(rx));
        // The stream lives as long as the system; no deadline on it.
        req.metadata_mut().remove("grpc-timeout");
        let mut inbound = raw.messaging().telemetry(req).await?.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), inbound.message())
            .await
            .context("no settings reply within 10 s")??
            .context("telemetry stream ended before the settings reply")?;
        settings_ok(&first)?;
        let reader =
            tokio::spawn(async move { while let Ok(Some(_)) = inbound.message().await {} });
        Ok((tx, reader))
    }
}

fn names(generation: usize) -> (String, String) {
    (
        format!("bench-{generation}"),
        format!("bench-group-{generation}"),
    )
}

/// Each client id heartbeats as a simple consumer of the current group.
/// A failed heartbeat is left for the next one: if the consumer is dropped,
/// the receives fail and say so.
async fn heartbeats(raws: Vec<Raw>, generation: Arc<AtomicUsize>) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    loop {
        tick.tick().await;
        let (_, group) = names(generation.load(Ordering::Relaxed));
        for raw in &raws {
            let _ = raw
                .messaging()
                .heartbeat(raw.req(HeartbeatRequest {
                    group: Some(resource(&group)),
                    client_type: ClientType::SimpleConsumer as i32,
                }))
                .await;
        }
    }
}

fn settings_ok(reply: &TelemetryCommand) -> anyhow::Result<()> {
    let code = reply.status.as_ref().map_or(Code::Ok as i32, |s| s.code);
    anyhow::ensure!(
        code == Code::Ok as i32,
        "settings refused: code {code} {}",
        reply.status.as_ref().map_or("", |s| s.message.as_str())
    );
    Ok(())
}

impl Drop for RocketMq {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[async_trait]
impl System for RocketMq {
    fn name(&self) -> String {
        "rocketmq".into()
    }

    fn config(&self) -> String {
        let flush = match self.flush {
            Flush::Sync => "SYNC_FLUSH",
            Flush::Async => "ASYNC_FLUSH",
        };
        format!(
            "{} {flush}, proxy in local mode (broker and proxy in one JVM), {QUEUES} queues",
            self.version
        )
    }

    fn pids(&self) -> Vec<u32> {
        self.instance
            .lock()
            .map(|i| i.pids.clone())
            .unwrap_or_default()
    }

    async fn client(&self) -> anyhow::Result<Box<dyn Client>> {
        let (topic, group) = self.names();
        Ok(Box::new(self.conns.client(
            &topic,
            &group,
            &self.broker_name,
        )))
    }

    async fn reset(&self) -> anyhow::Result<()> {
        let _one = self.reset_lock.lock().await;
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.create().await?;
        // The consumers' Settings name the new group and topic. (Their
        // replies are read and dropped by the readers; a receive works with
        // any Settings on record.)
        for (tx, raw) in self.telemetry.iter().zip(&self.conns.raw) {
            tx.send(self.settings(raw))
                .await
                .context("telemetry stream closed")?;
        }
        Ok(())
    }
}
