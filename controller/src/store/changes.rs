//! What the engine reads to keep running rollouts in memory: the hosts the
//! inbox says changed (its triggers write a row with every change `decide`
//! reads, in the changing transaction), and only those hosts' rows and steps.

use super::rollouts::{
    rollout_from_row, step_from_row, RolloutRecord, ROLLOUT_COLUMNS, STEP_COLUMNS,
};
use super::{bind_all, Liveness, Store, StoreError};
use sqlx::Row;
use std::collections::BTreeSet;
use tierwise_common::rollout::ExecStep;
use tierwise_common::HostRecord;

/// Ids bound in one `IN (…)` list (SQLite allows 32,766 parameters).
const CHUNK: usize = 500;

impl Store {
    /// Takes the inbox: the ids of hosts whose row or steps changed since
    /// the last take. Rows of a transaction not yet committed stay for the
    /// next take.
    pub async fn take_changed_hosts(&self) -> Result<BTreeSet<String>, StoreError> {
        let rows = sqlx::query("DELETE FROM engine_inbox RETURNING host_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                row.try_get::<String, _>("host_id")
                    .map_err(StoreError::from)
            })
            .collect()
    }

    /// A rollout without its steps; `None` when there is no such id.
    pub async fn rollout_record(&self, id: &str) -> Result<Option<RolloutRecord>, StoreError> {
        sqlx::query(&format!(
            "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| rollout_from_row(&row))
        .transpose()
    }

    /// The steps of `rollout_id` on `host_ids`.
    pub async fn steps_of_hosts(
        &self,
        rollout_id: &str,
        host_ids: &[&str],
    ) -> Result<Vec<ExecStep>, StoreError> {
        let mut steps = Vec::new();
        for chunk in host_ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT {STEP_COLUMNS} FROM rollout_steps \
                 WHERE rollout_id = $1 AND host_id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut params = vec![rollout_id];
            params.extend_from_slice(chunk);
            for row in bind_all(&sql, &params).fetch_all(&self.pool).await? {
                steps.push(step_from_row(&row)?);
            }
        }
        Ok(steps)
    }

    /// The hosts among `host_ids` that exist, with `online` as stored
    /// (hellos, disconnects and the sweeper change it, and each tells the
    /// inbox), so the engine can keep what it read.
    pub async fn hosts_as_stored(&self, host_ids: &[&str]) -> Result<Vec<HostRecord>, StoreError> {
        let mut hosts = Vec::new();
        for chunk in host_ids.chunks(CHUNK) {
            let filter = format!("h.host_id IN ({})", placeholders(1, chunk.len()));
            hosts.extend(
                self.load_hosts(&filter, chunk, None, Liveness::Stored)
                    .await?,
            );
        }
        Ok(hosts)
    }
}

/// `$first, $first+1, …` for `count` parameters.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
