//! The one interface a proxy uses to reach the store, whether the store runs
//! in the same process ([`crate::Store`]) or on another node
//! ([`crate::RemoteStore`]). Requests and responses are the
//! `pier.store.v1` and `pier.admin.v1` messages.

use std::pin::Pin;

use async_trait::async_trait;
use futures_core::Stream;
use pier_proto::admin::*;
use pier_proto::store::*;

use crate::error::Result;

/// Transaction checks as they are issued.
pub type CheckStream = Pin<Box<dyn Stream<Item = Result<TransactionCheck>> + Send>>;

/// What a store does for a proxy.
#[async_trait]
pub trait StoreApi: Send + Sync + 'static {
    /// Appends messages to one topic; answers once they are durable.
    async fn append(&self, req: AppendRequest) -> Result<AppendResponse>;
    /// Takes up to `max_messages` visible messages for a group, waiting up to
    /// `poll_ms` for one to arrive or become visible.
    async fn pop(&self, req: PopRequest) -> Result<PopResponse>;
    /// Ends a delivery: the message is consumed.
    async fn ack(&self, req: AckRequest) -> Result<AckResponse>;
    /// Acks several deliveries; each outcome (see [`crate::ack_result`])
    /// answers its delivery, in order. An `Err` means none was tried.
    async fn ack_many(&self, req: AckManyRequest) -> Result<AckManyResponse>;
    /// Changes when a delivery becomes visible again.
    async fn change_invisible(
        &self,
        req: ChangeInvisibleRequest,
    ) -> Result<ChangeInvisibleResponse>;
    /// Undoes deliveries whose reply never reached a consumer: visible
    /// again at once, attempt not counted.
    async fn release(&self, req: ReleaseRequest) -> Result<ReleaseResponse>;
    /// Moves a delivered message to its group's dead-letter queue.
    async fn forward_to_dlq(&self, req: ForwardToDlqRequest) -> Result<ForwardToDlqResponse>;
    /// Cancels a delay message that has not fallen due yet.
    async fn recall(&self, req: RecallRequest) -> Result<RecallResponse>;
    /// Commits, rolls back, or (UNKNOWN) leaves pending a half message.
    async fn end_transaction(&self, req: EndTransactionRequest) -> Result<EndTransactionResponse>;
    /// Checks of unresolved transactions, from now on.
    async fn watch_transaction_checks(&self) -> Result<CheckStream>;
    /// Returns a topic's definition.
    async fn get_topic(&self, req: GetTopicRequest) -> Result<GetTopicResponse>;
    /// Returns a consumer group's definition.
    async fn get_group(&self, req: GetGroupRequest) -> Result<GetGroupResponse>;

    /// Creates a topic (a no-op when an identical one exists).
    async fn create_topic(&self, req: CreateTopicRequest) -> Result<CreateTopicResponse>;
    /// Changes a topic's type or grows its queue count.
    async fn update_topic(&self, req: UpdateTopicRequest) -> Result<UpdateTopicResponse>;
    /// Deletes a topic, its messages and its consumption state.
    async fn delete_topic(&self, req: DeleteTopicRequest) -> Result<DeleteTopicResponse>;
    /// Lists every topic.
    async fn list_topics(&self, req: ListTopicsRequest) -> Result<ListTopicsResponse>;
    /// Returns a topic with its queues' offsets.
    async fn describe_topic(&self, req: DescribeTopicRequest) -> Result<DescribeTopicResponse>;
    /// Creates a consumer group (a no-op when an identical one exists).
    async fn create_group(&self, req: CreateGroupRequest) -> Result<CreateGroupResponse>;
    /// Changes a consumer group's settings.
    async fn update_group(&self, req: UpdateGroupRequest) -> Result<UpdateGroupResponse>;
    /// Deletes a consumer group and its consumption state.
    async fn delete_group(&self, req: DeleteGroupRequest) -> Result<DeleteGroupResponse>;
    /// Lists every consumer group.
    async fn list_groups(&self, req: ListGroupsRequest) -> Result<ListGroupsResponse>;
    /// Returns a consumer group with its backlog per topic.
    async fn describe_group(&self, req: DescribeGroupRequest) -> Result<DescribeGroupResponse>;

    /// Creates a user, or sets an existing user's secret and admin flag.
    async fn create_user(&self, req: CreateUserRequest) -> Result<CreateUserResponse>;
    /// Deletes a user and its ACL rules.
    async fn delete_user(&self, req: DeleteUserRequest) -> Result<DeleteUserResponse>;
    /// Lists every user (never a secret).
    async fn list_users(&self, req: ListUsersRequest) -> Result<ListUsersResponse>;
    /// Returns a user and its ACL rules (never its secret).
    async fn describe_user(&self, req: DescribeUserRequest) -> Result<DescribeUserResponse>;
    /// Adds an ACL rule, or replaces the one of the same user, resource and
    /// decision.
    async fn grant_acl(&self, req: GrantAclRequest) -> Result<GrantAclResponse>;
    /// Removes an ACL rule.
    async fn revoke_acl(&self, req: RevokeAclRequest) -> Result<RevokeAclResponse>;
    /// Lists the ACL rules, of every user or of one.
    async fn list_acls(&self, req: ListAclsRequest) -> Result<ListAclsResponse>;

    /// Sends dead-lettered messages of a group back to their topics (moved,
    /// or copied), for that group only, attempts starting again.
    async fn redrive_dlq(&self, req: RedriveDlqRequest) -> Result<RedriveDlqResponse>;
    /// Moves a group's position on a topic (oldest, newest, a time);
    /// refused while it holds messages there in flight, unless forced.
    async fn reset_offset(&self, req: ResetOffsetRequest) -> Result<ResetOffsetResponse>;
    /// Deletes every message of a topic.
    async fn purge_topic(&self, req: PurgeTopicRequest) -> Result<PurgeTopicResponse>;
    /// Finds messages of a topic by id or key, with each group's state.
    async fn find_messages(&self, req: FindMessagesRequest) -> Result<FindMessagesResponse>;
    /// Every user (with its secret, for proxies to check signatures) and
    /// rule; long-polls while nothing changed since `known_generation`.
    async fn auth_snapshot(&self, req: AuthSnapshotRequest) -> Result<AuthSnapshotResponse>;
    /// The key this store's proxies sign receipt handles with.
    async fn receipt_secret(&self, req: ReceiptSecretRequest) -> Result<ReceiptSecretResponse>;
}
