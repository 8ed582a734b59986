//! What history shows: a step that failed at least once in `rollout
//! status` ("failed, then skipped", "failed, then succeeded on retry"),
//! and a host's steps across rollouts in `hosts history` and on its
//! dashboard page — each with its attempts, exit codes and bounded output
//! tails, times as RFC 3339 UTC (`*_at`) beside Unix ms (`*_ms`).

use crate::store::history::HostStep;
use serde::{Deserialize, Serialize};
use tierwise_common::rollout::{bounded_tail, recovery, Attempt, ExecStep, Recovery};
use tierwise_runtime::clock::rfc3339;

/// Lines and characters of an attempt's output shown at most.
pub const TAIL_LINES: usize = 20;
pub const TAIL_CHARS: usize = 2_000;
/// Failed attempts a step in a status shows at most (the newest).
pub const FAILED_ATTEMPTS_SHOWN: usize = 5;
/// Steps `hosts history` shows unless `--limit` says otherwise, and at most.
pub const HOST_HISTORY_DEFAULT: u32 = 50;
pub const HOST_HISTORY_MAX: u32 = 1_000;

/// One ended attempt of a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptView {
    /// Its number, from 1.
    pub attempt: u32,
    /// `succeeded` or `failed`.
    pub result: String,
    /// As the agent (or the engine) said it, e.g. `failed_transient`.
    pub outcome: String,
    pub exit_code: Option<i64>,
    /// The end of its output (at most 20 lines, 2,000 characters).
    pub output_tail: String,
    pub reason: String,
    /// When it went out; `null` for attempts from before this was kept.
    pub started_at: Option<String>,
    pub started_ms: Option<i64>,
    /// When its result was recorded.
    pub finished_at: String,
    pub finished_ms: i64,
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> Self {
        Self {
            attempt: a.attempt,
            result: a.result.as_str().to_owned(),
            outcome: a.outcome.clone(),
            exit_code: a.exit_code,
            output_tail: bounded_tail(&a.output_tail, TAIL_LINES, TAIL_CHARS),
            reason: a.reason.clone(),
            started_at: a.started_ms.map(rfc3339),
            started_ms: a.started_ms,
            finished_at: rfc3339(a.finished_ms),
            finished_ms: a.finished_ms,
        }
    }
}

/// A step and how it came through its failures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepHistoryView {
    pub step_id: String,
    pub host_id: String,
    pub action: String,
    /// The step's state now: `succeeded`, `skipped`, `failed`, …
    pub state: String,
    /// `failed_then_skipped`, `failed_then_succeeded_on_retry` or
    /// `failed`; `null` when no attempt failed.
    pub recovery: Option<Recovery>,
    /// The same in words: "failed, then skipped"; empty when none failed.
    pub summary: String,
    /// In a status: its failed attempts (the newest 5); in a host's
    /// history: every ended attempt. Oldest first.
    pub attempts: Vec<AttemptView>,
}

impl StepHistoryView {
    fn new(step: &ExecStep, attempts: Vec<AttemptView>, recovery: Option<Recovery>) -> Self {
        Self {
            step_id: step.step_id.clone(),
            host_id: step.host_id.clone(),
            action: step.action.config_key().to_owned(),
            state: step.state.as_str().to_owned(),
            recovery,
            summary: recovery.map(|r| r.text().to_owned()).unwrap_or_default(),
            attempts,
        }
    }
}

/// The steps of a rollout that failed at least once, in step order, with
/// their failed attempts. `attempts`: the rollout's kept attempts of such
/// steps, by step id.
pub fn failed_steps(steps: &[ExecStep], attempts: &[(String, Attempt)]) -> Vec<StepHistoryView> {
    let mut by_step: std::collections::HashMap<&str, Vec<Attempt>> = Default::default();
    for (step_id, attempt) in attempts {
        by_step
            .entry(step_id.as_str())
            .or_default()
            .push(attempt.clone());
    }
    steps
        .iter()
        .filter_map(|step| {
            let kept = by_step.get(step.step_id.as_str())?;
            let recovery = recovery(step.state, kept)?;
            let failed: Vec<AttemptView> = kept
                .iter()
                .filter(|a| a.result == tierwise_common::rollout::StepState::Failed)
                .map(AttemptView::from)
                .collect();
            let newest = failed[failed.len().saturating_sub(FAILED_ATTEMPTS_SHOWN)..].to_vec();
            Some(StepHistoryView::new(step, newest, Some(recovery)))
        })
        .collect()
}

/// A step of a host in one of its rollouts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStepView {
    pub rollout_id: String,
    pub installation: String,
    /// The release the rollout installs.
    pub release: String,
    #[serde(flatten)]
    pub step: StepHistoryView,
    /// When the step last changed.
    pub changed_at: String,
    pub changed_ms: i64,
}

impl From<&HostStep> for HostStepView {
    fn from(h: &HostStep) -> Self {
        let step = StepHistoryView {
            step_id: h.step_id.clone(),
            host_id: String::new(),
            action: h.action.config_key().to_owned(),
            state: h.state.as_str().to_owned(),
            recovery: recovery(h.state, &h.attempts),
            summary: recovery(h.state, &h.attempts)
                .map(|r| r.text().to_owned())
                .unwrap_or_default(),
            attempts: h.attempts.iter().map(AttemptView::from).collect(),
        };
        Self {
            rollout_id: h.rollout_id.clone(),
            installation: h.installation.clone(),
            release: h.release.to_string(),
            step,
            changed_at: rfc3339(h.changed_ms),
            changed_ms: h.changed_ms,
        }
    }
}

/// `hosts history --json`: a host's steps, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostHistoryView {
    pub host_id: String,
    pub steps: Vec<HostStepView>,
}

impl HostHistoryView {
    pub fn new(host_id: &str, steps: &[HostStep]) -> Self {
        Self {
            host_id: host_id.to_owned(),
            steps: steps
                .iter()
                .map(|s| {
                    let mut view = HostStepView::from(s);
                    view.step.host_id = host_id.to_owned();
                    view
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::test_fixtures::step;
    use tierwise_common::rollout::StepState;

    fn attempt(n: u32, result: StepState, tail: &str) -> Attempt {
        Attempt {
            attempt: n,
            result,
            outcome: result.as_str().to_owned(),
            exit_code: Some(if result == StepState::Failed { 3 } else { 0 }),
            output_tail: tail.to_owned(),
            reason: String::new(),
            started_ms: Some(1_800_000_000_000),
            finished_ms: 1_800_000_001_000,
        }
    }

    #[test]
    fn a_status_names_steps_that_failed_with_their_failed_attempts_only() {
        let steps = vec![
            step(0, "cl-00", StepState::Skipped),
            step(1, "cl-01", StepState::Succeeded),
            step(2, "cl-02", StepState::Succeeded),
        ];
        let long = (0..100).map(|n| format!("line {n}\n")).collect::<String>();
        let attempts = vec![
            ("r1-0".to_owned(), attempt(1, StepState::Failed, &long)),
            ("r1-1".to_owned(), attempt(1, StepState::Failed, "busy")),
            ("r1-1".to_owned(), attempt(2, StepState::Succeeded, "ok")),
            ("r1-2".to_owned(), attempt(1, StepState::Succeeded, "ok")),
        ];
        let shown = failed_steps(&steps, &attempts);
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert_eq!(shown[0].summary, "failed, then skipped");
        assert_eq!(shown[1].summary, "failed, then succeeded on retry");
        assert_eq!(shown[1].attempts.len(), 1, "only the failed attempt");
        assert_eq!(shown[1].attempts[0].exit_code, Some(3));
        let tail = &shown[0].attempts[0].output_tail;
        assert_eq!(tail.lines().count(), TAIL_LINES);
        assert!(tail.ends_with("line 99"), "{tail}");
        assert_eq!(
            shown[0].attempts[0].started_at.as_deref(),
            Some("2027-01-15T08:00:00Z")
        );
        let json = serde_json::to_value(&shown[0]).unwrap();
        assert_eq!(json["recovery"], "failed_then_skipped");
    }
}
