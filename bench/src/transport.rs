//! The load generator's gRPC transport: one HTTP/2 connection driven by
//! hyper directly, under the clients tonic generates.
//!
//! tonic's `Channel` puts a `tower::Buffer` in front of the connection: every
//! call is handed to a buffer task, which hands it to the connection task.
//! That extra task hop per call is client cost, and the generator shares the
//! machine's two cores with the server it measures, so every microsecond it
//! spends is one the server does not get. Calling hyper's HTTP/2 sender from
//! the caller's own task removes the hop; the requests on the wire are the
//! same (tonic still encodes them, sets the path, the headers and the
//! deadline).
//!
//! Its writes pass `pier_node::gate` as the servers' do: a caller sending
//! its next request as soon as a reply arrives wakes the connection task,
//! which tokio then runs next, so each request went out in a `writev` of
//! its own; gated, the requests of the callers woken by one batch of
//! replies leave together, as grpc-java's write queue (one flush per batch
//! of queued writes) sends them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::Context as _;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pier_node::gate::Gated;
use tonic::body::Body;

/// A cloneable handle on one HTTP/2 connection (clones share it, as calls
/// share a tonic `Channel`). The connection closes when the last is dropped.
#[derive(Clone)]
pub struct H2 {
    sender: SendRequest<Body>,
}

impl H2 {
    /// Connects to `addr` (`host:port`), TCP_NODELAY as the server side has.
    pub async fn connect(addr: &str) -> anyhow::Result<H2> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true)?;
        H2::handshake(Gated::new(tcp), addr).await
    }

    /// Connects to `addr` over TLS (ALPN h2) trusting only `ca_pem`: the
    /// same connection with TLS's cost added, for an on/off comparison.
    pub async fn connect_tls(addr: &str, ca_pem: &[u8]) -> anyhow::Result<H2> {
        let tls = pier_tests::tls::tls_stream(addr, ca_pem, &[b"h2"])
            .await
            .with_context(|| format!("TLS connection to {addr}"))?;
        tls.get_ref().0.set_nodelay(true)?;
        H2::handshake(Gated::new(tls), addr).await
    }

    /// Starts HTTP/2 on a connected stream to `addr`.
    async fn handshake<IO>(io: IO, addr: &str) -> anyhow::Result<H2>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(io))
            .await
            .with_context(|| format!("HTTP/2 handshake with {addr}"))?;
        tokio::spawn(async move {
            // Ends when every handle is dropped or the server goes away; a
            // call in flight then fails with the connection's error.
            let _ = conn.await;
        });
        Ok(H2 { sender })
    }

    /// The origin the generated clients put in front of their paths
    /// (`with_origin`): HTTP/2 requests need a scheme and an authority.
    pub fn origin(addr: &str) -> anyhow::Result<http::Uri> {
        format!("http://{addr}")
            .parse()
            .with_context(|| format!("bad address {addr}"))
    }
}

impl tower_service::Service<http::Request<Body>> for H2 {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.sender.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        Box::pin(self.sender.send_request(req))
    }
}
