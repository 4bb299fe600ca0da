//! [`ClientCore`]: what every client kind shares — identity, the address
//! set, the Settings sent and received over Telemetry, unary calls with
//! fail-over, routes, heartbeats, and the background tasks with their
//! shutdown.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use pier_proto::rocketmq::settings::PubSub;
use pier_proto::rocketmq::{
    ClientType, HeartbeatRequest, Language, MessageQueue, NotifyClientTerminationRequest,
    QueryRouteRequest, RecoverOrphanedTransactionCommand, Resource, RetryPolicy, Settings,
    Subscription, Ua,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::{Cluster, Rpc};
use crate::config::ClientConfig;
use crate::connect::{deadline, request, Headers, CLIENT_VERSION};
use crate::error::{check, Error, Result};
use crate::identity;
use crate::time::duration;

/// How long [`ClientCore::close`] waits for the cancelled background tasks
/// to end.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Answers the server's checks of transactions left pending (a Telemetry
/// command). The session layer cannot answer them itself: the answer is the
/// producer's, so the producer layer hands one of these down.
pub(crate) trait TransactionCheckHandler: Send + Sync + 'static {
    /// Handles one check that came from endpoint `origin`.
    fn on_check(
        &self,
        core: Arc<ClientCore>,
        origin: usize,
        command: RecoverOrphanedTransactionCommand,
    ) -> BoxFuture<'static, ()>;
}

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
    /// Cancelled at shutdown (or when the handle is dropped): every task
    /// spawned with [`spawn`](Self::spawn) ends at its next await.
    cancel: CancellationToken,
    /// The background tasks, so `close` can wait for them to end.
    tasks: TaskTracker,
    pub(crate) transaction_checks: Option<Arc<dyn TransactionCheckHandler>>,
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
        pub_sub: PubSub,
        transaction_checks: Option<Arc<dyn TransactionCheckHandler>>,
    ) -> Result<Arc<ClientCore>> {
        config.validate()?;
        let client_id = identity::new_client_id();
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
                hostname: identity::hostname(),
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
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            transaction_checks,
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

    /// Names `group` in the subscription this client declares.
    pub(crate) fn declare_group(&self, group: &str) {
        let group = self.resource(group);
        self.update_local(|s| {
            if let Some(PubSub::Subscription(sub)) = s.pub_sub.as_mut() {
                sub.group = Some(group);
            }
        });
    }

    pub(crate) fn apply_server_settings(&self, s: Settings) {
        self.server.send_replace(Some(s));
    }

    /// Waits up to `wait` for the server's first Settings.
    pub(crate) async fn wait_for_server_settings(&self, wait: Duration) -> bool {
        let mut rx = self.server.subscribe();
        tokio::time::timeout(wait, rx.wait_for(Option::is_some))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Reads the server's latest Settings without copying them.
    pub(crate) fn with_server_settings<T>(&self, f: impl FnOnce(Option<&Settings>) -> T) -> T {
        f(self.server.borrow().as_ref())
    }

    /// The subscription part of the server's latest Settings, read by `f`.
    pub(crate) fn with_subscription<T>(&self, f: impl FnOnce(Option<&Subscription>) -> T) -> T {
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

    /// The token cancelled at shutdown; a child of it stops one part of a
    /// client early (a push consumer's receive loops).
    pub(crate) fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Runs `task` in the background, owned by this client: it is dropped
    /// at its next await once the client shuts down or its handle is
    /// dropped, and [`close`](Self::close) waits for it to be gone.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {}
                _ = task => {}
            }
        });
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
        Fut: Future<Output = Result<T>>,
    {
        if self.is_shut_down() {
            return Err(Error::Shutdown);
        }
        let t = self.timeout();
        self.cluster
            .call(preferred, |rpc| deadline(t, call(rpc, t)))
            .await
    }

    /// Sends `req` as one unary call (see [`ClientCore::unary`]), cloned
    /// for each attempt, and returns the answer.
    pub(crate) async fn call<Req, Resp, F, Fut>(
        &self,
        preferred: Option<usize>,
        req: Req,
        call: F,
    ) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(Rpc, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let (_, resp) = self
            .unary(preferred, |rpc, t| {
                let answer = call(rpc, request(req.clone(), t));
                async move { Ok(answer.await?.into_inner()) }
            })
            .await?;
        Ok(resp)
    }

    /// The route of `topic`: fails on an unknown topic or an empty route.
    pub(crate) async fn query_route(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        let req = QueryRouteRequest {
            topic: Some(self.resource(topic)),
            endpoints: Some(self.cluster.endpoints()),
        };
        let resp = self
            .call(
                None,
                req,
                |mut rpc, r| async move { rpc.query_route(r).await },
            )
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

    /// Stops the background tasks (the Telemetry sessions first, so no
    /// heartbeat registers the client again), tells every address the
    /// client is leaving (best effort), then waits a bounded time for the
    /// tasks to be gone.
    pub(crate) async fn close(&self) {
        if self.cancel.is_cancelled() {
            return;
        }
        self.cancel.cancel();
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
        self.tasks.close();
        if tokio::time::timeout(CLOSE_WAIT, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = self.tasks.len(),
                "background tasks still running {CLOSE_WAIT:?} after shutdown"
            );
        }
    }

    /// Stops the background tasks without telling the servers or waiting:
    /// what a client handle does when dropped without a shutdown. (The
    /// tasks hold the core, so the core cannot do it in its own `Drop`.)
    pub(crate) fn abort(&self) {
        self.cancel.cancel();
        self.tasks.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn core() -> Arc<ClientCore> {
        // Nothing listens on port 1: the termination notice fails fast.
        let config = ClientConfig::new("127.0.0.1:1")
            .unwrap()
            .with_request_timeout(Duration::from_millis(200));
        ClientCore::new(
            config,
            ClientType::Producer,
            None,
            PubSub::Publishing(Default::default()),
            None,
        )
        .unwrap()
    }

    /// Sets its flag when dropped: tells a test its task is gone.
    struct Gone(Arc<AtomicBool>);

    impl Drop for Gone {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn endless(core: &ClientCore) -> Arc<AtomicBool> {
        let gone = Arc::new(AtomicBool::new(false));
        let guard = Gone(gone.clone());
        core.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        gone
    }

    #[tokio::test]
    async fn close_ends_every_background_task() {
        let core = core();
        let gone = [endless(&core), endless(&core)];
        assert_eq!(core.tasks.len(), 2);
        tokio::time::timeout(Duration::from_secs(10), core.close())
            .await
            .expect("close is bounded");
        assert!(gone.iter().all(|g| g.load(Ordering::SeqCst)));
        assert!(core.tasks.is_empty());
        assert!(core.is_shut_down());
        // A task spawned after the shutdown ends at once.
        let late = endless(&core);
        tokio::time::timeout(Duration::from_secs(5), core.tasks.wait())
            .await
            .expect("the late task ends at once");
        assert!(late.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn abort_ends_the_tasks_without_waiting() {
        let core = core();
        let gone = endless(&core);
        core.abort();
        tokio::time::timeout(Duration::from_secs(5), core.tasks.wait())
            .await
            .expect("the task ends once cancelled");
        assert!(gone.load(Ordering::SeqCst));
        let e = core.unary(None, |_, _| async { Ok(()) }).await;
        assert!(matches!(e, Err(Error::Shutdown)));
    }
}
