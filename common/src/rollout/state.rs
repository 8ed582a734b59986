//! The states of a rollout and of its steps, as the store keeps them.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    Running,
    Paused,
    WaitingForApproval,
    Completed,
    Failed,
    Aborted,
}

impl RolloutState {
    pub const fn as_str(self) -> &'static str {
        match self {
            RolloutState::Running => "running",
            RolloutState::Paused => "paused",
            RolloutState::WaitingForApproval => "waiting_for_approval",
            RolloutState::Completed => "completed",
            RolloutState::Failed => "failed",
            RolloutState::Aborted => "aborted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            RolloutState::Running,
            RolloutState::Paused,
            RolloutState::WaitingForApproval,
            RolloutState::Completed,
            RolloutState::Failed,
            RolloutState::Aborted,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// No further change can happen.
    pub const fn is_final(self) -> bool {
        matches!(self, RolloutState::Completed | RolloutState::Aborted)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Dispatched,
    Succeeded,
    Failed,
    Skipped,
}

impl StepState {
    pub const fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Dispatched => "dispatched",
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            StepState::Pending,
            StepState::Dispatched,
            StepState::Succeeded,
            StepState::Failed,
            StepState::Skipped,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
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

    pub const fn as_str(self) -> &'static str {
        match self {
            RestartState::None => "none",
            RestartState::Required => "required",
            RestartState::Approved => "approved",
            RestartState::Requested => "requested",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            RestartState::None,
            RestartState::Required,
            RestartState::Approved,
            RestartState::Requested,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}
