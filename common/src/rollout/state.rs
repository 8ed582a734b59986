//! The states of a rollout and of its steps, as the store keeps them.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString)]
#[cfg_attr(test, derive(strum::EnumIter))]
#[strum(serialize_all = "snake_case")]
pub enum RolloutState {
    Running,
    Paused,
    WaitingForApproval,
    /// An operator task is open: a person must do it and say `done`.
    WaitingForOperator,
    Completed,
    /// Every phase is done, but some hosts failed (within a wave's error
    /// threshold) or were skipped by an operator: they are not on the
    /// target. Final, and not a clean completion (promotion does not count
    /// it).
    CompletedWithFailures,
    Failed,
    Aborted,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }

    /// The engine evaluates it: it runs, or waits for a person while
    /// still watching deadlines.
    pub const fn is_evaluated(self) -> bool {
        matches!(
            self,
            RolloutState::Running | RolloutState::WaitingForOperator
        )
    }

    /// Only a running rollout has an expected end: a paused, waiting or
    /// halted one ends when a person acts, which nobody can foresee.
    pub const fn has_expected_end(self) -> bool {
        matches!(self, RolloutState::Running)
    }

    /// No further change can happen.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            RolloutState::Completed | RolloutState::CompletedWithFailures | RolloutState::Aborted
        )
    }

    /// Every state, in the order a rollout may pass them.
    pub const ALL: [RolloutState; 8] = [
        RolloutState::Running,
        RolloutState::Paused,
        RolloutState::WaitingForApproval,
        RolloutState::WaitingForOperator,
        RolloutState::Completed,
        RolloutState::CompletedWithFailures,
        RolloutState::Failed,
        RolloutState::Aborted,
    ];

    /// The final states as an SQL list (`'completed', …`), for queries
    /// that leave ended rollouts out: the store binds the domain's names.
    pub fn final_sql_list() -> String {
        Self::ALL
            .iter()
            .filter(|s| s.is_final())
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Stops by itself: ended, or halted until an operator acts (what a
    /// watcher waits for).
    pub const fn is_settled(self) -> bool {
        self.is_final() || matches!(self, RolloutState::Failed)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString)]
#[cfg_attr(test, derive(strum::EnumIter))]
#[strum(serialize_all = "snake_case")]
pub enum StepState {
    Pending,
    Dispatched,
    Succeeded,
    Failed,
    Skipped,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }

    /// Not ended yet: waiting, running, or failed (may be retried).
    pub const fn is_unfinished(self) -> bool {
        matches!(
            self,
            StepState::Pending | StepState::Dispatched | StepState::Failed
        )
    }
}

/// Where a succeeded step stands with a restart its host needs to finish
/// it (the installer said 3010 or 1641). The restart is done once the host
/// reports a boot time after the step's result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString)]
#[cfg_attr(test, derive(strum::EnumIter))]
#[strum(serialize_all = "snake_case")]
pub enum RestartState {
    /// No restart involved.
    #[default]
    None,
    /// Needed; the role's restart policy says what happens.
    Required,
    /// An operator approved it (`rollout approve`); it is sent next.
    Approved,
    /// The typed `restart` action was sent to the host.
    Requested,
}

impl RestartState {
    /// Where a step that ended with `outcome` stands.
    pub const fn after(outcome: crate::action::StepOutcome) -> Self {
        match outcome {
            crate::action::StepOutcome::SucceededRestartRequired => RestartState::Required,
            _ => RestartState::None,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}
