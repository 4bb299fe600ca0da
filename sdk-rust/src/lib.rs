//! Pier's Rust client: producers and consumers speaking the RocketMQ 5 gRPC
//! protocol (`apache.rocketmq.v2`), for Pier and Apache RocketMQ 5 proxies.
//!
//! - [`Producer`]: [`send`](Producer::send) returns once the message is
//!   durable; batches, FIFO (message group), delay (delivery time),
//!   [`recall`](Producer::recall) of delay messages, and transactions
//!   ([`Transaction`], answered later through a [`TransactionChecker`]).
//! - [`SimpleConsumer`]: [`receive`](SimpleConsumer::receive) with long
//!   polling, [`ack`](SimpleConsumer::ack),
//!   [`change_invisible_duration`](SimpleConsumer::change_invisible_duration).
//! - [`PushConsumer`]: a listener called for each message, with a bounded
//!   cache, FIFO consumption per message group when the server says the
//!   group is FIFO, retries and dead-lettering, and a graceful shutdown.
//!
//! Every client takes a [`ClientConfig`]: one or several addresses (calls
//! fail over between them), a namespace, credentials (every call is signed)
//! and a request timeout. Each client keeps one Telemetry session per
//! address: the settings exchange (the server's settings apply, hot updates
//! included), heartbeats, reconnection with back-off, and transaction checks.
//!
//! Errors are one [`Error`] type; a server's refusal keeps the protocol's
//! code ([`Error::code`]), and a code newer than this crate is reported, not
//! a panic.
//!
//! ```no_run
//! # async fn demo() -> pier::Result<()> {
//! use std::time::Duration;
//! use pier::{ClientConfig, FilterExpression, Message, Producer, SimpleConsumer};
//!
//! let config = ClientConfig::new("127.0.0.1:8081")?;
//! let producer = Producer::builder(config.clone()).topic("orders").start().await?;
//! producer.send(&Message::builder("orders", "hello").tag("new").build()?).await?;
//!
//! let consumer = SimpleConsumer::builder(config, "billing")
//!     .subscribe("orders", FilterExpression::all())
//!     .await_duration(Duration::from_secs(5))
//!     .start()
//!     .await?;
//! for m in consumer.receive(16, Duration::from_secs(30)).await? {
//!     println!("{}", m.body_text());
//!     consumer.ack(&m).await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Lower layers, used by the `pier` command-line tool: [`connect`]
//! (headers, deadlines, a single connection) and [`admin`] (Pier's topic
//! and group admin API).
//!
//! # Modules, lowest layer first
//!
//! Each module uses only modules above it in this list:
//!
//! | module | owns |
//! |---|---|
//! | [`error`] | the one [`Error`] type, its protocol code and the `check` of body statuses |
//! | `sign`, `time`, `identity` | the `authorization` signature; protobuf time forms and UTC dates; host name, client and message ids |
//! | `addr`, `config` | [`ServerAddr`]; [`ClientConfig`] and [`Credentials`] |
//! | [`connect`] | the headers of every call, channel settings, deadlines, one [`connect::Connection`] |
//! | `message`, `retry` | the message model ([`Message`], [`MessageView`]) and its wire form; retry delays |
//! | `cluster` | the address set of a client, with fail-over |
//! | [`admin`] | `pier.admin.v1` over a connection |
//! | `session` | a client's core (settings, calls, background tasks, shutdown) and its Telemetry sessions |
//! | `producer` | [`Producer`], [`Transaction`], transaction checks |
//! | `consumer` | what consumers share; [`SimpleConsumer`]; [`PushConsumer`] (cache, receive loops, consumption) |

#![warn(missing_docs)]

mod addr;
pub mod admin;
mod cluster;
mod config;
pub mod connect;
mod consumer;
pub mod error;
mod identity;
mod message;
mod producer;
mod retry;
mod session;
mod sign;
pub mod time;

pub use addr::ServerAddr;
pub use config::{ClientConfig, Credentials, TlsTrust};
pub use consumer::push::{ConsumeResult, MessageListener, PushConsumer, PushConsumerBuilder};
pub use consumer::simple::{SimpleConsumer, SimpleConsumerBuilder};
pub use consumer::FilterExpression;
pub use error::{Error, Result};
pub use message::{Message, MessageBuilder, MessageView};
pub use pier_proto::rocketmq::Code;
pub use producer::{
    Producer, ProducerBuilder, SendReceipt, Transaction, TransactionChecker, TransactionResolution,
};
