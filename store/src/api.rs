//! The one interface a proxy uses to reach the store, whether the store runs
//! in the same process (`Store`) or on another node (`RemoteStore`).

use std::pin::Pin;

use async_trait::async_trait;
use futures_core::Stream;
use pier_proto::admin::*;
use pier_proto::store::*;

use crate::error::Result;

/// Transaction checks as they are issued.
pub type CheckStream = Pin<Box<dyn Stream<Item = Result<TransactionCheck>> + Send>>;

#[async_trait]
pub trait StoreApi: Send + Sync + 'static {
    /// Appends messages to one topic; answers once they are durable.
    async fn append(&self, req: AppendRequest) -> Result<AppendResponse>;
    /// Takes up to `max_messages` visible messages for a group, waiting up to
    /// `poll_ms` for one to arrive or become visible.
    async fn pop(&self, req: PopRequest) -> Result<PopResponse>;
    async fn ack(&self, req: AckRequest) -> Result<AckResponse>;
    /// Acks several deliveries; each outcome (see `error::ack_result`)
    /// answers its delivery, in order. An `Err` means none was tried.
    async fn ack_many(&self, req: AckManyRequest) -> Result<AckManyResponse>;
    async fn change_invisible(
        &self,
        req: ChangeInvisibleRequest,
    ) -> Result<ChangeInvisibleResponse>;
    async fn forward_to_dlq(&self, req: ForwardToDlqRequest) -> Result<ForwardToDlqResponse>;
    /// Cancels a delay message that has not fallen due yet.
    async fn recall(&self, req: RecallRequest) -> Result<RecallResponse>;
    /// Commits, rolls back, or (UNKNOWN) leaves pending a half message.
    async fn end_transaction(&self, req: EndTransactionRequest) -> Result<EndTransactionResponse>;
    /// Checks of unresolved transactions, from now on.
    async fn watch_transaction_checks(&self) -> Result<CheckStream>;
    async fn get_topic(&self, req: GetTopicRequest) -> Result<GetTopicResponse>;
    async fn get_group(&self, req: GetGroupRequest) -> Result<GetGroupResponse>;

    async fn create_topic(&self, req: CreateTopicRequest) -> Result<CreateTopicResponse>;
    async fn update_topic(&self, req: UpdateTopicRequest) -> Result<UpdateTopicResponse>;
    async fn delete_topic(&self, req: DeleteTopicRequest) -> Result<DeleteTopicResponse>;
    async fn list_topics(&self, req: ListTopicsRequest) -> Result<ListTopicsResponse>;
    async fn describe_topic(&self, req: DescribeTopicRequest) -> Result<DescribeTopicResponse>;
    async fn create_group(&self, req: CreateGroupRequest) -> Result<CreateGroupResponse>;
    async fn update_group(&self, req: UpdateGroupRequest) -> Result<UpdateGroupResponse>;
    async fn delete_group(&self, req: DeleteGroupRequest) -> Result<DeleteGroupResponse>;
    async fn list_groups(&self, req: ListGroupsRequest) -> Result<ListGroupsResponse>;
    async fn describe_group(&self, req: DescribeGroupRequest) -> Result<DescribeGroupResponse>;
}
