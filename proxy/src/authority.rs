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
//!   table (every block must be decoded, or that table would be lost);
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

use bytes::{Buf, BufMut, BytesMut};
use futures::{Stream, TryStreamExt};
use loona_hpack::{Decoder, Encoder};
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
/// advertises: tonic 0.12 does not set `SETTINGS_HEADER_TABLE_SIZE`, so it
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

/// Where the rewriter is in the client's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// This many bytes of the preface seen so far.
    Preface(usize),
    Frames,
    /// Stepped aside: everything passes unchanged from here on.
    Bypass,
}

/// A header block being collected: its frames as received, and where the
/// HPACK fragment of each lies in them.
struct Block {
    stream: u32,
    /// Flags of the HEADERS frame.
    flags: u8,
    priority: Option<[u8; 5]>,
    raw: Vec<u8>,
    fragments: Vec<(usize, usize)>,
}

/// The decoded fields of one block, kept in one reused buffer.
#[derive(Default)]
struct Fields {
    bytes: Vec<u8>,
    /// (start, name length, value length) into `bytes`.
    spans: Vec<(usize, usize, usize)>,
}

impl Fields {
    fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
    }

    fn push(&mut self, name: &[u8], value: &[u8]) {
        self.spans.push((self.bytes.len(), name.len(), value.len()));
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(value);
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans.iter().filter_map(|&(at, n, v)| {
            let name = self.bytes.get(at..at + n)?;
            let value = self.bytes.get(at + n..at + n + v)?;
            Some((name, value))
        })
    }
}

/// The state machine behind [`AuthorityFilter`], free of IO.
struct Rewriter {
    phase: Phase,
    /// Payload bytes of a frame that passes unchanged, still to come.
    skip: usize,
    /// Received bytes not yet parsed (a partial frame header, or a header
    /// frame not complete yet).
    input: BytesMut,
    /// Parsed bytes ready for `h2`.
    out: BytesMut,
    block: Option<Block>,
    /// Follows the client's HPACK context.
    decoder: Decoder<'static>,
    /// Set once the connection is re-encoded: its table is the one `h2`
    /// decodes with.
    encoder: Option<Encoder<'static>>,
    fields: Fields,
    /// The last `:authority` found valid.
    known_good: Vec<u8>,
    joined: Vec<u8>,
    encoded: Vec<u8>,
}

impl Rewriter {
    fn new() -> Self {
        let mut decoder = Decoder::new();
        decoder.set_max_allowed_table_size(TABLE_SIZE);
        Rewriter {
            phase: Phase::Preface(0),
            skip: 0,
            input: BytesMut::new(),
            out: BytesMut::new(),
            block: None,
            decoder,
            encoder: None,
            fields: Fields::default(),
            known_good: Vec::new(),
            joined: Vec::new(),
            encoded: Vec::new(),
        }
    }

    /// Of `fresh` bytes just read, how many may go on where they are: the
    /// rest must be handed to [`Rewriter::take_input`].
    fn pass_through(&mut self, fresh: usize) -> usize {
        match self.phase {
            Phase::Bypass => fresh,
            Phase::Frames if self.input.is_empty() => {
                let n = self.skip.min(fresh);
                self.skip -= n;
                n
            }
            _ => 0,
        }
    }

    /// Takes bytes to parse and parses as far as they go.
    fn take_input(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
        self.process();
    }

    /// Copies parsed bytes into `buf`; true if it copied any.
    fn deliver(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let n = self.out.len().min(buf.remaining());
        if n == 0 {
            return false;
        }
        buf.put_slice(&self.out[..n]);
        self.out.advance(n);
        true
    }

    /// The client closed its side: what was held back goes on unchanged.
    /// True if that left bytes to deliver.
    fn finish(&mut self) -> bool {
        if !self.input.is_empty() || self.block.is_some() {
            self.step_aside();
        }
        !self.out.is_empty()
    }

    /// Gives up on the stream: collected and unparsed bytes go on as they
    /// came, and so does everything after.
    fn step_aside(&mut self) {
        if let Some(block) = self.block.take() {
            self.out.extend_from_slice(&block.raw);
        }
        self.out.extend_from_slice(&self.input);
        self.input.clear();
        self.skip = 0;
        self.phase = Phase::Bypass;
    }

    fn process(&mut self) {
        loop {
            match self.phase {
                Phase::Bypass => {
                    self.out.extend_from_slice(&self.input);
                    self.input.clear();
                    return;
                }
                Phase::Preface(seen) => {
                    let n = (PREFACE.len() - seen).min(self.input.len());
                    if self.input[..n] != PREFACE[seen..seen + n] {
                        self.step_aside();
                        continue;
                    }
                    self.out.extend_from_slice(&self.input[..n]);
                    self.input.advance(n);
                    if seen + n < PREFACE.len() {
                        self.phase = Phase::Preface(seen + n);
                        return;
                    }
                    self.phase = Phase::Frames;
                }
                Phase::Frames => {
                    if self.skip > 0 {
                        let n = self.skip.min(self.input.len());
                        self.out.extend_from_slice(&self.input[..n]);
                        self.input.advance(n);
                        self.skip -= n;
                        if self.input.is_empty() {
                            return;
                        }
                    }
                    if !self.frame() {
                        return;
                    }
                }
            }
        }
    }

    /// Handles the frame at the start of `input`; false if more bytes are
    /// needed first.
    fn frame(&mut self) -> bool {
        let Some(head) = self.input.get(..FRAME_HEADER) else {
            return false;
        };
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let kind = head[3];
        let flags = head[4];
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let whole = FRAME_HEADER + len;

        match (&self.block, kind) {
            (None, HEADERS) => {}
            (None, _) if kind != CONTINUATION => {
                // Any other frame goes on as it is; its payload may still be
                // on its way.
                let n = whole.min(self.input.len());
                self.out.extend_from_slice(&self.input[..n]);
                self.input.advance(n);
                self.skip = whole - n;
                return true;
            }
            (Some(block), CONTINUATION) if block.stream == stream => {}
            // A CONTINUATION out of place, or a block interrupted: a
            // protocol error `h2` will report.
            _ => {
                self.step_aside();
                return true;
            }
        }

        let collected = self.block.as_ref().map_or(0, |b| b.raw.len());
        if collected + whole > MAX_BLOCK {
            self.step_aside();
            return true;
        }
        if self.input.len() < whole {
            return false;
        }
        let frame = self.input.split_to(whole);
        let payload = &frame[FRAME_HEADER..];
        match self.block.as_mut() {
            None => match headers_layout(flags, payload) {
                Some((priority, from, to)) => {
                    self.block = Some(Block {
                        stream,
                        flags,
                        priority,
                        fragments: vec![(FRAME_HEADER + from, FRAME_HEADER + to)],
                        raw: frame.to_vec(),
                    });
                }
                None => {
                    self.out.extend_from_slice(&frame);
                    self.step_aside();
                    return true;
                }
            },
            Some(block) => {
                let at = block.raw.len();
                block.fragments.push((at + FRAME_HEADER, at + whole));
                block.raw.extend_from_slice(&frame);
            }
        }
        if flags & END_HEADERS != 0 {
            self.end_block();
        }
        true
    }

    /// A whole header block is in: decode it, and pass it on or re-encode it.
    fn end_block(&mut self) {
        let Some(block) = self.block.take() else {
            return;
        };
        let fragment: &[u8] = match block.fragments.as_slice() {
            [(from, to)] => block.raw.get(*from..*to).unwrap_or_default(),
            many => {
                self.joined.clear();
                for &(from, to) in many {
                    self.joined
                        .extend_from_slice(block.raw.get(from..to).unwrap_or_default());
                }
                &self.joined
            }
        };

        self.fields.clear();
        let fields = &mut self.fields;
        // The first bad value, kept for the log line when the connection
        // switches to re-encoding.
        let switching = self.encoder.is_none();
        let mut replaced: Option<Vec<u8>> = None;
        let known_good = &mut self.known_good;
        let decoded = self.decoder.decode_with_cb(fragment, |name, value| {
            // (Never empty once set: an empty value is not valid.)
            if &*name != b":authority" || (!known_good.is_empty() && *value == **known_good) {
                fields.push(&name, &value);
            } else if valid_authority(&value) {
                // A client sends the same value on every call: checked once.
                known_good.clear();
                known_good.extend_from_slice(&value);
                fields.push(&name, &value);
            } else {
                if switching && replaced.is_none() {
                    replaced = Some(value.to_vec());
                }
                fields.push(&name, replacement(&value));
            }
        });

        if decoded.is_err() {
            // The client's HPACK context is broken (a connection error).
            // Unchanged bytes make `h2` see that for itself, unless it already
            // decodes with another context.
            if self.encoder.is_some() {
                put_frame(&mut self.out, HEADERS, END_HEADERS, block.stream, &[0x80]);
                self.phase = Phase::Bypass;
            } else {
                self.block = Some(block);
                self.step_aside();
            }
            return;
        }

        if self.encoder.is_none() {
            let Some(original) = replaced else {
                self.out.extend_from_slice(&block.raw);
                return;
            };
            tracing::debug!(
                authority = %original.escape_ascii(),
                "client :authority is not a URI authority; re-encoding this connection's headers"
            );
        }

        self.encoded.clear();
        let encoder = match self.encoder.as_mut() {
            Some(encoder) => encoder,
            None => {
                // h2's table holds the client's entries: empty it (size 0),
                // then give it back its full size, to fill in step with a
                // new encoder. Two size updates may open a block.
                self.encoded.extend_from_slice(&SWITCH_TABLES);
                let mut encoder = Encoder::new();
                encoder.set_max_table_size(TABLE_SIZE);
                self.encoder.insert(encoder)
            }
        };
        for field in self.fields.iter() {
            if encoder
                .encode_header_into(field, &mut self.encoded)
                .is_err()
            {
                // Writing into a Vec cannot fail; should it ever, make h2
                // close the connection rather than send it half a block.
                put_frame(&mut self.out, HEADERS, END_HEADERS, block.stream, &[0x80]);
                self.phase = Phase::Bypass;
                return;
            }
        }
        put_block(
            &mut self.out,
            block.stream,
            block.flags,
            block.priority,
            &self.encoded,
        );
    }
}

/// Where the HPACK fragment lies in a HEADERS payload, past the optional
/// pad length and priority fields and before the padding; None if the
/// payload is too short for them.
fn headers_layout(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, usize, usize)> {
    let mut from = 0;
    let mut pad = 0;
    if flags & PADDED != 0 {
        pad = usize::from(*payload.first()?);
        from = 1;
    }
    let mut priority = None;
    if flags & PRIORITY != 0 {
        let p = payload.get(from..from + 5)?;
        priority = Some([p[0], p[1], p[2], p[3], p[4]]);
        from += 5;
    }
    let to = payload.len().checked_sub(pad)?;
    if to < from {
        return None;
    }
    Some((priority, from, to))
}

/// True if `h2` accepts `value` as `:authority`: it parses it exactly so.
fn valid_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// A valid stand-in for an `:authority` that does not parse: the first
/// entry of a comma-separated list if that parses, else `localhost`.
fn replacement(value: &[u8]) -> &[u8] {
    let first = value.split(|&b| b == b',').next().unwrap_or_default();
    let first = first.trim_ascii();
    if !first.is_empty() && first.len() < value.len() && valid_authority(first) {
        first
    } else {
        FALLBACK_AUTHORITY
    }
}

fn put_frame(out: &mut BytesMut, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.reserve(FRAME_HEADER + payload.len());
    out.put_slice(&len.to_be_bytes()[1..]);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream);
    out.put_slice(payload);
}

/// Writes a header block as a HEADERS frame and as many CONTINUATION frames
/// as it needs, keeping the END_STREAM flag and the priority fields.
fn put_block(out: &mut BytesMut, stream: u32, flags: u8, priority: Option<[u8; 5]>, block: &[u8]) {
    let prio: &[u8] = match &priority {
        Some(p) => p,
        None => &[],
    };
    let first = block.len().min(MAX_FRAME - prio.len());
    let (head, mut rest) = block.split_at(first);
    let mut head_flags = flags & (END_STREAM | PRIORITY);
    if rest.is_empty() {
        head_flags |= END_HEADERS;
    }
    let len = (prio.len() + head.len()) as u32;
    out.reserve(FRAME_HEADER * (2 + block.len() / MAX_FRAME) + prio.len() + block.len());
    out.put_slice(&len.to_be_bytes()[1..]);
    out.put_u8(HEADERS);
    out.put_u8(head_flags);
    out.put_u32(stream);
    out.put_slice(prio);
    out.put_slice(head);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME));
        rest = tail;
        let last = if rest.is_empty() { END_HEADERS } else { 0 };
        put_frame(out, CONTINUATION, last, stream, chunk);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A connection that hands out its bytes in the given chunks, one per
    /// read, with a `Pending` before each (a socket that is often empty).
    struct Chunks {
        chunks: VecDeque<Vec<u8>>,
        ready: bool,
    }

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if !self.ready {
                self.ready = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.ready = false;
            if let Some(chunk) = self.chunks.front_mut() {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                chunk.drain(..n);
                if chunk.is_empty() {
                    self.chunks.pop_front();
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    /// Runs `input`, cut at `cuts`, through the filter, reading at most
    /// `read_size` bytes at a time; returns what `h2` would have read.
    fn filtered(input: &[u8], cuts: &[usize], read_size: usize) -> Vec<u8> {
        filtered_to(input, cuts, read_size).0
    }

    /// [`filtered`], and where the filter ended: `Phase::Frames` if it
    /// followed the whole stream, `Phase::Bypass` if it stepped aside.
    fn filtered_to(input: &[u8], cuts: &[usize], read_size: usize) -> (Vec<u8>, Phase) {
        let mut chunks = VecDeque::new();
        let mut from = 0;
        for &at in cuts.iter().chain([input.len()].iter()) {
            if at > from {
                chunks.push_back(input[from..at].to_vec());
                from = at;
            }
        }
        let mut filter = AuthorityFilter::new(Chunks {
            chunks,
            ready: false,
        });
        futures::executor::block_on(async {
            let mut out = Vec::new();
            let mut buf = vec![0; read_size];
            loop {
                let n = filter.read(&mut buf).await.expect("read");
                if n == 0 {
                    return (out, filter.rx.phase);
                }
                out.extend_from_slice(&buf[..n]);
            }
        })
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_frame(&mut out, kind, flags, stream, payload);
        out.to_vec()
    }

    /// An HPACK string literal, not Huffman-coded (lengths < 127).
    fn lit(s: &[u8]) -> Vec<u8> {
        assert!(s.len() < 127);
        let mut v = vec![s.len() as u8];
        v.extend_from_slice(s);
        v
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    const SETTINGS: u8 = 0x4;
    const DATA: u8 = 0x0;
    const PING: u8 = 0x6;
    const WINDOW_UPDATE: u8 = 0x8;
    const RST_STREAM: u8 = 0x3;

    type Fieldset = Vec<(Vec<u8>, Vec<u8>)>;

    fn fields(list: &[(&str, &[u8])]) -> Fieldset {
        list.iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.to_vec()))
            .collect()
    }

    /// A client conversation of three gRPC-like requests carrying
    /// `authority`, in the ways clients encode them: literals added to the
    /// dynamic table, then dynamic-table references from a padded,
    /// prioritised HEADERS, then a block split over CONTINUATION frames.
    /// Returns the bytes and the field lists the server must decode.
    fn conversation(authority: &[u8]) -> (Vec<u8>, Vec<Fieldset>) {
        let path = b"/apache.rocketmq.v2.MessagingService/QueryRoute";
        // :method POST, :scheme http, then literals with incremental
        // indexing: :path (name index 4), :authority (name index 1),
        // content-type (name index 31), te (new name).
        let block1 = cat(&[
            &[0x83, 0x86, 0x44],
            &lit(path),
            &[0x41],
            &lit(authority),
            &[0x5f],
            &lit(b"application/grpc"),
            &[0x40],
            &lit(b"te"),
            &lit(b"trailers"),
        ]);
        // The same request from the dynamic table: te is 62, content-type 63,
        // :authority 64, :path 65.
        let block2 = vec![0x83, 0x86, 0x80 | 65, 0x80 | 64, 0x80 | 63, 0x80 | 62];
        // Once more, plus a literal without indexing.
        let block3 = cat(&[
            &block2,
            &[0x00],
            &lit(b"x-mq-date-time"),
            &lit(b"20261206T015022Z"),
        ]);
        let mut padded = vec![3u8];
        padded.extend_from_slice(&[0x80, 0, 0, 1, 200]); // priority: exclusive, on stream 1, weight 201
        padded.extend_from_slice(&block2);
        padded.extend_from_slice(&[0, 0, 0]);

        let bytes = cat(&[
            PREFACE,
            &frame(SETTINGS, 0, 0, &[0, 4, 0, 0x40, 0, 0]),
            &frame(WINDOW_UPDATE, 0, 0, &[0, 0x0f, 0, 1]),
            &frame(HEADERS, END_HEADERS, 1, &block1),
            &frame(DATA, END_STREAM, 1, &[0, 0, 0, 0, 2, 8, 1]),
            &frame(HEADERS, END_HEADERS | PADDED | PRIORITY, 3, &padded),
            &frame(DATA, END_STREAM, 3, &[0, 0, 0, 0, 0]),
            &frame(HEADERS, END_STREAM, 5, &block3[..3]),
            &frame(CONTINUATION, 0, 5, &block3[3..7]),
            &frame(CONTINUATION, END_HEADERS, 5, &block3[7..]),
            &frame(PING, 0, 0, b"pingpong"),
        ]);
        let request = fields(&[
            (":method", b"POST"),
            (":scheme", b"http"),
            (":path", path),
            (":authority", authority),
            ("content-type", b"application/grpc"),
            ("te", b"trailers"),
        ]);
        let mut third = request.clone();
        third.push((b"x-mq-date-time".to_vec(), b"20261206T015022Z".to_vec()));
        let lists = vec![request.clone(), request, third];
        // The conversation itself is well formed.
        assert_eq!(decode_all(&frames(&bytes)), lists);
        (bytes, lists)
    }

    struct Frame {
        kind: u8,
        flags: u8,
        stream: u32,
        payload: Vec<u8>,
    }

    fn frames(bytes: &[u8]) -> Vec<Frame> {
        assert!(bytes.starts_with(PREFACE), "no preface");
        let mut rest = &bytes[PREFACE.len()..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            assert!(rest.len() >= FRAME_HEADER, "truncated frame header");
            let len =
                (usize::from(rest[0]) << 16) | (usize::from(rest[1]) << 8) | usize::from(rest[2]);
            assert!(len <= MAX_FRAME, "frame of {len} bytes");
            out.push(Frame {
                kind: rest[3],
                flags: rest[4],
                stream: u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]),
                payload: rest[FRAME_HEADER..FRAME_HEADER + len].to_vec(),
            });
            rest = &rest[FRAME_HEADER + len..];
        }
        out
    }

    /// Decodes every header block of a frame stream as `h2` would, in one
    /// HPACK context.
    fn decode_all(frames: &[Frame]) -> Vec<Fieldset> {
        let mut decoder = Decoder::new();
        let mut lists = Vec::new();
        let mut block = Vec::new();
        for f in frames {
            match f.kind {
                HEADERS => {
                    let (_, from, to) = headers_layout(f.flags, &f.payload).expect("layout");
                    block = f.payload[from..to].to_vec();
                }
                CONTINUATION => block.extend_from_slice(&f.payload),
                _ => continue,
            }
            if f.flags & END_HEADERS != 0 {
                lists.push(decoder.decode(&block).expect("hpack"));
            }
        }
        lists
    }

    /// The frames that are not part of a header block, as bytes.
    fn other_frames(frames: &[Frame]) -> Vec<Vec<u8>> {
        frames
            .iter()
            .filter(|f| f.kind != HEADERS && f.kind != CONTINUATION)
            .map(|f| frame(f.kind, f.flags, f.stream, &f.payload))
            .collect()
    }

    fn with_authority(lists: &[Fieldset], authority: &[u8]) -> Vec<Fieldset> {
        lists
            .iter()
            .map(|l| {
                l.iter()
                    .map(|(n, v)| {
                        if n == b":authority" {
                            (n.clone(), authority.to_vec())
                        } else {
                            (n.clone(), v.clone())
                        }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_valid_authority_passes_byte_for_byte_however_split() {
        let (input, _) = conversation(b"127.0.0.1:8081");
        for at in 0..=input.len() {
            let (out, phase) = filtered_to(&input, &[at], 4096);
            assert_eq!(out, input, "cut at {at}");
            // It followed every frame rather than stepping aside.
            assert_eq!(phase, Phase::Frames, "cut at {at}");
        }
        for size in [1, 2, 7, 9, 10, 100] {
            let cuts: Vec<usize> = (0..input.len()).step_by(size).collect();
            assert_eq!(filtered(&input, &cuts, 4096), input, "chunks of {size}");
            assert_eq!(filtered(&input, &[], size), input, "reads of {size}");
        }
    }

    #[test]
    fn huffman_coded_headers_pass_unchanged() {
        // RFC 7541 C.4.1 and C.4.2: Huffman-coded requests, the second
        // taking :authority from the dynamic table.
        let first = [
            0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab,
            0x90, 0xf4, 0xff,
        ];
        let second = [
            0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf,
        ];
        let input = cat(&[
            PREFACE,
            &frame(HEADERS, END_HEADERS | END_STREAM, 1, &first),
            &frame(HEADERS, END_HEADERS | END_STREAM, 3, &second),
        ]);
        for at in 0..=input.len() {
            let (out, phase) = filtered_to(&input, &[at], 4096);
            assert_eq!(out, input, "cut at {at}");
            assert_eq!(phase, Phase::Frames, "cut at {at}");
        }
        let lists = decode_all(&frames(&input));
        assert_eq!(
            lists[1][3],
            (b":authority".to_vec(), b"www.example.com".to_vec())
        );
    }

    #[test]
    fn a_comma_list_is_replaced_by_its_first_address_however_split() {
        let (input, expected) = conversation(b"127.0.0.1:8081,127.0.0.1:8082");
        let expected = with_authority(&expected, b"127.0.0.1:8081");
        let reference = frames(&input);
        let check = |out: &[u8], what: &str| {
            let got = frames(out);
            assert_eq!(decode_all(&got), expected, "{what}");
            // Everything else is untouched and in order.
            assert_eq!(other_frames(&got), other_frames(&reference), "{what}");
            let heads: Vec<&Frame> = got.iter().filter(|f| f.kind == HEADERS).collect();
            // The first re-encoded block empties h2's table first.
            assert_eq!(heads[0].payload[..4], SWITCH_TABLES, "{what}");
            // Priority kept, padding dropped, END_STREAM kept.
            assert_eq!(heads[1].flags, END_HEADERS | PRIORITY, "{what}");
            assert_eq!(&heads[1].payload[..5], &[0x80, 0, 0, 1, 200], "{what}");
            assert_eq!(heads[2].flags, END_HEADERS | END_STREAM, "{what}");
            assert_eq!(
                got.iter().map(|f| f.stream).collect::<Vec<_>>(),
                vec![0, 0, 1, 1, 3, 3, 5, 0],
                "{what}"
            );
        };
        for at in 0..=input.len() {
            let (out, phase) = filtered_to(&input, &[at], 4096);
            check(&out, &format!("cut at {at}"));
            assert_eq!(phase, Phase::Frames, "cut at {at}");
        }
        for size in [1, 3, 9, 64] {
            let cuts: Vec<usize> = (0..input.len()).step_by(size).collect();
            check(&filtered(&input, &cuts, 4096), &format!("chunks of {size}"));
            check(&filtered(&input, &[], size), &format!("reads of {size}"));
        }
    }

    #[test]
    fn odd_authorities_become_valid_ones() {
        let cases: [(&[u8], &[u8]); 7] = [
            (b"", b"localhost"),
            (b"proxy a:8081", b"localhost"),
            (b"\xff\xfe:8081", b"localhost"),
            (b"h\xc3\xb4te:8081", b"localhost"),
            (b"127.0.0.1:1, 127.0.0.1:2", b"127.0.0.1:1"),
            (b",127.0.0.1:2,x:3", b"localhost"),
            (b"a/b", b"localhost"),
        ];
        for (odd, stand_in) in cases {
            assert!(!valid_authority(odd), "{odd:?}");
            let (input, expected) = conversation(odd);
            let out = filtered(&input, &[], 4096);
            let got = decode_all(&frames(&out));
            assert_eq!(got, with_authority(&expected, stand_in), "{odd:?}");
            for list in &got {
                let value = &list[3].1;
                assert!(valid_authority(value), "{odd:?} -> {value:?}");
            }
        }
    }

    #[test]
    fn what_h2_refuses() {
        for bad in [
            &b"127.0.0.1:8081,127.0.0.1:8082"[..],
            b"a:1,b:2",
            b"",
            b"a b",
        ] {
            assert!(!valid_authority(bad), "{bad:?}");
        }
    }

    #[test]
    fn unusual_but_valid_authorities_are_left_alone() {
        for odd in [
            &b"a,b"[..],
            b"localhost",
            b"[::1]:8081",
            b"user@host:1",
            b"x",
        ] {
            assert!(valid_authority(odd), "{odd:?}");
            let (input, _) = conversation(odd);
            assert_eq!(
                filtered_to(&input, &[], 4096),
                (input, Phase::Frames),
                "{odd:?}"
            );
        }
    }

    #[test]
    fn a_connection_switches_to_re_encoding_at_the_first_bad_authority() {
        // Request 1 with a good authority (kept byte for byte), then one
        // with a bad one, then one taking request 1's entries from the
        // client's dynamic table.
        let good = cat(&[&[0x83, 0x86, 0x84, 0x41], &lit(b"pier:8081")]);
        let bad = cat(&[&[0x83, 0x86, 0x84, 0x01], &lit(b"a:1,b:2")]);
        let again = vec![0x83, 0x86, 0x84, 0x80 | 62];
        let head = cat(&[PREFACE, &frame(HEADERS, END_HEADERS, 1, &good)]);
        let input = cat(&[
            &head,
            &frame(HEADERS, END_HEADERS, 3, &bad),
            &frame(HEADERS, END_HEADERS, 5, &again),
        ]);
        for at in 0..=input.len() {
            let out = filtered(&input, &[at], 4096);
            assert!(out.starts_with(&head), "cut at {at}");
            let authorities: Vec<Vec<u8>> = decode_all(&frames(&out))
                .into_iter()
                .map(|l| l[3].1.clone())
                .collect();
            assert_eq!(
                authorities,
                vec![
                    b"pier:8081".to_vec(),
                    b"a:1".to_vec(),
                    b"pier:8081".to_vec()
                ],
                "cut at {at}"
            );
        }
    }

    #[test]
    fn a_large_re_encoded_block_is_split_into_continuations() {
        let big = vec![b'v'; 20_000];
        let mut block = cat(&[&[0x83, 0x86, 0x84, 0x01], &lit(b"a:1,b:2"), &[0x00]]);
        block.extend_from_slice(&lit(b"x-big"));
        // A 20,000-byte string: length 127 + 19,873 in 7-bit groups.
        block.extend_from_slice(&[0x7f, 0xa1, 0x9b, 0x01]);
        block.extend_from_slice(&big);
        let input = cat(&[
            PREFACE,
            &frame(HEADERS, 0, 1, &block[..10_000]),
            &frame(CONTINUATION, END_HEADERS, 1, &block[10_000..]),
        ]);
        let out = filtered(&input, &[], 4096);
        let got = frames(&out);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].kind, got[0].flags), (HEADERS, 0));
        assert_eq!((got[1].kind, got[1].flags), (CONTINUATION, END_HEADERS));
        let lists = decode_all(&got);
        assert_eq!(lists[0][3].1, b"a:1");
        assert_eq!(lists[0][4], (b"x-big".to_vec(), big));
    }

    #[test]
    fn malformed_streams_pass_unchanged() {
        let (good, _) = conversation(b"a:1,b:2");
        let bad_block = cat(&[&[0x83, 0x86, 0x84, 0x01], &lit(b"a:1,b:2")]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("HTTP/1.1", b"GET / HTTP/1.1\r\nHost: a,b\r\n\r\n".to_vec()),
            ("half a preface", PREFACE[..10].to_vec()),
            (
                "CONTINUATION without HEADERS",
                cat(&[PREFACE, &frame(CONTINUATION, END_HEADERS, 1, &bad_block)]),
            ),
            (
                "block interrupted",
                cat(&[
                    PREFACE,
                    &frame(HEADERS, 0, 1, &bad_block),
                    &frame(PING, 0, 0, b"pingpong"),
                ]),
            ),
            (
                "CONTINUATION of another stream",
                cat(&[
                    PREFACE,
                    &frame(HEADERS, 0, 1, &bad_block),
                    &frame(CONTINUATION, END_HEADERS, 3, &[]),
                ]),
            ),
            (
                "padding longer than the payload",
                cat(&[
                    PREFACE,
                    &frame(HEADERS, END_HEADERS | PADDED, 1, &[200, 0x83]),
                ]),
            ),
            (
                "priority fields missing",
                cat(&[PREFACE, &frame(HEADERS, END_HEADERS | PRIORITY, 1, &[0, 0])]),
            ),
            (
                "HPACK index 0",
                cat(&[PREFACE, &frame(HEADERS, END_HEADERS, 1, &[0x80])]),
            ),
            (
                "HPACK index out of the table",
                cat(&[PREFACE, &frame(HEADERS, END_HEADERS, 1, &[0x80 | 70])]),
            ),
            (
                "table size update past the limit",
                cat(&[
                    PREFACE,
                    &frame(HEADERS, END_HEADERS, 1, &[0x3f, 0xe1, 0x3f, 0x82]),
                ]),
            ),
            (
                "truncated string",
                cat(&[
                    PREFACE,
                    &frame(HEADERS, END_HEADERS, 1, &[0x41, 0x10, b'a']),
                ]),
            ),
            (
                "cut inside a header block",
                good[..PREFACE.len() + 40].to_vec(),
            ),
            (
                "cut inside a frame header",
                good[..PREFACE.len() + 5].to_vec(),
            ),
        ];
        for (what, input) in cases {
            for at in 0..=input.len() {
                let (out, phase) = filtered_to(&input, &[at], 4096);
                assert_eq!(out, input, "{what}, cut at {at}");
                assert_ne!(phase, Phase::Frames, "{what}, cut at {at}");
            }
        }
    }

    #[test]
    fn an_oversized_block_passes_unchanged() {
        let mut input = cat(&[
            PREFACE,
            &frame(HEADERS, 0, 1, &[0x83, 0x01, 0x03, b'a', b',', b'b']),
        ]);
        let filler = vec![0u8; MAX_FRAME];
        while input.len() < MAX_BLOCK + MAX_FRAME {
            input.extend_from_slice(&frame(CONTINUATION, 0, 1, &filler));
        }
        input.extend_from_slice(&frame(CONTINUATION, END_HEADERS, 1, &[]));
        assert_eq!(filtered_to(&input, &[], 65_536), (input, Phase::Bypass));
    }

    #[test]
    fn broken_hpack_after_re_encoding_makes_h2_fail_the_connection() {
        let bad = cat(&[&[0x83, 0x86, 0x84, 0x01], &lit(b"a:1,b:2")]);
        let input = cat(&[
            PREFACE,
            &frame(HEADERS, END_HEADERS, 1, &bad),
            &frame(HEADERS, END_HEADERS, 3, &[0x80 | 100]),
            &frame(PING, 0, 0, b"pingpong"),
        ]);
        let got = frames(&filtered(&input, &[], 4096));
        assert_eq!(got.len(), 3);
        // An HPACK index 0 is a decoding error for any decoder.
        assert_eq!((got[1].kind, got[1].stream), (HEADERS, 3));
        assert_eq!(got[1].payload, vec![0x80]);
        assert_eq!(got[2].kind, PING);
    }

    #[test]
    fn random_input_never_panics() {
        // xorshift: reproducible noise, some of it well framed.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..3000 {
            let mut input = PREFACE.to_vec();
            for _ in 0..(next() % 6) {
                let kind = [HEADERS, CONTINUATION, DATA, PING][(next() % 4) as usize];
                let flags = (next() & 0x2d) as u8;
                let len = (next() % 40) as usize;
                let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                input.extend_from_slice(&frame(kind, flags, (next() % 4) as u32, &payload));
            }
            let cut = (next() as usize) % (input.len() + 1);
            let out = filtered(&input, &[cut], 1 + (next() % 50) as usize);
            assert!(out.starts_with(PREFACE), "round {round}");
        }
    }

    /// Client bytes for one request whose `:authority` is a list of two
    /// addresses.
    fn bad_request() -> Vec<u8> {
        let block = cat(&[
            &[0x83, 0x86, 0x44],
            &lit(b"/x"),
            &[0x41],
            &lit(b"127.0.0.1:8081,127.0.0.1:8082"),
        ]);
        cat(&[
            PREFACE,
            &frame(SETTINGS, 0, 0, &[]),
            &frame(HEADERS, END_HEADERS | END_STREAM, 1, &block),
        ])
    }

    #[test]
    fn the_switch_bytes_are_two_size_updates() {
        let mut expected = Vec::new();
        loona_hpack::encoder::encode_integer_into(0, 5, 0x20, &mut expected).unwrap();
        loona_hpack::encoder::encode_integer_into(TABLE_SIZE, 5, 0x20, &mut expected).unwrap();
        assert_eq!(SWITCH_TABLES[..], expected[..]);
    }

    #[tokio::test]
    async fn h2_accepts_the_mended_request() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        client.write_all(&bad_request()).await.unwrap();
        let served = tokio::spawn(async move {
            let mut conn = h2::server::handshake(AuthorityFilter::new(server))
                .await
                .expect("handshake");
            let (request, _respond) = conn.accept().await.expect("a request").expect("valid");
            request.uri().authority().map(|a| a.to_string())
        });
        let authority = tokio::time::timeout(std::time::Duration::from_secs(10), served)
            .await
            .expect("in time")
            .unwrap();
        assert_eq!(authority.as_deref(), Some("127.0.0.1:8081"));
    }

    #[tokio::test]
    async fn h2_decodes_a_long_re_encoded_connection_in_step() {
        // Many requests through a real h2 server, good and bad authorities
        // mixed, each with a header new to the tables so that both the
        // client's table and ours evict entries all along.
        let n = 400;
        let mut encoder = Encoder::new();
        let mut input = cat(&[PREFACE, &frame(SETTINGS, 0, 0, &[])]);
        let authority = |i: usize| -> Vec<u8> {
            match i % 3 {
                0 => format!("127.0.0.1:{i},127.0.0.1:2").into_bytes(),
                1 => format!("host-{i}:8081").into_bytes(),
                _ => Vec::new(),
            }
        };
        for i in 0..n {
            let name = format!("x-n-{i}");
            let value = format!("{i:0>120}");
            let auth = authority(i);
            // Fields that repeat come from the dynamic tables (until
            // evicted and added again); x-n-i is new each time.
            let fields: [(&[u8], &[u8]); 7] = [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":path", b"/x"),
                (b":authority", &auth),
                (b"te", b"trailers"),
                (b"x-mq-client-id", b"client-1"),
                (name.as_bytes(), value.as_bytes()),
            ];
            let block = encoder.encode(fields);
            input.extend_from_slice(&frame(
                HEADERS,
                END_HEADERS | END_STREAM,
                1 + 2 * i as u32,
                &block,
            ));
        }
        let (client, server) = tokio::io::duplex(1 << 16);
        let (mut rd, mut wr) = tokio::io::split(client);
        let feed = tokio::spawn(async move {
            wr.write_all(&input).await.unwrap();
            wr
        });
        let drain = tokio::spawn(async move {
            let mut buf = vec![0u8; 1 << 16];
            while rd.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {}
        });
        let served = tokio::spawn(async move {
            let mut conn = h2::server::handshake(AuthorityFilter::new(server))
                .await
                .expect("handshake");
            let mut seen = Vec::new();
            while seen.len() < n {
                let (request, _respond) = conn.accept().await.expect("a request").expect("valid");
                let i = seen.len();
                let value = request
                    .headers()
                    .get(format!("x-n-{i}"))
                    .map(|v| v.as_bytes().to_vec());
                assert_eq!(request.headers()["te"], "trailers", "request {i}");
                assert_eq!(
                    request.headers()["x-mq-client-id"],
                    "client-1",
                    "request {i}"
                );
                seen.push((request.uri().authority().map(|a| a.to_string()), value));
            }
            seen
        });
        let seen = tokio::time::timeout(std::time::Duration::from_secs(30), served)
            .await
            .expect("in time")
            .unwrap();
        for (i, (auth, value)) in seen.into_iter().enumerate() {
            let expected = match i % 3 {
                0 => format!("127.0.0.1:{i}"),
                1 => format!("host-{i}:8081"),
                _ => "localhost".to_owned(),
            };
            assert_eq!(auth.as_deref(), Some(expected.as_str()), "request {i}");
            assert_eq!(
                value,
                Some(format!("{i:0>120}").into_bytes()),
                "request {i}"
            );
        }
        feed.abort();
        drain.abort();
    }

    #[tokio::test]
    async fn without_the_filter_h2_resets_the_stream() {
        // The failure the filter exists for: h2 alone answers RST_STREAM
        // PROTOCOL_ERROR to the same bytes.
        let (mut client, server) = tokio::io::duplex(1 << 16);
        client.write_all(&bad_request()).await.unwrap();
        let served = tokio::spawn(async move {
            let mut conn = h2::server::handshake(server).await.expect("handshake");
            while let Some(r) = conn.accept().await {
                if r.is_err() {
                    break;
                }
            }
        });
        let mut got = Vec::new();
        let reset = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            let mut buf = [0u8; 4096];
            loop {
                let n = client.read(&mut buf).await.unwrap();
                assert!(n > 0, "connection closed without a reset");
                got.extend_from_slice(&buf[..n]);
                let mut rest = &got[..];
                while rest.len() >= FRAME_HEADER {
                    let len = (usize::from(rest[1]) << 8) | usize::from(rest[2]);
                    if rest.len() < FRAME_HEADER + len {
                        break;
                    }
                    if rest[3] == RST_STREAM {
                        return rest[FRAME_HEADER..FRAME_HEADER + 4].to_vec();
                    }
                    rest = &rest[FRAME_HEADER + len..];
                }
            }
        })
        .await
        .expect("a reset in time");
        assert_eq!(reset, vec![0, 0, 0, 1], "PROTOCOL_ERROR");
        served.abort();
    }
}

/// Per-request cost of the filter: `cargo test -p pier-proxy --release --lib
/// authority::cost -- --ignored --nocapture`.
#[cfg(test)]
mod cost {
    use super::*;

    /// `n` requests as a client with a dynamic table sends them: the
    /// headers of an official client's SendMessage, a new request id and
    /// date each time, plus a DATA frame of `body` bytes (none if 0).
    fn traffic(n: usize, first_authority: &[u8], body: usize) -> Vec<u8> {
        let mut encoder = Encoder::new();
        let mut out = BytesMut::new();
        out.put_slice(PREFACE);
        put_frame(&mut out, 0x4, 0, 0, &[]);
        for i in 0..n {
            let id = format!("0a1b2c3d-{i:012}");
            let date = format!("20261206T{:06}Z", i % 1_000_000);
            let authority: &[u8] = if i == 0 {
                first_authority
            } else {
                b"127.0.0.1:8081"
            };
            let headers: [(&[u8], &[u8]); 13] = [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (
                    b":path",
                    b"/apache.rocketmq.v2.MessagingService/SendMessage",
                ),
                (b":authority", authority),
                (b"te", b"trailers"),
                (b"content-type", b"application/grpc"),
                (
                    b"user-agent",
                    b"grpc-python/1.85.4 grpc-c/52.0.0 (linux; chttp2)",
                ),
                (b"grpc-timeout", b"3S"),
                (b"x-mq-client-id", b"host@12345@0@abcdef"),
                (b"x-mq-language", b"PYTHON"),
                (b"x-mq-protocol", b"v2"),
                (b"x-mq-request-id", id.as_bytes()),
                (b"x-mq-date-time", date.as_bytes()),
            ];
            let block = encoder.encode(headers);
            let stream = 1 + 2 * i as u32;
            if body == 0 {
                put_frame(&mut out, HEADERS, END_HEADERS | END_STREAM, stream, &block);
            } else {
                put_frame(&mut out, HEADERS, END_HEADERS, stream, &block);
                put_frame(&mut out, 0x0, END_STREAM, stream, &vec![0u8; body]);
            }
        }
        out.to_vec()
    }

    /// CPU time this thread has run, in ns (from the scheduler): steadier
    /// than wall time on a busy machine.
    fn cpu_ns() -> u64 {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    fn run(input: &[u8], read: usize) -> (usize, u64) {
        let mut rx = Rewriter::new();
        let mut buf = vec![0u8; read];
        let mut delivered = 0;
        let started = cpu_ns();
        for chunk in input.chunks(read) {
            // What poll_read does with a read of `chunk`.
            buf[..chunk.len()].copy_from_slice(chunk);
            let keep = rx.pass_through(chunk.len());
            if keep < chunk.len() {
                rx.take_input(&buf[keep..chunk.len()]);
            }
            delivered += keep + rx.out.len();
            rx.out.clear();
        }
        (delivered, cpu_ns() - started)
    }

    #[test]
    #[ignore = "a measurement; run in release with --nocapture"]
    fn per_request() {
        let n = 200_000;
        for (what, first) in [
            ("pass-through (valid :authority)", &b"127.0.0.1:8081"[..]),
            (
                "re-encoded (comma list)",
                &b"127.0.0.1:8081,127.0.0.1:8082"[..],
            ),
        ] {
            let input = traffic(n, first, 200);
            let mut best = f64::MAX;
            for _ in 0..5 {
                let (delivered, took) = run(&input, 16 * 1024);
                assert!(
                    delivered >= input.len() - 64,
                    "{delivered} of {}",
                    input.len()
                );
                best = best.min(took as f64 / n as f64);
            }
            println!(
                "{what}: {best:.0} ns of CPU per request ({} bytes each)",
                input.len() / n
            );
        }
    }

    /// `h2` accepting the same requests from memory, alone and behind the
    /// filter: what the filter adds to the server's own header work.
    async fn h2_accepts(input: Vec<u8>, n: usize, filtered: bool) -> u64 {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let started = cpu_ns();
        let feed = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut rd, mut wr) = tokio::io::split(&mut client);
            let drain = async {
                let mut buf = vec![0u8; 1 << 16];
                while rd.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {}
            };
            let write = async {
                wr.write_all(&input).await.expect("feed");
            };
            tokio::join!(drain, write);
        });
        let accept = async {
            if filtered {
                accept_all(AuthorityFilter::new(server), n).await
            } else {
                accept_all(server, n).await
            }
        };
        let accepted = tokio::time::timeout(std::time::Duration::from_secs(60), accept)
            .await
            .expect("accepted in time");
        let took = cpu_ns() - started;
        feed.abort();
        assert_eq!(accepted, n);
        took
    }

    async fn accept_all<T: AsyncRead + AsyncWrite + Unpin>(io: T, n: usize) -> usize {
        let mut conn = h2::server::Builder::new()
            .max_concurrent_streams(u32::MAX)
            .handshake::<_, bytes::Bytes>(io)
            .await
            .expect("handshake");
        let mut accepted = 0;
        while let Some(r) = conn.accept().await {
            if r.is_ok() {
                accepted += 1;
            }
            if accepted == n {
                break;
            }
        }
        accepted
    }

    #[test]
    #[ignore = "a measurement; run in release with --nocapture"]
    fn per_request_with_h2() {
        let n: usize = std::env::var("N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5_000);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        for (what, first, filtered) in [
            ("h2 alone, valid :authority", &b"127.0.0.1:8081"[..], false),
            (
                "h2 + filter, valid :authority",
                &b"127.0.0.1:8081"[..],
                true,
            ),
            (
                "h2 + filter, comma list (re-encoded)",
                &b"127.0.0.1:8081,127.0.0.1:8082"[..],
                true,
            ),
        ] {
            // No bodies: h2 would hold them to its flow-control window.
            let input = traffic(n, first, 0);
            let mut best = f64::MAX;
            for _ in 0..5 {
                let took = rt.block_on(h2_accepts(input.clone(), n, filtered));
                best = best.min(took as f64 / n as f64);
            }
            println!("{what}: {best:.0} ns of CPU per request");
        }
    }
}
