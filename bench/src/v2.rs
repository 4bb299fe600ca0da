//! The load client of every system that speaks `apache.rocketmq.v2`: Pier
//! and Apache RocketMQ's own proxy are driven through this same code (same
//! calls, same messages, same transport), so their figures differ only by
//! the server.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pier_proto::rocketmq::receive_message_response::Content;
use pier_proto::rocketmq::*;
use pier_tests::signing::{date_header, PerSecond, Signer};
use pier_tests::Raw;

use crate::system::{Ack, Client};
use crate::transport::H2;

pub type Messaging = messaging_service_client::MessagingServiceClient<H2>;

/// gRPC multiplexes calls; a few connections per endpoint spread them over
/// HTTP/2 connection windows and the server's per-connection tasks.
pub const CONNECTIONS_PER_ENDPOINT: usize = 4;

/// The connections to a system's endpoints: per connection, a tonic client
/// carrying its own client id (for headers and admin calls) and one on the
/// generator's own transport (`transport.rs`) for the load calls.
pub struct Conns {
    pub raw: Vec<Raw>,
    fast: Vec<Messaging>,
    next: AtomicUsize,
    signer: Option<std::sync::Arc<Signer>>,
}

impl Conns {
    pub async fn connect(endpoints: &[String]) -> anyhow::Result<Conns> {
        Conns::connect_with(endpoints, None, None).await
    }

    /// [`Conns::connect`], over TLS trusting `tls_ca` (PEM) when given, and
    /// signing every call as a user when `credentials` (access key, secret
    /// key) are given.
    pub async fn connect_with(
        endpoints: &[String],
        tls_ca: Option<&[u8]>,
        credentials: Option<(&str, &str)>,
    ) -> anyhow::Result<Conns> {
        let mut raw = Vec::new();
        let mut fast = Vec::new();
        for endpoint in endpoints {
            let origin = H2::origin(endpoint)?;
            for _ in 0..CONNECTIONS_PER_ENDPOINT {
                let (admin, h2) = match tls_ca {
                    None => (Raw::connect(endpoint).await, H2::connect(endpoint).await?),
                    Some(ca) => (
                        Raw::over(endpoint, pier_tests::tls::tls_channel(endpoint, ca).await?),
                        H2::connect_tls(endpoint, ca).await?,
                    ),
                };
                let admin = match credentials {
                    Some((user, secret)) => admin.with_credentials(user, secret),
                    None => admin,
                };
                raw.push(admin);
                fast.push(
                    Messaging::with_origin(h2, origin.clone()).max_decoding_message_size(64 << 20),
                );
            }
        }
        Ok(Conns {
            raw,
            fast,
            next: AtomicUsize::new(0),
            signer: credentials.map(|(u, k)| std::sync::Arc::new(Signer::new(u, k))),
        })
    }

    /// A client on the next connection (round robin) for `topic` and
    /// `group`; `broker` is the broker name its receives address (Pier
    /// ignores it; RocketMQ pops from that broker's queues).
    pub fn client(&self, topic: &str, group: &str, broker: &str) -> V2Client {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let raw = self.raw[i % self.raw.len()].clone();
        let messaging = self.fast[i % self.fast.len()].clone();
        let mut headers = raw.req(()).metadata().clone();
        // Signed anew per call (below), as the official clients do.
        headers.remove("authorization");
        headers.remove("x-mq-date-time");
        // Java, Go and Python send it on every call, empty without one.
        headers.insert(
            "x-mq-namespace",
            tonic::metadata::MetadataValue::from_static(""),
        );
        let mut queue = raw.queue(topic);
        if let Some(b) = queue.broker.as_mut() {
            b.name = broker.to_owned();
        }
        V2Client {
            messaging,
            topic: topic.to_owned(),
            group: group.to_owned(),
            queue,
            headers,
            signer: self.signer.clone(),
            id_prefix: format!("{:08X}{i:08X}", std::process::id()),
            seq: 0,
            calls: AtomicU64::new(0),
            date: PerSecond::default(),
        }
    }
}

pub struct V2Client {
    messaging: Messaging,
    topic: String,
    group: String,
    /// The queue receives address, built once.
    queue: MessageQueue,
    /// The headers every call carries, built once: the load generator
    /// shares the machine with the server, so its per-call work is kept to
    /// what any client must do.
    headers: tonic::metadata::MetadataMap,
    /// Signs as a user, when the server has auth on: each call is signed.
    signer: Option<std::sync::Arc<Signer>>,
    /// Message ids: a per-client prefix and a counter (no random numbers
    /// or syscalls per message).
    id_prefix: String,
    seq: u64,
    /// Calls made, for each call's `x-mq-request-id`.
    calls: AtomicU64,
    /// `x-mq-date-time` of the current second, made once a second.
    date: PerSecond<tonic::metadata::AsciiMetadataValue>,
}

fn ok(status: Option<&Status>, what: &str) -> anyhow::Result<()> {
    let code = status.map_or(-1, |s| s.code);
    anyhow::ensure!(
        code == Code::Ok as i32,
        "{what} failed: code {code} {}",
        status.map_or("", |s| s.message.as_str())
    );
    Ok(())
}

impl V2Client {
    fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        *r.metadata_mut() = self.headers.clone();
        // What Java, Go, Python and Node.js send anew on every call: a
        // request id of its own (a UUID's length; a counter here, no random
        // numbers) and the date. A header that changes on every call costs
        // the server a literal in HTTP/2 header compression each time.
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n:019}", self.id_prefix);
        if let Ok(v) = tonic::metadata::AsciiMetadataValue::try_from(id) {
            r.metadata_mut().insert("x-mq-request-id", v);
        }
        r.set_timeout(Duration::from_secs(30));
        match &self.signer {
            // Dated to the second, as Java, Go, Python, Node.js and Pier's
            // SDK date their calls (the Rust client dates each call anew).
            Some(s) => s.sign(r),
            None => {
                let date = self.date.now(date_header);
                r.metadata_mut().insert("x-mq-date-time", date);
                r
            }
        }
    }

    /// Receives up to `max` messages, long polling up to `poll` when none
    /// are there (RocketMQ's proxy raises a poll under 5 s to 5 s).
    pub async fn receive(&self, max: usize, poll: Duration) -> anyhow::Result<Vec<Message>> {
        let req = ReceiveMessageRequest {
            group: Some(pier_tests::resource(&self.group)),
            message_queue: Some(self.queue.clone()),
            filter_expression: Some(FilterExpression {
                r#type: FilterType::Tag as i32,
                expression: "*".into(),
            }),
            batch_size: max as i32,
            invisible_duration: Some(prost_types::Duration {
                seconds: 30,
                nanos: 0,
            }),
            auto_renew: false,
            long_polling_timeout: Some(prost_types::Duration {
                seconds: poll.as_secs() as i64,
                nanos: poll.subsec_nanos() as i32,
            }),
            attempt_id: None,
        };
        let mut stream = self
            .messaging
            .clone()
            .receive_message(self.req(req))
            .await?
            .into_inner();
        let mut msgs = Vec::new();
        while let Some(frame) = stream.message().await? {
            match frame.content {
                Some(Content::Message(m)) => msgs.push(m),
                Some(Content::Status(s)) if s.code != Code::Ok as i32 => {
                    // An empty long poll ends with MESSAGE_NOT_FOUND.
                    anyhow::ensure!(
                        s.code == Code::MessageNotFound as i32,
                        "receive failed: code {} {}",
                        s.code,
                        s.message
                    );
                }
                _ => {}
            }
        }
        Ok(msgs)
    }

    /// Acknowledges `msgs`: one call per message, or one for them all.
    pub async fn ack(&self, msgs: &[Message], ack: Ack) -> anyhow::Result<()> {
        let entry = |m: &Message| AckMessageEntry {
            message_id: m
                .system_properties
                .as_ref()
                .map(|s| s.message_id.clone())
                .unwrap_or_default(),
            receipt_handle: m
                .system_properties
                .as_ref()
                .and_then(|s| s.receipt_handle.clone())
                .unwrap_or_default(),
            lite_topic: None,
        };
        let batches: Vec<Vec<AckMessageEntry>> = match ack {
            Ack::EachMessage => msgs.iter().map(|m| vec![entry(m)]).collect(),
            Ack::Batched => vec![msgs.iter().map(entry).collect()],
        };
        // One call per message, all in flight together: a push consumer acks
        // each message from its consumption threads as it finishes, without
        // waiting for the previous ack's reply (see `Ack::EachMessage`).
        let calls = batches.into_iter().map(|entries| {
            let mut messaging = self.messaging.clone();
            let req = self.req(AckMessageRequest {
                group: Some(pier_tests::resource(&self.group)),
                topic: Some(pier_tests::resource(&self.topic)),
                entries,
            });
            async move {
                let r = messaging.ack_message(req).await?.into_inner();
                for e in &r.entries {
                    ok(e.status.as_ref(), "ack")?;
                }
                anyhow::Ok(())
            }
        });
        futures::future::try_join_all(calls).await?;
        Ok(())
    }
}

#[async_trait]
impl Client for V2Client {
    async fn send(&mut self, body: &[u8]) -> anyhow::Result<()> {
        self.seq += 1;
        let m = pier_tests::message_with_id(
            &self.topic,
            format!("{}{:016X}", self.id_prefix, self.seq),
            body.to_vec(),
        );
        let r = self
            .messaging
            .clone()
            .send_message(self.req(SendMessageRequest { messages: vec![m] }))
            .await?
            .into_inner();
        ok(r.status.as_ref(), "send")
    }

    async fn pop(&mut self, max: usize, ack: Ack) -> anyhow::Result<usize> {
        let msgs = self.receive(max, Duration::from_millis(100)).await?;
        if !msgs.is_empty() {
            self.ack(&msgs, ack).await?;
        }
        Ok(msgs.len())
    }
}
