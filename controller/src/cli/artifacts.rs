//! `tierwise artifacts add`: send an installer to the controller's store.

use super::status_error;
use anyhow::Context;
use std::path::Path;
use tierwise_common::{Role, Version};
use tierwise_proto::v1::{Role as WireRole, UploadArtifactChunk};
use tokio::io::AsyncReadExt;

pub async fn add(
    client: &mut crate::cli::AdminClient,
    file: &Path,
    release: &str,
    role: Role,
    web_server: Option<tierwise_common::WebServerKind>,
) -> anyhow::Result<String> {
    let release = Version::parse(release).map_err(|e| anyhow::anyhow!("--release: {e}"))?;
    let mut reader = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot read {}", file.display()))?;
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let reading = tokio::spawn(async move {
        let mut buffer = vec![0u8; crate::artifacts::CHUNK_BYTES];
        let mut first = Some(UploadArtifactChunk {
            release: release.to_string(),
            role: WireRole::from(role).into(),
            file_name,
            data: Vec::new(),
            web_server: web_server
                .map(|k| k.as_str().to_owned())
                .unwrap_or_default(),
        });
        loop {
            let n = reader.read(&mut buffer).await?;
            let mut chunk = first.take().unwrap_or_default();
            chunk.data = buffer[..n].to_vec();
            if tx.send(chunk).await.is_err() || n == 0 {
                return Ok::<(), std::io::Error>(());
            }
        }
    });
    let response = client
        .upload_artifact(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(status_error)?
        .into_inner();
    reading.await.context("reading the file")??;
    if let Some(kind) = web_server {
        return Ok(format!(
            "Stored {} as the Web Application of {release} for {} web servers: SHA-256 {}, {} bytes. Each {} web host gets it; where releases are signed, it counts once signed metadata covers it.\n",
            file.display(),
            kind.as_str(),
            response.sha256,
            response.size,
            kind.as_str()
        ));
    }
    Ok(format!(
        "Stored {} as the {role} installer of {release}: SHA-256 {}, {} bytes{}.\n",
        file.display(),
        response.sha256,
        response.size,
        if response.checked_against_catalogue {
            ", matching the catalogue"
        } else {
            " (the catalogue names no checksum for it)"
        }
    ))
}
