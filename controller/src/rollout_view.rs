//! What `tierwise rollout status` shows: a rollout's phases with their step
//! counts, failures with their output, and hosts a phase waits for.

use crate::store::rollouts::RolloutRecord;
use serde::{Deserialize, Serialize};
use tierwise_common::plan::PhaseKind;
use tierwise_common::rollout::{ExecStep, RolloutState, StepState};
use tierwise_common::HostRecord;
use tierwise_runtime::clock::rfc3339;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseStatus {
    #[serde(flatten)]
    pub kind: PhaseKind,
    /// `done`, `current` or `waiting`.
    pub state: String,
    pub steps: usize,
    pub pending: usize,
    pub dispatched: usize,
    pub succeeded: usize,
    pub failed: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFailure {
    pub step_id: String,
    pub host_id: String,
    pub action: String,
    pub reason: String,
    pub exit_code: Option<i64>,
    pub output_tail: String,
}

/// A step that succeeded while its host does not yet report the effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwaitedReport {
    pub step_id: String,
    pub host_id: String,
    /// What the host should report, e.g. `client 26.3.100.34058`.
    pub expected: String,
    /// What it reports now.
    pub reported: String,
    /// When the step succeeded (RFC 3339); the verification deadline runs from here.
    pub since: String,
}

/// A host that must restart to finish a step of the current phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRestart {
    pub step_id: String,
    pub host_id: String,
    /// The role's restart policy: `ask`, `auto` or `never`.
    pub policy: String,
    /// `required` (waiting for the policy: an approval, or you with
    /// `never`), `approved` or `requested` (the restart was sent).
    pub state: String,
    /// When the step succeeded or the restart was sent (RFC 3339).
    pub since: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningStep {
    pub step_id: String,
    pub host_id: String,
    pub action: String,
    /// The latest line the step's command printed.
    pub progress: String,
}

/// The `--json` form of a rollout (fields are only added).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutStatus {
    pub id: String,
    pub installation: String,
    pub target: String,
    pub state: RolloutState,
    pub current_phase: usize,
    pub reason: String,
    pub created: String,
    pub updated: String,
    pub phases: Vec<PhaseStatus>,
    pub failures: Vec<StepFailure>,
    /// Hosts with steps in the current phase that are offline now.
    pub waiting_for_offline: Vec<String>,
    /// Steps sent and not yet answered, with what they report doing.
    #[serde(default)]
    pub running: Vec<RunningStep>,
    /// Hosts an operator let the rollout finish without (`rollout skip`):
    /// they keep their old version.
    #[serde(default)]
    pub skipped_hosts: Vec<String>,
    /// Steps of the current phase that succeeded and whose effect the host
    /// does not report yet.
    #[serde(default)]
    pub awaiting_reports: Vec<AwaitedReport>,
    /// Hosts that must restart to finish a step, not restarted yet.
    #[serde(default)]
    pub pending_restarts: Vec<PendingRestart>,
    /// Each list above holds at most `LISTED` entries, in step order; this
    /// says how many more a list had, by its name (`running`: 49000). The
    /// phases' counts are always whole.
    #[serde(default)]
    pub omitted: std::collections::BTreeMap<String, u64>,
    /// Why the current phase's steps wait for a maintenance window.
    #[serde(default)]
    pub waiting_for_window: Option<String>,
    /// What the rest is expected to take, and when it should end.
    #[serde(default)]
    pub eta: Option<EtaView>,
    /// The first file of the verified backup that protects this rollout,
    /// once the backup step found it (kept for scripts written when a
    /// backup was one file; `backups` has them all).
    #[serde(default)]
    pub backup: Option<BackupView>,
    /// Every file of that backup: one per database the server reported.
    #[serde(default)]
    pub backups: Vec<DatabaseBackupView>,
    /// The operator tasks, in step order.
    #[serde(default)]
    pub tasks: Vec<TaskView>,
    /// Steps that failed at least once, in step order: how each came
    /// through ("failed, then skipped", "failed, then succeeded on retry")
    /// with its failed attempts, kept after a skip or a retry.
    #[serde(default)]
    pub step_histories: Vec<crate::history_view::StepHistoryView>,
}

/// An operator task as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskView {
    /// The task's id (its step's), as `rollout done` takes it.
    pub id: String,
    pub host_id: String,
    /// `backup`, `install_server` or `reactivate_databases`.
    pub kind: String,
    pub instructions: String,
    /// `pending` (not reached), `open`, `done` or `verified`.
    pub state: String,
    /// Who said it is done, when (RFC 3339) and their note; `null` until then.
    pub done_by: Option<String>,
    pub done_at: Option<String>,
    pub note: Option<String>,
    /// Whether the agents' reports can show it was done.
    pub observable: bool,
    /// What is checked after `done`, or that nothing can be.
    pub verification: String,
}

/// A backup file as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupView {
    pub host_id: String,
    pub path: String,
    pub size: u64,
    /// When it was written (RFC 3339).
    pub time: String,
    #[serde(skip)]
    pub modified_ms: i64,
}

/// A backup file and the database it protects (`null`: the server names
/// no databases, and the file stands for it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseBackupView {
    pub database: Option<String>,
    #[serde(flatten)]
    pub file: BackupView,
}

impl RolloutStatus {
    /// Sets the steps that failed at least once (at most `LISTED`).
    pub fn set_step_histories(&mut self, list: Vec<crate::history_view::StepHistoryView>) {
        self.step_histories = capped(list, "step_histories", &mut self.omitted);
    }

    /// Sets the backup the status shows: every file, and the first alone.
    pub fn set_backups(&mut self, backups: Vec<DatabaseBackupView>) {
        self.backup = backups.first().map(|b| b.file.clone());
        self.backups = backups;
    }
}

impl DatabaseBackupView {
    pub fn new(host_id: &str, file: &tierwise_common::action::BackupFile) -> Self {
        Self {
            database: file.database.clone(),
            file: BackupView {
                host_id: host_id.to_owned(),
                path: file.path.clone(),
                size: file.size,
                time: rfc3339(file.modified_ms),
                modified_ms: file.modified_ms,
            },
        }
    }
}

/// An expectation as shown: seconds of work and RFC 3339 times (the Unix
/// ms beside them travel on the wire only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtaView {
    pub phases: Vec<PhaseEtaView>,
    /// The work left, in seconds; `null` when some of it was never measured.
    pub expected_seconds: Option<i64>,
    /// `null` when unknown, and in a plan.
    pub expected_end: Option<String>,
    /// Actions never measured (`install on client`).
    pub unmeasured: Vec<String>,
    #[serde(skip)]
    pub work_ms: Option<i64>,
    #[serde(skip)]
    pub end_ms: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseEtaView {
    /// The phase's number, from 1, as `status` and `plan` count them.
    pub phase: usize,
    pub expected_seconds: Option<i64>,
    pub starts: Option<String>,
    pub ends: Option<String>,
    pub waits_for_window: bool,
    #[serde(skip)]
    pub work_ms: Option<i64>,
    #[serde(skip)]
    pub starts_ms: Option<i64>,
    #[serde(skip)]
    pub ends_ms: Option<i64>,
}

/// A phase's index, work, start, end (ms) and whether its window delays it.
pub type PhaseTimes = (usize, Option<i64>, Option<i64>, Option<i64>, bool);

impl EtaView {
    /// From the ms an estimate (or the wire) gives; `times`: show when
    /// phases start and end (a status) or only their work (a plan).
    pub fn new(
        phases: Vec<PhaseTimes>,
        work_ms: Option<i64>,
        end_ms: Option<i64>,
        unmeasured: Vec<String>,
        times: bool,
    ) -> Self {
        let at = |ms: Option<i64>| ms.filter(|_| times).map(rfc3339);
        Self {
            phases: phases
                .into_iter()
                .map(|(index, work, starts, ends, waits)| PhaseEtaView {
                    phase: index + 1,
                    expected_seconds: work.map(|ms| ms / 1000),
                    starts: at(starts),
                    ends: at(ends),
                    waits_for_window: waits,
                    work_ms: work,
                    starts_ms: starts,
                    ends_ms: ends,
                })
                .collect(),
            expected_seconds: work_ms.map(|ms| ms / 1000),
            expected_end: at(end_ms),
            unmeasured,
            work_ms,
            end_ms: end_ms.filter(|_| times),
        }
    }

    pub fn from_estimate(estimate: &tierwise_common::rollout::Estimate, times: bool) -> Self {
        Self::new(
            estimate
                .phases
                .iter()
                .map(|p| {
                    (
                        p.phase,
                        p.work_ms,
                        p.starts_ms,
                        p.ends_ms,
                        p.waits_for_window,
                    )
                })
                .collect(),
            estimate.work_ms,
            estimate.end_ms,
            estimate.unmeasured.clone(),
            times,
        )
    }
}

/// The most entries a list of the status holds, so its size does not grow
/// with the fleet.
pub const LISTED: usize = 1_000;

/// `list` cut to `LISTED`, noting in `omitted` how many were left out.
fn capped<T>(
    mut list: Vec<T>,
    name: &str,
    omitted: &mut std::collections::BTreeMap<String, u64>,
) -> Vec<T> {
    if list.len() > LISTED {
        omitted.insert(name.to_owned(), (list.len() - LISTED) as u64);
        list.truncate(LISTED);
    }
    list
}

impl RolloutStatus {
    pub fn build(
        rollout: &RolloutRecord,
        steps: &[ExecStep],
        outputs: &[(String, Option<i64>, String)],
        progress: &[(String, String)],
        hosts: &[HostRecord],
        web_packages: Option<&tierwise_common::plan::WebPackages>,
    ) -> Self {
        let phases = rollout
            .phases
            .iter()
            .enumerate()
            .map(|(index, phase)| {
                let of = |state: StepState| {
                    steps
                        .iter()
                        .filter(|s| s.phase == index && s.state == state)
                        .count()
                };
                let state = if index < rollout.current_phase
                    || matches!(
                        rollout.state,
                        RolloutState::Completed | RolloutState::CompletedWithFailures
                    ) {
                    "done"
                } else if index == rollout.current_phase {
                    "current"
                } else {
                    "waiting"
                };
                PhaseStatus {
                    kind: phase.kind,
                    state: state.into(),
                    steps: steps.iter().filter(|s| s.phase == index).count(),
                    pending: of(StepState::Pending),
                    dispatched: of(StepState::Dispatched),
                    succeeded: of(StepState::Succeeded) + of(StepState::Skipped),
                    failed: of(StepState::Failed),
                }
            })
            .collect();
        let outputs: std::collections::HashMap<&str, (Option<i64>, &str)> = outputs
            .iter()
            .map(|(id, code, tail)| (id.as_str(), (*code, tail.as_str())))
            .collect();
        let progress: std::collections::HashMap<&str, &str> = progress
            .iter()
            .map(|(id, line)| (id.as_str(), line.as_str()))
            .collect();
        let offline: std::collections::HashSet<&str> = hosts
            .iter()
            .filter(|h| !h.online)
            .map(|h| h.host_id.as_str())
            .collect();
        let failures = steps
            .iter()
            .filter(|s| s.state == StepState::Failed)
            .map(|s| {
                let output = outputs.get(s.step_id.as_str());
                StepFailure {
                    step_id: s.step_id.clone(),
                    host_id: s.host_id.clone(),
                    action: s.action.config_key().to_owned(),
                    reason: s.reason.clone(),
                    exit_code: output.and_then(|(code, _)| *code),
                    output_tail: output
                        .map(|(_, tail)| (*tail).to_owned())
                        .unwrap_or_default(),
                }
            })
            .collect();
        let mut waiting_for_offline: Vec<String> = steps
            .iter()
            .filter(|s| {
                s.phase == rollout.current_phase
                    && matches!(s.state, StepState::Pending | StepState::Dispatched)
            })
            .filter(|s| offline.contains(s.host_id.as_str()))
            .map(|s| s.host_id.clone())
            .collect();
        waiting_for_offline.dedup();
        let running = steps
            .iter()
            .filter(|s| s.state == StepState::Dispatched && s.task.is_none())
            .map(|s| RunningStep {
                step_id: s.step_id.clone(),
                host_id: s.host_id.clone(),
                action: s.action.config_key().to_owned(),
                progress: progress
                    .get(s.step_id.as_str())
                    .map(|p| (*p).to_owned())
                    .unwrap_or_default(),
            })
            .collect();
        let observed = tierwise_common::rollout::Observed::new(hosts, web_packages);
        let by_id = &observed.hosts;
        let awaiting_reports = steps
            .iter()
            .filter(|s| s.phase == rollout.current_phase && s.state == StepState::Succeeded)
            .filter(|_| !rollout.state.is_final())
            .filter_map(|s| {
                tierwise_common::rollout::awaited(s, &observed).map(|(expected, reported)| {
                    AwaitedReport {
                        step_id: s.step_id.clone(),
                        host_id: s.host_id.clone(),
                        expected,
                        reported,
                        since: rfc3339(s.changed_ms),
                    }
                })
            })
            .collect();
        let pending_restarts = steps
            .iter()
            .filter(|_| !rollout.state.is_final())
            .filter(|s| tierwise_common::rollout::restart_pending(s, by_id))
            .map(|s| PendingRestart {
                step_id: s.step_id.clone(),
                host_id: s.host_id.clone(),
                policy: rollout
                    .options
                    .restart_policy(s.action.role().unwrap_or(tierwise_common::Role::Client))
                    .as_str()
                    .to_owned(),
                state: s.restart.as_str().to_owned(),
                since: rfc3339(s.changed_ms),
            })
            .collect();
        let mut skipped_hosts: Vec<String> = steps
            .iter()
            .filter(|s| s.state == StepState::Skipped)
            .map(|s| s.host_id.clone())
            .collect();
        skipped_hosts.sort();
        skipped_hosts.dedup();
        let tasks = steps
            .iter()
            .filter_map(|s| {
                let task = s.task.as_ref()?;
                let state = tierwise_common::rollout::task_state(s, &observed)?;
                let done = task.done_at_ms.is_some();
                Some(TaskView {
                    id: s.step_id.clone(),
                    host_id: s.host_id.clone(),
                    kind: task.kind.as_str().to_owned(),
                    instructions: task.instructions.clone(),
                    state: state.as_str().to_owned(),
                    done_by: done.then(|| task.done_by.clone()),
                    done_at: task.done_at_ms.map(rfc3339),
                    note: done.then(|| task.note.clone()),
                    observable: task.observable,
                    verification: task.verification.clone(),
                })
            })
            .collect();
        let mut omitted = std::collections::BTreeMap::new();
        let tasks = capped(tasks, "tasks", &mut omitted);
        RolloutStatus {
            id: rollout.id.clone(),
            installation: rollout.installation.clone(),
            target: rollout.target.to_string(),
            state: rollout.state,
            current_phase: rollout.current_phase,
            reason: rollout.reason.clone(),
            created: rfc3339(rollout.created_ms),
            updated: rfc3339(rollout.updated_ms),
            phases,
            failures: capped(failures, "failures", &mut omitted),
            waiting_for_offline: capped(waiting_for_offline, "waiting_for_offline", &mut omitted),
            running: capped(running, "running", &mut omitted),
            skipped_hosts: capped(skipped_hosts, "skipped_hosts", &mut omitted),
            awaiting_reports: capped(awaiting_reports, "awaiting_reports", &mut omitted),
            pending_restarts: capped(pending_restarts, "pending_restarts", &mut omitted),
            omitted,
            waiting_for_window: None,
            eta: None,
            backup: None,
            backups: Vec::new(),
            tasks,
            step_histories: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::test_fixtures::{step, wave_rollout};

    #[test]
    fn lists_stop_at_listed_and_say_how_many_more() {
        let record = wave_rollout();
        let steps: Vec<ExecStep> = (0..LISTED + 5)
            .map(|n| step(n, &format!("cl-{n:05}"), StepState::Dispatched))
            .collect();
        let status = RolloutStatus::build(&record, &steps, &[], &[], &[], None);
        assert_eq!(status.running.len(), LISTED);
        assert_eq!(status.running[0].step_id, "r1-0", "in step order");
        assert_eq!(status.omitted.get("running"), Some(&5));
        assert_eq!(status.phases[0].dispatched, LISTED + 5, "counts are whole");
        let small = RolloutStatus::build(&record, &steps[..3], &[], &[], &[], None);
        assert!(small.omitted.is_empty());
    }
}
