//! The whole check an agent makes before it runs an installer or deploys a
//! web package: the root chain from its pin, the release metadata, the
//! catalogue, and the installer the step names. Pure: the metadata as
//! fetched, the time and what was trusted before are inputs; what to
//! remember afterwards is the output.

use super::{check_catalogue, check_installer, trusted_root, verify_release, Envelope, TrustError};
use crate::{Catalogue, Version};
use serde::{Deserialize, Serialize};

/// The newest metadata an agent has trusted. Kept on disk: versions never
/// go back, even across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// The pinned root these versions were trusted under.
    #[serde(default)]
    pub root_fingerprint: Option<String>,
    pub root_version: Option<u64>,
    pub release_version: Option<u64>,
    /// The SHA-256 of that release metadata's payload: the same version
    /// signed again with other content is a rollback too.
    pub release_sha256: Option<String>,
}

impl Seen {
    /// What was seen under `pinned_root`: nothing when it was recorded
    /// under another root (the pin was changed on purpose, in the agent's
    /// own configuration); an error when the record is half written.
    pub fn under(self, pinned_root: &str) -> Result<Seen, String> {
        if self.release_version.is_some() != self.release_sha256.is_some() {
            return Err("it names a release metadata version without its hash, or a hash without its version".into());
        }
        match &self.root_fingerprint {
            Some(root) if !root.eq_ignore_ascii_case(pinned_root.trim()) => Ok(Seen::default()),
            _ => Ok(self),
        }
    }
}

/// The signed metadata as the controller serves it.
#[derive(Clone, Debug)]
pub struct Fetched<'a> {
    /// Root metadata, oldest first (the first has the pinned fingerprint).
    pub roots: &'a [Envelope],
    pub release: &'a Envelope,
    /// The catalogue in force, byte for byte.
    pub catalogue: &'a str,
}

/// The installer a step would use.
#[derive(Clone, Copy, Debug)]
pub struct StepInstaller<'a> {
    pub release: Version,
    /// `server`, `app_server`, `web` or `client`.
    pub component: &'a str,
    pub sha256: &'a str,
    pub length: u64,
}

/// Metadata that verified from the pinned root, with the catalogue it
/// was signed for.
#[derive(Clone, Debug)]
pub struct Verified {
    pub release: super::Release,
    pub catalogue: Catalogue,
    /// What to remember as seen from now on.
    pub seen: Seen,
}

/// Verifies the metadata, in order: the chain from the pinned root, the
/// release metadata (threshold, expiry, rollback), and that the catalogue
/// is the signed one.
pub fn verify_metadata(
    pinned_root: &str,
    fetched: &Fetched<'_>,
    now_ms: i64,
    seen: &Seen,
) -> Result<Verified, TrustError> {
    let root = trusted_root(pinned_root, fetched.roots, now_ms, seen.root_version)?;
    let previous = match (seen.release_version, seen.release_sha256.as_deref()) {
        (Some(version), Some(sha)) => Some((version, sha)),
        _ => None,
    };
    let trusted = verify_release(&root, fetched.release, now_ms, previous)?;
    let catalogue_sha256 = {
        use sha2::{Digest, Sha256};
        crate::hex(&Sha256::digest(fetched.catalogue.as_bytes()))
    };
    check_catalogue(&trusted.release, &catalogue_sha256)?;
    let catalogue = Catalogue::parse(fetched.catalogue, "the signed catalogue")
        .map_err(|e| TrustError::Malformed(e.to_string()))?;
    Ok(Verified {
        seen: Seen {
            root_fingerprint: Some(pinned_root.trim().to_ascii_lowercase()),
            root_version: Some(root.version),
            release_version: Some(trusted.release.version),
            release_sha256: Some(trusted.payload_sha256),
        },
        release: trusted.release,
        catalogue,
    })
}

/// The installer a step would use must be signed for its release and
/// component, with this hash and length, and the release must be in the
/// signed catalogue.
pub fn check_step_installer(
    verified: &Verified,
    installer: &StepInstaller<'_>,
) -> Result<(), TrustError> {
    if verified.catalogue.get(installer.release).is_none() {
        return Err(TrustError::Installer(format!(
            "release {} is not in the signed catalogue",
            installer.release
        )));
    }
    check_installer(
        &verified.release,
        &installer.release.to_string(),
        installer.component,
        installer.sha256,
        installer.length,
    )
}
