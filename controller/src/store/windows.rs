//! Maintenance windows, one per installation and scope. What they mean is
//! `tierwise_common::window`; here they are kept and read back.

use super::{audit_in, Store, StoreError};
use sqlx::Row;
use tierwise_common::window::MaintenanceWindow;

impl Store {
    /// Sets the window of `window.scope` for a known installation (false:
    /// the installation is unknown; nothing is written).
    pub async fn set_window(
        &self,
        installation: &str,
        window: &MaintenanceWindow,
        actor: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let known = sqlx::query("SELECT name FROM installations WHERE name = $1")
            .bind(installation)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !known {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO maintenance_windows (installation, scope, days, from_time, to_time, time_zone, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (installation, scope) DO UPDATE SET days = excluded.days, from_time = excluded.from_time, \
             to_time = excluded.to_time, time_zone = excluded.time_zone, updated_ms = excluded.updated_ms",
        )
        .bind(installation)
        .bind(window.scope.as_str())
        .bind(window.days.to_string())
        .bind(window.from.to_string())
        .bind(window.to.to_string())
        .bind(window.time_zone.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        audit_in(
            &mut tx,
            now_ms,
            actor,
            "window set",
            installation,
            &format!("{}: {}", window.scope, window.describe()),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes the window of `scope`; false when there was none.
    pub async fn remove_window(
        &self,
        installation: &str,
        scope: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let removed =
            sqlx::query("DELETE FROM maintenance_windows WHERE installation = $1 AND scope = $2")
                .bind(installation)
                .bind(scope)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if removed == 0 {
            return Ok(false);
        }
        audit_in(&mut tx, now_ms, actor, "window remove", installation, scope).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The windows of one installation, or of every installation (`None`),
    /// with their installation, by installation and scope.
    pub async fn windows(
        &self,
        installation: Option<&str>,
    ) -> Result<Vec<(String, MaintenanceWindow)>, StoreError> {
        let rows = sqlx::query(
            "SELECT installation, scope, days, from_time, to_time, time_zone FROM maintenance_windows \
             WHERE ($1 = '' OR installation = $1) ORDER BY installation, scope",
        )
        .bind(installation.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let get = |c: &str| row.try_get::<String, _>(c);
                let window = MaintenanceWindow::new(
                    &get("scope")?,
                    &get("days")?,
                    &get("from_time")?,
                    &get("to_time")?,
                    &get("time_zone")?,
                )
                .map_err(|e| StoreError::Corrupt(format!("a stored maintenance window: {e}")))?;
                Ok((get("installation")?, window))
            })
            .collect()
    }
}
