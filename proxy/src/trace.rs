//! The proxy's spans beyond the per-RPC server span (`layers`): a send
//! continues the trace its producer wrote into the message's `trace_context`
//! (W3C `traceparent`, as the official clients do with OpenTelemetry on),
//! and a receive links to the send of each message it hands out, so one
//! message's path (producer, proxy, store, consumer) reads as one trace.
//! Everything here returns at once while tracing is off.

use std::future::Future;

use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;
use pier_node::trace::span;
use pier_proto::rocketmq::{Message, SendMessageRequest};

/// A message's trace: its `trace_context` (where the OpenTelemetry
/// instrumentation of the official Java client writes `traceparent`), else
/// a `traceparent` user property (where some instrumentation versions put
/// their extra properties).
fn traceparent(m: &Message) -> Option<&str> {
    m.system_properties
        .as_ref()
        .and_then(|s| s.trace_context.as_deref())
        .filter(|t| !t.trim().is_empty())
        .or_else(|| m.user_properties.get("traceparent").map(String::as_str))
}

/// What the `send` span of a SendMessage needs, read before the request
/// is consumed: `None` while tracing is off or when no message carries a
/// `traceparent` (the clients write one trace per request; a batch shares
/// the first).
pub struct SendTrace {
    parent: String,
    topic: String,
    count: i64,
}

impl SendTrace {
    /// Reads the trace a SendMessage continues.
    pub fn of(req: &SendMessageRequest) -> Option<SendTrace> {
        if !pier_node::trace::on() {
            return None;
        }
        let parent = req.messages.iter().find_map(traceparent)?;
        Some(SendTrace {
            parent: parent.to_owned(),
            topic: req
                .messages
                .first()
                .and_then(|m| m.topic.as_ref())
                .map(|t| t.name.clone())
                .unwrap_or_default(),
            count: req.messages.len() as i64,
        })
    }
}

/// Runs a SendMessage handler in a `send` span continuing the producer's
/// trace, linked to the RPC's span.
pub async fn send<F: Future>(trace: Option<SendTrace>, handler: F) -> F::Output {
    let Some(t) = trace else {
        return handler.await;
    };
    span::continued(
        "send",
        SpanKind::Server,
        Some(&t.parent),
        || {
            vec![
                KeyValue::new("messaging.system", "rocketmq"),
                KeyValue::new("messaging.operation", "publish"),
                KeyValue::new("messaging.destination.name", t.topic),
                KeyValue::new("messaging.batch.message_count", t.count),
            ]
        },
        handler,
    )
    .await
}

/// Runs the work of a receive in a `receive` span (a child of the RPC's),
/// linked to the trace context of every message it hands out.
pub async fn receive<F, T, E>(work: F) -> Result<Vec<(Message, T)>, E>
where
    F: Future<Output = Result<Vec<(Message, T)>, E>>,
{
    span::child_with(
        "receive",
        SpanKind::Consumer,
        || {
            vec![
                KeyValue::new("messaging.system", "rocketmq"),
                KeyValue::new("messaging.operation", "receive"),
            ]
        },
        async {
            let received = work.await;
            if let Ok(messages) = &received {
                span::set_attribute(|| {
                    KeyValue::new("messaging.batch.message_count", messages.len() as i64)
                });
                span::link_current(messages.iter().filter_map(|(m, _)| traceparent(m)));
            }
            received
        },
    )
    .await
}
