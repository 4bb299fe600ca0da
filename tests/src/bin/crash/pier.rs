//! The Pier processes under test: started once on ephemeral ports, then
//! killed with SIGKILL and restarted on the same port and data directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use pier_proto::admin::DescribeTopicRequest;
use pier_tests::{Node, Raw};

/// Which layout runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One `pier-proxy` with its embedded store.
    Standalone,
    /// One `pier-store` and two `pier-proxy` in front of it.
    Cluster,
}

/// One process slot: how to start it again, and the running process.
struct Slot {
    name: String,
    binary: &'static str,
    /// Flags after `--listen`; the listen address is fixed after the first
    /// start so that clients and proxies find the restarted process.
    args: Vec<String>,
    port: u16,
    node: Option<Node>,
}

impl Slot {
    async fn start(name: String, binary: &'static str, args: Vec<String>) -> anyhow::Result<Slot> {
        let mut slot = Slot {
            name,
            binary,
            args,
            port: 0,
            node: None,
        };
        slot.restart().await?;
        let port = slot.node.as_ref().map_or(0, Node::port);
        slot.port = port;
        Ok(slot)
    }

    /// Starts the process (on `self.port`, 0 the first time) and waits for
    /// its "listening" line. The harness panics when that line does not come;
    /// the panic stays in the blocking task and becomes an error here.
    async fn restart(&mut self) -> anyhow::Result<()> {
        let mut args = vec!["--listen".to_owned(), format!("127.0.0.1:{}", self.port)];
        args.extend(self.args.iter().cloned());
        let binary = self.binary;
        let node = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Node::start(binary, &args)
        })
        .await
        .map_err(|e| anyhow!("{} did not start: {e}", self.name))?;
        self.node = Some(node);
        Ok(())
    }

    /// SIGKILL, and reap the process.
    async fn kill(&mut self) {
        if let Some(mut node) = self.node.take() {
            // Killing and reaping a process takes a moment; keep it off the
            // runtime's worker threads.
            let _ = tokio::task::spawn_blocking(move || node.kill()).await;
        }
    }

    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Throws away the log lines read so far (the harness queues every line;
    /// nobody reads them here, and a long run would pile them up).
    fn discard_log(&self) {
        if let Some(node) = &self.node {
            while node.log.try_recv().is_ok() {}
        }
    }
}

/// The processes of one mode. Dropping it kills them (the harness's `Node`
/// kills its child when dropped).
pub struct Pier {
    mode: Mode,
    /// Standalone: the proxy. Cluster: the store.
    base: Slot,
    /// Cluster only: the two proxies.
    proxies: Vec<Slot>,
    _data: DataDir,
}

/// Where the store keeps its data: a temporary directory removed at the
/// end, or the caller's.
pub enum DataDir {
    Temp(tempfile::TempDir),
    Given(PathBuf),
}

impl DataDir {
    fn path(&self) -> &Path {
        match self {
            DataDir::Temp(t) => t.path(),
            DataDir::Given(p) => p,
        }
    }
}

impl Pier {
    pub async fn start(mode: Mode, data: DataDir) -> anyhow::Result<Pier> {
        let dir = data.path().join("store");
        let dir = dir
            .to_str()
            .ok_or_else(|| anyhow!("data dir is not UTF-8: {}", dir.display()))?
            .to_owned();
        let (base, proxies) = match mode {
            Mode::Standalone => {
                let node =
                    Slot::start("node".into(), "pier-proxy", vec!["--data".into(), dir]).await?;
                (node, Vec::new())
            }
            Mode::Cluster => {
                let store =
                    Slot::start("store".into(), "pier-store", vec!["--data".into(), dir]).await?;
                let mut proxies = Vec::new();
                for i in 0..2 {
                    let args = vec!["--store".into(), store.endpoint()];
                    proxies.push(Slot::start(format!("proxy{i}"), "pier-proxy", args).await?);
                }
                (store, proxies)
            }
        };
        Ok(Pier {
            mode,
            base,
            proxies,
            _data: data,
        })
    }

    /// The endpoints clients talk to.
    pub fn client_endpoints(&self) -> Vec<String> {
        match self.mode {
            Mode::Standalone => vec![self.base.endpoint()],
            Mode::Cluster => self.proxies.iter().map(Slot::endpoint).collect(),
        }
    }

    /// What cycle `cycle` kills: the node (standalone), or the store and
    /// the proxies in turn (cluster).
    fn victims(&mut self, cycle: usize) -> Vec<&mut Slot> {
        match self.mode {
            Mode::Standalone => vec![&mut self.base],
            Mode::Cluster => {
                let n = self.proxies.len();
                let proxy = &mut self.proxies[cycle % n];
                vec![&mut self.base, proxy]
            }
        }
    }

    /// Kills this cycle's victims with SIGKILL; returns their names.
    pub async fn kill(&mut self, cycle: usize) -> Vec<String> {
        let mut names = Vec::new();
        for slot in self.victims(cycle) {
            slot.kill().await;
            names.push(slot.name.clone());
        }
        names
    }

    /// Restarts this cycle's victims (store first) on their ports and data.
    pub async fn restart(&mut self, cycle: usize) -> anyhow::Result<()> {
        for slot in self.victims(cycle) {
            slot.restart().await?;
        }
        self.base.discard_log();
        for p in &self.proxies {
            p.discard_log();
        }
        Ok(())
    }

    /// Waits until every client endpoint answers an admin call that reads
    /// the store (the topic's description), or `within` passes.
    pub async fn wait_ready(&self, topic: &str, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        for endpoint in self.client_endpoints() {
            loop {
                if answers(&endpoint, topic).await {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{endpoint} did not answer within {within:?}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Stops every process (SIGKILL: nothing is checked after this).
    pub async fn stop(mut self) {
        for p in &mut self.proxies {
            p.kill().await;
        }
        self.base.kill().await;
    }
}

/// One DescribeTopic on a fresh connection, bounded in time.
async fn answers(endpoint: &str, topic: &str) -> bool {
    let call = async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{endpoint}"))
            .context("uri")?
            .connect_timeout(Duration::from_secs(1))
            .connect()
            .await?;
        pier_proto::admin::admin_service_client::AdminServiceClient::new(channel)
            .describe_topic(DescribeTopicRequest { name: topic.into() })
            .await?;
        anyhow::Ok(())
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), call).await,
        Ok(Ok(()))
    )
}

/// A client per endpoint (connected now; their channels reconnect by
/// themselves after a restart).
pub async fn clients(endpoints: &[String]) -> Vec<Raw> {
    let mut out = Vec::new();
    for e in endpoints {
        out.push(Raw::connect(e).await);
    }
    out
}
