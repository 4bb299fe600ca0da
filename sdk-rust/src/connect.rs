//! Reaching a Pier server: endpoint parsing, the client identity, the
//! headers every call carries, and the shared gRPC channel.
//!
//! Every call sends (protocol.md §5):
//!
//! | header | value |
//! |---|---|
//! | `x-mq-client-id` | one id per client: `hostname@pid@<seq>@<random>` ([`new_client_id`]; the CLI's single [`Connection`] uses the process id [`client_id`]) |
//! | `x-mq-language` | `RUST` |
//! | `x-mq-protocol` | `v2` |
//! | `x-mq-client-version` | this crate's version (never `5.0.0`, which the server treats as the old `rocketmq` crate) |
//! | `x-mq-request-id` | a UUID per call |
//! | `x-mq-namespace` | the namespace, when one is configured |
//! | `x-mq-date-time`, `authorization` | with credentials: the `MQv2-HMAC-SHA1` signature of the date-time |

use std::fmt;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use pier_proto::admin::admin_service_client::AdminServiceClient;
use pier_proto::rocketmq::messaging_service_client::MessagingServiceClient;
use pier_proto::rocketmq::{Address, AddressScheme, Endpoints};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};

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

/// A server address: `host:port`, optionally written `http://host:port`.
///
/// IPv6 literals are written in brackets (`[::1]:8081`). TLS (`https://`) is
/// not supported.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerAddr {
    host: String,
    port: u16,
}

impl ServerAddr {
    /// Builds an address from its parts (`host` without brackets).
    pub fn new(host: impl Into<String>, port: u16) -> Result<ServerAddr> {
        let host = host.into();
        if host.is_empty() {
            return Err(Error::invalid("the endpoint host is empty"));
        }
        if port == 0 {
            return Err(Error::invalid("the endpoint port must not be 0"));
        }
        if host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '@')
        {
            return Err(Error::invalid(format!("{host:?} is not a valid host")));
        }
        Ok(ServerAddr { host, port })
    }

    /// Host name or IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URI tonic dials: `http://host:port`.
    pub fn uri(&self) -> String {
        format!("http://{self}")
    }

    /// The address scheme RocketMQ uses for this host.
    pub fn scheme(&self) -> AddressScheme {
        if self.host.parse::<Ipv4Addr>().is_ok() {
            AddressScheme::IPv4
        } else if self.host.parse::<Ipv6Addr>().is_ok() {
            AddressScheme::IPv6
        } else {
            AddressScheme::DomainName
        }
    }

    /// This address as `apache.rocketmq.v2.Endpoints` (one address).
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            scheme: self.scheme() as i32,
            addresses: vec![Address {
                host: self.host.clone(),
                port: i32::from(self.port),
            }],
        }
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for ServerAddr {
    type Err = Error;

    fn from_str(s: &str) -> Result<ServerAddr> {
        let input = s.trim();
        let bad = |why: &str| {
            Error::invalid(format!(
                "invalid endpoint {input:?}: {why} (expected host:port or http://host:port)"
            ))
        };
        let rest = if let Some((scheme, rest)) = input.split_once("://") {
            match scheme.to_ascii_lowercase().as_str() {
                "http" => rest,
                "https" => return Err(bad("TLS (https) is not supported")),
                _ => return Err(bad("unknown scheme")),
            }
        } else {
            input
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(bad("a path is not allowed"));
        }
        let (host, port) = if let Some(after) = rest.strip_prefix('[') {
            let (host, tail) = after.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = tail.strip_prefix(':').ok_or_else(|| bad("no port"))?;
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address in brackets"));
            }
            (host, port)
        } else {
            let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("no port"))?;
            if host.contains(':') {
                return Err(bad("write IPv6 addresses in brackets, e.g. [::1]:8081"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the port is not a number from 1 to 65535"))?;
        ServerAddr::new(host, port).map_err(|e| bad(&e.to_string()))
    }
}

/// This machine's host name, or `localhost` when it cannot be found.
pub fn hostname() -> String {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let from_file = |p: &str| std::fs::read_to_string(p).ok();
        let from_env = |k: &str| std::env::var(k).ok();
        from_file("/proc/sys/kernel/hostname")
            .or_else(|| from_file("/etc/hostname"))
            .or_else(|| from_env("HOSTNAME"))
            .or_else(|| from_env("COMPUTERNAME"))
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned())
    })
    .clone()
}

/// The process's client id, `hostname@pid@<random>`: the same for every
/// connection of this process, printable ASCII only (a header value).
pub fn client_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let random = uuid::Uuid::new_v4().simple().to_string();
        make_client_id(&hostname(), std::process::id(), &random[..12])
    })
}

fn make_client_id(host: &str, pid: u32, random: &str) -> String {
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '@' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{host}@{pid}@{random}")
}

/// A fresh client id for one client instance (producer or consumer):
/// `hostname@pid@<sequence>@<random>`. Each client has its own, because the
/// server keys a client's Telemetry session and settings by it.
pub fn new_client_id() -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let random = uuid::Uuid::new_v4().simple().to_string();
    make_client_id(
        &hostname(),
        std::process::id(),
        &format!("{seq}@{}", &random[..8]),
    )
}

/// Adds the protocol's headers to every call: identity, namespace and, with
/// credentials, the `authorization` signature (protocol.md §5).
#[derive(Debug, Clone)]
pub struct Headers {
    client_id: AsciiMetadataValue,
    version: AsciiMetadataValue,
    namespace: Option<AsciiMetadataValue>,
    credentials: Option<crate::config::Credentials>,
}

impl Headers {
    /// Headers with this process's [`client_id`] and [`CLIENT_VERSION`].
    pub fn new() -> Headers {
        Headers {
            client_id: AsciiMetadataValue::try_from(client_id())
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
        credentials: Option<crate::config::Credentials>,
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
            let now = crate::sign::date_time(std::time::SystemTime::now());
            let auth = crate::sign::authorization(c.access_key(), c.secret_key(), &now);
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
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
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
        let transport = |source| Error::Transport {
            endpoint: addr.to_string(),
            source,
        };
        let endpoint = Endpoint::from_shared(addr.uri())
            .map_err(transport)?
            .user_agent(format!("pier-sdk/{CLIENT_VERSION}"))
            .map_err(transport)?
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        let channel = match tokio::time::timeout(options.connect_timeout, endpoint.connect()).await
        {
            Ok(r) => r.map_err(transport)?,
            Err(_) => {
                return Err(Error::Rpc {
                    code: tonic::Code::DeadlineExceeded,
                    message: format!(
                        "cannot connect to {addr}: no connection within {:?}",
                        options.connect_timeout
                    ),
                })
            }
        };
        Ok(Connection {
            addr,
            channel,
            headers: Headers::new(),
            request_timeout: options.request_timeout,
        })
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

    /// An `apache.rocketmq.v2.MessagingService` client over this connection.
    pub fn messaging_client(&self) -> MessagingServiceClient<HeaderChannel> {
        MessagingServiceClient::with_interceptor(self.channel.clone(), self.headers.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }
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
    let expired = || Error::Rpc {
        code: tonic::Code::DeadlineExceeded,
        message: format!("no answer from the server within {timeout:?}"),
    };
    match tokio::time::timeout(timeout, call).await {
        // tonic enforces `grpc-timeout` too and reports it as CANCELLED.
        Err(_) => Err(expired()),
        Ok(Err(Error::Rpc {
            code: tonic::Code::Cancelled,
            message,
        })) if message == "Timeout expired" => Err(expired()),
        Ok(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ServerAddr> {
        s.parse()
    }

    #[test]
    fn host_port() {
        let a = parse("127.0.0.1:8081").unwrap();
        assert_eq!((a.host(), a.port()), ("127.0.0.1", 8081));
        assert_eq!(a.uri(), "http://127.0.0.1:8081");
        assert_eq!(a.to_string(), "127.0.0.1:8081");
        assert_eq!(a.scheme(), AddressScheme::IPv4);
    }

    #[test]
    fn http_scheme_and_trailing_slash() {
        let a = parse("http://mq.example.com:9876/").unwrap();
        assert_eq!((a.host(), a.port()), ("mq.example.com", 9876));
        assert_eq!(a.scheme(), AddressScheme::DomainName);
        assert_eq!(parse("HTTP://localhost:1").unwrap().host(), "localhost");
        assert_eq!(parse("  localhost:8081 ").unwrap().port(), 8081);
    }

    #[test]
    fn ipv6_in_brackets() {
        let a = parse("[::1]:8081").unwrap();
        assert_eq!(a.host(), "::1");
        assert_eq!(a.uri(), "http://[::1]:8081");
        assert_eq!(a.scheme(), AddressScheme::IPv6);
        let e = a.endpoints();
        assert_eq!(e.scheme, AddressScheme::IPv6 as i32);
        assert_eq!(e.addresses[0].host, "::1");
        assert_eq!(e.addresses[0].port, 8081);
        assert_eq!(parse("http://[fe80::2]:1/").unwrap().host(), "fe80::2");
    }

    #[test]
    fn rejects_bad_endpoints() {
        for bad in [
            "",
            "localhost",
            "localhost:",
            ":8081",
            "localhost:0",
            "localhost:65536",
            "localhost:80a",
            "https://localhost:8081",
            "grpc://localhost:8081",
            "http://localhost:8081/path",
            "::1:8081",
            "[::1]",
            "[::1:8081",
            "[not-ip]:8081",
            "a b:8081",
        ] {
            let r = parse(bad);
            assert!(
                matches!(r, Err(Error::InvalidArgument(_))),
                "{bad:?} gave {r:?}"
            );
        }
    }

    #[test]
    fn endpoint_error_names_the_input() {
        let e = parse("https://h:1").unwrap_err().to_string();
        assert!(e.contains("https://h:1") && e.contains("TLS"), "{e}");
    }

    #[test]
    fn client_id_is_ascii_and_stable() {
        assert_eq!(make_client_id("höst @x", 42, "abc"), "h_st__x@42@abc");
        let id = client_id();
        assert_eq!(id, client_id());
        assert!(id.chars().all(|c| c.is_ascii_graphic()), "{id}");
        assert_eq!(id.split('@').count(), 3, "{id}");
        assert!(id.contains(&format!("@{}@", std::process::id())));
    }

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
        let tonic_timeout = deadline(t, async {
            Err::<(), _>(Error::from(tonic::Status::cancelled("Timeout expired")))
        })
        .await;
        assert_eq!(
            tonic_timeout.unwrap_err().grpc_code(),
            Some(tonic::Code::DeadlineExceeded)
        );
        let cancelled = deadline(t, async {
            Err::<(), _>(Error::from(tonic::Status::cancelled("stop")))
        })
        .await;
        assert_eq!(
            cancelled.unwrap_err().grpc_code(),
            Some(tonic::Code::Cancelled)
        );
        assert_eq!(deadline(t, async { Ok(7) }).await.unwrap(), 7);
    }

    #[test]
    fn headers_are_added() {
        let mut h = Headers::new();
        let r = h.call(tonic::Request::new(())).unwrap();
        let md = r.metadata();
        let get = |k: &str| md.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(get("x-mq-client-id").as_deref(), Some(client_id()));
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
        let creds = crate::config::Credentials::new("AK1", "SK1");
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
            crate::sign::authorization("AK1", "SK1", &date)
        );
        assert!(get("x-mq-request-id").is_some());
        assert!(Headers::for_client("c", "ns\n\u{e9}", None).is_err());
        assert_ne!(new_client_id(), new_client_id());
    }
}
