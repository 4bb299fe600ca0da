//! One Pier for one test, in one of three deployments: a standalone proxy
//! with its embedded store, a cluster of one `pier-store` and two proxies,
//! or that cluster behind nginx (`deploy/nginx/pier.conf`). Each end-to-end
//! scenario is written once, taking a [`Mode`], and run in the first two
//! by [`both_modes!`](crate::both_modes), in all three by
//! [`three_modes!`](crate::three_modes).

use tempfile::TempDir;

use crate::fleet::{nginx_binary, Nginx};
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
    store_flags: Vec<String>,
    data: TempDir,
}

impl Pier {
    /// Starts Pier in `mode`. `store_flags` go to the node holding the data
    /// (the standalone proxy, or `pier-store`), e.g. the transaction-check
    /// policy.
    pub async fn start(mode: Mode, store_flags: &[&str]) -> Pier {
        let data = tempfile::tempdir().expect("temp dir");
        let nodes = match mode {
            Mode::Standalone => vec![Node::standalone_with(data.path(), store_flags)],
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
            (Mode::Standalone, _) => nodes[0].endpoint(),
            (_, Some(n)) => n.endpoint(),
            (_, None) => nodes[1].endpoint(),
        };
        let raw = Raw::connect(&first).await;
        let mut pier = Pier {
            mode,
            access_point: String::new(),
            raw,
            nodes,
            nginx,
            store_flags: store_flags.iter().map(|f| (*f).to_owned()).collect(),
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
            Mode::Standalone => vec![&self.nodes[0]],
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
            Mode::Standalone => "pier-proxy",
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
        if self.mode == Mode::Standalone {
            self.raw = Raw::connect(&self.nodes[0].endpoint()).await;
        }
        clean
    }

    /// A second raw client for scenarios that cross proxies: the same
    /// client in standalone mode, a client of the last proxy in a cluster.
    pub async fn other(&self) -> Raw {
        match self.mode {
            Mode::Standalone => self.raw.clone(),
            Mode::Cluster | Mode::Balanced => {
                let last = self.nodes.last().expect("a cluster has proxies");
                Raw::connect(&last.endpoint()).await
            }
        }
    }
}

/// Runs each named scenario `async fn name(mode: Mode)` twice, as the tests
/// `name::standalone` and `name::cluster`.
#[macro_export]
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn standalone() {
                super::$name($crate::Mode::Standalone).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cluster() {
                super::$name($crate::Mode::Cluster).await
            }
        }
    )*};
}

/// [`both_modes!`](crate::both_modes) plus a third test, `name::balanced`:
/// the cluster behind nginx ([`Mode::Balanced`]).
#[macro_export]
macro_rules! three_modes {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn standalone() {
                super::$name($crate::Mode::Standalone).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cluster() {
                super::$name($crate::Mode::Cluster).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn balanced() {
                super::$name($crate::Mode::Balanced).await
            }
        }
    )*};
}
