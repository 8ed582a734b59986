//! The backup that protects a rollout: found by the server's agent after
//! the backup step (`backup_directory` in its configuration), one file per
//! database, kept here with an audit entry, and shown by `rollout status`.

use super::{audit_in, Store, StoreError};
use sqlx::Row;
use tierwise_common::action::BackupFile;
use tierwise_common::backup::VerifiedBackup;

impl Store {
    /// Records the backup `host_id` found for `rollout_id`, every file of
    /// it (the last backup found counts: a retried backup replaces them
    /// all), audited. `rollout_backups` keeps the first file, as it always
    /// held one.
    pub async fn record_backup(
        &self,
        rollout_id: &str,
        host_id: &str,
        files: &[BackupFile],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let Some(first) = files.first() else {
            return Ok(());
        };
        let size = |file: &BackupFile| i64::try_from(file.size).unwrap_or(i64::MAX);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO rollout_backups (rollout_id, host_id, path, size, modified_ms, recorded_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (rollout_id) DO UPDATE SET host_id = excluded.host_id, path = excluded.path, \
             size = excluded.size, modified_ms = excluded.modified_ms, recorded_ms = excluded.recorded_ms",
        )
        .bind(rollout_id)
        .bind(host_id)
        .bind(first.path.as_str())
        .bind(size(first))
        .bind(first.modified_ms)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM rollout_backup_files WHERE rollout_id = $1")
            .bind(rollout_id)
            .execute(&mut *tx)
            .await?;
        for (position, file) in (0_i64..).zip(files) {
            sqlx::query(
                "INSERT INTO rollout_backup_files \
                 (rollout_id, position, database_name, path, size, modified_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(rollout_id)
            .bind(position)
            .bind(file.database.as_deref())
            .bind(file.path.as_str())
            .bind(size(file))
            .bind(file.modified_ms)
            .execute(&mut *tx)
            .await?;
        }
        audit_in(
            &mut tx,
            now_ms,
            &format!("agent {host_id}"),
            "backup verified",
            rollout_id,
            &audited(files),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The backup recorded for `rollout_id`: its host and every file. A
    /// backup recorded before there was one file per database is its one
    /// file, of no database.
    pub async fn rollout_backup(
        &self,
        rollout_id: &str,
    ) -> Result<Option<VerifiedBackup>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT host_id, path, size, modified_ms FROM rollout_backups WHERE rollout_id = $1",
        )
        .bind(rollout_id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let host_id: String = row.try_get("host_id")?;
        let mut files = sqlx::query(
            "SELECT database_name, path, size, modified_ms FROM rollout_backup_files \
             WHERE rollout_id = $1 ORDER BY position",
        )
        .bind(rollout_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| file_of(row, row.try_get("database_name")?))
        .collect::<Result<Vec<_>, StoreError>>()?;
        if files.is_empty() {
            files.push(file_of(&row, None)?);
        }
        Ok(Some(VerifiedBackup { host_id, files }))
    }
}

fn file_of(row: &sqlx::any::AnyRow, database: Option<String>) -> Result<BackupFile, StoreError> {
    let size: i64 = row.try_get("size")?;
    Ok(BackupFile {
        database,
        path: row.try_get("path")?,
        size: u64::try_from(size).unwrap_or(0),
        modified_ms: row.try_get("modified_ms")?,
    })
}

/// The `backup verified` entry's details: each file, with its database.
fn audited(files: &[BackupFile]) -> String {
    files
        .iter()
        .map(|file| {
            format!(
                "{}{} ({} bytes, written {})",
                file.database
                    .as_deref()
                    .map_or_else(String::new, |d| format!("{d}: ")),
                file.path,
                file.size,
                tierwise_runtime::clock::rfc3339(file.modified_ms)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
