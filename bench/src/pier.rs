//! Pier as a system under test: standalone (one `pier-proxy` with its
//! embedded store) or cluster (one `pier-store` and N `pier-proxy`), all on
//! 127.0.0.1 with a temporary data directory, stopped when dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pier_proto::rocketmq::receive_message_response::Content;
use pier_proto::rocketmq::*;
use pier_tests::{Node, Raw};

use crate::cpu::CpuLimit;
use crate::system::{Ack, Client, Spec, System};
use crate::transport::H2;

type Messaging = messaging_service_client::MessagingServiceClient<H2>;

/// gRPC multiplexes calls; a few connections per proxy spread them over
/// HTTP/2 connection windows and the server's per-connection tasks.
const CONNECTIONS_PER_PROXY: usize = 4;

pub struct Pier {
    config: String,
    pids: Vec<u32>,
    /// Kept to stop the processes on drop (a Mutex only because a node's
    /// log receiver is not `Sync`).
    _nodes: std::sync::Mutex<Vec<Node>>,
    conns: Vec<Raw>,
    /// The load clients' connections: as many as `conns`, to the same
    /// proxies, on the generator's own transport (`transport.rs`).
    fast: Vec<Messaging>,
    next: AtomicUsize,
    /// Topic/group generation: `reset` moves to fresh names.
    generation: Arc<AtomicUsize>,
    _limits: Vec<CpuLimit>,
    _data: tempfile::TempDir,
}

impl Pier {
    /// One standalone proxy with its embedded store.
    pub async fn standalone() -> anyhow::Result<Pier> {
        let data = tempfile::tempdir()?;
        let node = Node::standalone(data.path());
        Pier::with(vec![node], 1, "standalone, flush=sync".into(), data).await
    }

    /// One store and `proxies` proxies over it; clients are spread over the
    /// proxies. `cpu_share` limits each proxy to that fraction of one CPU
    /// (see `cpu.rs`), so the proxies, not the store, are the bottleneck.
    pub async fn cluster(proxies: usize, cpu_share: Option<f64>) -> anyhow::Result<Pier> {
        let data = tempfile::tempdir()?;
        let store = Node::store(data.path());
        let mut nodes = vec![];
        let mut limits = vec![];
        for _ in 0..proxies {
            let p = Node::proxy_of(&store);
            if let Some(share) = cpu_share {
                limits.push(CpuLimit::apply(p.pid(), share)?);
            }
            nodes.push(p);
        }
        let config = match cpu_share {
            Some(share) => {
                format!("cluster, 1 store + {proxies} proxies, each limited to {share} CPU")
            }
            None => format!("cluster, 1 store + {proxies} proxies"),
        };
        nodes.insert(0, store);
        let mut pier = Pier::with(nodes, proxies, config, data).await?;
        pier._limits = limits;
        Ok(pier)
    }

    async fn with(
        nodes: Vec<Node>,
        proxies: usize,
        config: String,
        data: tempfile::TempDir,
    ) -> anyhow::Result<Pier> {
        let endpoints: Vec<String> = nodes[nodes.len() - proxies..]
            .iter()
            .map(Node::endpoint)
            .collect();
        let pids = nodes.iter().map(Node::pid).collect();
        let nodes = std::sync::Mutex::new(nodes);
        let mut conns = Vec::new();
        let mut fast = Vec::new();
        for endpoint in &endpoints {
            let origin = H2::origin(endpoint)?;
            for _ in 0..CONNECTIONS_PER_PROXY {
                conns.push(Raw::connect(endpoint).await);
                fast.push(
                    Messaging::with_origin(H2::connect(endpoint).await?, origin.clone())
                        .max_decoding_message_size(64 << 20),
                );
            }
        }
        let pier = Pier {
            config,
            pids,
            _nodes: nodes,
            conns,
            fast,
            next: AtomicUsize::new(0),
            generation: Arc::new(AtomicUsize::new(0)),
            _limits: Vec::new(),
            _data: data,
        };
        pier.create().await?;
        Ok(pier)
    }

    fn names(&self) -> (String, String) {
        let g = self.generation.load(Ordering::Relaxed);
        (format!("bench-{g}"), format!("bench-group-{g}"))
    }

    async fn create(&self) -> anyhow::Result<()> {
        let (topic, group) = self.names();
        let c = &self.conns[0];
        c.create_topic(&topic, 8).await;
        c.create_group(&group, 16).await;
        Ok(())
    }

    /// The first proxy's address, for clients that connect by themselves.
    pub fn endpoint(&self) -> String {
        self.conns[0].endpoint.clone()
    }

    pub fn topic_and_group(&self) -> (String, String) {
        self.names()
    }

    /// A client with Pier's own calls (long polling receive) besides the
    /// `Client` ones.
    pub fn pier_client(&self) -> PierClient {
        let (topic, group) = self.names();
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let raw = self.conns[i % self.conns.len()].clone();
        let messaging = self.fast[i % self.fast.len()].clone();
        let headers = raw.req(()).metadata().clone();
        PierClient {
            raw,
            messaging,
            topic,
            group,
            headers,
            id_prefix: format!("{:08X}{i:08X}", std::process::id()),
            seq: 0,
        }
    }

    /// Starters for the scenarios' system lists.
    pub fn standalone_spec() -> Spec {
        Spec {
            label: "pier standalone",
            pops: true,
            synced: true,
            start: || {
                Box::pin(async { Ok(Box::new(Pier::standalone().await?) as Box<dyn System>) })
            },
        }
    }

    pub fn cluster_spec() -> Spec {
        Spec {
            label: "pier cluster (1 store + 2 proxies)",
            pops: true,
            synced: true,
            start: || {
                Box::pin(async { Ok(Box::new(Pier::cluster(2, None).await?) as Box<dyn System>) })
            },
        }
    }
}

#[async_trait]
impl System for Pier {
    fn name(&self) -> String {
        "pier".into()
    }

    fn config(&self) -> String {
        self.config.clone()
    }

    fn pids(&self) -> Vec<u32> {
        self.pids.clone()
    }

    async fn client(&self) -> anyhow::Result<Box<dyn Client>> {
        Ok(Box::new(self.pier_client()))
    }

    async fn reset(&self) -> anyhow::Result<()> {
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.create().await
    }
}

pub struct PierClient {
    raw: Raw,
    messaging: Messaging,
    topic: String,
    group: String,
    /// The headers every call carries, built once: the load generator
    /// shares the machine with the server, so its per-call work is kept to
    /// what any client must do.
    headers: tonic::metadata::MetadataMap,
    /// Message ids: a per-client prefix and a counter (no random numbers
    /// or syscalls per message).
    id_prefix: String,
    seq: u64,
}

fn ok(status: Option<&Status>, what: &str) -> anyhow::Result<()> {
    let code = status.map_or(-1, |s| s.code);
    anyhow::ensure!(
        code == Code::Ok as i32,
        "{what} failed: code {code} {}",
        status.map_or("", |s| s.message.as_str())
    );
    Ok(())
}

impl PierClient {
    fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        *r.metadata_mut() = self.headers.clone();
        r.set_timeout(Duration::from_secs(30));
        r
    }

    /// Receives up to `max` messages, long polling up to `poll` when none
    /// are there.
    pub async fn receive(&self, max: usize, poll: Duration) -> anyhow::Result<Vec<Message>> {
        let (topic, group) = (&self.topic, &self.group);
        let req = ReceiveMessageRequest {
            group: Some(pier_tests::resource(group)),
            message_queue: Some(self.raw.queue(topic)),
            filter_expression: Some(FilterExpression {
                r#type: FilterType::Tag as i32,
                expression: "*".into(),
            }),
            batch_size: max as i32,
            invisible_duration: Some(prost_types::Duration {
                seconds: 30,
                nanos: 0,
            }),
            auto_renew: false,
            long_polling_timeout: Some(prost_types::Duration {
                seconds: poll.as_secs() as i64,
                nanos: poll.subsec_nanos() as i32,
            }),
            attempt_id: None,
        };
        let mut stream = self
            .messaging
            .clone()
            .receive_message(self.req(req))
            .await?
            .into_inner();
        let mut msgs = Vec::new();
        while let Some(frame) = stream.message().await? {
            match frame.content {
                Some(Content::Message(m)) => msgs.push(m),
                Some(Content::Status(s)) if s.code != Code::Ok as i32 => {
                    // An empty long poll ends with MESSAGE_NOT_FOUND.
                    anyhow::ensure!(
                        s.code == Code::MessageNotFound as i32,
                        "receive failed: code {} {}",
                        s.code,
                        s.message
                    );
                }
                _ => {}
            }
        }
        Ok(msgs)
    }

    /// Acknowledges `msgs`: one call per message, or one for them all.
    pub async fn ack(&self, msgs: &[Message], ack: Ack) -> anyhow::Result<()> {
        let entry = |m: &Message| AckMessageEntry {
            message_id: m
                .system_properties
                .as_ref()
                .map(|s| s.message_id.clone())
                .unwrap_or_default(),
            receipt_handle: m
                .system_properties
                .as_ref()
                .and_then(|s| s.receipt_handle.clone())
                .unwrap_or_default(),
            lite_topic: None,
        };
        let batches: Vec<Vec<AckMessageEntry>> = match ack {
            Ack::EachMessage => msgs.iter().map(|m| vec![entry(m)]).collect(),
            Ack::Batched => vec![msgs.iter().map(entry).collect()],
        };
        for entries in batches {
            let r = self
                .messaging
                .clone()
                .ack_message(self.req(AckMessageRequest {
                    group: Some(pier_tests::resource(&self.group)),
                    topic: Some(pier_tests::resource(&self.topic)),
                    entries,
                }))
                .await?
                .into_inner();
            for e in &r.entries {
                ok(e.status.as_ref(), "ack")?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Client for PierClient {
    async fn send(&mut self, body: &[u8]) -> anyhow::Result<()> {
        self.seq += 1;
        let m = pier_tests::message_with_id(
            &self.topic,
            format!("{}{:016X}", self.id_prefix, self.seq),
            body.to_vec(),
        );
        let r = self
            .messaging
            .clone()
            .send_message(self.req(SendMessageRequest { messages: vec![m] }))
            .await?
            .into_inner();
        ok(r.status.as_ref(), "send")
    }

    async fn pop(&mut self, max: usize, ack: Ack) -> anyhow::Result<usize> {
        let msgs = self.receive(max, Duration::from_millis(100)).await?;
        if !msgs.is_empty() {
            self.ack(&msgs, ack).await?;
        }
        Ok(msgs.len())
    }
}
