//! The controller's views on the wire: rollout status, audit entries,
//! tokens and operators ⇄ their `tierwise.v1` messages, without loss. The
//! service sends these messages; the CLI turns them back into the same
//! views and prints them, so `--json` is the document the controller made.

use crate::rollout_view::{
    AwaitedReport, BackupView, DatabaseBackupView, PendingRestart, PhaseStatus, RolloutStatus,
    RunningStep, StepFailure, TaskView,
};
use crate::store::rollouts::AuditEntry;
use crate::store::security::{OperatorRecord, TokenRecord, TokenState};
use tierwise_common::rollout::RolloutState;
use tierwise_proto::convert::{phase_kind_from_wire, phase_kind_to_wire};
use tierwise_proto::v1;

/// An enrollment token with its state, as `tokens list --json` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TokenView {
    #[serde(flatten)]
    pub token: TokenRecord,
    /// `active`, `expired`, `used_up` or `revoked`.
    pub state: TokenState,
}

impl TokenView {
    pub fn new(token: TokenRecord, now_ms: i64) -> Self {
        Self {
            state: token.state(now_ms),
            token,
        }
    }
}

/// Why a view from the controller cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("the controller sent a malformed {what}: {why}")]
pub struct ViewError {
    what: &'static str,
    why: String,
}

fn bad(what: &'static str, why: impl Into<String>) -> ViewError {
    ViewError {
        what,
        why: why.into(),
    }
}

fn wide(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn narrow(n: u64, what: &'static str) -> Result<usize, ViewError> {
    usize::try_from(n).map_err(|_| bad(what, format!("{n} is too large")))
}

impl From<&RolloutStatus> for v1::RolloutView {
    fn from(s: &RolloutStatus) -> Self {
        v1::RolloutView {
            id: s.id.clone(),
            installation: s.installation.clone(),
            target: s.target.clone(),
            state: s.state.as_str().to_owned(),
            current_phase: wide(s.current_phase),
            reason: s.reason.clone(),
            created: s.created.clone(),
            updated: s.updated.clone(),
            phases: s
                .phases
                .iter()
                .map(|p| v1::PhaseView {
                    kind: Some(phase_kind_to_wire(p.kind)),
                    state: p.state.clone(),
                    steps: wide(p.steps),
                    pending: wide(p.pending),
                    dispatched: wide(p.dispatched),
                    succeeded: wide(p.succeeded),
                    failed: wide(p.failed),
                })
                .collect(),
            failures: s
                .failures
                .iter()
                .map(|f| v1::StepFailure {
                    step_id: f.step_id.clone(),
                    host_id: f.host_id.clone(),
                    action: f.action.clone(),
                    reason: f.reason.clone(),
                    exit_code: f.exit_code,
                    output_tail: f.output_tail.clone(),
                })
                .collect(),
            waiting_for_offline: s.waiting_for_offline.clone(),
            running: s
                .running
                .iter()
                .map(|r| v1::RunningStep {
                    step_id: r.step_id.clone(),
                    host_id: r.host_id.clone(),
                    action: r.action.clone(),
                    progress: r.progress.clone(),
                })
                .collect(),
            skipped_hosts: s.skipped_hosts.clone(),
            awaiting_reports: s
                .awaiting_reports
                .iter()
                .map(|a| v1::AwaitedReport {
                    step_id: a.step_id.clone(),
                    host_id: a.host_id.clone(),
                    expected: a.expected.clone(),
                    reported: a.reported.clone(),
                    since: a.since.clone(),
                })
                .collect(),
            pending_restarts: s
                .pending_restarts
                .iter()
                .map(|p| v1::PendingRestart {
                    step_id: p.step_id.clone(),
                    host_id: p.host_id.clone(),
                    policy: p.policy.clone(),
                    state: p.state.clone(),
                    since: p.since.clone(),
                })
                .collect(),
            waiting_for_window: s.waiting_for_window.clone().unwrap_or_default(),
            eta: s.eta.as_ref().map(eta_to_wire),
            backup: s.backup.as_ref().map(|b| backup_to_wire(None, b)),
            backups: s
                .backups
                .iter()
                .map(|b| backup_to_wire(b.database.as_deref(), &b.file))
                .collect(),
            omitted: s.omitted.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            tasks: s
                .tasks
                .iter()
                .map(|t| v1::TaskView {
                    id: t.id.clone(),
                    host_id: t.host_id.clone(),
                    kind: t.kind.clone(),
                    instructions: t.instructions.clone(),
                    state: t.state.clone(),
                    done_by: t.done_by.clone().unwrap_or_default(),
                    done_at: t.done_at.clone().unwrap_or_default(),
                    note: t.note.clone().unwrap_or_default(),
                    observable: t.observable,
                    verification: t.verification.clone(),
                })
                .collect(),
            step_histories: s
                .step_histories
                .iter()
                .map(crate::grpc::admin::history::step_to_wire)
                .collect(),
        }
    }
}

impl TryFrom<&v1::RolloutView> for RolloutStatus {
    type Error = ViewError;

    fn try_from(w: &v1::RolloutView) -> Result<Self, Self::Error> {
        const WHAT: &str = "rollout";
        let mut phases = Vec::with_capacity(w.phases.len());
        for p in &w.phases {
            phases.push(PhaseStatus {
                kind: phase_kind_from_wire(p.kind.as_ref())
                    .map_err(|e| bad(WHAT, e.to_string()))?,
                state: p.state.clone(),
                steps: narrow(p.steps, WHAT)?,
                pending: narrow(p.pending, WHAT)?,
                dispatched: narrow(p.dispatched, WHAT)?,
                succeeded: narrow(p.succeeded, WHAT)?,
                failed: narrow(p.failed, WHAT)?,
            });
        }
        Ok(RolloutStatus {
            id: w.id.clone(),
            installation: w.installation.clone(),
            target: w.target.clone(),
            state: RolloutState::parse(&w.state)
                .ok_or_else(|| bad(WHAT, format!("state `{}`", w.state)))?,
            current_phase: narrow(w.current_phase, WHAT)?,
            reason: w.reason.clone(),
            created: w.created.clone(),
            updated: w.updated.clone(),
            phases,
            failures: w
                .failures
                .iter()
                .map(|f| StepFailure {
                    step_id: f.step_id.clone(),
                    host_id: f.host_id.clone(),
                    action: f.action.clone(),
                    reason: f.reason.clone(),
                    exit_code: f.exit_code,
                    output_tail: f.output_tail.clone(),
                })
                .collect(),
            waiting_for_offline: w.waiting_for_offline.clone(),
            running: w
                .running
                .iter()
                .map(|r| RunningStep {
                    step_id: r.step_id.clone(),
                    host_id: r.host_id.clone(),
                    action: r.action.clone(),
                    progress: r.progress.clone(),
                })
                .collect(),
            skipped_hosts: w.skipped_hosts.clone(),
            awaiting_reports: w
                .awaiting_reports
                .iter()
                .map(|a| AwaitedReport {
                    step_id: a.step_id.clone(),
                    host_id: a.host_id.clone(),
                    expected: a.expected.clone(),
                    reported: a.reported.clone(),
                    since: a.since.clone(),
                })
                .collect(),
            pending_restarts: w
                .pending_restarts
                .iter()
                .map(|p| PendingRestart {
                    step_id: p.step_id.clone(),
                    host_id: p.host_id.clone(),
                    policy: p.policy.clone(),
                    state: p.state.clone(),
                    since: p.since.clone(),
                })
                .collect(),
            waiting_for_window: (!w.waiting_for_window.is_empty())
                .then(|| w.waiting_for_window.clone()),
            eta: w.eta.as_ref().map(|e| eta_from_wire(e, true)),
            omitted: w.omitted.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            backup: w.backup.as_ref().and_then(backup_from_wire).map(|b| b.file),
            // A controller from before one file per database sends one.
            backups: if w.backups.is_empty() {
                w.backup.iter().filter_map(backup_from_wire).collect()
            } else {
                w.backups.iter().filter_map(backup_from_wire).collect()
            },
            tasks: w
                .tasks
                .iter()
                .map(|t| {
                    // Set together once an operator said it is done.
                    let done = !t.done_at.is_empty();
                    TaskView {
                        id: t.id.clone(),
                        host_id: t.host_id.clone(),
                        kind: t.kind.clone(),
                        instructions: t.instructions.clone(),
                        state: t.state.clone(),
                        done_by: done.then(|| t.done_by.clone()),
                        done_at: done.then(|| t.done_at.clone()),
                        note: done.then(|| t.note.clone()),
                        observable: t.observable,
                        verification: t.verification.clone(),
                    }
                })
                .collect(),
            step_histories: w
                .step_histories
                .iter()
                .map(crate::grpc::admin::history::step_from_wire)
                .collect(),
        })
    }
}

fn backup_to_wire(database: Option<&str>, b: &BackupView) -> v1::RolloutBackup {
    v1::RolloutBackup {
        host_id: b.host_id.clone(),
        file: Some(v1::BackupFile {
            path: b.path.clone(),
            size: b.size,
            modified_ms: b.modified_ms,
            database: database.unwrap_or_default().to_owned(),
        }),
    }
}

fn backup_from_wire(b: &v1::RolloutBackup) -> Option<DatabaseBackupView> {
    let file = tierwise_common::action::BackupFile::from(b.file.as_ref()?);
    Some(DatabaseBackupView::new(&b.host_id, &file))
}

impl From<&AuditEntry> for v1::AuditEntry {
    fn from(e: &AuditEntry) -> Self {
        v1::AuditEntry {
            at_ms: e.at_ms,
            actor: e.actor.clone(),
            action: e.action.clone(),
            subject: e.subject.clone(),
            details: e.details.clone(),
            seq: e.seq,
            prev_sha256: e.prev_sha256.clone(),
            sha256: e.sha256.clone(),
        }
    }
}

impl From<&v1::AuditEntry> for AuditEntry {
    fn from(e: &v1::AuditEntry) -> Self {
        AuditEntry {
            seq: e.seq,
            at_ms: e.at_ms,
            actor: e.actor.clone(),
            action: e.action.clone(),
            subject: e.subject.clone(),
            details: e.details.clone(),
            prev_sha256: e.prev_sha256.clone(),
            sha256: e.sha256.clone(),
        }
    }
}

impl From<&TokenView> for v1::TokenView {
    fn from(v: &TokenView) -> Self {
        let t = &v.token;
        v1::TokenView {
            id: t.id.clone(),
            installation: t.installation.clone(),
            uses_allowed: t.uses_allowed,
            uses: t.uses,
            expires_ms: t.expires_ms,
            created_ms: t.created_ms,
            created_by: t.created_by.clone(),
            revoked_ms: t.revoked_ms,
            state: v.state.as_str().to_owned(),
        }
    }
}

impl TryFrom<&v1::TokenView> for TokenView {
    type Error = ViewError;

    fn try_from(w: &v1::TokenView) -> Result<Self, Self::Error> {
        Ok(TokenView {
            token: TokenRecord {
                id: w.id.clone(),
                installation: w.installation.clone(),
                uses_allowed: w.uses_allowed,
                uses: w.uses,
                expires_ms: w.expires_ms,
                created_ms: w.created_ms,
                created_by: w.created_by.clone(),
                revoked_ms: w.revoked_ms,
            },
            state: TokenState::parse(&w.state)
                .ok_or_else(|| bad("token", format!("state `{}`", w.state)))?,
        })
    }
}

impl From<&OperatorRecord> for v1::OperatorView {
    fn from(o: &OperatorRecord) -> Self {
        v1::OperatorView {
            name: o.name.clone(),
            role: o.role.clone(),
            created_ms: o.created_ms,
            created_by: o.created_by.clone(),
            expires_ms: o.expires_ms.unwrap_or(0),
            last_used_ms: o.last_used_ms.unwrap_or(0),
        }
    }
}

impl From<&v1::OperatorView> for OperatorRecord {
    fn from(o: &v1::OperatorView) -> Self {
        OperatorRecord {
            name: o.name.clone(),
            role: o.role.clone(),
            created_ms: o.created_ms,
            created_by: o.created_by.clone(),
            expires_ms: (o.expires_ms != 0).then_some(o.expires_ms),
            last_used_ms: (o.last_used_ms != 0).then_some(o.last_used_ms),
        }
    }
}

/// An expectation on the wire: -1 for unknown work, 0 for unknown times.
pub fn eta_to_wire(eta: &crate::rollout_view::EtaView) -> v1::Eta {
    v1::Eta {
        phases: eta
            .phases
            .iter()
            .map(|p| v1::PhaseEta {
                phase: p.phase.saturating_sub(1) as u64,
                work_ms: p.work_ms.unwrap_or(-1),
                starts_ms: p.starts_ms.unwrap_or(0),
                ends_ms: p.ends_ms.unwrap_or(0),
                waits_for_window: p.waits_for_window,
            })
            .collect(),
        work_ms: eta.work_ms.unwrap_or(-1),
        end_ms: eta.end_ms.unwrap_or(0),
        unmeasured: eta.unmeasured.clone(),
    }
}

/// The view of a wire expectation; `times`: it has times (a status).
pub fn eta_from_wire(eta: &v1::Eta, times: bool) -> crate::rollout_view::EtaView {
    let work = |ms: i64| (ms >= 0).then_some(ms);
    let time = |ms: i64| (ms > 0).then_some(ms);
    crate::rollout_view::EtaView::new(
        eta.phases
            .iter()
            .map(|p| {
                (
                    usize::try_from(p.phase).unwrap_or(usize::MAX),
                    work(p.work_ms),
                    time(p.starts_ms),
                    time(p.ends_ms),
                    p.waits_for_window,
                )
            })
            .collect(),
        work(eta.work_ms),
        time(eta.end_ms),
        eta.unmeasured.clone(),
        times,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::test_fixtures::wave_rollout;
    use serde_json::json;

    fn protected() -> RolloutStatus {
        let mut status = RolloutStatus::build(&wave_rollout(), &[], &[], &[], &[], None);
        let file = |database: &str, path: &str| {
            DatabaseBackupView::new(
                "srv-01",
                &tierwise_common::action::BackupFile {
                    database: Some(database.into()),
                    path: path.into(),
                    size: 6,
                    modified_ms: 1_800_000_000_000,
                },
            )
        };
        status.set_backups(vec![
            file("PSDB", "/b/PSDB_1.bak"),
            file("Archive", "/b/Archive_1.bak"),
        ]);
        status
    }

    #[test]
    fn every_backup_file_travels_and_the_json_keeps_the_first_alone() {
        let status = protected();
        let back = RolloutStatus::try_from(&v1::RolloutView::from(&status)).unwrap();
        assert_eq!(back, status);
        let json = serde_json::to_value(&status).unwrap();
        let time = "2027-01-15T08:00:00Z";
        assert_eq!(
            json["backup"],
            json!({"host_id": "srv-01", "path": "/b/PSDB_1.bak", "size": 6, "time": time})
        );
        assert_eq!(
            json["backups"],
            json!([
                {"database": "PSDB", "host_id": "srv-01", "path": "/b/PSDB_1.bak", "size": 6, "time": time},
                {"database": "Archive", "host_id": "srv-01", "path": "/b/Archive_1.bak", "size": 6, "time": time},
            ])
        );
    }

    #[test]
    fn a_controller_that_sends_one_backup_file_shows_it_of_no_database() {
        let status = protected();
        let mut wire = v1::RolloutView::from(&status);
        wire.backups.clear();
        let read = RolloutStatus::try_from(&wire).unwrap();
        assert_eq!(read.backup, status.backup);
        assert_eq!(read.backups.len(), 1);
        assert_eq!(read.backups[0].database, None);
        assert_eq!(read.backups[0].file, status.backups[0].file);
    }
}
