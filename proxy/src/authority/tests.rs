//! Tests of the `:authority` filter: byte-level rewriting, and behind a real
//! `h2` server.

use std::collections::VecDeque;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use bytes::BytesMut;
use loona_hpack::{Decoder, Encoder};

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
        let len = (usize::from(rest[0]) << 16) | (usize::from(rest[1]) << 8) | usize::from(rest[2]);
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
        0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90,
        0xf4, 0xff,
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
    let refused: [&[u8]; 4] = [b"127.0.0.1:8081,127.0.0.1:8082", b"a:1,b:2", b"", b"a b"];
    for bad in refused {
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

/// An HPACK string literal, Huffman-coded.
fn huff(s: &[u8]) -> Vec<u8> {
    let mut coded = Vec::new();
    huffman::encode(s, &mut coded);
    assert!(coded.len() < 127);
    let mut v = vec![0x80 | coded.len() as u8];
    v.extend_from_slice(&coded);
    v
}

#[test]
fn signed_calls_keep_their_coded_values_through_a_switch() {
    // Signed calls as h2 clients send them: `authorization` never indexed
    // and `x-mq-date-time` without indexing, both Huffman-coded (the
    // filter passes them on coded and decodes them only to re-encode).
    let signature =
        b"MQv2-HMAC-SHA1 AccessKey=alice, SignedHeaders=x-mq-date-time, Signature=0a1b2c";
    let signed = cat(&[
        &[0x10],
        &lit(b"authorization"),
        &huff(signature),
        &[0x00],
        &lit(b"x-mq-date-time"),
        &huff(b"20261206T215022Z"),
    ]);
    let good = cat(&[&[0x83, 0x86, 0x84, 0x41], &lit(b"pier:8081"), &signed]);
    let bad = cat(&[&[0x83, 0x86, 0x84, 0x01], &lit(b"a:1,b:2"), &signed]);
    let head = cat(&[PREFACE, &frame(HEADERS, END_HEADERS, 1, &good)]);
    let input = cat(&[&head, &frame(HEADERS, END_HEADERS, 3, &bad)]);
    let out = filtered(&input, &[], 4096);
    assert!(
        out.starts_with(&head),
        "the good block is not byte for byte"
    );
    let lists = decode_all(&frames(&out));
    let request = |authority: &[u8]| {
        fields(&[
            (":method", b"POST"),
            (":scheme", b"http"),
            (":path", b"/"),
            (":authority", authority),
            ("authorization", signature),
            ("x-mq-date-time", b"20261206T215022Z"),
        ])
    };
    assert_eq!(lists, vec![request(b"pier:8081"), request(b"a:1")]);

    // A bad Huffman code in a spared value (EOS inside) only shows when
    // the block is re-encoded: the filter steps aside and leaves it to h2.
    let broken = cat(&[
        &[0x83, 0x86, 0x84, 0x01],
        &lit(b"a:1,b:2"),
        &[0x10],
        &lit(b"authorization"),
        &[0x84, 0xff, 0xff, 0xff, 0xff],
    ]);
    let input = cat(&[PREFACE, &frame(HEADERS, END_HEADERS, 1, &broken)]);
    assert_eq!(filtered_to(&input, &[], 4096), (input, Phase::Bypass));
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
fn a_block_that_decodes_to_a_huge_list_passes_unchanged() {
    // A large table entry, then a block of one-byte references to it: small
    // on the wire, a gigabyte decoded. The filter gives up on it (h2 refuses
    // the list) instead of copying it.
    let mut add = vec![0x40, 0x05];
    add.extend_from_slice(b"x-big");
    // 3,950 as a 7-bit-prefix integer: 127, then 3,823 in 7-bit groups.
    let rest: u32 = 3_823;
    add.extend_from_slice(&[0x7f, 0x80 | (rest & 0x7f) as u8, (rest >> 7) as u8]);
    add.extend_from_slice(&[b'v'; 3_950]);
    let mut input = cat(&[
        PREFACE,
        &frame(HEADERS, END_HEADERS, 1, &cat(&[&[0x83, 0x86, 0x84], &add])),
    ]);
    let refs = vec![0x80 | 62; MAX_FRAME];
    input.extend_from_slice(&frame(HEADERS, 0, 3, &refs));
    for _ in 0..12 {
        input.extend_from_slice(&frame(CONTINUATION, 0, 3, &refs));
    }
    input.extend_from_slice(&frame(CONTINUATION, END_HEADERS, 3, &refs));
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

/// A xorshift generator from `seed`: reproducible noise for the tests of
/// the filter and of its HPACK decoder.
pub(super) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

#[test]
fn random_input_never_panics() {
    // Reproducible noise, some of it well framed.
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
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
