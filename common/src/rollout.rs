//! Rollout execution as a pure function: given what the store knows about a
//! rollout (its steps and their states) and what the agents report (the
//! inventory), `decide` says what to do next. The controller loads a
//! snapshot, calls `decide`, and applies the decisions in one transaction,
//! so a restart at any moment loses nothing: the next snapshot simply leads
//! to the same decisions again.

use crate::action::{StepAction, StepOutcome};
use crate::plan::{Action, PhaseKind, Plan};
use crate::{HostRecord, Role, Version};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

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
}

/// How many failed clients a wave tolerates before the rollout halts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorThreshold {
    Percent(u8),
    Count(usize),
}

impl ErrorThreshold {
    /// `5%` or `3`: digits only (no sign, no space before `%`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if let Some(percent) = text.strip_suffix('%') {
            let value: u8 = Some(percent)
                .filter(|p| digits(p))
                .and_then(|p| p.parse().ok())
                .filter(|p| *p <= 100)
                .ok_or_else(|| format!("`{text}` is not a share from 0% to 100%"))?;
            return Ok(ErrorThreshold::Percent(value));
        }
        Some(text)
            .filter(|t| digits(t))
            .and_then(|t| t.parse::<usize>().ok())
            .map(ErrorThreshold::Count)
            .ok_or_else(|| format!("`{text}` is neither a share (5%) nor a number of hosts (3)"))
    }

    /// Failures allowed among `total` steps.
    pub fn allowed(self, total: usize) -> usize {
        match self {
            ErrorThreshold::Percent(p) => total * usize::from(p) / 100,
            ErrorThreshold::Count(n) => n,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutOptions {
    pub error_threshold: ErrorThreshold,
    /// Each phase after the first waits for `rollout approve`.
    pub approve_phases: bool,
    /// A breaking release is crossed: approvals are asked only up to the
    /// server phase; the phases after it (databases, app servers, web,
    /// client waves) follow at once, since old clients cannot log in to the
    /// new server until they are updated.
    #[serde(default)]
    pub clients_at_once: bool,
    /// Attempts of a step that fails transiently.
    pub max_attempts: u32,
    pub step_timeout_ms: i64,
    /// Wait before the first retry; doubles with each attempt.
    pub retry_backoff_ms: i64,
    /// How long a succeeded step's effect may take to show in what its host
    /// reports, by action key (`install`, `deploy_web_app`,
    /// `reactivate_databases`); missing keys take `DEFAULT_VERIFY_MS`.
    #[serde(default)]
    pub verify_timeouts_ms: BTreeMap<String, i64>,
}

/// How long a succeeded step's effect may take to show, unless the rollout
/// says otherwise: a server's services start, an agent re-probes, a client
/// may need its user to log off. 30 minutes.
pub const DEFAULT_VERIFY_MS: i64 = 30 * 60 * 1000;

/// Actions whose effect is verified against what the host reports.
pub const VERIFIED_ACTIONS: [&str; 3] = ["install", "deploy_web_app", "reactivate_databases"];

/// Parses `install=20m`, `reactivate_databases=900s`, `deploy_web_app=1h`
/// (seconds, minutes or hours, 10 s to 24 h) into deadlines by action key.
pub fn parse_verify_timeouts(items: &[String]) -> Result<BTreeMap<String, i64>, String> {
    let mut out = BTreeMap::new();
    for item in items {
        let (action, duration) = item
            .split_once('=')
            .ok_or_else(|| format!("`{item}`: write ACTION=DURATION, e.g. install=20m"))?;
        let action = action.trim();
        if !VERIFIED_ACTIONS.contains(&action) {
            return Err(format!(
                "`{action}` has nothing to verify; use one of {}",
                VERIFIED_ACTIONS.join(", ")
            ));
        }
        let duration = duration.trim();
        let (digits, unit) = duration.split_at(duration.len().saturating_sub(1));
        let factor = match unit {
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => {
                return Err(format!(
                    "`{duration}`: give seconds, minutes or hours, e.g. 90s, 20m, 1h"
                ))
            }
        };
        let value: i64 = digits.parse().map_err(|_| {
            format!("`{duration}`: give seconds, minutes or hours, e.g. 90s, 20m, 1h")
        })?;
        let ms = value.saturating_mul(factor);
        if !(10_000..=86_400_000).contains(&ms) {
            return Err(format!(
                "`{duration}`: a verification deadline is between 10s and 24h"
            ));
        }
        out.insert(action.to_owned(), ms);
    }
    Ok(out)
}

impl RolloutOptions {
    /// The verification deadline of an action.
    pub fn verify_timeout_ms(&self, action: &StepAction) -> i64 {
        self.verify_timeouts_ms
            .get(action.config_key())
            .copied()
            .unwrap_or(DEFAULT_VERIFY_MS)
    }
}

impl Default for RolloutOptions {
    fn default() -> Self {
        Self {
            error_threshold: ErrorThreshold::Percent(5),
            approve_phases: false,
            clients_at_once: false,
            max_attempts: 3,
            step_timeout_ms: 2 * 3600 * 1000,
            retry_backoff_ms: 30_000,
            verify_timeouts_ms: BTreeMap::new(),
        }
    }
}

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
}

/// The phases of a rollout, in order, each with its steps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecPhase {
    pub kind: PhaseKind,
}

/// Turns a plan into executable phases and steps: the server's install
/// becomes stop services → install → start services; one reactivation step
/// covers the databases. Step ids are `{rollout}-{n}`.
pub fn steps_from_plan(
    rollout_id: &str,
    plan: &Plan,
    now_ms: i64,
) -> (Vec<ExecPhase>, Vec<ExecStep>) {
    let mut phases = Vec::new();
    let mut steps = Vec::new();
    let push = |phase: usize, host_id: &str, action: StepAction, steps: &mut Vec<ExecStep>| {
        let step_id = format!("{rollout_id}-{}", steps.len() + 1);
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
        });
    };
    for phase in &plan.phases {
        if phase.steps.is_empty() {
            continue;
        }
        let index = phases.len();
        phases.push(ExecPhase { kind: phase.kind });
        let mut reactivated = false;
        for step in &phase.steps {
            let to = step.to;
            match step.action {
                Action::Backup => push(index, &step.host_id, StepAction::Backup, &mut steps),
                Action::InstallServer | Action::InstallAppServer => {
                    let role = if step.action == Action::InstallServer {
                        Role::Server
                    } else {
                        Role::AppServer
                    };
                    push(
                        index,
                        &step.host_id,
                        StepAction::StopServices { role },
                        &mut steps,
                    );
                    push(
                        index,
                        &step.host_id,
                        StepAction::InstallComponent {
                            role,
                            version: to,
                            artifact_sha256: None,
                        },
                        &mut steps,
                    );
                    push(
                        index,
                        &step.host_id,
                        StepAction::StartServices { role },
                        &mut steps,
                    );
                }
                Action::ReactivateDatabase if !reactivated => {
                    reactivated = true;
                    push(
                        index,
                        &step.host_id,
                        StepAction::ReactivateDatabases { version: to },
                        &mut steps,
                    );
                }
                Action::ReactivateDatabase => {}
                Action::DeployWebApp => push(
                    index,
                    &step.host_id,
                    StepAction::DeployWebApp {
                        version: to,
                        artifact_sha256: None,
                    },
                    &mut steps,
                ),
                Action::InstallClient => push(
                    index,
                    &step.host_id,
                    StepAction::InstallComponent {
                        role: Role::Client,
                        version: to,
                        artifact_sha256: None,
                    },
                    &mut steps,
                ),
            }
        }
    }
    (phases, steps)
}

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

/// The parts of a dispatch id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DispatchId<'a> {
    pub step_id: &'a str,
    pub attempt: u32,
    /// Empty for the format without a nonce.
    pub nonce: &'a str,
}

/// Splits a dispatch id back into its parts.
pub fn parse_dispatch_id(id: &str) -> Option<DispatchId<'_>> {
    let (rest, last) = id.rsplit_once('.')?;
    if let Ok(attempt) = last.parse() {
        return Some(DispatchId {
            step_id: rest,
            attempt,
            nonce: "",
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
    })
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
        .filter(|s| {
            matches!(
                s.state,
                StepState::Pending | StepState::Dispatched | StepState::Failed
            )
        })
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
    /// The current phase is done (results and observed state agree).
    EnterPhase { phase: usize },
    /// The current phase is done; the next waits for `rollout approve`.
    AwaitApproval { phase: usize },
    /// Stop: a step failed for good or a wave crossed its error threshold.
    Halt { reason: String },
    /// Every phase is done.
    Complete,
}

fn observed(hosts: &BTreeMap<&str, &HostRecord>, host_id: &str, role: Role) -> Option<Version> {
    hosts
        .get(host_id)?
        .inventory
        .component(role)?
        .version
        .installed()
}

/// What a succeeded step's host should report and what it reports now, when
/// the two differ; `None` once verified (or for actions with nothing to
/// verify). `hosts` by host id, built once per snapshot.
pub fn awaited(step: &ExecStep, hosts: &BTreeMap<&str, &HostRecord>) -> Option<(String, String)> {
    if verified(step, hosts) {
        return None;
    }
    let shown = |role: Role| {
        observed(hosts, &step.host_id, role)
            .map_or_else(|| "no version".to_owned(), |v| v.to_string())
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
            let reported = hosts
                .get(step.host_id.as_str())
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
fn verified(step: &ExecStep, hosts: &BTreeMap<&str, &HostRecord>) -> bool {
    match &step.action {
        StepAction::InstallComponent { role, version, .. } => {
            observed(hosts, &step.host_id, *role) == Some(*version)
        }
        StepAction::DeployWebApp { version, .. } => {
            observed(hosts, &step.host_id, Role::Web) == Some(*version)
        }
        StepAction::ReactivateDatabases { version } => {
            hosts.get(step.host_id.as_str()).is_some_and(|h| {
                h.inventory
                    .component(Role::Server)
                    .is_some_and(|c| match &c.facts {
                        crate::Facts::Server(facts) => facts
                            .databases
                            .iter()
                            .all(|db| db.active && db.patch_level == Some(*version)),
                        _ => false,
                    })
            })
        }
        StepAction::Backup
        | StepAction::StopServices { .. }
        | StepAction::StartServices { .. }
        | StepAction::Reprobe => true,
    }
}

/// The next decisions for a running rollout; none for any other state.
pub fn decide(snapshot: &RolloutSnapshot<'_>, now_ms: i64) -> Vec<Decision> {
    if snapshot.state != RolloutState::Running {
        return Vec::new();
    }
    let options = snapshot.options;
    let hosts: BTreeMap<&str, &HostRecord> = snapshot
        .hosts
        .iter()
        .map(|h| (h.host_id.as_str(), h))
        .collect();
    let phase = snapshot.current_phase;
    let Some(kind) = snapshot.phases.get(phase).map(|p| p.kind) else {
        return vec![Decision::Complete];
    };
    let steps: Vec<&ExecStep> = snapshot.steps.iter().filter(|s| s.phase == phase).collect();
    let is_wave = matches!(kind, PhaseKind::ClientWave { .. });
    let mut decisions = Vec::new();

    // A failure that will not be retried.
    let final_failure = |s: &ExecStep| {
        s.state == StepState::Failed
            && !(s.outcome == Some(StepOutcome::FailedTransient)
                && s.attempts < options.max_attempts)
    };
    let failed: Vec<&&ExecStep> = steps.iter().filter(|s| final_failure(s)).collect();
    if is_wave {
        let allowed = options.error_threshold.allowed(steps.len());
        if failed.len() > allowed {
            return vec![Decision::Halt {
                reason: format!(
                    "{} of {} client(s) in this wave failed, more than the {} the error threshold allows",
                    failed.len(),
                    steps.len(),
                    allowed
                ),
            }];
        }
    } else if let Some(step) = failed.first() {
        return vec![Decision::Halt {
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
        }];
    }

    // Steps of one host run in order (stop, install, start): hosts with an
    // unfinished step so far wait. One pass, however large the wave.
    let mut unfinished: BTreeSet<&str> = BTreeSet::new();
    for step in steps.iter().copied() {
        let earlier_done = !unfinished.contains(step.host_id.as_str());
        if !matches!(step.state, StepState::Succeeded | StepState::Skipped) {
            unfinished.insert(step.host_id.as_str());
        }
        match step.state {
            StepState::Pending => {
                let online = hosts.get(step.host_id.as_str()).is_some_and(|h| h.online);
                if earlier_done && online {
                    decisions.push(Decision::Dispatch {
                        step_id: step.step_id.clone(),
                    });
                }
            }
            // The timeout runs only while the host is connected: a step
            // waiting for an offline host is not its failure.
            StepState::Dispatched
                if now_ms - step.changed_ms > options.step_timeout_ms
                    && hosts.get(step.host_id.as_str()).is_some_and(|h| h.online) =>
            {
                decisions.push(Decision::TimedOut {
                    step_id: step.step_id.clone(),
                });
            }
            // Succeeded, but the host has not shown the effect: after the
            // deadline (counted while the host is connected) that is a
            // failure, named — never a silent wait.
            StepState::Succeeded
                if now_ms - step.changed_ms > options.verify_timeout_ms(&step.action)
                    && hosts.get(step.host_id.as_str()).is_some_and(|h| h.online) =>
            {
                if let Some((expected, reported)) = awaited(step, &hosts) {
                    decisions.push(Decision::Unverified {
                        step_id: step.step_id.clone(),
                        reason: format!(
                            "{} reported success for {}, but {} later it still reports {reported} instead of {expected}",
                            step.host_id,
                            step.action.config_key(),
                            span(options.verify_timeout_ms(&step.action))
                        ),
                    });
                }
            }
            StepState::Failed
                if step.outcome == Some(StepOutcome::FailedTransient)
                    && step.attempts < options.max_attempts =>
            {
                let shift = step.attempts.saturating_sub(1).min(16);
                let wait = options.retry_backoff_ms.saturating_mul(1 << shift);
                if now_ms - step.changed_ms >= wait {
                    decisions.push(Decision::Retry {
                        step_id: step.step_id.clone(),
                    });
                }
            }
            _ => {}
        }
    }
    if !decisions.is_empty() {
        return decisions;
    }

    // Done when every step has ended and the agents report the result.
    let all_ended = steps
        .iter()
        .all(|s| matches!(s.state, StepState::Succeeded | StepState::Skipped) || final_failure(s));
    let all_verified = steps
        .iter()
        .filter(|s| s.state == StepState::Succeeded)
        .all(|s| verified(s, &hosts));
    if !(all_ended && all_verified) {
        return decisions;
    }
    let next = phase + 1;
    if next >= snapshot.phases.len() {
        return vec![Decision::Complete];
    }
    if needs_approval(options, snapshot.phases, next) {
        vec![Decision::AwaitApproval { phase: next }]
    } else {
        vec![Decision::EnterPhase { phase: next }]
    }
}

/// Whether entering phase `next` waits for `rollout approve`: with
/// `--approve-phases`, every phase after the first — except, when a breaking
/// release is crossed, the phases after the server phase.
pub fn needs_approval(options: &RolloutOptions, phases: &[ExecPhase], next: usize) -> bool {
    if !options.approve_phases || next == 0 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{client, licence, password_secure_catalogue, server, web};
    use crate::plan::{plan, PlanRequest};
    use crate::ProbedVersion;
    use crate::{Check, ClientWaves, WebServerKind};

    const V931: Version = Version::new(9, 3, 1, 33994);
    const V263: Version = Version::new(26, 3, 100, 34058);

    fn fleet(server_at: Version, clients: usize) -> Vec<HostRecord> {
        let mut hosts = vec![
            server("srv", "prod", server_at, &[("PSDB", true, server_at)]),
            web("web", "prod", V931, WebServerKind::Apache, Check::Yes),
        ];
        for i in 0..clients {
            hosts.push(client(
                &format!("cl-{i:02}"),
                "prod",
                ProbedVersion::Installed(V931),
                Check::No,
            ));
        }
        hosts
    }

    fn rollout(clients: usize) -> (Vec<ExecPhase>, Vec<ExecStep>) {
        let hosts = fleet(V931, clients);
        let catalogue = password_secure_catalogue();
        let licence = licence("prod", "2026-12-31");
        let waves = ClientWaves::parse("50%,100%").unwrap();
        let plan = plan(&PlanRequest {
            installation: "prod",
            hosts: &hosts,
            catalogue: &catalogue,
            licence: Some(&licence),
            target: V263,
            waves: &waves,
        })
        .unwrap();
        steps_from_plan("r1", &plan, 0)
    }

    fn snapshot<'a>(
        phase: usize,
        phases: &'a [ExecPhase],
        steps: &'a [ExecStep],
        hosts: &'a [HostRecord],
        options: &'a RolloutOptions,
    ) -> RolloutSnapshot<'a> {
        RolloutSnapshot {
            state: RolloutState::Running,
            current_phase: phase,
            options,
            phases,
            steps,
            hosts,
        }
    }

    fn set(steps: &mut [ExecStep], id: &str, state: StepState, outcome: Option<StepOutcome>) {
        let step = steps.iter_mut().find(|s| s.step_id == id).unwrap();
        step.state = state;
        step.outcome = outcome;
        if state == StepState::Dispatched {
            step.attempts += 1;
        }
    }

    #[test]
    fn skip_never_bypasses_the_server_or_the_databases() {
        let (phases, mut steps) = rollout(2);
        let host_in = |kind: PhaseKind| {
            let index = phases.iter().position(|p| p.kind == kind).expect("phase");
            steps
                .iter()
                .find(|s| s.phase == index)
                .map(|s| s.host_id.clone())
                .expect("a step")
        };
        let server = host_in(PhaseKind::Server);
        let verdict = skip_verdict(&server, &phases, &steps);
        assert!(
            matches!(&verdict, SkipVerdict::Refused { reason } if reason.contains("primary server")),
            "{verdict:?}"
        );
        let client = steps.last().expect("steps").host_id.clone();
        assert!(matches!(
            skip_verdict(&client, &phases, &steps),
            SkipVerdict::Allowed { consequence } if consequence.contains("keeps its old client version")
        ));
        for step in steps.iter_mut().filter(|s| s.host_id == client) {
            step.state = StepState::Succeeded;
        }
        assert_eq!(
            skip_verdict(&client, &phases, &steps),
            SkipVerdict::NothingToSkip
        );
        // Once the server's own steps are done, only the reactivation is
        // left on it — still refused.
        let databases = phases.iter().position(|p| p.kind == PhaseKind::Databases);
        for step in steps
            .iter_mut()
            .filter(|s| s.host_id == server && Some(s.phase) != databases)
        {
            step.state = StepState::Succeeded;
        }
        if databases.is_some() {
            assert!(matches!(
                skip_verdict(&server, &phases, &steps),
                SkipVerdict::Refused { reason } if reason.contains("reactivates the databases")
            ));
        }
    }

    #[test]
    fn a_breaking_release_asks_approval_only_up_to_the_server() {
        let (phases, _) = rollout(2);
        let server = phases
            .iter()
            .position(|p| p.kind == PhaseKind::Server)
            .unwrap();
        let breaking = RolloutOptions {
            approve_phases: true,
            clients_at_once: true,
            ..RolloutOptions::default()
        };
        let plain = RolloutOptions {
            approve_phases: true,
            ..RolloutOptions::default()
        };
        for next in 1..phases.len() {
            assert!(needs_approval(&plain, &phases, next), "phase {next}");
            assert_eq!(
                needs_approval(&breaking, &phases, next),
                next <= server,
                "phase {next}"
            );
        }
        assert!(!needs_approval(&RolloutOptions::default(), &phases, 1));
    }

    #[test]
    fn verification_deadlines_parse_per_action() {
        let parsed =
            parse_verify_timeouts(&["install=20m".into(), "reactivate_databases=90s".into()])
                .unwrap();
        assert_eq!(parsed["install"], 1_200_000);
        assert_eq!(parsed["reactivate_databases"], 90_000);
        for (bad, says) in [
            ("install", "ACTION=DURATION"),
            ("backup=1m", "nothing to verify"),
            ("install=5", "seconds, minutes or hours"),
            ("install=1s", "between 10s and 24h"),
            ("install=2d", "seconds, minutes or hours"),
        ] {
            let error = parse_verify_timeouts(&[bad.into()]).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn a_success_never_reported_fails_after_its_deadline() {
        let (phases, mut steps) = rollout(2);
        let client = steps
            .iter()
            .position(|s| {
                matches!(
                    s.action,
                    StepAction::InstallComponent {
                        role: Role::Client,
                        ..
                    }
                )
            })
            .unwrap();
        let wave = steps[client].phase;
        for step in steps.iter_mut().filter(|s| s.phase < wave) {
            step.state = StepState::Succeeded;
        }
        steps[client].state = StepState::Succeeded;
        steps[client].changed_ms = 1_000;
        let hosts = fleet(V931, 2);
        let options = RolloutOptions::default();
        let at = |now: i64| decide(&snapshot(wave, &phases, &steps, &hosts, &options), now);
        let deadline = options.verify_timeout_ms(&steps[client].action);
        assert!(!at(1_000 + deadline)
            .iter()
            .any(|d| matches!(d, Decision::Unverified { .. })));
        let later = at(1_001 + deadline);
        let reason = later
            .iter()
            .find_map(|d| match d {
                Decision::Unverified { step_id, reason } if *step_id == steps[client].step_id => {
                    Some(reason.clone())
                }
                _ => None,
            })
            .expect("unverified");
        assert!(
            reason.contains(&steps[client].host_id)
                && reason.contains("26.3.100.34058")
                && reason.contains("9.3.1.33994"),
            "{reason}"
        );
    }

    #[test]
    fn dispatch_ids_name_the_attempt() {
        assert_eq!(
            dispatch_id("r1-3", 2, "9f3a0c17b2e4"),
            "r1-3.2.9f3a0c17b2e4"
        );
        assert_eq!(
            parse_dispatch_id("r1-3.2.9f3a0c17b2e4"),
            Some(DispatchId {
                step_id: "r1-3",
                attempt: 2,
                nonce: "9f3a0c17b2e4"
            })
        );
        // Rollouts from before nonces: the old form still reads.
        assert_eq!(dispatch_id("r1-3", 2, ""), "r1-3.2");
        assert_eq!(
            parse_dispatch_id("r1-3.2"),
            Some(DispatchId {
                step_id: "r1-3",
                attempt: 2,
                nonce: ""
            })
        );
        assert_eq!(parse_dispatch_id("r1-3"), None);
        assert_eq!(parse_dispatch_id("r1-3.x"), None);
        assert_eq!(parse_dispatch_id("r1-3.x.abc"), None);
        assert_eq!(parse_dispatch_id("r1-3.2.zz"), None);
    }

    #[test]
    fn expands_the_plan_into_ordered_steps() {
        let (phases, steps) = rollout(4);
        let kinds: Vec<PhaseKind> = phases.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds[..4],
            [
                PhaseKind::Backup,
                PhaseKind::Server,
                PhaseKind::Databases,
                PhaseKind::Web
            ]
        );
        let server: Vec<&str> = steps
            .iter()
            .filter(|s| s.phase == 1)
            .map(|s| s.action.config_key())
            .collect();
        assert_eq!(server, ["stop_services", "install", "start_services"]);
        assert_eq!(
            steps.iter().filter(|s| s.phase == 2).count(),
            1,
            "one reactivation for all databases"
        );
        assert_eq!(steps[0].step_id, "r1-1");
    }

    #[test]
    fn a_phase_completes_only_when_the_agents_report_the_result() {
        let (phases, mut steps) = rollout(2);
        let options = RolloutOptions::default();
        let mut hosts = fleet(V931, 2);
        // Server phase: the host's steps go one after the other.
        let d = decide(&snapshot(1, &phases, &steps, &hosts, &options), 0);
        assert_eq!(
            d,
            [Decision::Dispatch {
                step_id: "r1-2".into()
            }]
        );
        for id in ["r1-2", "r1-3", "r1-4"] {
            set(
                &mut steps,
                id,
                StepState::Succeeded,
                Some(StepOutcome::Succeeded),
            );
        }
        // Exit codes say yes, the inventory still says 9.3.1: wait.
        assert!(decide(&snapshot(1, &phases, &steps, &hosts, &options), 0).is_empty());
        hosts[0] = server("srv", "prod", V263, &[("PSDB", false, V931)]);
        assert_eq!(
            decide(&snapshot(1, &phases, &steps, &hosts, &options), 0),
            [Decision::EnterPhase { phase: 2 }]
        );
        // Databases: verified when every database is active at the target.
        set(
            &mut steps,
            "r1-5",
            StepState::Succeeded,
            Some(StepOutcome::Succeeded),
        );
        assert!(decide(&snapshot(2, &phases, &steps, &hosts, &options), 0).is_empty());
        hosts[0] = server("srv", "prod", V263, &[("PSDB", true, V263)]);
        assert_eq!(
            decide(&snapshot(2, &phases, &steps, &hosts, &options), 0),
            [Decision::EnterPhase { phase: 3 }]
        );
        let with_approval = RolloutOptions {
            approve_phases: true,
            ..options.clone()
        };
        assert_eq!(
            decide(&snapshot(2, &phases, &steps, &hosts, &with_approval), 0),
            [Decision::AwaitApproval { phase: 3 }]
        );
    }

    #[test]
    fn a_failed_server_step_halts_before_anything_else() {
        let (phases, mut steps) = rollout(2);
        let hosts = fleet(V931, 2);
        let options = RolloutOptions::default();
        set(
            &mut steps,
            "r1-2",
            StepState::Succeeded,
            Some(StepOutcome::Succeeded),
        );
        set(
            &mut steps,
            "r1-3",
            StepState::Failed,
            Some(StepOutcome::Failed),
        );
        let d = decide(&snapshot(1, &phases, &steps, &hosts, &options), 0);
        assert!(
            matches!(&d[..], [Decision::Halt { reason }] if reason.contains("r1-3 (install) on srv failed")),
            "{d:?}"
        );
    }

    #[test]
    fn transient_failures_are_retried_with_backoff_then_halt() {
        let (phases, mut steps) = rollout(2);
        let hosts = fleet(V931, 2);
        let options = RolloutOptions::default();
        set(&mut steps, "r1-2", StepState::Dispatched, None);
        set(
            &mut steps,
            "r1-2",
            StepState::Failed,
            Some(StepOutcome::FailedTransient),
        );
        assert!(
            decide(&snapshot(1, &phases, &steps, &hosts, &options), 1_000).is_empty(),
            "backoff"
        );
        assert_eq!(
            decide(&snapshot(1, &phases, &steps, &hosts, &options), 30_000),
            [Decision::Retry {
                step_id: "r1-2".into()
            }]
        );
        steps[1].attempts = options.max_attempts;
        assert!(matches!(
            decide(&snapshot(1, &phases, &steps, &hosts, &options), 60_000)[..],
            [Decision::Halt { .. }]
        ));
    }

    #[test]
    fn offline_hosts_wait_and_silent_steps_time_out() {
        let (phases, mut steps) = rollout(2);
        let mut hosts = fleet(V931, 2);
        let options = RolloutOptions::default();
        hosts[0].online = false;
        assert!(
            decide(&snapshot(1, &phases, &steps, &hosts, &options), 0).is_empty(),
            "nothing to send to an offline host"
        );
        hosts[0].online = true;
        set(&mut steps, "r1-2", StepState::Dispatched, None);
        hosts[0].online = false;
        assert!(
            decide(
                &snapshot(1, &phases, &steps, &hosts, &options),
                options.step_timeout_ms + 1
            )
            .is_empty(),
            "no timeout while the host is away"
        );
        hosts[0].online = true;
        assert!(decide(
            &snapshot(1, &phases, &steps, &hosts, &options),
            options.step_timeout_ms
        )
        .is_empty());
        assert_eq!(
            decide(
                &snapshot(1, &phases, &steps, &hosts, &options),
                options.step_timeout_ms + 1
            ),
            [Decision::TimedOut {
                step_id: "r1-2".into()
            }]
        );
    }

    #[test]
    fn a_wave_over_its_error_threshold_halts() {
        let (phases, mut steps) = rollout(8);
        let hosts = fleet(V931, 8);
        let wave = phases
            .iter()
            .position(|p| matches!(p.kind, PhaseKind::ClientWave { .. }))
            .unwrap();
        let ids: Vec<String> = steps
            .iter()
            .filter(|s| s.phase == wave)
            .map(|s| s.step_id.clone())
            .collect();
        assert_eq!(ids.len(), 4);
        let one = RolloutOptions {
            error_threshold: ErrorThreshold::Count(1),
            ..RolloutOptions::default()
        };
        set(
            &mut steps,
            &ids[0],
            StepState::Failed,
            Some(StepOutcome::Failed),
        );
        assert!(!matches!(
            decide(&snapshot(wave, &phases, &steps, &hosts, &one), 0)[..],
            [Decision::Halt { .. }]
        ));
        set(
            &mut steps,
            &ids[1],
            StepState::Failed,
            Some(StepOutcome::Failed),
        );
        let d = decide(&snapshot(wave, &phases, &steps, &hosts, &one), 0);
        assert!(
            matches!(&d[..], [Decision::Halt { reason }] if reason.contains("2 of 4 client(s)")),
            "{d:?}"
        );
        assert_eq!(ErrorThreshold::parse("5%").unwrap().allowed(100), 5);
        assert_eq!(ErrorThreshold::parse("3"), Ok(ErrorThreshold::Count(3)));
        assert!(ErrorThreshold::parse("150%").is_err() && ErrorThreshold::parse("x").is_err());
        for signed in ["+5", "+5%", "5 %", "-1", ""] {
            assert!(ErrorThreshold::parse(signed).is_err(), "{signed}");
        }
    }

    #[test]
    fn only_a_running_rollout_moves() {
        let (phases, steps) = rollout(1);
        let hosts = fleet(V931, 1);
        let options = RolloutOptions::default();
        for state in [
            RolloutState::Paused,
            RolloutState::WaitingForApproval,
            RolloutState::Failed,
            RolloutState::Aborted,
        ] {
            let snap = RolloutSnapshot {
                state,
                ..snapshot(0, &phases, &steps, &hosts, &options)
            };
            assert!(decide(&snap, 0).is_empty());
        }
        let done = snapshot(phases.len(), &phases, &steps, &hosts, &options);
        assert_eq!(decide(&done, 0), [Decision::Complete]);
    }
}
