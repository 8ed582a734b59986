//! Fetching installers from the controller's content-addressed store: in
//! chunks, resuming a partial download, and verifying the SHA-256 before the
//! file may be used. A file that does not match is deleted and nothing runs.

use crate::identity::Identity;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tierwise_common::action::StepOutcome;
use tierwise_proto::v1::{
    agent_service_client::AgentServiceClient, DownloadArtifactRequest, ReleaseMetadataRequest,
    SignedMetadata,
};
use tierwise_proto::MAX_CONTROLLER_MESSAGE_BYTES;
use tierwise_transport::client::ControllerAddress;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::warn;

#[derive(Clone, Debug)]
pub struct Downloader {
    controller: ControllerAddress,
    /// Set once the agent has its certificate.
    identity: Arc<OnceLock<Identity>>,
    dir: PathBuf,
}

/// Why a download did not produce a usable file.
pub type DownloadError = (StepOutcome, String);

/// The SHA-256 of a file, hashed on the blocking pool: an installer of
/// hundreds of MB would otherwise hold the agent's one runtime thread.
async fn sha256_of(path: &Path) -> std::io::Result<String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
        Ok(tierwise_common::hex(&hasher.finalize()))
    })
    .await
    .map_err(std::io::Error::other)?
}

impl Downloader {
    pub fn new(controller: &ControllerAddress, state_dir: &Path) -> Self {
        Self {
            controller: controller.clone(),
            identity: Arc::new(OnceLock::new()),
            dir: state_dir.join("artifacts"),
        }
    }

    /// Downloads use the agent's certificate from now on.
    pub fn set_identity(&self, identity: Identity) {
        let _ = self.identity.set(identity);
    }

    /// A client of the controller with the agent's certificate.
    async fn client(
        &self,
        purpose: &str,
    ) -> Result<AgentServiceClient<tonic::transport::Channel>, DownloadError> {
        let transient = |why: String| (StepOutcome::FailedTransient, why);
        let Some(identity) = self.identity.get() else {
            return Err(transient("the agent has no certificate yet".into()));
        };
        let channel =
            crate::identity::connect(&self.controller, identity.current().config.clone(), |e| e)
                .await
                .map_err(|e| {
                    transient(format!(
                        "cannot reach the controller to {purpose}: {}",
                        tierwise_runtime::report::error_chain(&e)
                    ))
                })?;
        Ok(
            AgentServiceClient::new(channel)
                .max_decoding_message_size(MAX_CONTROLLER_MESSAGE_BYTES),
        )
    }

    /// The signed release metadata and the catalogue the controller holds.
    pub async fn release_metadata(&self) -> Result<SignedMetadata, DownloadError> {
        let mut client = self.client("fetch the signed release metadata").await?;
        client
            .release_metadata(ReleaseMetadataRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| {
                (
                    StepOutcome::FailedTransient,
                    format!(
                        "the controller did not give the signed release metadata: {}",
                        status.message()
                    ),
                )
            })
    }

    /// Offers a Web Application the Server Manager generated to the
    /// controller; its receipt, or why it was not taken.
    pub async fn upload_web_package(
        &self,
        kind: tierwise_common::WebServerKind,
        path: &Path,
        modified_ms: i64,
    ) -> Result<tierwise_proto::v1::WebPackageReceipt, String> {
        use tierwise_proto::v1::WebPackageChunk;
        let mut client = self
            .client("hand over the Web Application")
            .await
            .map_err(|(_, why)| why)?;
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let reading = tokio::spawn(async move {
            let mut buffer = vec![0u8; 64 * 1024];
            let mut first = Some(WebPackageChunk {
                web_server: kind.as_str().to_owned(),
                file_name,
                modified_ms,
                data: Vec::new(),
            });
            loop {
                let n = file.read(&mut buffer).await?;
                let mut chunk = first.take().unwrap_or_default();
                chunk.data = buffer[..n].to_vec();
                if tx.send(chunk).await.is_err() || n == 0 {
                    return Ok::<(), std::io::Error>(());
                }
            }
        });
        let answer = client
            .upload_web_package(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| status.message().to_owned());
        reading.abort();
        answer
    }

    /// The verified local file of `sha256`, downloading what is missing.
    pub async fn fetch(&self, sha256: &str) -> Result<PathBuf, DownloadError> {
        let failed = |why: String| (StepOutcome::Failed, why);
        let transient = |why: String| (StepOutcome::FailedTransient, why);
        if !tierwise_common::is_sha256(sha256) {
            return Err(failed(format!("`{sha256}` is not a SHA-256; nothing ran")));
        }
        let done = self.dir.join(sha256);
        if done.is_file() {
            match sha256_of(&done).await {
                Ok(actual) if actual == sha256 => {
                    tierwise_transport::files::private_file(&done).map_err(|e| {
                        failed(format!("cannot make {} private: {e}", done.display()))
                    })?;
                    return Ok(done);
                }
                _ => {
                    let _ = tokio::fs::remove_file(&done).await;
                }
            }
        }
        tierwise_transport::files::private_dir(&self.dir)
            .map_err(|e| failed(format!("cannot create {}: {e}", self.dir.display())))?;
        let part = self.dir.join(format!("{sha256}.part"));
        // A partial download resumes, whoever began it: made the agent's
        // own first, as a new one would be.
        if part.exists() {
            tierwise_transport::files::private_file(&part)
                .map_err(|e| failed(format!("cannot make {} private: {e}", part.display())))?;
        }
        let mut offset = tokio::fs::metadata(&part)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        let mut client = self.client("download the installer").await?;
        let mut stream = loop {
            let answer = client
                .download_artifact(DownloadArtifactRequest {
                    sha256: sha256.to_owned(),
                    offset,
                })
                .await;
            match answer {
                Ok(stream) => break stream.into_inner(),
                Err(status) if status.code() == tonic::Code::NotFound => {
                    return Err(failed(format!("{}; nothing ran", status.message())));
                }
                // A partial file longer than the installer (not a piece of
                // it): dropped, and the download starts from the beginning.
                Err(status) if status.code() == tonic::Code::InvalidArgument && offset > 0 => {
                    warn!(
                        %sha256,
                        offset,
                        reason = status.message(),
                        "the partial download does not fit the installer; starting again"
                    );
                    tokio::fs::remove_file(&part)
                        .await
                        .map_err(|e| failed(format!("cannot remove {}: {e}", part.display())))?;
                    offset = 0;
                }
                Err(status) => {
                    return Err(transient(format!("download refused: {}", status.message())));
                }
            }
        };
        let mut options = tokio::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options
            .open(&part)
            .await
            .map_err(|e| failed(format!("cannot write {}: {e}", part.display())))?;
        let mut received = offset;
        loop {
            match stream.message().await {
                Ok(Some(chunk)) => {
                    file.write_all(&chunk.data)
                        .await
                        .map_err(|e| failed(format!("cannot write {}: {e}", part.display())))?;
                    received += chunk.data.len() as u64;
                }
                Ok(None) => break,
                Err(status) => {
                    let _ = file.flush().await;
                    return Err(transient(format!(
                        "the download stopped after {received} bytes ({}); the next attempt resumes there",
                        status.message()
                    )));
                }
            }
        }
        file.sync_all()
            .await
            .map_err(|e| failed(format!("cannot write {}: {e}", part.display())))?;
        drop(file);
        let actual = sha256_of(&part)
            .await
            .map_err(|e| failed(format!("cannot read {}: {e}", part.display())))?;
        if actual != sha256 {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(failed(format!(
                "the downloaded installer's SHA-256 is {actual}, expected {sha256}; it was deleted and nothing ran"
            )));
        }
        tokio::fs::rename(&part, &done)
            .await
            .map_err(|e| failed(format!("cannot store {}: {e}", done.display())))?;
        tracing::info!(%sha256, bytes = received, "installer downloaded and verified");
        Ok(done)
    }
}
