//! Behaviour side by side: the same edge cases, through the raw
//! `apache.rocketmq.v2` gRPC API, against Apache RocketMQ 5 and Pier.
//!
//! ```text
//! compare probe --endpoint HOST:PORT --system NAME --out FILE.json
//! compare table --rocketmq A.json --pier B.json [--scenarios FILE.tsv]
//!               [--meta FILE] --out RESULTS.md
//! ```
//!
//! `probe` runs every case against one endpoint and writes what it saw (per
//! case: the compared outcome, the server's status message, details). It acts
//! as the official clients do: each client opens its Telemetry stream and
//! sends its Settings first, heartbeats every 10 s, and takes its message
//! queues from QueryRoute. The resources must exist beforehand (created by
//! tests/compare/run.sh on both systems): see [`TOPICS`] and [`GROUPS`].
//!
//! `table` joins two such files into the Markdown table of
//! tests/compare/RESULTS.md. A row is "same" when both outcomes are equal;
//! otherwise it takes the argued verdict of [`VERDICTS`] when that entry
//! still matches what was seen, and is flagged UNEXPLAINED otherwise (the
//! command then exits with status 1, after writing the table).
//!
//! This is a hand-run tool, not a test: it never panics on what the servers
//! answer; a failed call is itself the observation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use pier_proto::rocketmq::*;
use pier_tests::{resource, Raw};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

/// Topics the probe uses, with their message type; run.sh creates them with
/// one queue each, on both systems.
pub const TOPICS: &[(&str, &str)] = &[
    ("cmp-normal", "NORMAL"),
    ("cmp-normal2", "NORMAL"),
    ("cmp-sink", "NORMAL"),
    ("cmp-fifo", "FIFO"),
    ("cmp-delay", "DELAY"),
    ("cmp-tx", "TRANSACTION"),
];

/// Consumer groups the probe uses (`fifo` = orderly group).
pub const GROUPS: &[(&str, bool)] = &[
    ("cmp-g", false),
    ("cmp-g2", false),
    ("cmp-fifo-g", true),
    ("cmp-delay-g", false),
];

const MAX_BODY: usize = 4 * 1024 * 1024;
/// Invisible time for messages whose handles the cases play with: longer
/// than the run, so they never come back on their own.
const LONG_INVISIBLE_MS: i64 = 3_600_000;

// ---------------------------------------------------------------------------
// Observations

/// What one case saw. `outcome` is what the table compares (a status code,
/// or a short class of behaviour); `message` is the server's status message;
/// `detail` holds counts and timings that are shown but not compared.
#[derive(Clone, Debug, Default)]
struct Obs {
    outcome: String,
    message: String,
    detail: String,
}

impl Obs {
    fn new(outcome: impl Into<String>, message: impl Into<String>) -> Obs {
        Obs {
            outcome: outcome.into(),
            message: message.into(),
            detail: String::new(),
        }
    }
    fn detail(mut self, d: impl Into<String>) -> Obs {
        let d = d.into();
        if self.detail.is_empty() {
            self.detail = d;
        } else if !d.is_empty() {
            self.detail = format!("{}; {d}", self.detail);
        }
        self
    }
    fn transport(s: &tonic::Status) -> Obs {
        Obs::new(format!("gRPC {:?}", s.code()), s.message())
    }
    fn is(&self, code: Code) -> bool {
        self.outcome == code.as_str_name()
    }
}

fn code_name(code: i32) -> String {
    Code::try_from(code)
        .map(|c| c.as_str_name().to_owned())
        .unwrap_or_else(|_| format!("code {code}"))
}

fn status_obs(s: Option<&Status>) -> Obs {
    match s {
        Some(s) => Obs::new(code_name(s.code), s.message.clone()),
        None => Obs::new("no status", ""),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn dur_ms(ms: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: ms / 1000,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

fn now_ts(offset_ms: i64) -> prost_types::Timestamp {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
        + offset_ms;
    prost_types::Timestamp {
        seconds: now.div_euclid(1000),
        nanos: (now.rem_euclid(1000) * 1_000_000) as i32,
    }
}

// ---------------------------------------------------------------------------
// Clients as the official ones behave

/// One client: its connection and id, its Telemetry stream (kept open), a
/// heartbeat every 10 s, and the orphan checks the server pushed to it.
struct Session {
    raw: Raw,
    group: Option<String>,
    kind: ClientType,
    telemetry: mpsc::Sender<TelemetryCommand>,
    checks: Arc<Mutex<Vec<(Instant, RecoverOrphanedTransactionCommand)>>>,
    notify: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn user_agent() -> Ua {
    Ua {
        language: Language::Java as i32,
        version: "5.2.1".into(),
        platform: "Linux amd64".into(),
        hostname: "compare".into(),
    }
}

fn producer_settings(raw: &Raw, topics: &[&str]) -> Settings {
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

fn consumer_settings(raw: &Raw, group: &str, topics: &[&str]) -> Settings {
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
async fn open_telemetry(
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

impl Session {
    async fn open(
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

// ---------------------------------------------------------------------------
// Raw calls that never panic

/// The message ids the Java client makes: version 01, a MAC, the pid,
/// seconds since 2021 and a sequence number, in upper-case hex.
fn message_id(seq: u64) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        .saturating_sub(1_609_459_200);
    format!(
        "01{:012X}{:04X}{:08X}{:08X}",
        0x0242_ac11_0002u64,
        std::process::id() & 0xffff,
        secs & 0xffff_ffff,
        seq & 0xffff_ffff
    )
}

struct Recv {
    obs: Obs,
    msgs: Vec<Message>,
    elapsed: Duration,
}

fn sp(m: &Message) -> SystemProperties {
    m.system_properties.clone().unwrap_or_default()
}

fn body(m: &Message) -> String {
    String::from_utf8_lossy(&m.body).into_owned()
}

fn attempt(m: &Message) -> i32 {
    sp(m).delivery_attempt.unwrap_or(0)
}

fn handle_of(m: &Message) -> String {
    sp(m).receipt_handle.unwrap_or_default()
}

/// A receive request's knobs.
#[derive(Clone)]
struct RecvOpts {
    batch: i32,
    invisible_ms: Option<i64>,
    poll_ms: Option<i64>,
    deadline: Duration,
    filter: Option<FilterExpression>,
}

impl RecvOpts {
    fn new(batch: i32, invisible_ms: i64, poll_ms: i64) -> RecvOpts {
        RecvOpts {
            batch,
            invisible_ms: Some(invisible_ms),
            poll_ms: Some(poll_ms),
            deadline: Duration::from_millis(poll_ms.max(0) as u64 + 10_000),
            filter: Some(FilterExpression {
                r#type: FilterType::Tag as i32,
                expression: "*".into(),
            }),
        }
    }
}

struct Probe {
    endpoint: String,
    rows: Vec<(String, String, Obs)>,
    /// First message queue of each topic from QueryRoute (what clients use).
    queues: BTreeMap<String, MessageQueue>,
    seq: AtomicU64,
    /// Messages that showed up where a case did not expect them.
    strays: Vec<String>,
    p: Session,
    pt: Session,
    c: Session,
    c2: Session,
    cf: Session,
    cd: Session,
}

impl Probe {
    fn row(&mut self, id: &str, title: &str, obs: Obs) {
        eprintln!("  {id}: {} {} {}", obs.outcome, obs.message, obs.detail);
        self.rows.push((id.to_owned(), title.to_owned(), obs));
    }

    fn next_id(&self) -> String {
        message_id(self.seq.fetch_add(1, Ordering::Relaxed))
    }

    /// A message as the Java producer builds it.
    fn msg(&self, topic: &str, kind: MessageType, body: &str) -> Message {
        Message {
            topic: Some(resource(topic)),
            user_properties: Default::default(),
            system_properties: Some(SystemProperties {
                message_id: self.next_id(),
                message_type: kind as i32,
                body_encoding: Encoding::Identity as i32,
                born_timestamp: Some(now_ts(0)),
                born_host: "127.0.0.1".into(),
                ..Default::default()
            }),
            body: body.as_bytes().to_vec(),
        }
    }

    fn queue(&self, topic: &str) -> MessageQueue {
        let mut q = self
            .queues
            .get(topic)
            .or_else(|| self.queues.get("cmp-normal"))
            .cloned()
            .unwrap_or_default();
        q.topic = Some(resource(topic));
        q
    }

    async fn send_many(&self, s: &Session, msgs: Vec<Message>) -> (Obs, Vec<SendResultEntry>) {
        match s
            .raw
            .messaging()
            .send_message(s.raw.req(SendMessageRequest { messages: msgs }))
            .await
        {
            Err(e) => (Obs::transport(&e), Vec::new()),
            Ok(r) => {
                let r = r.into_inner();
                (status_obs(r.status.as_ref()), r.entries)
            }
        }
    }

    /// One message: the entry's status (the top-level one when there is no
    /// entry), and the entry.
    async fn send(&self, s: &Session, m: Message) -> (Obs, SendResultEntry) {
        let (top, entries) = self.send_many(s, vec![m]).await;
        match entries.into_iter().next() {
            Some(e) => (status_obs(e.status.as_ref()), e),
            None => (top.detail("no result entry"), SendResultEntry::default()),
        }
    }

    async fn receive_req(
        &self,
        s: &Session,
        req: ReceiveMessageRequest,
        deadline: Duration,
    ) -> Recv {
        use receive_message_response::Content;
        let t0 = Instant::now();
        let mut r = s.raw.req(req);
        r.set_timeout(deadline);
        let mut stream = match s.raw.messaging().receive_message(r).await {
            Ok(r) => r.into_inner(),
            Err(e) => {
                return Recv {
                    obs: Obs::transport(&e),
                    msgs: Vec::new(),
                    elapsed: t0.elapsed(),
                }
            }
        };
        let mut status: Option<Status> = None;
        let mut statuses = 0;
        let mut msgs = Vec::new();
        let mut error = None;
        loop {
            match stream.message().await {
                Ok(Some(frame)) => match frame.content {
                    Some(Content::Status(st)) => {
                        statuses += 1;
                        status = Some(st);
                    }
                    Some(Content::Message(m)) => msgs.push(m),
                    Some(Content::DeliveryTimestamp(_)) | None => {}
                },
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let mut obs = match (&error, &status) {
            (Some(e), None) => Obs::transport(e),
            _ => status_obs(status.as_ref()),
        };
        if let Some(e) = error.filter(|_| status.is_some()) {
            obs = obs.detail(format!("then gRPC {:?}", e.code()));
        }
        if statuses > 1 {
            obs = obs.detail(format!("{statuses} status frames"));
        }
        Recv {
            obs,
            msgs,
            elapsed: t0.elapsed(),
        }
    }

    fn recv_request(&self, group: &str, topic: &str, o: &RecvOpts) -> ReceiveMessageRequest {
        ReceiveMessageRequest {
            group: Some(resource(group)),
            message_queue: Some(self.queue(topic)),
            filter_expression: o.filter.clone(),
            batch_size: o.batch,
            invisible_duration: o.invisible_ms.map(dur_ms),
            auto_renew: false,
            long_polling_timeout: o.poll_ms.map(dur_ms),
            attempt_id: None,
        }
    }

    async fn receive(&self, s: &Session, topic: &str, o: RecvOpts) -> Recv {
        let group = s.group.clone().unwrap_or_default();
        let req = self.recv_request(&group, topic, &o);
        self.receive_req(s, req, o.deadline).await
    }

    async fn ack_entries(
        &self,
        s: &Session,
        group: &str,
        topic: &str,
        entries: Vec<(String, String)>,
    ) -> (Obs, Vec<Obs>) {
        let req = AckMessageRequest {
            group: Some(resource(group)),
            topic: Some(resource(topic)),
            entries: entries
                .into_iter()
                .map(|(message_id, receipt_handle)| AckMessageEntry {
                    message_id,
                    receipt_handle,
                    lite_topic: None,
                })
                .collect(),
        };
        match s.raw.messaging().ack_message(s.raw.req(req)).await {
            Err(e) => (Obs::transport(&e), Vec::new()),
            Ok(r) => {
                let r = r.into_inner();
                let each = r
                    .entries
                    .iter()
                    .map(|e| status_obs(e.status.as_ref()))
                    .collect();
                (status_obs(r.status.as_ref()), each)
            }
        }
    }

    /// Acks one handle; the entry's status (or the top-level one).
    async fn ack(&self, s: &Session, group: &str, topic: &str, m: &Message, handle: &str) -> Obs {
        let (top, each) = self
            .ack_entries(s, group, topic, vec![(sp(m).message_id, handle.to_owned())])
            .await;
        each.into_iter().next().unwrap_or(top)
    }

    async fn change(
        &self,
        s: &Session,
        group: &str,
        topic: &str,
        m: &Message,
        handle: &str,
        invisible: Option<prost_types::Duration>,
    ) -> (Obs, String) {
        let req = ChangeInvisibleDurationRequest {
            group: Some(resource(group)),
            topic: Some(resource(topic)),
            receipt_handle: handle.to_owned(),
            invisible_duration: invisible,
            message_id: sp(m).message_id,
            lite_topic: None,
            suspend: None,
        };
        match s
            .raw
            .messaging()
            .change_invisible_duration(s.raw.req(req))
            .await
        {
            Err(e) => (Obs::transport(&e), String::new()),
            Ok(r) => {
                let r = r.into_inner();
                (status_obs(r.status.as_ref()), r.receipt_handle)
            }
        }
    }

    /// Sends one message with a fresh body to `topic` and receives it for
    /// the consumer `s` (long invisible time). Other messages received on
    /// the way are acked and noted as strays.
    async fn fresh(&mut self, s: &Session, topic: &str, label: &str) -> anyhow::Result<Message> {
        let want = format!("{label}-{}", self.seq.fetch_add(1, Ordering::Relaxed));
        let m = self.msg(topic, MessageType::Normal, &want);
        let (sent, _) = self.send(&self.p, m).await;
        if !sent.is(Code::Ok) {
            bail!("send for {label}: {} {}", sent.outcome, sent.message);
        }
        let group = s.group.clone().unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let r = self
                .receive(s, topic, RecvOpts::new(32, LONG_INVISIBLE_MS, 5_000))
                .await;
            let mut found = None;
            for m in r.msgs {
                if body(&m) == want && found.is_none() {
                    found = Some(m);
                } else {
                    self.strays
                        .push(format!("{label}: {} (attempt {})", body(&m), attempt(&m)));
                    let h = handle_of(&m);
                    self.ack(s, &group, topic, &m, &h).await;
                }
            }
            if let Some(m) = found {
                return Ok(m);
            }
            if !r.obs.is(Code::Ok) && !r.obs.is(Code::MessageNotFound) {
                bail!("receive for {label}: {} {}", r.obs.outcome, r.obs.message);
            }
        }
        bail!("{label}: message not received within 30 s")
    }

    /// Receives (up to `within`) until a receive brings messages.
    async fn receive_some(&self, s: &Session, topic: &str, o: RecvOpts, within: Duration) -> Recv {
        let deadline = Instant::now() + within;
        let t0 = Instant::now();
        loop {
            let mut r = self.receive(s, topic, o.clone()).await;
            if !r.msgs.is_empty()
                || Instant::now() >= deadline
                || !(r.obs.is(Code::MessageNotFound) || r.obs.is(Code::Ok))
            {
                r.elapsed = t0.elapsed();
                return r;
            }
        }
    }

    /// Acks everything `s` can receive from `topic` (short polls).
    async fn drain(&mut self, s: &Session, topic: &str) -> usize {
        let group = s.group.clone().unwrap_or_default();
        let mut n = 0;
        for _ in 0..20 {
            let r = self
                .receive(s, topic, RecvOpts::new(32, 30_000, 5_000))
                .await;
            if r.msgs.is_empty() {
                break;
            }
            for m in &r.msgs {
                n += 1;
                self.ack(s, &group, topic, m, &handle_of(m)).await;
            }
        }
        n
    }
}

/// How a case spoils a genuine receipt handle.
#[derive(Clone, Copy)]
enum Spoil {
    Garbage,
    Empty,
    Truncated,
    Tampered,
    Genuine,
}

impl Spoil {
    fn apply(self, h: &str) -> String {
        match self {
            Spoil::Garbage => "garbage!!".into(),
            Spoil::Empty => String::new(),
            Spoil::Truncated => h.chars().take(h.chars().count() / 2).collect(),
            Spoil::Tampered => tamper(h),
            Spoil::Genuine => h.to_owned(),
        }
    }
}

/// A handle with one character changed in its middle (a digit for a digit,
/// a letter for a letter), so it keeps its shape.
fn tamper(h: &str) -> String {
    let mut b = h.as_bytes().to_vec();
    if b.is_empty() {
        return "x".into();
    }
    // The first alphanumeric byte at or after the middle.
    let start = b.len() / 2;
    let i = (start..b.len())
        .chain(0..start)
        .find(|&i| b[i].is_ascii_alphanumeric())
        .unwrap_or(start);
    b[i] = match b[i] {
        b'0'..=b'8' => b[i] + 1,
        b'9' => b'0',
        b'a'..=b'y' | b'A'..=b'Y' => b[i] + 1,
        b'z' => b'a',
        b'Z' => b'A',
        _ => b'A',
    };
    String::from_utf8_lossy(&b).into_owned()
}

// ---------------------------------------------------------------------------
// The cases

async fn probe(endpoint: &str) -> anyhow::Result<(Vec<(String, String, Obs)>, Vec<String>)> {
    let all: Vec<&str> = TOPICS
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t != "cmp-tx")
        .collect();
    let p = Session::open(endpoint, ClientType::Producer, None, &all).await?;
    let pt = Session::open(endpoint, ClientType::Producer, None, &["cmp-tx"]).await?;
    let c = Session::open(
        endpoint,
        ClientType::SimpleConsumer,
        Some("cmp-g"),
        &["cmp-normal"],
    )
    .await?;
    let c2 = Session::open(
        endpoint,
        ClientType::SimpleConsumer,
        Some("cmp-g2"),
        &["cmp-normal2"],
    )
    .await?;
    let cf = Session::open(
        endpoint,
        ClientType::SimpleConsumer,
        Some("cmp-fifo-g"),
        &["cmp-fifo"],
    )
    .await?;
    let cd = Session::open(
        endpoint,
        ClientType::SimpleConsumer,
        Some("cmp-delay-g"),
        &["cmp-delay"],
    )
    .await?;
    let mut pr = Probe {
        endpoint: endpoint.to_owned(),
        rows: Vec::new(),
        queues: BTreeMap::new(),
        seq: AtomicU64::new(1),
        strays: Vec::new(),
        p,
        pt,
        c,
        c2,
        cf,
        cd,
    };

    // Routes first, as every client starts with them. A topic just created
    // in RocketMQ reaches its name server's routes within seconds; wait for
    // that (60 s at most) rather than probe a half-ready system.
    for (t, _) in TOPICS {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r =
                pr.p.raw
                    .messaging()
                    .query_route(pr.p.raw.req(QueryRouteRequest {
                        topic: Some(resource(t)),
                        endpoints: Some(pr.p.raw.endpoints()),
                    }))
                    .await
                    .with_context(|| format!("QueryRoute {t}"))?
                    .into_inner();
            if let Some(q) = r.message_queues.first() {
                pr.queues.insert((*t).to_owned(), q.clone());
                break;
            }
            if Instant::now() >= deadline {
                bail!("no queue in the route of {t} within 60 s: {:?}", r.status);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // The orphan runs beside everything else: sent now, watched at the end.
    let orphan_sent = Instant::now();
    let orphan = pr.msg("cmp-tx", MessageType::Transaction, "orphan");
    let (orphan_obs, orphan_entry) = pr.send(&pr.pt, orphan.clone()).await;

    // Expired handles need 10 s (RocketMQ's shortest receive invisibility):
    // two messages on cmp-normal2 / cmp-g2, received now, used at the end.
    let no_settings = cases_no_settings(&mut pr).await;
    let expiring = {
        let e1 = pr.msg("cmp-normal2", MessageType::Normal, "expire-1");
        let e2 = pr.msg("cmp-normal2", MessageType::Normal, "expire-2");
        let e3 = pr.msg("cmp-normal2", MessageType::Normal, "expire-3");
        let (o, _) = pr.send_many(&pr.p, vec![e1, e2, e3]).await;
        let mut got = Vec::new();
        if o.is(Code::Ok) {
            let deadline = Instant::now() + Duration::from_secs(20);
            while got.len() < 3 && Instant::now() < deadline {
                let r = pr
                    .receive(&pr.c2, "cmp-normal2", RecvOpts::new(3, 10_000, 5_000))
                    .await;
                got.extend(r.msgs);
            }
        }
        (Instant::now(), got)
    };
    no_settings?;

    cases_route(&mut pr).await?;
    cases_batch(&mut pr).await?;
    cases_receive_params(&mut pr).await?;
    cases_ack(&mut pr).await?;
    cases_change(&mut pr).await?;
    cases_fifo(&mut pr).await?;
    cases_delay(&mut pr).await?;
    cases_tx(&mut pr).await?;
    cases_expired(&mut pr, expiring).await?;
    cases_other_rpcs(&mut pr).await?;
    cases_send(&mut pr).await?;

    // Long polling beyond the maximum, while the orphan check is awaited.
    let long_poll = {
        let mut o = RecvOpts::new(32, 30_000, 60_000);
        o.deadline = Duration::from_secs(70);
        pr.receive(&pr.c, "cmp-normal", o)
    };
    let orphan_wait = watch_orphan(&pr, &orphan, &orphan_entry, orphan_sent);
    let (lp, orphan_row) = tokio::join!(long_poll, orphan_wait);
    let lp_class = match lp.elapsed.as_secs() {
        0..=3 => "at once",
        4..=24 => "≈ 20 s (capped)",
        25..=40 => "≈ 30 s (capped)",
        41..=58 => "40–58 s",
        _ => "≈ 60 s (as asked)",
    };
    pr.row(
        "recv.long_poll_over_max",
        "ReceiveMessage, long_polling_timeout 60 s (deadline 70 s), nothing to receive",
        Obs::new(
            format!("{}, held {lp_class}", lp.obs.outcome),
            lp.obs.message.clone(),
        )
        .detail(format!("held {}", secs(lp.elapsed))),
    );
    let orphan_row = orphan_row.detail(format!("send: {}", orphan_obs.outcome));
    pr.row(
        "tx.orphan_first_check",
        "transaction half message never resolved: first RecoverOrphanedTransactionCommand on the producer's Telemetry",
        orphan_row,
    );
    Ok((pr.rows, pr.strays))
}

async fn watch_orphan(pr: &Probe, orphan: &Message, entry: &SendResultEntry, sent: Instant) -> Obs {
    let id = sp(orphan).message_id;
    let deadline = sent + Duration::from_secs(120);
    loop {
        let first = pr.pt.checks.lock().ok().and_then(|v| {
            v.iter()
                .find(|(_, c)| c.message.as_ref().map(|m| sp(m).message_id) == Some(id.clone()))
                .map(|(t, c)| (*t, c.clone()))
        });
        if let Some((at, cmd)) = first {
            let after = at.duration_since(sent);
            // Resolve it, as a checker would, so the server stops asking.
            let end = pr
                .pt
                .raw
                .messaging()
                .end_transaction(pr.pt.raw.req(EndTransactionRequest {
                    topic: Some(resource("cmp-tx")),
                    message_id: id.clone(),
                    transaction_id: cmd.transaction_id.clone(),
                    resolution: TransactionResolution::Rollback as i32,
                    source: TransactionSource::SourceServerCheck as i32,
                    trace_context: String::new(),
                }))
                .await;
            let end = match end {
                Ok(r) => status_obs(r.into_inner().status.as_ref()).outcome,
                Err(e) => Obs::transport(&e).outcome,
            };
            let digest = cmd
                .message
                .as_ref()
                .and_then(|m| sp(m).body_digest)
                .is_some();
            let class = match after.as_secs() {
                0..=4 => "before 5 s",
                5..=7 => "at ≈ 6 s",
                8..=40 => "within 8–40 s",
                _ => "after 40 s",
            };
            return Obs::new(format!("checked, first {class}"), "").detail(format!(
                "first check {} after the send; transaction_id {} the send's; body_digest {}; rollback answer {end}",
                secs(after),
                if cmd.transaction_id == entry.transaction_id { "=" } else { "≠" },
                if digest { "set" } else { "missing" },
            ));
        }
        if Instant::now() >= deadline {
            return Obs::new("no check within 120 s", "");
        }
        let wait = pr.pt.notify.notified();
        let _ = tokio::time::timeout(Duration::from_millis(500), wait).await;
    }
}

/// Calls from a client that never opened Telemetry (no Settings), and the
/// Telemetry exchange itself.
async fn cases_no_settings(pr: &mut Probe) -> anyhow::Result<()> {
    let fresh = Raw::connect(&pr.endpoint).await;
    let bare = Session {
        raw: fresh.clone(),
        group: Some("cmp-g2".into()),
        kind: ClientType::SimpleConsumer,
        telemetry: mpsc::channel(1).0,
        checks: Default::default(),
        notify: Default::default(),
        tasks: Vec::new(),
    };
    let (o, _) = pr
        .send(
            &bare,
            pr.msg("cmp-sink", MessageType::Normal, "no-settings"),
        )
        .await;
    pr.row(
        "session.send_without_settings",
        "SendMessage from a client that never sent Settings",
        o,
    );
    let r = pr
        .receive(&bare, "cmp-normal2", RecvOpts::new(1, 30_000, 5_000))
        .await;
    pr.row(
        "session.receive_without_settings",
        "ReceiveMessage from a client that never sent Settings",
        r.obs.detail(format!("{} msgs", r.msgs.len())),
    );
    let hb = fresh
        .messaging()
        .heartbeat(fresh.req(HeartbeatRequest {
            group: Some(resource("cmp-g2")),
            client_type: ClientType::SimpleConsumer as i32,
        }))
        .await;
    let o = match hb {
        Ok(r) => status_obs(r.into_inner().status.as_ref()),
        Err(e) => Obs::transport(&e),
    };
    pr.row(
        "session.heartbeat_without_settings",
        "Heartbeat from a client that never sent Settings",
        o,
    );
    let nt = fresh
        .messaging()
        .notify_client_termination(fresh.req(NotifyClientTerminationRequest {
            group: Some(resource("cmp-g2")),
        }))
        .await;
    let o = match nt {
        Ok(r) => status_obs(r.into_inner().status.as_ref()),
        Err(e) => Obs::transport(&e),
    };
    pr.row(
        "session.terminate_unknown_client",
        "NotifyClientTermination from a client that never sent Settings",
        o,
    );
    drop(bare);

    // Settings without pub_sub.
    let raw = Raw::connect(&pr.endpoint).await;
    let mut s = producer_settings(&raw, &["cmp-normal"]);
    s.pub_sub = None;
    let o = match open_telemetry(&raw, s).await {
        Err(o) => o,
        Ok((_tx, _in, reply)) => status_obs(reply.status.as_ref()),
    };
    pr.row(
        "telemetry.settings_without_pub_sub",
        "Telemetry: producer Settings without pub_sub",
        o,
    );
    // A simple consumer of a group that does not exist.
    let raw = Raw::connect(&pr.endpoint).await;
    let s = consumer_settings(&raw, "cmp-nogroup", &["cmp-normal"]);
    let o = match open_telemetry(&raw, s).await {
        Err(o) => o,
        Ok((_tx, _in, reply)) => status_obs(reply.status.as_ref()),
    };
    pr.row(
        "telemetry.unknown_group",
        "Telemetry: simple consumer Settings of an unknown group",
        o,
    );
    // A producer declaring a topic that does not exist.
    let raw = Raw::connect(&pr.endpoint).await;
    let s = producer_settings(&raw, &["cmp-notopic"]);
    let o = match open_telemetry(&raw, s).await {
        Err(o) => o,
        Ok((_tx, _in, reply)) => status_obs(reply.status.as_ref()),
    };
    pr.row(
        "telemetry.unknown_topic",
        "Telemetry: producer Settings naming an unknown topic",
        o,
    );
    // Client properties over the limits (more than 32 entries).
    let raw = Raw::connect(&pr.endpoint).await;
    let mut s = producer_settings(&raw, &["cmp-normal"]);
    for i in 0..40 {
        s.client_properties.insert(format!("k{i}"), "v".into());
    }
    let o = match open_telemetry(&raw, s).await {
        Err(o) => o,
        Ok((_tx, _in, reply)) => status_obs(reply.status.as_ref()),
    };
    pr.row(
        "telemetry.too_many_client_properties",
        "Telemetry: Settings with 40 client_properties (limit 32)",
        o,
    );
    Ok(())
}

async fn route(raw: &Raw, topic: &str, endpoints: Option<Endpoints>, header: bool) -> Obs {
    let msg = QueryRouteRequest {
        topic: Some(resource(topic)),
        endpoints,
    };
    let req = if header {
        raw.req(msg)
    } else {
        tonic::Request::new(msg)
    };
    match raw.messaging().query_route(req).await {
        Err(e) => Obs::transport(&e),
        Ok(r) => {
            let r = r.into_inner();
            let mut o = status_obs(r.status.as_ref());
            if !r.message_queues.is_empty() {
                let mut types: Vec<String> = r
                    .message_queues
                    .iter()
                    .flat_map(|q| q.accept_message_types.iter())
                    .map(|t| {
                        MessageType::try_from(*t)
                            .map(|t| t.as_str_name().to_owned())
                            .unwrap_or_else(|_| t.to_string())
                    })
                    .collect();
                types.sort();
                types.dedup();
                o.outcome = format!("{}, accepts {}", o.outcome, types.join("+"));
                o = o.detail(format!("{} queues", r.message_queues.len()));
            }
            o
        }
    }
}

async fn cases_route(pr: &mut Probe) -> anyhow::Result<()> {
    let raw = pr.p.raw.clone();
    let ep = Some(raw.endpoints());
    let cases: Vec<(&str, &str, String, Option<Endpoints>, bool)> = vec![
        (
            "route.ok",
            "QueryRoute of a NORMAL topic",
            "cmp-normal".into(),
            ep.clone(),
            true,
        ),
        (
            "route.fifo_ok",
            "QueryRoute of a FIFO topic",
            "cmp-fifo".into(),
            ep.clone(),
            true,
        ),
        (
            "route.unknown_topic",
            "QueryRoute of an unknown topic",
            "cmp-notopic".into(),
            ep.clone(),
            true,
        ),
        (
            "route.empty_topic",
            "QueryRoute with an empty topic name",
            String::new(),
            ep.clone(),
            true,
        ),
        (
            "route.bad_chars",
            "QueryRoute of \"bad topic!\" (invalid characters)",
            "bad topic!".into(),
            ep.clone(),
            true,
        ),
        (
            "route.too_long",
            "QueryRoute of a 200-character topic name",
            "t".repeat(200),
            ep.clone(),
            true,
        ),
        (
            "route.system_topic",
            "QueryRoute of RMQ_SYS_TRANS_HALF_TOPIC (a system topic)",
            "RMQ_SYS_TRANS_HALF_TOPIC".into(),
            ep.clone(),
            true,
        ),
        (
            "route.no_endpoints",
            "QueryRoute without endpoints",
            "cmp-normal".into(),
            None,
            true,
        ),
        (
            "route.no_client_id",
            "QueryRoute without the x-mq-client-id header",
            "cmp-normal".into(),
            ep.clone(),
            false,
        ),
    ];
    for (id, title, topic, endpoints, header) in cases {
        let o = route(&raw, &topic, endpoints, header).await;
        pr.row(id, title, o);
    }
    Ok(())
}

/// Batch sizes 0, 1, 1,000 and -1, each with 40 fresh messages waiting.
async fn cases_batch(pr: &mut Probe) -> anyhow::Result<()> {
    let c = pr.c.clone_ref();
    let stray = pr.drain(&c, "cmp-normal").await;
    if stray > 0 {
        pr.strays
            .push(format!("batch: {stray} left on cmp-normal before"));
    }
    for (id, title, batch) in [
        (
            "recv.batch_0",
            "ReceiveMessage with batch_size 0 (40 messages waiting)",
            0,
        ),
        (
            "recv.batch_1",
            "ReceiveMessage with batch_size 1 (40 waiting)",
            1,
        ),
        (
            "recv.batch_1000",
            "ReceiveMessage with batch_size 1,000 (40 waiting)",
            1000,
        ),
        (
            "recv.batch_negative",
            "ReceiveMessage with batch_size -1 (40 waiting)",
            -1,
        ),
    ] {
        let msgs: Vec<Message> = (0..40)
            .map(|i| pr.msg("cmp-normal", MessageType::Normal, &format!("{id}-{i}")))
            .collect();
        let (o, _) = pr.send_many(&pr.p, msgs).await;
        if !o.is(Code::Ok) {
            bail!("batch send: {} {}", o.outcome, o.message);
        }
        // Let both systems index the 40 before the receive under test.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = pr
            .receive(&c, "cmp-normal", RecvOpts::new(batch, 60_000, 5_000))
            .await;
        let n = r.msgs.len();
        let class = match n {
            0 => "0 msgs".to_owned(),
            40 => "all 40".to_owned(),
            n => format!("{n} msgs"),
        };
        pr.row(
            id,
            title,
            Obs::new(format!("{}, {class}", r.obs.outcome), r.obs.message.clone())
                .detail(r.obs.detail.clone())
                .detail(format!("answered after {}", secs(r.elapsed))),
        );
        if id == "recv.batch_1000" && n > 1 {
            // Ack them all in one request.
            let entries: Vec<(String, String)> = r
                .msgs
                .iter()
                .map(|m| (sp(m).message_id, handle_of(m)))
                .collect();
            let (top, each) = pr.ack_entries(&c, "cmp-g", "cmp-normal", entries).await;
            let ok = each.iter().filter(|o| o.is(Code::Ok)).count();
            pr.row(
                "ack.batch",
                "AckMessage with all the messages of one receive in one request",
                top.detail(format!("{ok} of {n} entries OK")),
            );
        } else {
            for m in &r.msgs {
                pr.ack(&c, "cmp-g", "cmp-normal", m, &handle_of(m)).await;
            }
        }
        pr.drain(&c, "cmp-normal").await;
    }
    Ok(())
}

impl Session {
    /// A second handle on the same client (same id, same stream), for
    /// calls that need `&mut Probe` and a session at once.
    fn clone_ref(&self) -> Session {
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

async fn cases_receive_params(pr: &mut Probe) -> anyhow::Result<()> {
    let c = pr.c.clone_ref();
    let base = RecvOpts::new(1, 30_000, 5_000);
    let mut cases: Vec<(&str, &str, ReceiveMessageRequest, Duration)> = vec![
        (
            "recv.unknown_group",
            "ReceiveMessage for an unknown group",
            pr.recv_request("cmp-nogroup", "cmp-normal", &base),
            base.deadline,
        ),
        (
            "recv.unknown_topic",
            "ReceiveMessage from an unknown topic",
            pr.recv_request("cmp-g", "cmp-notopic", &base),
            base.deadline,
        ),
        (
            "recv.empty_group",
            "ReceiveMessage with an empty group name",
            pr.recv_request("", "cmp-normal", &base),
            base.deadline,
        ),
        (
            "recv.system_group",
            "ReceiveMessage for group CID_RMQ_SYS_TRANS (a RocketMQ system group name)",
            pr.recv_request("CID_RMQ_SYS_TRANS", "cmp-normal", &base),
            base.deadline,
        ),
        (
            "recv.bad_group_chars",
            "ReceiveMessage for group \"bad group!\"",
            pr.recv_request("bad group!", "cmp-normal", &base),
            base.deadline,
        ),
    ];
    for (id, title, ms) in [
        (
            "recv.invisible_0",
            "ReceiveMessage with invisible_duration 0",
            Some(0),
        ),
        (
            "recv.invisible_negative",
            "ReceiveMessage with invisible_duration -5 s",
            Some(-5_000),
        ),
        (
            "recv.invisible_9s",
            "ReceiveMessage with invisible_duration 9 s (under RocketMQ's 10 s minimum)",
            Some(9_000),
        ),
        (
            "recv.invisible_huge",
            "ReceiveMessage with invisible_duration 13 h (over the 12 h maximum)",
            Some(13 * 3_600_000),
        ),
        (
            "recv.invisible_missing",
            "ReceiveMessage without invisible_duration (auto_renew false)",
            None,
        ),
    ] {
        let mut o = base.clone();
        o.invisible_ms = ms;
        cases.push((
            id,
            title,
            pr.recv_request("cmp-g", "cmp-normal", &o),
            o.deadline,
        ));
    }
    {
        let mut o = base.clone();
        o.poll_ms = Some(10_000);
        o.deadline = Duration::from_secs(2);
        cases.push((
            "recv.short_deadline",
            "ReceiveMessage, long_polling_timeout 10 s but a 2 s deadline",
            pr.recv_request("cmp-g", "cmp-normal", &o),
            o.deadline,
        ));
        let mut o = base.clone();
        o.poll_ms = None;
        o.deadline = Duration::from_secs(3);
        cases.push(("recv.go_default", "ReceiveMessage without long_polling_timeout, 3 s deadline (Go simple consumer's default)", pr.recv_request("cmp-g", "cmp-normal", &o), o.deadline));
    }
    for (id, title, kind, expr) in [
        (
            "recv.sql_filter",
            "ReceiveMessage with a SQL92 filter \"a > 1\"",
            FilterType::Sql,
            "a > 1",
        ),
        (
            "recv.bad_sql",
            "ReceiveMessage with an unparsable SQL92 filter",
            FilterType::Sql,
            "a >>> (",
        ),
        (
            "recv.tag_filter_or",
            "ReceiveMessage with tag filter \"a || b\"",
            FilterType::Tag,
            "a || b",
        ),
    ] {
        let mut o = base.clone();
        o.filter = Some(FilterExpression {
            r#type: kind as i32,
            expression: expr.into(),
        });
        cases.push((
            id,
            title,
            pr.recv_request("cmp-g", "cmp-normal", &o),
            o.deadline,
        ));
    }
    {
        let mut o = base.clone();
        o.filter = None;
        cases.push((
            "recv.no_filter",
            "ReceiveMessage without filter_expression",
            pr.recv_request("cmp-g", "cmp-normal", &o),
            o.deadline,
        ));
        let mut req = pr.recv_request("cmp-g", "cmp-normal", &base);
        req.message_queue = None;
        cases.push((
            "recv.no_queue",
            "ReceiveMessage without message_queue",
            req,
            base.deadline,
        ));
    }
    for (id, title, req, deadline) in cases {
        let r = pr.receive_req(&c, req, deadline).await;
        let obs = r.obs.detail(format!(
            "{} msgs, answered after {}",
            r.msgs.len(),
            secs(r.elapsed)
        ));
        // Anything received here is a stray: ack it so later cases are clean.
        for m in &r.msgs {
            pr.strays.push(format!("{id}: {}", body(m)));
            pr.ack(&c, "cmp-g", "cmp-normal", m, &handle_of(m)).await;
        }
        pr.row(id, title, obs);
    }
    Ok(())
}

async fn cases_ack(pr: &mut Probe) -> anyhow::Result<()> {
    let c = pr.c.clone_ref();
    // Good ack, then the same handle again.
    let m = pr.fresh(&c, "cmp-normal", "ack").await?;
    let h = handle_of(&m);
    let o = pr.ack(&c, "cmp-g", "cmp-normal", &m, &h).await;
    pr.row("ack.ok", "AckMessage with the handle just received", o);
    let o = pr.ack(&c, "cmp-g", "cmp-normal", &m, &h).await;
    pr.row(
        "ack.twice",
        "AckMessage of the same handle a second time",
        o,
    );

    // Bad handles; each time the genuine handle is tried afterwards.
    let bad = [
        (
            "ack.malformed",
            "AckMessage with a malformed handle \"garbage!!\"",
            Spoil::Garbage,
            "cmp-g",
            "cmp-normal",
        ),
        (
            "ack.empty_handle",
            "AckMessage with an empty handle",
            Spoil::Empty,
            "cmp-g",
            "cmp-normal",
        ),
        (
            "ack.truncated",
            "AckMessage with the first half of a genuine handle",
            Spoil::Truncated,
            "cmp-g",
            "cmp-normal",
        ),
        (
            "ack.tampered",
            "AckMessage with a genuine handle, one character changed in its middle",
            Spoil::Tampered,
            "cmp-g",
            "cmp-normal",
        ),
        (
            "ack.other_group",
            "AckMessage of a genuine handle of group cmp-g, sent for group cmp-g2",
            Spoil::Genuine,
            "cmp-g2",
            "cmp-normal",
        ),
        (
            "ack.other_topic",
            "AckMessage of a genuine handle of cmp-normal, sent for topic cmp-normal2",
            Spoil::Genuine,
            "cmp-g",
            "cmp-normal2",
        ),
        (
            "ack.unknown_group",
            "AckMessage of a genuine handle, for an unknown group",
            Spoil::Genuine,
            "cmp-nogroup",
            "cmp-normal",
        ),
        (
            "ack.unknown_topic",
            "AckMessage of a genuine handle, for an unknown topic",
            Spoil::Genuine,
            "cmp-g",
            "cmp-notopic",
        ),
    ];
    for (id, title, spoil, group, topic) in bad {
        let m = pr.fresh(&c, "cmp-normal", id).await?;
        let h = handle_of(&m);
        let o = pr.ack(&c, group, topic, &m, &spoil.apply(&h)).await;
        let after = pr.ack(&c, "cmp-g", "cmp-normal", &m, &h).await;
        pr.row(
            id,
            title,
            o.detail(format!("genuine ack afterwards: {}", after.outcome)),
        );
    }
    // The message id of another message with a genuine handle.
    let m = pr.fresh(&c, "cmp-normal", "ack-wrong-id").await?;
    let mut other = m.clone();
    if let Some(s) = other.system_properties.as_mut() {
        s.message_id = pr.next_id();
    }
    let o = pr
        .ack(&c, "cmp-g", "cmp-normal", &other, &handle_of(&m))
        .await;
    let again = pr.ack(&c, "cmp-g", "cmp-normal", &m, &handle_of(&m)).await;
    pr.row(
        "ack.wrong_message_id",
        "AckMessage with a genuine handle but another message's id",
        o.detail(format!(
            "ack with the right id afterwards: {}",
            again.outcome
        )),
    );
    // An ack request without entries.
    let (top, each) = pr.ack_entries(&c, "cmp-g", "cmp-normal", Vec::new()).await;
    pr.row(
        "ack.no_entries",
        "AckMessage with no entries",
        top.detail(format!("{} result entries", each.len())),
    );
    Ok(())
}

async fn cases_change(pr: &mut Probe) -> anyhow::Result<()> {
    let c = pr.c.clone_ref();
    // A good change; the old handle afterwards; the new one.
    let m = pr.fresh(&c, "cmp-normal", "cid").await?;
    let h = handle_of(&m);
    let (o, newh) = pr
        .change(
            &c,
            "cmp-g",
            "cmp-normal",
            &m,
            &h,
            Some(dur_ms(LONG_INVISIBLE_MS)),
        )
        .await;
    pr.row(
        "cid.ok",
        "ChangeInvisibleDuration (1 h) with the handle just received",
        o.detail(format!(
            "new handle {}",
            if newh.is_empty() {
                "empty"
            } else if newh == h {
                "= old"
            } else {
                "returned"
            }
        )),
    );
    let old = pr.ack(&c, "cmp-g", "cmp-normal", &m, &h).await;
    let new = pr.ack(&c, "cmp-g", "cmp-normal", &m, &newh).await;
    pr.row(
        "ack.old_handle_after_change",
        "AckMessage with the handle from before a ChangeInvisibleDuration",
        old.detail(format!(
            "ack with the new handle afterwards: {}",
            new.outcome
        )),
    );
    // A change after the ack (1 s): refused, or does the acked message come
    // back?
    let (o, _) = pr
        .change(&c, "cmp-g", "cmp-normal", &m, &newh, Some(dur_ms(1_000)))
        .await;
    let want = body(&m);
    let mut back = None;
    let t0 = Instant::now();
    while back.is_none() && t0.elapsed() < Duration::from_secs(12) {
        let r = pr
            .receive(
                &c,
                "cmp-normal",
                RecvOpts::new(32, LONG_INVISIBLE_MS, 5_000),
            )
            .await;
        for x in r.msgs {
            if body(&x) == want && back.is_none() {
                back = Some(x);
            } else {
                pr.strays.push(format!("cid.after_ack: {}", body(&x)));
                pr.ack(&c, "cmp-g", "cmp-normal", &x, &handle_of(&x)).await;
            }
        }
    }
    let after = match &back {
        Some(x) => {
            pr.ack(&c, "cmp-g", "cmp-normal", x, &handle_of(x)).await;
            format!("acked message delivered again (attempt {})", attempt(x))
        }
        None => "not delivered again".to_owned(),
    };
    pr.row(
        "cid.after_ack",
        "ChangeInvisibleDuration (1 s) after the message was acked; is it delivered again?",
        Obs::new(format!("{}, {after}", o.outcome), o.message.clone()),
    );

    let bad = [
        (
            "cid.malformed",
            "ChangeInvisibleDuration with a malformed handle \"garbage!!\"",
            Spoil::Garbage,
            "cmp-g",
            "cmp-normal",
        ),
        (
            "cid.empty_handle",
            "ChangeInvisibleDuration with an empty handle",
            Spoil::Empty,
            "cmp-g",
            "cmp-normal",
        ),
        (
            "cid.truncated",
            "ChangeInvisibleDuration with the first half of a genuine handle",
            Spoil::Truncated,
            "cmp-g",
            "cmp-normal",
        ),
        (
            "cid.tampered",
            "ChangeInvisibleDuration with a genuine handle, one character changed",
            Spoil::Tampered,
            "cmp-g",
            "cmp-normal",
        ),
        (
            "cid.other_group",
            "ChangeInvisibleDuration of a handle of cmp-g, for group cmp-g2",
            Spoil::Genuine,
            "cmp-g2",
            "cmp-normal",
        ),
        (
            "cid.other_topic",
            "ChangeInvisibleDuration of a handle of cmp-normal, for topic cmp-normal2",
            Spoil::Genuine,
            "cmp-g",
            "cmp-normal2",
        ),
    ];
    for (id, title, spoil, group, topic) in bad {
        let m = pr.fresh(&c, "cmp-normal", id).await?;
        let h = handle_of(&m);
        let sent = spoil.apply(&h);
        let (o, back) = pr
            .change(&c, group, topic, &m, &sent, Some(dur_ms(LONG_INVISIBLE_MS)))
            .await;
        let after = pr.ack(&c, "cmp-g", "cmp-normal", &m, &h).await;
        let back = if back.is_empty() {
            "empty"
        } else if back == sent {
            "the one sent"
        } else {
            "another"
        };
        pr.row(
            id,
            title,
            o.detail(format!(
                "handle returned: {back}; genuine ack afterwards: {}",
                after.outcome
            )),
        );
    }

    // Out-of-range durations; a message that becomes visible again is noted.
    for (id, title, d) in [
        (
            "cid.invisible_negative",
            "ChangeInvisibleDuration to -5 s",
            Some(dur_ms(-5_000)),
        ),
        (
            "cid.invisible_huge",
            "ChangeInvisibleDuration to 13 h (over the 12 h maximum)",
            Some(dur_ms(13 * 3_600_000)),
        ),
        (
            "cid.invisible_missing",
            "ChangeInvisibleDuration without invisible_duration",
            None,
        ),
    ] {
        let m = pr.fresh(&c, "cmp-normal", id).await?;
        let h = handle_of(&m);
        let (o, newh) = pr.change(&c, "cmp-g", "cmp-normal", &m, &h, d).await;
        let use_h = if o.is(Code::Ok) && !newh.is_empty() {
            newh
        } else {
            h
        };
        let after = pr.ack(&c, "cmp-g", "cmp-normal", &m, &use_h).await;
        pr.row(
            id,
            title,
            o.detail(format!("ack afterwards: {}", after.outcome)),
        );
    }

    // Nack: 0 s and 1 s, then how soon the message comes back.
    for (id, title, ms) in [
        (
            "cid.zero_redelivery",
            "ChangeInvisibleDuration to 0 (a nack), then receive: when does it come back",
            0,
        ),
        (
            "cid.nack_1s_redelivery",
            "ChangeInvisibleDuration to 1 s (the Java push consumer's nack), then receive",
            1_000,
        ),
    ] {
        let m = pr.fresh(&c, "cmp-normal", id).await?;
        let h = handle_of(&m);
        let t0 = Instant::now();
        let (o, _) = pr
            .change(&c, "cmp-g", "cmp-normal", &m, &h, Some(dur_ms(ms)))
            .await;
        if !o.is(Code::Ok) {
            pr.row(id, title, o);
            continue;
        }
        let want = body(&m);
        let mut back = None;
        while t0.elapsed() < Duration::from_secs(40) && back.is_none() {
            let r = pr
                .receive(
                    &c,
                    "cmp-normal",
                    RecvOpts::new(32, LONG_INVISIBLE_MS, 5_000),
                )
                .await;
            for x in r.msgs {
                if body(&x) == want && back.is_none() {
                    back = Some((t0.elapsed(), x));
                } else {
                    pr.strays.push(format!("{id}: {}", body(&x)));
                    pr.ack(&c, "cmp-g", "cmp-normal", &x, &handle_of(&x)).await;
                }
            }
        }
        let obs = match back {
            None => Obs::new("OK, not back within 40 s", o.message),
            Some((after, x)) => {
                pr.ack(&c, "cmp-g", "cmp-normal", &x, &handle_of(&x)).await;
                // On time: within a second of the asked-for delay.
                let class = if after.as_millis() <= ms as u128 + 1_000 {
                    "back on time"
                } else {
                    "back late"
                };
                Obs::new(format!("OK, {class}, attempt {}", attempt(&x)), o.message)
                    .detail(format!("back after {}", secs(after)))
            }
        };
        pr.row(id, title, obs);
    }
    Ok(())
}

async fn cases_fifo(pr: &mut Probe) -> anyhow::Result<()> {
    let cf = pr.cf.clone_ref();
    let group = "cmp-fifo-g";
    let topic = "cmp-fifo";
    let mut msgs = Vec::new();
    for i in 1..=3 {
        let mut m = pr.msg(topic, MessageType::Fifo, &format!("F{i}"));
        if let Some(s) = m.system_properties.as_mut() {
            s.message_group = Some("order-1".into());
        }
        msgs.push(m);
    }
    for m in msgs {
        let (o, _) = pr.send(&pr.p, m).await;
        if !o.is(Code::Ok) {
            bail!("fifo send: {} {}", o.outcome, o.message);
        }
    }
    // First receive, batch 1.
    let r = pr
        .receive_some(
            &cf,
            topic,
            RecvOpts::new(1, LONG_INVISIBLE_MS, 5_000),
            Duration::from_secs(20),
        )
        .await;
    let Some(first) = r.msgs.first().cloned() else {
        pr.row(
            "fifo.first",
            "FIFO: first receive of F1..F3 (one message group)",
            r.obs,
        );
        return Ok(());
    };
    pr.row(
        "fifo.first",
        "FIFO: first receive of F1..F3 (one message group), batch 1",
        Obs::new(
            format!("{}, {}", r.obs.outcome, body(&first)),
            r.obs.message.clone(),
        ),
    );
    // While F1 is in flight, nothing of its group.
    let r = pr
        .receive(&cf, topic, RecvOpts::new(32, LONG_INVISIBLE_MS, 5_000))
        .await;
    let bodies: Vec<String> = r.msgs.iter().map(body).collect();
    pr.row(
        "fifo.blocked_while_in_flight",
        "FIFO: receive while F1 is in flight",
        Obs::new(
            format!(
                "{}{}",
                r.obs.outcome,
                if bodies.is_empty() {
                    String::new()
                } else {
                    format!(", {}", bodies.join(" "))
                }
            ),
            r.obs.message.clone(),
        )
        .detail(format!("answered after {}", secs(r.elapsed))),
    );
    // Nack F1 (1 s): the same message must come first again.
    let t0 = Instant::now();
    let (o, _) = pr
        .change(
            &cf,
            group,
            topic,
            &first,
            &handle_of(&first),
            Some(dur_ms(1_000)),
        )
        .await;
    let mut next = None;
    if o.is(Code::Ok) {
        let r = pr
            .receive_some(
                &cf,
                topic,
                RecvOpts::new(1, LONG_INVISIBLE_MS, 5_000),
                Duration::from_secs(40),
            )
            .await;
        next = r.msgs.first().cloned();
    }
    let obs = match &next {
        None => Obs::new(
            format!("{}, nothing back within 40 s", o.outcome),
            o.message.clone(),
        ),
        Some(x) => Obs::new(
            format!("{}, then {} (attempt {})", o.outcome, body(x), attempt(x)),
            o.message.clone(),
        )
        .detail(format!("back after {}", secs(t0.elapsed()))),
    };
    pr.row(
        "fifo.nack_same_first",
        "FIFO: nack F1 (ChangeInvisibleDuration 1 s), receive: which message comes first",
        obs,
    );
    // Ack it and read the rest one by one: the order.
    let mut order = Vec::new();
    if let Some(x) = next {
        pr.ack(&cf, group, topic, &x, &handle_of(&x)).await;
        order.push(body(&x));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while order.len() < 3 && Instant::now() < deadline {
        let r = pr
            .receive(&cf, topic, RecvOpts::new(1, LONG_INVISIBLE_MS, 5_000))
            .await;
        for x in r.msgs {
            order.push(body(&x));
            pr.ack(&cf, group, topic, &x, &handle_of(&x)).await;
        }
    }
    pr.row(
        "fifo.order_after_nack",
        "FIFO: the order of F1..F3 after the nack (batch 1, each acked)",
        Obs::new(order.join(" "), ""),
    );

    // Two message groups in one queue: while A1 is in flight, is B1 free?
    for (b, g) in [("A1", "order-a"), ("B1", "order-b")] {
        let mut m = pr.msg(topic, MessageType::Fifo, b);
        if let Some(s) = m.system_properties.as_mut() {
            s.message_group = Some(g.into());
        }
        pr.send(&pr.p, m).await;
    }
    let r = pr
        .receive_some(
            &cf,
            topic,
            RecvOpts::new(1, LONG_INVISIBLE_MS, 5_000),
            Duration::from_secs(20),
        )
        .await;
    let first: Vec<String> = r.msgs.iter().map(body).collect();
    let second = pr
        .receive(&cf, topic, RecvOpts::new(1, LONG_INVISIBLE_MS, 5_000))
        .await;
    let then: Vec<String> = second.msgs.iter().map(body).collect();
    pr.row(
        "fifo.other_group_while_in_flight",
        "FIFO: A1 (group a) and B1 (group b) in one queue; receive (batch 1) while A1 is in flight",
        Obs::new(
            format!(
                "{}, {}",
                second.obs.outcome,
                if then.is_empty() {
                    "nothing".to_owned()
                } else {
                    then.join(" ")
                }
            ),
            second.obs.message.clone(),
        )
        .detail(format!(
            "first receive: {}; answered after {}",
            first.join(" "),
            secs(second.elapsed)
        )),
    );
    for x in r.msgs.iter().chain(second.msgs.iter()) {
        pr.ack(&cf, group, topic, x, &handle_of(x)).await;
    }
    pr.drain(&cf, topic).await;

    // How many of one group's messages does one receive hand out?
    let mut msgs = Vec::new();
    for i in 1..=3 {
        let mut m = pr.msg(topic, MessageType::Fifo, &format!("G{i}"));
        if let Some(s) = m.system_properties.as_mut() {
            s.message_group = Some("order-2".into());
        }
        msgs.push(m);
    }
    for m in msgs {
        pr.send(&pr.p, m).await;
    }
    let r = pr
        .receive_some(
            &cf,
            topic,
            RecvOpts::new(32, LONG_INVISIBLE_MS, 5_000),
            Duration::from_secs(20),
        )
        .await;
    let bodies: Vec<String> = r.msgs.iter().map(body).collect();
    pr.row(
        "fifo.batch_of_one_group",
        "FIFO: receive with batch 32 when G1..G3 of one message group wait",
        Obs::new(
            format!("{}, {}", r.obs.outcome, bodies.join(" ")),
            r.obs.message.clone(),
        ),
    );
    for x in &r.msgs {
        pr.ack(&cf, group, topic, x, &handle_of(x)).await;
    }
    pr.drain(&cf, topic).await;
    Ok(())
}

async fn cases_delay(pr: &mut Probe) -> anyhow::Result<()> {
    let cd = pr.cd.clone_ref();
    let group = "cmp-delay-g";
    let topic = "cmp-delay";
    // A delay message delivered; its recall afterwards (in flight, then acked).
    let mut m = pr.msg(topic, MessageType::Delay, "D1");
    let due = now_ts(2_000);
    if let Some(s) = m.system_properties.as_mut() {
        s.delivery_timestamp = Some(due);
    }
    let sent_at = Instant::now();
    let (o, entry) = pr.send(&pr.p, m).await;
    if !o.is(Code::Ok) {
        bail!("delay send: {} {}", o.outcome, o.message);
    }
    let mut got = None;
    let mut late = 0;
    while got.is_none() && sent_at.elapsed() < Duration::from_secs(30) {
        let r = pr
            .receive(&cd, topic, RecvOpts::new(1, LONG_INVISIBLE_MS, 5_000))
            .await;
        for x in r.msgs {
            if body(&x) == "D1" {
                late = sent_at.elapsed().as_millis() as i64 - 2_000;
                got = Some(x);
            } else {
                pr.strays.push(format!("delay: {}", body(&x)));
                pr.ack(&cd, group, topic, &x, &handle_of(&x)).await;
            }
        }
    }
    let obs = match &got {
        None => Obs::new("not delivered within 30 s", ""),
        Some(x) => {
            let class = if late < -100 {
                "early"
            } else if late <= 1_500 {
                "on time (≤ 1.5 s late)"
            } else {
                "late (> 1.5 s)"
            };
            Obs::new(format!("delivered {class}"), "").detail(format!(
                "{} ms after the due time; {}",
                late,
                body(x)
            ))
        }
    };
    pr.row(
        "delay.delivered_on_time",
        "DELAY message due in 2 s: when it is delivered",
        obs,
    );
    let recall = |pr: &Probe, handle: String| {
        let raw = pr.p.raw.clone();
        async move {
            match raw
                .messaging()
                .recall_message(raw.req(RecallMessageRequest {
                    topic: Some(resource(topic)),
                    recall_handle: handle,
                }))
                .await
            {
                Ok(r) => {
                    let r = r.into_inner();
                    status_obs(r.status.as_ref()).detail(if r.message_id.is_empty() {
                        "no message_id".to_owned()
                    } else {
                        "message_id returned".to_owned()
                    })
                }
                Err(e) => Obs::transport(&e),
            }
        }
    };
    let o = recall(pr, entry.recall_handle.clone()).await;
    let o = match &got {
        Some(x) => {
            let a = pr.ack(&cd, group, topic, x, &handle_of(x)).await;
            o.detail(format!(
                "ack of the delivered message afterwards: {}",
                a.outcome
            ))
        }
        None => o,
    };
    pr.row(
        "recall.delivered",
        "RecallMessage of a delay message already delivered (in flight)",
        o.detail(format!(
            "recall_handle {}",
            if entry.recall_handle.is_empty() {
                "missing"
            } else {
                "present"
            }
        )),
    );
    let o = recall(pr, entry.recall_handle.clone()).await;
    pr.row(
        "recall.delivered_acked",
        "RecallMessage of a delay message delivered and acked",
        o,
    );

    // A pending one recalled: never delivered; recalled twice.
    let mut m = pr.msg(topic, MessageType::Delay, "D2");
    if let Some(s) = m.system_properties.as_mut() {
        s.delivery_timestamp = Some(now_ts(4_000));
    }
    let (_, entry) = pr.send(&pr.p, m).await;
    let o = recall(pr, entry.recall_handle.clone()).await;
    let again = recall(pr, entry.recall_handle.clone()).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let r = pr
        .receive(&cd, topic, RecvOpts::new(32, LONG_INVISIBLE_MS, 5_000))
        .await;
    let came: Vec<String> = r.msgs.iter().map(body).collect();
    for x in &r.msgs {
        pr.ack(&cd, group, topic, x, &handle_of(x)).await;
    }
    pr.row(
        "recall.pending",
        "RecallMessage of a delay message not yet due",
        Obs::new(
            format!(
                "{}, {}",
                o.outcome,
                if came.iter().any(|b| b == "D2") {
                    "delivered anyway"
                } else {
                    "never delivered"
                }
            ),
            o.message.clone(),
        ),
    );
    pr.row(
        "recall.twice",
        "RecallMessage of the same handle a second time",
        again,
    );
    let o = recall(pr, "garbage!!".into()).await;
    pr.row(
        "recall.malformed",
        "RecallMessage with a malformed recall handle",
        o,
    );
    let o = recall(pr, String::new()).await;
    pr.row(
        "recall.empty",
        "RecallMessage with an empty recall handle",
        o,
    );
    Ok(())
}

async fn cases_tx(pr: &mut Probe) -> anyhow::Result<()> {
    let pt = pr.pt.clone_ref();
    let end = |pr: &Probe, id: String, tx: String, res: TransactionResolution| {
        let raw = pr.pt.raw.clone();
        async move {
            match raw
                .messaging()
                .end_transaction(raw.req(EndTransactionRequest {
                    topic: Some(resource("cmp-tx")),
                    message_id: id,
                    transaction_id: tx,
                    resolution: res as i32,
                    source: TransactionSource::SourceClient as i32,
                    trace_context: String::new(),
                }))
                .await
            {
                Ok(r) => status_obs(r.into_inner().status.as_ref()),
                Err(e) => Obs::transport(&e),
            }
        }
    };
    let m = pr.msg("cmp-tx", MessageType::Transaction, "T1");
    let id = sp(&m).message_id;
    let (o, entry) = pr.send(&pt, m).await;
    pr.row(
        "tx.send",
        "SendMessage of a TRANSACTION message",
        o.detail(format!(
            "transaction_id {}",
            if entry.transaction_id.is_empty() {
                "empty"
            } else {
                "returned"
            }
        )),
    );
    let o = end(
        pr,
        id.clone(),
        "garbage".into(),
        TransactionResolution::Commit,
    )
    .await;
    pr.row(
        "tx.unknown_transaction_id",
        "EndTransaction with a made-up transaction_id",
        o,
    );
    let o = end(pr, id.clone(), String::new(), TransactionResolution::Commit).await;
    pr.row(
        "tx.empty_transaction_id",
        "EndTransaction with an empty transaction_id",
        o,
    );
    let o = end(
        pr,
        id.clone(),
        entry.transaction_id.clone(),
        TransactionResolution::Commit,
    )
    .await;
    pr.row("tx.commit", "EndTransaction COMMIT", o);
    let o = end(
        pr,
        id.clone(),
        entry.transaction_id.clone(),
        TransactionResolution::Commit,
    )
    .await;
    pr.row("tx.commit_twice", "EndTransaction COMMIT a second time", o);
    let o = end(
        pr,
        id.clone(),
        entry.transaction_id.clone(),
        TransactionResolution::Rollback,
    )
    .await;
    pr.row(
        "tx.rollback_after_commit",
        "EndTransaction ROLLBACK after COMMIT",
        o,
    );

    // A genuine transaction id with another message's id.
    let m = pr.msg("cmp-tx", MessageType::Transaction, "T3");
    let (_, entry) = pr.send(&pt, m).await;
    let o = end(
        pr,
        pr.next_id(),
        entry.transaction_id.clone(),
        TransactionResolution::Commit,
    )
    .await;
    pr.row(
        "tx.other_message_id",
        "EndTransaction with a genuine transaction_id but another message id",
        o,
    );

    // UNSPECIFIED ("unknown yet", what the Python and Rust checkers send),
    // then the real answer.
    let m = pr.msg("cmp-tx", MessageType::Transaction, "T2");
    let id = sp(&m).message_id;
    let (_, entry) = pr.send(&pt, m).await;
    let o = end(
        pr,
        id.clone(),
        entry.transaction_id.clone(),
        TransactionResolution::Unspecified,
    )
    .await;
    pr.row(
        "tx.unspecified",
        "EndTransaction with resolution UNSPECIFIED",
        o,
    );
    let o = end(
        pr,
        id.clone(),
        entry.transaction_id.clone(),
        TransactionResolution::Rollback,
    )
    .await;
    pr.row(
        "tx.end_after_unspecified",
        "EndTransaction ROLLBACK after an UNSPECIFIED one",
        o,
    );
    Ok(())
}

/// Handles whose invisible time ran out (10 s, received at the start).
async fn cases_expired(pr: &mut Probe, expiring: (Instant, Vec<Message>)) -> anyhow::Result<()> {
    let c2 = pr.c2.clone_ref();
    let (at, msgs) = expiring;
    let wait = Duration::from_secs(12).saturating_sub(at.elapsed());
    tokio::time::sleep(wait).await;
    let find = |b: &str| msgs.iter().find(|m| body(m) == b).cloned();
    let (Some(e1), Some(e2), Some(e3)) = (find("expire-1"), find("expire-2"), find("expire-3"))
    else {
        pr.row(
            "ack.expired",
            "AckMessage with a handle whose invisible time (10 s) ran out",
            Obs::new("prober: the three messages were not received", ""),
        );
        return Ok(());
    };
    let o = pr
        .ack(&c2, "cmp-g2", "cmp-normal2", &e1, &handle_of(&e1))
        .await;
    pr.row(
        "ack.expired",
        "AckMessage with a handle whose invisible time (10 s) ran out, the message not received again yet",
        o.detail(format!("{} after the receive", secs(at.elapsed()))),
    );
    let (o, _) = pr
        .change(
            &c2,
            "cmp-g2",
            "cmp-normal2",
            &e2,
            &handle_of(&e2),
            Some(dur_ms(LONG_INVISIBLE_MS)),
        )
        .await;
    pr.row(
        "cid.expired",
        "ChangeInvisibleDuration with a handle whose invisible time (10 s) ran out, not received again yet",
        o,
    );
    // What comes back: E3 surely (nobody touched it), E1 and E2 if the
    // calls above were refused. Then the first delivery's handle of E3.
    let mut back: Vec<Message> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline && !back.iter().any(|m| body(m) == "expire-3") {
        let r = pr
            .receive(
                &c2,
                "cmp-normal2",
                RecvOpts::new(32, LONG_INVISIBLE_MS, 5_000),
            )
            .await;
        back.extend(r.msgs);
    }
    // A last short look for the other two.
    let r = pr
        .receive(
            &c2,
            "cmp-normal2",
            RecvOpts::new(32, LONG_INVISIBLE_MS, 5_000),
        )
        .await;
    back.extend(r.msgs);
    let mut seen: Vec<String> = back
        .iter()
        .map(|m| format!("{} (attempt {})", body(m), attempt(m)))
        .collect();
    seen.sort();
    pr.row(
        "expired.redelivered",
        "After ack.expired and cid.expired (and expire-3 left alone): what is delivered again",
        Obs::new(
            if seen.is_empty() {
                "none".to_owned()
            } else {
                seen.join(", ")
            },
            "",
        ),
    );
    for m in &back {
        let first = match body(m).as_str() {
            "expire-1" => handle_of(&e1),
            "expire-2" => handle_of(&e2),
            _ => handle_of(&e3),
        };
        let o = pr.ack(&c2, "cmp-g2", "cmp-normal2", m, &first).await;
        let new = pr.ack(&c2, "cmp-g2", "cmp-normal2", m, &handle_of(m)).await;
        if body(m) == "expire-3" {
            pr.row(
                "ack.old_handle_after_redelivery",
                "AckMessage with the first delivery's handle after the message was delivered again",
                o.detail(format!("ack with the new handle: {}", new.outcome)),
            );
        }
    }
    Ok(())
}

async fn cases_other_rpcs(pr: &mut Probe) -> anyhow::Result<()> {
    let c = pr.c.clone_ref();
    let dlq = |handle: String, group: &str, id: String| {
        let raw = c.raw.clone();
        let group = group.to_owned();
        async move {
            match raw
                .messaging()
                .forward_message_to_dead_letter_queue(raw.req(
                    ForwardMessageToDeadLetterQueueRequest {
                        group: Some(resource(&group)),
                        topic: Some(resource("cmp-normal")),
                        receipt_handle: handle,
                        message_id: id,
                        delivery_attempt: 1,
                        max_delivery_attempts: 16,
                        lite_topic: None,
                    },
                ))
                .await
            {
                Ok(r) => status_obs(r.into_inner().status.as_ref()),
                Err(e) => Obs::transport(&e),
            }
        }
    };
    let o = dlq("garbage!!".into(), "cmp-g", pr.next_id()).await;
    pr.row(
        "dlq.malformed",
        "ForwardMessageToDeadLetterQueue with a malformed handle",
        o,
    );
    let m = pr.fresh(&c, "cmp-normal", "dlq").await?;
    let o = dlq(handle_of(&m), "cmp-g", sp(&m).message_id).await;
    let again = pr.ack(&c, "cmp-g", "cmp-normal", &m, &handle_of(&m)).await;
    pr.row(
        "dlq.ok",
        "ForwardMessageToDeadLetterQueue with a genuine handle",
        o.detail(format!("ack afterwards: {}", again.outcome)),
    );
    for (id, title, topic, group) in [
        (
            "assignment.unknown_topic",
            "QueryAssignment for an unknown topic",
            "cmp-notopic",
            "cmp-g",
        ),
        (
            "assignment.unknown_group",
            "QueryAssignment for an unknown group",
            "cmp-normal",
            "cmp-nogroup",
        ),
        (
            "assignment.ok",
            "QueryAssignment of a NORMAL topic for its group",
            "cmp-normal",
            "cmp-g",
        ),
    ] {
        let r = c
            .raw
            .messaging()
            .query_assignment(c.raw.req(QueryAssignmentRequest {
                topic: Some(resource(topic)),
                group: Some(resource(group)),
                endpoints: Some(c.raw.endpoints()),
            }))
            .await;
        let o = match r {
            Ok(r) => {
                let r = r.into_inner();
                let mut o = status_obs(r.status.as_ref());
                if !r.assignments.is_empty() {
                    let ids: Vec<String> = r
                        .assignments
                        .iter()
                        .map(|a| {
                            a.message_queue
                                .as_ref()
                                .map(|q| q.id.to_string())
                                .unwrap_or_default()
                        })
                        .collect();
                    o = o.detail(format!("queue ids {}", ids.join(",")));
                }
                o
            }
            Err(e) => Obs::transport(&e),
        };
        pr.row(id, title, o);
    }
    Ok(())
}

async fn cases_send(pr: &mut Probe) -> anyhow::Result<()> {
    let p = pr.p.clone_ref();
    let sink = "cmp-sink";
    type Edit = Box<dyn Fn(&mut Message)>;
    fn e(f: impl Fn(&mut Message) + 'static) -> Edit {
        Box::new(f)
    }
    fn set(f: impl Fn(&mut SystemProperties) + 'static) -> Edit {
        Box::new(move |m: &mut Message| {
            if let Some(s) = m.system_properties.as_mut() {
                f(s)
            }
        })
    }
    let cases: Vec<(&str, &str, &str, MessageType, Edit)> = vec![
        (
            "send.ok",
            "SendMessage of a NORMAL message to a NORMAL topic",
            sink,
            MessageType::Normal,
            e(|_| {}),
        ),
        (
            "send.unknown_topic",
            "SendMessage to an unknown topic",
            "cmp-notopic",
            MessageType::Normal,
            e(|_| {}),
        ),
        (
            "send.empty_topic",
            "SendMessage with an empty topic name",
            "",
            MessageType::Normal,
            e(|_| {}),
        ),
        (
            "send.bad_topic_chars",
            "SendMessage to topic \"bad topic!\"",
            "bad topic!",
            MessageType::Normal,
            e(|_| {}),
        ),
        (
            "send.topic_too_long",
            "SendMessage to a 200-character topic name",
            "",
            MessageType::Normal,
            e(|m| m.topic = Some(resource(&"t".repeat(200)))),
        ),
        (
            "send.system_topic",
            "SendMessage to RMQ_SYS_TRANS_HALF_TOPIC",
            "RMQ_SYS_TRANS_HALF_TOPIC",
            MessageType::Normal,
            e(|_| {}),
        ),
        (
            "send.normal_to_fifo",
            "SendMessage: NORMAL message to a FIFO topic",
            "cmp-fifo",
            MessageType::Normal,
            e(|_| {}),
        ),
        (
            "send.fifo_to_normal",
            "SendMessage: FIFO message (with group) to a NORMAL topic",
            sink,
            MessageType::Fifo,
            set(|s| s.message_group = Some("grp".into())),
        ),
        (
            "send.fifo_without_group",
            "SendMessage: FIFO message without message_group to a FIFO topic",
            "cmp-fifo",
            MessageType::Fifo,
            e(|_| {}),
        ),
        (
            "send.fifo_group_64",
            "SendMessage: FIFO message with a 64-byte message_group",
            "cmp-fifo",
            MessageType::Fifo,
            set(|s| s.message_group = Some("g".repeat(64))),
        ),
        (
            "send.delay_to_normal",
            "SendMessage: DELAY message to a NORMAL topic",
            sink,
            MessageType::Delay,
            set(|s| s.delivery_timestamp = Some(now_ts(10_000))),
        ),
        (
            "send.normal_to_delay",
            "SendMessage: NORMAL message to a DELAY topic",
            "cmp-delay",
            MessageType::Normal,
            e(|_| {}),
        ),
        (
            "send.delay_without_timestamp",
            "SendMessage: DELAY message without delivery_timestamp",
            "cmp-delay",
            MessageType::Delay,
            e(|_| {}),
        ),
        (
            "send.tx_to_normal",
            "SendMessage: TRANSACTION message to a NORMAL topic",
            sink,
            MessageType::Transaction,
            e(|_| {}),
        ),
        (
            "send.normal_to_tx",
            "SendMessage: NORMAL message to a TRANSACTION topic",
            "cmp-tx",
            MessageType::Normal,
            e(|_| {}),
        ),
        (
            "send.type_unspecified",
            "SendMessage with message_type UNSPECIFIED to a NORMAL topic",
            sink,
            MessageType::Unspecified,
            e(|_| {}),
        ),
        (
            "send.normal_with_group",
            "SendMessage: NORMAL message carrying a message_group, to a NORMAL topic",
            sink,
            MessageType::Normal,
            set(|s| s.message_group = Some("grp".into())),
        ),
        (
            "send.normal_with_timestamp",
            "SendMessage: NORMAL message carrying a delivery_timestamp (10 s), to a NORMAL topic",
            sink,
            MessageType::Normal,
            set(|s| s.delivery_timestamp = Some(now_ts(10_000))),
        ),
        (
            "send.delay_past_pier_max",
            "SendMessage: delivery_timestamp 41 days ahead (Pier's max is 40 days)",
            "cmp-delay",
            MessageType::Delay,
            set(|s| s.delivery_timestamp = Some(now_ts(41 * 24 * 3_600_000))),
        ),
        (
            "send.delay_past_max",
            "SendMessage: delivery_timestamp 25 h ahead (RocketMQ's max is 24 h)",
            "cmp-delay",
            MessageType::Delay,
            set(|s| s.delivery_timestamp = Some(now_ts(25 * 3_600_000))),
        ),
        (
            "send.delay_23h",
            "SendMessage: delivery_timestamp 23 h ahead",
            "cmp-delay",
            MessageType::Delay,
            set(|s| s.delivery_timestamp = Some(now_ts(23 * 3_600_000))),
        ),
        (
            "send.delay_in_past",
            "SendMessage: delivery_timestamp 1 min in the past",
            "cmp-delay",
            MessageType::Delay,
            set(|s| s.delivery_timestamp = Some(now_ts(-60_000))),
        ),
        (
            "send.body_4mib",
            "SendMessage with a body of exactly 4 MiB",
            sink,
            MessageType::Normal,
            e(|m| m.body = vec![b'a'; MAX_BODY]),
        ),
        (
            "send.body_over_limit",
            "SendMessage with a body of 4 MiB + 1 byte",
            sink,
            MessageType::Normal,
            e(|m| m.body = vec![b'a'; MAX_BODY + 1]),
        ),
        (
            "send.body_empty",
            "SendMessage with an empty body",
            sink,
            MessageType::Normal,
            e(|m| m.body.clear()),
        ),
        (
            "send.reserved_property",
            "SendMessage with user property UNIQ_KEY (reserved)",
            sink,
            MessageType::Normal,
            e(|m| {
                m.user_properties.insert("UNIQ_KEY".into(), "v".into());
            }),
        ),
        (
            "send.reserved_property_delay",
            "SendMessage with user property TIMER_DELIVER_MS (reserved)",
            sink,
            MessageType::Normal,
            e(|m| {
                m.user_properties
                    .insert("TIMER_DELIVER_MS".into(), "1".into());
            }),
        ),
        (
            "send.property_control_char",
            "SendMessage with a property key containing \\u0001",
            sink,
            MessageType::Normal,
            e(|m| {
                m.user_properties.insert("a\u{1}".into(), "v".into());
            }),
        ),
        (
            "send.too_many_properties",
            "SendMessage with 129 user properties",
            sink,
            MessageType::Normal,
            e(|m| {
                for i in 0..129 {
                    m.user_properties.insert(format!("k{i}"), "v".into());
                }
            }),
        ),
        (
            "send.properties_too_large",
            "SendMessage with a 17 KiB user property",
            sink,
            MessageType::Normal,
            e(|m| {
                m.user_properties
                    .insert("big".into(), "v".repeat(17 * 1024));
            }),
        ),
        (
            "send.empty_message_id",
            "SendMessage with an empty message_id",
            sink,
            MessageType::Normal,
            set(|s| s.message_id.clear()),
        ),
        (
            "send.tag_with_bar",
            "SendMessage with tag \"a|b\"",
            sink,
            MessageType::Normal,
            set(|s| s.tag = Some("a|b".into())),
        ),
        (
            "send.blank_tag",
            "SendMessage with a blank tag",
            sink,
            MessageType::Normal,
            set(|s| s.tag = Some("  ".into())),
        ),
        (
            "send.blank_key",
            "SendMessage with an empty key",
            sink,
            MessageType::Normal,
            set(|s| s.keys = vec![String::new()]),
        ),
        (
            "send.key_control_char",
            "SendMessage with a key containing \\u0001",
            sink,
            MessageType::Normal,
            set(|s| s.keys = vec!["a\u{1}".into()]),
        ),
        (
            "send.no_system_properties",
            "SendMessage without system_properties",
            sink,
            MessageType::Normal,
            e(|m| m.system_properties = None),
        ),
        (
            "send.no_topic",
            "SendMessage without a topic",
            sink,
            MessageType::Normal,
            e(|m| m.topic = None),
        ),
    ];
    for (id, title, topic, kind, edit) in cases {
        let mut m = pr.msg(topic, kind, "x");
        edit(&mut m);
        let (o, _) = pr.send(&p, m).await;
        pr.row(id, title, o);
    }

    // Batches: empty, mixed topics, good ones.
    let (o, entries) = pr.send_many(&p, Vec::new()).await;
    pr.row(
        "send.batch_empty",
        "SendMessage with no messages",
        o.detail(format!("{} entries", entries.len())),
    );
    let mixed = vec![
        pr.msg(sink, MessageType::Normal, "a"),
        pr.msg("cmp-normal2", MessageType::Normal, "b"),
    ];
    let (o, entries) = pr.send_many(&p, mixed).await;
    pr.row(
        "send.batch_mixed_topics",
        "SendMessage batch of two messages to two topics",
        o.detail(format!("{} entries", entries.len())),
    );
    let two = vec![
        pr.msg(sink, MessageType::Normal, "a"),
        pr.msg(sink, MessageType::Normal, "b"),
    ];
    let (o, entries) = pr.send_many(&p, two).await;
    pr.row(
        "send.batch_ok",
        "SendMessage batch of two messages to one topic",
        Obs::new(
            format!("{}, {} result entries", o.outcome, entries.len()),
            o.message.clone(),
        ),
    );
    let mut bad = pr.msg(sink, MessageType::Normal, "b");
    bad.body.clear();
    let mixed = vec![pr.msg(sink, MessageType::Normal, "a"), bad];
    let (o, entries) = pr.send_many(&p, mixed).await;
    let each: Vec<String> = entries
        .iter()
        .map(|e| status_obs(e.status.as_ref()).outcome)
        .collect();
    pr.row(
        "send.batch_one_bad",
        "SendMessage batch: one good message and one with an empty body",
        Obs::new(
            format!("{} [{}]", o.outcome, each.join(", ")),
            o.message.clone(),
        ),
    );

    // No client id header.
    let m = pr.msg(sink, MessageType::Normal, "x");
    let r = p
        .raw
        .messaging()
        .send_message(tonic::Request::new(SendMessageRequest {
            messages: vec![m],
        }))
        .await;
    let o = match r {
        Ok(r) => status_obs(r.into_inner().status.as_ref()),
        Err(e) => Obs::transport(&e),
    };
    pr.row(
        "send.no_client_id",
        "SendMessage without the x-mq-client-id header",
        o,
    );

    // The same message id twice: both accepted? delivered twice?
    let c = pr.c.clone_ref();
    pr.drain(&c, "cmp-normal").await;
    let m = pr.msg("cmp-normal", MessageType::Normal, "dup");
    let (a, _) = pr.send(&p, m.clone()).await;
    let (b, _) = pr.send(&p, m.clone()).await;
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(12);
    while Instant::now() < deadline {
        let r = pr
            .receive(&c, "cmp-normal", RecvOpts::new(32, 30_000, 5_000))
            .await;
        if r.msgs.is_empty() && n > 0 {
            break;
        }
        for x in &r.msgs {
            if body(x) == "dup" {
                n += 1;
            }
            pr.ack(&c, "cmp-g", "cmp-normal", x, &handle_of(x)).await;
        }
    }
    pr.row(
        "send.duplicate_message_id",
        "SendMessage of the same message (same message_id) twice, then receive",
        Obs::new(
            format!("{} + {}, delivered {n}×", a.outcome, b.outcome),
            b.message.clone(),
        ),
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// The table

/// An argued difference: applies while both systems still answer what it
/// was written for (`*` = anything; a trailing `*` = a prefix).
struct Verdict {
    id: &'static str,
    rocketmq: &'static str,
    pier: &'static str,
    better: bool,
    why: &'static str,
}

const VERDICTS: &[Verdict] = &[
    Verdict {
        id: "session.receive_without_settings",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "MESSAGE_NOT_FOUND",
        better: true,
        why: "Pier serves a receive from a client that skipped the Settings exchange (a raw gRPC client, grpcurl, a probe); RocketMQ's proxy dereferences the settings it does not have and answers INTERNAL_SERVER_ERROR (a NullPointerException).",
    },
    Verdict {
        id: "session.heartbeat_without_settings",
        rocketmq: "UNRECOGNIZED_CLIENT_TYPE",
        pier: "OK",
        better: true,
        why: "protocol.md §4.6: the Go client sends an empty Heartbeat as a health probe while it rebuilds a broken Telemetry stream and expects OK, and Rust 5.0.0 panics in its heartbeat task on a code it does not expect. A heartbeat carries nothing that needs the settings.",
    },
    Verdict {
        id: "session.terminate_unknown_client",
        rocketmq: "UNRECOGNIZED_CLIENT_TYPE",
        pier: "OK",
        better: true,
        why: "A client shutting down gains nothing from an error about settings it never sent (Rust 5.0.0 returns it from shutdown() to the user); Pier answers OK and drops whatever it holds for the client.",
    },
    Verdict {
        id: "telemetry.settings_without_pub_sub",
        rocketmq: "gRPC InvalidArgument",
        pier: "OK",
        better: false,
        why: "No official client sends Settings without pub_sub. Pier answers with complete producer settings (a producer that declared no topics, which is legal) instead of ending the stream; RocketMQ ends it with INVALID_ARGUMENT. Neither answer is wrong; Pier's keeps a sloppy client working.",
    },
    Verdict {
        id: "telemetry.unknown_group",
        rocketmq: "gRPC InvalidArgument",
        pier: "OK",
        better: true,
        why: "A consumer of a group that does not exist yet starts, and every receive answers CONSUMER_GROUP_NOT_FOUND with the command that creates the group; once it exists the running consumer consumes without a restart. RocketMQ ends the Telemetry stream, so the client's startup fails.",
    },
    Verdict {
        id: "route.no_endpoints",
        rocketmq: "OK, accepts NORMAL",
        pier: "ILLEGAL_ACCESS_POINT",
        better: false,
        why: "Pier answers a route by echoing the access point the client was configured with, so scheme and host spelling match what the client dialled (Rust 5.0.0 needs that, protocol.md §8); without it there is nothing correct to echo (behind a load balancer the server's own address is not what clients should dial), so it names the missing field. RocketMQ answers with its own address. Every official client sends endpoints.",
    },
    Verdict {
        id: "recv.batch_0",
        rocketmq: "MESSAGE_NOT_FOUND, 0 msgs",
        pier: "OK, 32 msgs",
        better: true,
        why: "Node 1.0.8 push consumers ask for batch_size 0 when Settings leave receive_batch_size unset (protocol.md §4.9.2): Pier reads 0 as its default batch (32) and delivers; RocketMQ holds the poll for 5 s and returns nothing although 40 messages wait.",
    },
    Verdict {
        id: "recv.batch_1000",
        rocketmq: "OK, 32 msgs",
        pier: "OK, all 40",
        better: true,
        why: "Both return at most what was asked; Pier caps a batch at 1,024, RocketMQ silently at 32, so a consumer that asks for more gets it in fewer round trips.",
    },
    Verdict {
        id: "recv.batch_negative",
        rocketmq: "INTERNAL_SERVER_ERROR, 0 msgs",
        pier: "OK, 32 msgs",
        better: true,
        why: "RocketMQ fails inside (an ArrayList of capacity -1, INTERNAL_SERVER_ERROR); Pier reads any batch_size ≤ 0 as its default, as for Node's 0.",
    },
    Verdict {
        id: "recv.unknown_group",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "CONSUMER_GROUP_NOT_FOUND",
        better: true,
        why: "The code made for it (StatusCode.md: ReceiveMessage → CONSUMER_GROUP_NOT_FOUND), with the command that creates the group; RocketMQ wraps its own \"subscription group does not exist\" into INTERNAL_SERVER_ERROR.",
    },
    Verdict {
        id: "recv.unknown_topic",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "TOPIC_NOT_FOUND",
        better: true,
        why: "TOPIC_NOT_FOUND with the command that creates the topic; RocketMQ hits a NullPointerException (INTERNAL_SERVER_ERROR).",
    },
    Verdict {
        id: "recv.invisible_9s",
        rocketmq: "ILLEGAL_INVISIBLE_TIME",
        pier: "MESSAGE_NOT_FOUND",
        better: true,
        why: "Pier accepts a receive's invisible duration from 1 s (RocketMQ from 10 s), so a simple consumer can ask for quick retries; the upper bound (12 h) and the refusal of 0 and negative values are the same.",
    },
    Verdict {
        id: "recv.short_deadline",
        rocketmq: "ILLEGAL_POLLING_TIME",
        pier: "MESSAGE_NOT_FOUND",
        better: true,
        why: "protocol.md §4.9.3: with less than 5 s of deadline RocketMQ answers ILLEGAL_POLLING_TIME; Pier polls for what the deadline allows and answers MESSAGE_NOT_FOUND just before it, which every client reads as \"nothing yet\".",
    },
    Verdict {
        id: "recv.go_default",
        rocketmq: "ILLEGAL_POLLING_TIME",
        pier: "MESSAGE_NOT_FOUND",
        better: true,
        why: "The Go simple consumer's default (await duration 0: a 3 s deadline, no long_polling_timeout) gets ILLEGAL_POLLING_TIME from RocketMQ on every receive, which Go hands to the user as an error; Pier polls within the deadline and answers MESSAGE_NOT_FOUND (protocol.md §4.9.2-3).",
    },
    Verdict {
        id: "recv.sql_filter",
        rocketmq: "MESSAGE_NOT_FOUND",
        pier: "ILLEGAL_FILTER_EXPRESSION",
        better: false,
        why: "A missing feature, not a choice: Pier does not evaluate SQL92 filters yet. It refuses them up front with the protocol's code and says so, rather than accept a filter it cannot apply.",
    },
    Verdict {
        id: "recv.bad_sql",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "ILLEGAL_FILTER_EXPRESSION",
        better: true,
        why: "ILLEGAL_FILTER_EXPRESSION is the code for a filter that cannot be used (Pier does not take SQL92 at all, row above); RocketMQ reports its parse failure as INTERNAL_SERVER_ERROR.",
    },
    Verdict {
        id: "recv.no_queue",
        rocketmq: "ILLEGAL_TOPIC",
        pier: "BAD_REQUEST",
        better: true,
        why: "BAD_REQUEST is the protocol's code for a missing field and the message names it (message_queue); RocketMQ reports a blank topic, a field the request does not have.",
    },
    Verdict {
        id: "ack.twice",
        rocketmq: "OK",
        pier: "INVALID_RECEIPT_HANDLE",
        better: true,
        why: "The second ack did nothing; Pier says so with the code the protocol gives an already-acked handle (StatusCode.md). RocketMQ answers OK to any handle that parses (see also ack.tampered).",
    },
    Verdict {
        id: "cid.after_ack",
        rocketmq: "OK, acked message delivered again*",
        pier: "INVALID_RECEIPT_HANDLE, not delivered again",
        better: true,
        why: "The message is gone; changing its invisibility cannot take effect, and Pier says so. RocketMQ answers OK and brings the acked message back: it is delivered again once the new invisible time ends (the same happened in an earlier run with 30 s).",
    },
    Verdict {
        id: "ack.malformed",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "INVALID_RECEIPT_HANDLE",
        better: true,
        why: "INVALID_RECEIPT_HANDLE is what clients act on: the Java push consumer retries a failed ack every second forever unless the code is INVALID_RECEIPT_HANDLE. RocketMQ's handle parser throws and the proxy answers INTERNAL_SERVER_ERROR.",
    },
    Verdict {
        id: "ack.empty_handle",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "INVALID_RECEIPT_HANDLE",
        better: true,
        why: "As ack.malformed.",
    },
    Verdict {
        id: "ack.truncated",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "INVALID_RECEIPT_HANDLE",
        better: true,
        why: "As ack.malformed.",
    },
    Verdict {
        id: "cid.malformed",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "INVALID_RECEIPT_HANDLE",
        better: true,
        why: "As ack.malformed; Pier also hands the sent handle back (Java and Python overwrite their stored handle with whatever comes back, protocol.md §4.9.5), RocketMQ an empty one.",
    },
    Verdict {
        id: "cid.empty_handle",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "INVALID_RECEIPT_HANDLE",
        better: true,
        why: "As cid.malformed.",
    },
    Verdict {
        id: "cid.truncated",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "INVALID_RECEIPT_HANDLE",
        better: true,
        why: "As cid.malformed.",
    },
    Verdict {
        id: "dlq.malformed",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "INVALID_RECEIPT_HANDLE",
        better: true,
        why: "As ack.malformed.",
    },
    Verdict {
        id: "ack.tampered",
        rocketmq: "OK",
        pier: "INVALID_RECEIPT_HANDLE",
        better: true,
        why: "Pier's handles are authenticated (an HMAC shared by the proxies, design.md), so an altered one is refused; RocketMQ's handle is plain text fields, and it acks whatever the altered fields point at and answers OK.",
    },
    Verdict {
        id: "cid.tampered",
        rocketmq: "OK",
        pier: "INVALID_RECEIPT_HANDLE",
        better: true,
        why: "As ack.tampered.",
    },
    Verdict {
        id: "ack.other_group",
        rocketmq: "OK",
        pier: "INVALID_RECEIPT_HANDLE",
        better: true,
        why: "The handle names the group it was issued to; RocketMQ answers OK to another group's ack while the message stays in flight for the right one.",
    },
    Verdict {
        id: "cid.other_group",
        rocketmq: "OK",
        pier: "INVALID_RECEIPT_HANDLE",
        better: true,
        why: "As ack.other_group.",
    },
    Verdict {
        id: "ack.unknown_group",
        rocketmq: "OK",
        pier: "INVALID_RECEIPT_HANDLE",
        better: true,
        why: "As ack.other_group: RocketMQ says OK even for a group that does not exist.",
    },
    Verdict {
        id: "ack.other_topic",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "INVALID_RECEIPT_HANDLE",
        better: true,
        why: "The handle names its topic; Pier says the handle does not belong there, RocketMQ fails inside (INTERNAL_SERVER_ERROR).",
    },
    Verdict {
        id: "ack.unknown_topic",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "INVALID_RECEIPT_HANDLE",
        better: true,
        why: "As ack.other_topic.",
    },
    Verdict {
        id: "cid.other_topic",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "INVALID_RECEIPT_HANDLE",
        better: true,
        why: "As ack.other_topic.",
    },
    Verdict {
        id: "ack.no_entries",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "BAD_REQUEST",
        better: true,
        why: "An ack with nothing to ack is a bad request, and Pier says which part is missing; RocketMQ answers INTERNAL_SERVER_ERROR.",
    },
    Verdict {
        id: "cid.invisible_missing",
        rocketmq: "OK",
        pier: "ILLEGAL_INVISIBLE_TIME",
        better: true,
        why: "A missing duration is refused with the code for it; RocketMQ takes it as 0 and returns a handle that is already expired (its ack then fails).",
    },
    Verdict {
        id: "cid.zero_redelivery",
        rocketmq: "OK, back late, attempt 2",
        pier: "OK, back on time, attempt 2",
        better: true,
        why: "Pier makes a nacked message visible at the asked time (millisecond timers); RocketMQ's revive service brings it back about 2 s later than asked.",
    },
    Verdict {
        id: "cid.nack_1s_redelivery",
        rocketmq: "OK, back late, attempt 2",
        pier: "OK, back on time, attempt 2",
        better: true,
        why: "As cid.zero_redelivery.",
    },
    Verdict {
        id: "fifo.batch_of_one_group",
        rocketmq: "OK, G1 G2 G3",
        pier: "OK, G1",
        better: false,
        why: "By design (design.md, FIFO lanes): Pier keeps at most one message of a message group in flight per consumer group, so a consumer that fails midway can never see a later message of the group before the earlier one is acked; RocketMQ hands out the whole run and relies on the client to process it in order. The cost is one round trip per message within a group; message groups never wait for each other (fifo.other_group_while_in_flight).",
    },
    Verdict {
        id: "fifo.other_group_while_in_flight",
        rocketmq: "MESSAGE_NOT_FOUND, nothing",
        pier: "OK, B1",
        better: true,
        why: "Message groups that share a queue do not block each other in Pier; RocketMQ locks the whole queue while one message of it is in flight, so B1 waits for A1's ack.",
    },
    Verdict {
        id: "recall.delivered",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "NOT_FOUND",
        better: true,
        why: "A recall that can no longer take effect (the message is due and was delivered) is refused by both: Pier with NOT_FOUND and the reason, RocketMQ with INTERNAL_SERVER_ERROR (\"recall failed, timestamp invalid\").",
    },
    Verdict {
        id: "recall.delivered_acked",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "NOT_FOUND",
        better: true,
        why: "As recall.delivered.",
    },
    Verdict {
        id: "recall.twice",
        rocketmq: "OK",
        pier: "NOT_FOUND",
        better: true,
        why: "The first recall removed the message; a second has nothing to recall, and Pier says so. RocketMQ answers OK again.",
    },
    Verdict {
        id: "recall.malformed",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "BAD_REQUEST",
        better: true,
        why: "A handle that does not parse is the client's error (BAD_REQUEST, saying why); RocketMQ answers INTERNAL_SERVER_ERROR.",
    },
    Verdict {
        id: "recall.empty",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "BAD_REQUEST",
        better: true,
        why: "As recall.malformed.",
    },
    Verdict {
        id: "tx.unknown_transaction_id",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "INVALID_TRANSACTION_ID",
        better: true,
        why: "INVALID_TRANSACTION_ID is the protocol's code for an unknown transaction (StatusCode.md); RocketMQ answers INTERNAL_SERVER_ERROR (\"cannot found transaction data\").",
    },
    Verdict {
        id: "tx.commit_twice",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "INVALID_TRANSACTION_ID",
        better: true,
        why: "As tx.unknown_transaction_id: the transaction is already resolved.",
    },
    Verdict {
        id: "tx.rollback_after_commit",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "INVALID_TRANSACTION_ID",
        better: true,
        why: "As tx.commit_twice.",
    },
    Verdict {
        id: "tx.end_after_unspecified",
        rocketmq: "INTERNAL_SERVER_ERROR",
        pier: "OK",
        better: true,
        why: "UNSPECIFIED is what the Python 5.1.2 and Rust 5.0.0 checkers send for \"unknown\" (protocol.md §4.11); Pier keeps the transaction pending, so the real answer still works. RocketMQ's proxy drops its record of the transaction on the UNSPECIFIED end, so the later ROLLBACK fails and only a broker check can resolve it.",
    },
    Verdict {
        id: "ack.expired",
        rocketmq: "INVALID_RECEIPT_HANDLE",
        pier: "OK",
        better: true,
        why: "The invisible time ran out but nobody received the message again, so this delivery is still the current one: Pier accepts the ack and the message is not delivered twice (expired.redelivered). RocketMQ refuses and redelivers. Once the message was delivered again both refuse the old handle (ack.old_handle_after_redelivery).",
    },
    Verdict {
        id: "cid.expired",
        rocketmq: "INVALID_RECEIPT_HANDLE",
        pier: "OK",
        better: true,
        why: "As ack.expired: a late extension of a delivery nobody else has taken still works.",
    },
    Verdict {
        id: "expired.redelivered",
        rocketmq: "*",
        pier: "expire-3 (attempt 2)",
        better: true,
        why: "The consequence of ack.expired and cid.expired: in Pier only the message nobody acked comes back; in RocketMQ all three are delivered again.",
    },
    Verdict {
        id: "assignment.unknown_group",
        rocketmq: "OK",
        pier: "CONSUMER_GROUP_NOT_FOUND",
        better: true,
        why: "A push consumer of a missing group learns it at once; RocketMQ assigns queues and its receives then fail with INTERNAL_SERVER_ERROR (recv.unknown_group).",
    },
    Verdict {
        id: "send.unknown_topic",
        rocketmq: "MESSAGE_PROPERTY_CONFLICT_WITH_TYPE",
        pier: "TOPIC_NOT_FOUND",
        better: true,
        why: "The topic does not exist, and Pier says so with the command that creates it; RocketMQ blames the message type (\"the expected type is UNSPECIFIED\").",
    },
    Verdict {
        id: "send.delay_past_max",
        rocketmq: "ILLEGAL_DELIVERY_TIME",
        pier: "OK",
        better: true,
        why: "Pier's delay timers hold a message up to 40 days (configurable, max_delay_ms); RocketMQ's proxy stops at 24 h. Past Pier's own limit it refuses the same way (send.delay_past_pier_max).",
    },
    Verdict {
        id: "send.blank_key",
        rocketmq: "OK",
        pier: "ILLEGAL_MESSAGE_KEY",
        better: true,
        why: "The protocol gives a blank key ILLEGAL_MESSAGE_KEY (StatusCode.md) and the official clients refuse one before sending; RocketMQ 5.5.0 stores it, a key nobody can look up.",
    },
    Verdict {
        id: "send.no_system_properties",
        rocketmq: "ILLEGAL_MESSAGE_ID",
        pier: "MESSAGE_CORRUPTED",
        better: true,
        why: "MESSAGE_CORRUPTED (a malformed message) names the real problem: there are no system_properties at all, not just no message id.",
    },
    Verdict {
        id: "send.batch_ok",
        rocketmq: "OK, 1 result entries",
        pier: "OK, 2 result entries",
        better: true,
        why: "One result per message, as the protocol defines for SendMessage (protocol.md §4.1; Rust 5.0.0 indexes the entries); RocketMQ answers a two-message batch with one entry.",
    },
    Verdict {
        id: "send.batch_one_bad",
        rocketmq: "MESSAGE_BODY_EMPTY []",
        pier: "MULTIPLE_RESULTS [OK, MESSAGE_BODY_EMPTY]",
        better: false,
        why: "Pier checks and stores each message of a batch on its own and reports each (MULTIPLE_RESULTS with one entry per message, as the protocol defines); RocketMQ refuses the whole batch, without entries. Either is consistent; no official 5.x client sends multi-message batches.",
    },
    Verdict {
        id: "tx.orphan_first_check",
        rocketmq: "*",
        pier: "checked, first at ≈ 6 s",
        better: true,
        why: "Pier checks an unresolved half message when it is 6 s old (RocketMQ's own transactionTimeOut), then at growing intervals; RocketMQ's checker only runs every 30 s, so its first check comes 6 to 36 s after the send.",
    },
];

fn matches(pattern: &str, seen: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => seen.starts_with(prefix),
        None => pattern == seen,
    }
}

fn cell(s: &str, max: usize) -> String {
    let s: String = s.replace('|', "\\|").replace('\n', " ");
    if s.chars().count() > max {
        let t: String = s.chars().take(max).collect();
        format!("{t}…")
    } else {
        s
    }
}

fn load(path: &str) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {path}"))?;
    serde_json::from_str(&text).with_context(|| format!("parse {path}"))
}

fn table(args: &Args) -> anyhow::Result<bool> {
    let rmq = load(args.get("--rocketmq")?)?;
    let pier = load(args.get("--pier")?)?;
    let by_id = |v: &Value| -> BTreeMap<String, Value> {
        v["cases"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (c["id"].as_str().unwrap_or_default().to_owned(), c.clone()))
            .collect()
    };
    let (r, p) = (by_id(&rmq), by_id(&pier));
    let order: Vec<(String, String)> = pier["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or_default().to_owned(),
                c["title"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut rows = String::new();
    let (mut same, mut better, mut different, mut unexplained) = (0, 0, 0, 0);
    let mut notes = String::new();
    let show = |c: Option<&Value>| -> (String, String) {
        match c {
            None => ("(not run)".into(), String::new()),
            Some(c) => {
                let msg = c["message"].as_str().unwrap_or_default();
                let det = c["detail"].as_str().unwrap_or_default();
                let text = match (msg.is_empty(), det.is_empty()) {
                    (true, true) => String::new(),
                    (false, true) => format!("“{}”", cell(msg, 110)),
                    (true, false) => cell(det, 160),
                    (false, false) => format!("“{}” — {}", cell(msg, 110), cell(det, 160)),
                };
                (
                    format!("`{}`", cell(c["outcome"].as_str().unwrap_or_default(), 80)),
                    text,
                )
            }
        }
    };
    for (i, (id, title)) in order.iter().enumerate() {
        let (rc, rm) = show(r.get(id));
        let (pc, pm) = show(p.get(id));
        let ro = r
            .get(id)
            .and_then(|c| c["outcome"].as_str())
            .unwrap_or("(not run)");
        let po = p
            .get(id)
            .and_then(|c| c["outcome"].as_str())
            .unwrap_or("(not run)");
        let verdict = if ro == po {
            same += 1;
            "same".to_owned()
        } else if let Some(v) = VERDICTS
            .iter()
            .find(|v| v.id == id && matches(v.rocketmq, ro) && matches(v.pier, po))
        {
            notes.push_str(&format!(
                "- **{id}** ({}): {}\n",
                if v.better { "better" } else { "different" },
                v.why
            ));
            if v.better {
                better += 1;
                "**better** (see notes)".to_owned()
            } else {
                different += 1;
                "different, argued (see notes)".to_owned()
            }
        } else {
            unexplained += 1;
            "**DIFFERENT — UNEXPLAINED**".to_owned()
        };
        rows.push_str(&format!(
            "| {} | {} `{id}` | {rc} {rm} | {pc} {pm} | {verdict} |\n",
            i + 1,
            cell(title, 140)
        ));
    }
    let total = order.len();
    let mut out = String::new();
    out.push_str("# Pier beside Apache RocketMQ 5: behaviour side by side\n\n");
    out.push_str(
        "Written by `bash tests/compare/run.sh` (run by hand, not in CI): the same edge cases, sent \
         through the raw `apache.rocketmq.v2` gRPC API by `tests/src/bin/compare.rs`, to Apache \
         RocketMQ (name server + broker with its gRPC proxy in local mode, `SYNC_FLUSH`, started by \
         `bench/scripts/rocketmq.sh`) and to a standalone Pier, with the same topics and groups \
         created on both. The prober behaves like an official client: Telemetry + Settings first, \
         heartbeats, message queues from QueryRoute.\n\n",
    );
    if let Ok(meta) = args.get("--meta") {
        if let Ok(text) = std::fs::read_to_string(meta) {
            out.push_str(&text);
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "**Summary: {total} cases — {same} same, {better} better in Pier, {different} different (argued), {unexplained} unexplained.**\n\n"
    ));
    out.push_str(
        "Each side shows the compared outcome (a status code, or a short class of behaviour), then \
         the server's status message and details that are shown but not compared (counts, timings). \
         A row is *same* when the outcomes are equal; every other row carries the argument for it in \
         the notes below the table.\n\n",
    );
    out.push_str("| # | case | RocketMQ | Pier | verdict |\n|---|---|---|---|---|\n");
    out.push_str(&rows);
    if !notes.is_empty() {
        out.push_str("\n## Notes on the rows that differ\n\n");
        out.push_str(&notes);
    }
    for (name, v) in [("RocketMQ", &rmq), ("Pier", &pier)] {
        let strays: Vec<String> = v["strays"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
        if !strays.is_empty() {
            out.push_str(&format!(
                "\n{name}: messages the prober received where it did not expect them, and acked (case where it showed up: the body, which starts with the case that sent it): {}\n",
                cell(&strays.join("; "), 600)
            ));
        }
    }
    if let Ok(path) = args.get("--scenarios") {
        out.push_str(&scenarios_table(path)?);
    }
    std::fs::write(args.get("--out")?, out)?;
    eprintln!(
        "{total} cases: {same} same, {better} better, {different} different (argued), {unexplained} unexplained"
    );
    Ok(unexplained == 0)
}

/// Lines `system<TAB>client<TAB>scenario<TAB>pass|fail<TAB>seconds<TAB>note`.
fn scenarios_table(path: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {path}"))?;
    let mut order: Vec<(String, String)> = Vec::new();
    let mut seen: BTreeMap<(String, String, String), (String, String, String)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.splitn(6, '\t').collect();
        if f.len() < 5 {
            continue;
        }
        let key = (f[1].to_owned(), f[2].to_owned());
        if !order.contains(&key) {
            order.push(key);
        }
        seen.insert(
            (f[0].to_owned(), f[1].to_owned(), f[2].to_owned()),
            (
                f[3].to_owned(),
                f[4].to_owned(),
                f.get(5).copied().unwrap_or("").to_owned(),
            ),
        );
    }
    let mut out = String::from(
        "\n## Official-client scenarios against both\n\n\
         The same scripts with the same arguments against each system (pass = the script's own \
         verdict, exit status 0). The delay and transaction scripts run with `--tail-await 5`: \
         their default 1 s receives are refused by RocketMQ (ILLEGAL_POLLING_TIME, see \
         recv.short_deadline).\n\n\
         | client | scenario | RocketMQ | Pier |\n|---|---|---|---|\n",
    );
    for (client, scenario) in &order {
        let show = |sys: &str| match seen.get(&(sys.to_owned(), client.clone(), scenario.clone())) {
            None => "(not run)".to_owned(),
            Some((verdict, s, note)) => {
                let v = if verdict == "pass" {
                    "pass".to_owned()
                } else {
                    format!("**{verdict}**")
                };
                if note.is_empty() {
                    format!("{v} ({s} s)")
                } else {
                    format!("{v} ({s} s) — {}", cell(note, 200))
                }
            }
        };
        out.push_str(&format!(
            "| {client} | {scenario} | {} | {} |\n",
            show("rocketmq"),
            show("pier")
        ));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Command line

struct Args(Vec<String>);

impl Args {
    fn get(&self, flag: &str) -> anyhow::Result<&str> {
        self.0
            .iter()
            .position(|a| a == flag)
            .and_then(|i| self.0.get(i + 1))
            .map(String::as_str)
            .ok_or_else(|| anyhow!("{flag} is required"))
    }
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = argv.first().cloned() else {
        bail!("usage: compare probe --endpoint HOST:PORT --system NAME --out FILE | compare table --rocketmq A --pier B --out MD [--scenarios TSV] [--meta FILE] | compare resources");
    };
    let args = Args(argv);
    match cmd.as_str() {
        "probe" => {
            let endpoint = args.get("--endpoint")?.to_owned();
            let system = args.get("--system")?.to_owned();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let t0 = Instant::now();
            let (rows, strays) = rt.block_on(probe(&endpoint))?;
            let cases: Vec<Value> = rows
                .into_iter()
                .map(|(id, title, o)| {
                    json!({"id": id, "title": title, "outcome": o.outcome, "message": o.message, "detail": o.detail})
                })
                .collect();
            let out = json!({"system": system, "endpoint": endpoint, "seconds": t0.elapsed().as_secs_f64(), "cases": cases, "strays": strays});
            std::fs::write(args.get("--out")?, serde_json::to_string_pretty(&out)?)?;
            eprintln!(
                "{system}: {} cases in {}",
                out["cases"].as_array().map_or(0, Vec::len),
                secs(t0.elapsed())
            );
            // Sessions and their tasks end with the runtime.
            rt.shutdown_timeout(Duration::from_secs(2));
            Ok(())
        }
        "table" => {
            if table(&args)? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        // The resources run.sh creates: "topic NAME TYPE" / "group NAME fifo|normal".
        "resources" => {
            for (t, kind) in TOPICS {
                println!("topic {t} {kind}");
            }
            for (g, fifo) in GROUPS {
                println!("group {g} {}", if *fifo { "fifo" } else { "normal" });
            }
            Ok(())
        }
        other => bail!("unknown command {other}"),
    }
}
