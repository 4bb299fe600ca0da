//! Pier's store: every durable byte of a Pier deployment.
//!
//! - [`catalog`]: topics and consumer groups;
//! - [`commit`]: the group-commit thread that appends to queue logs;
//! - [`pop`]: per-group consumption state (cursors, in-flight deliveries);
//! - [`state_writer`]: the thread that persists consumption-state changes;
//! - `worker`: the channel-fed thread `commit` and `state_writer` run on;
//! - [`timer`]: delay messages waiting for their time;
//! - [`txn`]: half messages of transactions and their checks;
//! - [`retention`]: deleting expired messages, advancing low watermarks;
//! - [`store`]: [`Store`], the RocksDB-backed [`StoreApi`];
//! - [`remote`] / [`server`]: the same API over `pier.store.v1` gRPC;
//! - [`config`]: settings of a store node.

pub mod api;
pub mod catalog;
pub mod commit;
pub mod error;
pub mod filter;
pub mod keys;
pub mod config;
pub mod pop;
pub mod remote;
pub mod retention;
pub mod server;
pub mod state_writer;
pub mod store;
pub mod timer;
pub mod txn;
mod worker;

pub use api::StoreApi;
pub use commit::FlushMode;
pub use error::{Result, StoreError};
pub use remote::RemoteStore;
pub use store::{Store, StoreOptions};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
