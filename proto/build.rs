//! Compiles every .proto under this crate with protox (pure Rust, so no
//! system `protoc` is needed) and generates prost/tonic code from the result.
//! The encoded descriptor set is kept for gRPC server reflection.
//!
//! Message bodies are generated as `bytes::Bytes` rather than `Vec<u8>`: a
//! body decoded from a request, stored, read back and answered is then shared
//! by reference count instead of copied at every layer. Only the body fields
//! are switched; the other `bytes` fields (timers, nonces, secrets) are a few
//! dozen bytes, so `Vec<u8>` costs nothing there and keeps their users as
//! they are.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "apache/rocketmq/v2/definition.proto",
    "apache/rocketmq/v2/service.proto",
    "apache/rocketmq/v2/admin.proto",
    "pier/admin/v1/admin.proto",
    "pier/store/v1/store.proto",
];

/// The `bytes body` fields that carry a message's payload.
const BODIES: &[&str] = &[
    ".apache.rocketmq.v2.Message.body",
    ".apache.rocketmq.v2.AdminSendMessageRequest.body",
    ".pier.store.v1.StoredMessage.body",
    ".pier.admin.v1.FoundMessage.body",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    for p in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }

    let fds = protox::compile(PROTOS, [&root])?;
    let descriptor_path = out.join("pier_descriptor.bin");
    std::fs::write(&descriptor_path, prost::Message::encode_to_vec(&fds))?;

    let mut builder = tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run();
    for path in BODIES {
        builder = builder.bytes(path);
    }
    builder.compile_fds(fds)?;
    Ok(())
}
