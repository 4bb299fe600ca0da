//! Server addresses: `host:port` as users write it, and as the protocol's
//! `Endpoints` carry it.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use pier_proto::rocketmq::{Address, AddressScheme, Endpoints};

use crate::error::{Error, Result};

/// A server address: `host:port`, optionally written `http://host:port`.
///
/// IPv6 literals are written in brackets (`[::1]:8081`). TLS is not part of
/// the address (`https://` is refused): it is turned on in the
/// [`crate::ClientConfig`].
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
                "https" => return Err(bad(
                    "for TLS, give host:port and turn TLS on (ClientConfig::with_tls, pier --tls)",
                )),
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
}
