//! [`SimpleConsumer`]: the application pulls messages with
//! [`receive`](SimpleConsumer::receive) and acks each one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pier_proto::rocketmq::{ClientType, MessageQueue, Permission, Subscription};

use super::acks::Acks;
use super::{FilterExpression, ReceiveSpec};
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::message::MessageView;
use crate::session::{self, ClientCore};
use crate::time::duration;

/// Configures and starts a [`SimpleConsumer`].
#[derive(Debug)]
pub struct SimpleConsumerBuilder {
    config: ClientConfig,
    group: String,
    subscriptions: Vec<(String, FilterExpression)>,
    await_duration: Duration,
}

impl SimpleConsumerBuilder {
    /// Subscribes to `topic` with `filter`.
    pub fn subscribe(mut self, topic: impl Into<String>, filter: FilterExpression) -> Self {
        self.subscriptions.push((topic.into(), filter));
        self
    }

    /// How long a receive waits for a message when none is ready (long
    /// polling). Default 5 s.
    pub fn await_duration(mut self, d: Duration) -> Self {
        self.await_duration = d;
        self
    }

    /// Connects, checks the subscribed topics exist and exchanges settings.
    pub async fn start(self) -> Result<SimpleConsumer> {
        let core = super::new_core(
            self.config,
            ClientType::SimpleConsumer,
            &self.group,
            &self.subscriptions,
            Subscription {
                long_polling_timeout: Some(duration(self.await_duration)),
                ..Default::default()
            },
        )?;
        let mut subscriptions = Vec::new();
        for (topic, filter) in self.subscriptions {
            let queues = readable(core.query_route(&topic).await?);
            subscriptions.push(Subscribed {
                topic,
                filter,
                queues,
            });
        }
        session::start(&core).await?;
        Ok(SimpleConsumer {
            acks: Acks::new(core.clone(), self.group.clone()),
            core,
            group: self.group,
            subscriptions,
            await_duration: self.await_duration,
            next: AtomicUsize::new(0),
        })
    }
}

/// A subscribed topic and the queues its route offers for reading.
#[derive(Debug)]
struct Subscribed {
    topic: String,
    filter: FilterExpression,
    queues: Vec<MessageQueue>,
}

/// The route's readable master queues (all of them if none qualifies).
fn readable(route: Vec<MessageQueue>) -> Vec<MessageQueue> {
    let ok = |q: &MessageQueue| {
        matches!(
            Permission::try_from(q.permission),
            Ok(Permission::Read | Permission::ReadWrite)
        ) && q.broker.as_ref().is_some_and(|b| b.id == 0)
    };
    if route.iter().any(ok) {
        route.into_iter().filter(ok).collect()
    } else {
        route
    }
}

/// Receives messages on demand; the application acks each one, or changes
/// its invisibility to get it again later.
///
/// ```no_run
/// # async fn demo() -> pier::Result<()> {
/// use std::time::Duration;
/// use pier::{ClientConfig, FilterExpression, SimpleConsumer};
///
/// let consumer = SimpleConsumer::builder(ClientConfig::new("127.0.0.1:8081")?, "billing")
///     .subscribe("orders", FilterExpression::all())
///     .start()
///     .await?;
/// for m in consumer.receive(16, Duration::from_secs(30)).await? {
///     println!("{}", m.body_text());
///     consumer.ack(&m).await?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SimpleConsumer {
    core: Arc<ClientCore>,
    /// Acks made while others are on the wire share a call.
    acks: Arc<Acks>,
    group: String,
    subscriptions: Vec<Subscribed>,
    await_duration: Duration,
    next: AtomicUsize,
}

impl Drop for SimpleConsumer {
    fn drop(&mut self) {
        self.core.abort();
    }
}

impl SimpleConsumer {
    /// Starts configuring a consumer of `group`.
    pub fn builder(config: ClientConfig, group: impl Into<String>) -> SimpleConsumerBuilder {
        SimpleConsumerBuilder {
            config,
            group: group.into(),
            subscriptions: Vec::new(),
            await_duration: Duration::from_secs(5),
        }
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Receives up to `max` messages from one subscribed topic (topics take
    /// turns), waiting up to the await duration when none is ready. Each
    /// stays invisible to the group for `invisible_duration` unless acked.
    pub async fn receive(
        &self,
        max: usize,
        invisible_duration: Duration,
    ) -> Result<Vec<MessageView>> {
        if max == 0 {
            return Err(Error::invalid("receive at least one message"));
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        // The builder refuses an empty subscription list.
        let Some(sub) = self
            .subscriptions
            .get(turn % self.subscriptions.len().max(1))
        else {
            return Err(Error::invalid("subscribe to at least one topic"));
        };
        // Queues take turns too (Pier pops from every queue whichever is
        // named; RocketMQ proxies read the named broker).
        let queue = match sub
            .queues
            .get(turn / self.subscriptions.len() % sub.queues.len().max(1))
        {
            Some(q) => q.clone(),
            None => super::any_queue(&self.core, &sub.topic),
        };
        let spec = ReceiveSpec {
            group: self.group.clone(),
            queue,
            filter: sub.filter.clone(),
            batch: i32::try_from(max).unwrap_or(i32::MAX),
            invisible: Some(invisible_duration),
            long_poll: self.await_duration,
            attempt_id: None,
        };
        let mut last = None;
        for i in self.core.cluster.order(None) {
            if self.core.is_shut_down() {
                return Err(Error::Shutdown);
            }
            match super::receive(&self.core, i, &spec).await {
                Err(e) if e.is_transport() => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or(Error::Shutdown))
    }

    /// Acknowledges a message: the group is done with it. Acks made
    /// while earlier ones are still on the wire (from tasks of the
    /// application that ack at once) go out together, each answered by its
    /// own entry's status.
    pub async fn ack(&self, message: &MessageView) -> Result<()> {
        self.acks.ack(message).await
    }

    /// Makes a received message invisible for `invisible_duration` from now
    /// (longer to keep working on it, zero to get it again at once).
    /// Returns the message with its new receipt handle, to ack with.
    pub async fn change_invisible_duration(
        &self,
        message: &MessageView,
        invisible_duration: Duration,
    ) -> Result<MessageView> {
        super::change_invisible(&self.core, &self.group, message, invisible_duration).await
    }

    /// Stops the consumer (unacked messages come back after their
    /// invisibility).
    pub async fn shutdown(&self) {
        self.core.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pier_proto::rocketmq::Broker;

    fn queue(id: i32, permission: Permission, broker_id: i32) -> MessageQueue {
        MessageQueue {
            id,
            permission: permission as i32,
            broker: Some(Broker {
                name: "b".into(),
                id: broker_id,
                endpoints: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn reads_from_readable_master_queues() {
        let route = vec![
            queue(0, Permission::ReadWrite, 0),
            queue(1, Permission::Write, 0),
            queue(2, Permission::Read, 0),
            queue(3, Permission::ReadWrite, 1),
        ];
        let ids: Vec<i32> = readable(route).iter().map(|q| q.id).collect();
        assert_eq!(ids, vec![0, 2]);
        let odd = vec![queue(5, Permission::Write, 0)];
        assert_eq!(readable(odd).len(), 1, "nothing qualifies: keep the route");
    }
}
