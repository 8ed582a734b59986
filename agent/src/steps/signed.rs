//! Signed release metadata, checked before any installer runs or any web
//! package is deployed, on an agent that pins a release root
//! (`release_root_fingerprint`). The check itself is the pure
//! `tierwise_common::trust::verify_metadata` and `check_step_installer`;
//! this file fetches their inputs and keeps what was trusted
//! (`release-trust.json` in the state directory), so versions never go
//! back, even across restarts.

use super::download::{DownloadError, Downloader};
use std::path::{Path, PathBuf};
use tierwise_common::action::{StepAction, StepOutcome};
use tierwise_common::trust::{
    check_step_installer, verify_metadata, Envelope, Fetched, Seen, StepInstaller,
};
use tierwise_runtime::clock::now_ms;
use tierwise_transport::files;

/// The agent's side of signed releases.
#[derive(Clone, Debug)]
pub struct ReleaseTrust {
    /// The pinned root fingerprint (64 lowercase hex digits); `None`: this
    /// agent does not check signatures.
    pin: Option<String>,
    state: PathBuf,
}

/// Whether an action runs an installer or deploys a web package.
pub fn installs(action: &StepAction) -> bool {
    matches!(
        action,
        StepAction::InstallComponent { .. } | StepAction::DeployWebApp { .. }
    )
}

impl ReleaseTrust {
    pub fn new(pin: Option<String>, state_dir: &Path) -> Self {
        Self {
            pin,
            state: state_dir.join("release-trust.json"),
        }
    }

    /// Whether this agent checks `action` against signed metadata.
    pub fn applies(&self, action: &StepAction) -> bool {
        self.pin.is_some() && installs(action)
    }

    /// Ok when the step may run: nothing pinned, an action that installs
    /// nothing, or metadata that verifies from the pinned root down to
    /// `artifact`. Otherwise why not (nothing has run).
    pub async fn check(
        &self,
        downloader: &Downloader,
        action: &StepAction,
        artifact: Option<&Path>,
    ) -> Result<(), DownloadError> {
        let Some(pin) = self.pin.as_deref() else {
            return Ok(());
        };
        let (release, component, sha256) = match action {
            StepAction::InstallComponent {
                role,
                version,
                artifact_sha256,
            } => (*version, role.as_str(), artifact_sha256.as_deref()),
            StepAction::DeployWebApp {
                version,
                artifact_sha256,
            } => (*version, "web", artifact_sha256.as_deref()),
            _ => return Ok(()),
        };
        let refused = |why: String| {
            (
                StepOutcome::Failed,
                format!("refused by signed release metadata: {why}; nothing ran"),
            )
        };
        let (Some(sha256), Some(artifact)) = (sha256, artifact) else {
            return Err(refused(format!(
                "this agent pins release root {pin} and runs only signed installers, but the step names none (add the installer with `tierwise artifacts add` and sign it with `tierwise keys release`)"
            )));
        };
        let length = tokio::fs::metadata(artifact)
            .await
            .map_err(|e| refused(format!("cannot read {}: {e}", artifact.display())))?
            .len();
        let wire = downloader.release_metadata().await?;
        if wire.release.is_empty() {
            return Err(refused(
                "the controller holds no signed release metadata (`tierwise releases metadata import`)".into(),
            ));
        }
        let roots = wire
            .roots
            .iter()
            .map(|text| Envelope::parse(text))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| refused(e.to_string()))?;
        let release_envelope =
            Envelope::parse(&wire.release).map_err(|e| refused(e.to_string()))?;
        let seen = self.seen(pin).map_err(refused)?;
        let verified = verify_metadata(
            pin,
            &Fetched {
                roots: &roots,
                release: &release_envelope,
                catalogue: &wire.catalogue,
            },
            now_ms(),
            &seen,
        )
        .map_err(|e| refused(e.to_string()))?;
        // The metadata verified: it is the newest trusted from now on,
        // whatever the installer turns out to be.
        if verified.seen != seen {
            let text = serde_json::to_vec_pretty(&verified.seen).unwrap_or_default();
            files::write_private(&self.state, &text)
                .map_err(|e| refused(format!("cannot record the metadata trusted: {e}")))?;
        }
        check_step_installer(
            &verified,
            &StepInstaller {
                release,
                component,
                sha256,
                length,
            },
        )
        .map_err(|e| refused(e.to_string()))?;
        let trusted = verified.seen;
        tracing::info!(
            %sha256,
            root_version = trusted.root_version,
            release_version = trusted.release_version,
            "installer verified against signed release metadata"
        );
        Ok(())
    }

    /// What was trusted before under `pin`; nothing when this agent never
    /// checked, or checked under another root.
    fn seen(&self, pin: &str) -> Result<Seen, String> {
        let damaged = |why: String| {
            format!(
                "{} is damaged ({why}); it records the newest metadata trusted, so it is not ignored: restore it, or delete it to trust the controller's metadata afresh",
                self.state.display()
            )
        };
        match std::fs::read(&self.state) {
            Ok(bytes) => serde_json::from_slice::<Seen>(&bytes)
                .map_err(|e| damaged(e.to_string()))?
                .under(pin)
                .map_err(damaged),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Seen::default()),
            Err(e) => Err(format!("cannot read {}: {e}", self.state.display())),
        }
    }
}
