//! Installers streamed in by `tierwise artifacts add`, listed by
//! `artifacts list` and removed by `artifacts remove`.

use super::{actor, AdminApi};
use crate::grpc::{printable, ApiError};
use crate::store::artifacts::StoredArtifact;
use tierwise_common::artifact::{removal_blocker, resolve_sha256, RolloutNeed};
use tierwise_common::{Catalogue, Version};
use tierwise_proto::convert::role_from_wire;
use tierwise_proto::v1::{
    ArtifactList, ArtifactView, ListArtifactsRequest, RemoveArtifactsRequest, Role as WireRole,
    UploadArtifactChunk, UploadArtifactResponse,
};
use tierwise_runtime::clock::now_ms;
use tonic::{Request, Response, Status};
use tracing::info;

pub(super) async fn upload_artifact(
    api: &AdminApi,
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
        ApiError::InvalidArgument("name the component: server, app_server, web or client".into())
    })?;
    let file_name = printable(&first.file_name, 255);
    let web_server = match first.web_server.as_str() {
        "" => None,
        _ if role != tierwise_common::Role::Web => {
            return Err(ApiError::InvalidArgument(
                "a kind of web server goes with the component web".into(),
            )
            .into())
        }
        text => Some(tierwise_common::WebServerKind::parse(text).ok_or_else(|| {
            ApiError::InvalidArgument(format!(
                "`{}` is no kind of web server; use iis, apache or nginx",
                printable(text, 32)
            ))
        })?),
    };
    // What the catalogue says this installer must be, if it says (a site's
    // own Web Application is made by its Server Manager: nobody else knows
    // its checksum).
    let expected = match api
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
    }
    .filter(|_| web_server.is_none());
    let io = |e: std::io::Error| ApiError::Unavailable(format!("the artifact store: {e}"));
    let mut incoming = api.artifacts.begin().await.map_err(io)?;
    incoming.write(&first.data).await.map_err(io)?;
    while let Some(chunk) = chunks.message().await? {
        incoming.write(&chunk.data).await.map_err(io)?;
    }
    let checked = expected.is_some();
    let (sha256, size) = api
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
    if let Some(kind) = web_server {
        api.store
            .record_web_package(
                &crate::store::web_packages::NewWebPackage {
                    release: &release_text,
                    web_server: kind,
                    sha256: &sha256,
                    file_name: &file_name,
                    size,
                },
                &actor,
                now,
            )
            .await
            .map_err(ApiError::from)?;
        info!(%release, web_server = kind.as_str(), %sha256, size, "web package stored");
        api.engine.wake();
        return Ok(Response::new(UploadArtifactResponse {
            sha256,
            size,
            checked_against_catalogue: false,
        }));
    }
    let artifact = crate::store::NewArtifact {
        release: &release_text,
        role,
        sha256: &sha256,
        file_name: &file_name,
        size,
    };
    api.store
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

/// Every stored installer and package, with whether the signed release
/// metadata in force covers it.
pub(super) async fn list_artifacts(
    api: &AdminApi,
    _request: Request<ListArtifactsRequest>,
) -> Result<Response<ArtifactList>, Status> {
    let stored = api.store.stored_artifacts().await.map_err(ApiError::from)?;
    let signed = api.signed_release().await?.ok();
    let artifacts = stored
        .iter()
        .map(|a| artifact_view(a, signed.as_ref()))
        .collect();
    Ok(Response::new(ArtifactList { artifacts }))
}

fn artifact_view(
    artifact: &StoredArtifact,
    signed: Option<&tierwise_common::trust::Release>,
) -> ArtifactView {
    ArtifactView {
        signed: signed.is_some_and(|metadata| {
            tierwise_common::trust::check_installer(
                metadata,
                &artifact.release,
                artifact.role.as_str(),
                &artifact.sha256,
                artifact.size,
            )
            .is_ok()
        }),
        sha256: artifact.sha256.clone(),
        size: artifact.size,
        release: artifact.release.clone(),
        role: WireRole::from(artifact.role).into(),
        web_server: artifact
            .web_server
            .map(|k| k.as_str().to_owned())
            .unwrap_or_default(),
        file_name: artifact.file_name.clone(),
        added_by: artifact.added_by.clone(),
        added_ms: artifact.added_ms,
    }
}

/// Removes installers (by file, or by release and component) unless a
/// rollout that may still run needs one: all or nothing, audited, and
/// each file no installer refers to any more is deleted from disk.
pub(super) async fn remove_artifacts(
    api: &AdminApi,
    request: Request<RemoveArtifactsRequest>,
) -> Result<Response<ArtifactList>, Status> {
    let actor = actor(&request)?;
    let request = request.into_inner();
    let stored = api.store.stored_artifacts().await.map_err(ApiError::from)?;
    let chosen = chosen_artifacts(&stored, &request)?;
    let rollouts = api.store.rollouts().await.map_err(ApiError::from)?;
    let needs: Vec<RolloutNeed<'_>> = rollouts
        .iter()
        .map(|r| RolloutNeed {
            id: &r.id,
            state: r.state,
            target: r.target,
        })
        .collect();
    for artifact in &chosen {
        let Ok(release) = Version::parse(&artifact.release) else {
            continue;
        };
        if let Some(reason) = removal_blocker(release, &needs) {
            return Err(ApiError::FailedPrecondition(format!(
                "the installer `{}` cannot be removed: {reason}; nothing was removed",
                artifact.subject()
            ))
            .into());
        }
    }
    let unused = api
        .store
        .remove_artifacts(&chosen, &actor, now_ms())
        .await
        .map_err(ApiError::from)?;
    for sha256 in &unused {
        if let Err(error) = api.artifacts.remove(sha256).await {
            tracing::warn!(%sha256, %error, "a removed installer's file stays on disk");
        }
    }
    info!(%actor, removed = chosen.len(), files = unused.len(), "artifacts removed");
    Ok(Response::new(ArtifactList {
        artifacts: chosen.iter().map(|a| artifact_view(a, None)).collect(),
    }))
}

/// The stored installers a removal names: every record of each SHA-256
/// given, or the one of a release and component (and kind of web server).
fn chosen_artifacts(
    stored: &[StoredArtifact],
    request: &RemoveArtifactsRequest,
) -> Result<Vec<StoredArtifact>, ApiError> {
    let by_slot = !request.release.is_empty();
    if by_slot != request.sha256.is_empty() {
        return Err(ApiError::InvalidArgument(
            "name the installers to remove either by SHA-256 or by release and component".into(),
        ));
    }
    if !by_slot {
        let mut chosen: Vec<StoredArtifact> = Vec::new();
        for text in &request.sha256 {
            let sha256 = resolve_sha256(text, stored.iter().map(|a| a.sha256.as_str()))
                .map_err(ApiError::NotFound)?;
            chosen.extend(
                stored
                    .iter()
                    .filter(|a| a.sha256 == sha256 && !chosen.contains(a))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
        return Ok(chosen);
    }
    let release = Version::parse(&request.release)
        .map_err(|e| ApiError::InvalidArgument(format!("release: {e}")))?;
    let role = role_from_wire(request.role).ok_or_else(|| {
        ApiError::InvalidArgument("name the component: server, app_server, web or client".into())
    })?;
    let web_server = match request.web_server.as_str() {
        "" => None,
        text => Some(tierwise_common::WebServerKind::parse(text).ok_or_else(|| {
            ApiError::InvalidArgument(format!(
                "`{}` is no kind of web server; use iis, apache or nginx",
                printable(text, 32)
            ))
        })?),
    };
    let release = release.to_string();
    let found = stored
        .iter()
        .find(|a| a.release == release && a.role == role && a.web_server == web_server)
        .cloned()
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no {} installer of {release} is stored{}; `tierwise artifacts list` shows them",
                role,
                web_server.map_or_else(String::new, |k| format!(" for {} web servers", k.as_str()))
            ))
        })?;
    Ok(vec![found])
}
