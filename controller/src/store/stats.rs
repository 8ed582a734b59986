//! Counts over the fleet for metrics, computed by the database at scrape
//! time (every replica sees the same fleet).

use super::{Store, StoreError};
use sqlx::Row;
use tierwise_common::action::StepAction;
use tierwise_common::rollout::Durations;

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

    /// Adds one measured duration of a step that succeeded.
    pub async fn record_duration(
        &self,
        action: &StepAction,
        release: &str,
        ms: i64,
    ) -> Result<(), StoreError> {
        let Some(role) = action.role() else {
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO step_durations (action, role, release, count, total_ms) VALUES ($1, $2, $3, 1, $4) \
             ON CONFLICT (action, role, release) DO UPDATE SET count = step_durations.count + 1, \
             total_ms = step_durations.total_ms + excluded.total_ms",
        )
        .bind(action.config_key())
        .bind(role.as_str())
        .bind(release)
        .bind(ms.max(0))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every measured duration.
    pub async fn durations(&self) -> Result<Durations, StoreError> {
        let mut durations = Durations::default();
        for row in sqlx::query("SELECT action, role, release, count, total_ms FROM step_durations")
            .fetch_all(&self.pool)
            .await?
        {
            let role: String = row.try_get("role")?;
            let Ok(role) = role.parse() else { continue };
            durations.add(
                &row.try_get::<String, _>("action")?,
                role,
                &row.try_get::<String, _>("release")?,
                u64::try_from(row.try_get::<i64, _>("count")?).unwrap_or(0),
                row.try_get("total_ms")?,
            );
        }
        Ok(durations)
    }
}
