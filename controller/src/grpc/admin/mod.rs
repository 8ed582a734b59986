//! `AdminService`: what the operator CLI calls. The service's methods are
//! one-line hand-offs to the module of their area: hosts (inventory,
//! placement, revocation), catalogue and licences, rollouts (plan, start,
//! status, operator commands, audit), access (tokens, operators) and
//! artifacts.

mod access;
pub use access::OPERATOR_TOKEN_LIFETIME;
mod artifacts;
mod catalogue;
pub mod history;
mod hosts;
mod installations;
pub mod metadata;
mod notifications;
mod rollouts;
mod windows;

use crate::artifacts::ArtifactStore;
use crate::engine::Engine;
use crate::grpc::auth::{self};
use crate::grpc::sessions::Sessions;
use crate::grpc::ApiError;
use crate::store::Store;
use tierwise_common::validate_name;
use tierwise_proto::v1;
use tierwise_proto::v1::{
    admin_service_server::AdminService, ChangeRolloutRequest, GetCatalogueRequest,
    GetCatalogueResponse, GetHostRequest, GetRolloutRequest, HostView, ImportCatalogueRequest,
    ImportCatalogueResponse, ListAuditRequest, ListHostsRequest, ListHostsResponse,
    ListLicencesRequest, ListLicencesResponse, ListRolloutsRequest, PlanRolloutRequest,
    PlanRolloutResponse, RefreshInventoryRequest, RefreshInventoryResponse, SetLicenceRequest,
    SetLicenceResponse, StartRolloutRequest,
};
use tierwise_proto::v1::{
    AddOperatorRequest, AddOperatorResponse, CreateTokenRequest, CreateTokenResponse,
    ListOperatorsRequest, ListTokensRequest, RemoveOperatorRequest, RevokeHostRequest,
    RevokeTokenRequest, WhoAmIRequest,
};
use tierwise_proto::v1::{
    AddressMappings, ListAddressMappingsRequest, MapAddressRequest, UnmapAddressRequest,
};
use tierwise_proto::v1::{
    ArtifactList, ListArtifactsRequest, RemoveArtifactsRequest, UploadArtifactChunk,
    UploadArtifactResponse,
};
use tierwise_proto::v1::{
    GetReleaseMetadataRequest, ImportReleaseMetadataRequest, ReleaseMetadataView,
};
use tonic::{Request, Response, Status};

#[derive(Clone, Debug)]
pub struct AdminApi {
    store: Store,
    sessions: Sessions,
    engine: Engine,
    artifacts: ArtifactStore,
    /// `--allow-unsigned-releases`: a rollout whose installers are not
    /// signed is warned about instead of refused.
    allow_unsigned: bool,
    /// `--release-root-fingerprint`: the only root metadata may come from.
    release_root: Option<String>,
}

impl AdminApi {
    pub fn new(store: Store, sessions: Sessions, engine: Engine, artifacts: ArtifactStore) -> Self {
        Self {
            store,
            sessions,
            engine,
            artifacts,
            allow_unsigned: false,
            release_root: None,
        }
    }

    /// Accepts release metadata only from this root.
    pub fn pinning_release_root(mut self, root: Option<String>) -> Self {
        self.release_root = root;
        self
    }

    /// Lets rollouts of unsigned installers start (with a loud warning).
    pub fn allowing_unsigned_releases(mut self, allow: bool) -> Self {
        self.allow_unsigned = allow;
        self
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

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_hosts(
        &self,
        request: Request<ListHostsRequest>,
    ) -> Result<Response<ListHostsResponse>, Status> {
        hosts::list_hosts(self, request).await
    }

    async fn get_host(
        &self,
        request: Request<GetHostRequest>,
    ) -> Result<Response<HostView>, Status> {
        hosts::get_host(self, request).await
    }

    async fn refresh_inventory(
        &self,
        request: Request<RefreshInventoryRequest>,
    ) -> Result<Response<RefreshInventoryResponse>, Status> {
        hosts::refresh_inventory(self, request).await
    }

    async fn import_catalogue(
        &self,
        request: Request<ImportCatalogueRequest>,
    ) -> Result<Response<ImportCatalogueResponse>, Status> {
        catalogue::import_catalogue(self, request).await
    }

    async fn get_catalogue(
        &self,
        _request: Request<GetCatalogueRequest>,
    ) -> Result<Response<GetCatalogueResponse>, Status> {
        catalogue::get_catalogue(self, _request).await
    }

    async fn set_licence(
        &self,
        request: Request<SetLicenceRequest>,
    ) -> Result<Response<SetLicenceResponse>, Status> {
        catalogue::set_licence(self, request).await
    }

    async fn list_licences(
        &self,
        _request: Request<ListLicencesRequest>,
    ) -> Result<Response<ListLicencesResponse>, Status> {
        catalogue::list_licences(self, _request).await
    }

    async fn import_release_metadata(
        &self,
        request: Request<ImportReleaseMetadataRequest>,
    ) -> Result<Response<ReleaseMetadataView>, Status> {
        metadata::import_release_metadata(self, request).await
    }

    async fn set_window(
        &self,
        request: Request<tierwise_proto::v1::SetWindowRequest>,
    ) -> Result<Response<tierwise_proto::v1::WindowList>, Status> {
        windows::set_window(self, request).await
    }

    async fn remove_window(
        &self,
        request: Request<tierwise_proto::v1::RemoveWindowRequest>,
    ) -> Result<Response<tierwise_proto::v1::WindowList>, Status> {
        windows::remove_window(self, request).await
    }

    async fn list_windows(
        &self,
        request: Request<tierwise_proto::v1::ListWindowsRequest>,
    ) -> Result<Response<tierwise_proto::v1::WindowList>, Status> {
        windows::list_windows(self, request).await
    }

    async fn set_installation(
        &self,
        request: Request<tierwise_proto::v1::SetInstallationRequest>,
    ) -> Result<Response<tierwise_proto::v1::InstallationView>, Status> {
        installations::set_installation(self, request).await
    }

    async fn get_installation(
        &self,
        request: Request<tierwise_proto::v1::GetInstallationRequest>,
    ) -> Result<Response<tierwise_proto::v1::InstallationView>, Status> {
        installations::get_installation(self, request).await
    }

    async fn get_release_metadata(
        &self,
        request: Request<GetReleaseMetadataRequest>,
    ) -> Result<Response<ReleaseMetadataView>, Status> {
        metadata::get_release_metadata(self, request).await
    }

    async fn plan_rollout(
        &self,
        request: Request<PlanRolloutRequest>,
    ) -> Result<Response<PlanRolloutResponse>, Status> {
        rollouts::plan_rollout(self, request).await
    }

    async fn start_rollout(
        &self,
        request: Request<StartRolloutRequest>,
    ) -> Result<Response<v1::RolloutView>, Status> {
        rollouts::start_rollout(self, request).await
    }

    async fn list_rollouts(
        &self,
        _request: Request<ListRolloutsRequest>,
    ) -> Result<Response<v1::RolloutList>, Status> {
        rollouts::list_rollouts(self, _request).await
    }

    async fn get_rollout(
        &self,
        request: Request<GetRolloutRequest>,
    ) -> Result<Response<v1::RolloutView>, Status> {
        rollouts::get_rollout(self, request).await
    }

    async fn change_rollout(
        &self,
        request: Request<ChangeRolloutRequest>,
    ) -> Result<Response<v1::RolloutView>, Status> {
        rollouts::change_rollout(self, request).await
    }

    async fn list_audit(
        &self,
        request: Request<ListAuditRequest>,
    ) -> Result<Response<v1::AuditLog>, Status> {
        rollouts::list_audit(self, request).await
    }

    async fn create_token(
        &self,
        request: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        access::create_token(self, request).await
    }

    async fn list_tokens(
        &self,
        _request: Request<ListTokensRequest>,
    ) -> Result<Response<v1::TokenList>, Status> {
        access::list_tokens(self, _request).await
    }

    async fn revoke_token(
        &self,
        request: Request<RevokeTokenRequest>,
    ) -> Result<Response<v1::TokenView>, Status> {
        access::revoke_token(self, request).await
    }

    async fn add_operator(
        &self,
        request: Request<AddOperatorRequest>,
    ) -> Result<Response<AddOperatorResponse>, Status> {
        access::add_operator(self, request).await
    }

    async fn list_operators(
        &self,
        _request: Request<ListOperatorsRequest>,
    ) -> Result<Response<v1::OperatorList>, Status> {
        access::list_operators(self, _request).await
    }

    async fn remove_operator(
        &self,
        request: Request<RemoveOperatorRequest>,
    ) -> Result<Response<v1::OperatorView>, Status> {
        access::remove_operator(self, request).await
    }

    async fn rotate_operator(
        &self,
        request: Request<v1::RotateOperatorRequest>,
    ) -> Result<Response<AddOperatorResponse>, Status> {
        access::rotate_operator(self, request).await
    }

    async fn map_address(
        &self,
        request: Request<MapAddressRequest>,
    ) -> Result<Response<AddressMappings>, Status> {
        hosts::map_address(self, request).await
    }

    async fn unmap_address(
        &self,
        request: Request<UnmapAddressRequest>,
    ) -> Result<Response<AddressMappings>, Status> {
        hosts::unmap_address(self, request).await
    }

    async fn list_address_mappings(
        &self,
        _request: Request<ListAddressMappingsRequest>,
    ) -> Result<Response<AddressMappings>, Status> {
        hosts::list_address_mappings(self, _request).await
    }

    async fn revoke_host(
        &self,
        request: Request<RevokeHostRequest>,
    ) -> Result<Response<v1::RevokeHostResponse>, Status> {
        hosts::revoke_host(self, request).await
    }

    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<v1::WhoAmIResponse>, Status> {
        access::who_am_i(self, request).await
    }

    async fn upload_artifact(
        &self,
        request: Request<tonic::Streaming<UploadArtifactChunk>>,
    ) -> Result<Response<UploadArtifactResponse>, Status> {
        artifacts::upload_artifact(self, request).await
    }

    async fn get_host_history(
        &self,
        request: Request<v1::GetHostHistoryRequest>,
    ) -> Result<Response<v1::HostHistory>, Status> {
        history::get_host_history(self, request).await
    }

    // Notifications (issue 23).
    async fn add_notification(
        &self,
        request: Request<v1::AddNotificationRequest>,
    ) -> Result<Response<v1::NotificationList>, Status> {
        notifications::add_notification(self, request).await
    }

    async fn list_notifications(
        &self,
        request: Request<v1::ListNotificationsRequest>,
    ) -> Result<Response<v1::NotificationList>, Status> {
        notifications::list_notifications(self, request).await
    }

    async fn remove_notification(
        &self,
        request: Request<v1::RemoveNotificationRequest>,
    ) -> Result<Response<v1::NotificationList>, Status> {
        notifications::remove_notification(self, request).await
    }

    async fn test_notification(
        &self,
        request: Request<v1::TestNotificationRequest>,
    ) -> Result<Response<v1::NotificationList>, Status> {
        notifications::test_notification(self, request).await
    }

    async fn list_artifacts(
        &self,
        request: Request<ListArtifactsRequest>,
    ) -> Result<Response<ArtifactList>, Status> {
        artifacts::list_artifacts(self, request).await
    }

    async fn remove_artifacts(
        &self,
        request: Request<RemoveArtifactsRequest>,
    ) -> Result<Response<ArtifactList>, Status> {
        artifacts::remove_artifacts(self, request).await
    }

    async fn verify_audit(
        &self,
        request: Request<v1::VerifyAuditRequest>,
    ) -> Result<Response<v1::AuditVerification>, Status> {
        rollouts::verify_audit(self, request).await
    }
}
