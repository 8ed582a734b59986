//! Signed release metadata as imported: the newest row is in force. The
//! store keeps the envelopes byte for byte; what they mean is checked by
//! `tierwise_common::trust` (by the import handler, and by every agent
//! that pins a root).

use super::{audit_in, Store, StoreError};
use sqlx::Row;
use tierwise_common::trust::Envelope;

/// The metadata in force.
#[derive(Clone, Debug)]
pub struct StoredMetadata {
    pub imported_ms: i64,
    /// Oldest first.
    pub roots: Vec<Envelope>,
    pub release: Envelope,
}

/// What an import records besides the envelopes.
#[derive(Clone, Copy, Debug)]
pub struct MetadataImport<'a> {
    pub root_version: u64,
    pub release_version: u64,
    pub actor: &'a str,
    /// The audit entry's details.
    pub details: &'a str,
    pub now_ms: i64,
}

fn version(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("metadata version {value} is too large")))
}

impl Store {
    /// Stores verified metadata; from now on it is the one in force.
    pub async fn import_release_metadata(
        &self,
        roots: &[Envelope],
        release: &Envelope,
        import: MetadataImport<'_>,
    ) -> Result<(), StoreError> {
        let roots = serde_json::to_string(roots)
            .map_err(|e| StoreError::Corrupt(format!("root metadata: {e}")))?;
        let release = serde_json::to_string(release)
            .map_err(|e| StoreError::Corrupt(format!("release metadata: {e}")))?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO release_metadata (imported_ms, roots, release, root_version, release_version) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(import.now_ms)
        .bind(&roots)
        .bind(&release)
        .bind(version(import.root_version)?)
        .bind(version(import.release_version)?)
        .execute(&mut *tx)
        .await?;
        audit_in(
            &mut tx,
            import.now_ms,
            import.actor,
            "release metadata import",
            "",
            import.details,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The metadata in force, if any was imported.
    pub async fn release_metadata(&self) -> Result<Option<StoredMetadata>, StoreError> {
        let row = sqlx::query(
            "SELECT imported_ms, roots, release FROM release_metadata ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let roots: String = row.try_get("roots")?;
        let release: String = row.try_get("release")?;
        Ok(Some(StoredMetadata {
            imported_ms: row.try_get("imported_ms")?,
            roots: serde_json::from_str(&roots)
                .map_err(|e| StoreError::Corrupt(format!("stored root metadata: {e}")))?,
            release: serde_json::from_str(&release)
                .map_err(|e| StoreError::Corrupt(format!("stored release metadata: {e}")))?,
        }))
    }
}
