//! The sender's side of the notification outbox. A replica leases a
//! subscription with a conditional update (it holds it while its lease has
//! not run out, and only one replica's update can match), sends that
//! subscription's events oldest first, and lets the lease go; a replica
//! that died mid-send loses its lease after [`LEASE_MS`] and another takes
//! over from the first undelivered event.

use super::notifications::PendingNotification;
use super::{Store, StoreError};
use sqlx::Row;
use tierwise_common::notify::RetryVerdict;

/// How long a lease holds without being renewed: longer than one request
/// may take (its connect and request timeouts together).
pub const LEASE_MS: i64 = 60_000;

impl Store {
    /// Subscriptions whose oldest event is due and that no live lease
    /// holds, oldest event first.
    pub async fn due_subscriptions(&self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT s.name FROM notification_subscriptions s \
             JOIN notification_outbox o ON o.subscription = s.name \
             WHERE o.seq = (SELECT MIN(seq) FROM notification_outbox WHERE subscription = s.name) \
               AND o.next_attempt_ms <= $1 AND (s.lease_until_ms < $1 OR s.lease_owner = $2) \
             ORDER BY o.seq",
        )
        .bind(now_ms)
        .bind(self.replica())
        .fetch_all(&self.pool)
        .await?)
    }

    /// Takes or renews this replica's lease of a subscription; `false`
    /// when another replica holds it.
    pub async fn lease_subscription(&self, name: &str, now_ms: i64) -> Result<bool, StoreError> {
        let taken = sqlx::query(
            "UPDATE notification_subscriptions SET lease_owner = $2, lease_until_ms = $3 \
             WHERE name = $1 AND (lease_until_ms < $4 OR lease_owner = $2)",
        )
        .bind(name)
        .bind(self.replica())
        .bind(now_ms + LEASE_MS)
        .bind(now_ms)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    /// Lets this replica's lease of a subscription go.
    pub async fn release_subscription(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE notification_subscriptions SET lease_owner = NULL, lease_until_ms = 0 \
             WHERE name = $1 AND lease_owner = $2",
        )
        .bind(name)
        .bind(self.replica())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The oldest event waiting for a subscription, with where it goes.
    pub async fn oldest_notification(
        &self,
        name: &str,
    ) -> Result<Option<PendingNotification>, StoreError> {
        let row = sqlx::query(
            "SELECT o.seq, o.payload, o.created_ms, o.attempts, o.next_attempt_ms, s.url, s.format, s.secret \
             FROM notification_outbox o JOIN notification_subscriptions s ON s.name = o.subscription \
             WHERE o.subscription = $1 ORDER BY o.seq LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(PendingNotification {
                seq: row.try_get("seq")?,
                subscription: name.to_owned(),
                url: row.try_get("url")?,
                format: row.try_get("format")?,
                secret: row.try_get("secret")?,
                payload: row.try_get("payload")?,
                created_ms: row.try_get("created_ms")?,
                attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(0),
                next_attempt_ms: row.try_get("next_attempt_ms")?,
            })
        })
        .transpose()
    }

    /// The event was received (2xx): it leaves the outbox.
    pub async fn notification_delivered(
        &self,
        event: &PendingNotification,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM notification_outbox WHERE seq = $1")
            .bind(event.seq)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE notification_subscriptions SET delivered = delivered + 1, last_delivered_ms = $2 WHERE name = $1",
        )
        .bind(event.subscription.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The attempt failed with `error`: the event waits for its next
    /// attempt, or is given up (deleted and counted).
    pub async fn notification_failed(
        &self,
        event: &PendingNotification,
        error: &str,
        verdict: RetryVerdict,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let given_up = match verdict {
            RetryVerdict::At(at) => {
                sqlx::query(
                    "UPDATE notification_outbox SET attempts = attempts + 1, next_attempt_ms = $2 WHERE seq = $1",
                )
                .bind(event.seq)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                0i64
            }
            RetryVerdict::GiveUp => {
                sqlx::query("DELETE FROM notification_outbox WHERE seq = $1")
                    .bind(event.seq)
                    .execute(&mut *tx)
                    .await?;
                1i64
            }
        };
        sqlx::query(
            "UPDATE notification_subscriptions SET given_up = given_up + $2, last_error = $3, last_error_ms = $4 \
             WHERE name = $1",
        )
        .bind(event.subscription.as_str())
        .bind(given_up)
        .bind(error)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
