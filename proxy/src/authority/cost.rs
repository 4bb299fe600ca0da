//! Per-request cost of the filter (ignored by default; see the parent
//! module for the command).

use bytes::{BufMut, BytesMut};
use loona_hpack::Encoder;

use super::*;

/// `n` requests as a client with a dynamic table sends them: the
/// headers of an official client's SendMessage, a new request id and
/// date each time, plus a DATA frame of `body` bytes (none if 0); with
/// `auth`, the three headers of a signed call on top.
fn traffic(n: usize, first_authority: &[u8], body: usize, auth: bool) -> Vec<u8> {
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
        let mut block = encoder.encode(headers);
        if auth {
            // What auth adds, as clients send it: fresh Huffman-coded
            // values on every call (literals without indexing, so the
            // encoder's table above stays the decoder's).
            let signature = format!("{:040x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let authorization = format!(
                "MQv2-HMAC-SHA1 Credential=AK1, SignedHeaders=x-mq-date-time, Signature={signature}"
            );
            for (name, value) in [
                (&b"authorization"[..], authorization.as_bytes()),
                (b"x-mq-date-time", date.as_bytes()),
                (b"x-mq-request-id", id.as_bytes()),
            ] {
                block.push(0x00);
                for s in [name, value] {
                    let mut coded = Vec::new();
                    super::huffman::encode(s, &mut coded);
                    loona_hpack::encoder::encode_integer_into(coded.len(), 7, 0x80, &mut block)
                        .expect("into a Vec");
                    block.extend_from_slice(&coded);
                }
            }
        }
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
    for (what, first, auth) in [
        (
            "pass-through (valid :authority)",
            &b"127.0.0.1:8081"[..],
            false,
        ),
        ("pass-through, signed calls", &b"127.0.0.1:8081"[..], true),
        (
            "re-encoded (comma list)",
            &b"127.0.0.1:8081,127.0.0.1:8082"[..],
            false,
        ),
        (
            "re-encoded, signed calls",
            &b"127.0.0.1:8081,127.0.0.1:8082"[..],
            true,
        ),
    ] {
        let input = traffic(n, first, 200, auth);
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
    let good = &b"127.0.0.1:8081"[..];
    let list = &b"127.0.0.1:8081,127.0.0.1:8082"[..];
    for (what, first, filtered, auth) in [
        ("h2 alone, valid :authority", good, false, false),
        ("h2 + filter, valid :authority", good, true, false),
        ("h2 + filter, comma list (re-encoded)", list, true, false),
        ("h2 alone, signed calls", good, false, true),
        ("h2 + filter, signed calls", good, true, true),
        ("h2 + filter, signed calls, comma list", list, true, true),
    ] {
        // No bodies: h2 would hold them to its flow-control window.
        let input = traffic(n, first, 0, auth);
        let mut best = f64::MAX;
        for _ in 0..5 {
            let took = rt.block_on(h2_accepts(input.clone(), n, filtered));
            best = best.min(took as f64 / n as f64);
        }
        println!("{what}: {best:.0} ns of CPU per request");
    }
}
