//! The set of server addresses a client talks to, with fail-over: calls go
//! to a healthy address (the preferred one first), a transport failure marks
//! the address down for a while and the call moves on to the next one.
//!
//! Channels connect lazily and reconnect by themselves, so an address that
//! is down at start, or restarts, is picked up again once it answers.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pier_proto::rocketmq::messaging_service_client::MessagingServiceClient;
use pier_proto::rocketmq::{AddressScheme, Endpoints};

use crate::addr::ServerAddr;
use crate::config::ClientConfig;
use crate::connect::{self, HeaderChannel, Headers, MAX_MESSAGE_SIZE};
use crate::error::{Error, Result};

/// How long an address that failed is skipped (unless all are down).
const DOWN_FOR: Duration = Duration::from_secs(2);

/// The messaging client of one address.
pub(crate) type Rpc = MessagingServiceClient<HeaderChannel>;

#[derive(Debug)]
struct Node {
    addr: ServerAddr,
    client: Rpc,
    down_until: Mutex<Option<Instant>>,
}

/// Every address of a client's configuration.
#[derive(Debug)]
pub(crate) struct Cluster {
    nodes: Vec<Node>,
    next: AtomicUsize,
}

impl Cluster {
    /// Lazy channels to every configured address, all carrying `headers`.
    pub(crate) fn new(config: &ClientConfig, headers: &Headers) -> Result<Cluster> {
        let connect_timeout = config.request_timeout().max(Duration::from_secs(1));
        let nodes = config
            .endpoints()
            .iter()
            .map(|addr| {
                let channel =
                    connect::endpoint(addr, connect_timeout, config.tls_trust())?.connect_lazy();
                let client = MessagingServiceClient::with_interceptor(channel, headers.clone())
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE);
                Ok(Node {
                    addr: addr.clone(),
                    client,
                    down_until: Mutex::new(None),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Every index below is taken modulo the node count.
        if nodes.is_empty() {
            return Err(Error::invalid("at least one endpoint is required"));
        }
        Ok(Cluster {
            nodes,
            next: AtomicUsize::new(0),
        })
    }

    fn node(&self, i: usize) -> &Node {
        &self.nodes[i % self.nodes.len()]
    }

    /// Number of addresses.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The address at `i`.
    pub(crate) fn addr(&self, i: usize) -> &ServerAddr {
        &self.node(i).addr
    }

    /// The client of address `i`.
    pub(crate) fn client(&self, i: usize) -> Rpc {
        self.node(i).client.clone()
    }

    /// Whether address `i` is currently considered reachable.
    pub(crate) fn is_up(&self, i: usize) -> bool {
        let node = self.node(i);
        let down = node.down_until.lock().map(|d| *d).unwrap_or(None);
        down.is_none_or(|until| Instant::now() >= until)
    }

    /// Marks address `i` unreachable for a short while.
    pub(crate) fn mark_down(&self, i: usize) {
        if let Ok(mut d) = self.node(i).down_until.lock() {
            *d = Some(Instant::now() + DOWN_FOR);
        }
    }

    /// Marks address `i` reachable.
    pub(crate) fn mark_up(&self, i: usize) {
        if let Ok(mut d) = self.node(i).down_until.lock() {
            *d = None;
        }
    }

    /// The order to try addresses in: `preferred` first when it is up, then
    /// the other healthy ones round-robin, then those marked down.
    pub(crate) fn order(&self, preferred: Option<usize>) -> Vec<usize> {
        let n = self.nodes.len();
        let start = preferred.unwrap_or_else(|| self.next.fetch_add(1, Ordering::Relaxed)) % n;
        let (mut up, down): (Vec<usize>, Vec<usize>) = (0..n)
            .map(|k| (start + k) % n)
            .partition(|&i| self.is_up(i));
        up.extend(down);
        up
    }

    /// Runs `call` against one address after another until one answers
    /// (a business error is an answer); returns the address index used.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        preferred: Option<usize>,
        call: F,
    ) -> Result<(usize, T)>
    where
        F: Fn(Rpc) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut last = None;
        for i in self.order(preferred) {
            match call(self.client(i)).await {
                Ok(v) => {
                    self.mark_up(i);
                    return Ok((i, v));
                }
                Err(e) if e.is_transport() => {
                    tracing::debug!(endpoint = %self.addr(i), error = %e, "call failed, trying the next endpoint");
                    self.mark_down(i);
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::invalid("no endpoint configured")))
    }

    /// All addresses as `apache.rocketmq.v2.Endpoints` (the access point
    /// sent in QueryRoute, Settings and receive requests).
    pub(crate) fn endpoints(&self) -> Endpoints {
        let first = self.node(0).addr.scheme();
        let scheme = if self.nodes.iter().all(|n| n.addr.scheme() == first) {
            first
        } else {
            AddressScheme::DomainName
        };
        Endpoints {
            scheme: scheme as i32,
            addresses: self
                .nodes
                .iter()
                .flat_map(|n| n.addr.endpoints().addresses)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn order_prefers_healthy_addresses() {
        let config = ClientConfig::new("127.0.0.1:1,127.0.0.1:2,127.0.0.1:3").unwrap();
        let c = Cluster::new(&config, &Headers::new()).unwrap();
        assert_eq!(c.order(Some(1)), vec![1, 2, 0]);
        c.mark_down(1);
        assert_eq!(c.order(Some(1)), vec![2, 0, 1]);
        c.mark_up(1);
        assert_eq!(c.order(Some(4)), vec![1, 2, 0]);
        let e = c.endpoints();
        assert_eq!(e.addresses.len(), 3);
        assert_eq!(e.scheme, AddressScheme::IPv4 as i32);
    }

    #[tokio::test]
    async fn call_fails_over_on_transport_errors() {
        let config = ClientConfig::new("127.0.0.1:1,127.0.0.1:2").unwrap();
        let c = Cluster::new(&config, &Headers::new()).unwrap();
        let tried = std::sync::Mutex::new(Vec::new());
        let r = c
            .call(Some(0), |_| {
                let n = {
                    let mut t = tried.lock().unwrap();
                    t.push(());
                    t.len()
                };
                async move {
                    if n == 1 {
                        Err(Error::from(tonic::Status::unavailable("down")))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(r, (1, 2));
        assert!(!c.is_up(0));
        let business = c
            .call(None, |_| async { Err::<(), _>(Error::invalid("bad")) })
            .await;
        assert!(matches!(business, Err(Error::InvalidArgument(_))));
    }
}
