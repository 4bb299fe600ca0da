//! Telemetry sessions: one per client id, holding the client's settings and
//! the sender half of its Telemetry stream (the channel through which the
//! server pushes commands, e.g. settings updates).
//!
//! A client is seen when it opens its stream, sends settings or heartbeats
//! (every 10 s for the official clients). One unseen for the expiry time
//! (RocketMQ: 2 minutes) vanished without `NotifyClientTermination`: its
//! session is dropped and its stream ended ([`Sessions::expire`]), so no
//! transaction check goes to it and its auto-renewed deliveries are let go.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use pier_proto::admin::ClientInfo;
use pier_proto::rocketmq::{ClientType, Resource, Settings, TelemetryCommand};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::context::ClientContext;

/// Where the commands for a client's Telemetry stream go.
pub type CommandSender = mpsc::Sender<Result<TelemetryCommand, tonic::Status>>;

/// A client connected through its Telemetry stream.
#[derive(Debug, Clone)]
pub struct Session {
    /// Distinguishes streams of one client id, so a stale stream closing
    /// does not remove its replacement.
    pub stream_id: u64,
    /// Producer, push or simple consumer (from its settings).
    pub client_type: ClientType,
    /// The settings it last sent.
    pub settings: Option<Settings>,
    /// Its Telemetry stream.
    pub sender: CommandSender,
    /// When it was last heard of (stream, heartbeat, settings).
    pub last_seen_ms: i64,
    /// The `x-mq-namespace` header of the stream, for Resources without one.
    pub namespace: String,
    /// The `x-mq-language` header.
    pub language: String,
    /// The `x-mq-client-version` header.
    pub version: String,
    /// Cancelled when the session expires: its stream's reader stops.
    pub ended: CancellationToken,
}

/// The clients connected to this proxy, by client id.
#[derive(Default)]
pub struct Sessions {
    by_client: DashMap<String, Session>,
    next_stream: AtomicU64,
}

impl Sessions {
    /// No session yet.
    pub fn new() -> Arc<Sessions> {
        Arc::new(Sessions::default())
    }

    /// Opens the session of a new Telemetry stream; returns its stream id
    /// and the token cancelled should the session expire or be replaced. A
    /// client has one stream per proxy: a new one (a client reconnecting)
    /// ends the one it replaces, which would otherwise stay open with no
    /// session to expire it.
    pub fn open(
        &self,
        client_id: &str,
        ctx: &ClientContext,
        sender: CommandSender,
    ) -> (u64, CancellationToken) {
        let stream_id = self.next_stream.fetch_add(1, Ordering::Relaxed) + 1;
        let ended = CancellationToken::new();
        let replaced = self.by_client.insert(
            client_id.to_owned(),
            Session {
                stream_id,
                client_type: ClientType::Unspecified,
                settings: None,
                sender,
                last_seen_ms: pier_store::now_ms(),
                namespace: ctx.namespace.clone(),
                language: ctx.language.clone(),
                version: ctx.version.clone(),
                ended: ended.clone(),
            },
        );
        if let Some(old) = replaced {
            old.ended.cancel();
        }
        (stream_id, ended)
    }

    /// Drops every session unseen since `cutoff_ms` and ends its stream;
    /// returns the client ids dropped.
    pub fn expire(&self, cutoff_ms: i64) -> Vec<String> {
        let mut gone = Vec::new();
        self.by_client.retain(|id, s| {
            if s.last_seen_ms >= cutoff_ms {
                return true;
            }
            s.ended.cancel();
            gone.push(id.clone());
            false
        });
        gone
    }

    /// Every session, as the admin API shows it; filtered by consumer group
    /// and topic when given (full names, namespace included).
    pub fn list(&self, group: &str, topic: &str) -> Vec<ClientInfo> {
        use pier_proto::rocketmq::settings::PubSub;
        let mut out: Vec<ClientInfo> = Vec::new();
        for s in self.by_client.iter() {
            let name = |r: &Resource| crate::validate::full_name(r, &s.namespace);
            let (g, topics) = match s.settings.as_ref().and_then(|x| x.pub_sub.as_ref()) {
                Some(PubSub::Publishing(p)) => (String::new(), p.topics.iter().map(name).collect()),
                Some(PubSub::Subscription(sub)) => (
                    sub.group.as_ref().map(name).unwrap_or_default(),
                    sub.subscriptions
                        .iter()
                        .filter_map(|e| e.topic.as_ref().map(name))
                        .collect(),
                ),
                None => (String::new(), Vec::new()),
            };
            if (!group.is_empty() && g != group)
                || (!topic.is_empty() && !topics.iter().any(|t: &String| t == topic))
            {
                continue;
            }
            out.push(ClientInfo {
                client_id: s.key().clone(),
                client_type: s
                    .client_type
                    .as_str_name()
                    .trim_start_matches("CLIENT_TYPE_")
                    .to_owned(),
                language: s.language.clone(),
                version: s.version.clone(),
                namespace: s.namespace.clone(),
                group: g,
                topics,
                last_seen_ms: s.last_seen_ms,
            });
        }
        out.sort_by(|a, b| (&a.group, &a.client_id).cmp(&(&b.group, &b.client_id)));
        out
    }

    /// Records the settings a client sent on its current stream.
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

    /// Marks a client as seen now.
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

    /// Whether the client has a session.
    pub fn contains(&self, client_id: &str) -> bool {
        self.by_client.contains_key(client_id)
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.by_client.len()
    }

    /// Whether there is no session.
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

    /// The session of a client.
    pub fn get(&self, client_id: &str) -> Option<Session> {
        self.by_client.get(client_id).map(|s| s.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_stream_of_a_client_ends_the_one_it_replaces() {
        let sessions = Sessions::new();
        let ctx = ClientContext::default();
        let (tx, _rx) = mpsc::channel(1);
        let (first, first_ended) = sessions.open("c1", &ctx, tx.clone());
        let (_, other_ended) = sessions.open("c2", &ctx, tx.clone());
        let (second, second_ended) = sessions.open("c1", &ctx, tx);
        assert!(first_ended.is_cancelled(), "the replaced stream ends");
        assert!(!second_ended.is_cancelled());
        assert!(!other_ended.is_cancelled(), "other clients keep theirs");
        assert_eq!(sessions.len(), 2);
        // The old stream closing afterwards leaves its replacement alone.
        assert!(!sessions.close("c1", Some(first)));
        assert_eq!(sessions.get("c1").map(|s| s.stream_id), Some(second));
    }
}
