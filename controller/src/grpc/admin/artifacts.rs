//! Installers streamed in by `tierwise artifacts add`.

use super::{actor, AdminApi};
use crate::grpc::{printable, ApiError};
use tierwise_common::{Catalogue, Version};
use tierwise_proto::convert::role_from_wire;
use tierwise_proto::v1::{UploadArtifactChunk, UploadArtifactResponse};
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
