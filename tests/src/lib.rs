//! Harness for Pier's end-to-end tests: starts real `pier-store` and
//! `pier-proxy` processes on ephemeral 127.0.0.1 ports with temporary data
//! directories, and stops them when dropped.
//!
//! The binaries are the workspace's own build (`cargo build --workspace
//! --bins`, which `.ci/run` does before testing).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub mod java;

use pier_proto::admin::admin_service_client::AdminServiceClient;
use pier_proto::admin::{ConsumerGroup, CreateGroupRequest, CreateTopicRequest, Topic, TopicType};
use pier_proto::rocketmq::messaging_service_client::MessagingServiceClient;
use pier_proto::rocketmq::*;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

/// Directory holding the workspace's binaries (next to the test binary).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // Tests run from target/<profile>/deps/<test>, tools such as pier-bench
    // from target/<profile>/<tool>: either way target/<profile>.
    let dir = exe.parent().expect("binary has a directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("deps has a parent").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not found: build the workspace binaries first (cargo build --workspace --bins)",
        p.display()
    );
    p
}

/// A running Pier process; killed (SIGTERM, then SIGKILL) when dropped.
pub struct Node {
    child: Option<Child>,
    pub addr: String,
    pub log: mpsc::Receiver<String>,
}

impl Node {
    /// Starts `binary` with `args` and waits for its "listening" log line.
    pub fn start(binary: &str, args: &[&str]) -> Node {
        let mut child = Command::new(bin(binary))
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("PIER_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        let name = binary.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("PIER_TEST_ECHO").is_some() {
                    eprintln!("[{name}] {line}");
                }
                if tx.send(line).is_err() {
                    // Keep draining so the child never blocks on a full pipe.
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("listening") => {
                    let addr = line
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("addr="))
                        .unwrap_or_else(|| panic!("no addr= in {line:?}"))
                        .to_owned();
                    return Node {
                        child: Some(child),
                        addr,
                        log: rx,
                    };
                }
                Ok(_) => continue,
                Err(_) => {
                    let _ = child.kill();
                    panic!("{binary} did not report listening within 30 s");
                }
            }
        }
    }

    /// Standalone proxy with an embedded store in `data`.
    pub fn standalone(data: &Path) -> Node {
        Node::standalone_with(data, &[])
    }

    /// [`Node::standalone`] with more flags.
    pub fn standalone_with(data: &Path, extra: &[&str]) -> Node {
        let mut args = vec!["--listen", "127.0.0.1:0", "--data"];
        args.push(data.to_str().expect("utf-8 path"));
        args.extend_from_slice(extra);
        Node::start("pier-proxy", &args)
    }

    pub fn store(data: &Path) -> Node {
        Node::store_with(data, &[])
    }

    /// [`Node::store`] with more flags.
    pub fn store_with(data: &Path, extra: &[&str]) -> Node {
        let mut args = vec!["--listen", "127.0.0.1:0", "--data"];
        args.push(data.to_str().expect("utf-8 path"));
        args.extend_from_slice(extra);
        Node::start("pier-store", &args)
    }

    /// Waits (up to `within`) for a log line containing every one of
    /// `parts`; lines read on the way are consumed.
    pub fn wait_log(&self, parts: &[&str], within: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if parts.iter().all(|p| line.contains(p)) => return Some(line),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    pub fn proxy_of(store: &Node) -> Node {
        Node::start(
            "pier-proxy",
            &["--listen", "127.0.0.1:0", "--store", &store.addr],
        )
    }

    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("addr has a port")
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit; returns whether
    /// the process exited with success.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Kills the process at once (SIGKILL): a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A raw `apache.rocketmq.v2` + `pier.admin.v1` client, as the official
/// clients would talk (headers included).
#[derive(Clone)]
pub struct Raw {
    pub endpoint: String,
    pub client_id: String,
    channel: Channel,
}

impl Raw {
    pub async fn connect(endpoint: &str) -> Raw {
        let channel = Channel::from_shared(format!("http://{endpoint}"))
            .expect("uri")
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .expect("connect");
        Raw {
            endpoint: endpoint.to_owned(),
            client_id: format!(
                "pier-test@{}@{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ),
            channel,
        }
    }

    pub fn messaging(&self) -> MessagingServiceClient<Channel> {
        MessagingServiceClient::new(self.channel.clone()).max_decoding_message_size(64 << 20)
    }

    pub fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel.clone())
    }

    /// Wraps a request with the headers every official client sends.
    pub fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        let md = r.metadata_mut();
        md.insert(
            "x-mq-client-id",
            MetadataValue::try_from(self.client_id.as_str()).expect("ascii"),
        );
        md.insert("x-mq-language", MetadataValue::from_static("JAVA"));
        md.insert("x-mq-protocol", MetadataValue::from_static("v2"));
        md.insert("x-mq-client-version", MetadataValue::from_static("5.2.1"));
        r.set_timeout(Duration::from_secs(30));
        r
    }

    pub fn endpoints(&self) -> Endpoints {
        let (host, port) = self.endpoint.rsplit_once(':').expect("host:port");
        Endpoints {
            scheme: AddressScheme::IPv4 as i32,
            addresses: vec![Address {
                host: host.into(),
                port: port.parse().expect("port"),
            }],
        }
    }

    pub async fn create_topic(&self, name: &str, queues: u32) {
        self.create_typed_topic(name, TopicType::Normal, queues)
            .await;
    }

    pub async fn create_typed_topic(&self, name: &str, kind: TopicType, queues: u32) {
        self.admin()
            .create_topic(CreateTopicRequest {
                topic: Some(Topic {
                    name: name.into(),
                    r#type: kind as i32,
                    queues,
                    created_at_ms: 0,
                }),
            })
            .await
            .expect("create topic");
    }

    pub async fn create_group(&self, name: &str, max_attempts: u32) {
        self.admin()
            .create_group(CreateGroupRequest {
                group: Some(ConsumerGroup {
                    name: name.into(),
                    max_attempts,
                    ..Default::default()
                }),
            })
            .await
            .expect("create group");
    }
}

impl Raw {
    pub async fn send(&self, msg: Message) -> SendMessageResponse {
        self.messaging()
            .send_message(self.req(SendMessageRequest {
                messages: vec![msg],
            }))
            .await
            .expect("SendMessage transport")
            .into_inner()
    }

    pub fn queue(&self, topic: &str) -> MessageQueue {
        MessageQueue {
            topic: Some(resource(topic)),
            id: -1,
            permission: Permission::ReadWrite as i32,
            broker: Some(Broker {
                name: "pier".into(),
                id: 0,
                endpoints: Some(self.endpoints()),
            }),
            accept_message_types: vec![MessageType::Normal as i32],
        }
    }

    /// A simple consumer's receive: returns the status frame's code and the
    /// messages, checking the frame layout of protocol.md §4.9.3.
    pub async fn receive(
        &self,
        group: &str,
        topic: &str,
        batch: i32,
        invisible_ms: u64,
        poll_ms: u64,
    ) -> (Code, Vec<Message>) {
        let req = ReceiveMessageRequest {
            group: Some(resource(group)),
            message_queue: Some(self.queue(topic)),
            filter_expression: Some(FilterExpression {
                r#type: FilterType::Tag as i32,
                expression: "*".into(),
            }),
            batch_size: batch,
            invisible_duration: Some(prost_types::Duration {
                seconds: (invisible_ms / 1000) as i64,
                nanos: ((invisible_ms % 1000) * 1_000_000) as i32,
            }),
            auto_renew: false,
            long_polling_timeout: Some(prost_types::Duration {
                seconds: (poll_ms / 1000) as i64,
                nanos: ((poll_ms % 1000) * 1_000_000) as i32,
            }),
            attempt_id: None,
        };
        self.receive_raw(req).await
    }

    pub async fn receive_raw(&self, req: ReceiveMessageRequest) -> (Code, Vec<Message>) {
        use receive_message_response::Content;
        let mut stream = self
            .messaging()
            .receive_message(self.req(req))
            .await
            .expect("ReceiveMessage transport")
            .into_inner();
        let mut status = None;
        let mut msgs = Vec::new();
        let mut saw_timestamp = false;
        while let Some(frame) = stream.message().await.expect("ReceiveMessage stream") {
            match frame.content.expect("every frame has its oneof set") {
                Content::Status(s) => {
                    assert!(status.is_none(), "one status frame per receive");
                    status = Some(Code::try_from(s.code).expect("known code"));
                }
                Content::Message(m) => msgs.push(m),
                Content::DeliveryTimestamp(_) => saw_timestamp = true,
            }
        }
        assert!(
            saw_timestamp,
            "receive ends with a delivery_timestamp frame"
        );
        (status.expect("a status frame is mandatory"), msgs)
    }

    pub async fn ack(&self, group: &str, topic: &str, handle: &str) -> Code {
        let r = self
            .messaging()
            .ack_message(self.req(AckMessageRequest {
                group: Some(resource(group)),
                topic: Some(resource(topic)),
                entries: vec![AckMessageEntry {
                    message_id: String::new(),
                    receipt_handle: handle.into(),
                    lite_topic: None,
                }],
            }))
            .await
            .expect("AckMessage transport")
            .into_inner();
        assert_eq!(r.entries.len(), 1, "one result entry per ack entry");
        Code::try_from(r.entries[0].status.as_ref().expect("entry status").code)
            .expect("known code")
    }
}

impl Raw {
    /// Opens a producer's Telemetry stream declaring `topic`, waits for the
    /// Settings reply, and returns the stream of commands the server pushes
    /// (with the sender that keeps the stream open).
    pub async fn producer_stream(
        &self,
        topic: &str,
    ) -> (
        tokio::sync::mpsc::Sender<TelemetryCommand>,
        tonic::Streaming<TelemetryCommand>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tx.send(TelemetryCommand {
            status: None,
            command: Some(telemetry_command::Command::Settings(Settings {
                client_type: Some(ClientType::Producer as i32),
                pub_sub: Some(settings::PubSub::Publishing(Publishing {
                    topics: vec![resource(topic)],
                    ..Default::default()
                })),
                ..Default::default()
            })),
        })
        .await
        .expect("queue settings");
        let mut req = self.req(tokio_stream::wrappers::ReceiverStream::new(rx));
        req.set_timeout(Duration::from_secs(120));
        let mut inbound = self
            .messaging()
            .telemetry(req)
            .await
            .expect("telemetry")
            .into_inner();
        let reply = tokio::time::timeout(Duration::from_secs(5), inbound.message())
            .await
            .expect("settings reply in time")
            .expect("telemetry stream")
            .expect("a settings reply");
        assert_eq!(reply.status.expect("status").code, Code::Ok as i32);
        let Some(telemetry_command::Command::Settings(s)) = reply.command else {
            panic!("expected settings, got {:?}", reply.command);
        };
        let Some(settings::PubSub::Publishing(p)) = s.pub_sub else {
            panic!("producer settings carry publishing");
        };
        assert!(p.max_body_size > 0, "clients need max_body_size > 0");
        assert!(matches!(
            s.backoff_policy.and_then(|b| b.strategy),
            Some(retry_policy::Strategy::ExponentialBackoff(_))
        ));
        (tx, inbound)
    }
}

pub fn handle(m: &Message) -> String {
    m.system_properties
        .as_ref()
        .and_then(|s| s.receipt_handle.clone())
        .expect("delivered messages carry a receipt handle")
}

pub fn attempt(m: &Message) -> i32 {
    m.system_properties
        .as_ref()
        .and_then(|s| s.delivery_attempt)
        .expect("delivered messages carry delivery_attempt")
}

pub fn body(m: &Message) -> String {
    String::from_utf8_lossy(&m.body).into_owned()
}

pub fn resource(name: &str) -> Resource {
    Resource {
        resource_namespace: String::new(),
        name: name.into(),
    }
}

/// A normal message as an official producer builds it.
pub fn message(topic: &str, body: &str) -> Message {
    message_with_id(
        topic,
        uuid::Uuid::new_v4().simple().to_string().to_uppercase(),
        body.as_bytes().to_vec(),
    )
}

/// The same with the caller's message id (the load generator numbers its
/// messages instead of drawing a uuid for each).
pub fn message_with_id(topic: &str, message_id: String, body: Vec<u8>) -> Message {
    Message {
        topic: Some(resource(topic)),
        user_properties: Default::default(),
        system_properties: Some(SystemProperties {
            message_id,
            message_type: MessageType::Normal as i32,
            body_encoding: Encoding::Identity as i32,
            born_timestamp: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            born_host: "127.0.0.1".into(),
            ..Default::default()
        }),
        body,
    }
}

/// Where the test tools (Python venv with the official client, grpcurl)
/// live; `tests/scripts/setup-tools.sh` installs them.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("PIER_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".cache/pier-tools")
        })
}

/// Runs the tools installer (idempotent, fast when already installed).
pub fn ensure_tools() -> PathBuf {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/setup-tools.sh");
    ONCE.call_once(|| {
        let status = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .status()
            .expect("run setup-tools.sh");
        assert!(status.success(), "tests/scripts/setup-tools.sh failed");
    });
    tools_dir()
}

/// Helpers for tests that drive an official client as a child process
/// printing one JSON summary line.
pub mod external {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};

    use pier_proto::admin::DescribeGroupRequest;

    use crate::Raw;

    /// Runs a script of tests/python with the tools' venv, off the async
    /// runtime.
    pub async fn python(tools: &Path, script: &str, args: Vec<String>) -> Output {
        let py = tools.join("venv/bin/python");
        let script: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("python")
            .join(script);
        tokio::task::spawn_blocking(move || {
            Command::new(py)
                .arg(script)
                .args(args)
                .env("HOME", std::env::temp_dir())
                .stdin(Stdio::null())
                .output()
                .expect("run python")
        })
        .await
        .expect("python task")
    }

    /// Runs `node tests/node/<script> <args>` off the async runtime, with
    /// the official client the tools installed on `NODE_PATH`.
    pub async fn node(tools: &Path, script: &str, args: Vec<String>) -> Output {
        let modules = tools.join("node/node_modules");
        assert!(
            modules.join("rocketmq-client-nodejs/package.json").exists(),
            "rocketmq-client-nodejs is not installed in {} (are node and npm on PATH? see tests/scripts/setup-tools.sh)",
            modules.display()
        );
        let script: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("node")
            .join(script);
        tokio::task::spawn_blocking(move || {
            Command::new("node")
                .arg(script)
                .args(args)
                .env("NODE_PATH", modules)
                .env("HOME", std::env::temp_dir())
                .stdin(Stdio::null())
                .output()
                .expect("run node")
        })
        .await
        .expect("node task")
    }

    pub fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Asserts a zero exit status and returns the JSON summary (the last
    /// stdout line). On failure shows stdout and the tail of stderr
    /// (clients log a lot there).
    pub fn summary(out: &Output, what: &str) -> serde_json::Value {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        assert!(
            out.status.success(),
            "{what} failed ({}):\nstdout: {stdout}\nstderr (tail): {tail}",
            out.status
        );
        let last = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("{what}: bad JSON summary {last:?}: {e}"))
    }

    /// [`summary`], also asserting the client's own verdict `"ok": true`.
    pub fn summary_ok(out: &Output, what: &str) -> serde_json::Value {
        let v = summary(out, what);
        assert_eq!(v["ok"], true, "{what}: {v}");
        eprintln!("{what}: {v}");
        v
    }

    /// Nothing ready or in flight remains for `group`.
    pub async fn assert_drained(c: &Raw, group: &str) {
        let d = c
            .admin()
            .describe_group(DescribeGroupRequest { name: group.into() })
            .await
            .expect("describe group")
            .into_inner();
        let left: u64 = d.backlog.iter().map(|b| b.ready + b.inflight).sum();
        assert_eq!(left, 0, "{group}: {d:?}");
    }
}
