//! Mutated requests of every RPC against a running standalone node (issue
//! 14). Each case starts from a request the test builds well-formed (with
//! live receipt, recall and transaction handles the server issued), applies
//! a few random mutations at the protobuf wire level (fields dropped or
//! duplicated, huge or empty or non-UTF-8 strings, out-of-range numbers and
//! enum values, cut durations, random handles) and random header changes,
//! sends the bytes as they are, and checks:
//!
//! - every call answers within a bound (a hang fails);
//! - no reply is `INTERNAL_SERVER_ERROR`, gRPC `Internal`, `Unknown` or a
//!   dropped connection for a request that decodes (a malformed protobuf
//!   may get tonic's own `Internal` decode error, and nothing worse);
//! - no receipt or recall handle the server did not issue acks, changes an
//!   invisibility, dead-letters or recalls anything;
//! - the node logs no panic and still answers QueryRoute at the end.
//!
//! Replay with `PIER_FUZZ_SEED=<seed>` (printed at the start); scale with
//! `PIER_FUZZ_CASES=<cases per RPC>` (default 120).

use std::collections::HashSet;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use pier_proto::admin::{self, TopicType};
use pier_proto::rocketmq::*;
use pier_tests::{handle, message, resource, Node, Raw};
use prost::bytes::{Buf, BufMut};
use prost::Message as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::Channel;

const TOPIC: &str = "fuzz-t";
const DELAY_TOPIC: &str = "fuzz-delay";
const TXN_TOPIC: &str = "fuzz-txn";
const SCRATCH_TOPIC: &str = "fuzz-scratch";
const GROUP: &str = "fuzz-g";
const SCRATCH_GROUP: &str = "fuzz-scratch-g";
/// Longest any one call may take before it counts as a hang (the node's
/// long poll is capped far below it).
const HANG: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Protobuf wire format: just enough to mutate any message without its type.

#[derive(Clone, Debug)]
enum Val {
    Varint(u64),
    Fixed64([u8; 8]),
    Len(Vec<u8>),
    Fixed32([u8; 4]),
}

#[derive(Clone, Debug)]
struct Field {
    num: u32,
    val: Val,
}

fn read_varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Splits a message into its fields; `None` when `b` is not a message.
fn parse(mut b: &[u8]) -> Option<Vec<Field>> {
    let mut fields = Vec::new();
    while !b.is_empty() {
        let key = read_varint(&mut b)?;
        let num = u32::try_from(key >> 3).ok().filter(|n| *n > 0)?;
        let val = match key & 7 {
            0 => Val::Varint(read_varint(&mut b)?),
            1 => {
                let v = b.get(..8)?.try_into().ok()?;
                b = &b[8..];
                Val::Fixed64(v)
            }
            2 => {
                let len = usize::try_from(read_varint(&mut b)?).ok()?;
                let v = b.get(..len)?.to_vec();
                b = &b[len..];
                Val::Len(v)
            }
            5 => {
                let v = b.get(..4)?.try_into().ok()?;
                b = &b[4..];
                Val::Fixed32(v)
            }
            _ => return None,
        };
        fields.push(Field { num, val });
    }
    Some(fields)
}

fn encode(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        let (wt, body): (u64, &[u8]) = match &f.val {
            Val::Varint(_) => (0, &[]),
            Val::Fixed64(v) => (1, v),
            Val::Len(v) => (2, v),
            Val::Fixed32(v) => (5, v),
        };
        put_varint(&mut out, (u64::from(f.num) << 3) | wt);
        match &f.val {
            Val::Varint(v) => put_varint(&mut out, *v),
            Val::Len(v) => {
                put_varint(&mut out, v.len() as u64);
                out.extend_from_slice(v);
            }
            _ => out.extend_from_slice(body),
        }
    }
    out
}

/// Numbers that break careless arithmetic, casts and enum matches.
fn nasty_number(rng: &mut StdRng, old: u64) -> u64 {
    match rng.gen_range(0..12) {
        0 => 0,
        1 => 1,
        2 => u64::MAX, // -1 as an int32/int64
        3 => i64::MIN as u64,
        4 => i64::MAX as u64,
        5 => u32::MAX.into(),
        6 => i32::MIN as i64 as u64,
        7 => 1 << 31,
        8 => rng.gen_range(2..64), // an enum value that may not exist
        9 => old.wrapping_add(1),
        10 => old.wrapping_sub(1),
        _ => rng.gen(),
    }
}

/// Printable ASCII of a random length in `len`.
fn ascii(rng: &mut StdRng, len: std::ops::Range<usize>) -> String {
    let n = rng.gen_range(len);
    (0..n)
        .map(|_| char::from(rng.gen_range(0x21u8..0x7f)))
        .collect()
}

/// A valid UTF-8 string that validation must cope with.
fn nasty_string(rng: &mut StdRng, old: &str) -> String {
    match rng.gen_range(0..12) {
        0 => String::new(),
        1 => " ".repeat(rng.gen_range(1..4)),
        2 => "x".repeat(rng.gen_range(100..300)),
        3 => "y".repeat(rng.gen_range(1000..200_000)),
        4 => format!("{old}\u{0}\n\t|"),
        5 => format!("{old}é😀\u{202e}"),
        6 => old
            .chars()
            .take(rng.gen_range(0..=old.len().max(1)))
            .collect(),
        7 => {
            // One character replaced: a forged copy of a handle or name.
            let mut c: Vec<char> = old.chars().collect();
            if !c.is_empty() {
                let i = rng.gen_range(0..c.len());
                c[i] = char::from(rng.gen_range(0x21u8..0x7f));
            }
            c.into_iter().collect()
        }
        8 => ascii(rng, 1..200),
        9 => format!("{old}{old}"),
        10 => format!(" {old} "),
        _ => "%|_-".into(),
    }
}

fn random_field(rng: &mut StdRng) -> Field {
    let num = rng.gen_range(1..20);
    let val = match rng.gen_range(0..4) {
        0 => Val::Varint(nasty_number(rng, 0)),
        1 => Val::Fixed64(rng.gen()),
        2 => Val::Fixed32(rng.gen()),
        _ => Val::Len((0..rng.gen_range(0..40)).map(|_| rng.gen()).collect()),
    };
    Field { num, val }
}

/// Applies one mutation somewhere in the message `b` (recursing into
/// nested messages).
fn mutate(b: &[u8], rng: &mut StdRng, depth: u32) -> Vec<u8> {
    let Some(mut fields) = parse(b) else {
        let mut v = b.to_vec();
        if !v.is_empty() {
            let i = rng.gen_range(0..v.len());
            v[i] ^= 1 << rng.gen_range(0..8);
        }
        return v;
    };
    if fields.is_empty() || rng.gen_ratio(1, 12) {
        fields.push(random_field(rng));
        return encode(&fields);
    }
    let i = rng.gen_range(0..fields.len());
    match rng.gen_range(0..12) {
        0 => {
            fields.remove(i);
        }
        1 => {
            let f = fields[i].clone();
            fields.push(f);
        }
        _ => {
            let val = match &fields[i].val {
                Val::Varint(v) => Val::Varint(nasty_number(rng, *v)),
                Val::Fixed64(_) => Val::Fixed64(rng.gen()),
                Val::Fixed32(_) => Val::Fixed32(match rng.gen_range(0..3) {
                    0 => f32::NAN.to_le_bytes(),
                    1 => f32::INFINITY.to_le_bytes(),
                    _ => rng.gen(),
                }),
                Val::Len(v) => Val::Len(mutate_len(v, rng, depth)),
            };
            fields[i].val = val;
        }
    }
    encode(&fields)
}

/// Replaces about a third of the numbers anywhere in the message tree:
/// times, durations, offsets and enums together, which a one-field
/// mutation rarely reaches deep down.
fn scramble_numbers(b: &[u8], rng: &mut StdRng, depth: u32) -> Vec<u8> {
    let Some(mut fields) = parse(b) else {
        return b.to_vec();
    };
    for f in &mut fields {
        match &f.val {
            Val::Varint(v) if rng.gen_ratio(1, 3) => f.val = Val::Varint(nasty_number(rng, *v)),
            Val::Len(v) if depth < 5 && parse(v).is_some_and(|n| !n.is_empty()) => {
                f.val = Val::Len(scramble_numbers(v, rng, depth + 1))
            }
            _ => {}
        }
    }
    encode(&fields)
}

fn mutate_len(v: &[u8], rng: &mut StdRng, depth: u32) -> Vec<u8> {
    let nested = parse(v).is_some_and(|f| !f.is_empty());
    if nested && depth < 4 && rng.gen_ratio(3, 4) {
        return mutate(v, rng, depth + 1);
    }
    match std::str::from_utf8(v) {
        // Invalid UTF-8 only now and then: it makes the request malformed
        // where the field is a string (allowed in bytes fields).
        Ok(s) if !rng.gen_ratio(1, 10) => nasty_string(rng, s).into_bytes(),
        _ => match rng.gen_range(0..4) {
            0 => Vec::new(),
            1 => vec![0xff, 0xfe, 0xc0],
            2 => (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect(),
            _ => {
                let mut w = v.to_vec();
                if !w.is_empty() {
                    let i = rng.gen_range(0..w.len());
                    w[i] ^= 1 << rng.gen_range(0..8);
                }
                w
            }
        },
    }
}

// ---------------------------------------------------------------------------
// Sending raw bytes and decoding the typed reply.

struct RawCodec<R>(PhantomData<R>);

struct RawEncoder;
struct TypedDecoder<R>(PhantomData<R>);

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl<R: prost::Message + Default> Decoder for TypedDecoder<R> {
    type Item = R;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<R>, tonic::Status> {
        let n = src.remaining();
        R::decode(src.copy_to_bytes(n))
            .map(Some)
            .map_err(|e| tonic::Status::data_loss(format!("reply does not decode: {e}")))
    }
}

impl<R: prost::Message + Default + Send + 'static> Codec for RawCodec<R> {
    type Encode = Vec<u8>;
    type Decode = R;
    type Encoder = RawEncoder;
    type Decoder = TypedDecoder<R>;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> TypedDecoder<R> {
        TypedDecoder(PhantomData)
    }
}

/// A gRPC client on `ch`, ready to send.
async fn grpc(ch: &Channel) -> Result<tonic::client::Grpc<Channel>, tonic::Status> {
    let mut g = tonic::client::Grpc::new(ch.clone()).max_decoding_message_size(64 << 20);
    g.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    Ok(g)
}

fn request<T>(body: T, md: &MetadataMap) -> tonic::Request<T> {
    let mut r = tonic::Request::new(body);
    *r.metadata_mut() = md.clone();
    r
}

/// Every reply of a stream, until the server ends it.
async fn all<R>(mut s: tonic::Streaming<R>) -> Result<Vec<R>, tonic::Status> {
    let mut out = Vec::new();
    while let Some(m) = s.message().await? {
        out.push(m);
    }
    Ok(out)
}

async fn unary<R: prost::Message + Default + Send + 'static>(
    ch: &Channel,
    path: &'static str,
    body: Vec<u8>,
    md: &MetadataMap,
) -> Result<R, tonic::Status> {
    grpc(ch)
        .await?
        .unary(
            request(body, md),
            PathAndQuery::from_static(path),
            RawCodec(PhantomData),
        )
        .await
        .map(tonic::Response::into_inner)
}

async fn streaming<R: prost::Message + Default + Send + 'static>(
    ch: &Channel,
    path: &'static str,
    body: Vec<u8>,
    md: &MetadataMap,
) -> Result<Vec<R>, tonic::Status> {
    let replies = grpc(ch)
        .await?
        .server_streaming(
            request(body, md),
            PathAndQuery::from_static(path),
            RawCodec(PhantomData),
        )
        .await?;
    all(replies.into_inner()).await
}

async fn bidi<R: prost::Message + Default + Send + 'static>(
    ch: &Channel,
    path: &'static str,
    bodies: Vec<Vec<u8>>,
    md: &MetadataMap,
) -> Result<Vec<R>, tonic::Status> {
    // A finite stream: the client half-closes after its commands, and the
    // server must then end its side.
    let replies = grpc(ch)
        .await?
        .streaming(
            request(tokio_stream::iter(bodies), md),
            PathAndQuery::from_static(path),
            RawCodec(PhantomData),
        )
        .await?;
    all(replies.into_inner()).await
}

// ---------------------------------------------------------------------------
// The RPCs, their well-formed requests and what their replies say.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Rpc {
    QueryRoute,
    Heartbeat,
    SendMessage,
    QueryAssignment,
    ReceiveMessage,
    AckMessage,
    ForwardToDlq,
    PullMessage,
    UpdateOffset,
    GetOffset,
    QueryOffset,
    EndTransaction,
    Telemetry,
    NotifyClientTermination,
    ChangeInvisibleDuration,
    RecallMessage,
    SyncLiteSubscription,
    CreateTopic,
    UpdateTopic,
    DeleteTopic,
    ListTopics,
    DescribeTopic,
    CreateGroup,
    UpdateGroup,
    DeleteGroup,
    ListGroups,
    DescribeGroup,
}

const ALL: [Rpc; 27] = [
    Rpc::QueryRoute,
    Rpc::Heartbeat,
    Rpc::SendMessage,
    Rpc::QueryAssignment,
    Rpc::ReceiveMessage,
    Rpc::AckMessage,
    Rpc::ForwardToDlq,
    Rpc::PullMessage,
    Rpc::UpdateOffset,
    Rpc::GetOffset,
    Rpc::QueryOffset,
    Rpc::EndTransaction,
    Rpc::Telemetry,
    Rpc::NotifyClientTermination,
    Rpc::ChangeInvisibleDuration,
    Rpc::RecallMessage,
    Rpc::SyncLiteSubscription,
    Rpc::CreateTopic,
    Rpc::UpdateTopic,
    Rpc::DeleteTopic,
    Rpc::ListTopics,
    Rpc::DescribeTopic,
    Rpc::CreateGroup,
    Rpc::UpdateGroup,
    Rpc::DeleteGroup,
    Rpc::ListGroups,
    Rpc::DescribeGroup,
];

/// What a reply said, as far as the checks care.
#[derive(Default, Debug)]
struct Reply {
    /// Every `apache.rocketmq.v2.Code` in it.
    codes: Vec<i32>,
    /// Receipt or recall handles the server accepted (answered OK for).
    accepted: Vec<String>,
    /// Receipt handles, recall handles and transaction ids it issued.
    issued: Issued,
}

#[derive(Default, Debug)]
struct Issued {
    receipts: Vec<String>,
    recalls: Vec<String>,
    transactions: Vec<String>,
}

fn code_of(s: &Option<Status>) -> Vec<i32> {
    s.iter().map(|s| s.code).collect()
}

const OK: i32 = Code::Ok as i32;

fn send_reply(r: SendMessageResponse) -> Reply {
    let mut out = Reply {
        codes: code_of(&r.status),
        ..Default::default()
    };
    for e in r.entries {
        out.codes.extend(code_of(&e.status));
        if !e.recall_handle.is_empty() {
            out.issued.recalls.push(e.recall_handle);
        }
        if !e.transaction_id.is_empty() {
            out.issued.transactions.push(e.transaction_id);
        }
    }
    out
}

/// Sends one request (or Telemetry's commands) and reads the reply.
async fn call(
    rpc: Rpc,
    ch: &Channel,
    body: Vec<u8>,
    md: &MetadataMap,
) -> Result<Reply, tonic::Status> {
    macro_rules! path {
        (admin $m:literal) => {
            concat!("/pier.admin.v1.AdminService/", $m)
        };
        ($m:literal) => {
            concat!("/apache.rocketmq.v2.MessagingService/", $m)
        };
    }
    // Replies whose only code is their status.
    macro_rules! status_only {
        ($resp:ty, $m:literal) => {{
            let r: $resp = unary(ch, path!($m), body, md).await?;
            Reply {
                codes: code_of(&r.status),
                ..Default::default()
            }
        }};
    }
    // Admin replies: failures are gRPC statuses.
    macro_rules! admin {
        ($resp:ty, $m:literal) => {{
            unary::<$resp>(ch, path!(admin $m), body, md).await?;
            Reply::default()
        }};
    }
    let ok_if = |status: &Option<Status>, handle: &str| -> Vec<String> {
        if code_of(status) == [OK] {
            vec![handle.to_owned()]
        } else {
            Vec::new()
        }
    };
    // The handle a request carried, for the forgery checks.
    let sent_handle = |rpc: Rpc| -> String {
        match rpc {
            Rpc::ChangeInvisibleDuration => ChangeInvisibleDurationRequest::decode(&body[..])
                .map(|r| r.receipt_handle)
                .unwrap_or_default(),
            Rpc::ForwardToDlq => ForwardMessageToDeadLetterQueueRequest::decode(&body[..])
                .map(|r| r.receipt_handle)
                .unwrap_or_default(),
            Rpc::RecallMessage => RecallMessageRequest::decode(&body[..])
                .map(|r| r.recall_handle)
                .unwrap_or_default(),
            _ => String::new(),
        }
    };
    let reply = match rpc {
        Rpc::QueryRoute => status_only!(QueryRouteResponse, "QueryRoute"),
        Rpc::Heartbeat => status_only!(HeartbeatResponse, "Heartbeat"),
        Rpc::SendMessage => send_reply(unary(ch, path!("SendMessage"), body, md).await?),
        Rpc::QueryAssignment => status_only!(QueryAssignmentResponse, "QueryAssignment"),
        Rpc::ReceiveMessage => {
            let frames: Vec<ReceiveMessageResponse> =
                streaming(ch, path!("ReceiveMessage"), body, md).await?;
            let mut out = Reply::default();
            for f in frames {
                match f.content {
                    Some(receive_message_response::Content::Status(s)) => out.codes.push(s.code),
                    Some(receive_message_response::Content::Message(m)) => {
                        out.issued.receipts.push(handle(&m))
                    }
                    _ => {}
                }
            }
            out
        }
        Rpc::AckMessage => {
            let r: AckMessageResponse = unary(ch, path!("AckMessage"), body, md).await?;
            let mut out = Reply {
                codes: code_of(&r.status),
                ..Default::default()
            };
            for e in r.entries {
                out.codes.extend(code_of(&e.status));
                out.accepted.extend(ok_if(&e.status, &e.receipt_handle));
            }
            out
        }
        Rpc::ForwardToDlq => {
            let h = sent_handle(rpc);
            let r: ForwardMessageToDeadLetterQueueResponse =
                unary(ch, path!("ForwardMessageToDeadLetterQueue"), body, md).await?;
            Reply {
                codes: code_of(&r.status),
                accepted: ok_if(&r.status, &h),
                ..Default::default()
            }
        }
        Rpc::PullMessage => {
            let frames: Vec<PullMessageResponse> =
                streaming(ch, path!("PullMessage"), body, md).await?;
            let mut out = Reply::default();
            for f in frames {
                if let Some(pull_message_response::Content::Status(s)) = f.content {
                    out.codes.push(s.code);
                }
            }
            out
        }
        Rpc::UpdateOffset => status_only!(UpdateOffsetResponse, "UpdateOffset"),
        Rpc::GetOffset => status_only!(GetOffsetResponse, "GetOffset"),
        Rpc::QueryOffset => status_only!(QueryOffsetResponse, "QueryOffset"),
        Rpc::EndTransaction => status_only!(EndTransactionResponse, "EndTransaction"),
        Rpc::Telemetry => {
            let frames: Vec<TelemetryCommand> =
                bidi(ch, path!("Telemetry"), vec![body], md).await?;
            Reply {
                codes: frames.iter().flat_map(|f| code_of(&f.status)).collect(),
                ..Default::default()
            }
        }
        Rpc::NotifyClientTermination => {
            status_only!(NotifyClientTerminationResponse, "NotifyClientTermination")
        }
        Rpc::ChangeInvisibleDuration => {
            let h = sent_handle(rpc);
            let r: ChangeInvisibleDurationResponse =
                unary(ch, path!("ChangeInvisibleDuration"), body, md).await?;
            let accepted = ok_if(&r.status, &h);
            Reply {
                codes: code_of(&r.status),
                issued: Issued {
                    receipts: if accepted.is_empty() {
                        Vec::new()
                    } else {
                        vec![r.receipt_handle]
                    },
                    ..Default::default()
                },
                accepted,
            }
        }
        Rpc::RecallMessage => {
            let h = sent_handle(rpc);
            let r: RecallMessageResponse = unary(ch, path!("RecallMessage"), body, md).await?;
            Reply {
                codes: code_of(&r.status),
                accepted: ok_if(&r.status, &h),
                ..Default::default()
            }
        }
        Rpc::SyncLiteSubscription => {
            status_only!(SyncLiteSubscriptionResponse, "SyncLiteSubscription")
        }
        Rpc::CreateTopic => admin!(admin::CreateTopicResponse, "CreateTopic"),
        Rpc::UpdateTopic => admin!(admin::UpdateTopicResponse, "UpdateTopic"),
        Rpc::DeleteTopic => admin!(admin::DeleteTopicResponse, "DeleteTopic"),
        Rpc::ListTopics => admin!(admin::ListTopicsResponse, "ListTopics"),
        Rpc::DescribeTopic => admin!(admin::DescribeTopicResponse, "DescribeTopic"),
        Rpc::CreateGroup => admin!(admin::CreateGroupResponse, "CreateGroup"),
        Rpc::UpdateGroup => admin!(admin::UpdateGroupResponse, "UpdateGroup"),
        Rpc::DeleteGroup => admin!(admin::DeleteGroupResponse, "DeleteGroup"),
        Rpc::ListGroups => admin!(admin::ListGroupsResponse, "ListGroups"),
        Rpc::DescribeGroup => admin!(admin::DescribeGroupResponse, "DescribeGroup"),
    };
    Ok(reply)
}

/// Whether `body` decodes as `rpc`'s request type (then the server decodes
/// it too, and must answer with a protocol code, not a failure).
fn well_formed(rpc: Rpc, b: &[u8]) -> bool {
    match rpc {
        Rpc::QueryRoute => QueryRouteRequest::decode(b).is_ok(),
        Rpc::Heartbeat => HeartbeatRequest::decode(b).is_ok(),
        Rpc::SendMessage => SendMessageRequest::decode(b).is_ok(),
        Rpc::QueryAssignment => QueryAssignmentRequest::decode(b).is_ok(),
        Rpc::ReceiveMessage => ReceiveMessageRequest::decode(b).is_ok(),
        Rpc::AckMessage => AckMessageRequest::decode(b).is_ok(),
        Rpc::ForwardToDlq => ForwardMessageToDeadLetterQueueRequest::decode(b).is_ok(),
        Rpc::PullMessage => PullMessageRequest::decode(b).is_ok(),
        Rpc::UpdateOffset => UpdateOffsetRequest::decode(b).is_ok(),
        Rpc::GetOffset => GetOffsetRequest::decode(b).is_ok(),
        Rpc::QueryOffset => QueryOffsetRequest::decode(b).is_ok(),
        Rpc::EndTransaction => EndTransactionRequest::decode(b).is_ok(),
        Rpc::Telemetry => TelemetryCommand::decode(b).is_ok(),
        Rpc::NotifyClientTermination => NotifyClientTerminationRequest::decode(b).is_ok(),
        Rpc::ChangeInvisibleDuration => ChangeInvisibleDurationRequest::decode(b).is_ok(),
        Rpc::RecallMessage => RecallMessageRequest::decode(b).is_ok(),
        Rpc::SyncLiteSubscription => SyncLiteSubscriptionRequest::decode(b).is_ok(),
        Rpc::CreateTopic => admin::CreateTopicRequest::decode(b).is_ok(),
        Rpc::UpdateTopic => admin::UpdateTopicRequest::decode(b).is_ok(),
        Rpc::DeleteTopic => admin::DeleteTopicRequest::decode(b).is_ok(),
        Rpc::ListTopics => admin::ListTopicsRequest::decode(b).is_ok(),
        Rpc::DescribeTopic => admin::DescribeTopicRequest::decode(b).is_ok(),
        Rpc::CreateGroup => admin::CreateGroupRequest::decode(b).is_ok(),
        Rpc::UpdateGroup => admin::UpdateGroupRequest::decode(b).is_ok(),
        Rpc::DeleteGroup => admin::DeleteGroupRequest::decode(b).is_ok(),
        Rpc::ListGroups => admin::ListGroupsRequest::decode(b).is_ok(),
        Rpc::DescribeGroup => admin::DescribeGroupRequest::decode(b).is_ok(),
    }
}

/// Live state the well-formed requests are built from.
struct State {
    raw: Raw,
    channel: Channel,
    /// Receipt handles of deliveries still in flight.
    receipts: Vec<String>,
    /// Recall handles of delay messages not yet recalled.
    recalls: Vec<String>,
    /// Transaction ids of half messages not yet ended.
    transactions: Vec<String>,
    /// Every handle and id the server issued (trimmed).
    genuine: HashSet<String>,
    /// Scratch topics and groups created for the delete cases.
    scratch: u32,
}

fn pb_duration(ms: u64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

/// A delivery time within the node's limit (40 days) yet never reached in
/// a run, so the delay messages stay recallable.
/// `n` messages `{prefix}{i}` to `topic` of type `kind`, due at `at` (for
/// delay messages).
fn typed(
    topic: &str,
    prefix: &str,
    n: usize,
    kind: MessageType,
    at: Option<prost_types::Timestamp>,
) -> Vec<Message> {
    (0..n)
        .map(|i| {
            let mut m = message(topic, &format!("{prefix}{i}"));
            let sp = m.system_properties.as_mut().expect("set");
            sp.message_type = kind as i32;
            sp.delivery_timestamp = at;
            m
        })
        .collect()
}

/// Sends `messages` in one well-formed request, asserting every one was
/// stored.
async fn send_all(ch: &Channel, messages: Vec<Message>, md: &MetadataMap, what: &str) -> Reply {
    let send = SendMessageRequest { messages }.encode_to_vec();
    let r = call(Rpc::SendMessage, ch, send, md).await.expect(what);
    assert!(r.codes.iter().all(|c| *c == OK), "{what}: {r:?}");
    r
}

/// A NORMAL topic of `queues` queues, as the admin API creates or
/// updates it.
fn normal_topic(name: String, queues: u32) -> admin::Topic {
    admin::Topic {
        name,
        r#type: TopicType::Normal as i32,
        queues,
        created_at_ms: 0,
    }
}

/// A consumer group that retries with `strategy`, `max_attempts` times.
fn group_retrying(
    name: String,
    max_attempts: u32,
    strategy: admin::retry_policy::Strategy,
) -> admin::ConsumerGroup {
    admin::ConsumerGroup {
        name,
        max_attempts,
        retry_policy: Some(admin::RetryPolicy {
            strategy: Some(strategy),
        }),
        ..Default::default()
    }
}

fn far_future() -> prost_types::Timestamp {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    prost_types::Timestamp {
        seconds: now.as_secs() as i64 + 20 * 24 * 3600,
        nanos: 0,
    }
}

impl State {
    fn receive_request(&self, batch: i32) -> ReceiveMessageRequest {
        ReceiveMessageRequest {
            // Long enough that the handles stay valid for the whole run.
            invisible_duration: Some(pb_duration(300_000)),
            long_polling_timeout: Some(pb_duration(100)),
            ..self.raw.receive_request(GROUP, TOPIC, batch)
        }
    }

    fn learn(&mut self, issued: Issued) {
        for h in issued
            .receipts
            .iter()
            .chain(&issued.recalls)
            .chain(&issued.transactions)
        {
            self.genuine.insert(h.trim().to_owned());
        }
        self.receipts.extend(issued.receipts);
        self.recalls.extend(issued.recalls);
        self.transactions.extend(issued.transactions);
    }

    /// Makes sure a receipt handle, a recall handle and a transaction id
    /// are at hand for the next well-formed request.
    async fn refill(&mut self, rpc: Rpc, md: &MetadataMap) {
        let ch = self.raw_channel();
        match rpc {
            Rpc::AckMessage | Rpc::ForwardToDlq | Rpc::ChangeInvisibleDuration
                if self.receipts.is_empty() =>
            {
                let msgs = typed(TOPIC, "m", 16, MessageType::Normal, None);
                send_all(&ch, msgs, md, "refill send").await;
                let recv = self.receive_request(16).encode_to_vec();
                let r = call(Rpc::ReceiveMessage, &ch, recv, md)
                    .await
                    .expect("refill receive");
                self.learn(r.issued);
            }
            Rpc::RecallMessage if self.recalls.is_empty() => {
                let msgs = typed(DELAY_TOPIC, "d", 8, MessageType::Delay, Some(far_future()));
                let r = send_all(&ch, msgs, md, "refill delay send").await;
                self.learn(r.issued);
            }
            Rpc::EndTransaction if self.transactions.is_empty() => {
                let msgs = typed(TXN_TOPIC, "x", 8, MessageType::Transaction, None);
                let r = send_all(&ch, msgs, md, "refill txn send").await;
                self.learn(r.issued);
            }
            _ => {}
        }
    }

    fn raw_channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A well-formed request of `rpc`, built from live state.
    fn base(&mut self, rpc: Rpc, rng: &mut StdRng) -> Vec<u8> {
        let group = || Some(resource(GROUP));
        let topic = || Some(resource(TOPIC));
        match rpc {
            Rpc::QueryRoute => QueryRouteRequest {
                topic: topic(),
                endpoints: Some(self.raw.endpoints()),
            }
            .encode_to_vec(),
            Rpc::Heartbeat => HeartbeatRequest {
                group: group(),
                client_type: ClientType::SimpleConsumer as i32,
            }
            .encode_to_vec(),
            Rpc::SendMessage => {
                let mut m = message(TOPIC, "fuzz");
                m.user_properties.insert("k".into(), "v".into());
                let sp = m.system_properties.as_mut().expect("set");
                sp.tag = Some("tag".into());
                sp.keys = vec!["key".into()];
                if rng.gen_ratio(1, 2) {
                    sp.message_type = MessageType::Delay as i32;
                    sp.delivery_timestamp = Some(far_future());
                    m.topic = Some(resource(DELAY_TOPIC));
                }
                SendMessageRequest { messages: vec![m] }.encode_to_vec()
            }
            Rpc::QueryAssignment => QueryAssignmentRequest {
                topic: topic(),
                group: group(),
                endpoints: Some(self.raw.endpoints()),
            }
            .encode_to_vec(),
            Rpc::ReceiveMessage => self.receive_request(4).encode_to_vec(),
            Rpc::AckMessage => AckMessageRequest {
                group: group(),
                topic: topic(),
                entries: vec![AckMessageEntry {
                    message_id: String::new(),
                    receipt_handle: self.receipts.pop().unwrap_or_default(),
                    lite_topic: None,
                }],
            }
            .encode_to_vec(),
            Rpc::ForwardToDlq => ForwardMessageToDeadLetterQueueRequest {
                group: group(),
                topic: topic(),
                receipt_handle: self.receipts.pop().unwrap_or_default(),
                message_id: "0A".into(),
                delivery_attempt: 1,
                max_delivery_attempts: 16,
                lite_topic: None,
            }
            .encode_to_vec(),
            Rpc::PullMessage => PullMessageRequest {
                group: group(),
                message_queue: Some(self.raw.queue(TOPIC)),
                offset: 0,
                batch_size: 8,
                filter_expression: None,
                long_polling_timeout: Some(pb_duration(100)),
            }
            .encode_to_vec(),
            Rpc::UpdateOffset => UpdateOffsetRequest {
                group: group(),
                message_queue: Some(self.raw.queue(TOPIC)),
                offset: 1,
            }
            .encode_to_vec(),
            Rpc::GetOffset => GetOffsetRequest {
                group: group(),
                message_queue: Some(self.raw.queue(TOPIC)),
            }
            .encode_to_vec(),
            Rpc::QueryOffset => QueryOffsetRequest {
                message_queue: Some(self.raw.queue(TOPIC)),
                query_offset_policy: QueryOffsetPolicy::End as i32,
                timestamp: None,
            }
            .encode_to_vec(),
            Rpc::EndTransaction => EndTransactionRequest {
                topic: Some(resource(TXN_TOPIC)),
                message_id: "0A".into(),
                transaction_id: self.transactions.pop().unwrap_or_default(),
                resolution: if rng.gen() {
                    TransactionResolution::Commit
                } else {
                    TransactionResolution::Rollback
                } as i32,
                source: TransactionSource::SourceClient as i32,
                trace_context: String::new(),
            }
            .encode_to_vec(),
            Rpc::Telemetry => TelemetryCommand {
                status: None,
                command: Some(telemetry_command::Command::Settings(Settings {
                    client_type: Some(ClientType::Producer as i32),
                    request_timeout: Some(pb_duration(3000)),
                    pub_sub: Some(settings::PubSub::Publishing(Publishing {
                        topics: vec![resource(TOPIC)],
                        ..Default::default()
                    })),
                    ..Default::default()
                })),
            }
            .encode_to_vec(),
            Rpc::NotifyClientTermination => {
                NotifyClientTerminationRequest { group: group() }.encode_to_vec()
            }
            Rpc::ChangeInvisibleDuration => ChangeInvisibleDurationRequest {
                group: group(),
                topic: topic(),
                receipt_handle: self.receipts.pop().unwrap_or_default(),
                invisible_duration: Some(pb_duration(300_000)),
                message_id: "0A".into(),
                lite_topic: None,
                suspend: None,
            }
            .encode_to_vec(),
            Rpc::RecallMessage => RecallMessageRequest {
                topic: Some(resource(DELAY_TOPIC)),
                recall_handle: self.recalls.pop().unwrap_or_default(),
            }
            .encode_to_vec(),
            Rpc::SyncLiteSubscription => SyncLiteSubscriptionRequest {
                topic: topic(),
                group: group(),
                ..Default::default()
            }
            .encode_to_vec(),
            Rpc::CreateTopic | Rpc::DeleteTopic => {
                // Deletes name the scratch topics the creates made; the
                // run's own topics are never at stake.
                let n = if rpc == Rpc::CreateTopic {
                    self.scratch += 1;
                    self.scratch
                } else {
                    rng.gen_range(0..=self.scratch)
                };
                let name = format!("fuzz-new-{n}");
                if rpc == Rpc::CreateTopic {
                    admin::CreateTopicRequest {
                        topic: Some(normal_topic(name, 2)),
                    }
                    .encode_to_vec()
                } else {
                    admin::DeleteTopicRequest { name }.encode_to_vec()
                }
            }
            Rpc::UpdateTopic => admin::UpdateTopicRequest {
                topic: Some(normal_topic(SCRATCH_TOPIC.into(), rng.gen_range(2..8))),
            }
            .encode_to_vec(),
            Rpc::ListTopics => admin::ListTopicsRequest {}.encode_to_vec(),
            Rpc::DescribeTopic => {
                admin::DescribeTopicRequest { name: TOPIC.into() }.encode_to_vec()
            }
            Rpc::CreateGroup | Rpc::DeleteGroup => {
                let name = format!("fuzz-g-{}", rng.gen_range(0..50));
                if rpc == Rpc::CreateGroup {
                    let backoff =
                        admin::retry_policy::Strategy::Exponential(admin::ExponentialBackoff {
                            initial_ms: 1000,
                            max_ms: 60_000,
                            multiplier: 2.0,
                        });
                    admin::CreateGroupRequest {
                        group: Some(group_retrying(name, 4, backoff)),
                    }
                    .encode_to_vec()
                } else {
                    admin::DeleteGroupRequest { name }.encode_to_vec()
                }
            }
            Rpc::UpdateGroup => admin::UpdateGroupRequest {
                group: Some(group_retrying(
                    SCRATCH_GROUP.into(),
                    rng.gen_range(1..20),
                    admin::retry_policy::Strategy::Customized(admin::CustomizedBackoff {
                        next_ms: vec![1000, 5000],
                    }),
                )),
            }
            .encode_to_vec(),
            Rpc::ListGroups => admin::ListGroupsRequest {}.encode_to_vec(),
            Rpc::DescribeGroup => {
                admin::DescribeGroupRequest { name: GROUP.into() }.encode_to_vec()
            }
        }
    }
}

/// Changes one character of a base64url string to another.
fn change_one_char(h: &str, rng: &mut StdRng) -> String {
    const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut b = h.as_bytes().to_vec();
    if b.is_empty() {
        return "A".into();
    }
    let i = rng.gen_range(0..b.len());
    let mut c = b[i];
    while c == b[i] {
        c = B64URL[rng.gen_range(0..B64URL.len())];
    }
    b[i] = c;
    String::from_utf8(b).expect("ascii")
}

/// `body` with its receipt or recall handle forged; `None` for RPCs that
/// carry none.
fn forge_handle(rpc: Rpc, body: &[u8], rng: &mut StdRng) -> Option<Vec<u8>> {
    match rpc {
        Rpc::AckMessage => {
            let mut r = AckMessageRequest::decode(body).ok()?;
            for e in &mut r.entries {
                e.receipt_handle = change_one_char(&e.receipt_handle, rng);
            }
            Some(r.encode_to_vec())
        }
        Rpc::ChangeInvisibleDuration => {
            forge_one(body, rng, |r: &mut ChangeInvisibleDurationRequest| {
                &mut r.receipt_handle
            })
        }
        Rpc::ForwardToDlq => forge_one(
            body,
            rng,
            |r: &mut ForwardMessageToDeadLetterQueueRequest| &mut r.receipt_handle,
        ),
        Rpc::RecallMessage => forge_one(body, rng, |r: &mut RecallMessageRequest| {
            &mut r.recall_handle
        }),
        _ => None,
    }
}

/// `body` decoded as an `R`, with the one handle `handle` picks out of it
/// forged, encoded again.
fn forge_one<R: prost::Message + Default>(
    body: &[u8],
    rng: &mut StdRng,
    handle: impl FnOnce(&mut R) -> &mut String,
) -> Option<Vec<u8>> {
    let mut r = R::decode(body).ok()?;
    let h = handle(&mut r);
    *h = change_one_char(h, rng);
    Some(r.encode_to_vec())
}

/// The headers an official client sends, each case's deadline included.
fn headers(raw: &Raw) -> MetadataMap {
    let r = raw.req(());
    let mut md = r.metadata().clone();
    md.insert("grpc-timeout", MetadataValue::from_static("5S"));
    md
}

/// Changes the headers now and then: missing client id or all client
/// headers, odd namespaces, the one client with a compatibility path, odd
/// deadlines.
fn mutate_headers(md: &mut MetadataMap, rng: &mut StdRng) -> &'static str {
    let value = |s: String| MetadataValue::try_from(s).expect("ascii");
    match rng.gen_range(0..8) {
        0 => {
            md.remove("x-mq-client-id");
            "no client id"
        }
        1 => {
            for k in [
                "x-mq-client-id",
                "x-mq-language",
                "x-mq-protocol",
                "x-mq-client-version",
            ] {
                md.remove(k);
            }
            "no client headers"
        }
        2 => {
            md.insert("x-mq-namespace", value(ascii(rng, 1..60)));
            "odd namespace"
        }
        3 => {
            md.insert("x-mq-language", MetadataValue::from_static("RUST"));
            md.insert("x-mq-client-version", MetadataValue::from_static("5.0.0"));
            "rust 5.0.0"
        }
        4 => {
            md.insert("x-mq-client-id", value(ascii(rng, 1..2000)));
            "odd client id"
        }
        5 => {
            let t = ["1n", "0m", "99999999H", "10m", "1S"][rng.gen_range(0..5)];
            md.insert("grpc-timeout", MetadataValue::from_static(t));
            "odd deadline"
        }
        6 => {
            md.insert("x-mq-client-version", value(ascii(rng, 1..30)));
            "odd version"
        }
        _ => {
            md.remove("grpc-timeout");
            "no deadline"
        }
    }
}

/// One failed check, with what reproduces it.
struct Finding {
    case: usize,
    rpc: Rpc,
    what: String,
    request_hex: String,
}

fn hex_prefix(b: &[u8]) -> String {
    let mut s: String = b.iter().take(200).map(|x| format!("{x:02x}")).collect();
    if b.len() > 200 {
        s.push_str(&format!("…({} bytes)", b.len()));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_requests_of_every_rpc() {
    let seed: u64 = std::env::var("PIER_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let cases: usize = std::env::var("PIER_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    eprintln!("fuzz: seed {seed} (replay with PIER_FUZZ_SEED={seed}), {cases} cases per RPC");
    let mut rng = StdRng::seed_from_u64(seed);

    let dir = tempfile::tempdir().expect("tempdir");
    // A short long-poll cap keeps receives of an empty topic quick.
    // PIER_FUZZ_MODE=cluster runs the same against a proxy over a store node
    // (the store link carries every error then).
    let cluster = std::env::var("PIER_FUZZ_MODE").is_ok_and(|m| m == "cluster");
    let (store, node) = if cluster {
        let store = Node::store(dir.path());
        let proxy = Node::proxy_of_with(&store, &["--max-long-poll-ms", "300"]);
        (Some(store), proxy)
    } else {
        let node = Node::standalone_with(dir.path(), &["--max-long-poll-ms", "300"]);
        (None, node)
    };
    eprintln!(
        "fuzz: {} mode",
        if cluster { "cluster" } else { "standalone" }
    );
    let raw = Raw::connect(&node.endpoint()).await;
    raw.create_topic(TOPIC, 4).await;
    raw.create_typed_topic(DELAY_TOPIC, TopicType::Delay, 2)
        .await;
    raw.create_typed_topic(TXN_TOPIC, TopicType::Transaction, 2)
        .await;
    raw.create_topic(SCRATCH_TOPIC, 2).await;
    raw.create_group(GROUP, 16).await;
    raw.create_group(SCRATCH_GROUP, 4).await;

    let base_md = headers(&raw);
    let ch = Channel::from_shared(format!("http://{}", node.endpoint()))
        .expect("uri")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect");
    let mut state = State {
        raw: raw.clone(),
        channel: ch.clone(),
        receipts: Vec::new(),
        recalls: Vec::new(),
        transactions: Vec::new(),
        genuine: HashSet::new(),
        scratch: 0,
    };
    let mut findings: Vec<Finding> = Vec::new();
    let mut ran = 0usize;
    let mut malformed = 0usize;
    let mut ok_replies = 0usize;
    // Handles answered OK (acks, invisibility changes, dead-letterings,
    // recalls): the forgery check is only worth something if the genuine
    // ones do get through.
    let mut accepted = 0usize;
    let mut forged_sent = 0usize;
    let mut slowest = (Duration::ZERO, Rpc::QueryRoute);
    let started = Instant::now();

    for case in 0..cases {
        for rpc in ALL {
            state.refill(rpc, &base_md).await;
            let valid = state.base(rpc, &mut rng);
            // One case in eight is sent as built: the server's own
            // well-formed request; the others get one to three mutations.
            let mut body = valid.clone();
            let mutations = if rng.gen_ratio(1, 8) {
                0
            } else {
                rng.gen_range(1..=3)
            };
            // A third of the requests carrying a handle get a forged copy of
            // a live one (one character changed) and nothing else: with
            // deliveries in flight at every offset around it, only the
            // handle's authentication stands between it and an OK.
            let forged = if mutations > 0 && rng.gen_ratio(1, 3) {
                forge_handle(rpc, &body, &mut rng)
            } else {
                None
            };
            if let Some(f) = forged {
                body = f;
                forged_sent += 1;
            } else {
                for _ in 0..mutations {
                    body = if rng.gen_ratio(1, 6) {
                        scramble_numbers(&body, &mut rng, 0)
                    } else {
                        mutate(&body, &mut rng, 0)
                    };
                }
            }
            if mutations > 0 && rng.gen_ratio(1, 40) {
                // A request cut short.
                body.truncate(rng.gen_range(0..=body.len()));
            }
            let mut md = base_md.clone();
            let header_change = if rng.gen_ratio(1, 5) {
                Some(mutate_headers(&mut md, &mut rng))
            } else {
                None
            };
            let decodes = well_formed(rpc, &body);
            if !decodes {
                malformed += 1;
            }
            let t0 = Instant::now();
            let result = tokio::time::timeout(HANG, call(rpc, &ch, body.clone(), &md)).await;
            let took = t0.elapsed();
            if took > slowest.0 {
                slowest = (took, rpc);
            }
            ran += 1;
            let mut fail = |what: String| {
                findings.push(Finding {
                    case,
                    rpc,
                    what: format!("{what} (headers: {header_change:?}, mutations: {mutations})"),
                    request_hex: hex_prefix(&body),
                })
            };
            let seen = match &result {
                Err(_) => "no answer".to_owned(),
                Ok(Err(status)) => format!("gRPC {:?}: {:.200}", status.code(), status.message()),
                Ok(Ok(reply)) => format!("codes {:?}", reply.codes),
            };
            // The node's log is read by a thread: a panic line may come a
            // moment late, so it is blamed on this case or the next.
            for line in node.log.try_iter().filter(|l| l.contains("panicked")) {
                fail(format!("the node panicked: {line}; the client saw {seen}"));
            }
            match result {
                Err(_) => fail(format!("no answer within {HANG:?}")),
                Ok(Err(status)) => {
                    let decode_error = status.code() == tonic::Code::Internal
                        && status.message().contains("decode");
                    match status.code() {
                        tonic::Code::Internal if !decodes && decode_error => {}
                        tonic::Code::Internal | tonic::Code::Unknown | tonic::Code::DataLoss => {
                            fail(format!("gRPC {:?}: {}", status.code(), status.message()))
                        }
                        // A stream reset: what a client sees when the
                        // handler panicked or a trailer was refused.
                        _ if status.message().contains("h2 protocol error") => fail(format!(
                            "stream reset: gRPC {:?}: {}",
                            status.code(),
                            status.message()
                        )),
                        tonic::Code::Unavailable => fail(format!(
                            "connection failed (a panic?): {}",
                            status.message()
                        )),
                        _ => {}
                    }
                }
                Ok(Ok(reply)) => {
                    if reply.codes.contains(&(Code::InternalServerError as i32)) {
                        fail(format!("INTERNAL_SERVER_ERROR in {:?}", reply.codes));
                    }
                    if reply.codes.iter().all(|c| *c == OK) {
                        ok_replies += 1;
                    }
                    accepted += reply.accepted.len();
                    for h in &reply.accepted {
                        if !state.genuine.contains(h.trim()) {
                            fail(format!(
                                "a handle the server never issued was accepted: {h:?}"
                            ));
                        }
                    }
                    state.learn(reply.issued);
                }
            }
        }
    }
    let elapsed = started.elapsed();

    // The node is still up and answers a well-formed request.
    let route = QueryRouteRequest {
        topic: Some(resource(TOPIC)),
        endpoints: Some(raw.endpoints()),
    };
    let alive = tokio::time::timeout(
        HANG,
        call(Rpc::QueryRoute, &ch, route.encode_to_vec(), &base_md),
    )
    .await
    .expect("QueryRoute after the run answers in time")
    .expect("QueryRoute after the run");
    assert_eq!(alive.codes, [OK], "QueryRoute after the run");
    let mut panics: Vec<String> = node
        .log
        .try_iter()
        .filter(|l| l.contains("panicked"))
        .collect();
    if let Some(store) = &store {
        panics.extend(store.log.try_iter().filter(|l| l.contains("panicked")));
    }

    eprintln!(
        "fuzz: {ran} requests ({} RPCs x {cases}) in {:.1} s; {malformed} malformed protobuf, {ok_replies} answered OK, {accepted} handles accepted (all genuine), {forged_sent} forged handles sent; slowest {:?} ({:?}); {} findings, {} panics logged",
        ALL.len(),
        elapsed.as_secs_f64(),
        slowest.0,
        slowest.1,
        findings.len(),
        panics.len()
    );
    for f in findings.iter().take(30) {
        eprintln!(
            "FINDING case {} {:?}: {}\n  request: {}",
            f.case, f.rpc, f.what, f.request_hex
        );
    }
    for p in panics.iter().take(10) {
        eprintln!("PANIC: {p}");
    }
    assert!(
        accepted > 0,
        "no receipt or recall handle was ever accepted"
    );
    assert!(
        findings.is_empty() && panics.is_empty(),
        "{} findings and {} panics (seed {seed}); see above",
        findings.len(),
        panics.len()
    );
}
