//! Write coalescing for HTTP/2 connections: each write first lets the
//! runtime run its other ready tasks once.
//!
//! Why: when many calls finish together (one group commit answers tens of
//! sends; a load generator's callers send their next request as soon as a
//! reply arrives), each call's task wakes its connection's task, and tokio
//! runs a task woken that way next (its LIFO slot). The connection then
//! wrote that one frame at once: about one `writev` per call at c=256
//! (0.55 per message, counted with `perf stat` on the proxy), the largest
//! share of the proxy's CPU after the store. A task that wakes itself goes
//! to the back of the run queue instead, behind the calls still to finish;
//! when it runs again, HTTP/2 has buffered all their frames and writes them
//! together. On an idle runtime it is polled again at once, so a lone call
//! waits only for that second poll.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Decides, write by write, whether to yield first (see the module comment).
#[derive(Debug, Default)]
struct WriteGate {
    /// This write already let the others go first.
    deferred: bool,
}

impl WriteGate {
    /// True when the write should wait for one turn of the run queue (the
    /// task is woken, so it comes back and tries again); false when it goes
    /// out now.
    fn defer(&mut self, cx: &Context<'_>) -> bool {
        self.deferred = !self.deferred;
        if self.deferred {
            cx.waker().wake_by_ref();
        }
        self.deferred
    }
}

/// A stream whose writes pass the gate (see the module comment); reads go
/// straight through.
///
/// Wrap the innermost stream that HTTP/2 writes to: above TLS, not below it
/// (TLS's flush would retry a deferred write at once).
#[derive(Debug)]
pub struct Gated<IO> {
    io: IO,
    gate: WriteGate,
}

impl<IO> Gated<IO> {
    /// Gates the writes of `io`.
    pub fn new(io: IO) -> Gated<IO> {
        Gated {
            io,
            gate: WriteGate::default(),
        }
    }

    /// The stream underneath.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Gated<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Gated<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.gate.defer(cx) {
            return Poll::Pending;
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.gate.defer(cx) {
            return Poll::Pending;
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Counts the wake-ups of the task it is the waker of.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_gated_write_yields_once_then_goes_out_whole() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut gated = Gated::new(a);
        let wakes = Arc::new(Wakes::default());
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);

        let first = Pin::new(&mut gated).poll_write(&mut cx, b"xy");
        assert!(first.is_pending(), "{first:?}");
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "woken to come back");
        let second = Pin::new(&mut gated).poll_write(&mut cx, b"xy");
        assert!(matches!(second, Poll::Ready(Ok(2))), "{second:?}");
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);

        gated.write_all(b"z").await.unwrap();
        let mut got = [0u8; 3];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"xyz");
    }
}
