//! The one message model: [`Message`] (immutable, built with
//! [`MessageBuilder`]) to send, and [`MessageView`] for what a consumer, a
//! transaction checker or the `pier` tool receives. The wire form
//! (`apache.rocketmq.v2.Message`) is made in `wire` and read in `view`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use pier_proto::rocketmq::MessageType;

use crate::error::{Error, Result};

/// The header accessors [`Message`] and [`MessageView`] share, written once:
/// both types keep `tag`, `keys` and `properties` in `self.inner`.
macro_rules! header_accessors {
    () => {
        /// Tag, if any.
        pub fn tag(&self) -> Option<&str> {
            self.inner.tag.as_deref()
        }

        /// Keys.
        pub fn keys(&self) -> &[String] {
            &self.inner.keys
        }

        /// User properties.
        pub fn properties(&self) -> &BTreeMap<String, String> {
            &self.inner.properties
        }
    };
}

/// Implements `$trait`, a callback that is given a [`MessageView`] and
/// answers a `$out` through its one method `$method`, for every
/// `Fn(MessageView) -> impl Future<Output = $out>` closure, and gives
/// `dyn $trait` a debug form that names it (a callback is code, nothing to
/// show). The push consumer's listener and the producer's transaction
/// checker are such callbacks.
macro_rules! message_callback {
    ($trait:ident :: $method:ident -> $out:ty) => {
        impl std::fmt::Debug for dyn $trait {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(stringify!($trait))
            }
        }

        impl<F, Fut> $trait for F
        where
            F: Fn(MessageView) -> Fut + Send + Sync + 'static,
            Fut: std::future::Future<Output = $out> + Send + 'static,
        {
            fn $method(&self, message: MessageView) -> BoxFuture<'static, $out> {
                Box::pin(self(message))
            }
        }
    };
}
pub(crate) use message_callback;

mod view;
pub(crate) mod wire;

pub use view::MessageView;

/// What a message to send holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    topic: String,
    body: Bytes,
    tag: Option<String>,
    keys: Vec<String>,
    properties: BTreeMap<String, String>,
    message_group: Option<String>,
    deliver_at: Option<SystemTime>,
}

/// A message to send. Immutable once built; cheap to clone.
///
/// ```
/// use std::time::Duration;
/// use pier::Message;
///
/// let m = Message::builder("orders", "hello")
///     .tag("created")
///     .key("order-42")
///     .property("region", "eu")
///     .build()?;
/// assert_eq!(m.topic(), "orders");
///
/// // FIFO: messages of one group are consumed in send order.
/// let fifo = Message::builder("trades", "buy").message_group("account-7").build()?;
/// // DELAY: invisible to consumers until the delivery time.
/// let later = Message::builder("reminders", "ping").delay(Duration::from_secs(30)).build()?;
/// # let _ = (fifo, later);
/// # Ok::<(), pier::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    inner: Arc<Fields>,
}

impl Message {
    /// Starts building a message for `topic` with `body` (a `Vec<u8>`,
    /// `String`, `&'static str`, `&'static [u8]` or `Bytes`; a `Bytes` body
    /// is shared, not copied, on its way to the wire).
    pub fn builder(topic: impl Into<String>, body: impl Into<Bytes>) -> MessageBuilder {
        MessageBuilder {
            fields: Fields {
                topic: topic.into(),
                body: body.into(),
                tag: None,
                keys: Vec::new(),
                properties: BTreeMap::new(),
                message_group: None,
                deliver_at: None,
            },
            problem: None,
        }
    }

    /// Destination topic.
    pub fn topic(&self) -> &str {
        &self.inner.topic
    }

    /// Payload.
    pub fn body(&self) -> &[u8] {
        &self.inner.body
    }

    /// Payload as shared `Bytes` (a reference count, not a copy).
    pub fn body_bytes(&self) -> Bytes {
        self.inner.body.clone()
    }

    header_accessors!();

    /// FIFO message group, if any.
    pub fn message_group(&self) -> Option<&str> {
        self.inner.message_group.as_deref()
    }

    /// Delivery time (DELAY message), if any.
    pub fn delivery_time(&self) -> Option<SystemTime> {
        self.inner.deliver_at
    }

    /// The type the message is sent as (without transactions): FIFO with a
    /// group, DELAY with a delivery time, NORMAL otherwise.
    pub fn message_type(&self) -> MessageType {
        if self.inner.message_group.is_some() {
            MessageType::Fifo
        } else if self.inner.deliver_at.is_some() {
            MessageType::Delay
        } else {
            MessageType::Normal
        }
    }
}

/// Builds a [`Message`].
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    fields: Fields,
    /// A setter's input that cannot be represented, reported by `build`.
    problem: Option<String>,
}

impl MessageBuilder {
    /// Sets the tag consumers can filter on.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.fields.tag = Some(tag.into());
        self
    }

    /// Adds a key (for lookups).
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.fields.keys.push(key.into());
        self
    }

    /// Sets a user property.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.properties.insert(key.into(), value.into());
        self
    }

    /// Makes the message FIFO within `group` (for FIFO topics).
    pub fn message_group(mut self, group: impl Into<String>) -> Self {
        self.fields.message_group = Some(group.into());
        self
    }

    /// Makes the message a DELAY message delivered at `at` (for delay topics).
    pub fn delivery_time(mut self, at: SystemTime) -> Self {
        self.fields.deliver_at = Some(at);
        self
    }

    /// Shorthand for [`delivery_time`](Self::delivery_time)`(now + delay)`.
    pub fn delay(mut self, delay: Duration) -> Self {
        match SystemTime::now().checked_add(delay) {
            Some(at) => self.delivery_time(at),
            None => {
                self.problem = Some(format!(
                    "a delay of {delay:?} is past any representable time"
                ));
                self
            }
        }
    }

    /// Checks what the server would reject anyway, with a clearer message,
    /// and builds the message.
    pub fn build(self) -> Result<Message> {
        if let Some(problem) = self.problem {
            return Err(Error::InvalidArgument(problem));
        }
        let f = &self.fields;
        if f.topic.trim().is_empty() {
            return Err(Error::invalid("the topic name is empty"));
        }
        if f.message_group.is_some() && f.deliver_at.is_some() {
            return Err(Error::invalid(
                "a message cannot have both a message group and a delivery time",
            ));
        }
        if let Some(k) = f.properties.keys().find(|k| k.trim().is_empty()) {
            return Err(Error::invalid(format!("property key {k:?} is blank")));
        }
        if let Some(tag) = &f.tag {
            if tag.trim().is_empty() || tag.contains('|') {
                return Err(Error::invalid(format!(
                    "tag {tag:?} is blank or contains '|'"
                )));
            }
        }
        if f.message_group
            .as_ref()
            .is_some_and(|g| g.trim().is_empty())
        {
            return Err(Error::invalid("the message group is blank"));
        }
        Ok(Message {
            inner: Arc::new(self.fields),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_checks_fields() {
        assert!(Message::builder("t", "x").tag("a|b").build().is_err());
        assert!(Message::builder("t", "x")
            .message_group(" ")
            .build()
            .is_err());
        assert!(Message::builder("", "x").build().is_err());
        assert!(Message::builder(" ", "x").build().is_err());
        assert!(Message::builder("t", "x")
            .property(" ", "v")
            .build()
            .is_err());
        let both = Message::builder("t", "x")
            .message_group("g")
            .delay(Duration::from_secs(1))
            .build();
        assert!(matches!(both, Err(Error::InvalidArgument(_))));
        let m = Message::builder("t", "x")
            .key("k")
            .property("p", "v")
            .build()
            .unwrap();
        assert_eq!(m.keys(), ["k"]);
        assert_eq!(m.properties().get("p").map(String::as_str), Some("v"));
        assert_eq!(m.message_type(), MessageType::Normal);
        let too_far = Message::builder("t", "x").delay(Duration::MAX).build();
        assert!(matches!(too_far, Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn message_type_follows_fields() {
        let fifo = Message::builder("t", "x")
            .message_group("g")
            .build()
            .unwrap();
        assert_eq!(fifo.message_type(), MessageType::Fifo);
        let delay = Message::builder("t", "x")
            .delivery_time(SystemTime::now())
            .build()
            .unwrap();
        assert_eq!(delay.message_type(), MessageType::Delay);
    }
}
