//! gRPC endpoints over any [`StoreApi`]: `pier.store.v1.Store` (served by
//! store nodes to proxies) and `pier.admin.v1.AdminService` (served by store
//! nodes and, over their own store handle, by every proxy).

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use pier_node::throttle::RateLimiter;
use pier_proto::admin::admin_service_server::{AdminService, AdminServiceServer};
use pier_proto::store::store_server;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use crate::api::StoreApi;
use crate::error::StoreError;
use crate::link_auth::LinkGuard;
use crate::remote::MAX_GRPC_MESSAGE;

/// Metadata key naming the `StoreError` variant of a failed call.
pub(crate) const ERROR_KIND_HEADER: &str = "pier-store-error";
/// Binary metadata key carrying the error's context fields.
pub(crate) const ERROR_FIELDS_HEADER: &str = "pier-store-fields-bin";

/// Maps a store error to a gRPC status: the code for plain gRPC callers such
/// as grpcurl, the metadata for Pier proxies, which rebuild the exact error.
/// A failure of the store itself is logged here, on the node it happened.
fn to_status(e: StoreError) -> Status {
    use tonic::Code;
    let code = match &e {
        StoreError::TopicNotFound { .. }
        | StoreError::GroupNotFound { .. }
        | StoreError::UserNotFound { .. }
        | StoreError::TransactionNotFound { .. }
        | StoreError::TimerNotFound { .. } => Code::NotFound,
        StoreError::AlreadyExists { .. } => Code::AlreadyExists,
        StoreError::InvalidArgument { .. }
        | StoreError::TypeConflict { .. }
        | StoreError::IllegalFilter { .. } => Code::InvalidArgument,
        StoreError::StaleDelivery { .. } | StoreError::GroupBusy { .. } => Code::FailedPrecondition,
        StoreError::TooManyInflight { .. } => Code::ResourceExhausted,
        StoreError::ShuttingDown | StoreError::Unavailable { .. } => Code::Unavailable,
        StoreError::Storage { .. } | StoreError::Poisoned | StoreError::Link { .. } => {
            Code::Internal
        }
    };
    if matches!(e, StoreError::Storage { .. } | StoreError::Poisoned) {
        // A failing disk or a poisoned store fails every call alike: one
        // line per kind every few seconds, with how many it stands for.
        static FAILED: LazyLock<RateLimiter<&'static str>> =
            LazyLock::new(|| RateLimiter::new(Duration::from_secs(10)));
        if let Some(suppressed) = FAILED.admit(e.kind(), Instant::now()) {
            tracing::error!(
                error = %e.report(),
                suppressed,
                "store call failed (suppressed: like failures left out since the last line)"
            );
        }
    }
    let mut status = Status::new(code, status_text(e.to_string()));
    if let Ok(v) = e.kind().parse() {
        status.metadata_mut().insert(ERROR_KIND_HEADER, v);
    }
    status.metadata_mut().insert_bin(
        ERROR_FIELDS_HEADER,
        tonic::metadata::MetadataValue::from_bytes(clip(e.encoded_fields()).as_bytes()),
    );
    status
}

/// Most bytes of error text a status carries, in its message and again in
/// its fields. Both travel in HTTP/2 trailers, which clients cap (gRPC's
/// usual limit is 8 KiB for all of them), and an error may quote a name a
/// client sent, of any length: over the cap the client sees a protocol
/// error instead of the status.
const MAX_STATUS_TEXT: usize = 1024;

/// Cuts `s` to [`MAX_STATUS_TEXT`] bytes, on a character boundary.
fn clip(mut s: String) -> String {
    if s.len() > MAX_STATUS_TEXT {
        let mut end = MAX_STATUS_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// The message of a status: clipped, and with '%' written as "%25", because
/// tonic percent-encodes `grpc-message` without encoding '%' itself, so a
/// quoted name holding "%ff" would reach clients as bytes that are not
/// UTF-8 (tonic's own client then fails the call as `Unknown`).
fn status_text(s: String) -> String {
    clip(s).replace('%', "%25")
}

// tonic's stream item type fixes the error type to `Status`.
#[allow(clippy::result_large_err)]
fn to_status_result<T>(r: crate::Result<T>) -> Result<T, Status> {
    r.map_err(to_status)
}

/// Serves a [`StoreApi`] over gRPC.
#[derive(Clone)]
pub struct StoreEndpoint(
    /// The store served.
    pub Arc<dyn StoreApi>,
);

impl StoreEndpoint {
    /// Returns the `pier.store.v1` service over `api`, accepting messages as
    /// large as [`RemoteStore`](crate::RemoteStore) sends.
    pub fn service(api: Arc<dyn StoreApi>) -> store_server::StoreServer<StoreEndpoint> {
        store_server::StoreServer::new(StoreEndpoint(api))
            .max_decoding_message_size(MAX_GRPC_MESSAGE)
            .max_encoding_message_size(MAX_GRPC_MESSAGE)
    }
}

/// Serves `pier.admin.v1` over a [`StoreApi`].
#[derive(Clone)]
pub struct AdminEndpoint(
    /// The store served.
    pub Arc<dyn StoreApi>,
);

/// A service whose calls pass [`LinkGuard`] first.
pub type Guarded<S> = InterceptedService<S, LinkGuard>;

impl StoreEndpoint {
    /// [`StoreEndpoint::service`], serving only the callers `guard` lets in.
    pub fn guarded(
        api: Arc<dyn StoreApi>,
        guard: LinkGuard,
    ) -> Guarded<store_server::StoreServer<StoreEndpoint>> {
        InterceptedService::new(StoreEndpoint::service(api), guard)
    }
}

impl AdminEndpoint {
    /// The `pier.admin.v1` service of a store node, serving only the callers
    /// `guard` lets in.
    pub fn guarded(
        api: Arc<dyn StoreApi>,
        guard: LinkGuard,
    ) -> Guarded<AdminServiceServer<AdminEndpoint>> {
        InterceptedService::new(AdminServiceServer::new(AdminEndpoint(api)), guard)
    }
}

macro_rules! serve {
    ($ty:ty, $trait:path, { $($extra:item)* } $($name:ident: $req:ty => $resp:ty;)*) => {
        #[tonic::async_trait]
        impl $trait for $ty {
            $($extra)*
            $(
                async fn $name(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    self.0.$name(request.into_inner()).await.map(Response::new).map_err(to_status)
                }
            )*
        }
    };
}

use pier_proto::admin as a;
use pier_proto::store as s;

serve!(StoreEndpoint, store_server::Store, {
    type WatchTransactionChecksStream = std::pin::Pin<
        Box<dyn futures_core::Stream<Item = Result<s::TransactionCheck, Status>> + Send>,
    >;

    async fn watch_transaction_checks(
        &self,
        _request: Request<s::WatchTransactionChecksRequest>,
    ) -> Result<Response<Self::WatchTransactionChecksStream>, Status> {
        use futures::StreamExt;
        let stream = self.0.watch_transaction_checks().await.map_err(to_status)?;
        Ok(Response::new(Box::pin(stream.map(to_status_result))))
    }
}
    append: s::AppendRequest => s::AppendResponse;
    pop: s::PopRequest => s::PopResponse;
    ack: s::AckRequest => s::AckResponse;
    ack_many: s::AckManyRequest => s::AckManyResponse;
    change_invisible: s::ChangeInvisibleRequest => s::ChangeInvisibleResponse;
    forward_to_dlq: s::ForwardToDlqRequest => s::ForwardToDlqResponse;
    release: s::ReleaseRequest => s::ReleaseResponse;
    recall: s::RecallRequest => s::RecallResponse;
    end_transaction: s::EndTransactionRequest => s::EndTransactionResponse;
    get_topic: s::GetTopicRequest => s::GetTopicResponse;
    get_group: s::GetGroupRequest => s::GetGroupResponse;
    auth_snapshot: s::AuthSnapshotRequest => s::AuthSnapshotResponse;
    receipt_secret: s::ReceiptSecretRequest => s::ReceiptSecretResponse;
);

serve!(AdminEndpoint, AdminService, {}
    create_topic: a::CreateTopicRequest => a::CreateTopicResponse;
    update_topic: a::UpdateTopicRequest => a::UpdateTopicResponse;
    delete_topic: a::DeleteTopicRequest => a::DeleteTopicResponse;
    list_topics: a::ListTopicsRequest => a::ListTopicsResponse;
    describe_topic: a::DescribeTopicRequest => a::DescribeTopicResponse;
    create_group: a::CreateGroupRequest => a::CreateGroupResponse;
    update_group: a::UpdateGroupRequest => a::UpdateGroupResponse;
    delete_group: a::DeleteGroupRequest => a::DeleteGroupResponse;
    list_groups: a::ListGroupsRequest => a::ListGroupsResponse;
    describe_group: a::DescribeGroupRequest => a::DescribeGroupResponse;
    create_user: a::CreateUserRequest => a::CreateUserResponse;
    delete_user: a::DeleteUserRequest => a::DeleteUserResponse;
    list_users: a::ListUsersRequest => a::ListUsersResponse;
    describe_user: a::DescribeUserRequest => a::DescribeUserResponse;
    grant_acl: a::GrantAclRequest => a::GrantAclResponse;
    revoke_acl: a::RevokeAclRequest => a::RevokeAclResponse;
    list_acls: a::ListAclsRequest => a::ListAclsResponse;
    redrive_dlq: a::RedriveDlqRequest => a::RedriveDlqResponse;
    reset_offset: a::ResetOffsetRequest => a::ResetOffsetResponse;
    purge_topic: a::PurgeTopicRequest => a::PurgeTopicResponse;
    find_messages: a::FindMessagesRequest => a::FindMessagesResponse;
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_is_bounded_and_survives_percent_decoding() {
        let long = to_status(StoreError::TopicNotFound {
            topic: "é".repeat(100_000),
        });
        assert!(
            long.message().len() <= MAX_STATUS_TEXT + 8,
            "{}",
            long.message().len()
        );
        let fields = long.metadata().get_bin(ERROR_FIELDS_HEADER).unwrap();
        assert!(fields.to_bytes().unwrap().len() <= MAX_STATUS_TEXT + 8);
        let quoted = to_status(StoreError::GroupNotFound {
            group: "a%ffb".into(),
        });
        assert!(quoted.message().contains("a%25ffb"), "{}", quoted.message());
    }
}
