//! The one place the client-facing services are built, and the stack of
//! tower layers every call to them passes through.
//!
//! Today: metrics time every call (`rocketmq_rpc_latency`, see
//! `pier_node::metrics::rpc`), a server span traces it
//! (`pier_node::trace::layer`), then authentication (`auth::AuthLayer`)
//! checks its signature. Cross-cutting concerns that look at calls rather than at
//! the protocol go here, one layer each, so no handler has to change for
//! them: authentication and ACLs (reject before the handler runs), metrics
//! (count and time each RPC by path and gRPC status), tracing (a span per
//! call). What needs the protocol stays out: RocketMQ answers a business
//! failure with gRPC OK and the code in the reply body, so a layer does not
//! see it; failures the server caused are logged by the handlers instead
//! (`faults`).

use std::sync::Arc;

use pier_node::metrics::rpc::RpcLatencyLayer;
use pier_node::trace::layer::TraceLayer;
use pier_proto::admin::admin_service_server::AdminServiceServer;
use pier_proto::admin::proxy_admin_service_server::ProxyAdminServiceServer;
use pier_proto::rocketmq::messaging_service_server::MessagingServiceServer;
use pier_store::{AdminEndpoint, StoreApi, MAX_GRPC_MESSAGE};
use tower::layer::util::{Identity, Stack};
use tower::ServiceBuilder;

use crate::admin::ProxyAdmin;
use crate::audit::Audited;
use crate::auth::{AuthLayer, Gate};
use crate::service::Messaging;
use crate::shape::{Checked, Shapes};

/// The layers of [`stack`]: latency outside tracing outside authentication.
pub type Layers = Stack<AuthLayer, Stack<TraceLayer, Stack<RpcLatencyLayer, Identity>>>;

/// The layers around every service of the client port, outermost first.
pub fn stack(gate: Arc<Gate>) -> ServiceBuilder<Layers> {
    // Latency outermost, so refused calls are timed and counted too; the
    // server span outside authentication, so refused calls are traced.
    ServiceBuilder::new()
        .layer(RpcLatencyLayer::new("grpc"))
        .layer(TraceLayer)
        .layer(AuthLayer::new(gate))
}

/// `apache.rocketmq.v2.MessagingService`, with its message size limits and
/// each request's fields per message checked before it is decoded
/// (`shape`).
pub fn messaging(
    messaging: Messaging,
    shapes: Arc<Shapes>,
) -> Checked<MessagingServiceServer<Messaging>> {
    let server = MessagingServiceServer::new(messaging)
        .max_decoding_message_size(MAX_GRPC_MESSAGE)
        .max_encoding_message_size(MAX_GRPC_MESSAGE);
    Checked::new(server, shapes)
}

/// `pier.admin.v1.AdminService`, answered by the store behind this proxy;
/// every call is written to the audit log (`audit`) with its user.
pub fn admin(store: Arc<dyn StoreApi>) -> Audited<AdminServiceServer<AdminEndpoint>> {
    Audited::new(AdminServiceServer::new(AdminEndpoint(store)))
}

/// `pier.admin.v1.ProxyAdminService`, answered by this proxy.
pub fn proxy_admin(admin: ProxyAdmin) -> ProxyAdminServiceServer<ProxyAdmin> {
    ProxyAdminServiceServer::new(admin)
}
