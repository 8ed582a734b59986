//! Signed release metadata, in the manner of TUF: what makes an installer
//! trustworthy is a chain the controller cannot forge.
//!
//! - **Root** metadata lists keys and, per role (`root`, `release`), which
//!   of them may sign and how many signatures it takes (the threshold). It
//!   is signed offline by the root keys. Agents pin the SHA-256 of the first
//!   root's payload (its fingerprint), like the CA fingerprint. A new root
//!   (rotation) must be signed by a threshold of the previous root's root
//!   keys and of its own, and its version must be the next one.
//! - **Release** metadata, signed by a threshold of the release keys the
//!   root certifies: the catalogue's SHA-256 and, for every installer, its
//!   SHA-256, length, release and component. It carries a version (never
//!   lower than one seen before: rollback) and an expiry (freeze).
//!
//! Every document is an envelope: the payload (JSON text, kept byte for
//! byte) and signatures over `SIGNING_CONTEXT` followed by the payload, so
//! no canonical JSON is needed. Keys are Ed25519 (ring). Verification is
//! pure: the time and what was seen before are inputs.

mod keys;
mod rollout;
mod step;
mod verify;

pub use keys::{generate_key, key_id, public_key_id, KeyPair};
pub use rollout::{installer_role, signing_finding, unsigned_installers, SigningInput};
pub use step::{check_step_installer, verify_metadata, Fetched, Seen, StepInstaller, Verified};
pub use verify::{check_catalogue, check_installer, trusted_root, verify_release, TrustedRelease};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What every signature covers before the payload.
pub const SIGNING_CONTEXT: &[u8] = b"tierwise signed metadata v1\n";

/// A signed document as it travels and is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The signed JSON, byte for byte.
    pub payload: String,
    pub signatures: Vec<Signature>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// SHA-256 (hex) of the signing key's public key.
    pub keyid: String,
    /// The Ed25519 signature, hex.
    pub sig: String,
}

/// Which keys sign for a role, and how many must.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleKeys {
    pub keyids: Vec<String>,
    pub threshold: u32,
}

/// The root of trust.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// Always `root`.
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
    /// Unix milliseconds after which this root is not trusted.
    pub expires_ms: i64,
    /// Public keys (hex) by key id.
    pub keys: BTreeMap<String, String>,
    pub root: RoleKeys,
    pub release: RoleKeys,
}

/// One installer the release keys vouch for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedInstaller {
    /// The release it installs, e.g. `26.3.100.34058`.
    pub release: String,
    /// `server`, `app_server`, `web` or `client`.
    pub component: String,
    pub sha256: String,
    pub length: u64,
}

/// What the release keys sign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Always `release`.
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
    pub expires_ms: i64,
    /// SHA-256 (hex) of the catalogue file these installers belong to.
    pub catalogue_sha256: String,
    pub installers: Vec<SignedInstaller>,
}

/// Why metadata or an installer is not trusted. Each says what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("the metadata cannot be read: {0}")]
    Malformed(String),
    #[error("the root's fingerprint is {got}, but this agent trusts {pinned}; the root was not made by the keys you pinned")]
    RootFingerprint { pinned: String, got: String },
    #[error("{what}: {have} valid signature(s) of the {need} required from the keys the root certifies for it (signatures of other keys do not count)")]
    Threshold { what: String, have: u32, need: u32 },
    #[error("{what} expired at {at_ms} (Unix ms); sign a new one (a frozen copy is not trusted)")]
    Expired { what: String, at_ms: i64 },
    #[error("{what} has version {got}, but version {seen} was already trusted; metadata never goes back")]
    Rollback { what: String, seen: u64, got: u64 },
    #[error("root version {got} does not follow version {previous}; give every root in between")]
    RootGap { previous: u64, got: u64 },
    #[error("{0}")]
    Installer(String),
}

impl Envelope {
    /// Parses an envelope from its JSON form.
    pub fn parse(text: &str) -> Result<Self, TrustError> {
        serde_json::from_str(text).map_err(|e| TrustError::Malformed(format!("envelope: {e}")))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The SHA-256 (hex) of the payload: a root's fingerprint.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        crate::hex(&Sha256::digest(self.payload.as_bytes()))
    }
}
