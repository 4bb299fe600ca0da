//! What the application gives a push consumer: a [`MessageListener`] that
//! says a [`ConsumeResult`] for each message.

use futures::future::BoxFuture;

use crate::message::{message_callback, MessageView};

/// What a listener says about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeResult {
    /// Consumed: the message is acked.
    Success,
    /// Not consumed: the message is retried later (or dead-lettered).
    Failure,
}

/// Consumes messages for a [`PushConsumer`](crate::PushConsumer). Any `Fn(MessageView) -> impl
/// Future<Output = ConsumeResult>` closure is a listener. A panic counts as
/// [`ConsumeResult::Failure`].
pub trait MessageListener: Send + Sync + 'static {
    /// Consumes one message.
    fn consume(&self, message: MessageView) -> BoxFuture<'static, ConsumeResult>;
}

message_callback!(MessageListener::consume -> ConsumeResult);
