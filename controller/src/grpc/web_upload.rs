//! The primary server's agent hands over the Web Application its Server
//! Manager generated. Accepted only while a rollout of that server waits
//! for exactly that package (the kind of web server, the target release),
//! and only when written after the new Server Manager was installed: a
//! server's agent can never push a package nobody is generating.

use super::auth;
use super::ApiError;
use crate::artifacts::ArtifactStore;
use crate::store::web_packages::NewWebPackage;
use crate::store::Store;
use tierwise_common::WebServerKind;
use tierwise_proto::v1::{WebPackageChunk, WebPackageReceipt};
use tierwise_runtime::clock::now_ms;
use tonic::{Request, Response, Status};
use tracing::info;

/// The largest Web Application package accepted (the vendor's are tens of
/// MiB).
pub const MAX_WEB_PACKAGE_BYTES: u64 = 1024 * 1024 * 1024;
/// File times on a share may run a little behind the controller's clock.
const CLOCK_GRACE_MS: i64 = 5_000;

pub async fn upload_web_package(
    store: &Store,
    artifacts: &ArtifactStore,
    request: Request<tonic::Streaming<WebPackageChunk>>,
) -> Result<Response<WebPackageReceipt>, Status> {
    let identity = auth::agent(&request)?;
    let host = identity.host_id.clone();
    let mut chunks = request.into_inner();
    let first = chunks
        .message()
        .await?
        .ok_or_else(|| ApiError::InvalidArgument("the upload is empty".into()))?;
    let kind = WebServerKind::parse(&first.web_server).ok_or_else(|| {
        ApiError::InvalidArgument("name the kind of web server: iis, apache or nginx".into())
    })?;
    let awaited = store
        .awaited_web_package(&host, kind)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| {
            ApiError::FailedPrecondition(format!(
                "no rollout waits for a Web Application for {} from {host}; a package is taken only while its generation is under way",
                kind.as_str()
            ))
        })?;
    let Some(modified_ms) = tierwise_common::reported::wall_time(first.modified_ms, now_ms())
    else {
        return Err(ApiError::InvalidArgument(format!(
            "the package's modification time ({} ms since 1970) is not a plausible time; check the clock of {host}",
            first.modified_ms
        ))
        .into());
    };
    if modified_ms.saturating_add(CLOCK_GRACE_MS) < awaited.since_ms {
        return Err(ApiError::FailedPrecondition(format!(
            "this {} package was written before the Server Manager of {} was installed (rollout {}): it is an older one; generate it again",
            kind.as_str(),
            awaited.release,
            awaited.rollout_id
        ))
        .into());
    }
    let file_name = super::printable(&first.file_name, 255);
    let io = |e: std::io::Error| ApiError::Unavailable(format!("the artifact store: {e}"));
    let mut incoming = artifacts.begin().await.map_err(io)?;
    incoming.write(&first.data).await.map_err(io)?;
    let mut size = first.data.len() as u64;
    while let Some(chunk) = chunks.message().await? {
        size += chunk.data.len() as u64;
        if size > MAX_WEB_PACKAGE_BYTES {
            return Err(ApiError::InvalidArgument(format!(
                "a Web Application package is at most {MAX_WEB_PACKAGE_BYTES} bytes"
            ))
            .into());
        }
        incoming.write(&chunk.data).await.map_err(io)?;
    }
    let (sha256, size) = artifacts
        .finish(incoming, |_| Ok(()))
        .await
        .map_err(ApiError::Unavailable)?;
    let release = awaited.release.to_string();
    // The agent offers it again after a restart: recorded once.
    let known = store
        .web_package_sha256(&release, kind)
        .await
        .map_err(ApiError::from)?;
    if known.as_deref() != Some(sha256.as_str()) {
        store
            .record_web_package(
                &NewWebPackage {
                    release: &release,
                    web_server: kind,
                    sha256: &sha256,
                    file_name: &file_name,
                    size,
                },
                &format!("agent {host}"),
                now_ms(),
            )
            .await
            .map_err(ApiError::from)?;
        info!(%host, web_server = kind.as_str(), %release, %sha256, size, "Web Application handed over by the server's agent");
    }
    Ok(Response::new(WebPackageReceipt {
        sha256,
        size,
        release,
    }))
}
