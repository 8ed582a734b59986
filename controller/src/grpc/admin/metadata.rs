//! Signed release metadata: imported after the same checks an agent makes
//! (from the first root's own fingerprint, since the controller pins
//! nothing), shown, and used to decide whether a rollout's installers are
//! signed. The controller cannot forge it: it only stores what the offline
//! keys signed.

use super::{actor, AdminApi};
use crate::grpc::ApiError;
use crate::store::release_metadata::{MetadataImport, StoredMetadata};
use sha2::{Digest, Sha256};
use tierwise_common::trust::{
    check_catalogue, trusted_root, verify_release, Envelope, Release, Root, TrustError,
};
use tierwise_proto::v1::{
    GetReleaseMetadataRequest, ImportReleaseMetadataRequest, ReleaseMetadataView,
    SignedInstallerView,
};
use tierwise_runtime::clock::now_ms;
use tonic::{Request, Response, Status};
use tracing::info;

/// Root metadata an import may carry (a rotation history).
pub const MAX_ROOTS: usize = 32;
/// The metadata and the catalogue together must fit in one message to an
/// agent, with room to spare.
pub const MAX_METADATA_BYTES: usize = 768 * 1024;

/// The SHA-256 (hex) of a catalogue document.
pub fn catalogue_sha256(document: &str) -> String {
    tierwise_common::hex(&Sha256::digest(document.as_bytes()))
}

/// Verifies stored or offered metadata at `now_ms` from the pinned root
/// (`None`: its own first root); `seen` is what was in force before
/// (rollback).
pub(crate) fn verify(
    roots: &[Envelope],
    release: &Envelope,
    now_ms: i64,
    seen: Option<&(Root, Release, String)>,
    pin: Option<&str>,
) -> Result<(Root, Release, String), TrustError> {
    let first = roots
        .first()
        .ok_or_else(|| TrustError::Malformed("no root metadata".into()))?
        .fingerprint();
    let pin = pin.map_or(first, str::to_owned);
    let root = trusted_root(&pin, roots, now_ms, seen.map(|s| s.0.version))?;
    let trusted = verify_release(
        &root,
        release,
        now_ms,
        seen.map(|s| (s.1.version, s.2.as_str())),
    )?;
    Ok((root, trusted.release, pin))
}

/// The stored metadata's contents whatever the time (to compare versions
/// with); `None` when it never verified.
fn contents(stored: &StoredMetadata) -> Option<(Root, Release, String)> {
    let (root, release, _) = verify(&stored.roots, &stored.release, i64::MIN, None, None).ok()?;
    Some((root, release, stored.release.fingerprint()))
}

/// How the controller came to trust a root.
const PINNED_BY_FLAG: &str = "--release-root-fingerprint";
const PINNED_BY_FIRST_IMPORT: &str = "first import";

impl AdminApi {
    /// The root release metadata must come from, and what pinned it: the
    /// serve flag, else the root of the metadata imported first (an admin
    /// token cannot swap the root afterwards; restarting the controller
    /// with the flag can).
    fn pinned_root(&self, stored: Option<&StoredMetadata>) -> Option<(String, &'static str)> {
        match &self.release_root {
            Some(root) => Some((root.clone(), PINNED_BY_FLAG)),
            None => stored
                .and_then(|s| s.roots.first())
                .map(|first| (first.fingerprint(), PINNED_BY_FIRST_IMPORT)),
        }
    }

    /// The release metadata in force, verified now from the pinned root, or
    /// why there is none to use.
    pub(super) async fn signed_release(&self) -> Result<Result<Release, String>, ApiError> {
        Ok(self.trust().signed_release(&self.store).await?)
    }

    /// How this controller trusts releases.
    pub(super) fn trust(&self) -> crate::web_packages::ReleaseTrust {
        crate::web_packages::ReleaseTrust {
            allow_unsigned: self.allow_unsigned,
            release_root: self.release_root.clone(),
        }
    }

    async fn metadata_view(&self) -> Result<ReleaseMetadataView, ApiError> {
        let mut view = ReleaseMetadataView {
            allow_unsigned: self.allow_unsigned,
            ..Default::default()
        };
        let stored = self.store.release_metadata().await?;
        if let Some((root, by)) = self.pinned_root(stored.as_ref()) {
            view.pinned_root = root;
            view.pinned_by = by.to_owned();
        }
        let Some(stored) = stored else {
            return Ok(view);
        };
        let catalogue = self
            .store
            .current_catalogue()
            .await?
            .map(|c| catalogue_sha256(&c.document));
        view.present = true;
        view.imported_ms = stored.imported_ms;
        if let Some((root, release, _)) = contents(&stored) {
            view.root_fingerprint = stored.roots[0].fingerprint();
            view.root_version = root.version;
            view.root_expires_ms = root.expires_ms;
            view.release_version = release.version;
            view.release_expires_ms = release.expires_ms;
            view.catalogue_matches = catalogue
                .as_deref()
                .is_some_and(|sha| release.catalogue_sha256.eq_ignore_ascii_case(sha));
            view.catalogue_sha256 = release.catalogue_sha256.clone();
            view.installers = release
                .installers
                .iter()
                .map(|i| SignedInstallerView {
                    release: i.release.clone(),
                    component: i.component.clone(),
                    sha256: i.sha256.clone(),
                    length: i.length,
                })
                .collect();
        }
        if let Err(e) = verify(
            &stored.roots,
            &stored.release,
            now_ms(),
            None,
            Some(&view.pinned_root),
        ) {
            view.problem = e.to_string();
        } else if !view.catalogue_matches {
            view.problem = "the catalogue in force is not the one the metadata was signed for; import the signed catalogue or sign this one".into();
        }
        Ok(view)
    }
}

pub(super) async fn import_release_metadata(
    api: &AdminApi,
    request: Request<ImportReleaseMetadataRequest>,
) -> Result<Response<ReleaseMetadataView>, Status> {
    let actor = actor(&request)?;
    let request = request.into_inner();
    let invalid = |message: String| Status::from(ApiError::InvalidArgument(message));
    if request.roots.is_empty() {
        return Err(invalid(
            "give the root metadata (`--root root-1.json`, then every later root in order)".into(),
        ));
    }
    if request.roots.len() > MAX_ROOTS {
        return Err(invalid(format!(
            "{} root files; at most {MAX_ROOTS}",
            request.roots.len()
        )));
    }
    let catalogue = api
        .store
        .current_catalogue()
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| {
            ApiError::FailedPrecondition(
                "no release catalogue imported yet: import the catalogue the metadata was signed for first (`tierwise releases import FILE`)".into(),
            )
        })?;
    let size = request.roots.iter().map(String::len).sum::<usize>()
        + request.release.len()
        + catalogue.document.len();
    if size > MAX_METADATA_BYTES {
        return Err(invalid(format!(
            "the metadata and the catalogue come to {size} bytes; at most {MAX_METADATA_BYTES} reach an agent in one message"
        )));
    }
    let roots = request
        .roots
        .iter()
        .enumerate()
        .map(|(i, text)| {
            Envelope::parse(text).map_err(|e| invalid(format!("root file {}: {e}", i + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let release =
        Envelope::parse(&request.release).map_err(|e| invalid(format!("release file: {e}")))?;
    let stored = api.store.release_metadata().await.map_err(ApiError::from)?;
    let offered = roots.first().map(Envelope::fingerprint).unwrap_or_default();
    let pinned = api.pinned_root(stored.as_ref());
    if let Some((root, by)) = &pinned {
        if !root.eq_ignore_ascii_case(&offered) {
            return Err(ApiError::FailedPrecondition(format!(
                "this controller accepts release metadata only from root {root} (pinned by {by}), and this metadata starts from root {offered}; nothing was imported. Give every root from {root} on (a rotation is a later root signed by the earlier one), or, to start over with another root, restart the controller with --release-root-fingerprint"
            ))
            .into());
        }
    }
    // What was in force before, when it comes from the same root: versions
    // never go back (agents would refuse them anyway).
    let previous = stored.and_then(|stored| {
        (stored.roots.first().map(Envelope::fingerprint).as_deref() == Some(offered.as_str()))
            .then(|| contents(&stored))
            .flatten()
    });
    let now = now_ms();
    let (root, signed, pin) = verify(&roots, &release, now, previous.as_ref(), None)
        .map_err(|e| invalid(format!("{e}; nothing was imported")))?;
    check_catalogue(&signed, &catalogue_sha256(&catalogue.document)).map_err(|e| {
        Status::from(ApiError::FailedPrecondition(format!(
            "{e}: import the catalogue it was signed for first (`tierwise releases import FILE`); nothing was imported"
        )))
    })?;
    let details = format!(
        "root {pin} version {}, release metadata version {} with {} installer(s)",
        root.version,
        signed.version,
        signed.installers.len()
    );
    api.store
        .import_release_metadata(
            &roots,
            &release,
            MetadataImport {
                root_version: root.version,
                release_version: signed.version,
                actor: &actor,
                details: &details,
                now_ms: now,
            },
        )
        .await
        .map_err(ApiError::from)?;
    info!(%actor, root_version = root.version, release_version = signed.version, "release metadata imported");
    Ok(Response::new(api.metadata_view().await?))
}

pub(super) async fn get_release_metadata(
    api: &AdminApi,
    _request: Request<GetReleaseMetadataRequest>,
) -> Result<Response<ReleaseMetadataView>, Status> {
    Ok(Response::new(api.metadata_view().await?))
}
