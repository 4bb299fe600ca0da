//! A node's TCP listener: accepts connections up to a limit, tells TLS from
//! plaintext per connection, runs TLS handshakes, and hands the resulting
//! byte streams ([`Conn`]) to the gRPC server.
//!
//! - **Plaintext and TLS on one port.** A TLS connection starts with a
//!   handshake record, whose first byte is 0x16; an HTTP/2 connection starts
//!   with the preface `PRI * HTTP/2.0`. With TLS configured, the listener
//!   peeks at the first byte (without consuming it) and either runs the
//!   handshake or passes the socket on as it is. With `tls_required`, a
//!   plaintext connection is closed instead.
//! - **Handshakes never hold up the accept loop.** Each connection that has
//!   to be peeked at or handshaken gets its own task, in a [`JoinSet`] the
//!   listener owns (dropping the listener aborts them); one that does not
//!   finish within [`HANDSHAKE_TIMEOUT`] is closed.
//! - **A connection limit.** Each connection holds a slot of a semaphore
//!   from accept until it is dropped (by the server when the connection
//!   ends), handshaking ones included. Over the limit a connection is
//!   accepted and closed at once with a reset (SO_LINGER 0): that costs no
//!   task, no buffer and no TLS work, leaves no TIME_WAIT behind, and the
//!   client gets an immediate "connection reset" instead of hanging in the
//!   backlog until its connect timeout. The owner is told through
//!   [`Refusal`] (the proxy logs a rate-limited WARN).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::gate::Gated;

/// Longest time from accept to a finished TLS handshake (or, with TLS
/// configured, to the client's first byte).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS handshake record (RFC 8446 §5.1,
/// `ContentType.handshake`).
const TLS_HANDSHAKE: u8 = 0x16;

/// How the listener treats connections.
pub struct ListenOptions {
    /// Serve TLS to clients that start a handshake.
    pub tls: Option<Arc<ServerConfig>>,
    /// With `tls`: close plaintext connections.
    pub tls_required: bool,
    /// Connections open at once, handshaking ones included.
    pub max_connections: usize,
    /// Told about every connection the listener closes on purpose.
    pub on_refusal: Option<Arc<dyn Fn(Refusal) + Send + Sync>>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            tls: None,
            tls_required: false,
            max_connections: Semaphore::MAX_PERMITS,
            on_refusal: None,
        }
    }
}

/// A connection the listener closed on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` were open.
    ConnectionLimit {
        /// Who tried to connect.
        peer: SocketAddr,
        /// The limit in force.
        limit: usize,
    },
    /// A plaintext connection while TLS is required.
    Plaintext {
        /// Who tried to connect.
        peer: SocketAddr,
    },
}

/// An accepted connection: the socket, or a TLS session over it. Holds its
/// connection slot until dropped.
pub struct Conn {
    /// Replies that finish together leave in one write ([`crate::gate`]).
    io: Gated<Io>,
    info: TcpConnectInfo,
    _slot: OwnedSemaphorePermit,
}

/// The socket (left), or a TLS session over it (right).
type Io = Either<TcpStream, Box<TlsStream<TcpStream>>>;

impl Conn {
    /// Whether this connection speaks TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.io.get_ref(), Either::Right(_))
    }
}

/// Binds a node's port: `listen` is its `listen` setting, named in the
/// error when the address cannot be bound.
pub async fn bind(listen: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))
}

/// The connections accepted on `listener`, as a stream for tonic's
/// `serve_with_incoming*`. It never ends and never yields an error: a
/// failed accept or handshake concerns one connection only.
pub fn accept(
    listener: TcpListener,
    options: ListenOptions,
) -> impl Stream<Item = io::Result<Conn>> + Send + 'static {
    let slots = Arc::new(Semaphore::new(
        options.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let state = Acceptor {
        listener,
        acceptor: options.tls.clone().map(TlsAcceptor::from),
        options,
        slots,
        pending: JoinSet::new(),
    };
    futures::stream::unfold(state, |mut state| async move {
        let conn = state.next().await;
        Some((Ok(conn), state))
    })
}

struct Acceptor {
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    options: ListenOptions,
    slots: Arc<Semaphore>,
    /// Connections being peeked at or handshaken.
    pending: JoinSet<Option<Conn>>,
}

impl Acceptor {
    async fn next(&mut self) -> Conn {
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            accept_failed(e).await;
                            continue;
                        }
                    };
                    if let Some(conn) = self.admit(tcp, peer) {
                        return conn;
                    }
                }
                Some(done) = self.pending.join_next(), if !self.pending.is_empty() => {
                    if let Ok(Some(conn)) = done {
                        return conn;
                    }
                }
            }
        }
    }

    /// Takes a slot for a fresh socket; returns it at once when there is
    /// nothing to find out first, else leaves it to a task.
    fn admit(&mut self, tcp: TcpStream, peer: SocketAddr) -> Option<Conn> {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            // Reset rather than a graceful close: see the module docs. A
            // zero linger never blocks the close (only a positive one does).
            let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
            drop(tcp);
            self.refused(Refusal::ConnectionLimit {
                peer,
                limit: self.options.max_connections,
            });
            return None;
        };
        tune(&tcp);
        let info = TcpConnectInfo {
            local_addr: tcp.local_addr().ok(),
            remote_addr: Some(peer),
        };
        let Some(acceptor) = self.acceptor.clone() else {
            return Some(Conn {
                io: Gated::new(Either::Left(tcp)),
                info,
                _slot: slot,
            });
        };
        let required = self.options.tls_required;
        let on_refusal = self.options.on_refusal.clone();
        self.pending.spawn(async move {
            let io = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
                let mut first = [0u8; 1];
                // Zero bytes: the client left before saying anything.
                if tcp.peek(&mut first).await.ok()? == 0 {
                    return None;
                }
                if first[0] == TLS_HANDSHAKE {
                    match acceptor.accept(tcp).await {
                        Ok(tls) => Some(Either::Right(Box::new(tls))),
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            None
                        }
                    }
                } else if required {
                    if let Some(f) = &on_refusal {
                        f(Refusal::Plaintext { peer });
                    }
                    None
                } else {
                    Some(Either::Left(tcp))
                }
            })
            .await
            .ok()??;
            Some(Conn {
                io: Gated::new(io),
                info,
                _slot: slot,
            })
        });
        None
    }

    fn refused(&self, refusal: Refusal) {
        if let Some(f) = &self.options.on_refusal {
            f(refusal);
        }
    }
}

/// No Nagle delay (request/response RPCs otherwise stall on delayed ACKs,
/// tens of ms each) and TCP keep-alives, so a vanished peer's slot is
/// freed eventually even if HTTP/2 pings are off.
fn tune(tcp: &TcpStream) {
    let _ = tcp.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
    let _ = socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive);
}

/// An accept that failed. Errors about one connection (it was reset before
/// we took it) are skipped; others (out of file descriptors) would fail
/// again at once, so the loop pauses before the next try.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn bound() -> (TcpListener, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        (l, a)
    }

    #[tokio::test]
    async fn over_the_limit_a_connection_is_reset_and_a_closed_one_frees_its_slot() {
        let (l, addr) = bound().await;
        let refusals = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = refusals.clone();
        let incoming = accept(
            l,
            ListenOptions {
                max_connections: 2,
                on_refusal: Some(Arc::new(move |r| seen.lock().unwrap().push(r))),
                ..ListenOptions::default()
            },
        );
        tokio::pin!(incoming);
        let _c1 = TcpStream::connect(addr).await.unwrap();
        let s1 = incoming.next().await.unwrap().unwrap();
        let _c2 = TcpStream::connect(addr).await.unwrap();
        let s2 = incoming.next().await.unwrap().unwrap();
        assert!(!s1.is_tls() && !s2.is_tls());

        // The third is accepted and reset; the stream yields nothing for it.
        let mut c3 = TcpStream::connect(addr).await.unwrap();
        let next = tokio::time::timeout(Duration::from_millis(300), incoming.next()).await;
        assert!(next.is_err(), "no third connection is handed out");
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), c3.read(&mut buf))
            .await
            .unwrap();
        assert!(
            matches!(&read, Err(e) if e.kind() == io::ErrorKind::ConnectionReset)
                || matches!(read, Ok(0)),
            "{read:?}"
        );
        assert!(matches!(
            refusals.lock().unwrap().as_slice(),
            [Refusal::ConnectionLimit { limit: 2, .. }]
        ));

        // Dropping a served connection frees its slot.
        drop(s1);
        let mut c4 = TcpStream::connect(addr).await.unwrap();
        let mut s4 = tokio::time::timeout(Duration::from_secs(5), incoming.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        c4.write_all(b"x").await.unwrap();
        let mut got = [0u8; 1];
        s4.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"x");
    }

    /// Counts the wake-ups of the task it is the waker of.
    #[derive(Default)]
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn each_write_first_lets_other_tasks_run_once_then_goes_out() {
        let (l, addr) = bound().await;
        let incoming = accept(l, ListenOptions::default());
        tokio::pin!(incoming);
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut served = incoming.next().await.unwrap().unwrap();
        let wakes = Arc::new(Wakes::default());
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let woken = || wakes.0.load(std::sync::atomic::Ordering::SeqCst);

        // Deferred, with the task woken so that it comes back...
        let first = Pin::new(&mut served).poll_write(&mut cx, b"ab");
        assert!(
            first.is_pending() && woken() == 1,
            "{first:?}, {} wakes",
            woken()
        );
        // ...and written when it does, without another wake-up.
        let second = Pin::new(&mut served).poll_write(&mut cx, b"ab");
        assert!(
            matches!(second, Poll::Ready(Ok(2))) && woken() == 1,
            "{second:?}"
        );
        // The next write waits for its turn again; vectored writes alike.
        let bufs = [io::IoSlice::new(b"c"), io::IoSlice::new(b"d")];
        assert!(Pin::new(&mut served)
            .poll_write_vectored(&mut cx, &bufs)
            .is_pending());
        assert_eq!(woken(), 2);
        let written = Pin::new(&mut served).poll_write_vectored(&mut cx, &bufs);
        assert!(matches!(written, Poll::Ready(Ok(2))), "{written:?}");

        // Through AsyncWriteExt (as HTTP/2 writes), the bytes arrive whole.
        served.write_all(b"efgh").await.unwrap();
        let mut got = [0u8; 8];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abcdefgh");
    }
}
