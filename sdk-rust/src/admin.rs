//! A thin wrapper over `pier.admin.v1.AdminService`: topics and consumer
//! groups. Failures are plain gRPC statuses ([`Error::Rpc`]): `NOT_FOUND`,
//! `ALREADY_EXISTS` (a create with different settings), `INVALID_ARGUMENT`, ...

use std::future::Future;
use std::time::Duration;

use pier_proto::admin::admin_service_client::AdminServiceClient;
use pier_proto::admin::proxy_admin_service_client::ProxyAdminServiceClient;
use pier_proto::admin::{
    ConsumerGroup, CreateGroupRequest, CreateTopicRequest, DeleteGroupRequest, DeleteTopicRequest,
    DescribeGroupRequest, DescribeGroupResponse, DescribeTopicRequest, DescribeTopicResponse,
    ListClientsRequest, ListClientsResponse, ListGroupsRequest, ListTopicsRequest, Topic,
    TopicType, UpdateGroupRequest, UpdateTopicRequest,
};
use pier_proto::admin::{
    FindMessagesRequest, FindMessagesResponse, PurgeTopicRequest, RedriveDlqRequest,
    RedriveDlqResponse, ResetOffsetRequest, ResetOffsetResponse,
};

use pier_proto::admin::{
    AclDecision, AclRule, CreateUserRequest, CreateUserResponse, DeleteUserRequest,
    DescribeUserRequest, DescribeUserResponse, GrantAclRequest, ListAclsRequest, ListUsersRequest,
    RevokeAclRequest, User,
};

use crate::connect::{deadline, request, Connection, HeaderChannel};
use crate::error::{Error, Result};

/// The outcome of an idempotent create.
#[derive(Debug, Clone, PartialEq)]
pub struct Created<T> {
    /// The object as the server stores it (defaults filled in).
    pub value: T,
    /// False when an identical object already existed.
    pub created: bool,
}

/// Lower-case name of a topic type (`normal`, `fifo`, ...), `unspecified`
/// or `type-<n>` for values this crate does not know.
pub fn topic_type_name(t: i32) -> String {
    match TopicType::try_from(t) {
        Ok(t) => t
            .as_str_name()
            .trim_start_matches("TOPIC_TYPE_")
            .to_ascii_lowercase(),
        Err(_) => format!("type-{t}"),
    }
}

/// Admin client over a [`Connection`].
#[derive(Debug, Clone)]
pub struct Admin {
    client: AdminServiceClient<HeaderChannel>,
    proxy: ProxyAdminServiceClient<HeaderChannel>,
    timeout: Duration,
}

fn require_name(what: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() {
        Err(Error::invalid(format!("the {what} name is empty")))
    } else {
        Ok(())
    }
}

/// The admin client a call runs on.
type Client = AdminServiceClient<HeaderChannel>;

impl Admin {
    /// An admin client sharing `conn`'s channel.
    pub fn new(conn: &Connection) -> Admin {
        Admin {
            client: conn.admin_client(),
            proxy: conn.proxy_admin_client(),
            timeout: conn.request_timeout(),
        }
    }

    /// Runs one call with the request deadline and returns its answer.
    async fn call<Req, Resp, F, Fut>(&self, req: Req, call: F) -> Result<Resp>
    where
        F: FnOnce(Client, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let t = self.timeout;
        let client = self.client.clone();
        deadline(t, async move {
            Ok(call(client, request(req, t)).await?.into_inner())
        })
        .await
    }

    /// Creates a topic; `queues == 0` asks for the server default.
    /// Creating an identical existing topic succeeds with `created: false`.
    pub async fn create_topic(
        &self,
        name: &str,
        kind: TopicType,
        queues: u32,
    ) -> Result<Created<Topic>> {
        require_name("topic", name)?;
        let req = CreateTopicRequest {
            topic: Some(Topic {
                name: name.to_owned(),
                r#type: kind as i32,
                queues,
                created_at_ms: 0,
            }),
        };
        let resp = self
            .call(req, |mut c, r| async move { c.create_topic(r).await })
            .await?;
        Ok(Created {
            value: resp
                .topic
                .ok_or_else(|| Error::Protocol("CreateTopic answered without a topic".into()))?,
            created: resp.created,
        })
    }

    /// Replaces a topic's type and queue count (queues may grow, never
    /// shrink); returns the topic as the server now stores it.
    pub async fn update_topic(&self, topic: Topic) -> Result<Topic> {
        require_name("topic", &topic.name)?;
        let req = UpdateTopicRequest { topic: Some(topic) };
        let resp = self
            .call(req, |mut c, r| async move { c.update_topic(r).await })
            .await?;
        resp.topic
            .ok_or_else(|| Error::Protocol("UpdateTopic answered without a topic".into()))
    }

    /// All topics.
    pub async fn list_topics(&self) -> Result<Vec<Topic>> {
        let resp = self
            .call(ListTopicsRequest {}, |mut c, r| async move {
                c.list_topics(r).await
            })
            .await?;
        Ok(resp.topics)
    }

    /// A topic and the offsets of its queues.
    pub async fn describe_topic(&self, name: &str) -> Result<DescribeTopicResponse> {
        require_name("topic", name)?;
        let req = DescribeTopicRequest {
            name: name.to_owned(),
        };
        self.call(req, |mut c, r| async move { c.describe_topic(r).await })
            .await
    }

    /// Deletes a topic.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        require_name("topic", name)?;
        let req = DeleteTopicRequest {
            name: name.to_owned(),
        };
        self.call(req, |mut c, r| async move { c.delete_topic(r).await })
            .await
            .map(drop)
    }

    /// Creates a consumer group (`max_attempts == 0` and no retry policy ask
    /// for the server defaults). Creating an identical existing group
    /// succeeds with `created: false`.
    pub async fn create_group(&self, group: ConsumerGroup) -> Result<Created<ConsumerGroup>> {
        require_name("group", &group.name)?;
        let req = CreateGroupRequest { group: Some(group) };
        let resp = self
            .call(req, |mut c, r| async move { c.create_group(r).await })
            .await?;
        Ok(Created {
            value: resp
                .group
                .ok_or_else(|| Error::Protocol("CreateGroup answered without a group".into()))?,
            created: resp.created,
        })
    }

    /// Replaces a group's settings (`max_attempts == 0` means the server
    /// default; no retry policy keeps the current one); returns the group
    /// as the server now stores it.
    pub async fn update_group(&self, group: ConsumerGroup) -> Result<ConsumerGroup> {
        require_name("group", &group.name)?;
        let req = UpdateGroupRequest { group: Some(group) };
        let resp = self
            .call(req, |mut c, r| async move { c.update_group(r).await })
            .await?;
        resp.group
            .ok_or_else(|| Error::Protocol("UpdateGroup answered without a group".into()))
    }

    /// The clients connected to the proxy this admin client talks to,
    /// optionally only those of a consumer group or of a topic.
    pub async fn list_clients(&self, group: &str, topic: &str) -> Result<ListClientsResponse> {
        let t = self.timeout;
        let mut client = self.proxy.clone();
        let req = ListClientsRequest {
            group: group.to_owned(),
            topic: topic.to_owned(),
        };
        deadline(t, async move {
            Ok(client.list_clients(request(req, t)).await?.into_inner())
        })
        .await
    }

    /// All consumer groups.
    pub async fn list_groups(&self) -> Result<Vec<ConsumerGroup>> {
        let resp = self
            .call(ListGroupsRequest {}, |mut c, r| async move {
                c.list_groups(r).await
            })
            .await?;
        Ok(resp.groups)
    }

    /// A group's settings, its backlog per topic and its dead-letter count.
    pub async fn describe_group(&self, name: &str) -> Result<DescribeGroupResponse> {
        require_name("group", name)?;
        let req = DescribeGroupRequest {
            name: name.to_owned(),
        };
        self.call(req, |mut c, r| async move { c.describe_group(r).await })
            .await
    }

    /// Deletes a consumer group.
    pub async fn delete_group(&self, name: &str) -> Result<()> {
        require_name("group", name)?;
        let req = DeleteGroupRequest {
            name: name.to_owned(),
        };
        self.call(req, |mut c, r| async move { c.delete_group(r).await })
            .await
            .map(drop)
    }

    /// Sends one bounded batch of a group's dead-lettered messages back to
    /// their topics; call again from `next_offset` while `more`.
    pub async fn redrive_dlq(&self, req: RedriveDlqRequest) -> Result<RedriveDlqResponse> {
        require_name("group", &req.group)?;
        self.call(req, |mut c, r| async move { c.redrive_dlq(r).await })
            .await
    }

    /// Moves a group's position on a topic (oldest, newest, a time).
    pub async fn reset_offset(&self, req: ResetOffsetRequest) -> Result<ResetOffsetResponse> {
        require_name("group", &req.group)?;
        require_name("topic", &req.topic)?;
        self.call(req, |mut c, r| async move { c.reset_offset(r).await })
            .await
    }

    /// Messages of a topic found by id or key, with each group's state.
    pub async fn find_messages(&self, req: FindMessagesRequest) -> Result<FindMessagesResponse> {
        require_name("topic", &req.topic)?;
        self.call(req, |mut c, r| async move { c.find_messages(r).await })
            .await
    }

    /// Deletes every message of a topic; returns how many there were.
    pub async fn purge_topic(&self, name: &str) -> Result<u64> {
        require_name("topic", name)?;
        let req = PurgeTopicRequest {
            topic: name.to_owned(),
        };
        let resp = self
            .call(req, |mut c, r| async move { c.purge_topic(r).await })
            .await?;
        Ok(resp.purged)
    }

    /// Creates a user of the client port, or sets an existing user's
    /// secret and admin flag. The secret is never returned.
    pub async fn create_user(
        &self,
        name: &str,
        secret: &str,
        admin: bool,
    ) -> Result<CreateUserResponse> {
        require_name("user", name)?;
        let req = CreateUserRequest {
            name: name.to_owned(),
            secret: secret.to_owned(),
            admin,
        };
        self.call(req, |mut c, r| async move { c.create_user(r).await })
            .await
    }

    /// All users (no secrets).
    pub async fn list_users(&self) -> Result<Vec<User>> {
        let resp = self
            .call(ListUsersRequest {}, |mut c, r| async move {
                c.list_users(r).await
            })
            .await?;
        Ok(resp.users)
    }

    /// A user and its ACL rules (no secret).
    pub async fn describe_user(&self, name: &str) -> Result<DescribeUserResponse> {
        require_name("user", name)?;
        let req = DescribeUserRequest {
            name: name.to_owned(),
        };
        self.call(req, |mut c, r| async move { c.describe_user(r).await })
            .await
    }

    /// Deletes a user and its ACL rules; returns how many rules went.
    pub async fn delete_user(&self, name: &str) -> Result<u32> {
        require_name("user", name)?;
        let req = DeleteUserRequest {
            name: name.to_owned(),
        };
        let resp = self
            .call(req, |mut c, r| async move { c.delete_user(r).await })
            .await?;
        Ok(resp.rules_deleted)
    }

    /// Adds an ACL rule (or replaces the one with the same user, resource
    /// and decision); returns it as the server keeps it.
    pub async fn grant_acl(&self, rule: AclRule) -> Result<AclRule> {
        let resp = self
            .call(
                GrantAclRequest { rule: Some(rule) },
                |mut c, r| async move { c.grant_acl(r).await },
            )
            .await?;
        resp.rule
            .ok_or_else(|| Error::Protocol("GrantAcl answered without a rule".into()))
    }

    /// Removes the rule of `user` on `resource` with this decision.
    pub async fn revoke_acl(
        &self,
        user: &str,
        resource: &str,
        decision: AclDecision,
    ) -> Result<()> {
        let req = RevokeAclRequest {
            user: user.to_owned(),
            resource: resource.to_owned(),
            decision: decision as i32,
        };
        self.call(req, |mut c, r| async move { c.revoke_acl(r).await })
            .await
            .map(drop)
    }

    /// The ACL rules of every user (`user` empty) or of one.
    pub async fn list_acls(&self, user: &str) -> Result<Vec<AclRule>> {
        let req = ListAclsRequest {
            user: user.to_owned(),
        };
        let resp = self
            .call(req, |mut c, r| async move { c.list_acls(r).await })
            .await?;
        Ok(resp.rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_type_names() {
        assert_eq!(topic_type_name(TopicType::Normal as i32), "normal");
        assert_eq!(topic_type_name(TopicType::Fifo as i32), "fifo");
        assert_eq!(topic_type_name(TopicType::Delay as i32), "delay");
        assert_eq!(
            topic_type_name(TopicType::Transaction as i32),
            "transaction"
        );
        assert_eq!(topic_type_name(0), "unspecified");
        assert_eq!(topic_type_name(99), "type-99");
    }
}
