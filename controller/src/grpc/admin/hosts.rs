//! Hosts: the inventory list, one host, a refresh, revocation, and the
//! address mappings that place `auto` clients.

use super::{actor, optional_name, AdminApi};
use crate::grpc::ApiError;
use crate::store::outbox::HostCommand;
use crate::store::HostFilter;
use tierwise_common::validate_name;
use tierwise_proto::convert::role_from_wire;
use tierwise_proto::v1;
use tierwise_proto::v1::RevokeHostRequest;
use tierwise_proto::v1::{
    AddressMapping as WireMapping, AddressMappings, ListAddressMappingsRequest, MapAddressRequest,
    UnmapAddressRequest,
};
use tierwise_proto::v1::{
    GetHostRequest, HostView, ListHostsRequest, ListHostsResponse, RefreshInventoryRequest,
    RefreshInventoryResponse, Role as WireRole,
};
use tierwise_runtime::clock::now_ms;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

pub(super) async fn list_hosts(
    api: &AdminApi,
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
    let size = match request.page_size {
        0 => DEFAULT_PAGE,
        n => usize::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE),
    };
    if !request.page_token.is_empty() {
        validate_name("page token", &request.page_token)
            .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
    }
    let hosts = api
        .store
        .list_hosts_page(
            &HostFilter { installation, role },
            &request.page_token,
            size,
            now_ms(),
        )
        .await
        .map_err(ApiError::from)?;
    let next_page_token = if hosts.len() == size {
        hosts.last().map(|h| h.host_id.clone()).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(Response::new(ListHostsResponse {
        hosts: hosts.iter().map(HostView::from).collect(),
        next_page_token,
    }))
}

/// Hosts per `ListHosts` page unless asked otherwise, and at most: a page
/// stays far below the message limit however large the fleet.
const DEFAULT_PAGE: usize = 1000;
const MAX_PAGE: usize = 2000;

pub(super) async fn get_host(
    api: &AdminApi,
    request: Request<GetHostRequest>,
) -> Result<Response<HostView>, Status> {
    let host_id = request.into_inner().host_id;
    validate_name("host id", &host_id).map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
    let host = api
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

pub(super) async fn refresh_inventory(
    api: &AdminApi,
    request: Request<RefreshInventoryRequest>,
) -> Result<Response<RefreshInventoryResponse>, Status> {
    let actor = actor(&request)?;
    let request = request.into_inner();
    let host_id = optional_name("host id", &request.host_id)?;
    let installation = optional_name("installation", &request.installation)?;
    if let Some(id) = &host_id {
        let known = api
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
    // The connected hosts that match, wherever their streams are: the
    // replica holding each one's stream takes the request from the outbox.
    let filter = HostFilter {
        installation: if host_id.is_some() {
            None
        } else {
            installation.clone()
        },
        role: None,
    };
    let mut asked: Vec<String> = api
        .store
        .list_hosts(&filter, now_ms())
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .filter(|h| h.online && host_id.as_ref().is_none_or(|id| *id == h.host_id))
        .map(|h| h.host_id)
        .collect();
    api.store
        .enqueue_for_hosts(&asked, HostCommand::Refresh, now_ms())
        .await
        .map_err(ApiError::from)?;
    api.engine.wake_outbox();
    asked.sort();
    info!(
        count = asked.len(),
        %actor,
        "asked agents to report their inventory"
    );
    let subject = host_id.or(installation).unwrap_or_else(|| "all".to_owned());
    api.store
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

pub(super) async fn map_address(
    api: &AdminApi,
    request: Request<MapAddressRequest>,
) -> Result<Response<AddressMappings>, Status> {
    let actor = actor(&request)?;
    let request = request.into_inner();
    validate_name("installation", &request.installation)
        .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
    api.store
        .map_address(&request.address, &request.installation, &actor, now_ms())
        .await
        .map_err(mapping_error)?;
    info!(address = %request.address, installation = %request.installation, %actor, "address mapped");
    api.mappings().await
}

pub(super) async fn unmap_address(
    api: &AdminApi,
    request: Request<UnmapAddressRequest>,
) -> Result<Response<AddressMappings>, Status> {
    let actor = actor(&request)?;
    let address = request.into_inner().address;
    api.store
        .unmap_address(&address, &actor, now_ms())
        .await
        .map_err(mapping_error)?;
    info!(%address, %actor, "address mapping removed");
    api.mappings().await
}

pub(super) async fn list_address_mappings(
    api: &AdminApi,
    _request: Request<ListAddressMappingsRequest>,
) -> Result<Response<AddressMappings>, Status> {
    api.mappings().await
}

pub(super) async fn revoke_host(
    api: &AdminApi,
    request: Request<RevokeHostRequest>,
) -> Result<Response<v1::RevokeHostResponse>, Status> {
    let actor = actor(&request)?;
    let host_id = request.into_inner().host_id;
    validate_name("host id", &host_id).map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
    let known = api
        .store
        .get_host(&host_id, now_ms())
        .await
        .map_err(ApiError::from)?;
    let revoked = api
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
    let session_closed = api
        .sessions
        .close_host(&host_id, crate::grpc::sessions::CloseReason::Revoked);
    // A stream held by another replica is closed by that one.
    api.store
        .enqueue_for_hosts(std::slice::from_ref(&host_id), HostCommand::Close, now_ms())
        .await
        .map_err(ApiError::from)?;
    api.engine.wake_outbox();
    warn!(%host_id, revoked, session_closed, %actor, "host revoked");
    Ok(Response::new(v1::RevokeHostResponse {
        host_id,
        certificates_revoked: revoked,
        session_closed,
    }))
}

impl AdminApi {
    pub(super) async fn mappings(&self) -> Result<Response<AddressMappings>, Status> {
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

#[cfg(test)]
mod tests {
    use super::MAX_PAGE;
    use prost::Message;
    use tierwise_common::inventory::{
        MAX_DATABASES, MAX_DATABASE_NAME, MAX_DOCROOT, MAX_PROBE_TEXT, MAX_PROFILES,
        MAX_PROFILE_DATABASE, MAX_PROFILE_HOST,
    };
    use tierwise_common::name::MAX_NAME_LEN;
    use tierwise_common::{
        Check, ClientFacts, Component, Database, DatabaseProfile, Facts, HostRecord, Inventory,
        Placement, ProbedVersion, Role, ServerFacts, Version, WebFacts, WebServerKind,
    };
    use tierwise_proto::v1::HostView;

    /// The largest host an agent can make the controller keep: every role,
    /// every list full, every text at its limit.
    fn largest_host(n: usize) -> HostRecord {
        let text = |len: usize| "x".repeat(len);
        let unknown = || ProbedVersion::Unknown(text(4 * MAX_PROBE_TEXT));
        let inventory = Inventory::new(vec![
            Component {
                role: Role::Server,
                version: unknown(),
                facts: Facts::Server(ServerFacts {
                    databases: (0..MAX_DATABASES)
                        .map(|i| Database {
                            name: format!("{i:03}{}", text(MAX_DATABASE_NAME - 3)),
                            active: true,
                            patch_level: Some(Version::new(26, 3, 100, 34058)),
                        })
                        .collect(),
                    databases_error: Some(text(4 * MAX_PROBE_TEXT)),
                    backup_location: None,
                    commands: None,
                    web_app_output: None,
                }),
            },
            Component {
                role: Role::AppServer,
                version: unknown(),
                facts: Facts::None,
            },
            Component {
                role: Role::Web,
                version: unknown(),
                facts: Facts::Web(WebFacts {
                    server_kind: WebServerKind::Iis,
                    docroot: text(MAX_DOCROOT),
                    websocket: Check::Yes,
                    packages: None,
                }),
            },
            Component {
                role: Role::Client,
                version: unknown(),
                facts: Facts::Client(ClientFacts {
                    update_check_enabled: Check::Yes,
                    profiles: (0..MAX_PROFILES)
                        .map(|i| DatabaseProfile {
                            host: format!("{i:03}{}", text(MAX_PROFILE_HOST - 3)),
                            database: text(MAX_PROFILE_DATABASE),
                        })
                        .collect(),
                }),
            },
        ])
        .unwrap_or_default();
        HostRecord {
            host_id: format!("{n:06}{}", text(MAX_NAME_LEN - 6)),
            hostname: text(253),
            installation: text(MAX_NAME_LEN),
            os: text(200),
            agent_version: text(64),
            online: true,
            first_seen_ms: i64::MAX,
            last_seen_ms: i64::MAX,
            heartbeat_seconds: u32::MAX,
            inventory,
            placement: Some(Placement::Unassigned {
                reason: text(MAX_PROFILES * (MAX_PROFILE_HOST + 2)),
            }),
            boot_ms: Some(i64::MAX),
        }
    }

    #[test]
    fn a_full_page_of_the_largest_hosts_fits_in_one_message() {
        let host = HostView::from(&largest_host(1));
        assert_eq!(host.components.len(), 4, "the inventory was refused");
        let page = MAX_PAGE * host.encoded_len();
        assert!(
            page < tierwise_proto::MAX_ADMIN_MESSAGE_BYTES,
            "a page of {MAX_PAGE} hosts of {} bytes is {page} bytes",
            host.encoded_len()
        );
    }
}
