//! History that keeps every failure: each ended attempt of a step is kept
//! in `step_attempts` (written in the transaction that records the step's
//! result, so a retry or a skip never overwrites it), and what the engine
//! decides about a rollout — a halt, a step it fails, the end — goes into
//! the audit log with actor `engine`, in the transaction of the change.

use super::{audit_in, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;
use tierwise_common::action::StepAction;
use tierwise_common::rollout::{Attempt, Decision, StepState};
use tierwise_common::Version;

/// Who the audit log names for what the engine decided.
pub const ENGINE_ACTOR: &str = "engine";

/// Hosts a completion's audit entry names at most, per list.
const HOSTS_NAMED: usize = 20;

/// Keeps the step's current attempt as it ended now (`result`:
/// succeeded or failed); an attempt kept before (a success found
/// unverified later) takes its new result.
pub(super) async fn end_attempt_in(
    conn: &mut sqlx::AnyConnection,
    step_id: &str,
    result: StepState,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO step_attempts (step_id, attempt, rollout_id, host_id, result, outcome, exit_code, output_tail, reason, started_ms, finished_ms) \
         SELECT step_id, attempts, rollout_id, host_id, $2, COALESCE(outcome, ''), exit_code, output_tail, reason, started_ms, changed_ms \
         FROM rollout_steps WHERE step_id = $1 AND attempts > 0 \
         ON CONFLICT (step_id, attempt) DO UPDATE SET result = excluded.result, outcome = excluded.outcome, \
           exit_code = excluded.exit_code, output_tail = excluded.output_tail, reason = excluded.reason, \
           finished_ms = excluded.finished_ms",
    )
    .bind(step_id)
    .bind(result.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The steps the engine failed in one transaction (no result in time, a
/// success not verified, a task not done): each attempt is kept at once,
/// and the audit log gets one entry for them all, however large the wave.
#[derive(Debug, Default)]
pub(super) struct EngineFailures(Vec<String>);

impl EngineFailures {
    pub(super) async fn add_in(
        &mut self,
        conn: &mut sqlx::AnyConnection,
        step_id: &str,
        reason: &str,
    ) -> Result<(), sqlx::Error> {
        end_attempt_in(conn, step_id, StepState::Failed).await?;
        let host: Option<String> =
            sqlx::query_scalar("SELECT host_id FROM rollout_steps WHERE step_id = $1")
                .bind(step_id)
                .fetch_optional(&mut *conn)
                .await?;
        self.0.push(format!(
            "{step_id} on {}: {reason}",
            host.unwrap_or_default()
        ));
        Ok(())
    }

    /// `rollout step failed`, naming at most `HOSTS_NAMED` of them.
    pub(super) async fn audit_in(
        self,
        conn: &mut sqlx::AnyConnection,
        rollout_id: &str,
        now_ms: i64,
    ) -> Result<(), sqlx::Error> {
        let details = match self.0.as_slice() {
            [] => return Ok(()),
            [one] => one.clone(),
            many => format!("{} steps: {}", many.len(), named(many, "; ")),
        };
        audit_in(
            conn,
            now_ms,
            ENGINE_ACTOR,
            "rollout step failed",
            rollout_id,
            &details,
        )
        .await
    }
}

/// "cl-01, cl-02 and 3 more" (`separator`: ", ").
fn named(items: &[String], separator: &str) -> String {
    let mut text = items
        .iter()
        .take(HOSTS_NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join(separator);
    if items.len() > HOSTS_NAMED {
        text.push_str(&format!(" and {} more", items.len() - HOSTS_NAMED));
    }
    text
}

/// The audit entry of a decision that halts or ends a rollout, if it is one.
pub(super) fn rollout_event(decision: &Decision) -> Option<(&'static str, String)> {
    Some(match decision {
        Decision::Halt { reason } | Decision::StaleBackup { reason, .. } => {
            ("rollout halted", reason.clone())
        }
        Decision::Complete => ("rollout completed", "every host is on the target".into()),
        Decision::CompleteWithFailures {
            failed_hosts,
            skipped_hosts,
        } => {
            let mut parts = Vec::new();
            if !failed_hosts.is_empty() {
                parts.push(format!("failed: {}", named(failed_hosts, ", ")));
            }
            if !skipped_hosts.is_empty() {
                parts.push(format!("skipped: {}", named(skipped_hosts, ", ")));
            }
            (
                "rollout completed with failures",
                format!("{}; these hosts keep their old version", parts.join("; ")),
            )
        }
        _ => return None,
    })
}

/// Audits what a decision does to the rollout itself (halted, completed,
/// completed with failures), by the engine; nothing for other decisions.
pub(super) async fn audit_rollout_event_in(
    conn: &mut sqlx::AnyConnection,
    rollout_id: &str,
    decision: &Decision,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    match rollout_event(decision) {
        Some((action, details)) => {
            audit_in(conn, now_ms, ENGINE_ACTOR, action, rollout_id, &details).await
        }
        None => Ok(()),
    }
}

fn attempt_from_row(row: &AnyRow) -> Result<Attempt, StoreError> {
    let result: String = row.try_get("result")?;
    Ok(Attempt {
        attempt: u32::try_from(row.try_get::<i64, _>("attempt")?).unwrap_or(0),
        result: StepState::parse(&result)
            .ok_or_else(|| StoreError::Corrupt(format!("attempt result `{result}`")))?,
        outcome: row.try_get("outcome")?,
        exit_code: row.try_get("exit_code")?,
        output_tail: row.try_get("output_tail")?,
        reason: row.try_get("reason")?,
        started_ms: row.try_get("started_ms")?,
        finished_ms: row.try_get("finished_ms")?,
    })
}

const ATTEMPT_COLUMNS: &str =
    "a.step_id, a.attempt, a.result, a.outcome, a.exit_code, a.output_tail, a.reason, a.started_ms, a.finished_ms";

/// One step of a host in some rollout, with its ended attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostStep {
    pub rollout_id: String,
    pub installation: String,
    /// The release the rollout installs.
    pub release: Version,
    pub step_id: String,
    pub action: StepAction,
    pub state: StepState,
    /// When the step last changed (Unix ms).
    pub changed_ms: i64,
    /// Oldest first.
    pub attempts: Vec<Attempt>,
}

impl Store {
    /// The ended attempts of a rollout's steps that failed at least once,
    /// by step id, oldest first.
    pub async fn failed_step_attempts(
        &self,
        rollout_id: &str,
    ) -> Result<Vec<(String, Attempt)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM step_attempts a WHERE a.rollout_id = $1 AND a.step_id IN \
               (SELECT step_id FROM step_attempts WHERE rollout_id = $1 AND result = 'failed') \
             ORDER BY a.step_id, a.attempt"
        ))
        .bind(rollout_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("step_id")?, attempt_from_row(row)?)))
            .collect()
    }

    /// The newest `limit` steps of a host across rollouts (newest rollout
    /// first, then its steps in order), each with its ended attempts.
    pub async fn host_history(
        &self,
        host_id: &str,
        limit: i64,
    ) -> Result<Vec<HostStep>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.step_id, s.rollout_id, r.installation, r.target, s.action, s.state, s.changed_ms \
             FROM rollout_steps s JOIN rollouts r ON r.id = s.rollout_id \
             WHERE s.host_id = $1 ORDER BY r.seq DESC, s.ordinal DESC LIMIT $2",
        )
        .bind(host_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut steps = Vec::with_capacity(rows.len());
        for row in &rows {
            let step_id: String = row.try_get("step_id")?;
            let state: String = row.try_get("state")?;
            let target: String = row.try_get("target")?;
            let action: String = row.try_get("action")?;
            steps.push(HostStep {
                rollout_id: row.try_get("rollout_id")?,
                installation: row.try_get("installation")?,
                release: Version::parse(&target)
                    .map_err(|e| StoreError::Corrupt(format!("step {step_id}: {e}")))?,
                action: serde_json::from_str(&action)
                    .map_err(|e| StoreError::Corrupt(format!("step {step_id}: {e}")))?,
                state: StepState::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("step {step_id}: `{state}`")))?,
                changed_ms: row.try_get("changed_ms")?,
                attempts: Vec::new(),
                step_id,
            });
        }
        let attempts = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM step_attempts a WHERE a.host_id = $1 AND a.step_id IN \
               (SELECT s.step_id FROM rollout_steps s JOIN rollouts r ON r.id = s.rollout_id \
                WHERE s.host_id = $1 ORDER BY r.seq DESC, s.ordinal DESC LIMIT $2) \
             ORDER BY a.step_id, a.attempt"
        ))
        .bind(host_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut by_step: std::collections::HashMap<String, Vec<Attempt>> = Default::default();
        for row in &attempts {
            by_step
                .entry(row.try_get("step_id")?)
                .or_default()
                .push(attempt_from_row(row)?);
        }
        for step in &mut steps {
            step.attempts = by_step.remove(&step.step_id).unwrap_or_default();
        }
        Ok(steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ending_names_its_hosts_within_bounds() {
        let hosts: Vec<String> = (0..25).map(|n| format!("cl-{n:02}")).collect();
        let (action, details) = rollout_event(&Decision::CompleteWithFailures {
            failed_hosts: vec!["cl-99".into()],
            skipped_hosts: hosts,
        })
        .expect("audited");
        assert_eq!(action, "rollout completed with failures");
        assert!(
            details.starts_with("failed: cl-99; skipped: cl-00, cl-01")
                && details.contains("cl-19 and 5 more; these hosts keep their old version"),
            "{details}"
        );
        assert_eq!(
            rollout_event(&Decision::Halt {
                reason: "why".into()
            }),
            Some(("rollout halted", "why".to_owned()))
        );
        assert_eq!(
            rollout_event(&Decision::Retry {
                step_id: "r1-1".into()
            }),
            None
        );
    }
}
