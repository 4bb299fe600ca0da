//! Any HTTP/2 `:authority` reaches Pier's services (protocol.md §7): the
//! official Python client given two proxy addresses sends the whole list as
//! `:authority`, which `h2` alone refuses. Covered with the real client in
//! cluster mode, and with raw HTTP/2 requests carrying odd values.

use std::time::Duration;

use loona_hpack::{Decoder, Encoder};
use pier_proto::rocketmq::{
    Address, AddressScheme, Code, Endpoints, QueryRouteRequest, QueryRouteResponse, Resource,
};
use pier_tests::external::*;
use pier_tests::*;
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_with_two_proxy_addresses() {
    let tools = ensure_tools();
    let pier = Pier::start(Mode::Cluster, &[]).await;
    let c = &pier.raw;
    c.create_topic("py-two", 4).await;
    c.create_group("py-two-simple", 17).await;
    // The client's documented multi-address form: both proxies, ';'-joined.
    let both = pier.access_point.clone();

    let common = format!("--endpoint {both} --topic py-two --prefix two");
    let consumer = "--group py-two-simple --timeout 120";
    let got = python_send_then_receive(&tools, &common, 200, consumer, &[]).await;
    assert_eq!(got["received"], 200, "{got}");
    assert_eq!(got["duplicates"], 0, "{got}");
    assert_drained(c, "py-two-simple").await;
}

/// A byte stream RawH2 speaks over: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A minimal HTTP/2 client that sends whatever `:authority` bytes it is
/// given (the `h2` client refuses invalid ones), one call at a time.
struct RawH2 {
    tcp: Box<dyn Io>,
    encoder: Encoder<'static>,
    decoder: Decoder<'static>,
    next_stream: u32,
    input: Vec<u8>,
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS, once announced.
    max_streams: Option<u32>,
}

/// What came back for one call.
#[derive(Debug, Default)]
struct Reply {
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    data: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// The one gRPC message of a unary reply.
    fn message(&self) -> &[u8] {
        assert!(self.data.len() >= 5, "no gRPC message: {self:?}");
        let len = u32::from_be_bytes([self.data[1], self.data[2], self.data[3], self.data[4]]);
        assert_eq!(self.data[0], 0, "compressed reply");
        assert_eq!(self.data.len(), 5 + len as usize, "one message: {self:?}");
        &self.data[5..]
    }
}

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

impl RawH2 {
    async fn connect(endpoint: &str) -> RawH2 {
        let tcp = TcpStream::connect(endpoint).await.expect("connect");
        RawH2::over(Box::new(tcp)).await
    }

    /// Over TLS (ALPN h2), trusting `ca_pem`.
    async fn connect_tls(endpoint: &str, ca_pem: &[u8]) -> RawH2 {
        let tls = pier_tests::tls::tls_stream(endpoint, ca_pem, &[b"h2"])
            .await
            .expect("TLS connect");
        RawH2::over(Box::new(tls)).await
    }

    async fn over(mut tcp: Box<dyn Io>) -> RawH2 {
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend_from_slice(&frame(SETTINGS, 0, 0, &[]));
        tcp.write_all(&hello).await.expect("preface");
        RawH2 {
            tcp,
            // Like the clients: a 4096-byte dynamic table, so later calls
            // send the authority as a table reference.
            encoder: Encoder::new(),
            decoder: Decoder::new(),
            next_stream: 1,
            input: Vec::new(),
            max_streams: None,
        }
    }

    /// One unary gRPC call; panics on a stream reset or a GOAWAY.
    async fn call(&mut self, authority: &[u8], path: &str, message: &[u8]) -> Reply {
        let stream = self.next_stream;
        self.next_stream += 2;
        let headers: [(&[u8], &[u8]); 10] = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", path.as_bytes()),
            (b":authority", authority),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"x-mq-client-id", b"authority-test@1"),
            (b"x-mq-language", b"PYTHON"),
            (b"x-mq-protocol", b"v2"),
            (b"x-mq-client-version", b"5.1.2"),
        ];
        let block = self.encoder.encode(headers);
        let mut body = vec![0];
        body.extend_from_slice(&(message.len() as u32).to_be_bytes());
        body.extend_from_slice(message);
        let mut out = frame(HEADERS, END_HEADERS, stream, &block);
        out.extend_from_slice(&frame(DATA, END_STREAM, stream, &body));
        self.tcp.write_all(&out).await.expect("send");
        tokio::time::timeout(Duration::from_secs(10), self.reply(stream))
            .await
            .unwrap_or_else(|_| panic!("no reply to {authority:?} within 10 s"))
    }

    async fn reply(&mut self, stream: u32) -> Reply {
        let mut reply = Reply::default();
        let mut block = Vec::new();
        loop {
            let (kind, flags, id, payload) = self.next_frame().await;
            match kind {
                SETTINGS if flags & ACK == 0 => {
                    // The filter re-encodes for a 4096-byte HPACK table
                    // (pier_proxy::authority::TABLE_SIZE): the server must
                    // not announce another.
                    for param in payload.chunks(6) {
                        let value = u32::from_be_bytes([param[2], param[3], param[4], param[5]]);
                        match param[..2] {
                            [0, 1] => assert_eq!(value, 4096, "SETTINGS_HEADER_TABLE_SIZE"),
                            [0, 3] => self.max_streams = Some(value),
                            _ => {}
                        }
                    }
                    self.tcp
                        .write_all(&frame(SETTINGS, ACK, 0, &[]))
                        .await
                        .expect("settings ack");
                }
                PING if flags & ACK == 0 => {
                    self.tcp
                        .write_all(&frame(PING, ACK, 0, &payload))
                        .await
                        .expect("ping ack");
                }
                GOAWAY => panic!("GOAWAY: {payload:?}"),
                RST_STREAM if id == stream => panic!("stream reset, error code {payload:?}"),
                HEADERS | CONTINUATION => {
                    block.extend_from_slice(&payload);
                    if flags & END_HEADERS != 0 {
                        let fields = self.decoder.decode(&block).expect("server HPACK");
                        block.clear();
                        if id == stream {
                            reply.headers.extend(fields);
                        }
                    }
                    if id == stream && kind == HEADERS && flags & END_STREAM != 0 {
                        return reply;
                    }
                }
                DATA if id == stream => {
                    reply.data.extend_from_slice(&payload);
                    if flags & END_STREAM != 0 {
                        return reply;
                    }
                }
                _ => {}
            }
        }
    }

    async fn next_frame(&mut self) -> (u8, u8, u32, Vec<u8>) {
        loop {
            if self.input.len() >= 9 {
                let len = (usize::from(self.input[0]) << 16)
                    | (usize::from(self.input[1]) << 8)
                    | usize::from(self.input[2]);
                if self.input.len() >= 9 + len {
                    let head: Vec<u8> = self.input.drain(..9).collect();
                    let payload: Vec<u8> = self.input.drain(..len).collect();
                    let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                    return (head[3], head[4], id, payload);
                }
            }
            let mut buf = [0u8; 16 * 1024];
            let n = self.tcp.read(&mut buf).await.expect("read");
            assert!(n > 0, "server closed the connection");
            self.input.extend_from_slice(&buf[..n]);
        }
    }
}

const HEALTH: &str = "/grpc.health.v1.Health/Check";

/// Health check of the whole server: an empty request; SERVING is `08 01`.
async fn assert_healthy(h2: &mut RawH2, authority: &[u8]) {
    let reply = h2.call(authority, HEALTH, &[]).await;
    assert_eq!(reply.header(":status").as_deref(), Some("200"), "{reply:?}");
    assert_eq!(
        reply.header("grpc-status").as_deref(),
        Some("0"),
        "{reply:?}"
    );
    assert_eq!(reply.message(), &[0x08, 0x01], "{authority:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_requests_with_odd_authorities_get_answers() {
    let data = tempfile::tempdir().unwrap();
    let proxy = Node::standalone(data.path());
    let ep = proxy.endpoint();
    let c = Raw::connect(&ep).await;
    c.create_topic("odd-authority", 3).await;

    let list = format!("{ep},127.0.0.1:1");
    let odd: [&[u8]; 6] = [
        list.as_bytes(),
        b"",
        b"proxy a:8081",
        b"\xff\xfe\x00:8081",
        "h\u{f4}te.example:8081".as_bytes(),
        b"a:1,b:2, c:3",
    ];
    for authority in odd {
        assert!(
            http_authority_is_invalid(authority),
            "{authority:?} is not a case h2 refuses"
        );
        // Each value first on a fresh connection...
        let mut h2 = RawH2::connect(&ep).await;
        assert_healthy(&mut h2, authority).await;
        // ... and again from the client's dynamic table.
        assert_healthy(&mut h2, authority).await;
    }

    // All on one connection, mixed with a valid one, ending with a real
    // MessagingService call.
    let mut h2 = RawH2::connect(&ep).await;
    assert_healthy(&mut h2, ep.as_bytes()).await;
    for authority in odd {
        assert_healthy(&mut h2, authority).await;
        assert_healthy(&mut h2, ep.as_bytes()).await;
    }
    let port: i32 = proxy.port().into();
    let route = QueryRouteRequest {
        topic: Some(Resource {
            name: "odd-authority".into(),
            ..Default::default()
        }),
        endpoints: Some(Endpoints {
            scheme: AddressScheme::IPv4 as i32,
            addresses: vec![Address {
                host: "127.0.0.1".into(),
                port,
            }],
        }),
    };
    for authority in [list.as_bytes(), b"", b"\xff:1"] {
        let reply = h2
            .call(
                authority,
                "/apache.rocketmq.v2.MessagingService/QueryRoute",
                &route.encode_to_vec(),
            )
            .await;
        assert_eq!(
            reply.header("grpc-status").as_deref(),
            Some("0"),
            "{reply:?}"
        );
        let route = QueryRouteResponse::decode(reply.message()).expect("QueryRouteResponse");
        let status = route.status.clone().expect("status");
        assert_eq!(status.code, Code::Ok as i32, "{status:?}");
        assert_eq!(route.message_queues.len(), 3, "{route:?}");
    }
    // Calls and streams at once on one connection are bounded
    // (`pier_proxy::server::MAX_STREAMS_PER_CONNECTION`; tonic alone would
    // leave them unbounded).
    assert_eq!(h2.max_streams, Some(1024));
}

/// What `h2` checks `:authority` with.
fn http_authority_is_invalid(value: &[u8]) -> bool {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse::<tonic::codegen::http::uri::Authority>().ok())
        .is_none()
}

/// The filter works on the decrypted stream: the same odd values reach the
/// services over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_authorities_over_tls_get_answers() {
    let pki = pier_tests::tls::TestPki::new("authority");
    let data = tempfile::tempdir().unwrap();
    let flags = pki.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let proxy = Node::standalone_with(data.path(), &flags);
    let ep = proxy.endpoint();
    let list = format!("{ep},127.0.0.1:1");
    let mut h2 = RawH2::connect_tls(&ep, &pki.ca_pem()).await;
    for authority in [list.as_bytes(), b"a:1;b:2", b"", ep.as_bytes()] {
        assert!(authority == ep.as_bytes() || http_authority_is_invalid(authority));
        assert_healthy(&mut h2, authority).await;
        assert_healthy(&mut h2, authority).await;
    }
}
