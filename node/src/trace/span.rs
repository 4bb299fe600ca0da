//! The spans the services make, as small calls that do nothing (and touch
//! no SDK state) while tracing is off, and make no child spans of a trace
//! that is not sampled.
//!
//! A span is current while the future it wraps is polled (the OpenTelemetry
//! context rides on the future, not on the task), so a store call awaited
//! inside a handler is a child of the handler's span without being told.
//! Log lines written inside carry the trace id through a `tracing` span
//! with a `trace_id` field.

use std::future::Future;
use std::sync::OnceLock;

use opentelemetry::context::FutureExt;
use opentelemetry::global::{BoxedSpan, BoxedTracer};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{Link, SpanContext, SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Instrument;

use super::on;

/// The W3C header (gRPC metadata key, message `trace_context` format).
pub const TRACEPARENT: &str = "traceparent";

/// A single `traceparent` value read as a carrier.
struct One<'a>(&'a str);

impl Extractor for One<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0)
    }
    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

/// The span context a `traceparent` value names, if it is well-formed.
pub fn parse(traceparent: &str) -> Option<SpanContext> {
    let traceparent = traceparent.trim();
    if traceparent.is_empty() {
        return None;
    }
    let cx = TraceContextPropagator::new().extract(&One(traceparent));
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// The context a caller's headers (gRPC metadata) carry, or an empty one.
pub(super) fn extract(headers: &http::HeaderMap) -> Context {
    struct Headers<'a>(&'a http::HeaderMap);
    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
    TraceContextPropagator::new().extract(&Headers(headers))
}

/// Writes `cx` as `traceparent` (and `tracestate`) into gRPC metadata.
fn inject(cx: &Context, metadata: &mut tonic::metadata::MetadataMap) {
    struct Metadata<'a>(&'a mut tonic::metadata::MetadataMap);
    impl Injector for Metadata<'_> {
        fn set(&mut self, key: &str, value: String) {
            let key = tonic::metadata::MetadataKey::from_bytes(key.as_bytes());
            if let (Ok(k), Ok(v)) = (key, value.parse()) {
                self.0.insert(k, v);
            }
        }
    }
    TraceContextPropagator::new().inject_context(cx, &mut Metadata(metadata));
}

/// Pier's tracer, taken from the global provider once: spans are only
/// started after [`super::Tracing::start`] installed it.
fn tracer() -> &'static BoxedTracer {
    static TRACER: OnceLock<BoxedTracer> = OnceLock::new();
    TRACER.get_or_init(|| opentelemetry::global::tracer("pier"))
}

/// Starts a span under `parent` and returns the context holding it (the
/// span ends when the last clone of that context is dropped).
pub(super) fn start(
    name: impl Into<std::borrow::Cow<'static, str>>,
    kind: SpanKind,
    parent: &Context,
    links: Vec<Link>,
    attributes: Vec<KeyValue>,
) -> Context {
    let tracer = tracer();
    let span = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_links(links)
        .with_attributes(attributes)
        .start_with_context(tracer, parent);
    parent.with_span(span)
}

/// The `tracing` span that puts `cx`'s trace id on the log lines written
/// under it.
pub(super) fn log_span(cx: &Context) -> tracing::Span {
    let span = cx.span();
    let sc = span.span_context();
    tracing::info_span!("trace", trace_id = %sc.trace_id(), span_id = %sc.span_id())
}

/// Whether `cx`'s span is sampled.
pub(super) fn is_sampled(cx: &Context) -> bool {
    cx.span().span_context().is_sampled()
}

/// Whether `cx` (extracted from a call) holds a caller's span context,
/// sampled or not.
pub(super) fn has_caller(cx: &Context) -> bool {
    cx.span().span_context().is_valid()
}

/// Runs `fut` with `cx` current (and its trace id on log lines).
async fn within<F: Future>(cx: Context, fut: F) -> F::Output {
    let log = log_span(&cx);
    fut.with_context(cx).instrument(log).await
}

/// The current context, if tracing is on and it is sampled.
pub fn sampled_current() -> Option<Context> {
    if !on() {
        return None;
    }
    let cx = Context::current();
    cx.span().span_context().is_sampled().then_some(cx)
}

/// Runs `fut` in a child span `name` of the current span, when that one is
/// sampled; otherwise just runs it.
pub async fn child<F: Future>(name: &'static str, fut: F) -> F::Output {
    match sampled_current() {
        Some(parent) => {
            let cx = start(name, SpanKind::Internal, &parent, Vec::new(), Vec::new());
            fut.with_context(cx).await
        }
        None => fut.await,
    }
}

/// Like [`child`], with a kind and attributes.
pub async fn child_with<F: Future>(
    name: &'static str,
    kind: SpanKind,
    attributes: impl FnOnce() -> Vec<KeyValue>,
    fut: F,
) -> F::Output {
    match sampled_current() {
        Some(parent) => {
            let cx = start(name, kind, &parent, Vec::new(), attributes());
            fut.with_context(cx).await
        }
        None => fut.await,
    }
}

/// Runs `fut` in a span `name` continuing the trace a message was sent in
/// (`traceparent`, from its `trace_context`), linked to the current span
/// (the RPC's) when that is another trace. Without a valid `traceparent`,
/// `fut` runs under the current span.
pub async fn continued<F: Future>(
    name: &'static str,
    kind: SpanKind,
    traceparent: Option<&str>,
    attributes: impl FnOnce() -> Vec<KeyValue>,
    fut: F,
) -> F::Output {
    let Some(parent) = traceparent.filter(|_| on()).and_then(parse) else {
        return fut.await;
    };
    let current = Context::current();
    let rpc = current.span().span_context().clone();
    let links = if rpc.is_valid() && rpc.trace_id() != parent.trace_id() {
        vec![Link::with_context(rpc)]
    } else {
        Vec::new()
    };
    let remote = current.with_remote_span_context(parent);
    let cx = start(name, kind, &remote, links, attributes());
    within(cx, fut).await
}

/// A span `name` continuing the trace a message was sent in, for work a
/// background thread does on it outside any request (a delay timer firing,
/// a transaction check): a child of the message's `traceparent`, so the
/// message's trace goes on where it becomes visible. `None` while tracing
/// is off, or when the message carries no valid, sampled `traceparent`
/// (nothing then is recorded). The span ends when the returned context (and
/// every clone) is dropped; attach it (`Context::attach`) to make the work
/// done meanwhile (a group commit) its child.
pub fn resumed(
    name: &'static str,
    traceparent: &str,
    attributes: impl FnOnce() -> Vec<KeyValue>,
) -> Option<Context> {
    if !on() {
        return None;
    }
    let sc = parse(traceparent)?;
    if !sc.is_sampled() {
        return None;
    }
    let parent = Context::new().with_remote_span_context(sc);
    Some(start(
        name,
        SpanKind::Internal,
        &parent,
        Vec::new(),
        attributes(),
    ))
}

/// Links the current span to the span contexts that `traceparents` name
/// (the messages a receive hands out, to the sends that made them).
pub fn link_current<'a>(traceparents: impl Iterator<Item = &'a str>) {
    let Some(cx) = sampled_current() else {
        return;
    };
    let span = cx.span();
    for sc in traceparents.filter_map(parse) {
        span.add_link(sc, Vec::new());
    }
}

/// Sets an attribute on the current span, when it is sampled.
pub fn set_attribute(attribute: impl FnOnce() -> KeyValue) {
    if let Some(cx) = sampled_current() {
        cx.span().set_attribute(attribute());
    }
}

/// A span over work done for several callers at once (a group commit):
/// under the first sampled caller's span, linked to the others'. Ends when
/// dropped; `None` when no caller is sampled.
pub fn shared<'a>(
    name: &'static str,
    callers: impl Iterator<Item = &'a Context>,
    attributes: impl FnOnce() -> Vec<KeyValue>,
) -> Option<BoxedSpan> {
    let mut callers = callers;
    let first = callers.next()?;
    let links = callers
        .map(|c| Link::with_context(c.span().span_context().clone()))
        .collect();
    let tracer = tracer();
    Some(
        tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_links(links)
            .with_attributes(attributes())
            .start_with_context(tracer, first),
    )
}

/// Makes a gRPC call carrying the current trace: a client span `name` when
/// the current span is sampled (its context sent as `traceparent`), the
/// current context alone when not (so the callee keeps the decision), no
/// metadata at all when tracing is off.
pub async fn outgoing<T, R, F, Fut>(name: &'static str, req: T, call: F) -> R
where
    F: FnOnce(tonic::Request<T>) -> Fut,
    Fut: Future<Output = R>,
{
    let mut request = tonic::Request::new(req);
    if !on() {
        return call(request).await;
    }
    let current = Context::current();
    if !current.span().span_context().is_sampled() {
        inject(&current, request.metadata_mut());
        return call(request).await;
    }
    let cx = start(name, SpanKind::Client, &current, Vec::new(), Vec::new());
    inject(&cx, request.metadata_mut());
    call(request).with_context(cx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_is_read_or_refused() {
        let sc = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(sc.is_sampled() && sc.is_remote());
        assert!(parse("").is_none());
        assert!(parse("00-zz-00f067aa0ba902b7-01").is_none());
        assert!(parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
    }

    #[test]
    fn a_context_is_written_as_traceparent() {
        let sc = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let cx = Context::new().with_remote_span_context(sc);
        let mut md = tonic::metadata::MetadataMap::new();
        inject(&cx, &mut md);
        assert_eq!(
            md.get(TRACEPARENT).and_then(|v| v.to_str().ok()),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
    }
}
