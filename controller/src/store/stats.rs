//! Counts over the fleet for metrics, computed by the database at scrape
//! time (every replica sees the same fleet).

use super::{Store, StoreError};
use sqlx::Row;

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
             FROM hosts h JOIN components c ON c.host_id = h.host_id \
             GROUP BY h.installation, c.role, \
             COALESCE(c.version, CASE WHEN c.probe_error IS NULL THEN 'not_installed' ELSE 'unknown' END)",
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

    /// The action (its configuration key, e.g. `install`) of a step, for
    /// metrics; `None` for an id that names no step.
    pub async fn step_action_key(&self, dispatch_id: &str) -> Result<Option<String>, StoreError> {
        let Some(dispatch) = tierwise_common::rollout::parse_dispatch_id(dispatch_id) else {
            return Ok(None);
        };
        if dispatch.restart {
            return Ok(Some("restart".into()));
        }
        let row = sqlx::query("SELECT action FROM rollout_steps WHERE step_id = $1")
            .bind(dispatch.step_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let text: String = row.try_get("action")?;
        Ok(
            serde_json::from_str::<tierwise_common::action::StepAction>(&text)
                .ok()
                .map(|a| a.config_key().to_owned()),
        )
    }
}
