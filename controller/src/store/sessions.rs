//! The dashboard's sessions. They live in the database, not in a replica's
//! memory: a browser logged in through one replica is served by any other,
//! and a restarted controller logs nobody out. Only digests are stored: of
//! the session id the browser's cookie carries, and of the operator token
//! the session acts with, so reading the table opens no session and gives
//! away no token.

use super::{Store, StoreError};
use sqlx::Row;

/// How long sessions last, and how many there may be at once.
#[derive(Debug, Clone, Copy)]
pub struct SessionTerms {
    /// A session unused this long ends.
    pub idle_ms: i64,
    /// A session ends this long after its login, used or not.
    pub lifetime_ms: i64,
    /// Sessions held at once by one operator (one token); their login
    /// beyond it ends their own oldest session, never another's.
    pub max_per_operator: i64,
    /// Sessions held at once by everyone, a bound on the table: a login
    /// when they are all held by others is refused, never made room for
    /// by ending another operator's session (logins at the same moment on
    /// several replicas may briefly exceed either cap).
    pub max_sessions: i64,
}

/// What a login's session came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum SessionOpened {
    Opened,
    /// The sessions of others fill the table: none was opened.
    Full,
}

/// A session's last use is written at most this often: a page following a
/// running rollout asks every 2 s, and the idle limit is counted in minutes.
const TOUCH_EVERY_MS: i64 = 30_000;

impl SessionTerms {
    fn alive(&self, started_ms: i64, used_ms: i64, now_ms: i64) -> bool {
        now_ms - used_ms < self.idle_ms && now_ms - started_ms < self.lifetime_ms
    }
}

impl Store {
    /// Opens a session acting with the token of digest `token_sha256`;
    /// ended sessions are swept first, and that token's oldest sessions go
    /// when it holds as many as the terms allow. When all sessions the
    /// terms allow are held (by others) none is opened: `Full`.
    pub async fn open_dashboard_session(
        &self,
        id_sha256: &str,
        token_sha256: &str,
        terms: SessionTerms,
        now_ms: i64,
    ) -> Result<SessionOpened, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM dashboard_sessions WHERE used_ms <= $1 OR started_ms <= $2")
            .bind(now_ms - terms.idle_ms)
            .bind(now_ms - terms.lifetime_ms)
            .execute(&mut *tx)
            .await?;
        let own: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM dashboard_sessions WHERE token_sha256 = $1")
                .bind(token_sha256)
                .fetch_one(&mut *tx)
                .await?;
        let over = own - terms.max_per_operator + 1;
        if over > 0 {
            sqlx::query(
                "DELETE FROM dashboard_sessions WHERE id_sha256 IN \
                 (SELECT id_sha256 FROM dashboard_sessions WHERE token_sha256 = $1 \
                  ORDER BY started_ms, id_sha256 LIMIT $2)",
            )
            .bind(token_sha256)
            .bind(over)
            .execute(&mut *tx)
            .await?;
        }
        let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dashboard_sessions")
            .fetch_one(&mut *tx)
            .await?;
        if held >= terms.max_sessions {
            // The sweep above is kept: ended sessions are gone either way.
            tx.commit().await?;
            return Ok(SessionOpened::Full);
        }
        sqlx::query(
            "INSERT INTO dashboard_sessions (id_sha256, token_sha256, started_ms, used_ms) \
             VALUES ($1, $2, $3, $3)",
        )
        .bind(id_sha256)
        .bind(token_sha256)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(SessionOpened::Opened)
    }

    /// The token digest of a live session, marking it used; `None` when
    /// there is no such session or it has ended (it is then removed).
    pub async fn dashboard_session(
        &self,
        id_sha256: &str,
        terms: SessionTerms,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT token_sha256, started_ms, used_ms FROM dashboard_sessions WHERE id_sha256 = $1",
        )
        .bind(id_sha256)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let started_ms: i64 = row.try_get("started_ms")?;
        let used_ms: i64 = row.try_get("used_ms")?;
        if !terms.alive(started_ms, used_ms, now_ms) {
            // An ended session is refused whether or not it can be swept
            // now; the next login sweeps it otherwise.
            if let Err(error) = self.close_dashboard_session(id_sha256).await {
                tracing::warn!(%error, "an ended dashboard session could not be removed");
            }
            return Ok(None);
        }
        if now_ms - used_ms >= TOUCH_EVERY_MS {
            // A page is read-only: a busy or read-only database that cannot
            // note the use must not turn a valid session away (it then ends
            // at most one touch early).
            if let Err(error) =
                sqlx::query("UPDATE dashboard_sessions SET used_ms = $2 WHERE id_sha256 = $1")
                    .bind(id_sha256)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await
            {
                tracing::warn!(%error, "a dashboard session's last use could not be written");
            }
        }
        Ok(Some(row.try_get("token_sha256")?))
    }

    /// Ends a session (logging out, or its token no longer valid).
    pub async fn close_dashboard_session(&self, id_sha256: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM dashboard_sessions WHERE id_sha256 = $1")
            .bind(id_sha256)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lives_while_used_and_never_past_its_lifetime() {
        let terms = SessionTerms {
            idle_ms: 1_000,
            lifetime_ms: 10_000,
            max_per_operator: 2,
            max_sessions: 2,
        };
        assert!(terms.alive(0, 0, 999));
        assert!(!terms.alive(0, 0, 1_000));
        assert!(terms.alive(0, 9_500, 9_999));
        assert!(!terms.alive(0, 9_999, 10_000));
    }
}
