//! Compiles the echo proto of the tonic-echo ceiling with protox (pure Rust,
//! no system `protoc`), as proto/build.rs does for Pier's protocols.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    println!(
        "cargo:rerun-if-changed={}",
        root.join("echo.proto").display()
    );
    let fds = protox::compile(["echo.proto"], [&root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .skip_protoc_run()
        .compile_fds(fds)?;
    Ok(())
}
