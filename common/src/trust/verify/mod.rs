//! Verification: pure, with the time and what was trusted before as
//! inputs. An agent calls `trusted_root`, then `verify_release`, then
//! `check_installer` before it runs anything.

use super::keys::unhex;
use super::{Envelope, Release, RoleKeys, Root, TrustError, SIGNING_CONTEXT};
use ring::signature::{UnparsedPublicKey, ED25519};
use std::collections::{BTreeMap, BTreeSet};

/// Release metadata that verified, with the hash of its payload (to tell a
/// re-signed version apart from the one already trusted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedRelease {
    pub release: Release,
    pub payload_sha256: String,
}

/// The root to trust now: the first root of `chain` must have the pinned
/// fingerprint and be signed by a threshold of its own root keys; each
/// later one must be the next version and be signed by a threshold of the
/// previous root's root keys and of its own; the last must not have
/// expired, nor be older than the newest root trusted before
/// (`seen_version`): a chain cut short at an old root, whose keys may have
/// been retired for a reason, is refused.
pub fn trusted_root(
    pinned_fingerprint: &str,
    chain: &[Envelope],
    now_ms: i64,
    seen_version: Option<u64>,
) -> Result<Root, TrustError> {
    let first = chain
        .first()
        .ok_or_else(|| TrustError::Malformed("no root metadata".into()))?;
    let got = first.fingerprint();
    if !got.eq_ignore_ascii_case(pinned_fingerprint.trim()) {
        return Err(TrustError::RootFingerprint {
            pinned: pinned_fingerprint.trim().to_owned(),
            got,
        });
    }
    let mut root: Root = parse(first, "root")?;
    check_role(&root, &root.root, "root")?;
    check_role(&root, &root.release, "release")?;
    require(
        first,
        &root.keys,
        &root.root,
        &format!("root version {}", root.version),
    )?;
    for next in &chain[1..] {
        let newer: Root = parse(next, "root")?;
        // A root of the highest version has no next one (no overflow).
        if root.version.checked_add(1) != Some(newer.version) {
            return Err(TrustError::RootGap {
                previous: root.version,
                got: newer.version,
            });
        }
        check_role(&newer, &newer.root, "root")?;
        check_role(&newer, &newer.release, "release")?;
        let what = format!("root version {}", newer.version);
        require(
            next,
            &root.keys,
            &root.root,
            &format!("{what} (by the previous root's keys)"),
        )?;
        require(
            next,
            &newer.keys,
            &newer.root,
            &format!("{what} (by its own keys)"),
        )?;
        root = newer;
    }
    if let Some(seen) = seen_version.filter(|seen| *seen > root.version) {
        return Err(TrustError::Rollback {
            what: "the root".into(),
            seen,
            got: root.version,
        });
    }
    if root.expires_ms <= now_ms {
        return Err(TrustError::Expired {
            what: format!("root version {}", root.version),
            at_ms: root.expires_ms,
        });
    }
    Ok(root)
}

/// Release metadata signed by a threshold of the release keys `root`
/// certifies, not expired, and not older than what was trusted before
/// (`seen`: its version and payload hash).
pub fn verify_release(
    root: &Root,
    envelope: &Envelope,
    now_ms: i64,
    seen: Option<(u64, &str)>,
) -> Result<TrustedRelease, TrustError> {
    require(envelope, &root.keys, &root.release, "the release metadata")?;
    let release: Release = parse(envelope, "release")?;
    let what = format!("release metadata version {}", release.version);
    if release.expires_ms <= now_ms {
        return Err(TrustError::Expired {
            what,
            at_ms: release.expires_ms,
        });
    }
    let payload_sha256 = envelope.fingerprint();
    if let Some((seen_version, seen_sha256)) = seen {
        if release.version < seen_version
            || (release.version == seen_version && payload_sha256 != seen_sha256)
        {
            return Err(TrustError::Rollback {
                what: "the release metadata".into(),
                seen: seen_version,
                got: release.version,
            });
        }
    }
    Ok(TrustedRelease {
        release,
        payload_sha256,
    })
}

/// The catalogue in use must be the one the release metadata was signed
/// for.
pub fn check_catalogue(release: &Release, sha256: &str) -> Result<(), TrustError> {
    if release.catalogue_sha256.eq_ignore_ascii_case(sha256) {
        Ok(())
    } else {
        Err(TrustError::Installer(format!(
            "the catalogue {sha256} is not the one release metadata version {} was signed for ({})",
            release.version, release.catalogue_sha256
        )))
    }
}

/// The installer a step would run must be in the signed metadata with
/// this hash, length, release and component: one signed for another
/// release or component (mix-and-match) is refused.
pub fn check_installer(
    release: &Release,
    for_release: &str,
    component: &str,
    sha256: &str,
    length: u64,
) -> Result<(), TrustError> {
    let signed: Vec<_> = release
        .installers
        .iter()
        .filter(|i| i.sha256.eq_ignore_ascii_case(sha256))
        .collect();
    if signed.is_empty() {
        return Err(TrustError::Installer(format!(
            "installer {sha256} is not in the signed release metadata (version {}); it was not signed for any release",
            release.version
        )));
    }
    let Some(installer) = signed
        .iter()
        .find(|i| i.release == for_release && i.component == component)
    else {
        let signed_for: Vec<String> = signed
            .iter()
            .map(|i| format!("{} {}", i.component, i.release))
            .collect();
        return Err(TrustError::Installer(format!(
            "installer {sha256} is signed for {}, not for {component} {for_release}",
            signed_for.join(", ")
        )));
    };
    if installer.length != length {
        return Err(TrustError::Installer(format!(
            "installer {sha256} is signed with {} bytes, but the file has {length}",
            installer.length
        )));
    }
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(envelope: &Envelope, kind: &str) -> Result<T, TrustError> {
    let value: serde_json::Value = serde_json::from_str(&envelope.payload)
        .map_err(|e| TrustError::Malformed(format!("{kind} metadata: {e}")))?;
    if value.get("type").and_then(|t| t.as_str()) != Some(kind) {
        return Err(TrustError::Malformed(format!(
            "expected {kind} metadata, got `{}`",
            value
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or("no type")
        )));
    }
    serde_json::from_value(value)
        .map_err(|e| TrustError::Malformed(format!("{kind} metadata: {e}")))
}

/// A role names keys the root lists, and a threshold it can reach.
fn check_role(root: &Root, role: &RoleKeys, name: &str) -> Result<(), TrustError> {
    let distinct: BTreeSet<&String> = role.keyids.iter().collect();
    if role.threshold == 0 || role.threshold as usize > distinct.len() {
        return Err(TrustError::Malformed(format!(
            "root version {}: the {name} threshold {} cannot be met by its {} key(s)",
            root.version,
            role.threshold,
            distinct.len()
        )));
    }
    if let Some(missing) = role.keyids.iter().find(|id| !root.keys.contains_key(*id)) {
        return Err(TrustError::Malformed(format!(
            "root version {}: the {name} role names key {missing}, which the root does not list",
            root.version
        )));
    }
    Ok(())
}

/// At least `role.threshold` distinct keys of `role` signed the payload.
fn require(
    envelope: &Envelope,
    keys: &BTreeMap<String, String>,
    role: &RoleKeys,
    what: &str,
) -> Result<(), TrustError> {
    let mut message = SIGNING_CONTEXT.to_vec();
    message.extend_from_slice(envelope.payload.as_bytes());
    let allowed: BTreeSet<&String> = role.keyids.iter().collect();
    let mut valid = BTreeSet::new();
    for signature in &envelope.signatures {
        if !allowed.contains(&signature.keyid) || valid.contains(&signature.keyid) {
            continue;
        }
        let (Some(public), Some(sig)) = (
            keys.get(&signature.keyid).and_then(|k| unhex(k)),
            unhex(&signature.sig),
        ) else {
            continue;
        };
        // The key must be the one its id names.
        if super::keys::key_id(&public) != signature.keyid {
            continue;
        }
        if UnparsedPublicKey::new(&ED25519, &public)
            .verify(&message, &sig)
            .is_ok()
        {
            valid.insert(signature.keyid.clone());
        }
    }
    let have = u32::try_from(valid.len()).unwrap_or(u32::MAX);
    if have < role.threshold {
        return Err(TrustError::Threshold {
            what: what.to_owned(),
            have,
            need: role.threshold,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
