//! [`Raw`]: a gRPC client speaking `apache.rocketmq.v2` and `pier.admin.v1`
//! request by request, and helpers to build and read messages.

use std::time::Duration;

use bytes::Bytes;
use pier_proto::admin::admin_service_client::AdminServiceClient;
use pier_proto::admin::{
    self, ConsumerGroup, CreateGroupRequest, CreateTopicRequest, DescribeGroupRequest,
    DescribeGroupResponse, Topic, TopicType,
};
use pier_proto::rocketmq::messaging_service_client::MessagingServiceClient;
use pier_proto::rocketmq::*;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A raw `apache.rocketmq.v2` + `pier.admin.v1` client, as the official
/// clients would talk (headers included).
#[derive(Clone)]
pub struct Raw {
    pub endpoint: String,
    pub client_id: String,
    channel: Channel,
    /// A user's access and secret key: every call is signed with them.
    credentials: Option<std::sync::Arc<(String, String)>>,
}

impl Raw {
    pub async fn connect(endpoint: &str) -> Raw {
        let channel = Channel::from_shared(format!("http://{endpoint}"))
            .expect("uri")
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .expect("connect");
        Raw::over(endpoint, channel)
    }

    /// A `Raw` over a channel made elsewhere (TLS, say).
    pub fn over(endpoint: &str, channel: Channel) -> Raw {
        Raw {
            endpoint: endpoint.to_owned(),
            client_id: format!(
                "pier-test@{}@{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ),
            channel,
            credentials: None,
        }
    }

    /// This client signing every call as `user` (a server with auth on).
    pub fn with_credentials(mut self, user: &str, secret: &str) -> Raw {
        self.credentials = Some(std::sync::Arc::new((user.to_owned(), secret.to_owned())));
        self
    }

    /// The connection under this client.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn messaging(&self) -> MessagingServiceClient<Channel> {
        MessagingServiceClient::new(self.channel.clone()).max_decoding_message_size(64 << 20)
    }

    /// The admin API; its calls are signed like [`Raw::req`]'s when this
    /// client has credentials.
    pub fn admin(&self) -> AdminServiceClient<InterceptedService<Channel, Signer>> {
        AdminServiceClient::with_interceptor(self.channel.clone(), Signer(self.credentials.clone()))
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
        match &self.credentials {
            Some(c) => crate::signing::signed(r, &c.0, &c.1),
            None => r,
        }
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
        self.create_group_as(ConsumerGroup {
            name: name.into(),
            max_attempts,
            ..Default::default()
        })
        .await;
    }

    /// A FIFO (orderly) group; `max_attempts` 0 takes the server's default.
    pub async fn create_fifo_group(&self, name: &str, max_attempts: u32) {
        self.create_group_as(ConsumerGroup {
            name: name.into(),
            fifo: true,
            max_attempts,
            ..Default::default()
        })
        .await;
    }

    /// A group whose failed messages come back after `backoff_ms`, every
    /// time (the clients' push consumers wait that long before a retry).
    pub async fn create_group_with_backoff(
        &self,
        name: &str,
        fifo: bool,
        max_attempts: u32,
        backoff_ms: u64,
    ) {
        self.create_group_as(ConsumerGroup {
            name: name.into(),
            fifo,
            max_attempts,
            retry_policy: Some(admin::RetryPolicy {
                strategy: Some(admin::retry_policy::Strategy::Customized(
                    admin::CustomizedBackoff {
                        next_ms: vec![backoff_ms],
                    },
                )),
            }),
            ..Default::default()
        })
        .await;
    }

    /// The group's state: its backlog per queue, its DLQ count.
    pub async fn describe_group(&self, name: &str) -> DescribeGroupResponse {
        self.admin()
            .describe_group(DescribeGroupRequest { name: name.into() })
            .await
            .expect("describe group")
            .into_inner()
    }

    /// Creates `group` as given.
    pub async fn create_group_as(&self, group: ConsumerGroup) {
        self.admin()
            .create_group(CreateGroupRequest { group: Some(group) })
            .await
            .expect("create group");
    }
}

impl Raw {
    /// Creates `topic` (with `queues` queues) and a group `{topic}-readers`,
    /// sends one message `text` and asserts it is received: the path from
    /// a client to the data and back works.
    pub async fn assert_round_trip(&self, topic: &str, queues: u32, text: &str) {
        let group = format!("{topic}-readers");
        self.create_topic(topic, queues).await;
        self.create_group(&group, 5).await;
        let sent = self.send(message(topic, text)).await;
        assert_eq!(sent.status.expect("a status").code(), Code::Ok);
        let (code, got) = self.receive(&group, topic, 10, 30_000, 2_000).await;
        assert_eq!(code, Code::Ok);
        assert_eq!(got.iter().map(body).collect::<Vec<_>>(), [text]);
    }

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
            invisible_duration: Some(millis(invisible_ms)),
            long_polling_timeout: Some(millis(poll_ms)),
            ..self.receive_request(group, topic, batch)
        };
        self.receive_raw(req).await
    }

    /// Receives (invisible for 60 s, long polls of 1 s) until exactly `n`
    /// messages are held, asking each time for no more than are missing;
    /// fails past `within`.
    pub async fn receive_n(
        &self,
        group: &str,
        topic: &str,
        n: usize,
        within: Duration,
    ) -> Vec<Message> {
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + within;
        while got.len() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "received {} of {n} from {topic}",
                got.len()
            );
            let want = (n - got.len()) as i32;
            let (_, ms) = self.receive(group, topic, want, 60_000, 1_000).await;
            got.extend(ms);
        }
        got
    }

    /// A receive of up to `batch` messages of every tag: invisible for 30 s,
    /// no auto-renew, no long polling.
    pub fn receive_request(&self, group: &str, topic: &str, batch: i32) -> ReceiveMessageRequest {
        ReceiveMessageRequest {
            group: Some(resource(group)),
            message_queue: Some(self.queue(topic)),
            filter_expression: Some(FilterExpression {
                r#type: FilterType::Tag as i32,
                expression: "*".into(),
            }),
            batch_size: batch,
            invisible_duration: Some(millis(30_000)),
            auto_renew: false,
            long_polling_timeout: Some(millis(0)),
            attempt_id: None,
        }
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

/// The Settings a producer declaring `topic` sends first on its Telemetry
/// stream.
pub fn producer_settings(topic: &str) -> Settings {
    Settings {
        client_type: Some(ClientType::Producer as i32),
        pub_sub: Some(settings::PubSub::Publishing(Publishing {
            topics: vec![resource(topic)],
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// `settings` as a Telemetry command.
pub fn settings_command(settings: Settings) -> TelemetryCommand {
    TelemetryCommand {
        status: None,
        command: Some(telemetry_command::Command::Settings(settings)),
    }
}

/// A client's Telemetry stream: the sender that keeps it open, the commands
/// the server pushes, and the server's Settings reply.
pub type Telemetry = (
    tokio::sync::mpsc::Sender<TelemetryCommand>,
    tonic::Streaming<TelemetryCommand>,
    Settings,
);

impl Raw {
    /// Opens a Telemetry stream, sends `settings` first, and waits (5 s at
    /// most) for the server's Settings reply, asserting its status is OK.
    pub async fn telemetry_with(&self, settings: Settings) -> Telemetry {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tx.send(settings_command(settings))
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
        (tx, inbound, s)
    }

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
        let (tx, inbound, s) = self.telemetry_with(producer_settings(topic)).await;
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

/// `ms` milliseconds as a protobuf Duration.
pub fn millis(ms: u64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
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
pub fn message_with_id(topic: &str, message_id: String, body: impl Into<Bytes>) -> Message {
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
        body: body.into(),
    }
}

/// Signs each request with the user and secret it holds, if any (the
/// admin calls of a [`Raw`] with credentials).
#[derive(Clone)]
pub struct Signer(Option<std::sync::Arc<(String, String)>>);

impl tonic::service::Interceptor for Signer {
    fn call(&mut self, r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        Ok(match &self.0 {
            Some(c) => crate::signing::signed(r, &c.0, &c.1),
            None => r,
        })
    }
}
