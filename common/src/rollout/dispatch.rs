//! What goes to an agent: each attempt of a step (and each restart that
//! finishes one) under a dispatch id that an agent's journal is keyed on.

use super::{ExecStep, RestartState, StepState};
use crate::action::StepAction;

/// The id an agent sees for one attempt of a step:
/// `{step_id}.{attempt}.{nonce}`. The agent runs each id at most once, so a
/// redelivered attempt is never run twice, while a retry (a new attempt)
/// really runs again. The nonce is the rollout's own random tag: rollout
/// ids (`r1`) repeat after a database restore, in a new database or on
/// another controller, and the agent's journal must never answer a new
/// rollout's step from an old one. An empty nonce (rollouts created before
/// nonces existed) leaves it out.
pub fn dispatch_id(step_id: &str, attempt: u32, nonce: &str) -> String {
    if nonce.is_empty() {
        format!("{step_id}.{attempt}")
    } else {
        format!("{step_id}.{attempt}.{nonce}")
    }
}

/// The id of the restart that finishes one attempt of a step:
/// `{step_id}.{attempt}.{nonce}.restart`. Sent at most once per attempt.
pub fn restart_dispatch_id(step_id: &str, attempt: u32, nonce: &str) -> String {
    format!("{}.restart", dispatch_id(step_id, attempt, nonce))
}

/// The parts of a dispatch id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DispatchId<'a> {
    pub step_id: &'a str,
    pub attempt: u32,
    /// Empty for the format without a nonce.
    pub nonce: &'a str,
    /// The restart that finishes the attempt, not the attempt itself.
    pub restart: bool,
}

/// Splits a dispatch id back into its parts.
pub fn parse_dispatch_id(id: &str) -> Option<DispatchId<'_>> {
    if let Some(attempt) = id.strip_suffix(".restart") {
        return parse_dispatch_id(attempt)
            .filter(|d| !d.restart)
            .map(|d| DispatchId { restart: true, ..d });
    }
    let (rest, last) = id.rsplit_once('.')?;
    if let Ok(attempt) = last.parse() {
        return Some(DispatchId {
            step_id: rest,
            attempt,
            nonce: "",
            restart: false,
        });
    }
    if last.is_empty() || !last.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let (step_id, attempt) = rest.rsplit_once('.')?;
    Some(DispatchId {
        step_id,
        attempt: attempt.parse().ok()?,
        nonce: last,
        restart: false,
    })
}

/// One thing to deliver to an agent: a step's attempt, or the restart that
/// finishes it, under its dispatch id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub host_id: String,
    pub dispatch_id: String,
    pub action: StepAction,
    /// When the controller queued it (Unix ms; just before the commit that
    /// dispatches it, or for a delivery again on a hello, that hello): what
    /// delivery latency counts from.
    pub dispatched_ms: i64,
}

/// What a step has outstanding at its host, if anything: the current
/// attempt of a dispatched step, or the requested restart of a succeeded
/// one that the host (booted at `boot_ms`) has not done yet. Delivered on
/// every hello; the agent answers a known id from its journal, so nothing
/// runs twice.
pub fn outstanding(step: &ExecStep, nonce: &str, boot_ms: Option<i64>) -> Option<Delivery> {
    match (step.state, step.restart) {
        (StepState::Dispatched, _) => Some(Delivery {
            host_id: step.host_id.clone(),
            dispatch_id: dispatch_id(&step.step_id, step.attempts, nonce),
            action: step.action.clone(),
            dispatched_ms: step.changed_ms,
        }),
        (StepState::Succeeded, RestartState::Requested)
            if !super::restarted_since(boot_ms, step.changed_ms) =>
        {
            Some(restart_delivery(step, nonce))
        }
        _ => None,
    }
}

/// The restart that finishes a step's current attempt.
pub fn restart_delivery(step: &ExecStep, nonce: &str) -> Delivery {
    Delivery {
        host_id: step.host_id.clone(),
        dispatch_id: restart_dispatch_id(&step.step_id, step.attempts, nonce),
        action: restart_action(&step.action),
        dispatched_ms: step.changed_ms,
    }
}

/// The restart action for a step's action: the same role's command.
pub fn restart_action(action: &StepAction) -> StepAction {
    StepAction::Restart {
        role: action.role().unwrap_or(crate::Role::Client),
    }
}
