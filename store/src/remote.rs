//! [`RemoteStore`]: the [`StoreApi`] of a store node reached over
//! `pier.store.v1` gRPC (cluster mode).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pier_proto::admin::admin_service_client::AdminServiceClient;
use pier_proto::store::store_client::StoreClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::api::{CheckStream, StoreApi};
use crate::error::{Result, StoreError};
use crate::link_auth::{ClusterSecret, LinkToken};
use crate::server::{ERROR_FIELDS_HEADER, ERROR_KIND_HEADER};

/// Largest message either side accepts: a 4 MiB body plus properties, with
/// room for batches.
pub const MAX_GRPC_MESSAGE: usize = 64 << 20;

/// Connections from a proxy to its store. One HTTP/2 connection carries
/// every call in order through one socket and one server task; a few of
/// them, taken in turn, let a busy proxy use the store node's cores.
const CONNECTIONS: usize = 4;

/// A connection whose calls carry the cluster token.
type Link = InterceptedService<Channel, LinkToken>;

#[derive(Clone)]
struct Clients {
    store: StoreClient<Link>,
    admin: AdminServiceClient<Link>,
}

/// How a proxy proves itself to its store node, beyond the address.
/// (No `Debug`: it holds a private key.)
#[derive(Default, Clone)]
pub struct LinkOptions {
    /// PEM CA the store node's certificate must be signed by: TLS when set.
    pub tls_ca: Option<Vec<u8>>,
    /// PEM certificate chain and key shown to a store node that asks for
    /// one (mutual TLS; used only with `tls_ca`).
    pub tls_identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The cluster secret (see `link_auth`).
    pub secret: Option<ClusterSecret>,
}

/// The [`StoreApi`] of a store node, over gRPC.
#[derive(Clone)]
pub struct RemoteStore {
    pool: Arc<[Clients]>,
    next: Arc<AtomicUsize>,
}

impl RemoteStore {
    /// Connects lazily: the proxy starts even while the store is still
    /// starting, and calls fail with `Unavailable` until it answers.
    pub fn connect(addr: &str) -> Result<RemoteStore> {
        RemoteStore::connect_with(addr, None)
    }

    /// [`RemoteStore::connect`], over TLS when `tls_ca` (a PEM CA
    /// certificate) is given: the store node's certificate must be signed
    /// by it and name the host of `addr` (a DNS name or an IP address).
    pub fn connect_with(addr: &str, tls_ca: Option<Vec<u8>>) -> Result<RemoteStore> {
        RemoteStore::connect_secured(
            addr,
            LinkOptions {
                tls_ca,
                ..LinkOptions::default()
            },
        )
    }

    /// [`RemoteStore::connect_with`], with a client certificate and the
    /// cluster secret proved on every call (see `link_auth`) when given.
    pub fn connect_secured(addr: &str, link: LinkOptions) -> Result<RemoteStore> {
        let LinkOptions {
            tls_ca,
            tls_identity,
            secret,
        } = link;
        let token = LinkToken::new(secret);
        let scheme = if tls_ca.is_some() { "https" } else { "http" };
        let uri = match addr.split_once("://") {
            Some((_, rest)) => format!("{scheme}://{rest}"),
            None => format!("{scheme}://{addr}"),
        };
        let mut endpoint = Endpoint::from_shared(uri)
            .map_err(|e| StoreError::invalid(format!("bad store address {addr:?}: {e}")))?;
        if let Some(ca) = tls_ca {
            let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
            if let Some((cert, key)) = tls_identity {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| StoreError::invalid(format!("store link TLS: {e}")))?;
        }
        let endpoint = endpoint
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30));
        let pool = (0..CONNECTIONS)
            .map(|_| {
                let channel = endpoint.connect_lazy();
                Clients {
                    store: StoreClient::with_interceptor(channel.clone(), token.clone())
                        .max_decoding_message_size(MAX_GRPC_MESSAGE)
                        .max_encoding_message_size(MAX_GRPC_MESSAGE),
                    admin: AdminServiceClient::with_interceptor(channel, token.clone()),
                }
            })
            .collect();
        Ok(RemoteStore {
            pool,
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn pick(&self) -> &Clients {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.pool[i % self.pool.len()]
    }
}

/// Rebuilds the error a store node sent (see `server`). A status without
/// one was made on this side of the link: by the transport when the node
/// cannot be reached or the connection broke (the store is unavailable), or
/// by the codec, e.g. for a reply over [`MAX_GRPC_MESSAGE`] (a link
/// failure, which retrying the same call does not cure).
fn from_status(s: tonic::Status) -> StoreError {
    let kind = s
        .metadata()
        .get(ERROR_KIND_HEADER)
        .and_then(|v| v.to_str().ok());
    match kind {
        Some(kind) => {
            let fields = s
                .metadata()
                .get_bin(ERROR_FIELDS_HEADER)
                .and_then(|v| v.to_bytes().ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            StoreError::from_wire(kind, &fields)
        }
        // tonic reports a refused, reset or closed connection with these
        // codes (h2 and io errors map to Internal, Unknown, Aborted).
        None => match s.code() {
            tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Internal
            | tonic::Code::Aborted => StoreError::Unavailable {
                reason: format!("{}: {}", s.code(), s.message()),
            },
            code => StoreError::Link {
                code: format!("{code:?}"),
                reason: s.message().to_owned(),
            },
        },
    }
}

macro_rules! forward {
    ({ $($extra:item)* } $($client:ident.$name:ident: $req:ty => $resp:ty;)*) => {
        #[async_trait]
        impl StoreApi for RemoteStore {
            $($extra)*
            $(
                async fn $name(&self, req: $req) -> Result<$resp> {
                    let mut c = self.pick().$client.clone();
                    // The call carries the current trace (`traceparent`).
                    pier_node::trace::span::outgoing(
                        concat!("store.", stringify!($name)),
                        req,
                        |r| async move { c.$name(r).await },
                    )
                    .await
                    .map(|r| r.into_inner())
                    .map_err(from_status)
                }
            )*
        }
    };
}

use pier_proto::admin as a;
use pier_proto::store as s;

forward!(
    {
        async fn watch_transaction_checks(&self) -> Result<CheckStream> {
            use futures::StreamExt;
            let mut c = self.pick().store.clone();
            let stream = c
                .watch_transaction_checks(s::WatchTransactionChecksRequest {})
                .await
                .map_err(from_status)?
                .into_inner();
            Ok(Box::pin(stream.map(|r| r.map_err(from_status))))
        }
    }
    store.append: s::AppendRequest => s::AppendResponse;
    store.pop: s::PopRequest => s::PopResponse;
    store.ack: s::AckRequest => s::AckResponse;
    store.ack_many: s::AckManyRequest => s::AckManyResponse;
    store.change_invisible: s::ChangeInvisibleRequest => s::ChangeInvisibleResponse;
    store.forward_to_dlq: s::ForwardToDlqRequest => s::ForwardToDlqResponse;
    store.release: s::ReleaseRequest => s::ReleaseResponse;
    store.recall: s::RecallRequest => s::RecallResponse;
    store.end_transaction: s::EndTransactionRequest => s::EndTransactionResponse;
    store.get_topic: s::GetTopicRequest => s::GetTopicResponse;
    store.get_group: s::GetGroupRequest => s::GetGroupResponse;
    store.auth_snapshot: s::AuthSnapshotRequest => s::AuthSnapshotResponse;
    store.receipt_secret: s::ReceiptSecretRequest => s::ReceiptSecretResponse;
    admin.create_topic: a::CreateTopicRequest => a::CreateTopicResponse;
    admin.update_topic: a::UpdateTopicRequest => a::UpdateTopicResponse;
    admin.delete_topic: a::DeleteTopicRequest => a::DeleteTopicResponse;
    admin.list_topics: a::ListTopicsRequest => a::ListTopicsResponse;
    admin.describe_topic: a::DescribeTopicRequest => a::DescribeTopicResponse;
    admin.create_group: a::CreateGroupRequest => a::CreateGroupResponse;
    admin.update_group: a::UpdateGroupRequest => a::UpdateGroupResponse;
    admin.delete_group: a::DeleteGroupRequest => a::DeleteGroupResponse;
    admin.list_groups: a::ListGroupsRequest => a::ListGroupsResponse;
    admin.describe_group: a::DescribeGroupRequest => a::DescribeGroupResponse;
    admin.create_user: a::CreateUserRequest => a::CreateUserResponse;
    admin.delete_user: a::DeleteUserRequest => a::DeleteUserResponse;
    admin.list_users: a::ListUsersRequest => a::ListUsersResponse;
    admin.describe_user: a::DescribeUserRequest => a::DescribeUserResponse;
    admin.grant_acl: a::GrantAclRequest => a::GrantAclResponse;
    admin.revoke_acl: a::RevokeAclRequest => a::RevokeAclResponse;
    admin.list_acls: a::ListAclsRequest => a::ListAclsResponse;
    admin.redrive_dlq: a::RedriveDlqRequest => a::RedriveDlqResponse;
    admin.reset_offset: a::ResetOffsetRequest => a::ResetOffsetResponse;
    admin.purge_topic: a::PurgeTopicRequest => a::PurgeTopicResponse;
    admin.find_messages: a::FindMessagesRequest => a::FindMessagesResponse;
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unreachable_node_reads_as_unavailable() {
        let refused = from_status(tonic::Status::unavailable(
            "tcp connect error: Connection refused",
        ));
        assert!(
            matches!(refused, StoreError::Unavailable { .. }),
            "{refused:?}"
        );
        let broken = from_status(tonic::Status::unknown("transport error"));
        assert!(
            matches!(broken, StoreError::Unavailable { .. }),
            "{broken:?}"
        );

        // What tonic's codec answers for a reply over the size limit.
        let too_large = from_status(tonic::Status::out_of_range(
            "Error, decoded message length too large: found 70000000 bytes, the limit is: 67108864 bytes",
        ));
        match &too_large {
            StoreError::Link { code, reason } => {
                assert_eq!(code, "OutOfRange");
                assert!(reason.contains("too large"), "{reason}");
            }
            other => panic!("a size limit is not unavailability: {other:?}"),
        }
        assert!(
            !too_large.to_string().contains("unavailable"),
            "{too_large}"
        );
    }

    #[test]
    fn an_error_sent_by_the_node_comes_back_as_itself() {
        let mut status = tonic::Status::unavailable("the store is shutting down");
        status
            .metadata_mut()
            .insert(ERROR_KIND_HEADER, "shutting-down".parse().unwrap());
        assert!(matches!(from_status(status), StoreError::ShuttingDown));
    }
}
