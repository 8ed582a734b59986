//! `RolloutDecider`: `decide` for a rollout kept between rounds, whose
//! round costs what changed since the last one, not the size of the phase.
//!
//! It keeps, for the current phase, what each step contributes (`Mark`)
//! and indices over those marks: the steps that may be dispatched, the
//! deadlines in time order (step and task timeouts, verification
//! deadlines, retry backoffs), the restarts to send or to ask for, the
//! final failures, the tasks that hold later steps, and counters. A host
//! told as changed (its record or any of its steps) has its few steps
//! marked again; a round then reads the indices: O(k log n) for k changed
//! hosts, plus the decisions it returns. Anything else that shapes the
//! marks (the phase, the options, the phases, the Web Application
//! packages) rebuilds them whole; the windows and the clock are read each
//! round. `decide` stays the reference: the two return the same decisions
//! in the same order (`decider_tests`).

use super::decide::{
    await_operator, completion, deadline, failure_halt, final_failure, on_deadline, phase_done,
    restart_call, restart_pending_on, stale_backup_of, verified_on, window_open, RestartCall,
};
use super::{Decision, ExecPhase, ExecStep, HostsById, RolloutOptions, RolloutSnapshot, StepState};
use crate::action::StepAction;
use crate::plan::{PhaseKind, WebPackages};
use crate::HostRecord;
use std::collections::{BTreeSet, HashMap};

/// How the decider finds a host by id (callers keep their own index).
pub trait HostLookup {
    fn host(&self, host_id: &str) -> Option<&HostRecord>;
}

impl HostLookup for HostsById<'_> {
    fn host(&self, host_id: &str) -> Option<&HostRecord> {
        self.get(host_id).copied()
    }
}

/// What the marks were made under: when any of it differs, they are made
/// again from the whole snapshot.
#[derive(Debug, PartialEq)]
struct Basis {
    current_phase: usize,
    steps: usize,
    phases: Vec<ExecPhase>,
    options: RolloutOptions,
    web_packages: Option<WebPackages>,
}

impl Basis {
    fn of(snapshot: &RolloutSnapshot<'_>) -> Self {
        Self {
            current_phase: snapshot.current_phase,
            steps: snapshot.steps.len(),
            phases: snapshot.phases.to_vec(),
            options: snapshot.options.clone(),
            web_packages: snapshot.web_packages.cloned(),
        }
    }

    fn holds_for(&self, snapshot: &RolloutSnapshot<'_>) -> bool {
        self.current_phase == snapshot.current_phase
            && self.steps == snapshot.steps.len()
            && self.phases == snapshot.phases
            && &self.options == snapshot.options
            && self.web_packages.as_ref() == snapshot.web_packages
    }
}

/// What one step of the current phase contributes, as last marked. Only
/// its host's record and steps go into it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Mark {
    /// The host's earlier steps in the phase are done (succeeded or
    /// skipped, and restarted where they needed it).
    earlier_done: bool,
    /// The host began the phase's steps: the window is not asked again.
    host_begun: bool,
    /// This step began (attempted, or not pending).
    begun: bool,
    /// Pending, earlier steps done, host connected (an agent's step).
    dispatchable: bool,
    /// When a time-driven decision falls due (`decide::deadline`).
    due: Option<i64>,
    /// Its host is sent a restart now.
    restart: bool,
    /// A restart that waits for `rollout approve`.
    ask_restart: bool,
    /// Failed, and not tried again.
    final_failure: bool,
    /// Ended, and its effect shown where it succeeded.
    complete: bool,
    /// An operator task not done and shown: it holds every later step.
    holding: bool,
}

/// The incremental `decide` of one rollout. Contract: the snapshot's steps
/// keep their positions between rounds (a rollout's steps are fixed when
/// it is made), and every host whose record or steps changed is told
/// through `changed` before the next round.
#[derive(Debug, Default)]
pub struct RolloutDecider {
    basis: Option<Basis>,
    /// Hosts told as changed since the last round.
    changed: BTreeSet<String>,
    /// By step position in the snapshot; default outside the phase.
    marks: Vec<Mark>,
    /// Each host's steps in the phase, in order: a range of `by_host`.
    host_steps: HashMap<String, (usize, usize)>,
    by_host: Vec<usize>,
    phase_steps: usize,
    /// The phase's operator tasks (a handful), and every backup step.
    tasks: Vec<usize>,
    backups: Vec<usize>,
    dispatchable: BTreeSet<usize>,
    /// Of `dispatchable`, those whose host began (a closed window lets
    /// only these go on).
    dispatchable_begun: BTreeSet<usize>,
    deadlines: BTreeSet<(i64, usize)>,
    restarts: BTreeSet<usize>,
    ask_restarts: BTreeSet<usize>,
    failed: BTreeSet<usize>,
    holding: BTreeSet<usize>,
    incomplete: usize,
    begun: usize,
}

impl RolloutDecider {
    /// Notes that a host's record or one of its steps changed.
    pub fn changed(&mut self, host_id: &str) {
        self.changed.insert(host_id.to_owned());
    }

    /// Forgets everything: the next round marks the whole snapshot.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// The next decisions, equal to `decide(snapshot, now_ms)`.
    pub fn decide(
        &mut self,
        snapshot: &RolloutSnapshot<'_>,
        hosts: &impl HostLookup,
        now_ms: i64,
    ) -> Vec<Decision> {
        if !snapshot.state.is_evaluated() {
            return Vec::new();
        }
        let Some(kind) = snapshot.phases.get(snapshot.current_phase).map(|p| p.kind) else {
            return vec![completion(snapshot.steps)];
        };
        self.catch_up(snapshot, hosts);
        if let Some(stop) = self.stop(snapshot, kind, now_ms) {
            return vec![stop];
        }
        let window_open = window_open(snapshot, now_ms);
        let mut decisions = self.step_decisions(snapshot, hosts, window_open, now_ms);
        decisions.extend(self.operator_wait(snapshot, window_open));
        if !decisions.is_empty() {
            return decisions;
        }
        if !self.ask_restarts.is_empty() {
            let mut hosts: Vec<String> = (self.ask_restarts.iter())
                .map(|&at| snapshot.steps[at].host_id.clone())
                .collect();
            hosts.dedup();
            return vec![Decision::AwaitRestart { hosts }];
        }
        if self.incomplete == 0 {
            return vec![phase_done(snapshot)];
        }
        Vec::new()
    }

    /// Brings the marks up to the snapshot: whole when their basis moved,
    /// else the hosts told as changed.
    fn catch_up(&mut self, snapshot: &RolloutSnapshot<'_>, hosts: &impl HostLookup) {
        if !self.basis.as_ref().is_some_and(|b| b.holds_for(snapshot)) {
            self.rebuild(snapshot, hosts);
            return;
        }
        for host_id in std::mem::take(&mut self.changed) {
            self.mark_host(snapshot, hosts, &host_id);
        }
    }

    fn rebuild(&mut self, snapshot: &RolloutSnapshot<'_>, hosts: &impl HostLookup) {
        let phase = snapshot.current_phase;
        let mut grouped: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut fresh = Self {
            basis: Some(Basis::of(snapshot)),
            marks: vec![Mark::default(); snapshot.steps.len()],
            ..Self::default()
        };
        for (at, step) in snapshot.steps.iter().enumerate() {
            if step.action == StepAction::Backup {
                fresh.backups.push(at);
            }
            if step.phase != phase {
                continue;
            }
            fresh.phase_steps += 1;
            if step.task.is_some() {
                fresh.tasks.push(at);
            }
            grouped.entry(step.host_id.as_str()).or_default().push(at);
        }
        fresh.incomplete = fresh.phase_steps;
        for (host_id, positions) in grouped {
            let start = fresh.by_host.len();
            fresh.by_host.extend(positions);
            let range = (start, fresh.by_host.len());
            fresh.host_steps.insert(host_id.to_owned(), range);
            fresh.mark_host(snapshot, hosts, host_id);
        }
        *self = fresh;
    }

    /// Marks again the steps of one host in the phase, in order.
    fn mark_host(
        &mut self,
        snapshot: &RolloutSnapshot<'_>,
        hosts: &impl HostLookup,
        host_id: &str,
    ) {
        let Some(&(start, end)) = self.host_steps.get(host_id) else {
            return;
        };
        let host = hosts.host(host_id);
        let steps = snapshot.steps;
        let begun = |at: &usize| began(&steps[*at]);
        let host_begun = self.by_host[start..end].iter().any(begun);
        let mut unfinished = false;
        for i in start..end {
            let at = self.by_host[i];
            let step = &steps[at];
            let mark = mark(step, host, !unfinished, host_begun, snapshot);
            unfinished |= !matches!(step.state, StepState::Succeeded | StepState::Skipped)
                || restart_pending_on(step, host);
            self.replace(at, mark);
        }
    }

    /// Puts a step's new mark in place of its old one, in every index.
    fn replace(&mut self, at: usize, new: Mark) {
        let old = std::mem::replace(&mut self.marks[at], new);
        if old == new {
            return;
        }
        let toggle = |set: &mut BTreeSet<usize>, was: bool, is: bool| {
            if was && !is {
                set.remove(&at);
            } else if is && !was {
                set.insert(at);
            }
        };
        toggle(&mut self.dispatchable, old.dispatchable, new.dispatchable);
        let begun_ready = |m: Mark| m.dispatchable && m.host_begun;
        toggle(
            &mut self.dispatchable_begun,
            begun_ready(old),
            begun_ready(new),
        );
        toggle(&mut self.restarts, old.restart, new.restart);
        toggle(&mut self.ask_restarts, old.ask_restart, new.ask_restart);
        toggle(&mut self.failed, old.final_failure, new.final_failure);
        toggle(&mut self.holding, old.holding, new.holding);
        if old.due != new.due {
            if let Some(due) = old.due {
                self.deadlines.remove(&(due, at));
            }
            if let Some(due) = new.due {
                self.deadlines.insert((due, at));
            }
        }
        let count = |n: &mut usize, was: bool, is: bool| {
            *n = *n + usize::from(is) - usize::from(was);
        };
        count(&mut self.incomplete, !old.complete, !new.complete);
        count(&mut self.begun, old.begun, new.begun);
    }

    /// What ends the round before any step is looked at: a halt for the
    /// phase's final failures, or a backup too old for the server.
    fn stop(&self, snapshot: &RolloutSnapshot<'_>, kind: PhaseKind, now: i64) -> Option<Decision> {
        let is_wave = matches!(kind, PhaseKind::ClientWave { .. });
        let first = self.failed.first().map(|&at| &snapshot.steps[at]);
        let (failed, total) = (self.failed.len(), self.phase_steps);
        if let Some(halt) = failure_halt(is_wave, failed, first, total, snapshot.options) {
            return Some(halt);
        }
        if kind != PhaseKind::Server || self.begun > 0 {
            return None;
        }
        let backup = (self.backups.iter())
            .map(|&at| &snapshot.steps[at])
            .find(|s| s.state == StepState::Succeeded)?;
        stale_backup_of(backup, snapshot.options, now)
    }

    /// The steps' own decisions, in step order: dispatches, due deadlines
    /// and restarts to send.
    fn step_decisions(
        &self,
        snapshot: &RolloutSnapshot<'_>,
        hosts: &impl HostLookup,
        window_open: bool,
        now: i64,
    ) -> Vec<Decision> {
        let steps = snapshot.steps;
        // Nothing after a task that holds begins.
        let held_after = self.holding.first().copied().unwrap_or(usize::MAX);
        let ready = if window_open {
            &self.dispatchable
        } else {
            &self.dispatchable_begun
        };
        let dispatch = |&at: &usize| {
            let step_id = steps[at].step_id.clone();
            (at, Decision::Dispatch { step_id })
        };
        let mut found: Vec<(usize, Decision)> = ready.range(..held_after).map(dispatch).collect();
        found.extend(self.restarts.iter().map(|&at| {
            let step_id = steps[at].step_id.clone();
            (at, Decision::Restart { step_id })
        }));
        for &(_, at) in self.deadlines.range(..=(now, usize::MAX)) {
            let step = &steps[at];
            let host = hosts.host(&step.host_id);
            let decision = on_deadline(step, snapshot.options, host, snapshot.web_packages);
            found.extend(decision.map(|d| (at, d)));
        }
        found.sort_unstable_by_key(|(at, _)| *at);
        found.into_iter().map(|(_, decision)| decision).collect()
    }

    /// The wait for an operator: the phase's tasks, walked in order.
    fn operator_wait(&self, snapshot: &RolloutSnapshot<'_>, window_open: bool) -> Option<Decision> {
        let (mut held, mut open, mut waiting) = (false, Vec::new(), Vec::new());
        for &at in &self.tasks {
            let (step, mark) = (&snapshot.steps[at], self.marks[at]);
            let may_begin = mark.earlier_done && !held && (window_open || mark.host_begun);
            held |= mark.holding;
            match step.state {
                StepState::Pending if may_begin => {
                    open.push(step.step_id.clone());
                    waiting.push(step);
                }
                StepState::Dispatched => waiting.push(step),
                _ => {}
            }
        }
        await_operator(snapshot.state, open, &waiting)
    }
}

/// Whether a step began: attempted, or no longer pending.
fn began(step: &ExecStep) -> bool {
    step.attempts > 0 || step.state != StepState::Pending
}

/// What a step contributes, from its host and whether its host's earlier
/// steps are done (the same reading as `decide`'s walk).
fn mark(
    step: &ExecStep,
    host: Option<&HostRecord>,
    earlier_done: bool,
    host_begun: bool,
    snapshot: &RolloutSnapshot<'_>,
) -> Mark {
    let options = snapshot.options;
    let online = host.is_some_and(|h| h.online);
    let done = matches!(step.state, StepState::Succeeded | StepState::Skipped);
    let shown = || verified_on(step, host, snapshot.web_packages);
    let final_failure = final_failure(step, options);
    let unverified = step.state == StepState::Succeeded && !shown();
    let mut mark = Mark {
        earlier_done,
        host_begun,
        begun: began(step),
        final_failure,
        complete: (done || final_failure) && !unverified,
        holding: step.task.is_some() && !(done && shown()),
        ..Mark::default()
    };
    // A task not done is walked with the tasks; only its timeout is here.
    if step.task.is_some() && step.state != StepState::Succeeded {
        if step.state == StepState::Dispatched {
            mark.due = deadline(step, options, online, false);
        }
        return mark;
    }
    if restart_pending_on(step, host) {
        match restart_call(step, options) {
            RestartCall::Send => {
                mark.restart = online;
                return mark;
            }
            RestartCall::Ask => {
                mark.ask_restart = true;
                return mark;
            }
            RestartCall::Wait => {}
        }
    }
    mark.dispatchable = step.state == StepState::Pending && earlier_done && online;
    mark.due = deadline(step, options, online, unverified);
    mark
}
