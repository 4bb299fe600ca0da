//! `pier.admin.v1.ProxyAdminService`: the admin RPCs a proxy answers itself,
//! about what only it knows (its clients). Topics and groups are the
//! store's, served by `AdminService` (see `layers::admin`).

use std::sync::Arc;

use pier_proto::admin::proxy_admin_service_server::ProxyAdminService;
use pier_proto::admin::{ListClientsRequest, ListClientsResponse};
use tonic::{Request, Response, Status};

use crate::session::Sessions;

/// The proxy's own admin service.
pub struct ProxyAdmin {
    /// The live client sessions of this proxy.
    pub sessions: Arc<Sessions>,
    /// This proxy's client-facing address, named in each answer.
    pub proxy: String,
    /// How long a silent client is kept, reported with the list.
    pub client_expiry_ms: u64,
}

#[tonic::async_trait]
impl ProxyAdminService for ProxyAdmin {
    async fn list_clients(
        &self,
        request: Request<ListClientsRequest>,
    ) -> Result<Response<ListClientsResponse>, Status> {
        let req = request.into_inner();
        Ok(Response::new(ListClientsResponse {
            clients: self.sessions.list(&req.group, &req.topic),
            proxy: self.proxy.clone(),
            client_expiry_ms: self.client_expiry_ms,
        }))
    }
}
