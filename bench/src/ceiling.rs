//! Ceilings of this machine, measured next to Pier and its peers so every
//! figure can be read against what the hardware allows:
//! - `rocksdb`: a synced RocksDB write (`WriteOptions::sync`) of the message
//!   body from every load task at once, so RocksDB group-commits them: the
//!   most durable writes per second this disk and RocksDB give, with no
//!   network, protocol or queue logic;
//! - `tonic-echo`: a tonic unary call echoing the body, served by a child
//!   process (`pier-bench echo-server`) as Pier's server is another process,
//!   through Pier's listener (`pier_node::listener`, writes gated): the most
//!   gRPC round trips per second, with no storage.
//!
//! Neither consumes (`PeerSpec::pops` is false).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;

use crate::peers::{PeerSpec, Server};
use crate::system::{boxed, Ack, Client, System};
use crate::transport::H2;

mod proto {
    tonic::include_proto!("pier.bench.echo.v1");
}
use proto::echo_client::EchoClient;
use proto::echo_server::{Echo, EchoServer};
use proto::{EchoRequest, EchoResponse};

pub fn ceilings() -> Vec<PeerSpec> {
    vec![
        PeerSpec {
            label: "rocksdb synced write",
            pops: false,
            synced: true,
            start: || Box::pin(async { boxed(RocksCeiling::start()) }),
        },
        PeerSpec {
            label: "tonic-echo",
            pops: false,
            synced: false,
            start: || Box::pin(async { boxed(TonicEcho::start().await) }),
        },
    ]
}

fn no_pop(what: &str) -> anyhow::Result<usize> {
    anyhow::bail!("{what} is a ceiling for sends only: it has nothing to pop")
}

/// A RocksDB opened in a temporary directory, in this process.
struct Db {
    db: Arc<rocksdb::DB>,
    _dir: tempfile::TempDir,
}

impl Db {
    fn open() -> anyhow::Result<Db> {
        let dir = tempfile::tempdir()?;
        // The log settings of Pier's store: WAL files written over once
        // used, live logs capped so they are.
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        pier_store::tune_wal(&mut opts);
        let db = rocksdb::DB::open(&opts, dir.path())
            .with_context(|| format!("opening rocksdb in {}", dir.path().display()))?;
        Ok(Db {
            db: Arc::new(db),
            _dir: dir,
        })
    }
}

pub struct RocksCeiling {
    /// Replaced by `reset`; clients keep the database they were made with.
    db: Mutex<Arc<Db>>,
    next_key: Arc<AtomicU64>,
}

impl RocksCeiling {
    pub fn start() -> anyhow::Result<RocksCeiling> {
        Ok(RocksCeiling {
            db: Mutex::new(Arc::new(Db::open()?)),
            next_key: Arc::new(AtomicU64::new(0)),
        })
    }
}

#[async_trait]
impl System for RocksCeiling {
    fn name(&self) -> String {
        "rocksdb".into()
    }

    fn config(&self) -> String {
        "in-process put, WriteOptions sync=true, concurrent writers (group commit)".into()
    }

    fn pids(&self) -> Vec<u32> {
        vec![]
    }

    async fn client(&self) -> anyhow::Result<Box<dyn Client>> {
        let db = self
            .db
            .lock()
            .map_err(|_| anyhow::anyhow!("rocksdb ceiling lock poisoned"))?
            .clone();
        Ok(Box::new(RocksClient {
            db,
            next_key: self.next_key.clone(),
        }))
    }

    async fn reset(&self) -> anyhow::Result<()> {
        let fresh = Arc::new(Db::open()?);
        *self
            .db
            .lock()
            .map_err(|_| anyhow::anyhow!("rocksdb ceiling lock poisoned"))? = fresh;
        Ok(())
    }
}

struct RocksClient {
    db: Arc<Db>,
    next_key: Arc<AtomicU64>,
}

#[async_trait]
impl Client for RocksClient {
    async fn send(&mut self, body: &[u8]) -> anyhow::Result<()> {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        let db = self.db.clone();
        let body = body.to_vec();
        // A synced put blocks on fsync: run it on the blocking pool, one
        // thread per concurrent writer, so RocksDB's write group batches
        // the writers waiting together into one WAL fsync.
        tokio::task::spawn_blocking(move || {
            let mut opts = rocksdb::WriteOptions::default();
            opts.set_sync(true);
            db.db.put_opt(key, body, &opts)
        })
        .await
        .context("rocksdb writer task")?
        .context("rocksdb put")?;
        Ok(())
    }

    async fn pop(&mut self, _max: usize, _ack: Ack) -> anyhow::Result<usize> {
        no_pop("rocksdb")
    }
}

/// The echo service: returns the body it got.
struct EchoService;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(
        &self,
        req: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoResponse>, tonic::Status> {
        Ok(tonic::Response::new(EchoResponse {
            body: req.into_inner().body,
        }))
    }
}

/// `pier-bench echo-server`: serves the echo service on `listen` and prints
/// `listening addr=<address>` on stdout once bound.
pub async fn echo_server(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    // Pier's own listener (TCP_NODELAY, writes gated by pier_node::gate),
    // so the ceiling is a call through the same socket handling as Pier's.
    let incoming = pier_node::listener::accept(listener, Default::default());
    println!("listening addr={addr}");
    tonic::transport::Server::builder()
        .add_service(EchoServer::new(EchoService))
        .serve_with_incoming(incoming)
        .await
        .context("echo server")
}

pub struct TonicEcho {
    addr: String,
    server: Server,
}

impl TonicEcho {
    pub async fn start() -> anyhow::Result<TonicEcho> {
        let exe: PathBuf = std::env::current_exe().context("locating pier-bench")?;
        let mut cmd = Command::new(exe);
        cmd.args(["echo-server", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut server = Server::spawn_with_stdio("echo-server", cmd)?;
        let stdout = server
            .take_stdout()
            .context("echo server stdout not piped")?;
        // Read its first line on a thread, so the wait can be bounded.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let mut reader = BufReader::new(stdout);
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            // Keep draining so the server never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = tokio::time::timeout(Duration::from_secs(15), rx)
            .await
            .context("echo server did not start within 15 s")?
            .context("echo server output closed")?
            .context("reading echo server output")?;
        let addr = line
            .trim()
            .strip_prefix("listening addr=")
            .with_context(|| format!("unexpected echo server output {line:?}"))?;
        Ok(TonicEcho {
            addr: addr.to_owned(),
            server,
        })
    }
}

#[async_trait]
impl System for TonicEcho {
    fn name(&self) -> String {
        "tonic-echo".into()
    }

    fn config(&self) -> String {
        "unary echo, no storage, server in a child process, Pier's listener (TCP_NODELAY, gated writes)".into()
    }

    fn pids(&self) -> Vec<u32> {
        vec![self.server.pid()]
    }

    async fn client(&self) -> anyhow::Result<Box<dyn Client>> {
        // One HTTP/2 connection per client, as the peers have one each.
        // On the load generator's transport, as Pier's load clients are.
        let conn = H2::connect(&self.addr).await?;
        Ok(Box::new(EchoClientBox {
            client: EchoClient::with_origin(conn, H2::origin(&self.addr)?),
        }))
    }

    async fn reset(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

struct EchoClientBox {
    client: EchoClient<H2>,
}

#[async_trait]
impl Client for EchoClientBox {
    async fn send(&mut self, body: &[u8]) -> anyhow::Result<()> {
        let r = self
            .client
            .echo(EchoRequest {
                body: body.to_vec(),
            })
            .await
            .context("echo")?
            .into_inner();
        anyhow::ensure!(r.body.len() == body.len(), "echo returned another body");
        Ok(())
    }

    async fn pop(&mut self, _max: usize, _ack: Ack) -> anyhow::Result<usize> {
        no_pop("tonic-echo")
    }
}
