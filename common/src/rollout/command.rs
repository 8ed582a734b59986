//! Operator commands on a rollout, as a pure transition: given the rollout
//! as the store holds it and a command (pause, resume, abort, approve,
//! skip), either the typed change to apply — new state, steps to retry or
//! skip, the audit line — or a refusal that says why and what to do. The
//! controller applies a transition in one transaction and nothing else.

use super::{ExecPhase, ExecStep, RestartState, RolloutState, StepState};
use crate::plan::PhaseKind;
use std::fmt;

/// What an operator asks of a rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Pause,
    Resume,
    Abort,
    Approve,
    /// Let the rollout finish without this host's unfinished steps.
    Skip {
        host_id: String,
    },
    /// An operator did task `task` (its step id, or its kind when the
    /// rollout has one task of that kind).
    Done {
        task: String,
        note: String,
    },
}

impl Command {
    /// The word the CLI and the audit log use.
    pub const fn name(&self) -> &'static str {
        match self {
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Abort => "abort",
            Command::Approve => "approve",
            Command::Skip { .. } => "skip",
            Command::Done { .. } => "done",
        }
    }

    /// The states a command applies to.
    pub const fn allowed_from(&self) -> &'static [RolloutState] {
        use RolloutState::*;
        match self {
            Command::Pause => &[Running, WaitingForApproval, WaitingForOperator],
            Command::Resume => &[Paused, Failed],
            Command::Abort => &[
                Running,
                Paused,
                WaitingForApproval,
                WaitingForOperator,
                Failed,
            ],
            Command::Approve => &[WaitingForApproval],
            Command::Skip { .. } => &[
                Running,
                Paused,
                WaitingForApproval,
                WaitingForOperator,
                Failed,
            ],
            Command::Done { .. } => &[WaitingForOperator, Running, Paused, Failed],
        }
    }
}

/// The rollout a command is applied to.
#[derive(Clone, Copy, Debug)]
pub struct CommandTarget<'a> {
    pub state: RolloutState,
    pub current_phase: usize,
    pub phases: &'a [ExecPhase],
    pub steps: &'a [ExecStep],
}

/// The change a command makes, applied in one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub command: &'static str,
    /// The rollout's state afterwards (unchanged for `skip`).
    pub to: RolloutState,
    /// Failed steps given a new attempt: they go back to pending.
    pub retry: Vec<String>,
    /// Steps the operator lets the rollout finish without.
    pub skip: Vec<String>,
    /// Steps whose host may now be restarted (an approved restart).
    pub approve_restarts: Vec<String>,
    /// The operator task done, and the note given with it.
    pub done: Option<(String, String)>,
    /// For the audit log: what changed.
    pub details: String,
}

/// Why a command was refused; nothing changes. Reads after "rollout r1 ".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The rollout is not in a state the command applies to.
    WrongState {
        command: &'static str,
        state: RolloutState,
        allowed: String,
    },
    /// `skip` would break the vendor's order; the reason says what to do.
    SkipRefused { reason: String },
    /// The host has no unfinished step in this rollout.
    NothingToSkip { host_id: String },
    /// `done` names no task of this rollout, or one that is not open.
    Task { reason: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::WrongState {
                command,
                state,
                allowed,
            } => write!(
                f,
                "is {}; {command} needs it to be {allowed}",
                state.as_str()
            ),
            Refusal::SkipRefused { reason } => write!(f, "refuses: {reason}"),
            Refusal::NothingToSkip { host_id } => {
                write!(f, "has no unfinished step on `{host_id}`")
            }
            Refusal::Task { reason } => write!(f, "{reason}"),
        }
    }
}

/// Applies an operator command to a rollout: the transition, or why not.
pub fn transition(target: &CommandTarget<'_>, command: &Command) -> Result<Transition, Refusal> {
    let allowed = command.allowed_from();
    if !allowed.contains(&target.state) {
        return Err(Refusal::WrongState {
            command: command.name(),
            state: target.state,
            allowed: allowed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
        });
    }
    let moved = |to: RolloutState| Transition {
        command: command.name(),
        to,
        retry: Vec::new(),
        skip: Vec::new(),
        approve_restarts: Vec::new(),
        done: None,
        details: format!("{} -> {}", target.state.as_str(), to.as_str()),
    };
    match command {
        Command::Pause => Ok(moved(RolloutState::Paused)),
        Command::Abort => Ok(moved(RolloutState::Aborted)),
        Command::Resume => {
            let mut change = moved(RolloutState::Running);
            // After a halt, the current phase's failures get a new attempt.
            if target.state == RolloutState::Failed {
                change.retry = target
                    .steps
                    .iter()
                    .filter(|s| s.phase == target.current_phase && s.state == StepState::Failed)
                    .map(|s| s.step_id.clone())
                    .collect();
            }
            Ok(change)
        }
        Command::Approve => {
            let mut change = moved(RolloutState::Running);
            change.approve_restarts = target
                .steps
                .iter()
                .filter(|s| s.phase == target.current_phase && s.restart == RestartState::Required)
                .map(|s| s.step_id.clone())
                .collect();
            if !change.approve_restarts.is_empty() {
                change.details.push_str(&format!(
                    "; restart approved for {} step(s)",
                    change.approve_restarts.len()
                ));
            }
            Ok(change)
        }
        Command::Skip { host_id } => match skip_verdict(host_id, target.phases, target.steps) {
            SkipVerdict::Allowed { consequence } => {
                let skip: Vec<String> = target
                    .steps
                    .iter()
                    .filter(|s| &s.host_id == host_id && s.state.is_unfinished())
                    .map(|s| s.step_id.clone())
                    .collect();
                Ok(Transition {
                    command: command.name(),
                    to: target.state,
                    details: format!("{host_id}: {} step(s) skipped; {consequence}", skip.len()),
                    retry: Vec::new(),
                    skip,
                    approve_restarts: Vec::new(),
                    done: None,
                })
            }
            SkipVerdict::Refused { reason } => Err(Refusal::SkipRefused { reason }),
            SkipVerdict::NothingToSkip => Err(Refusal::NothingToSkip {
                host_id: host_id.clone(),
            }),
        },
        Command::Done { task, note } => {
            let step = find_task(target.steps, task)?;
            let kind = step.task.as_ref().map_or("task", |t| t.kind.as_str());
            match step.state {
                StepState::Dispatched | StepState::Failed => {}
                StepState::Pending => {
                    return Err(Refusal::Task {
                        reason: format!(
                            "has not reached task {} ({kind} on {}) yet: do it when `rollout status` shows it open, not before",
                            step.step_id, step.host_id
                        ),
                    })
                }
                StepState::Succeeded | StepState::Skipped => {
                    return Err(Refusal::Task {
                        reason: format!(
                            "task {} ({kind} on {}) is already done",
                            step.step_id, step.host_id
                        ),
                    })
                }
            }
            // Waiting for this task alone: the rollout goes on (and checks).
            let others_open = target.steps.iter().any(|s| {
                s.task.is_some() && s.step_id != step.step_id && s.state == StepState::Dispatched
            });
            let to = if target.state == RolloutState::WaitingForOperator && !others_open {
                RolloutState::Running
            } else {
                target.state
            };
            let mut details = format!("{} ({kind} on {}) done", step.step_id, step.host_id);
            if !note.is_empty() {
                details.push_str(&format!("; note: {note}"));
            }
            if to != target.state {
                details.push_str(&format!("; {} -> {}", target.state.as_str(), to.as_str()));
            }
            Ok(Transition {
                command: command.name(),
                to,
                retry: Vec::new(),
                skip: Vec::new(),
                approve_restarts: Vec::new(),
                done: Some((step.step_id.clone(), note.clone())),
                details,
            })
        }
    }
}

/// The task `name` means: a step id, or a task kind the rollout has once.
fn find_task<'a>(steps: &'a [ExecStep], name: &str) -> Result<&'a ExecStep, Refusal> {
    let tasks: Vec<&ExecStep> = steps.iter().filter(|s| s.task.is_some()).collect();
    let listed = || {
        if tasks.is_empty() {
            "it has no operator tasks".to_owned()
        } else {
            format!(
                "its tasks are {}",
                tasks
                    .iter()
                    .map(|s| format!(
                        "{} ({})",
                        s.step_id,
                        s.task.as_ref().map_or("", |t| t.kind.as_str())
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    if let Some(step) = tasks.iter().find(|s| s.step_id == name) {
        return Ok(step);
    }
    if steps.iter().any(|s| s.step_id == name) {
        return Err(Refusal::Task {
            reason: format!(
                "step {name} is run by its host's agent, not an operator task; {}",
                listed()
            ),
        });
    }
    let of_kind: Vec<&&ExecStep> = tasks
        .iter()
        .filter(|s| s.task.as_ref().is_some_and(|t| t.kind.as_str() == name))
        .collect();
    match of_kind.as_slice() {
        [one] => Ok(one),
        [] => Err(Refusal::Task {
            reason: format!("has no task `{name}`; {}", listed()),
        }),
        _ => Err(Refusal::Task {
            reason: format!(
                "has several `{name}` tasks: name one by its id; {}",
                listed()
            ),
        }),
    }
}

/// Why an operator may not skip a host's steps, or what skipping it means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipVerdict {
    /// Allowed; the text says what the rollout then does without the host.
    Allowed { consequence: String },
    /// Refused; the text says why and what to do instead.
    Refused { reason: String },
    /// The host has no unfinished step in this rollout.
    NothingToSkip,
}

/// Whether `rollout skip --host HOST` may let a rollout finish without the
/// host's unfinished steps. Never for the primary server's backup, install
/// and start, nor for the databases' reactivation: every later phase relies
/// on them, and skipping them would let clients go past a server that was
/// never updated — the one thing the vendor forbids. Clients, further
/// application servers and web hosts may be skipped; they keep their
/// version.
pub fn skip_verdict(host_id: &str, phases: &[ExecPhase], steps: &[ExecStep]) -> SkipVerdict {
    let unfinished: Vec<&ExecStep> = steps
        .iter()
        .filter(|s| s.host_id == host_id)
        .filter(|s| s.state.is_unfinished())
        .collect();
    if unfinished.is_empty() {
        return SkipVerdict::NothingToSkip;
    }
    let kind_of = |step: &ExecStep| phases.get(step.phase).map(|p| p.kind);
    if unfinished
        .iter()
        .any(|s| matches!(kind_of(s), Some(PhaseKind::Backup | PhaseKind::Server)))
    {
        return SkipVerdict::Refused {
            reason: format!(
                "{host_id} is the primary server: its backup, install and start are what every later phase relies on, and skipping them would send clients past a server that was never updated. Bring the host back (its steps wait for it), fix what failed and `rollout resume`, or `rollout abort`"
            ),
        };
    }
    if unfinished
        .iter()
        .any(|s| kind_of(s) == Some(PhaseKind::Databases))
    {
        return SkipVerdict::Refused {
            reason: format!(
                "{host_id} reactivates the databases: until they are active at the new patch level the installation does not work with the new server. Bring the host back, fix what failed and `rollout resume`, or `rollout abort`"
            ),
        };
    }
    let consequence = match unfinished.iter().find_map(|s| kind_of(s)) {
        Some(PhaseKind::Web) => format!(
            "{host_id} keeps its old Web Application, which may not work with the new server; update it by hand"
        ),
        Some(PhaseKind::AppServers) => format!(
            "{host_id} stays on its old version as a further application server; update it by hand before clients use it"
        ),
        _ => format!("{host_id} keeps its old client version; it may be locked out of the new server until updated"),
    };
    SkipVerdict::Allowed { consequence }
}
