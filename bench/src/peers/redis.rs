//! Redis Streams as a durable queue: `XADD` to send, a consumer group read
//! with `XREADGROUP` + `XACK` (and `XDEL`, see `pop`) to consume. Durability is the append-only
//! file: `appendfsync always` fsyncs before replying (Redis batches the
//! fsync over all clients of one event-loop turn), `everysec` once a second.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use redis::AsyncConnectionConfig;

use super::{free_port, require, wait_ready, Server, REDIS_SERVER};
use crate::system::{Ack, Client, System};

const GROUP: &str = "bench";
/// How long a read waits when the stream has nothing new. Redis checks
/// blocking timeouts on its 10 Hz cron, so an empty read returns after
/// 100-200 ms; a read returns at once when entries are there.
const BLOCK_MS: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    Always,
    EverySec,
}

impl Fsync {
    fn arg(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::EverySec => "everysec",
        }
    }
}

pub struct Redis {
    fsync: Fsync,
    client: redis::Client,
    /// Stream key generation: `reset` moves to a fresh, empty stream.
    generation: Arc<AtomicUsize>,
    consumers: AtomicUsize,
    server: Server,
    _data: tempfile::TempDir,
}

impl Redis {
    pub async fn start(fsync: Fsync) -> anyhow::Result<Redis> {
        require(REDIS_SERVER.as_ref())?;
        let data = tempfile::tempdir()?;
        let port = free_port()?;
        let log = data.path().join("redis.log");
        let mut cmd = std::process::Command::new(REDIS_SERVER);
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .arg("--dir")
            .arg(data.path())
            .args(["--appendonly", "yes", "--appendfsync", fsync.arg()])
            // No RDB snapshots: the AOF is the durability being measured,
            // and a background save would fork mid-run.
            .args(["--save", ""])
            .args(["--daemonize", "no", "--protected-mode", "no"]);
        let mut server = Server::spawn("redis-server", cmd, &log)?;
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{port}/")).context("redis client")?;
        let c = client.clone();
        wait_ready(&mut server, &log, Duration::from_secs(15), || {
            let c = c.clone();
            async move {
                let mut conn = c.get_multiplexed_async_connection().await?;
                let _: String = redis::cmd("PING").query_async(&mut conn).await?;
                Ok(())
            }
        })
        .await?;
        let redis = Redis {
            fsync,
            client,
            generation: Arc::new(AtomicUsize::new(0)),
            consumers: AtomicUsize::new(0),
            server,
            _data: data,
        };
        redis.create().await?;
        Ok(redis)
    }

    fn key(&self) -> String {
        format!("bench-{}", self.generation.load(Ordering::Relaxed))
    }

    async fn connect(&self) -> anyhow::Result<MultiplexedConnection> {
        // The default 500 ms response timeout is shorter than an fsync under
        // load can take.
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(Duration::from_secs(30)))
            .set_connection_timeout(Some(Duration::from_secs(5)));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .context("connecting to redis")
    }

    /// Creates the stream and its consumer group (reading from the start).
    async fn create(&self) -> anyhow::Result<()> {
        let mut conn = self.connect().await?;
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.key())
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await
            .context("XGROUP CREATE")?;
        Ok(())
    }
}

#[async_trait]
impl System for Redis {
    fn name(&self) -> String {
        "redis".into()
    }

    fn config(&self) -> String {
        format!("streams, appendonly yes, appendfsync={}", self.fsync.arg())
    }

    fn pids(&self) -> Vec<u32> {
        vec![self.server.pid()]
    }

    async fn client(&self) -> anyhow::Result<Box<dyn Client>> {
        // One connection per client: a blocking XREADGROUP holds its
        // connection, so clients must not share one.
        Ok(Box::new(RedisClient {
            conn: self.connect().await?,
            key: self.key(),
            consumer: format!("c{}", self.consumers.fetch_add(1, Ordering::Relaxed)),
        }))
    }

    async fn reset(&self) -> anyhow::Result<()> {
        let old = self.key();
        self.generation.fetch_add(1, Ordering::Relaxed);
        let mut conn = self.connect().await?;
        let _: () = redis::cmd("DEL")
            .arg(&old)
            .query_async(&mut conn)
            .await
            .context("DEL")?;
        self.create().await
    }
}

pub struct RedisClient {
    conn: MultiplexedConnection,
    key: String,
    consumer: String,
}

#[async_trait]
impl Client for RedisClient {
    async fn send(&mut self, body: &[u8]) -> anyhow::Result<()> {
        let _: String = redis::cmd("XADD")
            .arg(&self.key)
            .arg("*")
            .arg("body")
            .arg(body)
            .query_async(&mut self.conn)
            .await
            .context("XADD")?;
        Ok(())
    }

    async fn pop(&mut self, max: usize, ack: Ack) -> anyhow::Result<usize> {
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(max)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">")
            .query_async(&mut self.conn)
            .await
            .context("XREADGROUP")?;
        let ids: Vec<String> = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|e| e.id)
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let batches: Vec<&[String]> = match ack {
            Ack::EachMessage => ids.chunks(1).collect(),
            Ack::Batched => vec![&ids[..]],
        };
        // XACK only leaves the group's pending list; the entries stay in the
        // stream (memory, AOF) unless deleted. A queue forgets what was
        // consumed, so each XACK is followed by an XDEL of the same ids. Per
        // message, the pairs go out together in one pipeline (one round
        // trip), as the gRPC clients send their per-message acks together.
        let mut pipe = redis::pipe();
        for batch in &batches {
            pipe.cmd("XACK").arg(&self.key).arg(GROUP).arg(*batch);
            pipe.cmd("XDEL").arg(&self.key).arg(*batch);
        }
        let counts: Vec<usize> = pipe
            .query_async(&mut self.conn)
            .await
            .context("XACK + XDEL")?;
        // Replies alternate: XACK's count, then XDEL's.
        let acked: usize = counts.iter().step_by(2).sum();
        anyhow::ensure!(
            acked == ids.len(),
            "XACK acknowledged {acked} of {}",
            ids.len()
        );
        Ok(ids.len())
    }
}
