//! What both consumer kinds share: subscriptions, the receive call (a long
//! poll), acks (`acks`: coalesced when several are on the wire at once),
//! invisibility changes and dead-lettering.
//!
//! - `simple`: [`SimpleConsumer`](crate::SimpleConsumer), the application
//!   pulls;
//! - `push`: [`PushConsumer`](crate::PushConsumer), a listener is called
//!   for each message.

mod acks;
pub(crate) mod push;
pub(crate) mod simple;

use std::sync::Arc;
use std::time::Duration;

use pier_proto::rocketmq::receive_message_response::Content;
use pier_proto::rocketmq::settings::PubSub;
use pier_proto::rocketmq::{
    Broker, ChangeInvisibleDurationRequest, ClientType, Code, FilterType,
    ForwardMessageToDeadLetterQueueRequest, MessageQueue, Permission, ReceiveMessageRequest,
    Subscription, SubscriptionEntry,
};

use crate::config::ClientConfig;
use crate::connect::{deadline, request};
use crate::error::{check, Error, Result};
use crate::message::wire::read_receive_frames;
use crate::message::MessageView;
use crate::session::ClientCore;
use crate::time::duration;

/// Name Pier gives its (single, logical) broker in routes.
const BROKER_NAME: &str = "pier";

/// Which messages of a topic a consumer wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterExpression {
    /// Tag filter: `*` (everything), `TagA`, or `TagA || TagB`.
    Tag(String),
    /// SQL92 filter over message properties (where the server supports it).
    Sql(String),
}

impl FilterExpression {
    /// Every message (`Tag("*")`).
    pub fn all() -> FilterExpression {
        FilterExpression::Tag("*".into())
    }

    pub(crate) fn to_proto(&self) -> pier_proto::rocketmq::FilterExpression {
        let (t, e) = match self {
            FilterExpression::Tag(e) => (FilterType::Tag, e),
            FilterExpression::Sql(e) => (FilterType::Sql, e),
        };
        pier_proto::rocketmq::FilterExpression {
            r#type: t as i32,
            expression: e.clone(),
        }
    }
}

/// The client core of a consumer of `group` subscribed to `subscriptions`
/// (checked first): its Settings declare the group and the subscription
/// entries over `subscription`'s other fields.
pub(crate) fn new_core(
    config: ClientConfig,
    client_type: ClientType,
    group: &str,
    subscriptions: &[(String, FilterExpression)],
    subscription: Subscription,
) -> Result<Arc<ClientCore>> {
    if group.trim().is_empty() {
        return Err(Error::invalid("the consumer group name is empty"));
    }
    if subscriptions.is_empty() {
        return Err(Error::invalid("subscribe to at least one topic"));
    }
    let entries = subscriptions
        .iter()
        .map(|(topic, f)| SubscriptionEntry {
            topic: Some(pier_proto::rocketmq::Resource {
                resource_namespace: config.namespace().to_owned(),
                name: topic.clone(),
            }),
            expression: Some(f.to_proto()),
        })
        .collect();
    let core = ClientCore::new(
        config,
        client_type,
        Some(group.to_owned()),
        PubSub::Subscription(Subscription {
            subscriptions: entries,
            ..subscription
        }),
        None,
    )?;
    core.declare_group(group);
    Ok(core)
}

/// How to receive: where from and for how long.
#[derive(Debug, Clone)]
pub(crate) struct ReceiveSpec {
    pub(crate) group: String,
    pub(crate) queue: MessageQueue,
    pub(crate) filter: FilterExpression,
    pub(crate) batch: i32,
    /// `None`: auto-renew (push consumers).
    pub(crate) invisible: Option<Duration>,
    pub(crate) long_poll: Duration,
    pub(crate) attempt_id: Option<String>,
}

/// "Any queue" of `topic` at the client's addresses.
pub(crate) fn any_queue(core: &ClientCore, topic: &str) -> MessageQueue {
    MessageQueue {
        topic: Some(core.resource(topic)),
        id: -1,
        permission: Permission::ReadWrite as i32,
        broker: Some(Broker {
            name: BROKER_NAME.into(),
            id: 0,
            endpoints: Some(core.cluster.endpoints()),
        }),
        accept_message_types: Vec::new(),
    }
}

/// One ReceiveMessage call against address `i` (no fail-over: a long poll
/// belongs to one connection). "No message" is an empty list.
pub(crate) async fn receive(
    core: &ClientCore,
    i: usize,
    spec: &ReceiveSpec,
) -> Result<Vec<MessageView>> {
    let req = ReceiveMessageRequest {
        group: Some(core.resource(&spec.group)),
        message_queue: Some(spec.queue.clone()),
        filter_expression: Some(spec.filter.to_proto()),
        batch_size: spec.batch,
        invisible_duration: spec.invisible.map(duration),
        auto_renew: spec.invisible.is_none(),
        long_polling_timeout: Some(duration(spec.long_poll)),
        attempt_id: spec.attempt_id.clone(),
    };
    // The long-polling time may come from the server: never overflow.
    let t = spec.long_poll.saturating_add(core.timeout());
    let mut rpc = core.cluster.client(i);
    let frames = deadline(t, async {
        let mut stream = rpc.receive_message(request(req, t)).await?.into_inner();
        let mut frames = Vec::new();
        while let Some(f) = stream.message().await? {
            let done = matches!(f.content, Some(Content::DeliveryTimestamp(_)));
            frames.push(f);
            if done {
                break;
            }
        }
        Ok(frames)
    })
    .await;
    let frames = match frames {
        Ok(f) => {
            core.cluster.mark_up(i);
            f
        }
        Err(e) => {
            if e.is_transport() {
                core.cluster.mark_down(i);
            }
            return Err(e);
        }
    };
    match read_receive_frames(frames) {
        Ok(messages) => messages
            .into_iter()
            .map(|m| MessageView::from_wire(m, i, true))
            .collect(),
        Err(e) if e.code() == Some(Code::MessageNotFound) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Changes how long a delivery stays invisible; returns the delivery with
/// its new receipt handle.
pub(crate) async fn change_invisible(
    core: &ClientCore,
    group: &str,
    m: &MessageView,
    invisible: Duration,
) -> Result<MessageView> {
    let req = ChangeInvisibleDurationRequest {
        group: Some(core.resource(group)),
        topic: Some(core.resource(m.topic())),
        receipt_handle: m.receipt_handle().to_owned(),
        invisible_duration: Some(duration(invisible)),
        message_id: m.message_id().to_owned(),
        lite_topic: None,
        suspend: None,
    };
    let resp = core
        .call(Some(m.origin), req, |mut rpc, r| async move {
            rpc.change_invisible_duration(r).await
        })
        .await?;
    check(resp.status.as_ref())?;
    if resp.receipt_handle.is_empty() {
        return Err(Error::Protocol(
            "ChangeInvisibleDuration returned no receipt handle".into(),
        ));
    }
    Ok(m.with_receipt_handle(resp.receipt_handle))
}

/// Moves a delivery to the group's dead-letter queue after `attempts`
/// consumption attempts (local retries included).
pub(crate) async fn forward_to_dlq(
    core: &ClientCore,
    group: &str,
    m: &MessageView,
    attempts: i32,
    max_attempts: i32,
) -> Result<()> {
    let req = ForwardMessageToDeadLetterQueueRequest {
        group: Some(core.resource(group)),
        topic: Some(core.resource(m.topic())),
        receipt_handle: m.receipt_handle().to_owned(),
        message_id: m.message_id().to_owned(),
        delivery_attempt: attempts,
        max_delivery_attempts: max_attempts,
        lite_topic: None,
    };
    let resp = core
        .call(Some(m.origin), req, |mut rpc, r| async move {
            rpc.forward_message_to_dead_letter_queue(r).await
        })
        .await?;
    check(resp.status.as_ref())
}
