//! Counts over the fleet for metrics, computed by the database at scrape
//! time (every replica sees the same fleet).

use super::{Store, StoreError};
use sqlx::Row;
use tierwise_common::action::StepAction;
use tierwise_common::rollout::{Durations, MAX_STEP_MS};

/// What a scrape reports about the fleet.
#[derive(Clone, Debug, Default)]
pub struct FleetStats {
    /// (installation, role, agents online).
    pub connected: Vec<(String, String, i64)>,
    /// (installation, role, version or `unknown`/`not_installed`, hosts).
    pub versions: Vec<(String, String, String, i64)>,
    /// (state, rollouts).
    pub rollouts: Vec<(String, i64)>,
}

impl Store {
    /// The bytes PostgreSQL has written to its write-ahead log since its
    /// statistics were last reset (`pg_stat_wal`), for load tools that
    /// measure the write rate; `None` on SQLite.
    pub async fn wal_bytes(&self) -> Result<Option<i64>, StoreError> {
        if self.backend() != super::Backend::Postgres {
            return Ok(None);
        }
        let bytes: i64 = sqlx::query_scalar("SELECT CAST(wal_bytes AS BIGINT) FROM pg_stat_wal")
            .fetch_one(&self.pool)
            .await?;
        Ok(Some(bytes))
    }

    pub async fn fleet_stats(&self) -> Result<FleetStats, StoreError> {
        let mut stats = FleetStats::default();
        for row in sqlx::query(
            "SELECT h.installation AS installation, c.role AS role, COUNT(*) AS n \
             FROM hosts h JOIN components c ON c.host_id = h.host_id \
             WHERE h.online = 1 GROUP BY h.installation, c.role",
        )
        .fetch_all(&self.pool)
        .await?
        {
            stats.connected.push((
                row.try_get("installation")?,
                row.try_get("role")?,
                row.try_get("n")?,
            ));
        }
        for row in sqlx::query(
            "SELECT h.installation AS installation, c.role AS role, \
             COALESCE(c.version, CASE WHEN c.probe_error IS NULL THEN 'not_installed' ELSE 'unknown' END) AS version, \
             COUNT(*) AS n \
             FROM hosts h JOIN components c ON c.host_id = h.host_id GROUP BY 1, 2, 3",
        )
        .fetch_all(&self.pool)
        .await?
        {
            stats.versions.push((
                row.try_get("installation")?,
                row.try_get("role")?,
                row.try_get("version")?,
                row.try_get("n")?,
            ));
        }
        for row in sqlx::query("SELECT state, COUNT(*) AS n FROM rollouts GROUP BY state")
            .fetch_all(&self.pool)
            .await?
        {
            stats
                .rollouts
                .push((row.try_get("state")?, row.try_get("n")?));
        }
        Ok(stats)
    }

    /// The action of a step and the release its rollout installs, for
    /// metrics and measured durations; `None` for an id that names no step.
    pub async fn step_facts(
        &self,
        dispatch_id: &str,
    ) -> Result<Option<(StepAction, String)>, StoreError> {
        let Some(dispatch) = tierwise_common::rollout::parse_dispatch_id(dispatch_id) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT s.action AS action, r.target AS target FROM rollout_steps s \
             JOIN rollouts r ON r.id = s.rollout_id WHERE s.step_id = $1",
        )
        .bind(dispatch.step_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let action: StepAction = match serde_json::from_str(&row.try_get::<String, _>("action")?) {
            Ok(action) => action,
            Err(_) => return Ok(None),
        };
        let action = if dispatch.restart {
            StepAction::Restart {
                role: action.role().unwrap_or(tierwise_common::Role::Client),
            }
        } else {
            action
        };
        Ok(Some((action, row.try_get("target")?)))
    }

    /// Adds one measured duration of a step that succeeded, clamped to
    /// `0..=MAX_STEP_MS`; the stored sum saturates at `i64::MAX` and stays
    /// an integer on both stores (SQLite would turn an overflowing sum into
    /// a floating-point value).
    /// Written with the results beside it (`ingest.rs`), as a wave of
    /// clients finishing adds to the same row.
    pub async fn record_duration(
        &self,
        action: &StepAction,
        release: &str,
        ms: i64,
    ) -> Result<(), StoreError> {
        if action.role().is_none() {
            return Ok(());
        }
        self.ingest
            .write(super::ingest::Write::Duration(
                super::ingest::StepDuration {
                    action: action.clone(),
                    release: release.to_owned(),
                    ms,
                },
            ))
            .await
            .map(|_| ())
    }

    /// Every measured duration; a row that cannot be read (a sum stored as
    /// a floating-point value, a negative count) is skipped and logged, so
    /// one bad row never stops a plan or a status.
    pub async fn durations(&self) -> Result<Durations, StoreError> {
        let mut durations = Durations::default();
        for row in sqlx::query("SELECT action, role, release, count, total_ms FROM step_durations")
            .fetch_all(&self.pool)
            .await?
        {
            if let Err(error) = add_duration_row(&mut durations, &row) {
                tracing::warn!(%error, "skipping an unreadable row of step_durations");
            }
        }
        Ok(durations)
    }

    /// When the current attempt of a step went out (Unix ms), for the
    /// controller's own measure of how long it ran.
    pub async fn step_dispatched_ms(&self, dispatch_id: &str) -> Result<Option<i64>, StoreError> {
        let Some(dispatch) = tierwise_common::rollout::parse_dispatch_id(dispatch_id) else {
            return Ok(None);
        };
        let row = sqlx::query("SELECT started_ms FROM rollout_steps WHERE step_id = $1")
            .bind(dispatch.step_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|row| row.try_get::<Option<i64>, _>("started_ms").ok().flatten()))
    }
}

/// Adds one row of `step_durations`; a role this version does not know is
/// left out, a value of the wrong type or out of range is an error.
fn add_duration_row(durations: &mut Durations, row: &sqlx::any::AnyRow) -> Result<(), StoreError> {
    let role: String = row.try_get("role")?;
    let Ok(role) = role.parse() else {
        return Ok(());
    };
    let count: i64 = row.try_get("count")?;
    let total_ms: i64 = row.try_get("total_ms")?;
    if count < 0 || total_ms < 0 {
        return Err(StoreError::Corrupt(format!(
            "count {count} and total_ms {total_ms} must not be negative"
        )));
    }
    durations.add(
        &row.try_get::<String, _>("action")?,
        role,
        &row.try_get::<String, _>("release")?,
        u64::try_from(count).unwrap_or(0),
        total_ms,
    );
    Ok(())
}

/// One measured duration within `tx` (see [`Store::record_duration`]).
pub(super) async fn duration_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    action: &StepAction,
    release: &str,
    ms: i64,
) -> Result<(), StoreError> {
    let Some(role) = action.role() else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO step_durations (action, role, release, count, total_ms) VALUES ($1, $2, $3, 1, $4) \
         ON CONFLICT (action, role, release) DO UPDATE SET \
         count = CASE WHEN step_durations.count >= 9223372036854775807 THEN step_durations.count \
         ELSE step_durations.count + 1 END, \
         total_ms = CASE WHEN step_durations.total_ms > 9223372036854775807 - excluded.total_ms \
         THEN 9223372036854775807 ELSE step_durations.total_ms + excluded.total_ms END",
    )
    .bind(action.config_key())
    .bind(role.as_str())
    .bind(release)
    .bind(ms.clamp(0, MAX_STEP_MS))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
