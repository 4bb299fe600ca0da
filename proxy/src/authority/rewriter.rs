//! The IO-free state machine behind [`AuthorityFilter`](super::AuthorityFilter):
//! it follows the client's frames and HPACK context and re-encodes header
//! blocks whose `:authority` does not parse (see the parent module).

use bytes::{Buf, BufMut, BytesMut};
use loona_hpack::Encoder;
use tokio::io::ReadBuf;

use super::hpack::{Broken, Decoder, Value};
use super::{
    CONTINUATION, END_HEADERS, END_STREAM, FALLBACK_AUTHORITY, FRAME_HEADER, HEADERS, MAX_BLOCK,
    MAX_FRAME, PADDED, PREFACE, PRIORITY, SWITCH_TABLES, TABLE_SIZE,
};

/// Where the rewriter is in the client's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
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

/// The fields of one block, kept in one reused buffer. A value may still be
/// Huffman-coded (one the decoder was allowed to spare) until
/// [`Fields::decode_coded`].
#[derive(Default)]
struct Fields {
    bytes: Vec<u8>,
    /// (start, name length, value length, value still coded) into `bytes`.
    spans: Vec<(usize, usize, usize, bool)>,
    /// How many values are still coded.
    coded: usize,
}

impl Fields {
    fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        self.coded = 0;
    }

    fn push(&mut self, name: &[u8], value: &[u8]) {
        self.push_as(name, value, false);
    }

    fn push_as(&mut self, name: &[u8], value: &[u8], coded: bool) {
        self.spans
            .push((self.bytes.len(), name.len(), value.len(), coded));
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(value);
        self.coded += usize::from(coded);
    }

    /// Decodes the values still coded, before the fields are re-encoded.
    fn decode_coded(&mut self) -> Result<(), Broken> {
        if self.coded == 0 {
            return Ok(());
        }
        let mut decoded = Fields::default();
        let mut value = Vec::new();
        for (name, raw, coded) in self.spans() {
            value.clear();
            let raw = if coded {
                Value::Coded(raw)
            } else {
                Value::Plain(raw)
            };
            raw.decode_into(&mut value)?;
            decoded.push(name, &value);
        }
        *self = decoded;
        Ok(())
    }

    fn spans(&self) -> impl Iterator<Item = (&[u8], &[u8], bool)> {
        self.spans.iter().filter_map(|&(at, n, v, coded)| {
            let name = self.bytes.get(at..at + n)?;
            let value = self.bytes.get(at + n..at + n + v)?;
            Some((name, value, coded))
        })
    }

    /// The fields, once no value is coded.
    fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        debug_assert_eq!(self.coded, 0, "fields re-encoded with values still coded");
        self.spans().map(|(name, value, _)| (name, value))
    }
}

/// The state machine behind [`AuthorityFilter`], free of IO.
pub(super) struct Rewriter {
    pub(super) phase: Phase,
    /// Payload bytes of a frame that passes unchanged, still to come.
    skip: usize,
    /// Received bytes not yet parsed (a partial frame header, or a header
    /// frame not complete yet).
    input: BytesMut,
    /// Parsed bytes ready for `h2`.
    pub(super) out: BytesMut,
    block: Option<Block>,
    /// Follows the client's HPACK context.
    decoder: Decoder,
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
    pub(super) fn new() -> Self {
        let decoder = Decoder::new(TABLE_SIZE);
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
    pub(super) fn pass_through(&mut self, fresh: usize) -> usize {
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
    pub(super) fn take_input(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
        self.process();
    }

    /// Copies parsed bytes into `buf`; true if it copied any.
    pub(super) fn deliver(&mut self, buf: &mut ReadBuf<'_>) -> bool {
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
    pub(super) fn finish(&mut self) -> bool {
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
        // While the client's blocks go on unchanged, values the table does
        // not keep are only decoded if this block turns out to need
        // re-encoding (`h2` decodes them anyway).
        let decoded = self.decoder.decode(fragment, switching, |name, value| {
            let value = match value {
                Value::Plain(v) => v,
                Value::Coded(c) => return fields.push_as(name, c, true),
            };
            // (Never empty once set: an empty value is not valid.)
            if name != b":authority" || (!known_good.is_empty() && value == known_good.as_slice()) {
                fields.push(name, value);
            } else if valid_authority(value) {
                // A client sends the same value on every call: checked once.
                known_good.clear();
                known_good.extend_from_slice(value);
                fields.push(name, value);
            } else {
                if switching && replaced.is_none() {
                    replaced = Some(value.to_vec());
                }
                fields.push(name, replacement(value));
            }
        });

        // A spared value is decoded before the block is re-encoded; a bad
        // Huffman code in it is what `h2` would have found.
        let decoded = decoded.and_then(|()| match replaced {
            Some(_) => self.fields.decode_coded(),
            None => Ok(()),
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
pub(super) fn headers_layout(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, usize, usize)> {
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
pub(super) fn valid_authority(value: &[u8]) -> bool {
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

pub(super) fn put_frame(out: &mut BytesMut, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
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
