//! `decide`: what a running rollout does next, from its steps and what the
//! agents report.

use super::{
    ExecPhase, ExecStep, RestartPolicy, RestartState, RolloutOptions, RolloutState, StepState,
};
use crate::action::{StepAction, StepOutcome};
use crate::plan::PhaseKind;
use crate::{HostRecord, Role, Version};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap, HashSet};

/// What `decide` sees.
#[derive(Clone, Copy, Debug)]
pub struct RolloutSnapshot<'a> {
    pub state: RolloutState,
    pub current_phase: usize,
    pub options: &'a RolloutOptions,
    pub phases: &'a [ExecPhase],
    pub steps: &'a [ExecStep],
    /// The installation's hosts as the agents report them now.
    pub hosts: &'a [HostRecord],
    /// The installation's maintenance windows.
    pub windows: &'a [crate::window::MaintenanceWindow],
    /// The Web Application packages the controller holds for the target
    /// (signed, where releases must be); `None`: none.
    pub web_packages: Option<&'a crate::plan::WebPackages>,
}

/// The hosts by id. Hashed, not ordered: `decide` looks every step's host
/// up, and a wave can hold 50,000 of them (string comparisons in a tree
/// were most of its time).
pub type HostsById<'a> = HashMap<&'a str, &'a HostRecord>;

/// What a step's effect is checked against: the hosts as their agents
/// report them, by id, and the Web Application packages the controller
/// holds for the rollout's target.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    pub hosts: HostsById<'a>,
    pub web_packages: Option<&'a crate::plan::WebPackages>,
}

impl<'a> Observed<'a> {
    pub fn new(
        hosts: &'a [HostRecord],
        web_packages: Option<&'a crate::plan::WebPackages>,
    ) -> Self {
        Self {
            hosts: {
                let mut by_id = HostsById::with_capacity(hosts.len());
                by_id.extend(hosts.iter().map(|h| (h.host_id.as_str(), h)));
                by_id
            },
            web_packages,
        }
    }
}

/// The web server kinds of `kinds` the controller holds no package for.
fn missing_packages(
    web_packages: Option<&crate::plan::WebPackages>,
    kinds: &[crate::WebServerKind],
) -> Vec<crate::WebServerKind> {
    kinds
        .iter()
        .copied()
        .filter(|k| !web_packages.is_some_and(|p| p.covers(*k)))
        .collect()
}

/// Whether a host may begin the current phase's steps now: its scope's
/// window must be open for a whole step time limit. The window is asked
/// only when a scope's work begins: the backup opens the server's run, and
/// the server phase and the databases' reactivation that follow it go on
/// even past the window's end, as do a host's later steps once its first
/// started (`decide`), so a server is never left stopped or half updated.
/// When a breaking release is crossed, every phase after the server's
/// follows at once, whatever its window: old clients cannot log in.
pub fn phase_gate(snapshot: &RolloutSnapshot<'_>, now_ms: i64) -> crate::window::Gate {
    use crate::window::{gate, Gate, WindowScope};
    let phase = snapshot.current_phase;
    let Some(kind) = snapshot.phases.get(phase).map(|p| p.kind) else {
        return Gate::Free;
    };
    let scope = WindowScope::of(kind);
    if scope != WindowScope::Server && snapshot.options.clients_at_once {
        return Gate::Free;
    }
    let continues = phase
        .checked_sub(1)
        .and_then(|previous| snapshot.phases.get(previous))
        .is_some_and(|previous| WindowScope::of(previous.kind) == scope);
    if continues {
        return Gate::Free;
    }
    gate(
        snapshot.windows,
        scope,
        now_ms,
        snapshot.options.step_timeout_ms,
    )
}

/// What the controller should do next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Send the step to its (connected) host.
    Dispatch { step_id: String },
    /// The step got no result in time: it failed.
    TimedOut { step_id: String },
    /// The step succeeded, but its host did not report the effect within
    /// the verification deadline: it failed, for the reason given.
    Unverified { step_id: String, reason: String },
    /// A transient failure: try the step again.
    Retry { step_id: String },
    /// The step's host must restart to finish it: send it the typed
    /// `restart` action (policy `auto`, or approved by an operator).
    Restart { step_id: String },
    /// Nothing else to do in this phase but restarts whose policy is `ask`:
    /// wait for `rollout approve`, which restarts these hosts.
    AwaitRestart { hosts: Vec<String> },
    /// The current phase is done (results and observed state agree).
    EnterPhase { phase: usize },
    /// The current phase is done; the next waits for `rollout approve`.
    AwaitApproval { phase: usize },
    /// Stop: a step failed for good or a wave crossed its error threshold.
    Halt { reason: String },
    /// Every phase is done, and every step succeeded.
    Complete,
    /// Every phase is done, but these hosts have a step that failed
    /// (within a wave's error threshold) or that an operator skipped: the
    /// rollout ends `completed_with_failures`.
    CompleteWithFailures {
        failed_hosts: Vec<String>,
        skipped_hosts: Vec<String>,
    },
    /// Operator tasks were reached (`open`: those to open now) or are
    /// open: the rollout waits for a person, telling them why.
    AwaitOperator { open: Vec<String>, reason: String },
    /// An operator task stayed open past the task timeout: it failed.
    TaskExpired { step_id: String, reason: String },
    /// The backup is older than the rollout allows for the server's
    /// update: the backup step fails, the rollout halts back in the backup
    /// phase, and `rollout resume` takes a new one.
    StaleBackup {
        step_id: String,
        phase: usize,
        reason: String,
    },
}

fn reported_version(host: Option<&HostRecord>, role: Role) -> Option<Version> {
    host?.inventory.component(role)?.version.installed()
}

/// What a succeeded step's host should report and what it reports now, when
/// the two differ; `None` once verified (or for actions with nothing to
/// verify). `hosts` by host id, built once per snapshot.
pub fn awaited(step: &ExecStep, observed: &Observed<'_>) -> Option<(String, String)> {
    let host = observed.hosts.get(step.host_id.as_str()).copied();
    awaited_on(step, host, observed.web_packages)
}

/// `awaited` with the step's host already looked up.
pub fn awaited_on(
    step: &ExecStep,
    host: Option<&HostRecord>,
    web_packages: Option<&crate::plan::WebPackages>,
) -> Option<(String, String)> {
    if verified_on(step, host, web_packages) {
        return None;
    }
    if let StepAction::GenerateWebApp {
        version,
        web_servers,
    } = &step.action
    {
        let missing: Vec<&str> = missing_packages(web_packages, web_servers)
            .into_iter()
            .map(|k| k.as_str())
            .collect();
        return Some((
            format!(
                "a Web Application package of {version} for each of {}",
                web_servers
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!("none for {}", missing.join(", ")),
        ));
    }
    if restart_pending_on(step, host) {
        let booted = host.and_then(|h| h.boot_ms).map_or_else(
            || "no boot time".to_owned(),
            |boot| {
                format!(
                    "no restart since the step (booted {} s before it)",
                    (step.changed_ms - boot) / 1000
                )
            },
        );
        return Some((
            format!(
                "a restart ({}), then the new version",
                step.restart.as_str()
            ),
            booted,
        ));
    }
    let shown = |role: Role| {
        reported_version(host, role).map_or_else(|| "no version".to_owned(), |v| v.to_string())
    };
    match &step.action {
        StepAction::InstallComponent { role, version, .. } => Some((
            format!("{role} {version}"),
            format!("{role} {}", shown(*role)),
        )),
        StepAction::DeployWebApp { version, .. } => Some((
            format!("web {version}"),
            format!("web {}", shown(Role::Web)),
        )),
        StepAction::ReactivateDatabases { version } => {
            let reported = host
                .and_then(|h| h.inventory.component(Role::Server))
                .map(|c| match &c.facts {
                    crate::Facts::Server(facts) => facts
                        .databases
                        .iter()
                        .map(|db| {
                            format!(
                                "{} {} at {}",
                                db.name,
                                if db.active { "active" } else { "inactive" },
                                db.patch_level
                                    .map_or_else(|| "unknown".to_owned(), |v| v.to_string())
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                    _ => String::new(),
                })
                .unwrap_or_default();
            Some((
                format!("every database active at patch level {version}"),
                reported,
            ))
        }
        _ => None,
    }
}

/// "45 s" or "30 min", for reasons.
fn span(ms: i64) -> String {
    if ms < 120_000 {
        format!("{} s", ms / 1000)
    } else {
        format!("{} min", ms / 60_000)
    }
}

/// Whether what a succeeded step should have changed is what the agent now
/// reports.
fn verified(step: &ExecStep, observed: &Observed<'_>) -> bool {
    let host = observed.hosts.get(step.host_id.as_str()).copied();
    verified_on(step, host, observed.web_packages)
}

/// `verified` with the step's host already looked up.
pub(super) fn verified_on(
    step: &ExecStep,
    host: Option<&HostRecord>,
    web_packages: Option<&crate::plan::WebPackages>,
) -> bool {
    if restart_pending_on(step, host) {
        return false;
    }
    match &step.action {
        StepAction::GenerateWebApp { web_servers, .. } => {
            missing_packages(web_packages, web_servers).is_empty()
        }
        StepAction::InstallComponent { role, version, .. } => {
            reported_version(host, *role) == Some(*version)
        }
        StepAction::DeployWebApp { version, .. } => {
            reported_version(host, Role::Web) == Some(*version)
        }
        StepAction::ReactivateDatabases { version } => host.is_some_and(|h| {
            h.inventory
                .component(Role::Server)
                .is_some_and(|c| match &c.facts {
                    crate::Facts::Server(facts) => facts
                        .databases
                        .iter()
                        .all(|db| db.active && db.patch_level == Some(*version)),
                    _ => false,
                })
        }),
        StepAction::Backup
        | StepAction::StopServices { .. }
        | StepAction::StartServices { .. }
        | StepAction::Restart { .. }
        | StepAction::Reprobe => true,
    }
}

/// Whether a succeeded step still waits for its host to restart: it needs
/// one and the host has not reported a boot after the step's last change
/// (its result, or the restart request).
pub fn restart_pending(step: &ExecStep, hosts: &HostsById<'_>) -> bool {
    restart_pending_on(step, hosts.get(step.host_id.as_str()).copied())
}

/// `restart_pending` with the step's host already looked up.
pub(super) fn restart_pending_on(step: &ExecStep, host: Option<&HostRecord>) -> bool {
    step.state == StepState::Succeeded
        && step.restart != RestartState::None
        && !restarted_since(host.and_then(|h| h.boot_ms), step.changed_ms)
}

/// Whether a host that booted at `boot_ms` has started again since
/// `since_ms`.
pub fn restarted_since(boot_ms: Option<i64>, since_ms: i64) -> bool {
    boot_ms.is_some_and(|boot| boot > since_ms)
}

/// Where an operator task stands (`None` for a step an agent runs).
pub fn task_state(step: &ExecStep, observed: &Observed<'_>) -> Option<crate::task::TaskState> {
    use crate::task::TaskState;
    step.task.as_ref()?;
    Some(match step.state {
        StepState::Pending => TaskState::Pending,
        StepState::Dispatched | StepState::Failed => TaskState::Open,
        StepState::Succeeded | StepState::Skipped if verified(step, observed) => {
            TaskState::Verified
        }
        StepState::Succeeded | StepState::Skipped => TaskState::Done,
    })
}

/// Why the rollout waits for a person, naming the tasks and the way out.
fn operator_reason(rollout_tasks: &[&ExecStep]) -> String {
    let names: Vec<String> = rollout_tasks
        .iter()
        .filter_map(|s| {
            s.task
                .as_ref()
                .map(|t| format!("{} ({} on {})", s.step_id, t.kind.title(), s.host_id))
        })
        .collect();
    let down = rollout_tasks
        .iter()
        .any(|s| s.task.as_ref().is_some_and(|t| t.kind.installation_down()));
    format!(
        "waiting for an operator: {}; `tierwise rollout status` has the instructions, `tierwise rollout done` says it is done{}",
        names.join(", "),
        if down {
            ". Password Secure is out of service until then: the server's services were stopped for the update and its databases are deactivated until they are reactivated"
        } else {
            ""
        }
    )
}

/// The backup a server phase that has not begun would rely on, when it is
/// older than the rollout allows: the decision to take it again.
fn stale_backup(snapshot: &RolloutSnapshot<'_>, kind: PhaseKind, now_ms: i64) -> Option<Decision> {
    if kind != PhaseKind::Server {
        return None;
    }
    let phase = snapshot.current_phase;
    let begun = snapshot
        .steps
        .iter()
        .any(|s| s.phase == phase && (s.state != StepState::Pending || s.attempts > 0));
    if begun {
        return None;
    }
    let backup = snapshot
        .steps
        .iter()
        .find(|s| s.action == StepAction::Backup && s.state == StepState::Succeeded)?;
    stale_backup_of(backup, snapshot.options, now_ms)
}

/// Whether `backup` (the first succeeded backup) is older than the rollout
/// allows: the decision to take it again.
pub(super) fn stale_backup_of(
    backup: &ExecStep,
    options: &RolloutOptions,
    now_ms: i64,
) -> Option<Decision> {
    let age = now_ms - backup.changed_ms;
    let limit = options.max_backup_age_ms;
    (age > limit).then(|| Decision::StaleBackup {
        step_id: backup.step_id.clone(),
        phase: backup.phase,
        reason: format!(
            "the backup ({}) finished {} ago, longer than the {} the server's update may rely on (--max-backup-age): `tierwise rollout resume` takes a new one before the server is touched",
            backup.step_id,
            super::human_span(age),
            super::human_span(limit)
        ),
    })
}

/// A failure that will not be retried.
pub(super) fn final_failure(step: &ExecStep, options: &RolloutOptions) -> bool {
    step.state == StepState::Failed && !retried(step, options)
}

/// Whether a failed step is tried again (after its backoff).
fn retried(step: &ExecStep, options: &RolloutOptions) -> bool {
    step.outcome == Some(StepOutcome::FailedTransient) && step.attempts < options.max_attempts
}

/// The halt a phase's final failures call for: in a client wave, more of
/// them than the error threshold allows (`total` steps); elsewhere any
/// (`first` in step order).
pub(super) fn failure_halt(
    is_wave: bool,
    failed: usize,
    first: Option<&ExecStep>,
    total: usize,
    options: &RolloutOptions,
) -> Option<Decision> {
    if is_wave {
        let allowed = options.error_threshold.allowed(total);
        return (failed > allowed).then(|| Decision::Halt {
            reason: format!(
                "{failed} of {total} client(s) in this wave failed, more than the {allowed} the error threshold allows"
            ),
        });
    }
    first.map(|step| Decision::Halt {
        reason: format!(
            "step {} ({}) on {} failed: {}",
            step.step_id,
            step.action.config_key(),
            step.host_id,
            if step.reason.is_empty() {
                "no reason given"
            } else {
                &step.reason
            }
        ),
    })
}

/// What a step whose host needs a restart does while it waits for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RestartCall {
    /// Send the restart (auto or approved), if the host is connected.
    Send,
    /// Wait for a person (`ask`): no deadline runs.
    Ask,
    /// Wait like any succeeded step (`never`, or requested): the
    /// verification deadline runs.
    Wait,
}

pub(super) fn restart_call(step: &ExecStep, options: &RolloutOptions) -> RestartCall {
    let policy = options.restart_policy(step.action.role().unwrap_or(Role::Client));
    match (step.restart, policy) {
        (RestartState::Approved, _) | (RestartState::Required, RestartPolicy::Auto) => {
            RestartCall::Send
        }
        (RestartState::Required, RestartPolicy::Ask) => RestartCall::Ask,
        _ => RestartCall::Wait,
    }
}

/// When a time-driven decision about a step falls due (Unix ms; due once
/// `now >= due`), for the steps that have one: a dispatched step's timeout
/// (a connected host's, or an operator task's), a succeeded step's
/// verification deadline (connected host), a transient failure's backoff.
/// `unverified`: whether a succeeded step's effect is not shown yet.
pub(super) fn deadline(
    step: &ExecStep,
    options: &RolloutOptions,
    online: bool,
    unverified: bool,
) -> Option<i64> {
    let after = |limit: i64| Some(step.changed_ms.saturating_add(limit).saturating_add(1));
    match step.state {
        StepState::Dispatched if step.task.is_some() => after(options.task_timeout_ms),
        StepState::Dispatched if online => after(options.step_timeout_ms),
        StepState::Succeeded if online && unverified => {
            after(options.verify_timeout_ms(&step.action))
        }
        StepState::Failed if retried(step, options) => {
            let shift = step.attempts.saturating_sub(1).min(16);
            let wait = options.retry_backoff_ms.saturating_mul(1 << shift);
            Some(step.changed_ms.saturating_add(wait))
        }
        _ => None,
    }
}

/// The decision a step's deadline calls for once due (`deadline`).
pub(super) fn on_deadline(
    step: &ExecStep,
    options: &RolloutOptions,
    host: Option<&HostRecord>,
    web_packages: Option<&crate::plan::WebPackages>,
) -> Option<Decision> {
    let step_id = step.step_id.clone();
    match step.state {
        StepState::Dispatched if step.task.is_some() => Some(task_expired(step, options)),
        StepState::Dispatched => Some(Decision::TimedOut { step_id }),
        StepState::Failed => Some(Decision::Retry { step_id }),
        StepState::Succeeded => {
            let (expected, reported) = awaited_on(step, host, web_packages)?;
            Some(Decision::Unverified {
                step_id,
                reason: format!(
                    "{} reported success for {}, but {} later it still reports {reported} instead of {expected}",
                    step.host_id,
                    step.action.config_key(),
                    span(options.verify_timeout_ms(&step.action))
                ),
            })
        }
        _ => None,
    }
}

fn task_expired(step: &ExecStep, options: &RolloutOptions) -> Decision {
    Decision::TaskExpired {
        step_id: step.step_id.clone(),
        reason: format!(
            "nobody said the operator task was done within {} (--task-timeout){}",
            super::human_span(options.task_timeout_ms),
            if step
                .task
                .as_ref()
                .is_some_and(|t| t.kind.installation_down())
            {
                "; Password Secure has been out of service all that time"
            } else {
                ""
            }
        ),
    }
}

/// The wait for an operator, when tasks were reached (`open`) or are open
/// (`waiting`, in step order) and the rollout is not already waiting.
pub(super) fn await_operator(
    state: RolloutState,
    open: Vec<String>,
    waiting: &[&ExecStep],
) -> Option<Decision> {
    (!open.is_empty() || (state == RolloutState::Running && !waiting.is_empty())).then(|| {
        Decision::AwaitOperator {
            open,
            reason: operator_reason(waiting),
        }
    })
}

/// What follows a current phase whose steps all ended and are verified.
pub(super) fn phase_done(snapshot: &RolloutSnapshot<'_>) -> Decision {
    let next = snapshot.current_phase + 1;
    if next >= snapshot.phases.len() {
        return completion(snapshot.steps);
    }
    if needs_approval(snapshot.options, snapshot.phases, next) {
        Decision::AwaitApproval { phase: next }
    } else {
        Decision::EnterPhase { phase: next }
    }
}

/// Whether the current phase's steps may begin now (see `phase_gate`).
pub(super) fn window_open(snapshot: &RolloutSnapshot<'_>, now_ms: i64) -> bool {
    matches!(
        phase_gate(snapshot, now_ms),
        crate::window::Gate::Free | crate::window::Gate::Open { .. }
    )
}

/// The next decisions for a running rollout (or one waiting for an
/// operator); none for any other state. Walks every step of the current
/// phase: the engine keeps a `RolloutDecider` instead, whose rounds cost
/// what changed; this stays the reference it must equal.
pub fn decide(snapshot: &RolloutSnapshot<'_>, now_ms: i64) -> Vec<Decision> {
    if !snapshot.state.is_evaluated() {
        return Vec::new();
    }
    let options = snapshot.options;
    let observed = Observed::new(snapshot.hosts, snapshot.web_packages);
    let hosts = &observed.hosts;
    let phase = snapshot.current_phase;
    let Some(kind) = snapshot.phases.get(phase).map(|p| p.kind) else {
        return vec![completion(snapshot.steps)];
    };
    let steps: Vec<&ExecStep> = snapshot.steps.iter().filter(|s| s.phase == phase).collect();
    let is_wave = matches!(kind, PhaseKind::ClientWave { .. });
    let window_open = window_open(snapshot, now_ms);
    let mut decisions = Vec::new();

    let failed: Vec<&&ExecStep> = steps.iter().filter(|s| final_failure(s, options)).collect();
    let first = failed.first().map(|s| **s);
    if let Some(halt) = failure_halt(is_wave, failed.len(), first, steps.len(), options) {
        return vec![halt];
    }

    // Steps of one host run in order (stop, install, start): hosts with an
    // unfinished step so far wait. One pass, however large the wave.
    let mut unfinished: HashSet<&str> = HashSet::with_capacity(steps.len());
    // Hosts that began this phase's steps: the window is not asked again.
    // Only needed while it is closed (a wave can hold 50,000 hosts).
    let begun: HashSet<&str> = if window_open {
        HashSet::new()
    } else {
        steps
            .iter()
            .filter(|s| s.attempts > 0 || s.state != StepState::Pending)
            .map(|s| s.host_id.as_str())
            .collect()
    };
    if let Some(stale) = stale_backup(snapshot, kind, now_ms) {
        return vec![stale];
    }
    let mut ask_restart: Vec<String> = Vec::new();
    // A task that is not verified holds every later step of its phase:
    // nothing is sent past a person's work until the agents show it.
    let mut held_by_task = false;
    let mut open_tasks: Vec<String> = Vec::new();
    let mut waiting_tasks: Vec<&ExecStep> = Vec::new();
    for step in steps.iter().copied() {
        let host_id = step.host_id.as_str();
        let host = hosts.get(host_id).copied();
        let restarting = restart_pending_on(step, host);
        // A host's later steps wait for an unfinished step and for a
        // restart it needs. One set operation per step: this loop runs
        // over every step of a wave.
        let earlier_done =
            if !matches!(step.state, StepState::Succeeded | StepState::Skipped) || restarting {
                unfinished.insert(host_id)
            } else {
                !unfinished.contains(host_id)
            };
        let may_begin = earlier_done && !held_by_task && (window_open || begun.contains(host_id));
        let online = host.is_some_and(|h| h.online);
        if step.task.is_some() {
            held_by_task |= !(matches!(step.state, StepState::Succeeded | StepState::Skipped)
                && verified(step, &observed));
            match step.state {
                StepState::Pending if may_begin => {
                    open_tasks.push(step.step_id.clone());
                    waiting_tasks.push(step);
                    continue;
                }
                StepState::Dispatched => waiting_tasks.push(step),
                // Done: checked like any succeeded step below.
                StepState::Succeeded => {}
                _ => continue,
            }
        }
        if restarting {
            match restart_call(step, options) {
                RestartCall::Send => {
                    if online {
                        decisions.push(Decision::Restart {
                            step_id: step.step_id.clone(),
                        });
                    }
                    continue;
                }
                RestartCall::Ask => {
                    ask_restart.push(step.host_id.clone());
                    continue;
                }
                RestartCall::Wait => {}
            }
        }
        if step.state == StepState::Pending && may_begin && online {
            decisions.push(Decision::Dispatch {
                step_id: step.step_id.clone(),
            });
        }
        // Time-driven: the timeout runs only while the host is connected
        // (a step waiting for an offline host is not its failure), as does
        // the verification deadline — after it, a success whose effect does
        // not show is a failure, named, never a silent wait.
        let unverified = step.state == StepState::Succeeded && !verified(step, &observed);
        if deadline(step, options, online, unverified).is_some_and(|due| now_ms >= due) {
            decisions.extend(on_deadline(step, options, host, snapshot.web_packages));
        }
    }
    if let Some(wait) = await_operator(snapshot.state, open_tasks, &waiting_tasks) {
        decisions.push(wait);
    }
    if !decisions.is_empty() {
        return decisions;
    }
    if !ask_restart.is_empty() {
        ask_restart.dedup();
        return vec![Decision::AwaitRestart { hosts: ask_restart }];
    }

    // Done when every step has ended and the agents report the result.
    let all_ended = steps.iter().all(|s| {
        matches!(s.state, StepState::Succeeded | StepState::Skipped) || final_failure(s, options)
    });
    let all_verified = steps
        .iter()
        .filter(|s| s.state == StepState::Succeeded)
        .all(|s| verified(s, &observed));
    if !(all_ended && all_verified) {
        return decisions;
    }
    vec![phase_done(snapshot)]
}

/// How a rollout whose phases are all done ends: cleanly, or naming the
/// hosts that failed or were skipped (each once, in order).
pub fn completion(steps: &[ExecStep]) -> Decision {
    let hosts = |state: StepState| -> Vec<String> {
        let mut seen = BTreeSet::new();
        steps
            .iter()
            .filter(|s| s.state == state && seen.insert(s.host_id.as_str()))
            .map(|s| s.host_id.clone())
            .collect()
    };
    let (failed_hosts, skipped_hosts) = (hosts(StepState::Failed), hosts(StepState::Skipped));
    if failed_hosts.is_empty() && skipped_hosts.is_empty() {
        Decision::Complete
    } else {
        Decision::CompleteWithFailures {
            failed_hosts,
            skipped_hosts,
        }
    }
}

impl Decision {
    /// The state the rollout ends in when this decision ends it.
    pub const fn final_state(&self) -> Option<RolloutState> {
        match self {
            Decision::Complete => Some(RolloutState::Completed),
            Decision::CompleteWithFailures { .. } => Some(RolloutState::CompletedWithFailures),
            _ => None,
        }
    }
}

/// Whether entering phase `next` waits for `rollout approve`: with
/// `--approve-phases`, every phase after the first — except, when a breaking
/// release is crossed, the phases after the server phase.
pub fn needs_approval(options: &RolloutOptions, phases: &[ExecPhase], next: usize) -> bool {
    if !options.approve_phases || next == 0 {
        return false;
    }
    // The server's unit is never split: between its install and the
    // databases' reactivation the installation is down.
    if phases.get(next).map(|p| p.kind) == Some(PhaseKind::Databases) {
        return false;
    }
    if !options.clients_at_once {
        return true;
    }
    let after_server = phases
        .iter()
        .position(|p| p.kind == PhaseKind::Server)
        .is_some_and(|server| next > server);
    !after_server
}
