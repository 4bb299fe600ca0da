//! What every client kind shares: identity, the address set, the settings
//! sent and received over Telemetry, routes, heartbeats and shutdown.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use pier_proto::rocketmq::{
    retry_policy, ClientType, Code, ExponentialBackoff, HeartbeatRequest, Language, MessageQueue,
    NotifyClientTerminationRequest, QueryRouteRequest, Resource, RetryPolicy, Settings, Ua,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::{Cluster, Rpc};
use crate::config::ClientConfig;
use crate::connect::{self, deadline, request, Headers, CLIENT_VERSION};
use crate::error::{check, Error, Result};
use crate::producer::TransactionChecker;

/// State shared by a client's handle and its background tasks.
pub(crate) struct ClientCore {
    pub(crate) config: ClientConfig,
    pub(crate) client_id: String,
    pub(crate) cluster: Cluster,
    client_type: ClientType,
    group: Option<String>,
    /// What this client declares in its Settings (topics may grow).
    local: Mutex<Settings>,
    /// The latest Settings the server sent (hot updates included).
    server: watch::Sender<Option<Settings>>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) checker: Option<Arc<dyn TransactionChecker>>,
}

impl std::fmt::Debug for ClientCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCore")
            .field("client_id", &self.client_id)
            .field("client_type", &self.client_type)
            .field("endpoints", &self.config.endpoints())
            .finish()
    }
}

impl ClientCore {
    /// A client of `client_type` declaring `pub_sub` in its settings.
    pub(crate) fn new(
        config: ClientConfig,
        client_type: ClientType,
        group: Option<String>,
        pub_sub: pier_proto::rocketmq::settings::PubSub,
        checker: Option<Arc<dyn TransactionChecker>>,
    ) -> Result<Arc<ClientCore>> {
        config.validate()?;
        let client_id = connect::new_client_id();
        let headers = Headers::for_client(
            &client_id,
            config.namespace(),
            config.credentials().cloned(),
        )?;
        let cluster = Cluster::new(&config, &headers)?;
        let local = Settings {
            client_type: Some(client_type as i32),
            access_point: Some(cluster.endpoints()),
            backoff_policy: None,
            request_timeout: Some(duration(config.request_timeout())),
            pub_sub: Some(pub_sub),
            user_agent: Some(Ua {
                language: Language::Rust as i32,
                version: CLIENT_VERSION.to_owned(),
                platform: std::env::consts::OS.to_owned(),
                hostname: connect::hostname(),
            }),
            metric: None,
            client_properties: Default::default(),
        };
        Ok(Arc::new(ClientCore {
            config,
            client_id,
            cluster,
            client_type,
            group,
            local: Mutex::new(local),
            server: watch::channel(None).0,
            shutdown: watch::channel(false).0,
            tasks: Mutex::new(Vec::new()),
            checker,
        }))
    }

    /// A Resource in this client's namespace.
    pub(crate) fn resource(&self, name: &str) -> Resource {
        Resource {
            resource_namespace: self.config.namespace().to_owned(),
            name: name.to_owned(),
        }
    }

    /// Deadline of unary calls.
    pub(crate) fn timeout(&self) -> Duration {
        self.config.request_timeout()
    }

    /// The Settings this client sends.
    pub(crate) fn local_settings(&self) -> Settings {
        self.local.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Changes the Settings this client sends (sent on the next resync).
    pub(crate) fn update_local(&self, f: impl FnOnce(&mut Settings)) {
        if let Ok(mut s) = self.local.lock() {
            f(&mut s);
        }
    }

    /// The server's latest Settings, if one arrived.
    pub(crate) fn server_settings(&self) -> Option<Settings> {
        self.server.borrow().clone()
    }

    pub(crate) fn apply_server_settings(&self, s: Settings) {
        self.server.send_replace(Some(s));
    }

    /// Reads the server's latest Settings without copying them.
    pub(crate) fn with_server_settings<T>(&self, f: impl FnOnce(Option<&Settings>) -> T) -> T {
        f(self.server.borrow().as_ref())
    }

    /// The subscription part of the server's latest Settings, read by `f`.
    pub(crate) fn with_subscription<T>(
        &self,
        f: impl FnOnce(Option<&pier_proto::rocketmq::Subscription>) -> T,
    ) -> T {
        use pier_proto::rocketmq::settings::PubSub;
        self.with_server_settings(|s| match s.and_then(|s| s.pub_sub.as_ref()) {
            Some(PubSub::Subscription(sub)) => f(Some(sub)),
            _ => f(None),
        })
    }

    /// The retry policy from the server's settings, or `fallback`.
    pub(crate) fn retry_policy(&self, fallback: RetryPolicy) -> RetryPolicy {
        self.with_server_settings(|s| {
            s.and_then(|s| s.backoff_policy.clone())
                .filter(|p| p.strategy.is_some())
                .unwrap_or(fallback)
        })
    }

    /// A receiver that changes to `true` at shutdown.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Keeps a background task, aborted at the end of [`close`](Self::close).
    pub(crate) fn own(&self, task: JoinHandle<()>) {
        if let Ok(mut t) = self.tasks.lock() {
            t.push(task);
        }
    }

    /// Opens the Telemetry sessions and waits (bounded) for the server's
    /// first Settings.
    pub(crate) async fn start(self: &Arc<Self>) -> Result<()> {
        for i in 0..self.cluster.len() {
            let task = tokio::spawn(crate::telemetry::run(self.clone(), i));
            self.own(task);
        }
        let mut rx = self.server.subscribe();
        let wait = self.timeout().max(Duration::from_secs(3)) * 2;
        let arrived = tokio::time::timeout(wait, rx.wait_for(Option::is_some))
            .await
            .is_ok_and(|r| r.is_ok());
        match arrived {
            true => Ok(()),
            false => Err(Error::Rpc {
                code: tonic::Code::Unavailable,
                message: format!(
                    "no Settings reply from any of {} within {wait:?}",
                    self.endpoints_text()
                ),
            }),
        }
    }

    pub(crate) fn endpoints_text(&self) -> String {
        self.config
            .endpoints()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Runs a unary call with the request timeout, failing over between
    /// addresses.
    pub(crate) async fn unary<T, F, Fut>(
        &self,
        preferred: Option<usize>,
        call: F,
    ) -> Result<(usize, T)>
    where
        F: Fn(Rpc, Duration) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        if self.is_shut_down() {
            return Err(Error::Shutdown);
        }
        let t = self.timeout();
        self.cluster
            .call(preferred, |rpc| deadline(t, call(rpc, t)))
            .await
    }

    /// The route of `topic`: fails on an unknown topic or an empty route.
    pub(crate) async fn query_route(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        let req = QueryRouteRequest {
            topic: Some(self.resource(topic)),
            endpoints: Some(self.cluster.endpoints()),
        };
        let (_, resp) = self
            .unary(None, |mut rpc, t| {
                let req = req.clone();
                async move { Ok(rpc.query_route(request(req, t)).await?.into_inner()) }
            })
            .await?;
        check(resp.status.as_ref())?;
        if resp.message_queues.is_empty() {
            return Err(Error::Protocol(format!("topic {topic} has an empty route")));
        }
        Ok(resp.message_queues)
    }

    /// One heartbeat to address `i`.
    pub(crate) async fn heartbeat(&self, i: usize) -> Result<()> {
        let req = HeartbeatRequest {
            group: self.group.as_deref().map(|g| self.resource(g)),
            client_type: self.client_type as i32,
        };
        let t = self.timeout();
        let mut rpc = self.cluster.client(i);
        let resp = deadline(t, async {
            Ok(rpc.heartbeat(request(req, t)).await?.into_inner())
        })
        .await?;
        check(resp.status.as_ref())
    }

    /// Tells every address the client is leaving (best effort), then stops
    /// the background tasks.
    pub(crate) async fn close(&self) {
        if self.shutdown.send_replace(true) {
            return;
        }
        let req = NotifyClientTerminationRequest {
            group: self.group.as_deref().map(|g| self.resource(g)),
        };
        let t = self.timeout().min(Duration::from_secs(2));
        let calls = (0..self.cluster.len()).map(|i| {
            let mut rpc = self.cluster.client(i);
            let req = req.clone();
            async move {
                let _ = deadline(t, async {
                    Ok(rpc
                        .notify_client_termination(request(req, t))
                        .await?
                        .into_inner())
                })
                .await;
            }
        });
        futures::future::join_all(calls).await;
        let tasks = self
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for task in tasks {
            task.abort();
        }
    }
}

impl ClientCore {
    /// Stops the background tasks at once, without telling the servers:
    /// what a client handle does when dropped without a shutdown. (The
    /// tasks hold the core, so the core cannot do it in its own `Drop`.)
    pub(crate) fn abort(&self) {
        self.shutdown.send_replace(true);
        if let Ok(mut tasks) = self.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }
}

/// A protobuf Duration.
pub(crate) fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// A protobuf Duration as a std one (negative: zero).
pub(crate) fn std_duration(d: &prost_types::Duration) -> Duration {
    let secs = u64::try_from(d.seconds).unwrap_or(0);
    let nanos = u32::try_from(d.nanos).unwrap_or(0);
    Duration::new(secs, nanos.min(999_999_999))
}

/// The delay before attempt `attempt + 1` after attempt `attempt` (1-based)
/// failed, under `policy` (protocol.md §4.9.5).
pub(crate) fn retry_delay(policy: &RetryPolicy, attempt: i32) -> Duration {
    let attempt = attempt.max(1);
    match &policy.strategy {
        Some(retry_policy::Strategy::ExponentialBackoff(e)) => {
            let initial = e.initial.as_ref().map_or(Duration::ZERO, std_duration);
            let max = e.max.as_ref().map_or(Duration::MAX, std_duration);
            let multiplier = if e.multiplier > 0.0 {
                e.multiplier as f64
            } else {
                1.0
            };
            let factor = multiplier.powi((attempt - 1).min(64));
            let secs = (initial.as_secs_f64() * factor).min(max.as_secs_f64());
            Duration::try_from_secs_f64(secs).unwrap_or(max)
        }
        Some(retry_policy::Strategy::CustomizedBackoff(c)) if !c.next.is_empty() => {
            let i = usize::try_from(attempt - 1)
                .unwrap_or(0)
                .min(c.next.len() - 1);
            std_duration(&c.next[i])
        }
        _ => Duration::from_secs(1),
    }
}

/// The producer policy used until the server sends its own.
pub(crate) fn default_producer_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        strategy: Some(retry_policy::Strategy::ExponentialBackoff(
            ExponentialBackoff {
                initial: Some(duration(Duration::from_millis(10))),
                max: Some(duration(Duration::from_secs(1))),
                multiplier: 2.0,
            },
        )),
    }
}

/// The consumer policy used until the server sends its own.
pub(crate) fn default_consumer_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 16,
        strategy: Some(retry_policy::Strategy::ExponentialBackoff(
            ExponentialBackoff {
                initial: Some(duration(Duration::from_secs(1))),
                max: Some(duration(Duration::from_secs(60))),
                multiplier: 2.0,
            },
        )),
    }
}

/// Whether `code` is "no message" for a receive.
pub(crate) fn is_not_found(e: &Error) -> bool {
    e.code() == Some(Code::MessageNotFound)
}

/// Now, for born timestamps.
pub(crate) fn now() -> SystemTime {
    SystemTime::now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pier_proto::rocketmq::CustomizedBackoff;

    #[test]
    fn exponential_delays_are_capped() {
        let p = default_producer_policy();
        assert_eq!(retry_delay(&p, 1), Duration::from_millis(10));
        assert_eq!(retry_delay(&p, 3), Duration::from_millis(40));
        assert_eq!(retry_delay(&p, 30), Duration::from_secs(1));
    }

    #[test]
    fn customized_delays_clamp_to_the_last() {
        let p = RetryPolicy {
            max_attempts: 5,
            strategy: Some(retry_policy::Strategy::CustomizedBackoff(
                CustomizedBackoff {
                    next: vec![
                        duration(Duration::from_secs(1)),
                        duration(Duration::from_secs(5)),
                    ],
                },
            )),
        };
        assert_eq!(retry_delay(&p, 1), Duration::from_secs(1));
        assert_eq!(retry_delay(&p, 2), Duration::from_secs(5));
        assert_eq!(retry_delay(&p, 9), Duration::from_secs(5));
        let none = RetryPolicy::default();
        assert_eq!(retry_delay(&none, 1), Duration::from_secs(1));
    }
}
