//! Decoding HPACK's Huffman-coded strings (RFC 7541 §5.2, Appendix B).
//!
//! The decoder walks a table built once per process: each state is an
//! inner node of the code tree (there are 256: one less than the 257
//! symbols), and for each state and each 4-bit group of input the table
//! holds the state reached, and the symbol completed on the way, if any.
//! No code is shorter than 5 bits, so 4 bits complete at most one symbol.
//! A string is two table lookups per byte and no allocation beyond its
//! output. (The HPACK library the filter used before rebuilt a tree of
//! hash maps for every string and walked it bit by bit: most of the
//! filter's cost with auth on, whose headers change on every call.)

use std::sync::LazyLock;

/// The code length of each symbol (bytes 0..=255, then EOS), from RFC 7541
/// Appendix B. The code is canonical: codes are consecutive numbers in the
/// order (length, symbol), so the lengths alone define it ([`codes`]; a
/// test checks a few against the RFC).
const LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0x00..
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 0x10..
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // 0x20..
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // 0x30..
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // 0x40..
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 0x50..
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // 0x60..
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 0x70..
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 0x80..
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 0x90..
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 0xa0..
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 0xb0..
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 0xc0..
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 0xd0..
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 0xe0..
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 0xf0..
    30, // EOS
];
const EOS: usize = 256;

/// The string is not a valid Huffman coding (RFC 7541 §5.2: EOS inside,
/// or padding longer than 7 bits or not all ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Invalid;

/// The code of each symbol, right-aligned, from [`LENGTHS`].
fn codes() -> [u32; 257] {
    let mut order: Vec<usize> = (0..LENGTHS.len()).collect();
    order.sort_by_key(|&s| (LENGTHS[s], s));
    let mut codes = [0u32; 257];
    let mut code = 0u32;
    let mut prev = 0u8;
    for (i, &s) in order.iter().enumerate() {
        let len = LENGTHS[s];
        if i > 0 {
            code = (code + 1) << (len - prev);
        }
        prev = len;
        codes[s] = code;
    }
    codes
}

/// One table entry: where 4 bits lead from a state.
#[derive(Clone, Copy, Default)]
struct Step {
    next: u8,
    /// EMIT and/or FAIL.
    flags: u8,
    symbol: u8,
}
const EMIT: u8 = 1;
const FAIL: u8 = 2;

struct Table {
    steps: Vec<[Step; 16]>,
    /// States a string may end in: reached from the root by at most 7
    /// one-bits (padding is a prefix of EOS, all ones).
    accept: [bool; 256],
}

static TABLE: LazyLock<Table> = LazyLock::new(build);

#[derive(Clone, Copy)]
enum Child {
    None,
    Node(u8),
    Leaf(u16),
}

fn build() -> Table {
    let codes = codes();
    // Inner nodes: children by bit, and (depth, all bits so far are ones).
    let mut nodes: Vec<[Child; 2]> = vec![[Child::None; 2]];
    let mut shape: Vec<(u8, bool)> = vec![(0, true)];
    for (symbol, (&code, &len)) in codes.iter().zip(LENGTHS.iter()).enumerate() {
        let mut at = 0usize;
        for depth in (0..len).rev() {
            let bit = ((code >> depth) & 1) as usize;
            if depth == 0 {
                nodes[at][bit] = Child::Leaf(symbol as u16);
                break;
            }
            at = match nodes[at][bit] {
                Child::Node(n) => usize::from(n),
                _ => {
                    // A complete prefix code has exactly 256 inner nodes,
                    // so the ids fit in a u8.
                    let id = nodes.len();
                    nodes.push([Child::None; 2]);
                    let (d, ones) = shape[at];
                    shape.push((d + 1, ones && bit == 1));
                    nodes[at][bit] = Child::Node(id as u8);
                    id
                }
            };
        }
    }
    let mut steps = vec![[Step::default(); 16]; nodes.len()];
    let mut accept = [false; 256];
    for (state, row) in steps.iter_mut().enumerate() {
        let (depth, ones) = shape[state];
        accept[state] = ones && depth <= 7;
        for (nibble, step) in row.iter_mut().enumerate() {
            let mut at = state;
            for shift in (0..4).rev() {
                match nodes[at][(nibble >> shift) & 1] {
                    Child::Node(n) => at = usize::from(n),
                    Child::Leaf(s) if usize::from(s) != EOS => {
                        step.flags |= EMIT;
                        step.symbol = s as u8;
                        at = 0;
                    }
                    // EOS decoded (or, impossibly, a hole in the code).
                    _ => {
                        step.flags |= FAIL;
                        break;
                    }
                }
            }
            step.next = at as u8;
        }
    }
    Table { steps, accept }
}

/// Appends the decoding of `coded` to `out`.
pub(super) fn decode(coded: &[u8], out: &mut Vec<u8>) -> Result<(), Invalid> {
    let table = &*TABLE;
    out.reserve(coded.len() * 8 / 5);
    let mut state = 0usize;
    for &byte in coded {
        for nibble in [byte >> 4, byte & 0xf] {
            let step = table
                .steps
                .get(state)
                .and_then(|row| row.get(usize::from(nibble)))
                .ok_or(Invalid)?;
            if step.flags & FAIL != 0 {
                return Err(Invalid);
            }
            if step.flags & EMIT != 0 {
                out.push(step.symbol);
            }
            state = usize::from(step.next);
        }
    }
    if table.accept.get(state).copied().unwrap_or(false) {
        Ok(())
    } else {
        Err(Invalid)
    }
}

/// Huffman-codes `plain` (padding with ones), as clients do.
#[cfg(test)]
pub(super) fn encode(plain: &[u8], out: &mut Vec<u8>) {
    let codes = codes();
    let mut acc = 0u64;
    let mut bits = 0u32;
    for &b in plain {
        let len = u32::from(LENGTHS[usize::from(b)]);
        acc = (acc << len) | u64::from(codes[usize::from(b)]);
        bits += len;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits > 0 {
        out.push(((acc << (8 - bits)) as u8) | (0xff >> bits));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(coded: &[u8]) -> Result<Vec<u8>, Invalid> {
        let mut out = Vec::new();
        decode(coded, &mut out).map(|()| out)
    }

    #[test]
    fn codes_are_the_rfcs() {
        let codes = codes();
        // RFC 7541 Appendix B, a few rows.
        assert_eq!(
            (codes[usize::from(b'0')], LENGTHS[usize::from(b'0')]),
            (0x0, 5)
        );
        assert_eq!(
            (codes[usize::from(b'a')], LENGTHS[usize::from(b'a')]),
            (0x3, 5)
        );
        assert_eq!(
            (codes[usize::from(b':')], LENGTHS[usize::from(b':')]),
            (0x5c, 7)
        );
        assert_eq!((codes[0], LENGTHS[0]), (0x1ff8, 13));
        assert_eq!((codes[255], LENGTHS[255]), (0x3ffffee, 26));
        assert_eq!((codes[EOS], LENGTHS[EOS]), (0x3fff_ffff, 30));
    }

    #[test]
    fn rfc_examples_decode() {
        // RFC 7541 C.4.1 and C.6.1.
        let www = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        assert_eq!(decoded(&www).unwrap(), b"www.example.com");
        let date = [
            0xd0, 0x7a, 0xbe, 0x94, 0x10, 0x54, 0xd4, 0x44, 0xa8, 0x20, 0x05, 0x95, 0x04, 0x0b,
            0x81, 0x66, 0xe0, 0x82, 0xa6, 0x2d, 0x1b, 0xff,
        ];
        assert_eq!(decoded(&date).unwrap(), b"Mon, 21 Oct 2013 20:13:21 GMT");
        let mut again = Vec::new();
        encode(b"www.example.com", &mut again);
        assert_eq!(again, www);
        assert_eq!(decoded(&[]).unwrap(), b"");
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        for take in [1, 2, 3, 7, 100, all.len()] {
            let mut coded = Vec::new();
            encode(&all[..take], &mut coded);
            assert_eq!(decoded(&coded).unwrap(), &all[..take]);
        }
    }

    #[test]
    fn bad_codings_are_refused() {
        // EOS (30 ones) inside the string.
        assert_eq!(decoded(&[0xff, 0xff, 0xff, 0xfc]), Err(Invalid));
        // Eight bits of padding.
        let mut coded = Vec::new();
        encode(b"ab", &mut coded);
        coded.push(0xff);
        assert_eq!(decoded(&coded), Err(Invalid));
        // Padding that is not ones: 'a' (00011) then 000.
        assert_eq!(decoded(&[0x18]), Err(Invalid));
        // 'a' then 111: fine.
        assert_eq!(decoded(&[0x1f]).unwrap(), b"a");
    }
}
