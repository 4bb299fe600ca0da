//! An HPACK decoder (RFC 7541) that follows one client's dynamic table.
//!
//! The filter must decode every header block a client sends, even when it
//! passes the block on unchanged: a block can add entries to the client's
//! dynamic table, and a later `:authority` may be a reference to one of
//! them. Knowing the table means knowing each entry's size, and a
//! Huffman-coded string's decoded length (which the size counts) is only
//! known by decoding it; knowing which entries are `:authority` and with
//! what value means knowing their names and those values; and once a
//! connection is re-encoded every field is needed in full. Decoding
//! everything is therefore the simplest thing that is right, and it is
//! cheap when the decoding itself is: Huffman strings go through a table
//! built once ([`super::huffman`]), the table entries are plain byte
//! buffers, and nothing is hashed. This is the same work `h2` does for
//! the same block right after.
//!
//! Why not a crate: the project prefers a well-kept crate to a hand-written
//! parser, and none fits here. `h2`'s decoder is private (even with its
//! `unstable` feature); `loona-hpack`, `hpack` and `fluke-hpack` build a
//! hash-map Huffman tree for every string (measured: about half the proxy's
//! CPU with auth on, whose headers change on every call); `httlib-hpack`
//! has had no release since 2021 and reads past a truncated string or
//! integer (a panic on a malformed block). So the
//! decoder is ours, small, and tested against `loona-hpack` as a reference
//! on random blocks (`tests` below) as well as on RFC 7541's examples.
//!
//! One exception to decoding everything: a value the table does not keep
//! (a literal "without indexing" or "never indexed", §6.2.2–6.2.3) of a
//! field other than `:authority` matters to nothing but a re-encoding, so
//! a caller that passes blocks on unchanged may ask to get it still coded
//! ([`Value::Coded`]) and decode it only if it re-encodes. Clients sign
//! every call with such a field (`authorization`, which HTTP/2 encoders
//! never index), and `h2` decodes it again anyway.
//!
//! Rules followed (and checked by the tests): the static table of
//! Appendix A; entries added at the front and evicted from the back so the
//! table never exceeds its current size (an entry larger than the table
//! empties it); size updates only at the start of a block and at most
//! the size the server allows; any malformed block is an error, after
//! which the caller does not use this decoder's table any more (HTTP/2
//! makes that a connection error).

use std::collections::VecDeque;

use super::huffman;

/// The block is not valid HPACK, or does not fit the client's table (the
/// reason does not matter to the filter: it steps aside or fails the
/// connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Broken;

impl From<huffman::Invalid> for Broken {
    fn from(_: huffman::Invalid) -> Self {
        Broken
    }
}

/// What an entry costs in the table beyond its name and value (§4.1).
const ENTRY_OVERHEAD: usize = 32;

/// The largest header list one block may decode to, counted as HTTP/2's
/// `SETTINGS_MAX_HEADER_LIST_SIZE` counts it (name, value and 32 per
/// field). A one-byte indexed field may name a table entry of almost 4 KiB,
/// so without a bound a 256 KiB block would decode to a gigabyte. `h2`
/// refuses lists above hyper's 16 KiB anyway, so a block past four times
/// that is one no server would take: the decoder gives up on it as broken
/// and the filter steps aside (`h2` then answers it).
pub(super) const MAX_LIST: usize = 64 * 1024;

/// RFC 7541 Appendix A: index 1 is the first entry.
const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// A field's value as [`Decoder::decode`] hands it over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Value<'a> {
    /// Decoded.
    Plain(&'a [u8]),
    /// Huffman-coded as the block has it: only for a value the table does
    /// not keep, of a field other than `:authority`, when the caller spares
    /// the decoding. [`Value::decode_into`] gives its bytes.
    Coded(&'a [u8]),
}

impl Value<'_> {
    /// Appends the value's bytes to `out`, decoding them if need be.
    pub(super) fn decode_into(self, out: &mut Vec<u8>) -> Result<(), Broken> {
        match self {
            Value::Plain(v) => out.extend_from_slice(v),
            Value::Coded(c) => huffman::decode(c, out)?,
        }
        Ok(())
    }
}

/// A dynamic table entry: name and value in one buffer.
struct Entry {
    bytes: Box<[u8]>,
    name_len: usize,
}

impl Entry {
    fn field(&self) -> (&[u8], &[u8]) {
        self.bytes.split_at(self.name_len.min(self.bytes.len()))
    }

    fn size(&self) -> usize {
        self.bytes.len() + ENTRY_OVERHEAD
    }
}

/// The client's dynamic table, and buffers reused from block to block.
pub(super) struct Decoder {
    /// Newest first: index 62 is the front.
    table: VecDeque<Entry>,
    /// Sum of the entries' sizes.
    size: usize,
    /// The table's size now (the client may lower it with size updates).
    capacity: usize,
    /// The most a size update may set: what the server advertises.
    limit: usize,
    name: Vec<u8>,
    value: Vec<u8>,
}

impl Decoder {
    /// A decoder for a client allowed a table of `limit` bytes (which is
    /// also where the table starts).
    pub(super) fn new(limit: usize) -> Self {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            capacity: limit,
            limit,
            name: Vec::new(),
            value: Vec::new(),
        }
    }

    /// Decodes a whole header block, handing each field to `field` in
    /// order, and updates the table as the block says. A block whose fields
    /// add up to more than [`MAX_LIST`] is an error. With `spare`, a
    /// Huffman-coded value the table does not keep, of a field other than
    /// `:authority`, comes as [`Value::Coded`] (and a coding error in it is
    /// not found here).
    pub(super) fn decode(
        &mut self,
        mut block: &[u8],
        spare: bool,
        mut field: impl FnMut(&[u8], Value<'_>),
    ) -> Result<(), Broken> {
        let mut at_start = true;
        // What the fields handed over so far add up to (a coded value
        // counted at its coded length, which is less than decoded).
        let mut listed = 0usize;
        let mut field = |name: &[u8], value: Value<'_>| {
            let len = match value {
                Value::Plain(v) | Value::Coded(v) => v.len(),
            };
            listed += name.len() + len + ENTRY_OVERHEAD;
            if listed > MAX_LIST {
                return Err(Broken);
            }
            field(name, value);
            Ok(())
        };
        while let Some(&first) = block.first() {
            if first & 0x80 != 0 {
                // Indexed field (§6.1).
                let index = integer(&mut block, 7)?;
                let (name, value) = lookup(&self.table, index)?;
                field(name, Value::Plain(value))?;
            } else if first & 0x40 != 0 {
                // Literal, added to the table (§6.2.1).
                self.literal(&mut block, 6, false, &mut field)?;
                self.insert();
            } else if first & 0x20 != 0 {
                // Table size update (§6.3): only before the first field.
                if !at_start {
                    return Err(Broken);
                }
                let size = integer(&mut block, 5)?;
                if size > self.limit {
                    return Err(Broken);
                }
                self.capacity = size;
                self.evict(0);
                continue;
            } else {
                // Literal not added to the table, or never to be
                // (§6.2.2, §6.2.3): the same for a decoder.
                self.literal(&mut block, 4, spare, &mut field)?;
            }
            at_start = false;
        }
        Ok(())
    }

    /// Reads a literal field into `self.name` and `self.value` and hands
    /// it to `field`; with `spare`, a Huffman-coded value of a field other
    /// than `:authority` is handed over coded instead (the caller only
    /// spares values the table does not keep).
    fn literal(
        &mut self,
        block: &mut &[u8],
        prefix: u32,
        spare: bool,
        field: &mut impl FnMut(&[u8], Value<'_>) -> Result<(), Broken>,
    ) -> Result<(), Broken> {
        let index = integer(block, prefix)?;
        self.name.clear();
        if index == 0 {
            string(block, &mut self.name)?;
        } else {
            self.name.extend_from_slice(lookup(&self.table, index)?.0);
        }
        if spare && self.name != b":authority" && block.first().is_some_and(|b| b & 0x80 != 0) {
            let coded = raw_string(block)?;
            return field(&self.name, Value::Coded(coded));
        }
        self.value.clear();
        string(block, &mut self.value)?;
        field(&self.name, Value::Plain(&self.value))
    }

    /// Adds the last literal read to the table.
    fn insert(&mut self) {
        let size = self.name.len() + self.value.len() + ENTRY_OVERHEAD;
        if size > self.capacity {
            // §4.4: an entry larger than the table empties it.
            self.evict(self.capacity);
            return;
        }
        self.evict(size);
        let mut bytes = Vec::with_capacity(self.name.len() + self.value.len());
        bytes.extend_from_slice(&self.name);
        bytes.extend_from_slice(&self.value);
        self.table.push_front(Entry {
            bytes: bytes.into_boxed_slice(),
            name_len: self.name.len(),
        });
        self.size += size;
    }

    /// Evicts the oldest entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.capacity {
            match self.table.pop_back() {
                Some(old) => self.size -= old.size(),
                None => {
                    self.size = 0;
                    return;
                }
            }
        }
    }

    /// Entries in the dynamic table (for tests).
    #[cfg(test)]
    pub(super) fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.table
            .iter()
            .map(|e| {
                let (n, v) = e.field();
                (n.to_vec(), v.to_vec())
            })
            .collect()
    }
}

/// The field at `index` of the static table followed by `table`.
fn lookup(table: &VecDeque<Entry>, index: usize) -> Result<(&[u8], &[u8]), Broken> {
    match index {
        0 => Err(Broken),
        1..=61 => STATIC.get(index - 1).copied().ok_or(Broken),
        _ => table
            .get(index - STATIC.len() - 1)
            .map(Entry::field)
            .ok_or(Broken),
    }
}

/// Reads an integer with a `prefix`-bit prefix (§5.1) from the front of
/// `block`.
fn integer(block: &mut &[u8], prefix: u32) -> Result<usize, Broken> {
    let (&first, mut rest) = block.split_first().ok_or(Broken)?;
    let max = (1usize << prefix) - 1;
    let mut value = usize::from(first) & max;
    if value == max {
        let mut shift = 0;
        loop {
            let (&byte, tail) = rest.split_first().ok_or(Broken)?;
            rest = tail;
            // Nothing a block holds is anywhere near 2^35: longer is
            // garbage (and would overflow).
            if shift > 28 {
                return Err(Broken);
            }
            value += usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
    }
    *block = rest;
    Ok(value)
}

/// Reads a string literal (§5.2) from the front of `block` into `out`.
fn string(block: &mut &[u8], out: &mut Vec<u8>) -> Result<(), Broken> {
    let huffman = block.first().ok_or(Broken)? & 0x80 != 0;
    let raw = raw_string(block)?;
    if huffman {
        huffman::decode(raw, out)?;
    } else {
        out.extend_from_slice(raw);
    }
    Ok(())
}

/// Takes a string literal's bytes, as coded, from the front of `block`.
fn raw_string<'a>(block: &mut &'a [u8]) -> Result<&'a [u8], Broken> {
    let len = integer(block, 7)?;
    if len > block.len() {
        return Err(Broken);
    }
    let (raw, rest) = block.split_at(len);
    *block = rest;
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    fn decode(decoder: &mut Decoder, block: &[u8]) -> Result<Fields, Broken> {
        let mut out = Vec::new();
        decoder.decode(block, false, |n, v| {
            let Value::Plain(v) = v else {
                panic!("a coded value without spare")
            };
            out.push((n.to_vec(), v.to_vec()))
        })?;
        Ok(out)
    }

    fn list(fields: &[(&str, &str)]) -> Fields {
        fields
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn integers_as_in_rfc_c1() {
        let read = |bytes: &[u8], prefix| {
            let mut b = bytes;
            let v = integer(&mut b, prefix);
            (v, b.len())
        };
        assert_eq!(read(&[0x0a], 5), (Ok(10), 0));
        assert_eq!(read(&[0xff, 0x9a, 0x0a, 0x00], 5), (Ok(1337), 1));
        assert_eq!(read(&[0x2a], 8), (Ok(42), 0));
        assert_eq!(read(&[0x1f], 5).0, Err(Broken));
        assert_eq!(
            read(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 5).0,
            Err(Broken)
        );
    }

    #[test]
    fn the_rfcs_huffman_requests_c4() {
        let mut d = Decoder::new(4096);
        let first = [
            0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab,
            0x90, 0xf4, 0xff,
        ];
        let head = [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
        ];
        assert_eq!(decode(&mut d, &first).unwrap(), list(&head));
        assert_eq!(d.size, 57);
        let second = [
            0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf,
        ];
        let mut want = list(&head);
        want.extend(list(&[("cache-control", "no-cache")]));
        assert_eq!(decode(&mut d, &second).unwrap(), want);
        assert_eq!(d.size, 110);
        let third = [
            0x82, 0x87, 0x85, 0xbf, 0x40, 0x88, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f,
            0x89, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf,
        ];
        assert_eq!(
            decode(&mut d, &third).unwrap(),
            list(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ])
        );
        assert_eq!(d.size, 164);
        assert_eq!(
            d.entries(),
            list(&[
                ("custom-key", "custom-value"),
                ("cache-control", "no-cache"),
                (":authority", "www.example.com"),
            ])
        );
    }

    #[test]
    fn the_static_table_is_the_one_encoders_use() {
        for (i, &(name, value)) in STATIC.iter().enumerate() {
            let mut encoder = loona_hpack::Encoder::new();
            let block = encoder.encode([(name, value)]);
            if !value.is_empty() || STATIC.iter().filter(|f| f.0 == name).count() == 1 {
                assert_eq!(block, vec![0x80 | (i as u8 + 1)], "{}", name.escape_ascii());
            }
            let mut d = Decoder::new(4096);
            assert_eq!(
                decode(&mut d, &block).unwrap(),
                vec![(name.to_vec(), value.to_vec())]
            );
        }
    }

    /// Writes a literal field: `kind` is 0x40 (indexed), 0x00 or 0x10.
    fn literal(out: &mut Vec<u8>, kind: u8, name: &[u8], value: &[u8], huffman: bool) {
        out.push(kind);
        for s in [name, value] {
            let mut coded = Vec::new();
            if huffman {
                huffman::encode(s, &mut coded);
            } else {
                coded.extend_from_slice(s);
            }
            loona_hpack::encoder::encode_integer_into(
                coded.len(),
                7,
                if huffman { 0x80 } else { 0 },
                &mut *out,
            )
            .unwrap();
            out.extend_from_slice(&coded);
        }
    }

    #[test]
    fn agrees_with_a_reference_decoder_while_the_table_churns() {
        let mut next = crate::authority::tests::xorshift(0x9e37_79b9_7f4a_7c15);
        let mut ours = Decoder::new(4096);
        // The same blocks, sparing what may be spared: the same fields once
        // the coded values are decoded, and the same table.
        let mut sparing = Decoder::new(4096);
        let mut spared = 0;
        let mut reference = loona_hpack::Decoder::new();
        reference.set_max_allowed_table_size(4096);
        for round in 0..2000 {
            let mut block = Vec::new();
            if next().is_multiple_of(10) {
                // A size update, then one field (the reference refuses a
                // block that ends with an update).
                let size = (next() % 4097) as usize;
                loona_hpack::encoder::encode_integer_into(size, 5, 0x20, &mut block).unwrap();
                block.push(0x82);
                let want: Fields = reference.decode(&block).unwrap();
                assert_eq!(decode(&mut ours, &block).unwrap(), want, "round {round}");
                assert_eq!(decode_sparing(&mut sparing, &block).unwrap().0, want);
                block.clear();
            }
            // References first, to entries there now; then literals, which
            // may evict them.
            for _ in 0..(next() % 4) {
                let index = 1 + (next() as usize) % (61 + ours.entries().len());
                loona_hpack::encoder::encode_integer_into(index, 7, 0x80, &mut block).unwrap();
            }
            for _ in 0..(next() % 6) {
                let len = (next() % 300) as usize;
                let value: Vec<u8> = (0..len).map(|_| (next() % 256) as u8).collect();
                let name = format!("x-{}", next() % 50);
                let huffman = next().is_multiple_of(2);
                let kind = [0x40, 0x40, 0x00, 0x10][(next() % 4) as usize];
                if next().is_multiple_of(3) {
                    // Name index 1, `:authority`, fits every prefix.
                    let mut one = Vec::new();
                    literal(&mut one, kind | 1, b"", &value, huffman);
                    one.remove(1);
                    block.extend_from_slice(&one);
                } else {
                    literal(&mut block, kind, name.as_bytes(), &value, huffman);
                }
            }
            let want: Fields = reference
                .decode(&block)
                .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
            assert_eq!(decode(&mut ours, &block).unwrap(), want, "round {round}");
            let (fields, coded) = decode_sparing(&mut sparing, &block).unwrap();
            assert_eq!(fields, want, "round {round}, sparing");
            assert_eq!(sparing.entries(), ours.entries(), "round {round}");
            spared += coded;
        }
        assert!(spared > 500, "only {spared} values spared");
    }

    /// [`decode`] with `spare`: the fields with every coded value decoded
    /// afterwards, and how many came coded (never an `:authority`).
    fn decode_sparing(decoder: &mut Decoder, block: &[u8]) -> Result<(Fields, usize), Broken> {
        let mut out = Vec::new();
        let mut coded = 0;
        decoder.decode(block, true, |n, v| {
            if let Value::Coded(_) = v {
                assert_ne!(n, b":authority");
                coded += 1;
            }
            let mut value = Vec::new();
            v.decode_into(&mut value).unwrap();
            out.push((n.to_vec(), value));
        })?;
        Ok((out, coded))
    }

    #[test]
    fn size_updates_and_eviction() {
        let mut d = Decoder::new(4096);
        let mut block = Vec::new();
        literal(&mut block, 0x40, b"a", &[b'x'; 40], false);
        literal(&mut block, 0x40, b"b", &[b'y'; 40], true);
        decode(&mut d, &block).unwrap();
        assert_eq!(d.size, 2 * (1 + 40 + 32));
        // Shrink to room for one entry: the older goes.
        decode(&mut d, &[0x3f, 0x5b]).unwrap();
        assert_eq!(d.capacity, 122);
        assert_eq!(d.entries(), vec![(b"b".to_vec(), vec![b'y'; 40])]);
        // An entry larger than the table empties it and is not added.
        let mut big = Vec::new();
        literal(&mut big, 0x40, b"c", &[b'z'; 100], false);
        assert_eq!(decode(&mut d, &big).unwrap().len(), 1);
        assert!(d.entries().is_empty());
        assert_eq!(d.size, 0);
        // Past the limit, or after a field: refused.
        assert_eq!(decode(&mut d, &[0x3f, 0xe2, 0x1f]), Err(Broken));
        assert_eq!(decode(&mut d, &[0x82, 0x20]), Err(Broken));
        assert_eq!(
            decode(&mut d, &[0x20, 0x3f, 0xe1, 0x1f, 0x82])
                .unwrap()
                .len(),
            1
        );
        assert_eq!(d.capacity, 4096);
    }

    #[test]
    fn broken_blocks_are_errors() {
        for bad in [
            &[0x80][..],
            &[0x80 | 62],
            &[0x41, 0x05, b'a'],
            &[0x40, 0x81, 0xff, 0x00],
            &[0x00, 0x01, b'a'],
            &[0x7f],
        ] {
            assert_eq!(decode(&mut Decoder::new(4096), bad), Err(Broken), "{bad:?}");
        }
    }

    #[test]
    fn references_to_a_large_entry_stop_at_the_list_limit() {
        // A 4,000-byte entry, then one-byte references to it: each would
        // copy the whole entry.
        let mut d = Decoder::new(4096);
        let mut add = Vec::new();
        literal(&mut add, 0x40, b"x-big", &[b'v'; 3_950], false);
        assert_eq!(decode(&mut d, &add).unwrap().len(), 1);

        let fit = MAX_LIST / (5 + 3_950 + ENTRY_OVERHEAD);
        let under = vec![0x80 | 62; fit];
        assert_eq!(decode(&mut d, &under).unwrap().len(), fit);

        let mut handed = 0usize;
        let over = vec![0x80 | 62; 250_000];
        let got = d.decode(&over, false, |n, v| {
            let Value::Plain(v) = v else {
                panic!("nothing coded")
            };
            handed += n.len() + v.len();
        });
        assert_eq!(got, Err(Broken));
        assert!(handed <= MAX_LIST, "{handed} bytes handed over");
    }
}
