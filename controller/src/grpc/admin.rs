//! `AdminService`: what the operator CLI calls.

use super::auth::{self, Role};
use super::{printable, ApiError};
use crate::artifacts::ArtifactStore;
use crate::engine::Engine;
use crate::grpc::sessions::Sessions;
use crate::rollout_view::RolloutStatus;
use crate::store::rollouts::RolloutError;
use crate::store::{HostFilter, Store};
use tierwise_common::plan::{plan, Plan, PlanError, PlanRequest};
use tierwise_common::rollout::{
    admit, parse_restart_policies, steps_from_plan, AdmissionRequest, Command, ErrorThreshold,
    Refusal, RolloutOptions,
};
use tierwise_common::rules::{ACK_BREAKING, ACK_SERVER_MANAGER_PASSWORD};
use tierwise_common::{validate_name, Catalogue, ClientWaves, Date, Version};
use tierwise_proto::convert::role_from_wire;
use tierwise_proto::v1::{
    admin_service_server::AdminService, controller_message, ChangeRolloutRequest,
    ControllerMessage, GetCatalogueRequest, GetCatalogueResponse, GetHostRequest,
    GetRolloutRequest, HostView, ImportCatalogueRequest, ImportCatalogueResponse,
    Licence as WireLicence, ListAuditRequest, ListHostsRequest, ListHostsResponse,
    ListLicencesRequest, ListLicencesResponse, ListRolloutsRequest, PlanRolloutRequest,
    PlanRolloutResponse, RefreshInventoryRequest, RefreshInventoryResponse, ReportInventory,
    Role as WireRole, RolloutChange, RolloutJson, SetLicenceRequest, SetLicenceResponse,
    StartRolloutRequest,
};
use tierwise_proto::v1::{
    AddOperatorRequest, AddOperatorResponse, CreateTokenRequest, CreateTokenResponse,
    ListOperatorsRequest, ListTokensRequest, RemoveOperatorRequest, RevokeHostRequest,
    RevokeTokenRequest, WhoAmIRequest,
};
use tierwise_proto::v1::{
    AddressMapping as WireMapping, AddressMappings, ListAddressMappingsRequest, MapAddressRequest,
    UnmapAddressRequest,
};
use tierwise_proto::v1::{UploadArtifactChunk, UploadArtifactResponse};
use tierwise_runtime::clock::now_ms;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

#[derive(Clone, Debug)]
pub struct AdminApi {
    store: Store,
    sessions: Sessions,
    engine: Engine,
    artifacts: ArtifactStore,
}

impl AdminApi {
    pub fn new(store: Store, sessions: Sessions, engine: Engine, artifacts: ArtifactStore) -> Self {
        Self {
            store,
            sessions,
            engine,
            artifacts,
        }
    }
}

impl AdminApi {
    /// The installation, if the controller knows it; otherwise an error that
    /// lists the ones it knows.
    async fn known_installation(&self, installation: &str) -> Result<(), ApiError> {
        validate_name("installation", installation)
            .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        if installation == tierwise_common::AUTO_INSTALLATION {
            return Err(ApiError::InvalidArgument(
                "`auto` is no installation: it holds the clients not placed yet (`tierwise hosts list --installation auto` shows them and why); place them with `tierwise installations map ADDRESS INSTALLATION`".into(),
            ));
        }
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
    /// Plans from live inventory, the catalogue in force and the licence;
    /// also returns that catalogue.
    async fn make_plan(
        &self,
        installation: &str,
        target: &str,
        client_waves: &str,
    ) -> Result<(Plan, Catalogue), ApiError> {
        let target = Version::parse(target)
            .map_err(|e| ApiError::InvalidArgument(format!("target: {e}")))?;
        let chosen = if client_waves.trim().is_empty() {
            None
        } else {
            Some(
                ClientWaves::parse(client_waves)
                    .map_err(|e| ApiError::InvalidArgument(format!("client waves: {e}")))?,
            )
        };
        let waves = chosen.clone().unwrap_or_default();
        self.known_installation(installation).await?;
        let catalogue = self.catalogue().await?;
        let filter = HostFilter {
            installation: Some(installation.to_owned()),
            role: None,
        };
        let hosts = self.store.list_hosts(&filter, now_ms()).await?;
        let licence = self
            .store
            .licences()
            .await?
            .into_iter()
            .find(|l| l.installation == installation);
        let plan_with = |waves: &ClientWaves| {
            plan(&PlanRequest {
                installation,
                hosts: &hosts,
                catalogue: &catalogue,
                licence: licence.as_ref(),
                target,
                waves,
            })
            .map_err(|e| match e {
                PlanError::UnknownTarget { .. } => {
                    ApiError::NotFound(format!("{e}; `tierwise releases list` shows them all"))
                }
                PlanError::NoHosts(_) | PlanError::EmptyCatalogue => {
                    ApiError::FailedPrecondition(e.to_string())
                }
            })
        };
        let mut planned = plan_with(&waves)?;
        // A breaking release locks old clients out: unless the operator
        // chose waves, a canary and then the rest.
        if chosen.is_none() && planned.clients_immediately_after_web {
            planned = plan_with(&ClientWaves::breaking_default())?;
        }
        Ok((planned, catalogue))
    }

    async fn rollout_status(&self, id: &str) -> Result<RolloutStatus, ApiError> {
        let (rollout, steps) = self.store.rollout(id).await?.ok_or_else(|| {
            ApiError::NotFound(format!(
                "no rollout `{id}`; `tierwise rollout list` shows them"
            ))
        })?;
        let outputs = self.store.step_outputs(id).await?;
        let progress = self.store.step_progress(id).await?;
        let filter = HostFilter {
            installation: Some(rollout.installation.clone()),
            role: None,
        };
        let hosts = self.store.list_hosts(&filter, now_ms()).await?;
        Ok(RolloutStatus::build(
            &rollout, &steps, &outputs, &progress, &hosts,
        ))
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Response<RolloutJson>, Status> {
    serde_json::to_string(value)
        .map(|json| Response::new(RolloutJson { json }))
        .map_err(|e| ApiError::Protocol(format!("cannot encode the answer: {e}")).into())
}

fn rollout_error(error: RolloutError) -> ApiError {
    match error {
        RolloutError::Refused {
            refusal: Refusal::NothingToSkip { .. },
            ..
        }
        | RolloutError::NotFound(_) => ApiError::NotFound(error.to_string()),
        RolloutError::AlreadyActive { .. } | RolloutError::Refused { .. } => {
            ApiError::FailedPrecondition(error.to_string())
        }
        RolloutError::Store(e) => ApiError::Store(e),
    }
}

/// Who asked: the authenticated operator's name.
fn actor<T>(request: &Request<T>) -> Result<String, Status> {
    auth::operator_name(request)
}

fn optional_name(kind: &'static str, value: &str) -> Result<Option<String>, ApiError> {
    if value.is_empty() {
        return Ok(None);
    }
    validate_name(kind, value).map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
    Ok(Some(value.to_owned()))
}

/// Most uses one enrollment token may have (a Group Policy token for a whole
/// estate needs many).
const MAX_TOKEN_USES: u32 = 1_000_000;
/// Longest lifetime of an enrollment token: 90 days.
const MAX_TOKEN_SECONDS: u64 = 90 * 86_400;

/// An enrollment token in `tokens list --json`.
#[derive(Debug, serde::Serialize)]
struct TokenView {
    #[serde(flatten)]
    token: crate::store::security::TokenRecord,
    /// `active`, `expired`, `used_up` or `revoked`.
    state: crate::store::security::TokenState,
}

impl TokenView {
    fn new(token: crate::store::security::TokenRecord, now_ms: i64) -> Self {
        Self {
            state: token.state(now_ms),
            token,
        }
    }
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
        let actor = actor(&request)?;
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
            %actor,
            "asked agents to report their inventory"
        );
        let subject = host_id.or(installation).unwrap_or_else(|| "all".to_owned());
        self.store
            .audit(
                &actor,
                "inventory refresh",
                &subject,
                &format!("{} agent(s) asked", asked.len()),
                now_ms(),
            )
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(RefreshInventoryResponse { asked }))
    }

    async fn import_catalogue(
        &self,
        request: Request<ImportCatalogueRequest>,
    ) -> Result<Response<ImportCatalogueResponse>, Status> {
        let actor = actor(&request)?;
        let request = request.into_inner();
        let source = if request.source.trim().is_empty() {
            "catalogue".to_owned()
        } else {
            printable(&request.source, 255)
        };
        // Everything is checked before anything is written.
        let catalogue = Catalogue::parse(&request.document, &source)
            .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        if catalogue.releases().is_empty() {
            return Err(ApiError::InvalidArgument(format!(
                "{source}: the catalogue lists no release; nothing was imported"
            ))
            .into());
        }
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
            .import_catalogue(&source, &request.document, &actor, now_ms())
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
        let actor = actor(&request)?;
        let request = request.into_inner();
        let until = Date::parse(&request.maintenance_until)
            .map_err(|e| ApiError::InvalidArgument(format!("maintenance end: {e}")))?;
        self.known_installation(&request.installation).await?;
        let stored = self
            .store
            .set_licence(&request.installation, until, &actor, now_ms())
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
        let (planned, _) = self
            .make_plan(
                &request.installation,
                &request.target,
                &request.client_waves,
            )
            .await?;
        let plan_json = serde_json::to_string(&planned)
            .map_err(|e| ApiError::Protocol(format!("cannot encode the plan: {e}")))?;
        Ok(Response::new(PlanRolloutResponse { plan_json }))
    }

    async fn start_rollout(
        &self,
        request: Request<StartRolloutRequest>,
    ) -> Result<Response<RolloutJson>, Status> {
        let actor = actor(&request)?;
        let request = request.into_inner();
        let error_threshold = if request.error_threshold.trim().is_empty() {
            RolloutOptions::default().error_threshold
        } else {
            ErrorThreshold::parse(&request.error_threshold)
                .map_err(|e| ApiError::InvalidArgument(format!("error threshold: {e}")))?
        };
        let (planned, catalogue) = self
            .make_plan(
                &request.installation,
                &request.target,
                &request.client_waves,
            )
            .await?;
        let mut acks: Vec<String> = request.acks.clone();
        if request.ack_breaking {
            acks.push(ACK_BREAKING.to_owned());
        }
        if request.ack_server_manager_password {
            acks.push(ACK_SERVER_MANAGER_PASSWORD.to_owned());
        }
        let release = planned.target.version.to_string();
        let mut stored = std::collections::BTreeMap::new();
        for role in tierwise_common::Role::ALL {
            if let Some(sha) = self
                .store
                .artifact(&release, role)
                .await
                .map_err(ApiError::from)?
            {
                stored.insert(role, sha);
            }
        }
        let named = catalogue
            .get(planned.target.version)
            .map(|r| r.artifacts.clone())
            .unwrap_or_default();
        let admitted = admit(&AdmissionRequest {
            plan: &planned,
            acks: &acks,
            named: &named,
            stored: &stored,
        })
        .map_err(|refused| ApiError::FailedPrecondition(refused.to_string()))?;
        let installers = admitted.installers;
        let verify_timeouts_ms =
            tierwise_common::rollout::parse_verify_timeouts(&request.verify_timeouts)
                .map_err(|e| ApiError::InvalidArgument(format!("verification deadline: {e}")))?;
        let options = RolloutOptions {
            error_threshold,
            approve_phases: request.approve_phases,
            clients_at_once: planned.clients_immediately_after_web,
            verify_timeouts_ms,
            restarts: parse_restart_policies(&request.restarts)
                .map_err(|e| ApiError::InvalidArgument(format!("restart: {e}")))?,
            ..RolloutOptions::default()
        };
        let details = format!(
            "installation {} to {}; acknowledged: {}",
            request.installation,
            planned.target.version,
            if planned.acks_required.is_empty() {
                "nothing needed".to_owned()
            } else {
                planned.acks_required.join(", ")
            }
        );
        let now = now_ms();
        let id = self
            .store
            .create_rollout(
                &request.installation,
                planned.target.version,
                &options,
                |id| {
                    let (phases, mut steps) = steps_from_plan(id, &planned, now);
                    for step in &mut steps {
                        step.action.attach_artifact(&installers);
                    }
                    (phases, steps)
                },
                &actor,
                &details,
                now,
            )
            .await
            .map_err(rollout_error)?;
        info!(rollout = %id, installation = %request.installation, target = %planned.target.version, "rollout started");
        self.engine.wake();
        to_json(&self.rollout_status(&id).await?)
    }

    async fn list_rollouts(
        &self,
        _request: Request<ListRolloutsRequest>,
    ) -> Result<Response<RolloutJson>, Status> {
        let mut list = Vec::new();
        for rollout in self.store.rollouts().await.map_err(ApiError::from)? {
            list.push(self.rollout_status(&rollout.id).await?);
        }
        to_json(&list)
    }

    async fn get_rollout(
        &self,
        request: Request<GetRolloutRequest>,
    ) -> Result<Response<RolloutJson>, Status> {
        let mut id = request.into_inner().id;
        if id.is_empty() {
            id = self
                .store
                .latest_rollout_id()
                .await
                .map_err(ApiError::from)?
                .ok_or_else(|| {
                    ApiError::NotFound(
                        "no rollout yet; start one with `tierwise rollout start`".into(),
                    )
                })?;
        }
        to_json(&self.rollout_status(&id).await?)
    }

    async fn change_rollout(
        &self,
        request: Request<ChangeRolloutRequest>,
    ) -> Result<Response<RolloutJson>, Status> {
        let actor = actor(&request)?;
        let request = request.into_inner();
        let command =
            match RolloutChange::try_from(request.change).unwrap_or(RolloutChange::Unspecified) {
                RolloutChange::Pause => Command::Pause,
                RolloutChange::Resume => Command::Resume,
                RolloutChange::Abort => Command::Abort,
                RolloutChange::Approve => Command::Approve,
                RolloutChange::SkipHost => {
                    validate_name("host id", &request.host_id)
                        .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
                    Command::Skip {
                        host_id: request.host_id.clone(),
                    }
                }
                RolloutChange::Unspecified => {
                    return Err(ApiError::InvalidArgument(
                        "say pause, resume, abort, approve or skip".into(),
                    )
                    .into())
                }
            };
        let (changed, change) = self
            .store
            .apply_command(&request.id, &command, &actor, now_ms())
            .await
            .map_err(rollout_error)?;
        info!(rollout = %changed.id, command = command.name(), details = %change.details, %actor, "rollout changed by an operator");
        self.engine.wake();
        to_json(&self.rollout_status(&changed.id).await?)
    }

    async fn list_audit(
        &self,
        request: Request<ListAuditRequest>,
    ) -> Result<Response<RolloutJson>, Status> {
        let limit = match request.into_inner().limit {
            0 => 100,
            n => i64::from(n.min(10_000)),
        };
        to_json(&self.store.audit_log(limit).await.map_err(ApiError::from)?)
    }

    async fn create_token(
        &self,
        request: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        let actor = actor(&request)?;
        let request = request.into_inner();
        let installation = optional_name("installation", &request.installation)?;
        if !(1..=MAX_TOKEN_USES).contains(&request.uses) {
            return Err(ApiError::InvalidArgument(format!(
                "uses must be between 1 and {MAX_TOKEN_USES}, not {}",
                request.uses
            ))
            .into());
        }
        if !(1..=MAX_TOKEN_SECONDS).contains(&request.expires_seconds) {
            return Err(ApiError::InvalidArgument(format!(
                "a token must expire between 1 second and {} days from now",
                MAX_TOKEN_SECONDS / 86_400
            ))
            .into());
        }
        let (id, secret, token) = auth::new_enrollment_token();
        let now = now_ms();
        let expires_ms = now + i64::try_from(request.expires_seconds * 1000).unwrap_or(i64::MAX);
        self.store
            .create_token(
                &crate::store::security::NewToken {
                    id: &id,
                    secret_sha256: &auth::token_digest(&secret),
                    installation: installation.as_deref(),
                    uses_allowed: i64::from(request.uses),
                    expires_ms,
                },
                &actor,
                now,
            )
            .await
            .map_err(ApiError::from)?;
        info!(token = %id, %actor, uses = request.uses, "enrollment token created");
        Ok(Response::new(CreateTokenResponse {
            token,
            id,
            expires_at_ms: expires_ms,
        }))
    }

    async fn list_tokens(
        &self,
        _request: Request<ListTokensRequest>,
    ) -> Result<Response<RolloutJson>, Status> {
        let now = now_ms();
        let tokens: Vec<TokenView> = self
            .store
            .tokens()
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .map(|t| TokenView::new(t, now))
            .collect();
        to_json(&tokens)
    }

    async fn revoke_token(
        &self,
        request: Request<RevokeTokenRequest>,
    ) -> Result<Response<RolloutJson>, Status> {
        let actor = actor(&request)?;
        let id = request.into_inner().id;
        let token = self
            .store
            .revoke_token(id.trim(), &actor, now_ms())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "no enrollment token `{}`; `tierwise tokens list` shows them",
                    printable(&id, 64)
                ))
            })?;
        info!(token = %token.id, %actor, "enrollment token revoked");
        to_json(&TokenView::new(token, now_ms()))
    }

    async fn add_operator(
        &self,
        request: Request<AddOperatorRequest>,
    ) -> Result<Response<AddOperatorResponse>, Status> {
        let actor = actor(&request)?;
        let request = request.into_inner();
        validate_name("operator name", &request.name)
            .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        let role: Role = request.role.parse().map_err(ApiError::InvalidArgument)?;
        let token = auth::new_operator_token();
        let added = self
            .store
            .add_operator(
                &request.name,
                role.as_str(),
                &auth::token_digest(&token),
                &actor,
                now_ms(),
            )
            .await
            .map_err(ApiError::from)?;
        if !added {
            return Err(ApiError::AlreadyExists(format!(
                "operator `{}` exists; remove it first to issue a new token",
                request.name
            ))
            .into());
        }
        info!(operator = %request.name, %role, %actor, "operator added");
        Ok(Response::new(AddOperatorResponse { token }))
    }

    async fn list_operators(
        &self,
        _request: Request<ListOperatorsRequest>,
    ) -> Result<Response<RolloutJson>, Status> {
        to_json(&self.store.operators().await.map_err(ApiError::from)?)
    }

    async fn remove_operator(
        &self,
        request: Request<RemoveOperatorRequest>,
    ) -> Result<Response<RolloutJson>, Status> {
        let actor = actor(&request)?;
        let name = request.into_inner().name;
        let operators = self.store.operators().await.map_err(ApiError::from)?;
        let Some(target) = operators.iter().find(|o| o.name == name) else {
            return Err(ApiError::NotFound(format!(
                "no operator `{}`; `tierwise operators list` shows them",
                printable(&name, 64)
            ))
            .into());
        };
        let admins = operators
            .iter()
            .filter(|o| o.role == Role::Admin.as_str())
            .count();
        if target.role == Role::Admin.as_str() && admins == 1 {
            return Err(ApiError::FailedPrecondition(format!(
                "`{name}` is the last admin; add another admin before removing it"
            ))
            .into());
        }
        self.store
            .remove_operator(&name, &actor, now_ms())
            .await
            .map_err(ApiError::from)?;
        info!(operator = %name, %actor, "operator removed");
        to_json(target)
    }

    async fn map_address(
        &self,
        request: Request<MapAddressRequest>,
    ) -> Result<Response<AddressMappings>, Status> {
        let actor = actor(&request)?;
        let request = request.into_inner();
        validate_name("installation", &request.installation)
            .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        self.store
            .map_address(&request.address, &request.installation, &actor, now_ms())
            .await
            .map_err(mapping_error)?;
        info!(address = %request.address, installation = %request.installation, %actor, "address mapped");
        self.mappings().await
    }

    async fn unmap_address(
        &self,
        request: Request<UnmapAddressRequest>,
    ) -> Result<Response<AddressMappings>, Status> {
        let actor = actor(&request)?;
        let address = request.into_inner().address;
        self.store
            .unmap_address(&address, &actor, now_ms())
            .await
            .map_err(mapping_error)?;
        info!(%address, %actor, "address mapping removed");
        self.mappings().await
    }

    async fn list_address_mappings(
        &self,
        _request: Request<ListAddressMappingsRequest>,
    ) -> Result<Response<AddressMappings>, Status> {
        self.mappings().await
    }

    async fn revoke_host(
        &self,
        request: Request<RevokeHostRequest>,
    ) -> Result<Response<RolloutJson>, Status> {
        let actor = actor(&request)?;
        let host_id = request.into_inner().host_id;
        validate_name("host id", &host_id).map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        let known = self
            .store
            .get_host(&host_id, now_ms())
            .await
            .map_err(ApiError::from)?;
        let revoked = self
            .store
            .revoke_host(&host_id, &actor, now_ms())
            .await
            .map_err(ApiError::from)?;
        if known.is_none() && revoked == 0 {
            return Err(ApiError::NotFound(format!(
                "no host `{host_id}`; `tierwise hosts list` shows the known hosts"
            ))
            .into());
        }
        let session_closed = self
            .sessions
            .close_host(&host_id, crate::grpc::sessions::CloseReason::Revoked);
        warn!(%host_id, revoked, session_closed, %actor, "host revoked");
        to_json(&serde_json::json!({
            "host_id": host_id,
            "certificates_revoked": revoked,
            "session_closed": session_closed,
        }))
    }

    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<RolloutJson>, Status> {
        match auth::principal(&request)? {
            auth::Principal::Operator { name, role } => {
                to_json(&serde_json::json!({ "name": name, "role": role }))
            }
            _ => Err(Status::permission_denied("this call is for operators")),
        }
    }

    async fn upload_artifact(
        &self,
        request: Request<tonic::Streaming<UploadArtifactChunk>>,
    ) -> Result<Response<UploadArtifactResponse>, Status> {
        let actor = actor(&request)?;
        let mut chunks = request.into_inner();
        let first = chunks
            .message()
            .await?
            .ok_or_else(|| ApiError::InvalidArgument("the upload is empty".into()))?;
        let release = Version::parse(&first.release)
            .map_err(|e| ApiError::InvalidArgument(format!("release: {e}")))?;
        let role = role_from_wire(first.role).ok_or_else(|| {
            ApiError::InvalidArgument(
                "name the component: server, app_server, web or client".into(),
            )
        })?;
        let file_name = printable(&first.file_name, 255);
        // What the catalogue says this installer must be, if it says.
        let expected = match self
            .store
            .current_catalogue()
            .await
            .map_err(ApiError::from)?
        {
            Some(stored) => Catalogue::parse(&stored.document, &stored.source)
                .ok()
                .and_then(|c| {
                    c.get(release)
                        .and_then(|r| r.artifacts.get(&role).map(|a| a.sha256.clone()))
                }),
            None => None,
        };
        let io = |e: std::io::Error| ApiError::Unavailable(format!("the artifact store: {e}"));
        let mut incoming = self.artifacts.begin().await.map_err(io)?;
        incoming.write(&first.data).await.map_err(io)?;
        while let Some(chunk) = chunks.message().await? {
            incoming.write(&chunk.data).await.map_err(io)?;
        }
        let checked = expected.is_some();
        let (sha256, size) = self
            .artifacts
            .finish(incoming, |sha| match &expected {
                Some(want) if want != sha => Err(format!(
                    "the file's SHA-256 is {sha}, but the catalogue gives {want} for the {role} installer of {release}; nothing was stored"
                )),
                _ => Ok(()),
            })
            .await
            .map_err(ApiError::FailedPrecondition)?;
        let now = now_ms();
        let release_text = release.to_string();
        let artifact = crate::store::NewArtifact {
            release: &release_text,
            role,
            sha256: &sha256,
            file_name: &file_name,
            size,
        };
        self.store
            .record_artifact(&artifact, &actor, now)
            .await
            .map_err(ApiError::from)?;
        info!(%release, %role, %sha256, size, "artifact stored");
        Ok(Response::new(UploadArtifactResponse {
            sha256,
            size,
            checked_against_catalogue: checked,
        }))
    }
}

impl AdminApi {
    async fn mappings(&self) -> Result<Response<AddressMappings>, Status> {
        let mappings = self
            .store
            .address_mappings()
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .map(|m| WireMapping {
                address: m.address,
                installation: m.installation,
                created_ms: m.created_ms,
                created_by: m.created_by,
            })
            .collect();
        Ok(Response::new(AddressMappings { mappings }))
    }
}

fn mapping_error(error: crate::store::placement::MappingError) -> Status {
    use crate::store::placement::MappingError;
    match error {
        MappingError::Store(store) => ApiError::Store(store),
        MappingError::UnknownInstallation(..) | MappingError::NoMapping(_) => {
            ApiError::NotFound(error.to_string())
        }
        MappingError::Auto | MappingError::EmptyAddress | MappingError::BadAddress { .. } => {
            ApiError::InvalidArgument(error.to_string())
        }
    }
    .into()
}
