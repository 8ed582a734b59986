//! How long a rollout is expected to take: from the steps still to run,
//! the durations measured for each action, role and release, and the
//! maintenance windows. Pure: the measurements and the clock are inputs.
//!
//! A phase's steps run on all its hosts at once and, on one host, one after
//! another: a phase takes as long as its slowest host's remaining steps.
//! Phases follow each other; one governed by a window starts when a window
//! long enough for a step opens.

use super::{ExecPhase, ExecStep, RolloutOptions, StepState};
use crate::plan::PhaseKind;
use crate::window::{gate, Gate, MaintenanceWindow, WindowScope};
use crate::Role;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Measured durations of steps that succeeded: (count, total ms) by action
/// key, role and release.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durations {
    by: BTreeMap<(String, Role, String), (u64, i64)>,
}

impl Durations {
    pub fn add(&mut self, action: &str, role: Role, release: &str, count: u64, total_ms: i64) {
        let entry = self
            .by
            .entry((action.to_owned(), role, release.to_owned()))
            .or_default();
        entry.0 = entry.0.saturating_add(count);
        entry.1 = entry.1.saturating_add(total_ms);
    }

    /// The mean for this release; else the mean over every release measured
    /// for the action and role; `None` when never measured.
    pub fn expected_ms(&self, action: &str, role: Role, release: &str) -> Option<i64> {
        let mean = |(count, total): (u64, i64)| {
            (count > 0).then(|| total / i64::try_from(count).unwrap_or(i64::MAX))
        };
        if let Some(exact) = self.by.get(&(action.to_owned(), role, release.to_owned())) {
            return mean(*exact);
        }
        let all = self
            .by
            .iter()
            .filter(|((a, r, _), _)| a == action && *r == role)
            .fold((0u64, 0i64), |(c, t), (_, (count, total))| {
                (c.saturating_add(*count), t.saturating_add(*total))
            });
        mean(all)
    }
}

/// One phase's expectation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PhaseEstimate {
    pub phase: usize,
    pub kind: PhaseKind,
    /// The work left: the slowest host's remaining steps; `None` when an
    /// action in it was never measured.
    pub work_ms: Option<i64>,
    /// When it is expected to start and end (Unix ms); `None` when unknown.
    pub starts_ms: Option<i64>,
    pub ends_ms: Option<i64>,
    /// Its window delays its start.
    pub waits_for_window: bool,
}

/// The rollout's expectation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Estimate {
    pub phases: Vec<PhaseEstimate>,
    /// The work left in all phases; `None` when some of it is unmeasured.
    pub work_ms: Option<i64>,
    /// The expected end; `None` when unknown.
    pub end_ms: Option<i64>,
    /// Actions with no measurement yet (`install on client`).
    pub unmeasured: Vec<String>,
}

/// What the rest of a rollout (phases from `from_phase` on) is expected to
/// take, starting at `now_ms`.
#[allow(clippy::too_many_arguments)]
pub fn estimate(
    phases: &[ExecPhase],
    steps: &[ExecStep],
    from_phase: usize,
    release: &str,
    durations: &Durations,
    windows: &[MaintenanceWindow],
    options: &RolloutOptions,
    now_ms: i64,
) -> Estimate {
    let mut unmeasured = BTreeSet::new();
    let mut out = Estimate {
        work_ms: Some(0),
        ..Estimate::default()
    };
    let mut at = Some(now_ms);
    for (index, phase) in phases.iter().enumerate().skip(from_phase) {
        // Remaining work per host, in milliseconds; None once unmeasured.
        let mut hosts: BTreeMap<&str, Option<i64>> = BTreeMap::new();
        for step in steps.iter().filter(|s| {
            s.phase == index && !matches!(s.state, StepState::Succeeded | StepState::Skipped)
        }) {
            let action = step.action.config_key();
            let role = step.action.role().unwrap_or(Role::Client);
            let expected = durations.expected_ms(action, role, release);
            if expected.is_none() {
                unmeasured.insert(format!("{action} on {role}"));
            }
            let host = hosts.entry(step.host_id.as_str()).or_insert(Some(0));
            *host = host.zip(expected).map(|(a, b)| a.saturating_add(b));
        }
        let work = hosts
            .values()
            .try_fold(0i64, |slowest, host| host.map(|ms| slowest.max(ms)));
        let scope = WindowScope::of(phase.kind);
        let exempt = scope == WindowScope::Clients && options.clients_at_once;
        let (starts, waits) = match at {
            Some(t) if !hosts.is_empty() && !exempt => {
                match gate(windows, scope, t, options.step_timeout_ms) {
                    Gate::Free | Gate::Open { .. } => (Some(t), false),
                    Gate::Wait { opens_ms, .. } => (Some(opens_ms), true),
                    Gate::Never { .. } => (None, true),
                }
            }
            other => (other, false),
        };
        let ends = starts.zip(work).map(|(s, w)| s.saturating_add(w));
        out.work_ms = out.work_ms.zip(work).map(|(a, b)| a.saturating_add(b));
        out.phases.push(PhaseEstimate {
            phase: index,
            kind: phase.kind,
            work_ms: work,
            starts_ms: starts,
            ends_ms: ends,
            waits_for_window: waits,
        });
        at = ends;
    }
    out.end_ms = at;
    out.unmeasured = unmeasured.into_iter().collect();
    out
}

/// `1 h 20 min`, `4 min`, `35 s`.
pub fn duration_text(ms: i64) -> String {
    let secs = ms / 1000;
    if secs < 60 {
        format!("{secs} s")
    } else if secs < 3600 {
        format!("{} min", (secs + 30) / 60)
    } else {
        let minutes = (secs + 30) / 60;
        format!("{} h {} min", minutes / 60, minutes % 60)
    }
}
