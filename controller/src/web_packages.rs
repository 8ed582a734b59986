//! Which Web Application packages count for a release: the one registered
//! for every kind of web server (`artifacts add FILE --component web`) and
//! those the site's Server Manager made per kind (`--web-server`, or picked
//! up by the server's agent). Where releases must be signed, a package
//! counts only once signed release metadata covers it: an admin's token
//! alone never puts a file on the web servers.

use crate::grpc::admin::metadata::verify;
use crate::store::{Store, StoreError};
use tierwise_common::plan::WebPackages;
use tierwise_common::trust::{check_installer, Release};
use tierwise_common::{Role, Version};
use tierwise_runtime::clock::now_ms;

/// How the controller trusts releases: its `--allow-unsigned-releases` and
/// `--release-root` settings.
#[derive(Clone, Debug, Default)]
pub struct ReleaseTrust {
    pub allow_unsigned: bool,
    /// The root fingerprint pinned by flag; without it, the first
    /// imported root is pinned.
    pub release_root: Option<String>,
}

impl ReleaseTrust {
    /// The release metadata in force, verified now from the pinned root,
    /// or why there is none to use.
    pub async fn signed_release(
        &self,
        store: &Store,
    ) -> Result<Result<Release, String>, StoreError> {
        let Some(stored) = store.release_metadata().await? else {
            return Ok(Err("no signed release metadata imported".into()));
        };
        let pin = match &self.release_root {
            Some(root) => Some(root.clone()),
            None => stored.roots.first().map(|first| first.fingerprint()),
        };
        Ok(verify(
            &stored.roots,
            &stored.release,
            now_ms(),
            None,
            pin.as_deref(),
        )
        .map(|(_, release, _)| release)
        .map_err(|e| format!("the release metadata in force does not verify: {e}")))
    }

    /// The packages of `release` that count now.
    pub async fn web_packages(
        &self,
        store: &Store,
        release: Version,
    ) -> Result<WebPackages, StoreError> {
        let text = release.to_string();
        let signed = if self.allow_unsigned {
            None
        } else {
            Some(self.signed_release(store).await?)
        };
        let counts = |sha256: &str, size: u64| match &signed {
            None => true,
            Some(Ok(metadata)) => check_installer(metadata, &text, "web", sha256, size).is_ok(),
            Some(Err(_)) => false,
        };
        let generic = store
            .artifact(&text, Role::Web)
            .await?
            .is_some_and(|(sha256, size)| counts(&sha256, size));
        let kinds = store
            .web_packages(&text)
            .await?
            .into_iter()
            .filter(|p| counts(&p.sha256, p.size))
            .map(|p| p.web_server)
            .collect();
        Ok(WebPackages { generic, kinds })
    }
}
