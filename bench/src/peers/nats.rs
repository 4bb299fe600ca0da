//! NATS JetStream: a file-storage stream on subject `bench`, published to
//! with acknowledged JetStream publishes, consumed by a durable pull
//! consumer with acks.
//!
//! Durability: with `sync_interval: always` JetStream fsyncs every write
//! before the PubAck; by default it fsyncs every 2 minutes (the PubAck only
//! means "in the OS page cache").
//!
//! Acks per pop: `EachMessage` acks every message (explicit ack policy);
//! `Batched` acks only the last one, which JetStream applies to all before
//! it only under the `all` ack policy. The policy is a property of the
//! consumer, so the consumer is replaced when the ack mode changes. The
//! stream keeps messages while a consumer has not acked them (interest
//! retention), so messages sent before the first pop or across a consumer
//! change are kept, and consumed ones are deleted as in a queue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, consumer, stream};
use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::Mutex;

use super::{free_port, nats_server, require, wait_ready, Server};
use crate::system::{Ack, Client, System};

const SUBJECT: &str = "bench";
/// How long a pop waits when nothing is there.
const EXPIRES: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// `sync_interval: always`: fsync before each PubAck.
    Always,
    /// The server default (fsync every 2 minutes).
    Default,
}

/// The consumer all clients pull from, and the ack mode it was made for.
struct Current {
    /// Bumped whenever the consumer is replaced, so clients notice.
    version: usize,
    stream: String,
    ack: Ack,
    consumer: consumer::PullConsumer,
}

pub struct Nats {
    sync: Sync,
    url: String,
    js: jetstream::Context,
    current: Arc<Mutex<Current>>,
    generation: AtomicUsize,
    server: Server,
    _data: tempfile::TempDir,
}

impl Nats {
    pub async fn start(sync: Sync) -> anyhow::Result<Nats> {
        let bin = nats_server();
        require(&bin)?;
        let data = tempfile::tempdir()?;
        let port = free_port()?;
        let store = data.path().join("jetstream");
        let sync_line = match sync {
            Sync::Always => "  sync_interval: always\n",
            Sync::Default => "",
        };
        let conf = data.path().join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: {:?}\n{sync_line}}}\n",
                store.display().to_string()
            ),
        )?;
        let log = data.path().join("nats.log");
        let mut cmd = std::process::Command::new(bin);
        cmd.arg("-c").arg(&conf);
        let mut server = Server::spawn("nats-server", cmd, &log)?;
        let url = format!("nats://127.0.0.1:{port}");
        let u = url.clone();
        let js = wait_ready(&mut server, &log, Duration::from_secs(20), || {
            let u = u.clone();
            async move {
                let client = async_nats::connect(&u).await?;
                let js = jetstream::new(client);
                // JetStream answers once it has started.
                js.query_account().await?;
                Ok(js)
            }
        })
        .await?;
        let current = create(&js, "BENCH0", Ack::EachMessage, 0).await?;
        Ok(Nats {
            sync,
            url,
            js,
            current: Arc::new(Mutex::new(current)),
            generation: AtomicUsize::new(0),
            server,
            _data: data,
        })
    }
}

/// Creates stream `name` (file storage, interest retention) and its first
/// consumer.
async fn create(
    js: &jetstream::Context,
    name: &str,
    ack: Ack,
    version: usize,
) -> anyhow::Result<Current> {
    js.create_stream(stream::Config {
        name: name.to_owned(),
        subjects: vec![SUBJECT.to_owned()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Interest,
        ..Default::default()
    })
    .await
    .with_context(|| format!("creating stream {name}"))?;
    let consumer = create_consumer(js, name, ack, version).await?;
    Ok(Current {
        version,
        stream: name.to_owned(),
        ack,
        consumer,
    })
}

async fn create_consumer(
    js: &jetstream::Context,
    stream: &str,
    ack: Ack,
    version: usize,
) -> anyhow::Result<consumer::PullConsumer> {
    let (policy, tag) = match ack {
        Ack::EachMessage => (consumer::AckPolicy::Explicit, "explicit"),
        Ack::Batched => (consumer::AckPolicy::All, "all"),
    };
    let name = format!("bench-{tag}-{version}");
    js.get_stream(stream)
        .await
        .with_context(|| format!("stream {stream}"))?
        .create_consumer(consumer::pull::Config {
            durable_name: Some(name.clone()),
            ack_policy: policy,
            // Room for every client's outstanding batch.
            max_ack_pending: 100_000,
            ..Default::default()
        })
        .await
        .with_context(|| format!("creating consumer {name}"))
}

#[async_trait]
impl System for Nats {
    fn name(&self) -> String {
        "nats".into()
    }

    fn config(&self) -> String {
        match self.sync {
            Sync::Always => "jetstream file stream, sync_interval=always".into(),
            Sync::Default => "jetstream file stream, sync_interval=2m (default)".into(),
        }
    }

    fn pids(&self) -> Vec<u32> {
        vec![self.server.pid()]
    }

    async fn client(&self) -> anyhow::Result<Box<dyn Client>> {
        // One connection per client, as for the other systems.
        let conn = async_nats::connect(&self.url)
            .await
            .context("connecting to nats")?;
        let cur = self.current.lock().await;
        Ok(Box::new(NatsClient {
            js: jetstream::new(conn.clone()),
            conn,
            shared: self.current.clone(),
            version: cur.version,
            ack: cur.ack,
            consumer: cur.consumer.clone(),
        }))
    }

    async fn reset(&self) -> anyhow::Result<()> {
        let mut cur = self.current.lock().await;
        self.js
            .delete_stream(&cur.stream)
            .await
            .with_context(|| format!("deleting stream {}", cur.stream))?;
        let g = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *cur = create(&self.js, &format!("BENCH{g}"), cur.ack, cur.version + 1).await?;
        Ok(())
    }
}

pub struct NatsClient {
    conn: async_nats::Client,
    js: jetstream::Context,
    shared: Arc<Mutex<Current>>,
    version: usize,
    ack: Ack,
    consumer: consumer::PullConsumer,
}

impl NatsClient {
    /// The consumer for `ack`, replacing the shared one if it was made for
    /// the other ack mode (the new one exists before the old one goes, so
    /// interest retention keeps every unacked message). Acks are not
    /// confirmed, so this client's are flushed first; acks other clients
    /// still have in flight at the switch may be lost and those messages
    /// delivered again: switch modes between runs (after `reset`), not
    /// during one.
    async fn consumer_for(&mut self, ack: Ack) -> anyhow::Result<()> {
        let mut cur = self.shared.lock().await;
        if cur.ack != ack {
            self.conn.flush().await.context("flushing acks")?;
            let version = cur.version + 1;
            let next = create_consumer(&self.js, &cur.stream, ack, version).await?;
            let old = cur.consumer.cached_info().name.clone();
            self.js
                .get_stream(&cur.stream)
                .await?
                .delete_consumer(&old)
                .await
                .with_context(|| format!("deleting consumer {old}"))?;
            cur.consumer = next;
            cur.ack = ack;
            cur.version = version;
        }
        self.version = cur.version;
        self.ack = cur.ack;
        self.consumer = cur.consumer.clone();
        Ok(())
    }
}

#[async_trait]
impl Client for NatsClient {
    async fn send(&mut self, body: &[u8]) -> anyhow::Result<()> {
        self.js
            .publish(SUBJECT, body.to_vec().into())
            .await
            .context("jetstream publish")?
            .await
            .context("jetstream PubAck")?;
        Ok(())
    }

    async fn pop(&mut self, max: usize, ack: Ack) -> anyhow::Result<usize> {
        let stale = self.ack != ack
            || self
                .shared
                .try_lock()
                .is_ok_and(|c| c.version != self.version);
        if stale {
            self.consumer_for(ack).await?;
        }
        // No-wait fetch with an expiry: the server answers as soon as it has
        // at least one message (up to `max`), or after EXPIRES with none.
        let mut batch = self
            .consumer
            .fetch()
            .max_messages(max)
            .expires(EXPIRES)
            .messages()
            .await
            .context("jetstream fetch")?;
        let mut msgs = Vec::new();
        while let Some(m) = batch.next().await {
            msgs.push(m.map_err(|e| anyhow::anyhow!("jetstream fetch: {e}"))?);
        }
        match ack {
            Ack::EachMessage => {
                for m in &msgs {
                    m.ack()
                        .await
                        .map_err(|e| anyhow::anyhow!("jetstream ack: {e}"))?;
                }
            }
            Ack::Batched => {
                if let Some(last) = msgs.last() {
                    last.ack()
                        .await
                        .map_err(|e| anyhow::anyhow!("jetstream ack: {e}"))?;
                }
            }
        }
        Ok(msgs.len())
    }
}
