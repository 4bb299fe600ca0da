//! Reaching a Pier server: the headers every call carries, the channel
//! settings, deadlines, and a single [`Connection`] (what the `pier` tool
//! and the admin API use).
//!
//! Every call sends (protocol.md §5):
//!
//! | header | value |
//! |---|---|
//! | `x-mq-client-id` | one id per client: `hostname@pid@<seq>@<random>` (a single [`Connection`] uses one id per process) |
//! | `x-mq-language` | `RUST` |
//! | `x-mq-protocol` | `v2` |
//! | `x-mq-client-version` | this crate's version (never `5.0.0`, which the server treats as the old `rocketmq` crate) |
//! | `x-mq-request-id` | a UUID per call |
//! | `x-mq-namespace` | the namespace, when one is configured |
//! | `x-mq-date-time`, `authorization` | with credentials: the `MQv2-HMAC-SHA1` signature of the date-time |

use std::future::Future;
use std::time::{Duration, SystemTime};

use pier_proto::admin::admin_service_client::AdminServiceClient;
use pier_proto::rocketmq::messaging_service_client::MessagingServiceClient;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

pub use crate::addr::ServerAddr;
use crate::config::{Credentials, TlsTrust};
use crate::error::{Error, Result};
use crate::identity;
use crate::sign;

/// Where the CLI connects when told nothing else.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:8081";

/// Largest gRPC message sent or accepted (the server uses the same limit).
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// Sent as `x-mq-client-version`.
pub const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Sent as `x-mq-language`.
pub const LANGUAGE: &str = "RUST";

/// Sent as `x-mq-protocol`.
pub const PROTOCOL: &str = "v2";

/// Adds the protocol's headers to every call: identity, namespace and, with
/// credentials, the `authorization` signature (protocol.md §5).
#[derive(Debug, Clone)]
pub struct Headers {
    client_id: AsciiMetadataValue,
    version: AsciiMetadataValue,
    namespace: Option<AsciiMetadataValue>,
    credentials: Option<Credentials>,
}

impl Headers {
    /// Headers with this process's client id and [`CLIENT_VERSION`].
    pub fn new() -> Headers {
        Headers {
            client_id: AsciiMetadataValue::try_from(identity::client_id())
                .unwrap_or_else(|_| AsciiMetadataValue::from_static("pier@0@0")),
            version: AsciiMetadataValue::from_static(CLIENT_VERSION),
            namespace: None,
            credentials: None,
        }
    }

    /// Headers of one client: its own id, namespace and credentials.
    pub fn for_client(
        client_id: &str,
        namespace: &str,
        credentials: Option<Credentials>,
    ) -> Result<Headers> {
        let ascii = |what: &str, v: &str| {
            AsciiMetadataValue::try_from(v)
                .map_err(|_| Error::invalid(format!("the {what} {v:?} is not printable ASCII")))
        };
        let namespace = if namespace.is_empty() {
            None
        } else {
            Some(ascii("namespace", namespace)?)
        };
        if let Some(c) = &credentials {
            ascii("access key", c.access_key())?;
            if let Some(t) = c.security_token() {
                ascii("security token", t)?;
            }
        }
        Ok(Headers {
            client_id: ascii("client id", client_id)?,
            version: AsciiMetadataValue::from_static(CLIENT_VERSION),
            namespace,
            credentials,
        })
    }

    /// The client id these headers send.
    pub fn client_id(&self) -> &str {
        self.client_id.to_str().unwrap_or_default()
    }
}

impl Default for Headers {
    fn default() -> Headers {
        Headers::new()
    }
}

impl Interceptor for Headers {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let md = request.metadata_mut();
        md.insert("x-mq-client-id", self.client_id.clone());
        md.insert("x-mq-language", AsciiMetadataValue::from_static(LANGUAGE));
        md.insert("x-mq-protocol", AsciiMetadataValue::from_static(PROTOCOL));
        md.insert("x-mq-client-version", self.version.clone());
        if let Ok(id) = AsciiMetadataValue::try_from(uuid::Uuid::new_v4().to_string()) {
            md.insert("x-mq-request-id", id);
        }
        if let Some(ns) = &self.namespace {
            md.insert("x-mq-namespace", ns.clone());
        }
        if let Some(c) = &self.credentials {
            let now = sign::date_time(SystemTime::now());
            let auth = sign::authorization(c.access_key(), c.secret_key(), &now);
            // Both are ASCII: a compact date and hex, with an ASCII key
            // (checked in `for_client`).
            if let (Ok(now), Ok(auth)) = (
                AsciiMetadataValue::try_from(now),
                AsciiMetadataValue::try_from(auth),
            ) {
                md.insert("x-mq-date-time", now);
                md.insert("authorization", auth);
            }
            if let Some(t) = c
                .security_token()
                .and_then(|t| AsciiMetadataValue::try_from(t).ok())
            {
                md.insert("x-mq-session-token", t);
            }
        }
        Ok(request)
    }
}

/// A channel wrapped with [`Headers`].
pub type HeaderChannel = InterceptedService<Channel, Headers>;

/// Timeouts of a [`Connection`].
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// How long establishing the TCP/HTTP-2 connection may take.
    pub connect_timeout: Duration,
    /// Deadline of unary calls (long polls compute their own).
    pub request_timeout: Duration,
    /// TLS, and what it trusts (`None`: plaintext).
    pub tls: Option<TlsTrust>,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// An established connection to one Pier server; cheap to clone.
#[derive(Debug, Clone)]
pub struct Connection {
    addr: ServerAddr,
    channel: Channel,
    headers: Headers,
    request_timeout: Duration,
}

impl Connection {
    /// Dials `addr` and waits until the connection is up.
    pub async fn connect(addr: ServerAddr, options: ConnectOptions) -> Result<Connection> {
        let endpoint = endpoint(&addr, options.connect_timeout, options.tls.as_ref())?;
        let channel = match tokio::time::timeout(options.connect_timeout, endpoint.connect()).await
        {
            Ok(r) => r.map_err(|source| Error::Transport {
                endpoint: addr.to_string(),
                source,
            })?,
            Err(_) => {
                return Err(Error::rpc(
                    tonic::Code::DeadlineExceeded,
                    format!(
                        "cannot connect to {addr}: no connection within {:?}",
                        options.connect_timeout
                    ),
                ))
            }
        };
        Ok(Connection {
            addr,
            channel,
            headers: Headers::new(),
            request_timeout: options.request_timeout,
        })
    }

    /// Signs every call of this connection with `credentials` (the
    /// `authorization` header of a user of the server).
    pub fn with_credentials(mut self, credentials: Credentials) -> Result<Connection> {
        self.headers = Headers::for_client(self.headers.client_id(), "", Some(credentials))?;
        Ok(self)
    }

    /// The address this connection dialled.
    pub fn addr(&self) -> &ServerAddr {
        &self.addr
    }

    /// Deadline of unary calls.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The client id sent on every call.
    pub fn client_id(&self) -> &str {
        self.headers.client_id()
    }

    /// A `pier.admin.v1.AdminService` client over this connection.
    pub fn admin_client(&self) -> AdminServiceClient<HeaderChannel> {
        AdminServiceClient::with_interceptor(self.channel.clone(), self.headers.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }

    /// A `pier.admin.v1.ProxyAdminService` client over this connection (what
    /// the proxy itself knows: its clients).
    pub fn proxy_admin_client(
        &self,
    ) -> pier_proto::admin::proxy_admin_service_client::ProxyAdminServiceClient<HeaderChannel> {
        pier_proto::admin::proxy_admin_service_client::ProxyAdminServiceClient::with_interceptor(
            self.channel.clone(),
            self.headers.clone(),
        )
    }

    /// An `apache.rocketmq.v2.MessagingService` client over this connection.
    pub fn messaging_client(&self) -> MessagingServiceClient<HeaderChannel> {
        MessagingServiceClient::with_interceptor(self.channel.clone(), self.headers.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }
}

/// The channel settings every connection uses: `addr` with the crate's
/// user agent, no Nagle delay and HTTP/2 keep-alives (a dead peer is noticed
/// within the keep-alive timeout instead of at the next call's deadline).
///
/// With `tls`, the channel speaks TLS (ALPN `h2`), verifying the server's
/// certificate against `tls` for the host of `addr`.
pub(crate) fn endpoint(
    addr: &ServerAddr,
    connect_timeout: Duration,
    tls: Option<&TlsTrust>,
) -> Result<Endpoint> {
    let transport = |source| Error::Transport {
        endpoint: addr.to_string(),
        source,
    };
    let mut endpoint = match tls {
        None => Endpoint::from_shared(addr.uri()).map_err(transport)?,
        Some(trust) => Endpoint::from_shared(format!("https://{addr}"))
            .map_err(transport)?
            .tls_config(tls_config(trust)?)
            .map_err(transport)?,
    };
    endpoint = endpoint.connect_timeout(connect_timeout);
    Ok(endpoint
        .user_agent(format!("pier-sdk/{CLIENT_VERSION}"))
        .map_err(transport)?
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true))
}

/// tonic's TLS settings for `trust` (rustls with `ring`).
fn tls_config(trust: &TlsTrust) -> Result<ClientTlsConfig> {
    Ok(match trust {
        TlsTrust::SystemRoots => ClientTlsConfig::new().with_native_roots(),
        TlsTrust::CaFile(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                Error::invalid(format!("cannot read TLS CA file {}: {e}", path.display()))
            })?;
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))
        }
    })
}

/// A request carrying `grpc-timeout = timeout`.
pub(crate) fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(timeout);
    r
}

/// Runs `call` with a client-side deadline: tonic only sends `grpc-timeout`
/// and does not enforce it, so a silent server must not hang the caller.
pub(crate) async fn deadline<T, F>(timeout: Duration, call: F) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let expired = || {
        Error::rpc(
            tonic::Code::DeadlineExceeded,
            format!("no answer from the server within {timeout:?}"),
        )
    };
    match tokio::time::timeout(timeout, call).await {
        // tonic enforces `grpc-timeout` too and reports it as CANCELLED.
        Err(_) => Err(expired()),
        Ok(Err(Error::Rpc {
            code: tonic::Code::Cancelled,
            message,
            ..
        })) if message == "Timeout expired" => Err(expired()),
        Ok(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deadlines_are_reported_as_such() {
        let t = Duration::from_millis(20);
        let slow = deadline(t, async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        })
        .await;
        assert!(
            matches!(
                slow,
                Err(Error::Rpc {
                    code: tonic::Code::DeadlineExceeded,
                    ..
                })
            ),
            "{slow:?}"
        );
        // tonic's own timeout comes as CANCELLED "Timeout expired"; any
        // other cancellation stays one.
        for (message, code) in [
            ("Timeout expired", tonic::Code::DeadlineExceeded),
            ("stop", tonic::Code::Cancelled),
        ] {
            let cancelled = deadline(t, async {
                Err::<(), _>(Error::from(tonic::Status::cancelled(message)))
            })
            .await;
            assert_eq!(cancelled.unwrap_err().grpc_code(), Some(code), "{message}");
        }
        assert_eq!(deadline(t, async { Ok(7) }).await.unwrap(), 7);
    }

    #[test]
    fn headers_are_added() {
        let mut h = Headers::new();
        let r = h.call(tonic::Request::new(())).unwrap();
        let md = r.metadata();
        let get = |k: &str| md.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(
            get("x-mq-client-id").as_deref(),
            Some(identity::client_id())
        );
        assert_eq!(get("x-mq-language").as_deref(), Some("RUST"));
        assert_eq!(get("x-mq-protocol").as_deref(), Some("v2"));
        let version = get("x-mq-client-version").unwrap();
        assert_eq!(version, CLIENT_VERSION);
        // The server special-cases the old `rocketmq` 5.0.0 crate.
        assert!(!version.starts_with("5.0.0"));
        assert!(get("authorization").is_none());
        assert!(get("x-mq-namespace").is_none());
    }

    #[test]
    fn client_headers_sign_and_name_the_namespace() {
        let creds = Credentials::new("AK1", "SK1");
        let mut h = Headers::for_client("c@1@0@x", "staging", Some(creds)).unwrap();
        let r = h.call(tonic::Request::new(())).unwrap();
        let md = r.metadata();
        let get = |k: &str| md.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(get("x-mq-client-id").as_deref(), Some("c@1@0@x"));
        assert_eq!(get("x-mq-namespace").as_deref(), Some("staging"));
        let date = get("x-mq-date-time").unwrap();
        assert_eq!(date.len(), 16, "{date}");
        assert_eq!(
            get("authorization").unwrap(),
            sign::authorization("AK1", "SK1", &date)
        );
        assert!(get("x-mq-request-id").is_some());
        assert!(Headers::for_client("c", "ns\n\u{e9}", None).is_err());
    }
}
