//! Pier's store: every durable byte of a Pier deployment, behind one API
//! ([`StoreApi`]) that a proxy reaches in-process ([`Store`]) or over gRPC
//! ([`RemoteStore`], served by [`StoreEndpoint`]).
//!
//! Only that API, its errors and its settings are public. Inside, each
//! concern has one owner, and [`Store`] composes them:
//!
//! - `db`: RocksDB and nothing else touches it: column families, keys,
//!   writes, and the poison flag after a failed write;
//! - `clock`: where "now" comes from ([`Clock`]; tests use [`ManualClock`]);
//! - `catalog`: topics and consumer groups;
//! - `auth`: users, ACL rules, the key files (secrets at rest, receipts);
//!   its `policy` (what a rule means) is public, for the proxies;
//! - `log`: message logs: where an append goes, the group-commit thread;
//! - `pop`: consumption: cursors, in-flight deliveries, redelivery, DLQ;
//! - `fifo`: message-group ordering: lanes, locks, parked messages;
//! - `timer`: delay messages waiting for their time;
//! - `txn`: half messages of transactions and their checks;
//! - `retention`: deleting expired messages;
//! - `metrics`: what the store counts and its gauges (OpenTelemetry);
//! - `worker`: the one way a store thread is started and stopped;
//! - `remote` / `server`: the API over `pier.store.v1` gRPC;
//! - `link_auth`: who may call a store node: the cluster secret, its
//!   token (sent by `remote`) and its check (around `server`'s services);
//! - `config`: a store node's settings file and flags.

mod api;
pub mod auth;
mod catalog;
mod clock;
mod config;
mod db;
mod error;
mod fifo;
mod filter;
mod link_auth;
mod log;
mod metrics;
mod pop;
mod remote;
mod retention;
mod server;
mod store;
mod timer;
mod txn;
mod worker;

pub use api::{CheckStream, StoreApi};
pub use catalog::{reserved_group, reserved_topic, DEFAULT_MAX_ATTEMPTS};
pub use clock::{now_ms, Clock, ManualClock, SystemClock};
pub use config::{StoreNodeConfig, TxnCheckArgs};
pub use db::tune_wal;
pub use error::{ack_result, Result, StorageCause, StoreError};
pub use link_auth::{ClusterSecret, LinkGuard, LinkToken, Refusal, TOKEN_HEADER};
pub use log::FlushMode;
pub use metrics::{MAX_GROUP_LABELS, MAX_TOPIC_LABELS};
pub use remote::{LinkOptions, RemoteStore, MAX_GRPC_MESSAGE};
pub use server::{AdminEndpoint, StoreEndpoint};
pub use store::{Store, StoreOptions, DEFAULT_RETENTION_MS};
pub use txn::CheckPolicy;
