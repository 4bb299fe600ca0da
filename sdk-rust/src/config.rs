//! Client configuration shared by producers and consumers: where the
//! servers are, which namespace, which credentials, and how long a call may
//! take.

use std::path::PathBuf;
use std::time::Duration;

use crate::addr::ServerAddr;
use crate::error::{Error, Result};

/// An access key and secret: every call is signed with them (protocol.md §5,
/// `MQv2-HMAC-SHA1`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key: String,
    secret_key: String,
    security_token: Option<String>,
}

impl Credentials {
    /// Credentials from an access key and its secret.
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Credentials {
        Credentials {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            security_token: None,
        }
    }

    /// Adds a session token, sent as `x-mq-session-token`.
    pub fn with_security_token(mut self, token: impl Into<String>) -> Credentials {
        self.security_token = Some(token.into());
        self
    }

    /// The access key (sent in clear as `Credential=`).
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    pub(crate) fn secret_key(&self) -> &str {
        &self.secret_key
    }

    pub(crate) fn security_token(&self) -> Option<&str> {
        self.security_token.as_deref()
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// Which certificates a TLS connection trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsTrust {
    /// The operating system's roots (`rustls-native-certs`: on Linux the
    /// distribution's bundle, or the file named by `SSL_CERT_FILE`).
    SystemRoots,
    /// Only the CA certificate(s) in this PEM file.
    CaFile(PathBuf),
}

/// How to reach a RocketMQ 5 / Pier cluster.
///
/// ```
/// use std::time::Duration;
/// use pier::ClientConfig;
///
/// let config = ClientConfig::new("10.0.0.1:8081,10.0.0.2:8081")?
///     .with_namespace("staging")
///     .with_request_timeout(Duration::from_secs(5));
/// assert_eq!(config.endpoints().len(), 2);
/// # Ok::<(), pier::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    endpoints: Vec<ServerAddr>,
    namespace: String,
    credentials: Option<Credentials>,
    tls: Option<TlsTrust>,
    request_timeout: Duration,
}

impl ClientConfig {
    /// A configuration for `endpoints`: one `host:port`, several separated
    /// by `,` or `;` (every address is used, with fail-over between them),
    /// or a DNS name (resolved on each connect, e.g. behind a load balancer).
    pub fn new(endpoints: &str) -> Result<ClientConfig> {
        let endpoints = endpoints
            .split([',', ';'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<ServerAddr>>>()?;
        ClientConfig::from_addrs(endpoints)
    }

    /// A configuration for already parsed addresses.
    pub fn from_addrs(endpoints: Vec<ServerAddr>) -> Result<ClientConfig> {
        if endpoints.is_empty() {
            return Err(Error::invalid("at least one endpoint is required"));
        }
        let mut unique: Vec<ServerAddr> = Vec::new();
        for e in endpoints {
            if !unique.contains(&e) {
                unique.push(e);
            }
        }
        Ok(ClientConfig {
            endpoints: unique,
            namespace: String::new(),
            credentials: None,
            tls: None,
            request_timeout: Duration::from_secs(3),
        })
    }

    /// Puts every topic and group in `namespace` (sent in each `Resource`
    /// and as `x-mq-namespace`).
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> ClientConfig {
        self.namespace = namespace.into();
        self
    }

    /// Signs every call with `credentials`.
    pub fn with_credentials(mut self, credentials: Credentials) -> ClientConfig {
        self.credentials = Some(credentials);
        self
    }

    /// Turns TLS on (trusting the system's roots, unless a CA was given
    /// with [`ClientConfig::with_tls_ca`]) or off. The server must offer
    /// ALPN `h2`, as Pier does.
    pub fn with_tls(mut self, on: bool) -> ClientConfig {
        self.tls = match (on, self.tls) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => Some(TlsTrust::SystemRoots),
        };
        self
    }

    /// Turns TLS on, trusting only the CA certificate(s) in the PEM file
    /// `ca` (read when the client connects).
    pub fn with_tls_ca(mut self, ca: impl Into<PathBuf>) -> ClientConfig {
        self.tls = Some(TlsTrust::CaFile(ca.into()));
        self
    }

    /// Deadline of every unary call (long polls add their polling time).
    /// Default 3 s.
    pub fn with_request_timeout(mut self, timeout: Duration) -> ClientConfig {
        self.request_timeout = timeout;
        self
    }

    /// The server addresses.
    pub fn endpoints(&self) -> &[ServerAddr] {
        &self.endpoints
    }

    /// The namespace (empty: none).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The credentials, if any.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// Whether TLS is on.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// What TLS trusts, when it is on.
    pub fn tls_trust(&self) -> Option<&TlsTrust> {
        self.tls.as_ref()
    }

    /// Deadline of unary calls.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Checks what can be checked before connecting.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.request_timeout.is_zero() {
            return Err(Error::invalid("the request timeout must be positive"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_endpoints_deduplicated() {
        let c = ClientConfig::new(" a:1, b:2;a:1 ").unwrap();
        let hosts: Vec<_> = c.endpoints().iter().map(ToString::to_string).collect();
        assert_eq!(hosts, vec!["a:1", "b:2"]);
        assert!(ClientConfig::new(" , ").is_err());
        assert!(ClientConfig::new("nope").is_err());
    }

    #[test]
    fn tls_switches_and_trusts() {
        let c = ClientConfig::new("a:1").unwrap();
        assert!(!c.tls());
        let c = c.with_tls(true);
        assert_eq!(c.tls_trust(), Some(&TlsTrust::SystemRoots));
        assert!(c.validate().is_ok());
        let c = c.with_tls_ca("/ca.pem").with_tls(true);
        assert_eq!(c.tls_trust(), Some(&TlsTrust::CaFile("/ca.pem".into())));
        assert!(!c.with_tls(false).tls());
    }

    #[test]
    fn secret_is_not_printed() {
        let c = Credentials::new("ak", "very-secret");
        assert!(!format!("{c:?}").contains("very-secret"));
    }
}
