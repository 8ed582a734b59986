//! `AdminService`: what the operator CLI calls.

use super::ApiError;
use crate::clock::now_ms;
use crate::grpc::sessions::Sessions;
use crate::store::{HostFilter, Store};
use tierwise_common::validate_name;
use tierwise_proto::convert::role_from_wire;
use tierwise_proto::v1::{
    admin_service_server::AdminService, controller_message, ControllerMessage, GetHostRequest,
    HostView, ListHostsRequest, ListHostsResponse, RefreshInventoryRequest,
    RefreshInventoryResponse, ReportInventory, Role as WireRole,
};
use tonic::{Request, Response, Status};
use tracing::info;

#[derive(Clone, Debug)]
pub struct AdminApi {
    store: Store,
    sessions: Sessions,
}

impl AdminApi {
    pub fn new(store: Store, sessions: Sessions) -> Self {
        Self { store, sessions }
    }
}

fn optional_name(kind: &'static str, value: &str) -> Result<Option<String>, ApiError> {
    if value.is_empty() {
        return Ok(None);
    }
    validate_name(kind, value).map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
    Ok(Some(value.to_owned()))
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_hosts(
        &self,
        request: Request<ListHostsRequest>,
    ) -> Result<Response<ListHostsResponse>, Status> {
        let request = request.into_inner();
        let installation = optional_name("installation", &request.installation)?;
        let role = if request.role == i32::from(WireRole::Unspecified) {
            None
        } else {
            Some(role_from_wire(request.role).ok_or_else(|| {
                ApiError::InvalidArgument(format!("unknown role value {}", request.role))
            })?)
        };
        let hosts = self
            .store
            .list_hosts(&HostFilter { installation, role }, now_ms())
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ListHostsResponse {
            hosts: hosts.iter().map(HostView::from).collect(),
        }))
    }

    async fn get_host(
        &self,
        request: Request<GetHostRequest>,
    ) -> Result<Response<HostView>, Status> {
        let host_id = request.into_inner().host_id;
        validate_name("host id", &host_id).map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        let host = self
            .store
            .get_host(&host_id, now_ms())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "no host `{host_id}`; `tierwise hosts list` shows the known hosts"
                ))
            })?;
        Ok(Response::new(HostView::from(&host)))
    }

    async fn refresh_inventory(
        &self,
        request: Request<RefreshInventoryRequest>,
    ) -> Result<Response<RefreshInventoryResponse>, Status> {
        let request = request.into_inner();
        let host_id = optional_name("host id", &request.host_id)?;
        let installation = optional_name("installation", &request.installation)?;
        if let Some(id) = &host_id {
            let known = self
                .store
                .get_host(id, now_ms())
                .await
                .map_err(ApiError::from)?;
            if known.is_none() {
                return Err(ApiError::NotFound(format!(
                    "no host `{id}`; `tierwise hosts list` shows the known hosts"
                ))
                .into());
            }
        }
        let mut asked = Vec::new();
        for (id, outbound) in self
            .sessions
            .select(host_id.as_deref(), installation.as_deref())
        {
            let message = ControllerMessage {
                body: Some(controller_message::Body::ReportInventory(
                    ReportInventory {},
                )),
            };
            // A full queue means the agent is not reading; it will report on
            // its own schedule, so skipping it is harmless.
            if outbound.try_send(Ok(message)).is_ok() {
                asked.push(id);
            }
        }
        asked.sort();
        info!(
            count = asked.len(),
            "asked agents to report their inventory"
        );
        Ok(Response::new(RefreshInventoryResponse { asked }))
    }
}
