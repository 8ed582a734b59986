//! Several controllers on one PostgreSQL database. Any replica may hold a
//! host's stream, so what must reach a host — a step's attempt, a restart,
//! a refresh, the end of its session — goes through the `outbox`: rows by
//! host, taken by the replica that holds the host's stream
//! (`hosts.replica`). One replica, the leader, runs the engine: it holds a
//! PostgreSQL advisory lock on a connection of its own and the current
//! `leadership.epoch`, which every engine transaction checks, so an
//! ex-leader that lost its lock cannot write. On SQLite (one controller)
//! the outbox works the same and the process is always the leader.

use super::{Store, StoreError};
use sqlx::{Connection, Row};
use tierwise_common::action::StepAction;
use tierwise_common::rollout::Delivery;

/// What the outbox holds for a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutboxItem {
    /// A step's attempt or the restart that finishes it.
    Deliver(Delivery),
    /// Ask the agent to report its inventory now.
    Refresh { host_id: String },
    /// End the host's session (its certificates were revoked).
    Close { host_id: String },
}

/// A session command the outbox carries for hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostCommand {
    Refresh,
    Close,
}

impl HostCommand {
    const fn kind(self) -> &'static str {
        match self {
            HostCommand::Refresh => "refresh",
            HostCommand::Close => "close",
        }
    }
}

/// The advisory lock key of the engine's leadership ("tierwise").
const LEADER_LOCK: i64 = 0x7469_6572_7769_7365;

/// Puts a delivery in the outbox within an engine transaction.
pub(super) async fn enqueue_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    delivery: &Delivery,
    now_ms: i64,
) -> Result<(), StoreError> {
    let action = serde_json::to_string(&delivery.action)
        .map_err(|e| StoreError::Corrupt(format!("step action: {e}")))?;
    sqlx::query(
        "INSERT INTO outbox (host_id, kind, dispatch_id, action, created_ms) VALUES ($1, 'deliver', $2, $3, $4)",
    )
    .bind(delivery.host_id.as_str())
    .bind(delivery.dispatch_id.as_str())
    .bind(action)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Whether an engine transaction may write: on PostgreSQL only while
    /// this process holds the current leadership epoch (read under a share
    /// lock, so a new leader's claim waits for the transaction).
    pub(super) async fn still_leader(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<bool, StoreError> {
        if self.backend == super::Backend::Sqlite {
            return Ok(true);
        }
        let current: i64 =
            sqlx::query_scalar("SELECT epoch FROM leadership WHERE id = 1 FOR SHARE")
                .fetch_one(&mut **tx)
                .await?;
        Ok(current == self.epoch() && current > 0)
    }

    /// Wakes the replicas' outbox readers (PostgreSQL; a no-op on SQLite,
    /// where the engine wakes its own reader).
    pub(super) async fn notify_outbox(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<(), StoreError> {
        if self.backend == super::Backend::Postgres {
            sqlx::query("SELECT pg_notify('tierwise_outbox', '')")
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Queues a refresh or the end of a session for hosts, wherever their
    /// streams are.
    pub async fn enqueue_for_hosts(
        &self,
        host_ids: &[String],
        command: HostCommand,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for host_id in host_ids {
            sqlx::query("INSERT INTO outbox (host_id, kind, created_ms) VALUES ($1, $2, $3)")
                .bind(host_id.as_str())
                .bind(command.kind())
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        self.notify_outbox(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes what the outbox holds for the hosts whose streams this replica
    /// holds, oldest first.
    pub async fn take_outbox(&self) -> Result<Vec<OutboxItem>, StoreError> {
        // Nearly always empty outside a rollout: the take below joins this
        // replica's hosts (tens of thousands of rows) every time it runs,
        // which at 100,000 agents on seven replicas was most of the
        // database's work at rest.
        let any: Option<i64> = sqlx::query_scalar("SELECT seq FROM outbox LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        // One statement, so one write lock a take: a delivery to a host
        // whose certificates are all revoked is taken and dropped, even if
        // it was queued before the revocation.
        let rows = sqlx::query(
            "DELETE FROM outbox WHERE host_id IN (SELECT host_id FROM hosts WHERE replica = $1) \
             RETURNING seq, host_id, kind, dispatch_id, action, created_ms, \
             CAST(CASE WHEN kind = 'deliver' \
                  AND EXISTS (SELECT 1 FROM agent_certificates c \
                              WHERE c.host_id = outbox.host_id AND c.revoked_ms IS NOT NULL) \
                  AND NOT EXISTS (SELECT 1 FROM agent_certificates c \
                                  WHERE c.host_id = outbox.host_id AND c.revoked_ms IS NULL) \
             THEN 1 ELSE 0 END AS BIGINT) AS withheld",
        )
        .bind(&*self.replica)
        .fetch_all(&self.pool)
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.try_get::<i64, _>("withheld")? != 0 {
                continue;
            }
            let seq: i64 = row.try_get("seq")?;
            let host_id: String = row.try_get("host_id")?;
            let kind: String = row.try_get("kind")?;
            let item = match kind.as_str() {
                "deliver" => {
                    let action: String = row.try_get("action")?;
                    OutboxItem::Deliver(Delivery {
                        host_id,
                        dispatch_id: row.try_get("dispatch_id")?,
                        action: serde_json::from_str::<StepAction>(&action)
                            .map_err(|e| StoreError::Corrupt(format!("outbox action: {e}")))?,
                        dispatched_ms: row.try_get("created_ms")?,
                    })
                }
                "refresh" => OutboxItem::Refresh { host_id },
                "close" => OutboxItem::Close { host_id },
                other => return Err(StoreError::Corrupt(format!("outbox kind `{other}`"))),
            };
            items.push((seq, item));
        }
        items.sort_by_key(|(seq, _)| *seq);
        Ok(items.into_iter().map(|(_, item)| item).collect())
    }

    /// Drops rows no replica took (their hosts were offline); a host that
    /// comes back gets everything outstanding at its hello anyway.
    pub async fn prune_outbox(&self, older_than_ms: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM outbox WHERE created_ms < $1")
            .bind(older_than_ms)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Tries to become the engine's leader. On SQLite the process simply
    /// is. On PostgreSQL: the advisory lock, on a connection of its own that
    /// the returned `Leadership` keeps; then the epoch goes up by one and is
    /// this process's.
    pub async fn claim_leadership(&self, now_ms: i64) -> Result<Option<Leadership>, StoreError> {
        if self.backend == super::Backend::Sqlite {
            self.set_epoch(1);
            return Ok(Some(Leadership { connection: None }));
        }
        let mut connection = sqlx::AnyConnection::connect(&self.url).await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_LOCK)
            .fetch_one(&mut connection)
            .await?;
        if !locked {
            connection.close().await.ok();
            return Ok(None);
        }
        let epoch: i64 = sqlx::query_scalar(
            "UPDATE leadership SET epoch = epoch + 1, holder = $1, since_ms = $2 WHERE id = 1 RETURNING epoch",
        )
        .bind(&*self.replica)
        .bind(now_ms)
        .fetch_one(&mut connection)
        .await?;
        self.set_epoch(epoch);
        Ok(Some(Leadership {
            connection: Some(connection),
        }))
    }
}

/// Held by the leader: on PostgreSQL the connection whose session holds
/// the advisory lock.
#[derive(Debug)]
pub struct Leadership {
    connection: Option<sqlx::AnyConnection>,
}

impl Leadership {
    /// Whether the lock is still held (its connection still answers).
    pub async fn alive(&mut self) -> bool {
        match &mut self.connection {
            None => true,
            Some(connection) => sqlx::query("SELECT 1")
                .execute(&mut *connection)
                .await
                .is_ok(),
        }
    }
}

/// Drops what the outbox holds for a host saying hello, in the transaction
/// that makes this replica its holder (so no reader takes a row queued
/// while it was away, perhaps for a rollout since ended): the hello hands
/// it everything outstanding.
pub(super) async fn clear_outbox_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    host_id: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM outbox WHERE host_id = $1")
        .bind(host_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
