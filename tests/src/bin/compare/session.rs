//! Clients as the official ones behave: a Telemetry stream with Settings
//! first, heartbeats, and the orphan checks the server pushes.

use super::*;

/// One client: its connection and id, its Telemetry stream (kept open), a
/// heartbeat every 10 s, and the orphan checks the server pushed to it.
pub(crate) struct Session {
    pub(crate) raw: Raw,
    pub(crate) group: Option<String>,
    pub(crate) kind: ClientType,
    pub(crate) telemetry: mpsc::Sender<TelemetryCommand>,
    pub(crate) checks: Arc<Mutex<Vec<(Instant, RecoverOrphanedTransactionCommand)>>>,
    pub(crate) notify: Arc<Notify>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub(crate) fn user_agent() -> Ua {
    Ua {
        language: Language::Java as i32,
        version: "5.2.1".into(),
        platform: "Linux amd64".into(),
        hostname: "compare".into(),
    }
}

pub(crate) fn producer_settings(raw: &Raw, topics: &[&str]) -> Settings {
    Settings {
        client_type: Some(ClientType::Producer as i32),
        access_point: Some(raw.endpoints()),
        backoff_policy: Some(RetryPolicy {
            max_attempts: 3,
            strategy: Some(retry_policy::Strategy::ExponentialBackoff(
                ExponentialBackoff {
                    initial: Some(dur_ms(10)),
                    max: Some(dur_ms(1000)),
                    multiplier: 2.0,
                },
            )),
        }),
        request_timeout: Some(dur_ms(3000)),
        pub_sub: Some(settings::PubSub::Publishing(Publishing {
            topics: topics.iter().map(|t| resource(t)).collect(),
            max_body_size: MAX_BODY as i32,
            validate_message_type: true,
        })),
        user_agent: Some(user_agent()),
        metric: None,
        client_properties: Default::default(),
    }
}

pub(crate) fn consumer_settings(raw: &Raw, group: &str, topics: &[&str]) -> Settings {
    Settings {
        client_type: Some(ClientType::SimpleConsumer as i32),
        access_point: Some(raw.endpoints()),
        backoff_policy: None,
        request_timeout: Some(dur_ms(3000)),
        pub_sub: Some(settings::PubSub::Subscription(Subscription {
            group: Some(resource(group)),
            subscriptions: topics
                .iter()
                .map(|t| SubscriptionEntry {
                    topic: Some(resource(t)),
                    expression: Some(FilterExpression {
                        r#type: FilterType::Tag as i32,
                        expression: "*".into(),
                    }),
                })
                .collect(),
            fifo: None,
            receive_batch_size: None,
            long_polling_timeout: Some(dur_ms(30_000)),
            lite_subscription_quota: None,
            max_lite_topic_size: None,
        })),
        user_agent: Some(user_agent()),
        metric: None,
        client_properties: Default::default(),
    }
}

/// Opens a Telemetry stream with `settings`; the first reply must come
/// within 10 s. Errors carry what the server answered.
pub(crate) async fn open_telemetry(
    raw: &Raw,
    settings: Settings,
) -> Result<
    (
        mpsc::Sender<TelemetryCommand>,
        tonic::Streaming<TelemetryCommand>,
        TelemetryCommand,
    ),
    Obs,
> {
    let (tx, rx) = mpsc::channel(16);
    let first = TelemetryCommand {
        status: None,
        command: Some(telemetry_command::Command::Settings(settings)),
    };
    if tx.send(first).await.is_err() {
        return Err(Obs::new("prober error", "telemetry queue closed"));
    }
    let mut req = raw.req(tokio_stream::wrappers::ReceiverStream::new(rx));
    // The stream lives as long as the client.
    req.set_timeout(Duration::from_secs(3600));
    let mut inbound = match raw.messaging().telemetry(req).await {
        Ok(r) => r.into_inner(),
        Err(e) => return Err(Obs::transport(&e)),
    };
    match tokio::time::timeout(Duration::from_secs(10), inbound.message()).await {
        Err(_) => Err(Obs::new("no reply within 10 s", "")),
        Ok(Err(e)) => Err(Obs::transport(&e)),
        Ok(Ok(None)) => Err(Obs::new("stream ended without a reply", "")),
        Ok(Ok(Some(reply))) => Ok((tx, inbound, reply)),
    }
}

/// What the server answered to `settings` on a new Telemetry stream (the
/// stream is closed again).
pub(crate) async fn settings_reply(raw: &Raw, settings: Settings) -> Obs {
    match open_telemetry(raw, settings).await {
        Err(o) => o,
        Ok((_tx, _in, reply)) => status_obs(reply.status.as_ref()),
    }
}

impl Session {
    pub(crate) async fn open(
        endpoint: &str,
        kind: ClientType,
        group: Option<&str>,
        topics: &[&str],
    ) -> anyhow::Result<Session> {
        let raw = Raw::connect(endpoint).await;
        let settings = match group {
            Some(g) => consumer_settings(&raw, g, topics),
            None => producer_settings(&raw, topics),
        };
        let (tx, mut inbound, reply) = open_telemetry(&raw, settings).await.map_err(|o| {
            anyhow!(
                "telemetry of {kind:?} {group:?}: {} {}",
                o.outcome,
                o.message
            )
        })?;
        let ok = reply.status.as_ref().map(|s| s.code) == Some(Code::Ok as i32)
            && matches!(reply.command, Some(telemetry_command::Command::Settings(_)));
        if !ok {
            bail!("settings of {kind:?} {group:?} refused: {reply:?}");
        }
        let checks = Arc::new(Mutex::new(Vec::new()));
        let notify = Arc::new(Notify::new());
        let reader = {
            let checks = checks.clone();
            let notify = notify.clone();
            tokio::spawn(async move {
                while let Ok(Some(cmd)) = inbound.message().await {
                    if let Some(telemetry_command::Command::RecoverOrphanedTransactionCommand(c)) =
                        cmd.command
                    {
                        if let Ok(mut v) = checks.lock() {
                            v.push((Instant::now(), c));
                        }
                        notify.notify_waiters();
                    }
                }
            })
        };
        let heartbeat = {
            let raw = raw.clone();
            let group = group.map(resource);
            tokio::spawn(async move {
                loop {
                    let _ = raw
                        .messaging()
                        .heartbeat(raw.req(HeartbeatRequest {
                            group: group.clone(),
                            client_type: kind as i32,
                        }))
                        .await;
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
            })
        };
        Ok(Session {
            raw,
            group: group.map(str::to_owned),
            kind,
            telemetry: tx,
            checks,
            notify,
            tasks: vec![reader, heartbeat],
        })
    }
}

impl Session {
    /// A second handle on the same client (same id, same stream), for
    /// calls that need `&mut Probe` and a session at once.
    pub(crate) fn clone_ref(&self) -> Session {
        Session {
            raw: self.raw.clone(),
            group: self.group.clone(),
            kind: self.kind,
            telemetry: self.telemetry.clone(),
            checks: self.checks.clone(),
            notify: self.notify.clone(),
            tasks: Vec::new(),
        }
    }
}
