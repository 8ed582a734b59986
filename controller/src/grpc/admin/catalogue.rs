//! The release catalogue and the installations' licences.

use super::{actor, AdminApi};
use crate::grpc::{printable, ApiError};
use tierwise_common::artifact::CatalogueChanges;
use tierwise_common::{Catalogue, Date};
use tierwise_proto::v1::{
    GetCatalogueRequest, GetCatalogueResponse, ImportCatalogueRequest, ImportCatalogueResponse,
    Licence as WireLicence, ListLicencesRequest, ListLicencesResponse, SetLicenceRequest,
    SetLicenceResponse,
};
use tierwise_runtime::clock::now_ms;
use tonic::{Request, Response, Status};
use tracing::info;

pub(super) async fn import_catalogue(
    api: &AdminApi,
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
    let previous = match api
        .store
        .current_catalogue()
        .await
        .map_err(ApiError::from)?
    {
        Some(stored) => Catalogue::parse(&stored.document, &stored.source).unwrap_or_default(),
        None => Catalogue::default(),
    };
    let changes = CatalogueChanges::between(&previous, &catalogue);
    let names = |versions: &[tierwise_common::Version]| -> Vec<String> {
        versions.iter().map(ToString::to_string).collect()
    };
    let response = ImportCatalogueResponse {
        releases: u32::try_from(catalogue.releases().len()).unwrap_or(u32::MAX),
        added: names(&changes.added),
        removed: names(&changes.removed),
        changed: names(&changes.changed),
    };
    if request.dry_run {
        return Ok(Response::new(response));
    }
    if let Some(refusal) = changes.refusal(request.allow_remove) {
        return Err(ApiError::FailedPrecondition(format!("{source}: {refusal}")).into());
    }
    api.store
        .import_catalogue(&source, &request.document, &actor, now_ms())
        .await
        .map_err(ApiError::from)?;
    info!(%source, releases = response.releases, added = response.added.len(),
          removed = response.removed.len(), changed = response.changed.len(), "catalogue imported");
    Ok(Response::new(response))
}

pub(super) async fn get_catalogue(
    api: &AdminApi,
    _request: Request<GetCatalogueRequest>,
) -> Result<Response<GetCatalogueResponse>, Status> {
    let stored = api
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

pub(super) async fn set_licence(
    api: &AdminApi,
    request: Request<SetLicenceRequest>,
) -> Result<Response<SetLicenceResponse>, Status> {
    let actor = actor(&request)?;
    let request = request.into_inner();
    let until = Date::parse(&request.maintenance_until)
        .map_err(|e| ApiError::InvalidArgument(format!("maintenance end: {e}")))?;
    api.known_installation(&request.installation).await?;
    let stored = api
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

pub(super) async fn list_licences(
    api: &AdminApi,
    _request: Request<ListLicencesRequest>,
) -> Result<Response<ListLicencesResponse>, Status> {
    let licences = api.store.licences().await.map_err(ApiError::from)?;
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
