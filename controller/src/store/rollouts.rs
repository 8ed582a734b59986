//! Rollouts, their steps and the audit log. Every change of a rollout is one
//! transaction, so a killed controller leaves either the old or the new state.

use super::history::{audit_rollout_event_in, end_attempt_in, EngineFailures, ENGINE_ACTOR};
use super::{audit_in, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;
use tierwise_common::action::{StepAction, StepOutcome};
use tierwise_common::rollout::{
    dispatch_id, restart_action, restart_dispatch_id, transition, Command, CommandTarget, Decision,
    Delivery, ExecPhase, ExecStep, Refusal, RestartState, RolloutOptions, RolloutState, StepState,
    Transition,
};
use tierwise_common::Version;

/// A rollout as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutRecord {
    pub id: String,
    pub installation: String,
    pub target: Version,
    pub state: RolloutState,
    pub current_phase: usize,
    pub options: RolloutOptions,
    pub phases: Vec<ExecPhase>,
    pub reason: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The random tag in every dispatch id of this rollout (empty for
    /// rollouts created before tags existed).
    pub nonce: String,
}

/// A step's result as an agent reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepResultRecord {
    pub step_id: String,
    pub outcome: StepOutcome,
    pub exit_code: Option<i32>,
    pub output_tail: String,
    pub reason: String,
}

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// The entry's number in the log.
    pub seq: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: String,
    /// The hash chain (`common::audit`); empty for entries written before
    /// the log was chained.
    pub prev_sha256: String,
    pub sha256: String,
}

impl AuditEntry {
    pub fn link(&self) -> tierwise_common::audit::Link<'_> {
        tierwise_common::audit::Link {
            seq: self.seq,
            at_ms: self.at_ms,
            actor: &self.actor,
            action: &self.action,
            subject: &self.subject,
            details: &self.details,
            prev_sha256: &self.prev_sha256,
            sha256: &self.sha256,
        }
    }
}

const AUDIT_COLUMNS: &str = "seq, at_ms, actor, action, subject, details, prev_sha256, sha256";

fn audit_from_row(row: &sqlx::any::AnyRow) -> Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        seq: row.try_get("seq")?,
        at_ms: row.try_get("at_ms")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        subject: row.try_get("subject")?,
        details: row.try_get("details")?,
        prev_sha256: row.try_get("prev_sha256")?,
        sha256: row.try_get("sha256")?,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error(
        "installation {installation} already has rollout {id} ({state}); finish or abort it first"
    )]
    AlreadyActive {
        installation: String,
        id: String,
        state: String,
    },
    #[error("no rollout `{0}`; `tierwise rollout list` shows them")]
    NotFound(String),
    #[error("rollout {id} {refusal}")]
    Refused { id: String, refusal: Refusal },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RolloutError {
    fn from(e: sqlx::Error) -> Self {
        RolloutError::Store(StoreError::Sql(e))
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// How an outcome is written in the store, the JSON and metrics.
pub(crate) fn outcome_text(outcome: StepOutcome) -> Result<String, StoreError> {
    Ok(json(&outcome)?.trim_matches('"').to_owned())
}

pub(super) fn rollout_from_row(row: &AnyRow) -> Result<RolloutRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let state: String = row.try_get("state")?;
    let target: String = row.try_get("target")?;
    Ok(RolloutRecord {
        state: RolloutState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("rollout {id}: state `{state}`")))?,
        target: Version::parse(&target)
            .map_err(|e| StoreError::Corrupt(format!("rollout {id}: {e}")))?,
        installation: row.try_get("installation")?,
        current_phase: usize::try_from(row.try_get::<i64, _>("current_phase")?).unwrap_or(0),
        options: from_json(&row.try_get::<String, _>("options")?, "rollout options")?,
        phases: from_json(&row.try_get::<String, _>("phases")?, "rollout phases")?,
        reason: row.try_get("reason")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
        nonce: row
            .try_get::<Option<String>, _>("nonce")?
            .unwrap_or_default(),
        id,
    })
}

pub(super) fn step_from_row(row: &AnyRow) -> Result<ExecStep, StoreError> {
    let step_id: String = row.try_get("step_id")?;
    let state: String = row.try_get("state")?;
    let outcome: Option<String> = row.try_get("outcome")?;
    Ok(ExecStep {
        state: StepState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("step {step_id}: state `{state}`")))?,
        phase: usize::try_from(row.try_get::<i64, _>("phase")?).unwrap_or(0),
        host_id: row.try_get("host_id")?,
        action: from_json::<StepAction>(&row.try_get::<String, _>("action")?, "step action")?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(0),
        changed_ms: row.try_get("changed_ms")?,
        outcome: outcome
            .map(|o| from_json::<StepOutcome>(&format!("\"{o}\""), "step outcome"))
            .transpose()?,
        reason: row.try_get("reason")?,
        restart: {
            let text: String = row.try_get("restart")?;
            RestartState::parse(&text)
                .ok_or_else(|| StoreError::Corrupt(format!("step {step_id}: restart `{text}`")))?
        },
        task: row
            .try_get::<Option<String>, _>("task")?
            .map(|text| from_json(&text, "operator task"))
            .transpose()?,
        step_id,
    })
}

/// Starts a read-then-write transaction with a write (see
/// `lock_installation`): the rollout's row is locked until commit.
async fn lock_rollout(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE rollouts SET updated_ms = updated_ms WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Locks a rollout's row and reads it, for a change by an operator.
async fn locked_rollout(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
) -> Result<RolloutRecord, RolloutError> {
    lock_rollout(tx, id).await?;
    let row = sqlx::query(&format!(
        "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| RolloutError::NotFound(id.to_owned()))?;
    Ok(rollout_from_row(&row)?)
}

pub(super) const ROLLOUT_COLUMNS: &str =
    "id, installation, target, state, current_phase, options, phases, reason, created_ms, updated_ms, nonce";
pub(super) const STEP_COLUMNS: &str =
    "step_id, phase, host_id, action, state, attempts, changed_ms, outcome, reason, restart, task";

/// Keeps the attempt a result just ended (when the update took: `row`);
/// the rollout's id when something changed.
async fn kept_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    row: Option<AnyRow>,
    step_id: &str,
    result: StepState,
) -> Result<Option<String>, StoreError> {
    let Some(row) = row else {
        return Ok(None);
    };
    let rollout_id: String = row.try_get("rollout_id")?;
    end_attempt_in(tx, step_id, result).await?;
    Ok(Some(rollout_id))
}

/// A step's result within `tx` (see [`Store::record_step_result`]): the
/// result and the attempt kept in history are one change.
pub(super) async fn step_result_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    host_id: &str,
    result: &StepResultRecord,
    now_ms: i64,
) -> Result<Option<String>, StoreError> {
    let Some(dispatch) = tierwise_common::rollout::parse_dispatch_id(&result.step_id) else {
        return Ok(None);
    };
    let (step_id, attempt) = (dispatch.step_id, dispatch.attempt);
    if dispatch.restart {
        // A restart that could not be started fails its step; one that
        // was started is done when the host reports a later boot.
        if result.outcome.succeeded() {
            return Ok(None);
        }
        let row = sqlx::query(
            "UPDATE rollout_steps SET state = 'failed', outcome = $3, exit_code = $4, output_tail = $5, \
             reason = $6, changed_ms = $7, restart = 'none' \
             WHERE step_id = $1 AND host_id = $2 AND attempts = $8 AND state = 'succeeded' AND restart = 'requested' \
             AND rollout_id IN (SELECT id FROM rollouts WHERE COALESCE(nonce, '') = $9) RETURNING rollout_id",
        )
        .bind(step_id)
        .bind(host_id)
        .bind(outcome_text(StepOutcome::Failed)?)
        .bind(result.exit_code.map(i64::from))
        .bind(result.output_tail.as_str())
        .bind(format!("the restart to finish the step failed: {}", result.reason))
        .bind(now_ms)
        .bind(i64::from(attempt))
        .bind(dispatch.nonce)
        .fetch_optional(&mut **tx)
        .await?;
        return kept_in(tx, row, step_id, StepState::Failed).await;
    }
    let state = if result.outcome.succeeded() {
        StepState::Succeeded
    } else {
        StepState::Failed
    };
    let row = sqlx::query(
        "UPDATE rollout_steps SET state = $3, outcome = $4, exit_code = $5, output_tail = $6, reason = $7, changed_ms = $8, \
         restart = $11 \
         WHERE step_id = $1 AND host_id = $2 AND attempts = $9 AND state = 'dispatched' AND task IS NULL \
         AND rollout_id IN (SELECT id FROM rollouts WHERE COALESCE(nonce, '') = $10) RETURNING rollout_id",
    )
    .bind(step_id)
    .bind(host_id)
    .bind(state.as_str())
    .bind(outcome_text(result.outcome)?)
    .bind(result.exit_code.map(i64::from))
    .bind(result.output_tail.as_str())
    .bind(result.reason.as_str())
    .bind(now_ms)
    .bind(i64::from(attempt))
    .bind(dispatch.nonce)
    .bind(RestartState::after(result.outcome).as_str())
    .fetch_optional(&mut **tx)
    .await?;
    kept_in(tx, row, step_id, state).await
}

/// Restarts the timeout of a host's unanswered steps within its hello's
/// transaction: they are delivered again once it is registered.
pub(super) async fn touch_dispatched_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    host_id: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE rollout_steps SET changed_ms = $2 WHERE host_id = $1 AND state = 'dispatched' AND task IS NULL",
    )
    .bind(host_id)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Gives a Web Application deployment the package the site's Server
/// Manager made for its host's kind of web server, when the controller
/// holds one for the target (it arrives during the rollout, so it is
/// chosen when the step goes out), and records it in the step.
async fn web_package_for(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    action: &mut StepAction,
    step_id: &str,
    host_id: &str,
    target: Version,
) -> Result<(), StoreError> {
    let StepAction::DeployWebApp {
        artifact_sha256, ..
    } = action
    else {
        return Ok(());
    };
    let sha256: Option<String> = sqlx::query_scalar(
        "SELECT p.sha256 FROM web_packages p JOIN components c \
           ON c.host_id = $1 AND c.role = 'web' AND c.web_server_kind = p.web_server \
         WHERE p.release = $2",
    )
    .bind(host_id)
    .bind(target.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(sha256) = sha256 {
        *artifact_sha256 = Some(sha256);
        sqlx::query("UPDATE rollout_steps SET action = $2 WHERE step_id = $1")
            .bind(step_id)
            .bind(json(&*action)?)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl Store {
    /// Appends to the audit log.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        details: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        audit_in(&mut tx, now_ms, actor, action, subject, details).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The newest `limit` audit entries, oldest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut entries = rows
            .iter()
            .map(audit_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        entries.reverse();
        Ok(entries)
    }

    /// Up to `limit` audit entries after number `after_seq`, oldest first:
    /// for following the log and for verifying it page by page.
    pub async fn audit_after(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(audit_from_row)
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// Creates a rollout with its steps, refusing a second active rollout of
    /// the same installation; audited. Returns the new id.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_rollout(
        &self,
        installation: &str,
        target: Version,
        options: &RolloutOptions,
        make_steps: impl FnOnce(&str) -> (Vec<ExecPhase>, Vec<ExecStep>),
        actor: &str,
        details: &str,
        now_ms: i64,
    ) -> Result<String, RolloutError> {
        let mut tx = self.pool.begin().await?;
        super::lock_installation(&mut tx, installation).await?;
        let active = sqlx::query(
            &format!("SELECT id, state FROM rollouts WHERE installation = $1 AND state NOT IN ({}) ORDER BY seq DESC LIMIT 1", RolloutState::final_sql_list()),
        )
        .bind(installation)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = active {
            return Err(RolloutError::AlreadyActive {
                installation: installation.to_owned(),
                id: row.try_get("id")?,
                state: row.try_get("state")?,
            });
        }
        let seq: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM rollouts")
            .fetch_one(&mut *tx)
            .await?
            .try_get("next")?;
        let id = format!("r{seq}");
        let nonce = tierwise_common::hex(&crate::pki::random_bytes::<6>());
        let (phases, steps) = make_steps(&id);
        sqlx::query(
            "INSERT INTO rollouts (id, seq, installation, target, state, current_phase, options, phases, reason, created_ms, updated_ms, nonce) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7, '', $8, $8, $9)",
        )
        .bind(id.as_str())
        .bind(seq)
        .bind(installation)
        .bind(target.to_string())
        .bind(RolloutState::Running.as_str())
        .bind(json(options)?)
        .bind(json(&phases)?)
        .bind(now_ms)
        .bind(nonce.as_str())
        .execute(&mut *tx)
        .await?;
        for (ordinal, step) in steps.iter().enumerate() {
            sqlx::query(
                "INSERT INTO rollout_steps (step_id, rollout_id, ordinal, phase, host_id, action, state, attempts, changed_ms, task) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9)",
            )
            .bind(step.step_id.as_str())
            .bind(id.as_str())
            .bind(i64::try_from(ordinal).unwrap_or(i64::MAX))
            .bind(i64::try_from(step.phase).unwrap_or(i64::MAX))
            .bind(step.host_id.as_str())
            .bind(json(&step.action)?)
            .bind(StepState::Pending.as_str())
            .bind(now_ms)
            .bind(step.task.as_ref().map(json).transpose()?)
            .execute(&mut *tx)
            .await?;
        }
        audit_in(&mut tx, now_ms, actor, "rollout start", &id, details).await?;
        super::notifications::record_rollout_events_in(&mut tx, &id, None, now_ms).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn rollouts(&self) -> Result<Vec<RolloutRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ROLLOUT_COLUMNS} FROM rollouts ORDER BY seq"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rollout_from_row).collect()
    }

    /// The id of the newest rollout, if there is one.
    pub async fn latest_rollout_id(&self) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM rollouts ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The ids of the running rollouts and those waiting for an operator,
    /// oldest first (what the engine evaluates every round).
    pub async fn running_rollout_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM rollouts WHERE state IN ($1, $2) ORDER BY seq")
                .bind(RolloutState::Running.as_str())
                .bind(RolloutState::WaitingForOperator.as_str())
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// A rollout and its steps in order; `None` when there is no such id.
    pub async fn rollout(
        &self,
        id: &str,
    ) -> Result<Option<(RolloutRecord, Vec<ExecStep>)>, StoreError> {
        let Some(row) = sqlx::query(&format!(
            "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let rollout = rollout_from_row(&row)?;
        let steps = sqlx::query(&format!(
            "SELECT {STEP_COLUMNS} FROM rollout_steps WHERE rollout_id = $1 ORDER BY ordinal"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(step_from_row)
        .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((rollout, steps)))
    }

    /// The output tail and exit code of each step that has them.
    pub async fn step_outputs(
        &self,
        rollout_id: &str,
    ) -> Result<Vec<(String, Option<i64>, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT step_id, exit_code, output_tail FROM rollout_steps WHERE rollout_id = $1 AND output_tail <> '' ORDER BY ordinal",
        )
        .bind(rollout_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("step_id")?,
                    row.try_get("exit_code")?,
                    row.try_get("output_tail")?,
                ))
            })
            .collect()
    }

    /// Applies `decide`'s decisions in one transaction, only if the rollout
    /// is still in the state they were made for.
    pub async fn apply_decisions(
        &self,
        rollout: &RolloutRecord,
        decisions: &[Decision],
        now_ms: i64,
    ) -> Result<Option<Vec<(String, u32)>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if !self.still_leader(&mut tx).await? {
            return Ok(None);
        }
        lock_rollout(&mut tx, &rollout.id).await?;
        let current = sqlx::query("SELECT state, current_phase FROM rollouts WHERE id = $1")
            .bind(rollout.id.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let state: String = current.try_get("state")?;
        let phase: i64 = current.try_get("current_phase")?;
        if state != rollout.state.as_str()
            || usize::try_from(phase).ok() != Some(rollout.current_phase)
        {
            return Ok(None);
        }
        let mut dispatched = Vec::new();
        let mut queued = Vec::new();
        let mut engine_failures = EngineFailures::default();
        let set_rollout = |state: RolloutState, phase: usize, reason: &str| {
            sqlx::query("UPDATE rollouts SET state = $2, current_phase = $3, reason = $4, updated_ms = $5 WHERE id = $1")
                .bind(rollout.id.clone())
                .bind(state.as_str())
                .bind(i64::try_from(phase).unwrap_or(i64::MAX))
                .bind(reason.to_owned())
                .bind(now_ms)
        };
        for decision in decisions {
            match decision {
                // Only a step the store really moves goes out, with the
                // attempt it recorded, through the outbox in this same
                // transaction (queued at its end): whichever replica holds
                // the host's stream takes it.
                Decision::Dispatch { step_id } | Decision::Restart { step_id } => {
                    let restart = matches!(decision, Decision::Restart { .. });
                    let sql = if restart {
                        "UPDATE rollout_steps SET restart = 'requested', changed_ms = $2 \
                         WHERE step_id = $1 AND state = 'succeeded' AND restart IN ('required', 'approved') \
                         RETURNING attempts, host_id, action"
                    } else {
                        "UPDATE rollout_steps SET state = 'dispatched', attempts = attempts + 1, changed_ms = $2, \
                         started_ms = $2, exit_code = NULL, output_tail = '', \
                         progress = '', restart = 'none' WHERE step_id = $1 AND state = 'pending' AND task IS NULL \
                         RETURNING attempts, host_id, action"
                    };
                    let row = sqlx::query(sql)
                        .bind(step_id.as_str())
                        .bind(now_ms)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some(row) = row {
                        let attempt =
                            u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(0);
                        let mut action = from_json::<StepAction>(
                            &row.try_get::<String, _>("action")?,
                            "step action",
                        )?;
                        let host_id: String = row.try_get("host_id")?;
                        if !restart {
                            web_package_for(
                                &mut tx,
                                &mut action,
                                step_id,
                                &host_id,
                                rollout.target,
                            )
                            .await?;
                        }
                        let delivery = Delivery {
                            host_id,
                            dispatch_id: if restart {
                                restart_dispatch_id(step_id, attempt, &rollout.nonce)
                            } else {
                                dispatch_id(step_id, attempt, &rollout.nonce)
                            },
                            action: if restart {
                                restart_action(&action)
                            } else {
                                action
                            },
                            dispatched_ms: now_ms,
                        };
                        queued.push(delivery);
                        dispatched.push((step_id.clone(), attempt));
                    }
                }
                Decision::TimedOut { step_id } => {
                    let reason = "no result within the step timeout";
                    let failed = sqlx::query(
                        "UPDATE rollout_steps SET state = 'failed', outcome = 'failed', changed_ms = $2, \
                         reason = $3 WHERE step_id = $1 AND state = 'dispatched' \
                         AND task IS NULL",
                    )
                    .bind(step_id.as_str())
                    .bind(now_ms)
                    .bind(reason)
                    .execute(&mut *tx)
                    .await?;
                    if failed.rows_affected() > 0 {
                        engine_failures.add_in(&mut tx, step_id, reason).await?;
                    }
                }
                Decision::Unverified { step_id, reason } => {
                    let failed = sqlx::query(
                        "UPDATE rollout_steps SET state = 'failed', changed_ms = $2, reason = $3 \
                         WHERE step_id = $1 AND state = 'succeeded'",
                    )
                    .bind(step_id.as_str())
                    .bind(now_ms)
                    .bind(reason.as_str())
                    .execute(&mut *tx)
                    .await?;
                    if failed.rows_affected() > 0 {
                        engine_failures.add_in(&mut tx, step_id, reason).await?;
                    }
                }
                Decision::Retry { step_id } => {
                    sqlx::query(
                        "UPDATE rollout_steps SET state = 'pending', changed_ms = $2 WHERE step_id = $1 AND state = 'failed'",
                    )
                    .bind(step_id.as_str())
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                }
                Decision::AwaitRestart { hosts } => {
                    let reason = format!(
                        "{} must restart to finish the update; `tierwise rollout approve {}` restarts {} (or restart {} yourself, then approve)",
                        hosts.join(", "),
                        rollout.id,
                        if hosts.len() == 1 { "it" } else { "them" },
                        if hosts.len() == 1 { "it" } else { "them" },
                    );
                    set_rollout(
                        RolloutState::WaitingForApproval,
                        rollout.current_phase,
                        &reason,
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                Decision::EnterPhase { phase } => {
                    set_rollout(RolloutState::Running, *phase, "")
                        .execute(&mut *tx)
                        .await?;
                }
                Decision::AwaitApproval { phase } => {
                    set_rollout(
                        RolloutState::WaitingForApproval,
                        *phase,
                        &format!(
                            "the next phase waits for `tierwise rollout approve {}`",
                            rollout.id
                        ),
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                Decision::Halt { reason } => {
                    set_rollout(RolloutState::Failed, rollout.current_phase, reason)
                        .execute(&mut *tx)
                        .await?;
                }
                Decision::Complete | Decision::CompleteWithFailures { .. } => {
                    let state = decision.final_state().unwrap_or(RolloutState::Completed);
                    set_rollout(state, rollout.current_phase, "")
                        .execute(&mut *tx)
                        .await?;
                }
                // A task is opened, never sent: a person does it.
                Decision::AwaitOperator { open, reason } => {
                    for step_id in open {
                        sqlx::query(
                            "UPDATE rollout_steps SET state = 'dispatched', attempts = attempts + 1, changed_ms = $2, \
                             started_ms = $2, exit_code = NULL, output_tail = '', \
                             outcome = NULL, reason = '' WHERE step_id = $1 AND state = 'pending' AND task IS NOT NULL",
                        )
                        .bind(step_id.as_str())
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                        let host: String = sqlx::query_scalar(
                            "SELECT host_id FROM rollout_steps WHERE step_id = $1",
                        )
                        .bind(step_id.as_str())
                        .fetch_one(&mut *tx)
                        .await?;
                        audit_in(
                            &mut tx,
                            now_ms,
                            ENGINE_ACTOR,
                            "rollout task open",
                            &rollout.id,
                            &format!("{step_id} on {host}: waiting for an operator"),
                        )
                        .await?;
                    }
                    set_rollout(
                        RolloutState::WaitingForOperator,
                        rollout.current_phase,
                        reason,
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                Decision::TaskExpired { step_id, reason } => {
                    let failed = sqlx::query(
                        "UPDATE rollout_steps SET state = 'failed', outcome = 'failed', changed_ms = $2, reason = $3 \
                         WHERE step_id = $1 AND state = 'dispatched' AND task IS NOT NULL",
                    )
                    .bind(step_id.as_str())
                    .bind(now_ms)
                    .bind(reason.as_str())
                    .execute(&mut *tx)
                    .await?;
                    if failed.rows_affected() > 0 {
                        engine_failures.add_in(&mut tx, step_id, reason).await?;
                    }
                }
                Decision::StaleBackup {
                    step_id,
                    phase,
                    reason,
                } => {
                    let failed = sqlx::query(
                        "UPDATE rollout_steps SET state = 'failed', outcome = 'failed', changed_ms = $2, reason = $3 \
                         WHERE step_id = $1 AND state = 'succeeded'",
                    )
                    .bind(step_id.as_str())
                    .bind(now_ms)
                    .bind(reason.as_str())
                    .execute(&mut *tx)
                    .await?;
                    if failed.rows_affected() > 0 {
                        end_attempt_in(&mut tx, step_id, StepState::Failed).await?;
                    }
                    set_rollout(RolloutState::Failed, *phase, reason)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            audit_rollout_event_in(&mut tx, &rollout.id, decision, now_ms).await?;
        }
        engine_failures
            .audit_in(&mut tx, &rollout.id, now_ms)
            .await?;
        if !queued.is_empty() {
            // Queued last, stamped with the time just before the commit:
            // what delivery latency is measured from.
            let queued_ms = tierwise_runtime::clock::now_ms();
            for delivery in &mut queued {
                delivery.dispatched_ms = queued_ms;
                super::outbox::enqueue_in(&mut tx, delivery, queued_ms).await?;
            }
            self.notify_outbox(&mut tx).await?;
        }
        // Stamped just before the commit: what a receiver's delay is
        // measured from.
        let at_ms = tierwise_runtime::clock::now_ms();
        super::notifications::record_rollout_events_in(
            &mut tx,
            &rollout.id,
            Some(rollout.state),
            at_ms,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(dispatched))
    }

    /// Records a step's result unless the step already has one (a redelivered
    /// step reports the same result again). Returns the rollout id when
    /// something changed.
    /// `result.step_id` is the dispatch id (`{step}.{attempt}`); a result for
    /// an older attempt changes nothing. Results arriving together (a wave
    /// of clients finishing) are written in one transaction with the
    /// reports beside them (`ingest.rs`); this returns once its own is
    /// committed.
    pub async fn record_step_result(
        &self,
        host_id: &str,
        result: &StepResultRecord,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        self.ingest
            .write(super::ingest::Write::Result(super::ingest::Outcome {
                host_id: host_id.to_owned(),
                record: result.clone(),
                now_ms,
            }))
            .await
            .map(super::ingest::Written::rollout)
    }

    /// Notes what a running attempt reports doing; ignored for an attempt
    /// that is no longer the step's current one.
    pub async fn record_progress(
        &self,
        host_id: &str,
        dispatch_id: &str,
        message: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let Some(dispatch) = tierwise_common::rollout::parse_dispatch_id(dispatch_id) else {
            return Ok(());
        };
        sqlx::query(
            "UPDATE rollout_steps SET progress = $3 WHERE step_id = $1 AND host_id = $2 AND attempts = $4 \
             AND state = 'dispatched' AND changed_ms <= $5 \
             AND rollout_id IN (SELECT id FROM rollouts WHERE COALESCE(nonce, '') = $6)",
        )
        .bind(dispatch.step_id)
        .bind(host_id)
        .bind(message)
        .bind(i64::from(dispatch.attempt))
        .bind(now_ms)
        .bind(dispatch.nonce)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Running steps of a rollout with their latest progress line.
    pub async fn step_progress(
        &self,
        rollout_id: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT step_id, progress FROM rollout_steps WHERE rollout_id = $1 AND state = 'dispatched' ORDER BY ordinal",
        )
        .bind(rollout_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("step_id")?, row.try_get("progress")?)))
            .collect()
    }

    /// Steps sent to a host that have no result yet, and succeeded steps
    /// whose restart was requested, in rollouts not ended, each with its
    /// rollout's nonce: what the host is given on every hello.
    pub async fn outstanding_steps(
        &self,
        host_id: &str,
    ) -> Result<Vec<(ExecStep, String)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT s.step_id, s.phase, s.host_id, s.action, s.state, s.attempts, s.changed_ms, s.outcome, s.reason, \
                    s.restart, s.task, r.nonce \
             FROM rollout_steps s JOIN rollouts r ON r.id = s.rollout_id \
             WHERE s.host_id = $1 AND s.task IS NULL \
               AND (s.state = 'dispatched' OR (s.state = 'succeeded' AND s.restart = 'requested')) \
               AND r.state NOT IN ({}) \
             ORDER BY r.seq, s.ordinal",
            RolloutState::final_sql_list()
        ))
        .bind(host_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let nonce: Option<String> = row.try_get("nonce")?;
                Ok((step_from_row(row)?, nonce.unwrap_or_default()))
            })
            .collect()
    }

    /// Applies an operator command in one transaction: the pure
    /// `transition` decides, this writes what it says and audits it.
    pub async fn apply_command(
        &self,
        id: &str,
        command: &Command,
        actor: &str,
        now_ms: i64,
    ) -> Result<(RolloutRecord, Transition), RolloutError> {
        let mut tx = self.pool.begin().await?;
        let rollout = locked_rollout(&mut tx, id).await?;
        let steps = sqlx::query(&format!(
            "SELECT {STEP_COLUMNS} FROM rollout_steps WHERE rollout_id = $1 ORDER BY ordinal"
        ))
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(step_from_row)
        .collect::<Result<Vec<_>, _>>()?;
        let change = transition(
            &CommandTarget {
                state: rollout.state,
                current_phase: rollout.current_phase,
                phases: &rollout.phases,
                steps: &steps,
            },
            command,
        )
        .map_err(|refusal| RolloutError::Refused {
            id: id.to_owned(),
            refusal,
        })?;
        for step_id in &change.retry {
            sqlx::query(
                "UPDATE rollout_steps SET state = 'pending', outcome = NULL, restart = 'none', changed_ms = $2 \
                 WHERE step_id = $1 AND state = 'failed'",
            )
            .bind(step_id.as_str())
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        for step_id in &change.skip {
            sqlx::query(
                "UPDATE rollout_steps SET state = 'skipped', restart = 'none', changed_ms = $2, \
                 reason = 'skipped by an operator' WHERE step_id = $1",
            )
            .bind(step_id.as_str())
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        if let Some((step_id, note)) = &change.done {
            let step = steps
                .iter()
                .find(|s| &s.step_id == step_id)
                .and_then(|s| s.task.clone());
            if let Some(mut task) = step {
                task.done_by = actor.to_owned();
                task.done_at_ms = Some(now_ms);
                task.note = note.clone();
                sqlx::query(
                    "UPDATE rollout_steps SET state = 'succeeded', outcome = 'succeeded', changed_ms = $2, \
                     reason = '', task = $3 WHERE step_id = $1 AND state IN ('dispatched', 'failed')",
                )
                .bind(step_id.as_str())
                .bind(now_ms)
                .bind(json(&task)?)
                .execute(&mut *tx)
                .await?;
                end_attempt_in(&mut tx, step_id, StepState::Succeeded).await?;
            }
        }
        for step_id in &change.approve_restarts {
            sqlx::query(
                "UPDATE rollout_steps SET restart = 'approved' WHERE step_id = $1 AND restart = 'required'",
            )
            .bind(step_id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        if change.to != rollout.state {
            sqlx::query(
                "UPDATE rollouts SET state = $2, reason = '', updated_ms = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(change.to.as_str())
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        let action = match command {
            Command::Skip { .. } => "rollout skip host".to_owned(),
            Command::Done { .. } => "rollout task done".to_owned(),
            other => format!("rollout {}", other.name()),
        };
        audit_in(&mut tx, now_ms, actor, &action, id, &change.details).await?;
        super::notifications::record_rollout_events_in(&mut tx, id, Some(rollout.state), now_ms)
            .await?;
        tx.commit().await?;
        Ok((
            RolloutRecord {
                state: change.to,
                ..rollout
            },
            change,
        ))
    }
}
