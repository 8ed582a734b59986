//! The events a rollout's change of state makes: derived from its state
//! before and after the change, so every place that changes a rollout
//! makes the same events for the same change.

use super::payload::{Payload, PayloadHost, PayloadRollout, PAYLOAD_VERSION};
use crate::rollout::{RolloutState, StepState};
use serde::{Deserialize, Serialize};

/// What happened. Names are stable: receivers and `--events` use them.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
)]
pub enum EventKind {
    #[serde(rename = "rollout.started")]
    #[strum(serialize = "rollout.started")]
    Started,
    #[serde(rename = "rollout.waiting_for_approval")]
    #[strum(serialize = "rollout.waiting_for_approval")]
    WaitingForApproval,
    #[serde(rename = "rollout.waiting_for_operator")]
    #[strum(serialize = "rollout.waiting_for_operator")]
    WaitingForOperator,
    #[serde(rename = "rollout.halted")]
    #[strum(serialize = "rollout.halted")]
    Halted,
    #[serde(rename = "rollout.completed")]
    #[strum(serialize = "rollout.completed")]
    Completed,
    #[serde(rename = "rollout.aborted")]
    #[strum(serialize = "rollout.aborted")]
    Aborted,
    #[serde(rename = "host.offline")]
    #[strum(serialize = "host.offline")]
    HostOffline,
    /// Sent by `tierwise notify test` only, whatever `--events` says.
    #[serde(rename = "test")]
    #[strum(serialize = "test")]
    Test,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Every event a subscription can choose (all but `test`).
    pub fn subscribable() -> impl Iterator<Item = EventKind> {
        <EventKind as strum::IntoEnumIterator>::iter().filter(|k| *k != EventKind::Test)
    }

    /// The event a rollout entering `state` makes, if any (resuming,
    /// pausing and approving make none: an operator did them).
    pub const fn entering(state: RolloutState) -> Option<EventKind> {
        match state {
            RolloutState::WaitingForApproval => Some(EventKind::WaitingForApproval),
            RolloutState::WaitingForOperator => Some(EventKind::WaitingForOperator),
            RolloutState::Failed => Some(EventKind::Halted),
            RolloutState::Completed | RolloutState::CompletedWithFailures => {
                Some(EventKind::Completed)
            }
            RolloutState::Aborted => Some(EventKind::Aborted),
            RolloutState::Running | RolloutState::Paused => None,
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One host's step as an event tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFact {
    pub host_id: String,
    pub step_id: String,
    /// The step's action (`install_component`, `operator_task`, …).
    pub action: String,
    pub state: StepState,
    /// An operator task waits on this step.
    pub task: bool,
    pub exit_code: Option<i64>,
    pub output_tail: String,
    pub reason: String,
}

/// A rollout as it stands after a change, with its steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutFacts {
    pub id: String,
    pub installation: String,
    pub release: String,
    pub state: RolloutState,
    pub phase: usize,
    pub reason: String,
    pub steps: Vec<HostFact>,
}

impl RolloutFacts {
    fn rollout(&self) -> PayloadRollout {
        PayloadRollout {
            id: self.id.clone(),
            installation: self.installation.clone(),
            release: self.release.clone(),
            state: self.state.as_str().to_owned(),
            phase: self.phase,
            reason: self.reason.clone(),
        }
    }

    fn hosts_in(&self, state: StepState) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .steps
            .iter()
            .filter(|s| s.state == state)
            .map(|s| s.host_id.clone())
            .collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }

    /// The steps an event about `kind` names.
    fn steps_for(&self, kind: EventKind) -> Vec<PayloadHost> {
        self.steps
            .iter()
            .filter(|s| match kind {
                EventKind::Halted => s.state == StepState::Failed,
                EventKind::Completed => matches!(s.state, StepState::Failed | StepState::Skipped),
                EventKind::WaitingForOperator => s.task && s.state == StepState::Dispatched,
                _ => false,
            })
            .map(PayloadHost::from)
            .collect()
    }

    fn payload(&self, kind: EventKind, at_ms: i64) -> Payload {
        Payload {
            version: PAYLOAD_VERSION,
            id: format!("{}.{kind}.{at_ms}", self.id),
            event: kind,
            at: super::payload::rfc3339_ms(at_ms),
            at_ms,
            summary: String::new(),
            rollout: Some(self.rollout()),
            hosts: self.steps_for(kind),
            failed_hosts: self.hosts_in(StepState::Failed),
            skipped_hosts: self.hosts_in(StepState::Skipped),
            host: None,
            hosts_left_out: 0,
            audit_head: None,
        }
        .summarised()
    }
}

/// The events a change of a rollout makes: `before` is its state before
/// the change (`None`: it was just created), `after` the rollout after it.
/// No change of state, no event.
pub fn events_for(before: Option<RolloutState>, after: &RolloutFacts, at_ms: i64) -> Vec<Payload> {
    let mut kinds = Vec::new();
    if before.is_none() {
        kinds.push(EventKind::Started);
    }
    if before != Some(after.state) {
        kinds.extend(EventKind::entering(after.state));
    }
    kinds
        .into_iter()
        .map(|kind| after.payload(kind, at_ms))
        .collect()
}

/// A host with an unfinished step in `rollout` went offline.
pub fn host_offline_event(rollout: &RolloutFacts, host_id: &str, at_ms: i64) -> Payload {
    let mut payload = rollout.payload(EventKind::HostOffline, at_ms);
    payload.host = Some(host_id.to_owned());
    payload.id = format!(
        "{}.{}.{host_id}.{at_ms}",
        rollout.id,
        EventKind::HostOffline
    );
    payload.hosts = rollout
        .steps
        .iter()
        .filter(|s| s.host_id == host_id && s.state.is_unfinished())
        .map(PayloadHost::from)
        .collect();
    payload.summarised()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn step(host: &str, state: StepState) -> HostFact {
        HostFact {
            host_id: host.into(),
            step_id: format!("r1-{host}"),
            action: "install_component".into(),
            state,
            task: false,
            exit_code: (state == StepState::Failed).then_some(1603),
            output_tail: if state == StepState::Failed {
                "MSI error 1603".into()
            } else {
                String::new()
            },
            reason: String::new(),
        }
    }

    pub(crate) fn facts(state: RolloutState, steps: Vec<HostFact>) -> RolloutFacts {
        RolloutFacts {
            id: "r1".into(),
            installation: "prod".into(),
            release: "26.3.100".into(),
            state,
            phase: 2,
            reason: String::new(),
            steps,
        }
    }

    fn kinds(before: Option<RolloutState>, after: &RolloutFacts) -> Vec<EventKind> {
        events_for(before, after, 0)
            .iter()
            .map(|p| p.event)
            .collect()
    }

    #[test]
    fn a_new_rollout_is_started() {
        let after = facts(RolloutState::Running, vec![]);
        assert_eq!(kinds(None, &after), [EventKind::Started]);
    }

    #[test]
    fn no_change_of_state_makes_no_event() {
        for state in <RolloutState as strum::IntoEnumIterator>::iter() {
            assert!(
                kinds(Some(state), &facts(state, vec![])).is_empty(),
                "{state:?}"
            );
        }
    }

    #[test]
    fn each_state_entered_maps_to_its_event() {
        use RolloutState::*;
        let cases = [
            (
                Running,
                WaitingForApproval,
                vec![EventKind::WaitingForApproval],
            ),
            (
                Running,
                WaitingForOperator,
                vec![EventKind::WaitingForOperator],
            ),
            (Running, Failed, vec![EventKind::Halted]),
            (Running, Completed, vec![EventKind::Completed]),
            (Running, CompletedWithFailures, vec![EventKind::Completed]),
            (Paused, Aborted, vec![EventKind::Aborted]),
            (Failed, Running, vec![]),
            (WaitingForApproval, Running, vec![]),
            (Running, Paused, vec![]),
        ];
        for (before, after, expected) in cases {
            assert_eq!(
                kinds(Some(before), &facts(after, vec![])),
                expected,
                "{before:?} -> {after:?}"
            );
        }
    }

    #[test]
    fn a_halt_names_the_failing_hosts_with_their_output() {
        let after = facts(
            RolloutState::Failed,
            vec![
                step("srv-01", StepState::Succeeded),
                step("cl-001", StepState::Failed),
            ],
        );
        let events = events_for(Some(RolloutState::Running), &after, 5);
        let halted = &events[0];
        assert_eq!(halted.failed_hosts, ["cl-001"]);
        assert_eq!(halted.hosts.len(), 1);
        assert_eq!(halted.hosts[0].output_tail, "MSI error 1603");
        assert_eq!(halted.hosts[0].exit_code, Some(1603));
        assert!(halted.summary.contains("cl-001"), "{}", halted.summary);
    }

    #[test]
    fn a_completion_carries_failed_and_skipped_hosts() {
        let after = facts(
            RolloutState::Completed,
            vec![
                step("cl-001", StepState::Succeeded),
                step("cl-002", StepState::Skipped),
                step("cl-003", StepState::Failed),
            ],
        );
        let done = &events_for(Some(RolloutState::Running), &after, 0)[0];
        assert_eq!(done.event, EventKind::Completed);
        assert_eq!(done.failed_hosts, ["cl-003"]);
        assert_eq!(done.skipped_hosts, ["cl-002"]);
        assert_eq!(done.hosts.len(), 2);
    }

    #[test]
    fn waiting_for_an_operator_names_the_open_tasks() {
        let mut task = step("srv-01", StepState::Dispatched);
        task.task = true;
        task.action = "operator_task".into();
        let after = facts(
            RolloutState::WaitingForOperator,
            vec![task, step("cl-001", StepState::Dispatched)],
        );
        let waiting = &events_for(Some(RolloutState::Running), &after, 0)[0];
        assert_eq!(waiting.hosts.len(), 1);
        assert_eq!(waiting.hosts[0].host, "srv-01");
    }

    #[test]
    fn an_offline_host_event_names_the_host_and_its_unfinished_steps() {
        let after = facts(
            RolloutState::Running,
            vec![
                step("cl-001", StepState::Dispatched),
                step("cl-002", StepState::Pending),
            ],
        );
        let event = host_offline_event(&after, "cl-001", 0);
        assert_eq!(event.event, EventKind::HostOffline);
        assert_eq!(event.host.as_deref(), Some("cl-001"));
        assert_eq!(event.hosts.len(), 1);
    }

    #[test]
    fn event_names_read_back() {
        for kind in <EventKind as strum::IntoEnumIterator>::iter() {
            assert_eq!(kind.as_str().parse::<EventKind>().ok(), Some(kind));
            let json = serde_json::to_string(&kind).unwrap_or_default();
            assert_eq!(json, format!("\"{kind}\""));
        }
    }
}
