//! Values the controller's unit tests share.

use crate::store::rollouts::RolloutRecord;
use tierwise_common::action::StepAction;
use tierwise_common::plan::PhaseKind;
use tierwise_common::rollout::{ExecPhase, ExecStep, RolloutOptions, RolloutState, StepState};
use tierwise_common::Version;

/// Rollout `r1` of `prod`, running its one phase: a client wave of 100 %.
pub fn wave_rollout() -> RolloutRecord {
    RolloutRecord {
        id: "r1".into(),
        installation: "prod".into(),
        target: Version::new(9, 3, 1, 2),
        state: RolloutState::Running,
        current_phase: 0,
        options: RolloutOptions::default(),
        phases: vec![ExecPhase {
            kind: PhaseKind::ClientWave {
                wave: 0,
                percent: 100,
            },
        }],
        reason: String::new(),
        created_ms: 0,
        updated_ms: 0,
        nonce: "n".into(),
    }
}

/// Step `r1-N` of that rollout's phase on `host`, in `state` (sent once
/// unless pending).
pub fn step(n: usize, host: &str, state: StepState) -> ExecStep {
    ExecStep {
        step_id: format!("r1-{n}"),
        phase: 0,
        host_id: host.into(),
        action: StepAction::Reprobe,
        state,
        attempts: u32::from(state != StepState::Pending),
        changed_ms: 0,
        outcome: None,
        reason: String::new(),
        restart: Default::default(),
        task: None,
    }
}
