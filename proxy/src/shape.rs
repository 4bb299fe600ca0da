//! What one request may decode to, estimated on the wire before prost
//! builds anything.
//!
//! prost decodes a repeated message field by pushing one struct per entry,
//! and an empty entry costs two bytes on the wire. A SendMessage of 64 MiB
//! of empty `messages` entries (hundreds of bytes each once decoded) would
//! take tens of gigabytes before any check of Pier's looked at it, and
//! before authentication too, since refused sends are answered in the
//! reply body, after decoding. So each MessagingService request is walked
//! first, following its message types in the descriptor set, adding up
//! what each field it carries costs once decoded (a message: its struct,
//! estimated from its fields as prost lays them out; a string or bytes: its
//! header, the bytes themselves being the request's own; anything else: 8
//! bytes). Past [`DECODED_BUDGET`] the request is refused. Real requests
//! are well below it: a send of 1,024 messages with 128 properties each
//! is estimated at 16 MiB, one of 10,000 small messages (which the send
//! limits then refuse with their own code) at 13 MiB.
//!
//! A walk that finds bytes it cannot read stops without a verdict: prost
//! refuses the same bytes right after, having decoded nothing past them.

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame};
use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};
use tonic::server::NamedService;
use tower::Service;

/// The most one request may be estimated to take once decoded, beyond its
/// own bytes.
pub const DECODED_BUDGET: usize = 64 << 20;
/// Nesting deeper than this is refused (Pier's messages nest a few levels).
const MAX_DEPTH: usize = 32;
/// A gRPC message's prefix: compressed flag, then its length (big endian).
const PREFIX: usize = 5;
/// What a `String`, `Vec` or `HashMap` takes before its contents.
const HEADER: usize = 24;
/// A scalar field, at most.
const SCALAR: usize = 8;
/// A struct's own overhead, roughly (alignment, a oneof's tag).
const STRUCT: usize = 16;

/// One message type: what it costs decoded, and which of its fields hold
/// messages of which type.
#[derive(Debug, Default)]
struct Shape {
    /// Its full name, for the refusal.
    name: String,
    /// Its struct, with the messages it holds inline.
    weight: usize,
    /// (field number, index of its message type in [`Shapes::types`]).
    nested: Vec<(u32, usize)>,
}

/// The message types of the protocol and the request type of each RPC.
#[derive(Debug)]
pub struct Shapes {
    types: Vec<Shape>,
    /// RPC path (`/package.Service/Method`) → index of its request type.
    requests: HashMap<String, usize>,
    budget: usize,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    /// The message type whose field went past the budget.
    pub type_name: String,
}

impl Shapes {
    /// The shapes of every message type in `descriptors` (an encoded
    /// `FileDescriptorSet`); a request may cost `budget` bytes decoded.
    pub fn new(descriptors: &[u8], budget: usize) -> Result<Shapes, prost::DecodeError> {
        let set = FileDescriptorSet::decode(descriptors)?;
        // Every message type's full name (".package.Outer.Inner") first, so
        // fields can name types defined later.
        let mut names: Vec<(String, &DescriptorProto)> = Vec::new();
        fn collect<'a>(
            prefix: &str,
            m: &'a DescriptorProto,
            out: &mut Vec<(String, &'a DescriptorProto)>,
        ) {
            let name = format!("{prefix}.{}", m.name());
            for inner in &m.nested_type {
                collect(&name, inner, out);
            }
            out.push((name, m));
        }
        for file in &set.file {
            let prefix = if file.package().is_empty() {
                String::new()
            } else {
                format!(".{}", file.package())
            };
            for m in &file.message_type {
                collect(&prefix, m, &mut names);
            }
        }
        let index: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.as_str(), i))
            .collect();
        let descs: Vec<&DescriptorProto> = names.iter().map(|(_, m)| *m).collect();
        let mut weights = Weights {
            descs: &descs,
            index: &index,
            memo: vec![None; descs.len()],
            visiting: vec![false; descs.len()],
        };
        let types = (0..descs.len())
            .map(|i| Shape {
                name: names[i].0.trim_start_matches('.').to_owned(),
                weight: weights.of(i),
                nested: descs[i]
                    .field
                    .iter()
                    .filter(|f| matches!(f.r#type(), Type::Message | Type::Group))
                    .filter_map(|f| {
                        Some((u32::try_from(f.number()).ok()?, *index.get(f.type_name())?))
                    })
                    .collect(),
            })
            .collect();
        let mut requests = HashMap::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    if let Some(&i) = index.get(method.input_type()) {
                        let path =
                            format!("/{}.{}/{}", file.package(), service.name(), method.name());
                        requests.insert(path, i);
                    }
                }
            }
        }
        Ok(Shapes {
            types,
            requests,
            budget,
        })
    }

    /// The protocol's shapes (the descriptor set served for reflection),
    /// with [`DECODED_BUDGET`].
    pub fn of_protocol() -> Result<Shapes, prost::DecodeError> {
        Shapes::new(pier_proto::FILE_DESCRIPTOR_SET, DECODED_BUDGET)
    }

    /// Checks one encoded request of the RPC at `path` (unknown paths pass:
    /// they are answered UNIMPLEMENTED).
    pub fn check(&self, path: &str, message: &[u8]) -> Result<(), TooLarge> {
        match self.requests.get(path) {
            Some(&t) => {
                let mut spent = self.types[t].weight;
                self.walk(t, message, 0, &mut spent)
            }
            None => Ok(()),
        }
    }

    fn walk(
        &self,
        t: usize,
        mut buf: &[u8],
        depth: usize,
        spent: &mut usize,
    ) -> Result<(), TooLarge> {
        let shape = &self.types[t];
        let too_large = || {
            Err(TooLarge {
                type_name: shape.name.clone(),
            })
        };
        if depth > MAX_DEPTH {
            return too_large();
        }
        while buf.has_remaining() {
            let Ok((tag, wire)) = decode_key(&mut buf) else {
                return Ok(());
            };
            let nested = shape
                .nested
                .iter()
                .find(|(n, _)| *n == tag)
                .map(|(_, i)| *i);
            *spent += match (wire, nested) {
                (WireType::LengthDelimited, Some(i)) => self.types[i].weight,
                (WireType::LengthDelimited, None) => HEADER,
                _ => SCALAR,
            };
            if *spent > self.budget {
                return too_large();
            }
            if wire != WireType::LengthDelimited {
                if skip_field(wire, tag, &mut buf, DecodeContext::default()).is_err() {
                    return Ok(());
                }
                continue;
            }
            let Some(len) = decode_varint(&mut buf)
                .ok()
                .and_then(|l| usize::try_from(l).ok())
                .filter(|l| *l <= buf.len())
            else {
                return Ok(());
            };
            let (inner, rest) = buf.split_at(len);
            if let Some(i) = nested {
                self.walk(i, inner, depth + 1, spent)?;
            }
            buf = rest;
        }
        Ok(())
    }
}

/// Estimates each message type's struct as prost lays it out: a scalar 8
/// bytes, a string, bytes, repeated field or map a header, a singular
/// message its own struct inline (a type that holds itself, boxed).
struct Weights<'a> {
    descs: &'a [&'a DescriptorProto],
    index: &'a HashMap<&'a str, usize>,
    memo: Vec<Option<usize>>,
    visiting: Vec<bool>,
}

impl Weights<'_> {
    fn of(&mut self, i: usize) -> usize {
        if let Some(w) = self.memo[i] {
            return w;
        }
        if self.visiting[i] {
            return HEADER;
        }
        self.visiting[i] = true;
        let mut w = STRUCT;
        for f in &self.descs[i].field {
            w += if f.label() == Label::Repeated {
                HEADER
            } else {
                match f.r#type() {
                    Type::Message | Type::Group => match self.index.get(f.type_name()) {
                        Some(&n) => self.of(n),
                        None => HEADER,
                    },
                    Type::String | Type::Bytes => HEADER,
                    _ => SCALAR,
                }
            };
        }
        self.visiting[i] = false;
        self.memo[i] = Some(w);
        w
    }
}

/// A service whose requests are checked against [`Shapes`] before it
/// decodes them.
#[derive(Clone)]
pub struct Checked<S> {
    inner: S,
    shapes: std::sync::Arc<Shapes>,
}

impl<S> Checked<S> {
    /// Checks the requests of `inner`.
    pub fn new(inner: S, shapes: std::sync::Arc<Shapes>) -> Checked<S> {
        Checked { inner, shapes }
    }
}

impl<S: NamedService> NamedService for Checked<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for Checked<S>
where
    S: Service<http::Request<CheckedBody<B>>>,
    B: Body<Data = Bytes>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_owned();
        let shapes = self.shapes.clone();
        self.inner.call(req.map(|body| CheckedBody {
            inner: body,
            shapes,
            path,
            pending: BytesMut::new(),
            passing: false,
        }))
    }
}

/// A request body handed on one whole gRPC message at a time, each checked
/// first.
pub struct CheckedBody<B> {
    inner: B,
    shapes: std::sync::Arc<Shapes>,
    path: String,
    /// Bytes of a message not yet whole.
    pending: BytesMut,
    /// Once set, bytes go on unchecked: a compressed or oversized message,
    /// which the codec refuses itself.
    passing: bool,
}

impl<B> CheckedBody<B> {
    /// The length of the whole gRPC message starting `buf`, once its prefix
    /// is there; `None` when it is compressed (not checked).
    fn framed_len(buf: &[u8]) -> Option<Option<usize>> {
        let prefix = buf.get(..PREFIX)?;
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        Some((prefix[0] == 0).then_some(PREFIX + len))
    }

    /// Checks a whole message (prefix included).
    fn check(&self, message: &[u8]) -> Result<(), tonic::Status> {
        self.shapes
            .check(&self.path, message.get(PREFIX..).unwrap_or_default())
            .map_err(|e| {
                tonic::Status::invalid_argument(format!(
                    "the request would take more than {} MiB once decoded (at a field of {}); send smaller requests",
                    self.shapes.budget >> 20,
                    e.type_name
                ))
            })
    }

    /// A whole message from `pending`, checked, or nothing yet.
    fn next_message(&mut self) -> Result<Option<Bytes>, tonic::Status> {
        match Self::framed_len(&self.pending) {
            None => Ok(None),
            Some(Some(len)) if len <= pier_store::MAX_GRPC_MESSAGE + PREFIX => {
                if self.pending.len() < len {
                    return Ok(None);
                }
                let message = self.pending.split_to(len).freeze();
                self.check(&message)?;
                Ok(Some(message))
            }
            // Compressed or over the codec's limit: the codec answers it.
            Some(_) => {
                self.passing = true;
                Ok(Some(self.pending.split().freeze()))
            }
        }
    }
}

impl<B> Body for CheckedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            if !this.passing {
                match this.next_message() {
                    Ok(Some(m)) => return Poll::Ready(Some(Ok(Frame::data(m)))),
                    Ok(None) => {}
                    Err(status) => return Poll::Ready(Some(Err(Box::new(status)))),
                }
            } else if !this.pending.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(this.pending.split().freeze()))));
            }
            let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                // A message cut short goes on as it is: the codec says so.
                None if this.pending.is_empty() => return Poll::Ready(None),
                None => return Poll::Ready(Some(Ok(Frame::data(this.pending.split().freeze())))),
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(other) => return Poll::Ready(Some(Ok(other))),
            };
            if this.passing {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            // The usual case, one whole message in one frame, goes on
            // without a copy.
            if this.pending.is_empty() {
                if let Some(Some(len)) = Self::framed_len(&data) {
                    if len == data.len() {
                        return Poll::Ready(Some(match this.check(&data) {
                            Ok(()) => Ok(Frame::data(data)),
                            Err(status) => Err(Box::new(status)),
                        }));
                    }
                }
            }
            this.pending.extend_from_slice(&data);
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::{BodyExt, StreamBody};
    use pier_proto::rocketmq::*;

    use super::*;

    const SEND: &str = "/apache.rocketmq.v2.MessagingService/SendMessage";
    const TELEMETRY: &str = "/apache.rocketmq.v2.MessagingService/Telemetry";

    fn shapes() -> Shapes {
        Shapes::of_protocol().unwrap()
    }

    fn message(keys: usize, body: Vec<u8>) -> Message {
        Message {
            topic: Some(Resource {
                name: "t".into(),
                ..Default::default()
            }),
            user_properties: (0..128).map(|i| (format!("k{i}"), "v".into())).collect(),
            system_properties: Some(SystemProperties {
                message_id: "id".into(),
                keys: (0..keys).map(|i| format!("key{i}")).collect(),
                ..Default::default()
            }),
            body: body.into(),
        }
    }

    fn send(n: usize, keys: usize) -> Vec<u8> {
        SendMessageRequest {
            messages: (0..n).map(|_| message(keys, b"hello".to_vec())).collect(),
        }
        .encode_to_vec()
    }

    /// Empty entries of field 1: two bytes each on the wire, a whole
    /// struct each decoded.
    fn empties(n: usize) -> Vec<u8> {
        [0x0a, 0x00].repeat(n)
    }

    #[test]
    fn requests_within_the_other_limits_pass() {
        let s = shapes();
        assert_eq!(s.check(SEND, &send(1024, 64)), Ok(()));
        // Over the send limits, for them to refuse with their own code.
        let small = SendMessageRequest {
            messages: (0..10_000)
                .map(|_| Message {
                    body: b"x".to_vec().into(),
                    ..message(0, Vec::new())
                })
                .map(|mut m| {
                    m.user_properties.clear();
                    m
                })
                .collect(),
        };
        assert_eq!(s.check(SEND, &small.encode_to_vec()), Ok(()));
        // A body is bytes, whatever it looks like: never walked.
        let one = SendMessageRequest {
            messages: vec![message(0, empties(1_000_000))],
        };
        assert_eq!(s.check(SEND, &one.encode_to_vec()), Ok(()));
    }

    #[test]
    fn empty_entries_are_refused_long_before_they_add_up() {
        let s = shapes();
        // A few hundred kilobytes of wire: gigabytes once decoded.
        let e = s.check(SEND, &empties(200_000)).unwrap_err();
        assert_eq!(e.type_name, "apache.rocketmq.v2.SendMessageRequest");
        let ack = "/apache.rocketmq.v2.MessagingService/AckMessage";
        // AckMessageRequest's entries are field 3.
        let e = s.check(ack, &[0x1a, 0x00].repeat(2_000_000)).unwrap_err();
        assert_eq!(e.type_name, "apache.rocketmq.v2.AckMessageRequest");
    }

    #[test]
    fn nested_fields_count_wherever_they_are() {
        // A small budget, to keep the requests small.
        let s = Shapes::new(pier_proto::FILE_DESCRIPTOR_SET, 1 << 20).unwrap();
        assert_eq!(s.check(SEND, &send(1, 10)), Ok(()));
        let e = s.check(SEND, &send(1, 50_000)).unwrap_err();
        assert_eq!(e.type_name, "apache.rocketmq.v2.SystemProperties");
        let settings = TelemetryCommand {
            command: Some(telemetry_command::Command::Settings(Settings {
                pub_sub: Some(settings::PubSub::Subscription(Subscription {
                    subscriptions: vec![SubscriptionEntry::default(); 20_000],
                    ..Default::default()
                })),
                ..Default::default()
            })),
            ..Default::default()
        };
        let e = s.check(TELEMETRY, &settings.encode_to_vec()).unwrap_err();
        assert_eq!(e.type_name, "apache.rocketmq.v2.Subscription");
    }

    #[test]
    fn what_prost_would_refuse_or_nobody_serves_passes_to_them() {
        let s = shapes();
        let mut cut = send(3, 1);
        cut.truncate(cut.len() - 7);
        assert_eq!(s.check(SEND, &cut), Ok(()));
        assert_eq!(s.check(SEND, &[0xff; 64]), Ok(()));
        assert_eq!(s.check("/no.Such/Call", &empties(200_000)), Ok(()));
    }

    fn framed(message: &[u8]) -> Bytes {
        let mut out = vec![0];
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
        out.into()
    }

    async fn through(path: &str, chunks: Vec<Bytes>) -> Result<Bytes, tonic::Status> {
        let frames = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, Infallible>(Frame::data(c))),
        );
        let body = CheckedBody {
            inner: StreamBody::new(frames),
            shapes: std::sync::Arc::new(shapes()),
            path: path.into(),
            pending: BytesMut::new(),
            passing: false,
        };
        match body.collect().await {
            Ok(c) => Ok(c.to_bytes()),
            Err(e) => Err(*e.downcast::<tonic::Status>().expect("a Status")),
        }
    }

    #[tokio::test]
    async fn the_body_hands_on_every_byte_of_good_messages_however_cut() {
        let mut stream = framed(&send(2, 1)).to_vec();
        stream.extend_from_slice(&framed(&send(1, 0)));
        for cut in [1, 3, 5, 9, 100, stream.len() - 1] {
            let chunks = stream.chunks(cut).map(Bytes::copy_from_slice).collect();
            assert_eq!(through(SEND, chunks).await.unwrap(), stream, "cut {cut}");
        }
    }

    #[tokio::test]
    async fn the_body_stops_at_a_message_too_large_decoded() {
        let bad = framed(&empties(200_000));
        for chunks in [
            vec![bad.clone()],
            bad.chunks(4_099).map(Bytes::copy_from_slice).collect(),
        ] {
            let status = through(SEND, chunks).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert!(
                status.message().contains("SendMessageRequest"),
                "{status:?}"
            );
        }
    }
}
