//! Pier's proxy: serves `apache.rocketmq.v2` to the official RocketMQ 5
//! clients and `pier.admin.v1` to operators, over a store reached through
//! [`pier_store::StoreApi`]. It keeps no durable state, so any number of
//! proxies can serve the same store and a client can move between them.
//!
//! - [`service`]: the MessagingService handlers, one module per RPC family;
//! - [`layers`]: builds the client-facing services and the tower layer
//!   stack around them (where auth, metrics and tracing go);
//! - [`validate`]: input rules and their codes;
//! - [`limits`]: request-rate limits per client and user, the limit flags;
//! - [`status`]: the one mapping of failures to protocol codes;
//! - [`metrics`]: what the proxy counts (RPC latency, connections, store
//!   calls, refused receipt handles);
//! - [`faults`]: the rate-limited WARN line for failures the server caused;
//! - [`auth`]: authentication (signatures) and ACLs of the client port;
//! - [`receipt`]: authenticated, self-describing receipt handles;
//! - [`session`]: Telemetry sessions and settings;
//! - [`renew`]: background renewal of push consumers' receipts;
//! - [`convert`]: client messages <-> stored messages;
//! - [`listener`]: the client port's TLS and connection limit (accepting
//!   is `pier_node::listener`);
//! - [`authority`]: lets any HTTP/2 `:authority` through to the services;
//! - [`trace`]: the send and receive spans that carry a message's trace;
//! - [`server`]: putting it together and stopping gracefully.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod authority;
pub mod config;
pub mod context;
pub mod convert;
pub mod faults;
pub mod layers;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod receipt;
pub mod renew;
pub mod server;
pub mod service;
pub mod session;
pub mod shape;
pub mod status;
pub mod trace;
pub mod validate;

pub use config::ProxyConfig;
