//! Web Application packages made by a site's Server Manager: the vendor's
//! package exists only once the target's Server Manager generated it, one
//! per kind of web server, so they arrive during a rollout — handed over by
//! the server's agent or added by an operator — and each web host gets the
//! one for its kind.

use super::{audit_in, Store, StoreError};
use sqlx::Row;
use tierwise_common::WebServerKind;

/// A package to record.
#[derive(Clone, Copy, Debug)]
pub struct NewWebPackage<'a> {
    pub release: &'a str,
    pub web_server: WebServerKind,
    pub sha256: &'a str,
    pub file_name: &'a str,
    pub size: u64,
}

/// A package the controller holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebPackageRecord {
    pub web_server: WebServerKind,
    pub sha256: String,
    pub size: u64,
    pub added_by: String,
}

impl Store {
    /// Records the package of a release for one kind of web server
    /// (replacing an older one: the Server Manager made it again), with
    /// who handed it over, and audits it, in one transaction.
    pub async fn record_web_package(
        &self,
        package: &NewWebPackage<'_>,
        actor: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO web_packages (release, web_server, sha256, file_name, size, added_by, added_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (release, web_server) DO UPDATE SET sha256 = excluded.sha256, \
                file_name = excluded.file_name, size = excluded.size, added_by = excluded.added_by, \
                added_ms = excluded.added_ms",
        )
        .bind(package.release)
        .bind(package.web_server.as_str())
        .bind(package.sha256)
        .bind(package.file_name)
        .bind(i64::try_from(package.size).unwrap_or(i64::MAX))
        .bind(actor)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        audit_in(
            &mut tx,
            now_ms,
            actor,
            "web package add",
            &format!("web {} {}", package.web_server.as_str(), package.release),
            &format!(
                "{} sha256 {}, {} bytes",
                package.file_name, package.sha256, package.size
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The packages the controller holds for a release, by kind.
    pub async fn web_packages(&self, release: &str) -> Result<Vec<WebPackageRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT web_server, sha256, size, added_by FROM web_packages WHERE release = $1 ORDER BY web_server",
        )
        .bind(release)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("web_server")?;
                let size: i64 = row.try_get("size")?;
                Ok(WebPackageRecord {
                    web_server: WebServerKind::parse(&kind).ok_or_else(|| {
                        StoreError::Corrupt(format!("web package of {release}: kind `{kind}`"))
                    })?,
                    sha256: row.try_get("sha256")?,
                    size: u64::try_from(size).unwrap_or_default(),
                    added_by: row.try_get("added_by")?,
                })
            })
            .collect()
    }
}

/// A rollout waiting for a Web Application from its primary server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwaitedWebPackage {
    pub rollout_id: String,
    pub release: tierwise_common::Version,
    /// When the server's new Server Manager was installed in that rollout
    /// (0: it was not updated): a package written before is an older one.
    pub since_ms: i64,
}

impl Store {
    /// The rollout, not ended, whose step generating the Web Application
    /// for `kind` on `host_id` has begun (open, running or done), if any.
    pub async fn awaited_web_package(
        &self,
        host_id: &str,
        kind: WebServerKind,
    ) -> Result<Option<AwaitedWebPackage>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT s.action, r.id, r.target FROM rollout_steps s \
             JOIN rollouts r ON r.id = s.rollout_id \
             WHERE s.host_id = $1 AND s.state IN ('dispatched', 'succeeded') \
               AND r.state NOT IN ({}) \
             ORDER BY r.seq DESC",
            tierwise_common::rollout::RolloutState::final_sql_list()
        ))
        .bind(host_id)
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            let action: String = row.try_get("action")?;
            let Ok(tierwise_common::action::StepAction::GenerateWebApp {
                version,
                web_servers,
            }) = serde_json::from_str(&action)
            else {
                continue;
            };
            if !web_servers.contains(&kind) {
                continue;
            }
            let target: String = row.try_get("target")?;
            if tierwise_common::Version::parse(&target).ok() != Some(version) {
                continue;
            }
            let rollout_id: String = row.try_get("id")?;
            // The package must come from the new Server Manager: newer
            // than the server's install in this rollout.
            let installed = sqlx::query(
                "SELECT action, changed_ms FROM rollout_steps WHERE rollout_id = $1 AND state = 'succeeded'",
            )
            .bind(rollout_id.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .filter_map(|r| {
                let action: String = r.try_get("action").ok()?;
                matches!(
                    serde_json::from_str(&action),
                    Ok(tierwise_common::action::StepAction::InstallComponent {
                        role: tierwise_common::Role::Server,
                        ..
                    })
                )
                .then(|| r.try_get::<i64, _>("changed_ms").ok())
                .flatten()
            })
            .max();
            return Ok(Some(AwaitedWebPackage {
                rollout_id,
                release: version,
                since_ms: installed.unwrap_or(0),
            }));
        }
        Ok(None)
    }

    /// The SHA-256 recorded for a release and kind, if any.
    pub async fn web_package_sha256(
        &self,
        release: &str,
        kind: WebServerKind,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT sha256 FROM web_packages WHERE release = $1 AND web_server = $2",
        )
        .bind(release)
        .bind(kind.as_str())
        .fetch_optional(&self.pool)
        .await?)
    }
}
