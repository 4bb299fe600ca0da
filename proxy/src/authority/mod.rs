//! Accepting any HTTP/2 `:authority` on the client port.
//!
//! Pier does no virtual hosting: the `:authority` a client sends carries no
//! meaning for it. But the `h2` server under tonic parses that pseudo-header
//! with `http::uri::Authority` and resets the stream with `PROTOCOL_ERROR`
//! when it does not parse, before any Pier code runs. The official Python
//! client given several proxy addresses sends the whole list
//! (`:authority = 127.0.0.1:8081,127.0.0.1:8082`, protocol.md §7), so every
//! one of its calls failed. The Java proxy does not look at the value at all.
//!
//! `h2` has no switch for this, so [`AuthorityFilter`] sits between the
//! accepted socket and `h2` and mends the client→server byte stream:
//!
//! - it follows the HTTP/2 frame stream (preface, then 9-byte frame headers);
//!   every frame except HEADERS and CONTINUATION goes to `h2` as it came,
//!   most payload bytes left where the socket read put them, in `h2`'s own
//!   buffer;
//! - it collects each header block (HEADERS + CONTINUATION frames) and
//!   decodes it with an HPACK decoder that follows the client's dynamic
//!   table (every block must be decoded, or that table would be lost; why
//!   decoding all of it is both needed and cheap: `hpack.rs`);
//! - while every `:authority` parses, the original frames go on byte for
//!   byte, so `h2`'s HPACK table stays the client's;
//! - from the first `:authority` that does not parse, the connection is
//!   *re-encoded*: two dynamic table size updates (to 0, then back to
//!   [`TABLE_SIZE`]) empty `h2`'s table of the client's entries, and every
//!   block from then on is re-encoded by our own HPACK encoder, whose table
//!   `h2`'s then follows, with each bad `:authority` replaced by a valid one
//!   (the first entry of a comma-separated list when that parses, else
//!   `localhost`). Padding is dropped; priority and END_STREAM are kept.
//!   An encoder with a table, rather than literals only, keeps `h2`'s own
//!   decoding as cheap as for the client's blocks (repeated fields are one
//!   byte).
//!
//! Anything malformed (a bad preface, a broken frame sequence, a block the
//! HPACK decoder refuses, a block larger than [`MAX_BLOCK`]) makes the filter
//! step aside: the bytes go on unchanged and `h2` answers with its own error.
//! On a connection already re-encoded the client's raw block would be decoded
//! against the wrong table, so `h2` gets a block it is sure to refuse instead
//! (an HPACK index 0, a `COMPRESSION_ERROR`). The filter never panics on input.
//!
//! The server→client direction is not touched.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures::{Stream, TryStreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// What every HTTP/2 client sends first (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The HPACK dynamic table size `h2` decodes with, which is what the server
/// advertises: tonic 0.14's server does not set `SETTINGS_HEADER_TABLE_SIZE`, so it
/// is the protocol's default (a test checks it). The client's encoder may
/// use at most this (a client that asks for more is refused by our decoder,
/// then by `h2`), and so does ours once a connection is re-encoded.
pub const TABLE_SIZE: usize = 4096;
/// Largest header block (compressed, all its frames) the filter collects.
/// `h2` refuses header lists far smaller than this (hyper's limit is 16 KiB
/// by default); past it the filter steps aside and lets `h2` say so.
pub const MAX_BLOCK: usize = 256 * 1024;
/// Frames the filter writes are at most this long: the smallest
/// `SETTINGS_MAX_FRAME_SIZE` there is, so always acceptable.
const MAX_FRAME: usize = 16_384;
/// HPACK dynamic table size updates to 0 and then to [`TABLE_SIZE`]
/// (`001` + 5-bit prefix integer: 31, then 4096 - 31 = 4065 in 7-bit
/// groups).
const SWITCH_TABLES: [u8; 4] = [0x20, 0x3f, 0xe1, 0x1f];
/// Stands in for an `:authority` that does not parse and has no usable first
/// entry.
const FALLBACK_AUTHORITY: &[u8] = b"localhost";

/// Wraps each accepted connection of `incoming` in an [`AuthorityFilter`].
pub fn filter_incoming<S, IO, E>(incoming: S) -> impl Stream<Item = Result<AuthorityFilter<IO>, E>>
where
    S: Stream<Item = Result<IO, E>>,
{
    incoming.map_ok(AuthorityFilter::new)
}

/// A client connection whose incoming HTTP/2 header blocks are mended so
/// that any `:authority` is accepted (see the module documentation).
pub struct AuthorityFilter<IO> {
    io: IO,
    rx: Rewriter,
}

impl<IO> AuthorityFilter<IO> {
    /// Wraps a freshly accepted connection.
    pub fn new(io: IO) -> Self {
        AuthorityFilter {
            io,
            rx: Rewriter::new(),
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }
}

impl<IO: Connected> Connected for AuthorityFilter<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for AuthorityFilter<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.rx.deliver(buf) {
                return Poll::Ready(Ok(()));
            }
            // Read straight into the caller's buffer: bytes of frames that
            // pass unchanged are then never copied.
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
            let fresh = buf.filled().len() - before;
            if fresh == 0 {
                // End of stream: whatever was held back goes on as it is.
                if this.rx.finish() {
                    continue;
                }
                return Poll::Ready(Ok(()));
            }
            let keep = this.rx.pass_through(fresh);
            if keep < fresh {
                let held = before + keep;
                this.rx.take_input(&buf.filled()[held..]);
                buf.set_filled(held);
            }
            this.rx.deliver(buf);
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
            // Everything read belongs to an unfinished frame header or
            // header block: read on (never report 0 bytes, that is EOF).
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for AuthorityFilter<IO> {
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

mod hpack;
mod huffman;
mod rewriter;

use rewriter::Rewriter;
#[cfg(test)]
use rewriter::{headers_layout, put_frame, valid_authority, Phase};
/// Per-request cost of the filter: `cargo test --workspace --release --lib
/// authority::cost -- --ignored --nocapture`.
#[cfg(test)]
mod cost;
#[cfg(test)]
mod tests;
