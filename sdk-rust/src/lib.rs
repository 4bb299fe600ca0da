//! Client layer for Pier, used by the `pier` command-line tool.
//!
//! Pier speaks two gRPC APIs on every proxy port:
//!
//! - `apache.rocketmq.v2.MessagingService`, the RocketMQ 5 client protocol.
//!   Its business errors travel in the response body as a `Status` with a
//!   RocketMQ [`Code`](pier_proto::rocketmq::Code); [`messaging`] turns them
//!   into [`Error::Status`].
//! - `pier.admin.v1.AdminService`, topic and group management, which fails
//!   with plain gRPC status codes ([`Error::Rpc`]).
//!
//! Modules:
//!
//! - [`connect`]: endpoint parsing, the client identity and headers every
//!   call carries, and the shared gRPC channel ([`connect::Connection`]).
//! - [`admin`]: a thin wrapper over the admin service.
//! - [`messaging`]: sending one message, receiving and acknowledging.
//! - [`error`]: the crate's [`Error`] type.
//!
//! ```no_run
//! # async fn demo() -> pier::Result<()> {
//! use pier::connect::{ConnectOptions, Connection};
//! use pier::messaging::{Messaging, OutgoingMessage};
//!
//! let conn = Connection::connect("127.0.0.1:8081".parse()?, ConnectOptions::default()).await?;
//! let mut messaging = Messaging::new(&conn);
//! let receipt = messaging.send(&OutgoingMessage::new("orders", b"hello".to_vec())).await?;
//! println!("{} at offset {}", receipt.message_id, receipt.offset);
//! # Ok(())
//! # }
//! ```

pub mod admin;
pub mod connect;
pub mod error;
pub mod messaging;

pub use error::{Error, Result};
