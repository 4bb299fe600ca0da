//! Telemetry sessions: one per client id, holding the client's settings and
//! the sender half of its Telemetry stream (the channel through which the
//! server pushes commands, e.g. settings updates).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use pier_proto::rocketmq::{ClientType, Resource, Settings, TelemetryCommand};
use tokio::sync::mpsc;

pub type CommandSender = mpsc::Sender<Result<TelemetryCommand, tonic::Status>>;

#[derive(Debug, Clone)]
pub struct Session {
    /// Distinguishes streams of one client id, so a stale stream closing
    /// does not remove its replacement.
    pub stream_id: u64,
    pub client_type: ClientType,
    pub settings: Option<Settings>,
    pub sender: CommandSender,
    pub last_seen_ms: i64,
    /// The `x-mq-namespace` header of the stream, for Resources without one.
    pub namespace: String,
}

#[derive(Default)]
pub struct Sessions {
    by_client: DashMap<String, Session>,
    next_stream: AtomicU64,
}

impl Sessions {
    pub fn new() -> Arc<Sessions> {
        Arc::new(Sessions::default())
    }

    pub fn open(&self, client_id: &str, namespace: &str, sender: CommandSender) -> u64 {
        let stream_id = self.next_stream.fetch_add(1, Ordering::Relaxed) + 1;
        self.by_client.insert(
            client_id.to_owned(),
            Session {
                stream_id,
                client_type: ClientType::Unspecified,
                settings: None,
                sender,
                last_seen_ms: pier_store::now_ms(),
                namespace: namespace.to_owned(),
            },
        );
        stream_id
    }

    pub fn update_settings(&self, client_id: &str, stream_id: u64, settings: &Settings) {
        if let Some(mut s) = self.by_client.get_mut(client_id) {
            if s.stream_id == stream_id {
                s.client_type = ClientType::try_from(settings.client_type.unwrap_or(0))
                    .unwrap_or(ClientType::Unspecified);
                s.settings = Some(settings.clone());
                s.last_seen_ms = pier_store::now_ms();
            }
        }
    }

    pub fn touch(&self, client_id: &str) {
        if let Some(mut s) = self.by_client.get_mut(client_id) {
            s.last_seen_ms = pier_store::now_ms();
        }
    }

    /// Removes the session if `stream_id` is still its current stream (or
    /// unconditionally with `None`). Returns whether one was removed.
    pub fn close(&self, client_id: &str, stream_id: Option<u64>) -> bool {
        self.by_client
            .remove_if(client_id, |_, s| {
                stream_id.is_none_or(|id| s.stream_id == id)
            })
            .is_some()
    }

    pub fn contains(&self, client_id: &str) -> bool {
        self.by_client.contains_key(client_id)
    }

    pub fn len(&self) -> usize {
        self.by_client.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }

    /// A live producer that declared `topic` (a store-side full name), and
    /// the topic Resource as it declared it (to echo it back).
    pub fn producer_of(&self, topic: &str) -> Option<(Session, Resource)> {
        use pier_proto::rocketmq::settings::PubSub;
        self.by_client.iter().find_map(|s| {
            if s.client_type != ClientType::Producer {
                return None;
            }
            let Some(PubSub::Publishing(p)) = s.settings.as_ref().and_then(|x| x.pub_sub.as_ref())
            else {
                return None;
            };
            p.topics
                .iter()
                .find(|r| crate::validate::full_name(r, &s.namespace) == topic)
                .map(|r| (s.clone(), r.clone()))
        })
    }

    pub fn get(&self, client_id: &str) -> Option<Session> {
        self.by_client.get(client_id).map(|s| s.clone())
    }
}
