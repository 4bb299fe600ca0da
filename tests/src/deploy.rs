//! One Pier for one test, in one of four deployments: a standalone proxy
//! with its embedded store, a cluster of one `pier-store` and two proxies,
//! that cluster behind nginx (`deploy/nginx/pier.conf`), or a standalone
//! proxy requiring TLS and signed calls. Each end-to-end scenario is
//! written once, taking a [`Mode`], and run in the first two by
//! [`both_modes!`](crate::both_modes), in all four by
//! [`four_modes!`](crate::four_modes). A scenario runs its official client
//! through [`Pier::python`], [`Pier::node`] or [`Pier::rust_client`], which
//! add what the deployment asks of a client (TLS on, a user's keys).

use std::path::PathBuf;
use std::process::Output;
use std::time::Instant;

use pier_proto::admin::TopicType;
use tempfile::TempDir;

use crate::fleet::{nginx_binary, Nginx};
use crate::signing::{auth_flags, ROOT};
use crate::tls::{tls_channel, TestPki};
use crate::{Node, Raw};

/// How the Pier under test is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One `pier-proxy` with an embedded store.
    Standalone,
    /// One `pier-store` and two `pier-proxy` in front of it.
    Cluster,
    /// The cluster behind nginx running the deploy recipe: clients know
    /// only nginx's address.
    Balanced,
    /// One `pier-proxy` with an embedded store that refuses plaintext
    /// (`--tls-required`, a certificate of a test CA) and checks every call
    /// (`--auth`, admin [`ROOT`]): clients turn their TLS on, trust the CA
    /// and sign as ROOT.
    Secure,
}

/// An official client driven by the tests, for [`Pier::client_flags`] and
/// [`Pier::client_env`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// tests/python (rocketmq-python-client 5.1.2).
    Python,
    /// tests/node (rocketmq-client-nodejs 1.0.8).
    Node,
    /// tests/rust-client (the `rocketmq` crate 5.0.0).
    Rust,
}

/// A running Pier for one test; everything stops when it is dropped.
pub struct Pier {
    pub mode: Mode,
    /// The client's access point: one address, or every proxy joined with
    /// ';' (the multi-address form of the Go and Java clients).
    pub access_point: String,
    /// Admin and raw access through the first proxy.
    pub raw: Raw,
    /// The node holding the data first (the standalone proxy, or the
    /// store), then the proxies of a cluster.
    pub nodes: Vec<Node>,
    /// The load balancer of [`Mode::Balanced`].
    pub nginx: Option<Nginx>,
    /// The test CA and server certificate of [`Mode::Secure`].
    pub pki: Option<TestPki>,
    /// Every flag of the node holding the data beyond `--listen` and
    /// `--data` (kept for a restart).
    store_flags: Vec<String>,
    data: TempDir,
}

impl Pier {
    /// Starts Pier in `mode`. `store_flags` go to the node holding the data
    /// (the standalone proxy, or `pier-store`), e.g. the transaction-check
    /// policy.
    pub async fn start(mode: Mode, store_flags: &[&str]) -> Pier {
        let data = tempfile::tempdir().expect("temp dir");
        let pki = (mode == Mode::Secure).then(|| TestPki::new("secure mode"));
        let mut all_flags: Vec<String> = store_flags.iter().map(|f| (*f).to_owned()).collect();
        if let Some(pki) = &pki {
            all_flags.extend(pki.flags());
            all_flags.push("--tls-required".into());
            all_flags.extend(auth_flags().into_iter().map(str::to_owned));
        }
        let flag_refs: Vec<&str> = all_flags.iter().map(String::as_str).collect();
        let nodes = match mode {
            Mode::Standalone | Mode::Secure => {
                vec![Node::standalone_with(data.path(), &flag_refs)]
            }
            Mode::Cluster | Mode::Balanced => {
                let store = Node::store_with(data.path(), store_flags);
                let a = Node::proxy_of(&store);
                let b = Node::proxy_of(&store);
                vec![store, a, b]
            }
        };
        let nginx = (mode == Mode::Balanced).then(|| {
            let proxies: Vec<String> = nodes[1..].iter().map(Node::endpoint).collect();
            Nginx::start(&nginx_binary(), &proxies)
        });
        let first = match (mode, &nginx) {
            (Mode::Standalone | Mode::Secure, _) => nodes[0].endpoint(),
            (_, Some(n)) => n.endpoint(),
            (_, None) => nodes[1].endpoint(),
        };
        let raw = connect_raw(pki.as_ref(), &first).await;
        let mut pier = Pier {
            mode,
            access_point: String::new(),
            raw,
            nodes,
            nginx,
            pki,
            store_flags: all_flags,
            data,
        };
        let list: Vec<String> = match &pier.nginx {
            Some(n) => vec![n.endpoint()],
            None => pier.proxies().iter().map(|n| n.endpoint()).collect(),
        };
        pier.access_point = list.join(";");
        pier
    }

    /// The nodes clients talk to: the standalone proxy, or both proxies.
    pub fn proxies(&self) -> Vec<&Node> {
        match self.mode {
            Mode::Standalone | Mode::Secure => vec![&self.nodes[0]],
            Mode::Cluster | Mode::Balanced => self.nodes[1..].iter().collect(),
        }
    }

    /// The node holding the data (its log has the store's lines).
    pub fn data_node(&self) -> &Node {
        &self.nodes[0]
    }

    /// Stops the node holding the data (SIGTERM) and starts it again on the
    /// same address and data; returns whether it had exited cleanly. The
    /// proxies of a cluster reconnect by themselves; in standalone mode
    /// [`Pier::raw`] is connected anew.
    pub async fn restart_data_node(&mut self) -> bool {
        let clean = self.nodes[0].stop();
        let binary = match self.mode {
            Mode::Standalone | Mode::Secure => "pier-proxy",
            Mode::Cluster | Mode::Balanced => "pier-store",
        };
        let addr = self.nodes[0].addr.clone();
        let mut args = vec![
            "--listen",
            addr.as_str(),
            "--data",
            self.data.path().to_str().expect("utf-8 path"),
        ];
        args.extend(self.store_flags.iter().map(String::as_str));
        self.nodes[0] = Node::start(binary, &args);
        if matches!(self.mode, Mode::Standalone | Mode::Secure) {
            self.raw = connect_raw(self.pki.as_ref(), &self.nodes[0].endpoint()).await;
        }
        clean
    }

    /// A second raw client for scenarios that cross proxies: the same
    /// client in standalone mode, a client of the last proxy in a cluster.
    pub async fn other(&self) -> Raw {
        match self.mode {
            Mode::Standalone | Mode::Secure => self.raw.clone(),
            Mode::Cluster | Mode::Balanced => {
                let last = self.nodes.last().expect("a cluster has proxies");
                Raw::connect(&last.endpoint()).await
            }
        }
    }

    /// What `client` must be told on its command line in this deployment:
    /// in [`Mode::Secure`], TLS on and [`ROOT`]'s keys (each driver's own
    /// spelling); nothing otherwise.
    pub fn client_flags(&self, client: Client) -> Vec<String> {
        if self.mode != Mode::Secure {
            return Vec::new();
        }
        let (user, secret) = ROOT;
        let flags: &[&str] = match client {
            Client::Python => &["--tls", "--access-key", user, "--secret-key", secret],
            Client::Node | Client::Rust => &[
                "--tls",
                "true",
                "--access-key",
                user,
                "--secret-key",
                secret,
            ],
        };
        flags.iter().map(|f| (*f).to_owned()).collect()
    }

    /// The environment `client` needs in this deployment: in
    /// [`Mode::Secure`], the test CA as its TLS roots, through the setting
    /// its gRPC stack reads (gRPC C-core and grpc-js:
    /// `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`; grpc-js ignores
    /// `NODE_EXTRA_CA_CERTS` when that is set, as on some hosts; the Rust
    /// crate's rustls-native-certs: `SSL_CERT_FILE`). Nothing otherwise.
    pub fn client_env(&self, client: Client) -> Vec<(&'static str, PathBuf)> {
        let Some(pki) = &self.pki else {
            return Vec::new();
        };
        let key = match client {
            Client::Python | Client::Node => "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
            Client::Rust => "SSL_CERT_FILE",
        };
        vec![(key, pki.ca.clone())]
    }

    /// Runs the tests/python `script` with `args` plus what this deployment
    /// asks of a client ([`Pier::client_flags`], [`Pier::client_env`]).
    pub async fn python(&self, tools: &std::path::Path, script: &str, args: Vec<String>) -> Output {
        let args = [args, self.client_flags(Client::Python)].concat();
        crate::external::python_env(tools, script, args, &self.client_env(Client::Python)).await
    }

    /// [`Pier::python`] for a tests/node script.
    pub async fn node(&self, tools: &std::path::Path, script: &str, args: Vec<String>) -> Output {
        let args = [args, self.client_flags(Client::Node)].concat();
        crate::external::node_env(tools, script, args, &self.client_env(Client::Node)).await
    }

    /// Creates `topic` (`kind`, `queues` queues) and `group` reading it (a
    /// FIFO group for a FIFO topic), as most client scenarios begin.
    pub async fn topic_and_group(
        &self,
        topic: &str,
        kind: TopicType,
        queues: u32,
        group: &str,
        max_attempts: u32,
    ) {
        self.raw.create_typed_topic(topic, kind, queues).await;
        if kind == TopicType::Fifo {
            self.raw.create_fifo_group(group, max_attempts).await;
        } else {
            self.raw.create_group(group, max_attempts).await;
        }
    }

    /// Starts a Pier in `mode` with `topic` (`kind`, with `queues` queues)
    /// and `group` reading it (17 attempts, FIFO for a FIFO topic).
    pub async fn with_topic(
        mode: Mode,
        (topic, kind, queues): (&str, TopicType, u32),
        group: &str,
    ) -> Pier {
        let pier = Pier::start(mode, &[]).await;
        pier.topic_and_group(topic, kind, queues, group, 17).await;
        pier
    }

    /// Starts a Pier in `mode` and runs one scenario of an official client
    /// there ([`Pier::run_client`]); returns the Pier and the summary.
    pub async fn scenario(
        mode: Mode,
        client: Client,
        topic: (TopicType, u32),
        line: &str,
    ) -> (Pier, serde_json::Value) {
        let pier = Pier::start(mode, &[]).await;
        let r = pier.run_client(client, topic, line).await;
        (pier, r)
    }

    /// Runs one scenario of an official client and returns its JSON
    /// summary, asserting the client's own verdict `"ok": true`. `line` is
    /// the command line after the program: for Python and Node the script
    /// first (`"types.js --case fifo --topic t --group g --count 25"`), for
    /// Rust the options only. The topic and the group it names (`--topic`,
    /// `--group`) are created first: a topic of `kind` with `queues` queues,
    /// a group with the default 17 attempts, FIFO for a FIFO topic.
    /// `--endpoint` is added: the access point (every proxy) for Python, the
    /// first proxy for Node and Rust.
    pub async fn run_client(
        &self,
        client: Client,
        (kind, queues): (TopicType, u32),
        line: &str,
    ) -> serde_json::Value {
        let mut words = crate::external::cli(line);
        let named = |flag: &str| {
            let at = words.iter().position(|w| w == flag)?;
            words.get(at + 1).cloned()
        };
        if let (Some(topic), Some(group)) = (named("--topic"), named("--group")) {
            self.topic_and_group(&topic, kind, queues, &group, 0).await;
        }
        let endpoint = match client {
            Client::Python => self.access_point.clone(),
            Client::Node | Client::Rust => self.raw.endpoint.clone(),
        };
        // Python and Node name their script first; Rust has one program.
        let script = (client != Client::Rust).then(|| words.remove(0));
        words.splice(0..0, ["--endpoint".to_owned(), endpoint]);
        let started = Instant::now();
        let out = match (client, script) {
            (Client::Python, Some(s)) => self.python(&crate::ensure_tools(), &s, words).await,
            (Client::Node, Some(s)) => self.node(&crate::ensure_tools(), &s, words).await,
            _ => self.rust_client(words).await,
        };
        eprintln!(
            "{client:?} {line}: {:.1} s",
            started.elapsed().as_secs_f64()
        );
        crate::external::summary_ok(&out, &format!("{client:?} {line}"))
    }

    /// [`Pier::python`] for tests/rust-client.
    pub async fn rust_client(&self, args: Vec<String>) -> Output {
        let args = [args, self.client_flags(Client::Rust)].concat();
        let roots = self
            .client_env(Client::Rust)
            .into_iter()
            .next()
            .map(|(_, p)| p);
        crate::rust_client::run_client_env(args, roots).await
    }
}

/// The admin client of a Pier: plaintext, or with `pki` over TLS trusting
/// its CA and signing as [`ROOT`].
async fn connect_raw(pki: Option<&TestPki>, endpoint: &str) -> Raw {
    match pki {
        None => Raw::connect(endpoint).await,
        Some(pki) => {
            let channel = tls_channel(endpoint, &pki.ca_pem())
                .await
                .expect("TLS connection to the secure Pier");
            Raw::over(endpoint, channel).with_credentials(ROOT.0, ROOT.1)
        }
    }
}

/// The one shape of every scenario-mode macro: for each named scenario
/// `async fn name(mode: Mode)`, a module `name` with one test per
/// `test => Mode` pair (one name at a time, so the pairs can repeat).
#[doc(hidden)]
#[macro_export]
macro_rules! scenario_modes {
    ($modes:tt) => {};
    ($modes:tt $name:ident $(, $rest:ident)* $(,)?) => {
        $crate::scenario_module!($name $modes);
        $crate::scenario_modes!($modes $($rest),*);
    };
}

/// One scenario's module of [`scenario_modes!`](crate::scenario_modes).
#[doc(hidden)]
#[macro_export]
macro_rules! scenario_module {
    ($name:ident [$($test:ident => $mode:ident),*]) => {
        mod $name {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$name($crate::Mode::$mode).await
                }
            )*
        }
    };
}

/// Runs each named scenario `async fn name(mode: Mode)` twice, as the tests
/// `name::standalone` and `name::cluster`.
#[macro_export]
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {
        $crate::scenario_modes!([standalone => Standalone, cluster => Cluster] $($name),*);
    };
}

/// [`both_modes!`](crate::both_modes) plus `name::balanced` (the cluster
/// behind nginx, [`Mode::Balanced`]) and `name::secure` (a standalone Pier
/// requiring TLS and signed calls, [`Mode::Secure`]).
#[macro_export]
macro_rules! four_modes {
    ($($name:ident),* $(,)?) => {
        $crate::scenario_modes!(
            [
                standalone => Standalone,
                cluster => Cluster,
                balanced => Balanced,
                secure => Secure
            ]
            $($name),*
        );
    };
}
