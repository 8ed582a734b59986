//! The backup that protects a rollout: found by the server's agent after
//! the backup step (`backup_directory` in its configuration), kept here
//! with an audit entry, and shown by `rollout status`.

use super::{audit_in, Store, StoreError};
use sqlx::Row;
use tierwise_common::action::BackupFile;

impl Store {
    /// Records the backup `host_id` found for `rollout_id` (the last one
    /// found counts: a retried backup replaces it), audited.
    pub async fn record_backup(
        &self,
        rollout_id: &str,
        host_id: &str,
        file: &BackupFile,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let size = i64::try_from(file.size).unwrap_or(i64::MAX);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO rollout_backups (rollout_id, host_id, path, size, modified_ms, recorded_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (rollout_id) DO UPDATE SET host_id = excluded.host_id, path = excluded.path, \
             size = excluded.size, modified_ms = excluded.modified_ms, recorded_ms = excluded.recorded_ms",
        )
        .bind(rollout_id)
        .bind(host_id)
        .bind(file.path.as_str())
        .bind(size)
        .bind(file.modified_ms)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        audit_in(
            &mut tx,
            now_ms,
            &format!("agent {host_id}"),
            "backup verified",
            rollout_id,
            &format!(
                "{} ({} bytes, written {})",
                file.path,
                file.size,
                tierwise_runtime::clock::rfc3339(file.modified_ms)
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The backup recorded for `rollout_id`: (host, file).
    pub async fn rollout_backup(
        &self,
        rollout_id: &str,
    ) -> Result<Option<(String, BackupFile)>, StoreError> {
        let row = sqlx::query(
            "SELECT host_id, path, size, modified_ms FROM rollout_backups WHERE rollout_id = $1",
        )
        .bind(rollout_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let size: i64 = row.try_get("size")?;
            Ok((
                row.try_get("host_id")?,
                BackupFile {
                    database: None,
                    path: row.try_get("path")?,
                    size: u64::try_from(size).unwrap_or(0),
                    modified_ms: row.try_get("modified_ms")?,
                },
            ))
        })
        .transpose()
    }
}
