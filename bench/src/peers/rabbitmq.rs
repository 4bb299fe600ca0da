//! A RabbitMQ quorum queue (Raft log, fsynced before confirming): persistent
//! publishes with publisher confirms, consumed with manual acks and a
//! prefetch of 100.
//!
//! RabbitMQ runs as our own single node (own node name, ports, data, log and
//! Erlang cookie under the temporary directory) next to a private `epmd`, so
//! neither a system service nor another run interferes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer};

use super::{free_port, require, wait_ready, which, Server, RABBITMQ_SERVER};
use crate::system::{children_of, Ack, Client, System};

const PREFETCH: u16 = 100;
/// How long a pop waits for the first delivery when none is buffered.
const FIRST_WAIT: Duration = Duration::from_millis(100);
/// Erlang boots slowly, RabbitMQ more so on a loaded 2-core machine.
const BOOT_BOUND: Duration = Duration::from_secs(60);
/// AMQP delivery mode 2: the message is written to disk.
const PERSISTENT: u8 = 2;

pub struct RabbitMq {
    uri: String,
    generation: Arc<AtomicUsize>,
    consumers: AtomicUsize,
    /// The node first, then epmd: dropped in this order.
    node: Server,
    _epmd: Server,
    _data: tempfile::TempDir,
}

impl RabbitMq {
    pub async fn start() -> anyhow::Result<RabbitMq> {
        require(RABBITMQ_SERVER.as_ref())?;
        let epmd_bin = which("epmd")
            .or_else(|| Some("/usr/bin/epmd".into()).filter(|p: &std::path::PathBuf| p.exists()))
            .context("epmd not found: run bench/scripts/install-peers.sh first")?;
        let data = tempfile::tempdir()?;
        let dir = data.path();
        let (amqp_port, dist_port, epmd_port) = (free_port()?, free_port()?, free_port()?);

        // Our own epmd on a private port, in our process group: an epmd
        // that Erlang starts by itself daemonizes and would outlive us.
        let mut epmd_cmd = std::process::Command::new(epmd_bin);
        epmd_cmd.args(["-port", &epmd_port.to_string()]);
        let epmd = Server::spawn("epmd", epmd_cmd, &dir.join("epmd.log"))?;

        std::fs::write(dir.join("enabled_plugins"), "[].\n")?;
        std::fs::write(dir.join("rabbitmq-env.conf"), "")?;
        std::fs::write(
            dir.join("rabbitmq.conf"),
            // Only this node; the guest user may log in over loopback.
            "listeners.tcp.default = 127.0.0.1:".to_owned() + &amqp_port.to_string() + "\n",
        )?;
        let node_name = format!("pierbench-{}-{}@localhost", std::process::id(), amqp_port);
        let log = dir.join("node.log");
        let mut cmd = std::process::Command::new(RABBITMQ_SERVER);
        cmd.env("HOME", dir) // the Erlang cookie goes here
            .env("ERL_EPMD_PORT", epmd_port.to_string())
            .env("RABBITMQ_NODENAME", &node_name)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", dir.join("node.pid"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .env("RABBITMQ_LOGS", dir.join("log/rabbit.log"));
        let mut node = Server::spawn("rabbitmq-server", cmd, &log)?;

        let uri = format!("amqp://guest:guest@127.0.0.1:{amqp_port}/%2f");
        let u = uri.clone();
        wait_ready(&mut node, &log, BOOT_BOUND, || {
            let u = u.clone();
            async move {
                let c = Connection::connect(&u, ConnectionProperties::default()).await?;
                let _ = c.close(200, "ready".into()).await;
                Ok(())
            }
        })
        .await?;

        let rabbit = RabbitMq {
            uri,
            generation: Arc::new(AtomicUsize::new(0)),
            consumers: AtomicUsize::new(0),
            node,
            _epmd: epmd,
            _data: data,
        };
        rabbit.with_channel(declare).await?;
        Ok(rabbit)
    }

    fn queue(&self) -> String {
        format!("bench-{}", self.generation.load(Ordering::Relaxed))
    }

    async fn connect(&self) -> anyhow::Result<Connection> {
        Connection::connect(&self.uri, ConnectionProperties::default())
            .await
            .context("connecting to rabbitmq")
    }

    /// Runs one admin operation on a throwaway connection.
    async fn with_channel<F, Fut>(&self, f: F) -> anyhow::Result<()>
    where
        F: FnOnce(Channel, String) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        let conn = self.connect().await?;
        let ch = conn.create_channel().await?;
        f(ch, self.queue()).await?;
        let _ = conn.close(200, "done".into()).await;
        Ok(())
    }
}

/// A durable quorum queue (declaring an existing one again is a no-op).
async fn declare(ch: Channel, queue: String) -> anyhow::Result<()> {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        args,
    )
    .await
    .with_context(|| format!("declaring quorum queue {queue}"))?;
    Ok(())
}

#[async_trait]
impl System for RabbitMq {
    fn name(&self) -> String {
        "rabbitmq".into()
    }

    fn config(&self) -> String {
        format!("quorum queue, persistent, publisher confirms, prefetch {PREFETCH}")
    }

    fn pids(&self) -> Vec<u32> {
        // The node's process is the rabbitmq-server shell script; its child
        // beam.smp holds the memory.
        let mut pids = vec![self.node.pid()];
        // e.g. beam.smp under its start script.
        pids.extend(children_of(self.node.pid()));
        pids
    }

    async fn client(&self) -> anyhow::Result<Box<dyn Client>> {
        let conn = self.connect().await?;
        let publish = conn.create_channel().await?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("confirm_select")?;
        Ok(Box::new(RabbitClient {
            conn,
            publish,
            consume: None,
            queue: self.queue(),
            tag: format!("c{}", self.consumers.fetch_add(1, Ordering::Relaxed)),
        }))
    }

    async fn reset(&self) -> anyhow::Result<()> {
        let old = self.queue();
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.with_channel(|ch, new| async move {
            ch.queue_delete(old.as_str().into(), QueueDeleteOptions::default())
                .await
                .with_context(|| format!("deleting {old}"))?;
            declare(ch, new).await
        })
        .await
    }
}

pub struct RabbitClient {
    conn: Connection,
    publish: Channel,
    /// Created on the first pop only: a consumer takes up to PREFETCH
    /// messages off the queue at once, which a send-only client must not.
    consume: Option<(Channel, Consumer)>,
    queue: String,
    tag: String,
}

impl RabbitClient {
    async fn consumer(&mut self) -> anyhow::Result<&mut (Channel, Consumer)> {
        if self.consume.is_none() {
            let ch = self.conn.create_channel().await?;
            ch.basic_qos(PREFETCH, BasicQosOptions::default())
                .await
                .context("basic_qos")?;
            let consumer = ch
                .basic_consume(
                    self.queue.as_str().into(),
                    self.tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .context("basic_consume")?;
            self.consume = Some((ch, consumer));
        }
        self.consume.as_mut().context("consumer was just created")
    }
}

#[async_trait]
impl Client for RabbitClient {
    async fn send(&mut self, body: &[u8]) -> anyhow::Result<()> {
        let confirm = self
            .publish
            .basic_publish(
                "".into(),
                self.queue.as_str().into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(PERSISTENT),
            )
            .await
            .context("basic_publish")?
            .await
            .context("publisher confirm")?;
        match confirm {
            Confirmation::Ack(_) => Ok(()),
            other => anyhow::bail!("publish not confirmed: {other:?}"),
        }
    }

    async fn pop(&mut self, max: usize, ack: Ack) -> anyhow::Result<usize> {
        let (ch, consumer) = self.consumer().await?;
        let mut tags = Vec::new();
        // Wait briefly for the first delivery, then take what is buffered.
        match tokio::time::timeout(FIRST_WAIT, consumer.next()).await {
            Err(_) => return Ok(0),
            Ok(None) => anyhow::bail!("rabbitmq consumer cancelled"),
            Ok(Some(d)) => tags.push(d.context("delivery")?.delivery_tag),
        }
        while tags.len() < max {
            match consumer.next().now_or_never() {
                Some(Some(d)) => tags.push(d.context("delivery")?.delivery_tag),
                Some(None) => anyhow::bail!("rabbitmq consumer cancelled"),
                None => break,
            }
        }
        match ack {
            Ack::EachMessage => {
                for &tag in &tags {
                    ch.basic_ack(tag, BasicAckOptions::default())
                        .await
                        .context("basic_ack")?;
                }
            }
            Ack::Batched => {
                let last = *tags.last().context("at least one delivery")?;
                ch.basic_ack(last, BasicAckOptions { multiple: true })
                    .await
                    .context("basic_ack multiple")?;
            }
        }
        Ok(tags.len())
    }
}
