//! A rollout's executable phases and steps, made from a plan.

use super::{RestartState, StepState};
use crate::action::{StepAction, StepOutcome};
use crate::plan::{Action, PhaseKind, Plan};
use crate::Role;
use serde::{Deserialize, Serialize};

/// One step as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStep {
    pub step_id: String,
    pub phase: usize,
    pub host_id: String,
    pub action: StepAction,
    pub state: StepState,
    pub attempts: u32,
    /// When the state last changed (Unix ms).
    pub changed_ms: i64,
    pub outcome: Option<StepOutcome>,
    pub reason: String,
    /// A restart the host needs to finish the step.
    #[serde(default)]
    pub restart: RestartState,
    /// Set when a person does this step: the host has no command for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<crate::task::OperatorTask>,
}

/// The phases of a rollout, in order, each with its steps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecPhase {
    pub kind: PhaseKind,
}

/// The plan's phases a rollout runs, with their numbers in the plan (from
/// 0): those with nothing to do are left out, so a rollout's phase `i` is
/// the plan's phase `executed_phases(plan)[i].0`.
pub fn executed_phases(plan: &Plan) -> impl Iterator<Item = (usize, &crate::plan::Phase)> {
    plan.phases
        .iter()
        .enumerate()
        .filter(|(_, phase)| !phase.steps.is_empty())
}

/// Turns a plan into executable phases and steps, one for each step of the
/// plan (so the plan and the rollout's status count the same). Step ids
/// are `{rollout}-{n}`.
pub fn steps_from_plan(
    rollout_id: &str,
    plan: &Plan,
    now_ms: i64,
) -> (Vec<ExecPhase>, Vec<ExecStep>) {
    let mut phases = Vec::new();
    let mut steps = Vec::new();
    let push = |phase: usize,
                plan_phase: usize,
                step: &crate::plan::Step,
                action: StepAction,
                steps: &mut Vec<ExecStep>| {
        let host_id = step.host_id.as_str();
        let step_id = format!("{rollout_id}-{}", steps.len() + 1);
        // The plan's own task, told how to say it is done.
        let task = step.task.and_then(|kind| {
            let planned = plan
                .tasks
                .iter()
                .find(|t| t.phase == plan_phase && t.host_id == host_id && t.kind == kind)?;
            Some(crate::task::OperatorTask {
                kind,
                instructions: planned.instructions.replace(
                    crate::task::DONE_PLACEHOLDER,
                    &format!("`tierwise rollout done {rollout_id} {step_id}`"),
                ),
                observable: planned.observable,
                verification: planned.verification.clone(),
                done_by: String::new(),
                done_at_ms: None,
                note: String::new(),
            })
        });
        steps.push(ExecStep {
            step_id,
            phase,
            host_id: host_id.to_owned(),
            action,
            state: StepState::Pending,
            attempts: 0,
            changed_ms: now_ms,
            outcome: None,
            reason: String::new(),
            restart: RestartState::None,
            task,
        });
    };
    for (plan_phase, phase) in executed_phases(plan) {
        let index = phases.len();
        phases.push(ExecPhase { kind: phase.kind });
        let role = if phase.kind == PhaseKind::AppServers {
            Role::AppServer
        } else {
            Role::Server
        };
        for step in &phase.steps {
            let to = step.to;
            let action = match step.action {
                Action::Backup => StepAction::Backup,
                Action::StopServices => StepAction::StopServices { role },
                Action::StartServices => StepAction::StartServices { role },
                Action::InstallServer | Action::InstallAppServer => StepAction::InstallComponent {
                    role,
                    version: to,
                    artifact_sha256: None,
                },
                Action::ReactivateDatabases => StepAction::ReactivateDatabases { version: to },
                Action::GenerateWebApp => StepAction::GenerateWebApp {
                    version: to,
                    web_servers: step.web_servers.clone(),
                },
                Action::DeployWebApp => StepAction::DeployWebApp {
                    version: to,
                    artifact_sha256: None,
                },
                Action::InstallClient => StepAction::InstallComponent {
                    role: Role::Client,
                    version: to,
                    artifact_sha256: None,
                },
            };
            push(index, plan_phase, step, action, &mut steps);
        }
    }
    (phases, steps)
}
