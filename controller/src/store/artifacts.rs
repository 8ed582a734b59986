//! The installers the controller holds, as one list: a component's
//! installer per release (`artifacts`) and the Web Applications a site's
//! Server Manager made per kind of web server (`web_packages`). Listing and
//! removing them; the files themselves are the artifact store's. And which
//! steps of a host name a file, for deciding whether it may download it.

use super::{audit_in, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;
use tierwise_common::rollout::{HostStep, RolloutState, StepState};
use tierwise_common::{Role, WebServerKind};

/// A stored installer or Web Application package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredArtifact {
    pub release: String,
    pub role: Role,
    /// A package made for one kind of web server; `None`: the component's
    /// installer.
    pub web_server: Option<WebServerKind>,
    pub sha256: String,
    pub file_name: String,
    pub size: u64,
    /// Empty for installers stored before who added them was kept.
    pub added_by: String,
    pub added_ms: i64,
}

impl StoredArtifact {
    /// How the audit log and messages name it: `client 9.1.0.1`,
    /// `web iis 9.1.0.1`.
    pub fn subject(&self) -> String {
        match self.web_server {
            Some(kind) => format!("web {} {}", kind.as_str(), self.release),
            None => format!("{} {}", self.role, self.release),
        }
    }
}

fn from_row(row: &AnyRow) -> Result<StoredArtifact, StoreError> {
    let role: String = row.try_get("role")?;
    let kind: String = row.try_get("web_server")?;
    let size: i64 = row.try_get("size")?;
    let release: String = row.try_get("release")?;
    let corrupt = |what: String| StoreError::Corrupt(format!("installer of {release}: {what}"));
    Ok(StoredArtifact {
        role: role
            .parse()
            .map_err(|_| corrupt(format!("role `{role}`")))?,
        web_server: match kind.as_str() {
            "" => None,
            text => {
                Some(WebServerKind::parse(text).ok_or_else(|| corrupt(format!("kind `{text}`")))?)
            }
        },
        sha256: row.try_get("sha256")?,
        file_name: row.try_get("file_name")?,
        size: u64::try_from(size).unwrap_or_default(),
        added_by: row.try_get("added_by")?,
        added_ms: row.try_get("added_ms")?,
        release,
    })
}

impl Store {
    /// Every stored installer and package, by release, role and kind.
    pub async fn stored_artifacts(&self) -> Result<Vec<StoredArtifact>, StoreError> {
        let rows = sqlx::query(
            "SELECT release, role, '' AS web_server, sha256, file_name, size, added_by, added_ms FROM artifacts \
             UNION ALL \
             SELECT release, 'web' AS role, web_server, sha256, file_name, size, added_by, added_ms FROM web_packages \
             ORDER BY release, role, web_server",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Forgets the given installers and audits each, in one transaction.
    /// Returns the SHA-256 of each file no installer refers to any more:
    /// the caller deletes those files.
    pub async fn remove_artifacts(
        &self,
        artifacts: &[StoredArtifact],
        actor: &str,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        for artifact in artifacts {
            let query = match artifact.web_server {
                Some(kind) => {
                    sqlx::query("DELETE FROM web_packages WHERE release = $1 AND web_server = $2")
                        .bind(artifact.release.as_str())
                        .bind(kind.as_str())
                }
                None => sqlx::query("DELETE FROM artifacts WHERE release = $1 AND role = $2")
                    .bind(artifact.release.as_str())
                    .bind(artifact.role.as_str()),
            };
            query.execute(&mut *tx).await?;
            let details = format!(
                "{} sha256 {}, {} bytes",
                artifact.file_name, artifact.sha256, artifact.size
            );
            audit_in(
                &mut tx,
                now_ms,
                actor,
                "artifact remove",
                &artifact.subject(),
                &details,
            )
            .await?;
        }
        let mut unused = Vec::new();
        for artifact in artifacts {
            let users: i64 = sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM artifacts WHERE sha256 = $1) \
                      + (SELECT COUNT(*) FROM web_packages WHERE sha256 = $1)",
            )
            .bind(artifact.sha256.as_str())
            .fetch_one(&mut *tx)
            .await?;
            if users == 0 && !unused.contains(&artifact.sha256) {
                unused.push(artifact.sha256.clone());
            }
        }
        tx.commit().await?;
        Ok(unused)
    }
}

impl Store {
    /// The steps of `host_id` whose action names the file `sha256`, with
    /// their rollouts and the installation the host is in now: what
    /// `rollout::may_download` decides on. One query
    /// on the steps' host index; `sha256` must be a SHA-256 (lower-case hex,
    /// so nothing in it is a pattern character). A row that cannot be read
    /// is left out (and logged): it grants nothing.
    pub async fn download_steps(
        &self,
        host_id: &str,
        sha256: &str,
    ) -> Result<Vec<HostStep>, StoreError> {
        if !tierwise_common::is_sha256(sha256) {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT s.step_id, s.action, s.state, s.changed_ms, r.id AS rollout_id, \
                    r.state AS rollout_state, r.installation, h.installation AS host_installation \
             FROM rollout_steps s JOIN rollouts r ON r.id = s.rollout_id \
             JOIN hosts h ON h.host_id = s.host_id \
             WHERE s.host_id = $1 AND s.action LIKE $2",
        )
        .bind(host_id)
        .bind(format!("%{sha256}%"))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .filter_map(|row| match download_step(row) {
                Ok(step) => Some(step),
                Err(error) => {
                    tracing::warn!(%host_id, %error, "a step that cannot be read grants no download");
                    None
                }
            })
            .collect())
    }
}

fn download_step(row: &AnyRow) -> Result<HostStep, StoreError> {
    let step_id: String = row.try_get("step_id")?;
    let corrupt = |what: String| StoreError::Corrupt(format!("step {step_id}: {what}"));
    let action: String = row.try_get("action")?;
    let state: String = row.try_get("state")?;
    let rollout_state: String = row.try_get("rollout_state")?;
    Ok(HostStep {
        action: serde_json::from_str(&action).map_err(|e| corrupt(format!("action: {e}")))?,
        state: StepState::parse(&state).ok_or_else(|| corrupt(format!("state `{state}`")))?,
        changed_ms: row.try_get("changed_ms")?,
        rollout_id: row.try_get("rollout_id")?,
        rollout_state: RolloutState::parse(&rollout_state)
            .ok_or_else(|| corrupt(format!("rollout state `{rollout_state}`")))?,
        installation: row.try_get("installation")?,
        host_installation: row.try_get("host_installation")?,
        step_id,
    })
}
