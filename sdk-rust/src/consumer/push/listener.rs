//! What the application gives a push consumer: a [`MessageListener`] that
//! says a [`ConsumeResult`] for each message.

use futures::future::BoxFuture;

use crate::message::MessageView;

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

impl<F, Fut> MessageListener for F
where
    F: Fn(MessageView) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ConsumeResult> + Send + 'static,
{
    fn consume(&self, message: MessageView) -> BoxFuture<'static, ConsumeResult> {
        Box::pin(self(message))
    }
}
