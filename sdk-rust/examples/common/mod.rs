//! What every example shares: where the server is.

use pier::ClientConfig;

/// The configuration for the endpoint named by the first argument, else
/// `PIER_ENDPOINT`, else 127.0.0.1:8081 (several addresses:
/// `host1:8081,host2:8081`).
pub fn config() -> pier::Result<ClientConfig> {
    let endpoint = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PIER_ENDPOINT").ok())
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    ClientConfig::new(&endpoint)
}
