//! `AdminService`: what the operator CLI calls.

use super::ApiError;
use crate::clock::now_ms;
use crate::grpc::sessions::Sessions;
use crate::store::{HostFilter, Store};
use tierwise_common::plan::{plan, PlanError, PlanRequest};
use tierwise_common::{validate_name, Catalogue, ClientWaves, Date, Version};
use tierwise_proto::convert::role_from_wire;
use tierwise_proto::v1::{
    admin_service_server::AdminService, controller_message, ControllerMessage, GetCatalogueRequest,
    GetCatalogueResponse, GetHostRequest, HostView, ImportCatalogueRequest,
    ImportCatalogueResponse, Licence as WireLicence, ListHostsRequest, ListHostsResponse,
    ListLicencesRequest, ListLicencesResponse, PlanRolloutRequest, PlanRolloutResponse,
    RefreshInventoryRequest, RefreshInventoryResponse, ReportInventory, Role as WireRole,
    SetLicenceRequest, SetLicenceResponse,
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

impl AdminApi {
    /// The installation, if the controller knows it; otherwise an error that
    /// lists the ones it knows.
    async fn known_installation(&self, installation: &str) -> Result<(), ApiError> {
        validate_name("installation", installation)
            .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        let known = self.store.installations().await?;
        if known.iter().any(|name| name == installation) {
            return Ok(());
        }
        Err(ApiError::NotFound(format!(
            "no installation `{installation}`; known: {}. An installation appears when its first agent connects",
            if known.is_empty() { "none yet".to_owned() } else { known.join(", ") }
        )))
    }

    async fn catalogue(&self) -> Result<Catalogue, ApiError> {
        let stored = self.store.current_catalogue().await?.ok_or_else(|| {
            ApiError::FailedPrecondition(
                "no release catalogue imported yet; import one with `tierwise releases import FILE`".into(),
            )
        })?;
        Catalogue::parse(&stored.document, &stored.source).map_err(|e| {
            ApiError::Store(crate::store::StoreError::Corrupt(format!(
                "the stored catalogue: {e}"
            )))
        })
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

    async fn import_catalogue(
        &self,
        request: Request<ImportCatalogueRequest>,
    ) -> Result<Response<ImportCatalogueResponse>, Status> {
        let request = request.into_inner();
        let source = if request.source.trim().is_empty() {
            "catalogue".to_owned()
        } else {
            request
                .source
                .chars()
                .filter(|c| !c.is_control())
                .take(255)
                .collect()
        };
        // Everything is checked before anything is written.
        let catalogue = Catalogue::parse(&request.document, &source)
            .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        let previous = match self
            .store
            .current_catalogue()
            .await
            .map_err(ApiError::from)?
        {
            Some(stored) => Catalogue::parse(&stored.document, &stored.source).unwrap_or_default(),
            None => Catalogue::default(),
        };
        let mut response = ImportCatalogueResponse {
            releases: u32::try_from(catalogue.releases().len()).unwrap_or(u32::MAX),
            ..Default::default()
        };
        for release in catalogue.releases() {
            match previous.get(release.version) {
                None => response.added.push(release.version.to_string()),
                Some(old) if old != release => response.changed.push(release.version.to_string()),
                Some(_) => {}
            }
        }
        for old in previous.releases() {
            if catalogue.get(old.version).is_none() {
                response.removed.push(old.version.to_string());
            }
        }
        self.store
            .import_catalogue(&source, &request.document, now_ms())
            .await
            .map_err(ApiError::from)?;
        info!(%source, releases = response.releases, added = response.added.len(),
              removed = response.removed.len(), changed = response.changed.len(), "catalogue imported");
        Ok(Response::new(response))
    }

    async fn get_catalogue(
        &self,
        _request: Request<GetCatalogueRequest>,
    ) -> Result<Response<GetCatalogueResponse>, Status> {
        let stored = self
            .store
            .current_catalogue()
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(stored.map_or_else(
            GetCatalogueResponse::default,
            |s| GetCatalogueResponse {
                source: s.source,
                imported_ms: s.imported_ms,
                document: s.document,
            },
        )))
    }

    async fn set_licence(
        &self,
        request: Request<SetLicenceRequest>,
    ) -> Result<Response<SetLicenceResponse>, Status> {
        let request = request.into_inner();
        let until = Date::parse(&request.maintenance_until)
            .map_err(|e| ApiError::InvalidArgument(format!("maintenance end: {e}")))?;
        self.known_installation(&request.installation).await?;
        let stored = self
            .store
            .set_licence(&request.installation, until, now_ms())
            .await
            .map_err(ApiError::from)?;
        if !stored {
            return Err(
                ApiError::NotFound(format!("no installation `{}`", request.installation)).into(),
            );
        }
        info!(installation = %request.installation, %until, "maintenance end recorded");
        Ok(Response::new(SetLicenceResponse {}))
    }

    async fn list_licences(
        &self,
        _request: Request<ListLicencesRequest>,
    ) -> Result<Response<ListLicencesResponse>, Status> {
        let licences = self.store.licences().await.map_err(ApiError::from)?;
        Ok(Response::new(ListLicencesResponse {
            licences: licences
                .into_iter()
                .map(|l| WireLicence {
                    installation: l.installation,
                    maintenance_until: l.maintenance_until.to_string(),
                })
                .collect(),
        }))
    }

    async fn plan_rollout(
        &self,
        request: Request<PlanRolloutRequest>,
    ) -> Result<Response<PlanRolloutResponse>, Status> {
        let request = request.into_inner();
        let target = Version::parse(&request.target)
            .map_err(|e| ApiError::InvalidArgument(format!("target: {e}")))?;
        let waves = if request.client_waves.trim().is_empty() {
            ClientWaves::default()
        } else {
            ClientWaves::parse(&request.client_waves)
                .map_err(|e| ApiError::InvalidArgument(format!("client waves: {e}")))?
        };
        self.known_installation(&request.installation).await?;
        let catalogue = self.catalogue().await?;
        let filter = HostFilter {
            installation: Some(request.installation.clone()),
            role: None,
        };
        let hosts = self
            .store
            .list_hosts(&filter, now_ms())
            .await
            .map_err(ApiError::from)?;
        let licence = self
            .store
            .licences()
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .find(|l| l.installation == request.installation);
        let planned = plan(&PlanRequest {
            installation: &request.installation,
            hosts: &hosts,
            catalogue: &catalogue,
            licence: licence.as_ref(),
            target,
            waves: &waves,
        })
        .map_err(|e| match e {
            PlanError::UnknownTarget { .. } => {
                ApiError::NotFound(format!("{e}; `tierwise releases list` shows them all"))
            }
            PlanError::NoHosts(_) | PlanError::EmptyCatalogue => {
                ApiError::FailedPrecondition(e.to_string())
            }
        })?;
        let plan_json = serde_json::to_string(&planned)
            .map_err(|e| ApiError::Protocol(format!("cannot encode the plan: {e}")))?;
        Ok(Response::new(PlanRolloutResponse { plan_json }))
    }
}
