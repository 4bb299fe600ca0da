//! Pier as a system under test: standalone (one `pier-proxy` with its
//! embedded store) or cluster (one `pier-store` and N `pier-proxy`), all on
//! 127.0.0.1 with a temporary data directory, stopped when dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use pier_tests::Node;

use crate::cpu::CpuLimit;
use crate::system::{boxed, Client, Spec, System};
use crate::v2::{Conns, V2Client};

pub struct Pier {
    config: String,
    pids: Vec<u32>,
    /// Kept to stop the processes on drop (a Mutex only because a node's
    /// log receiver is not `Sync`).
    _nodes: std::sync::Mutex<Vec<Node>>,
    /// Connections to the proxies, shared by the load clients.
    conns: Conns,
    /// Topic/group generation: `reset` moves to fresh names.
    generation: Arc<AtomicUsize>,
    _limits: Vec<CpuLimit>,
    _data: tempfile::TempDir,
    /// The test certificates of a TLS run.
    _pki: Option<pier_tests::tls::TestPki>,
    /// The OTLP collector of an observability run.
    _sink: Option<pier_tests::otlp::Receiver>,
}

impl Pier {
    /// One standalone proxy with its embedded store.
    pub async fn standalone() -> anyhow::Result<Pier> {
        let data = tempfile::tempdir()?;
        let node = Node::standalone(data.path());
        Pier::with(vec![node], 1, "standalone, flush=sync".into(), data).await
    }

    /// One standalone proxy serving TLS, with every load connection over
    /// TLS: the cost of TLS against [`Pier::standalone`].
    pub async fn standalone_tls() -> anyhow::Result<Pier> {
        let data = tempfile::tempdir()?;
        let pki = pier_tests::tls::TestPki::new("bench");
        let flags = pki.flags().to_vec();
        Pier::over_tls(data, pki, flags, None, "standalone, flush=sync, TLS").await
    }

    /// [`Pier::standalone_tls`] with authentication on as well: every load
    /// call is signed (a date and an HMAC per call, as the official clients
    /// do) and checked by the proxy, with the ACL decision of an admin
    /// user. The cost of TLS plus auth against [`Pier::standalone`].
    pub async fn standalone_secure() -> anyhow::Result<Pier> {
        const USER: (&str, &str) = ("bench", "bench-secret-for-the-load-run");
        let data = tempfile::tempdir()?;
        let pki = pier_tests::tls::TestPki::new("bench");
        let mut flags = pki.flags().to_vec();
        flags
            .extend(["--auth", "--admin-user", USER.0, "--admin-secret", USER.1].map(String::from));
        Pier::over_tls(
            data,
            pki,
            flags,
            Some(USER),
            "standalone, flush=sync, TLS, auth",
        )
        .await
    }

    /// One standalone proxy started with `flags` (among them its TLS
    /// certificate from `pki`), every load connection over TLS, signed as
    /// `user` when one is given.
    async fn over_tls(
        data: tempfile::TempDir,
        pki: pier_tests::tls::TestPki,
        flags: Vec<String>,
        user: Option<(&str, &str)>,
        config: &str,
    ) -> anyhow::Result<Pier> {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let node = Node::standalone_with(data.path(), &flags);
        let conns = Conns::connect_with(&[node.endpoint()], Some(&pki.ca_pem()), user).await?;
        let mut pier = Pier::with_conns(vec![node], conns, config.into(), data).await?;
        pier._pki = Some(pki);
        Ok(pier)
    }

    /// One standalone proxy with full observability on: spans sampled at
    /// `ratio` (parent-based; the load's calls carry no `traceparent`, so
    /// `ratio` of them start a trace) and the metrics pushed as well, both
    /// over OTLP/gRPC to a local collector the bench starts (the tests'
    /// receiver, decoding every export and keeping none), with the SDK's
    /// default batching (spans every 5 s or 512 at a time, at most 2048
    /// queued) and metric interval (60 s). Metrics are recorded in every
    /// Pier system (the Prometheus endpoint is always there); what this
    /// adds is the spans and the pushes. The cost of tracing against
    /// [`Pier::standalone`].
    pub async fn standalone_otel(ratio: &'static str) -> anyhow::Result<Pier> {
        let data = tempfile::tempdir()?;
        let sink = pier_tests::otlp::Receiver::start_discarding();
        let endpoint = format!("http://{}", sink.grpc_addr);
        let flags = [
            "--otlp-endpoint",
            &endpoint,
            "--otlp-protocol",
            "grpc",
            "--trace-sample-ratio",
            ratio,
        ];
        let node = Node::standalone_with(data.path(), &flags);
        let config =
            format!("standalone, flush=sync, OTLP/gRPC metrics + traces sampled at {ratio}");
        let mut pier = Pier::with(vec![node], 1, config, data).await?;
        pier._sink = Some(sink);
        Ok(pier)
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
        let conns = Conns::connect(&endpoints).await?;
        Pier::with_conns(nodes, conns, config, data).await
    }

    async fn with_conns(
        nodes: Vec<Node>,
        conns: Conns,
        config: String,
        data: tempfile::TempDir,
    ) -> anyhow::Result<Pier> {
        let pids = nodes.iter().map(Node::pid).collect();
        let nodes = std::sync::Mutex::new(nodes);
        let pier = Pier {
            config,
            pids,
            _nodes: nodes,
            conns,
            generation: Arc::new(AtomicUsize::new(0)),
            _limits: Vec::new(),
            _data: data,
            _pki: None,
            _sink: None,
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
        let c = &self.conns.raw[0];
        c.create_topic(&topic, 8).await;
        c.create_group(&group, 16).await;
        Ok(())
    }

    /// The first proxy's address, for clients that connect by themselves.
    pub fn endpoint(&self) -> String {
        self.conns.raw[0].endpoint.clone()
    }

    pub fn topic_and_group(&self) -> (String, String) {
        self.names()
    }

    /// A load client with the calls the scenarios use besides the `Client`
    /// ones (long polling receive, acks of what it received).
    pub fn pier_client(&self) -> V2Client {
        let (topic, group) = self.names();
        self.conns.client(&topic, &group, "pier")
    }

    /// Starters for the scenarios' system lists.
    pub fn standalone_spec() -> Spec {
        Spec::popping("pier standalone", true, || {
            Box::pin(async { boxed(Pier::standalone().await) })
        })
    }

    /// Only run when asked for (`--only "pier standalone TLS"`).
    pub fn standalone_tls_spec() -> Spec {
        Spec::popping("pier standalone TLS", true, || {
            Box::pin(async { boxed(Pier::standalone_tls().await) })
        })
    }

    /// Only run when asked for (`--only "pier standalone TLS+auth"`).
    pub fn standalone_secure_spec() -> Spec {
        Spec::popping("pier standalone TLS+auth", true, || {
            Box::pin(async { boxed(Pier::standalone_secure().await) })
        })
    }

    /// Only run when asked for (`--only "pier standalone otel 0.01"`).
    pub fn standalone_otel_low_spec() -> Spec {
        Spec::popping("pier standalone otel 0.01", true, || {
            Box::pin(async { boxed(Pier::standalone_otel("0.01").await) })
        })
    }

    /// Only run when asked for (`--only "pier standalone otel 1.0"`).
    pub fn standalone_otel_full_spec() -> Spec {
        Spec::popping("pier standalone otel 1.0", true, || {
            Box::pin(async { boxed(Pier::standalone_otel("1.0").await) })
        })
    }

    pub fn cluster_spec() -> Spec {
        Spec::popping("pier cluster (1 store + 2 proxies)", true, || {
            Box::pin(async { boxed(Pier::cluster(2, None).await) })
        })
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
