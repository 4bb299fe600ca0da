//! Generated protocol code for Pier.
//!
//! - [`rocketmq`]: `apache.rocketmq.v2`, the client protocol (wire contract
//!   with the official RocketMQ 5 SDKs).
//! - [`admin`]: `pier.admin.v1`, topic and group management.
//! - [`store`]: `pier.store.v1`, proxy <-> store.

#![allow(clippy::all, clippy::pedantic)]

// The generated modules refer to each other by their package path
// (`super::super::admin::v1`), so they are nested as their packages are and
// re-exported under short names. Their docs are the .proto comments, which
// not every field carries (the tables of protocol.md document the rest).
#[allow(missing_docs)]
pub mod apache {
    pub mod rocketmq {
        pub mod v2 {
            tonic::include_proto!("apache.rocketmq.v2");
        }
    }
}

#[allow(missing_docs)]
pub mod pier {
    pub mod admin {
        pub mod v1 {
            tonic::include_proto!("pier.admin.v1");
        }
    }
    pub mod store {
        pub mod v1 {
            tonic::include_proto!("pier.store.v1");
        }
    }
}

pub use apache::rocketmq::v2 as rocketmq;
pub use pier::admin::v1 as admin;
pub use pier::store::v1 as store;

/// Encoded `FileDescriptorSet` of every Pier and RocketMQ proto, for server
/// reflection (grpcurl `list` / `describe`).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("pier_descriptor");
