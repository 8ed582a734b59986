//! Property tests of the whole rollout state machine: random traces of step
//! results, inventory reports, disconnects, controller restarts, host
//! restarts and operator commands, run through `decide`, `transition` and
//! `outstanding` exactly as the controller uses them, with the store's
//! writes mirrored in memory. After every event the vendor's order and the
//! engine's promises are checked against an oracle that reads only what the
//! hosts report:
//! - no attempt of a step (nor its restart) is dispatched twice;
//! - no phase is entered before the previous one is verified;
//! - no client step is dispatched before the server phase is verified;
//! - a halted rollout stays halted until `resume` (or `abort`);
//! - `skip` never lets a client go past an unverified server.
//!
//! Set PROPTEST_CASES to run more than the default 512 traces per property.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use tierwise_common::action::{StepAction, StepOutcome};
use tierwise_common::fixtures::{client, licence, password_secure_catalogue, server, web};
use tierwise_common::plan::{plan, PhaseKind, PlanRequest};
use tierwise_common::rollout::{
    decide, outstanding, restart_delivery, restarted_since, steps_from_plan, transition, Command,
    CommandTarget, Decision, ErrorThreshold, ExecPhase, ExecStep, RestartPolicy, RestartState,
    RolloutOptions, RolloutSnapshot, RolloutState, StepState,
};
use tierwise_common::{
    Check, ClientWaves, Facts, HostRecord, Inventory, ProbedVersion, Role, Version, WebServerKind,
};

const FROM: Version = Version::new(9, 3, 0, 33526);
const TO: Version = Version::new(9, 3, 1, 33994);
const NONCE: &str = "0123456789ab";

/// One thing that happens to a rollout.
#[derive(Clone, Debug)]
enum Event {
    /// Time passes and the engine evaluates.
    Tick {
        ms: i64,
    },
    /// The host runs the oldest thing delivered to it.
    Run {
        host: usize,
        how: Behaviour,
    },
    /// The host's stream drops.
    Disconnect {
        host: usize,
    },
    /// The host connects and says hello.
    Connect {
        host: usize,
    },
    /// The host restarts (by its own restart command, or a person).
    Reboot {
        host: usize,
    },
    /// The controller process restarts: every stream drops and every
    /// online host says hello again.
    ControllerRestart,
    Operator(Op),
}

/// How a host's agent handles a step.
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// Exit 0 and report the new state.
    Honest,
    /// Exit 0 but keep reporting the old version.
    Lies,
    /// Exit 3010: the new version shows, the restart is still needed.
    NeedsRestart,
    Fails,
    Transient,
}

#[derive(Clone, Debug)]
enum Op {
    Pause,
    Resume,
    Abort,
    Approve,
    Skip { host: usize },
}

fn event(hosts: usize) -> impl Strategy<Value = Event> {
    let behaviour = prop_oneof![
        16 => Just(Behaviour::Honest),
        1 => Just(Behaviour::Lies),
        2 => Just(Behaviour::NeedsRestart),
        1 => Just(Behaviour::Fails),
        1 => Just(Behaviour::Transient),
    ];
    let op = prop_oneof![
        2 => Just(Op::Pause),
        4 => Just(Op::Resume),
        1 => Just(Op::Abort),
        4 => Just(Op::Approve),
        1 => (0..hosts).prop_map(|host| Op::Skip { host }),
    ];
    prop_oneof![
        10 => (0i64..90_000).prop_map(|ms| Event::Tick { ms }),
        24 => ((0..hosts), behaviour).prop_map(|(host, how)| Event::Run { host, how }),
        2 => (0..hosts).prop_map(|host| Event::Disconnect { host }),
        3 => (0..hosts).prop_map(|host| Event::Connect { host }),
        2 => (0..hosts).prop_map(|host| Event::Reboot { host }),
        1 => Just(Event::ControllerRestart),
        2 => op.prop_map(Event::Operator),
    ]
}

/// A rollout's options, varied where the state machine branches.
fn options() -> impl Strategy<Value = RolloutOptions> {
    let policy = prop_oneof![
        Just(RestartPolicy::Ask),
        Just(RestartPolicy::Auto),
        Just(RestartPolicy::Never)
    ];
    (
        any::<bool>(),
        any::<bool>(),
        0usize..3,
        policy.clone(),
        policy,
    )
        .prop_map(
            |(approve_phases, clients_at_once, errors, server_restart, client_restart)| {
                RolloutOptions {
                    error_threshold: ErrorThreshold::Count(errors),
                    approve_phases,
                    clients_at_once,
                    max_attempts: 3,
                    step_timeout_ms: 600_000,
                    retry_backoff_ms: 30_000,
                    task_timeout_ms: tierwise_common::rollout::DEFAULT_TASK_TIMEOUT_MS,
                    // These traces have no operator tasks, and approvals
                    // may wait for ever: backups never go stale here.
                    max_backup_age_ms: i64::MAX,
                    verify_timeouts_ms: [
                        ("install".to_owned(), 240_000),
                        ("reactivate_databases".to_owned(), 240_000),
                        ("deploy_web_app".to_owned(), 240_000),
                    ]
                    .into(),
                    restarts: [
                        (Role::Server, server_restart),
                        (Role::Client, client_restart),
                    ]
                    .into(),
                }
            },
        )
}

/// The rollout, the hosts as they report themselves, and what the agents
/// have been handed and have run.
struct World {
    state: RolloutState,
    phase: usize,
    phases: Vec<ExecPhase>,
    steps: Vec<ExecStep>,
    hosts: Vec<HostRecord>,
    options: RolloutOptions,
    now: i64,
    /// Delivered and not yet run, per host (lost when the stream drops).
    inbox: BTreeMap<String, Vec<(String, StepAction)>>,
    /// What each agent's journal holds: dispatch id → how many times it ran.
    journal: BTreeMap<String, u32>,
    /// Every attempt (and restart) the controller moved to dispatched.
    dispatched: BTreeSet<String>,
}

impl World {
    fn new(options: RolloutOptions, clients: usize) -> Self {
        let mut hosts = vec![
            server("srv", "prod", FROM, &[("PSDB", true, FROM)]),
            web("web", "prod", FROM, WebServerKind::Apache, Check::Yes),
        ];
        for i in 0..clients {
            hosts.push(client(
                &format!("cl-{i}"),
                "prod",
                ProbedVersion::Installed(FROM),
                Check::No,
            ));
        }
        let catalogue = password_secure_catalogue();
        let planned = plan(&PlanRequest {
            installation: "prod",
            hosts: &hosts,
            catalogue: &catalogue,
            licence: Some(&licence("prod", "2030-12-31")),
            target: TO,
            waves: &ClientWaves::parse("50%,100%").unwrap(),
            web_packages: None,
        })
        .unwrap();
        assert!(!planned.blocked, "{:?}", planned.findings);
        let (phases, steps) = steps_from_plan("r1", &planned, 0);
        World {
            state: RolloutState::Running,
            phase: 0,
            phases,
            steps,
            hosts,
            options,
            now: 1_800_000_000_000,
            inbox: BTreeMap::new(),
            journal: BTreeMap::new(),
            dispatched: BTreeSet::new(),
        }
    }

    fn host(&self, id: &str) -> &HostRecord {
        self.hosts.iter().find(|h| h.host_id == id).unwrap()
    }

    fn host_mut(&mut self, id: &str) -> &mut HostRecord {
        self.hosts.iter_mut().find(|h| h.host_id == id).unwrap()
    }

    fn kind(&self, phase: usize) -> PhaseKind {
        self.phases[phase].kind
    }

    /// The oracle: does the server host report the target, its databases
    /// at the target's patch level, and no restart still owed?
    fn server_verified(&self) -> bool {
        let srv = self.host("srv");
        let component = srv.inventory.component(Role::Server).unwrap();
        let databases_done = match &component.facts {
            Facts::Server(facts) => facts
                .databases
                .iter()
                .all(|db| db.active && db.patch_level == Some(TO)),
            _ => false,
        };
        let restart_owed = self.steps.iter().any(|s| {
            s.host_id == "srv"
                && s.state == StepState::Succeeded
                && s.restart != RestartState::None
                && !restarted_since(srv.boot_ms, s.changed_ms)
        });
        component.version.installed() == Some(TO) && databases_done && !restart_owed
    }

    /// The oracle for one phase: every step ended, and what each succeeded
    /// step should change is what its host reports.
    fn phase_verified(&self, phase: usize) -> Result<(), String> {
        for step in self.steps.iter().filter(|s| s.phase == phase) {
            let host = self.host(&step.host_id);
            match step.state {
                StepState::Skipped => continue,
                StepState::Failed if matches!(self.kind(phase), PhaseKind::ClientWave { .. }) => {
                    continue
                }
                StepState::Succeeded => {}
                other => return Err(format!("{} is {other:?}", step.step_id)),
            }
            if step.restart != RestartState::None && !restarted_since(host.boot_ms, step.changed_ms)
            {
                return Err(format!("{} still needs its restart", step.step_id));
            }
            let reports = |role: Role| {
                host.inventory
                    .component(role)
                    .and_then(|c| c.version.installed())
            };
            let ok = match &step.action {
                StepAction::InstallComponent { role, .. } => reports(*role) == Some(TO),
                StepAction::DeployWebApp { .. } => reports(Role::Web) == Some(TO),
                StepAction::ReactivateDatabases { .. } => self.server_verified(),
                _ => true,
            };
            if !ok {
                return Err(format!("{} is not reported by its host", step.step_id));
            }
        }
        Ok(())
    }

    fn hello(&mut self, host_id: &str) {
        // Dispatched steps' timeouts start again (as `touch_dispatched`).
        let now = self.now;
        for step in self
            .steps
            .iter_mut()
            .filter(|s| s.host_id == host_id && s.state == StepState::Dispatched)
        {
            step.changed_ms = now;
        }
        if self.state.is_final() {
            return;
        }
        let boot = self.host(host_id).boot_ms;
        let deliveries: Vec<_> = self
            .steps
            .iter()
            .filter(|s| s.host_id == host_id)
            .filter_map(|s| outstanding(s, NONCE, boot))
            .collect();
        let inbox = self.inbox.entry(host_id.to_owned()).or_default();
        for delivery in deliveries {
            inbox.push((delivery.dispatch_id, delivery.action));
        }
    }

    fn deliver(&mut self, host_id: &str, id: String, action: StepAction) {
        if self.host(host_id).online {
            self.inbox
                .entry(host_id.to_owned())
                .or_default()
                .push((id, action));
        }
    }

    /// One engine round: decide, check each decision against the oracle,
    /// apply it as the store does, deliver what moved.
    fn evaluate(&mut self) -> Result<(), String> {
        for _ in 0..16 {
            let decisions = decide(
                &RolloutSnapshot {
                    state: self.state,
                    current_phase: self.phase,
                    options: &self.options,
                    phases: &self.phases,
                    steps: &self.steps,
                    hosts: &self.hosts,
                    windows: &[],
                    web_packages: None,
                },
                self.now,
            );
            if decisions.is_empty() {
                return Ok(());
            }
            if self.state != RolloutState::Running {
                return Err(format!("decisions for a {:?} rollout", self.state));
            }
            let mut again = false;
            for decision in decisions {
                self.apply(decision, &mut again)?;
            }
            if !again {
                return Ok(());
            }
        }
        Ok(())
    }

    fn apply(&mut self, decision: Decision, again: &mut bool) -> Result<(), String> {
        let now = self.now;
        match decision {
            // These traces' hosts have every command: no task, and no
            // backup older than the (unbounded) limit.
            Decision::AwaitOperator { .. }
            | Decision::TaskExpired { .. }
            | Decision::StaleBackup { .. } => {
                return Err(format!("{decision:?} in a trace without operator tasks"));
            }
            Decision::Dispatch { step_id } => {
                let index = self
                    .steps
                    .iter()
                    .position(|s| s.step_id == step_id)
                    .unwrap();
                let phase = self.steps[index].phase;
                if matches!(self.kind(phase), PhaseKind::ClientWave { .. })
                    && !self.server_verified()
                {
                    return Err(format!(
                        "client step {step_id} dispatched before the server is verified"
                    ));
                }
                let step = &mut self.steps[index];
                if step.state != StepState::Pending {
                    return Ok(()); // the store moves only pending steps
                }
                step.state = StepState::Dispatched;
                step.attempts += 1;
                step.changed_ms = now;
                step.restart = RestartState::None;
                let delivery = outstanding(step, NONCE, None).unwrap();
                if !self.dispatched.insert(delivery.dispatch_id.clone()) {
                    return Err(format!("{} dispatched twice", delivery.dispatch_id));
                }
                self.deliver(&delivery.host_id, delivery.dispatch_id, delivery.action);
            }
            Decision::Restart { step_id } => {
                let step = self
                    .steps
                    .iter_mut()
                    .find(|s| s.step_id == step_id)
                    .unwrap();
                if step.state != StepState::Succeeded
                    || !matches!(
                        step.restart,
                        RestartState::Required | RestartState::Approved
                    )
                {
                    return Ok(());
                }
                step.restart = RestartState::Requested;
                step.changed_ms = now;
                let delivery = restart_delivery(step, NONCE);
                if !self.dispatched.insert(delivery.dispatch_id.clone()) {
                    return Err(format!("{} dispatched twice", delivery.dispatch_id));
                }
                self.deliver(&delivery.host_id, delivery.dispatch_id, delivery.action);
            }
            Decision::TimedOut { step_id } => {
                let step = self
                    .steps
                    .iter_mut()
                    .find(|s| s.step_id == step_id)
                    .unwrap();
                if step.state == StepState::Dispatched {
                    step.state = StepState::Failed;
                    step.outcome = Some(StepOutcome::Failed);
                    step.changed_ms = now;
                }
            }
            Decision::Unverified { step_id, .. } => {
                let step = self
                    .steps
                    .iter_mut()
                    .find(|s| s.step_id == step_id)
                    .unwrap();
                if step.state == StepState::Succeeded {
                    step.state = StepState::Failed;
                    step.changed_ms = now;
                }
            }
            Decision::Retry { step_id } => {
                let step = self
                    .steps
                    .iter_mut()
                    .find(|s| s.step_id == step_id)
                    .unwrap();
                if step.state == StepState::Failed {
                    step.state = StepState::Pending;
                    step.changed_ms = now;
                }
                *again = true;
            }
            Decision::EnterPhase { phase } | Decision::AwaitApproval { phase } => {
                self.phase_verified(self.phase)
                    .map_err(|e| format!("phase {phase} entered too early: {e}"))?;
                if phase != self.phase + 1 {
                    return Err(format!("phase {phase} entered from {}", self.phase));
                }
                self.phase = phase;
                if matches!(decision, Decision::AwaitApproval { .. }) {
                    self.state = RolloutState::WaitingForApproval;
                } else {
                    *again = true;
                }
            }
            Decision::AwaitRestart { .. } => self.state = RolloutState::WaitingForApproval,
            Decision::Halt { .. } => self.state = RolloutState::Failed,
            Decision::Complete | Decision::CompleteWithFailures { .. } => {
                for phase in 0..self.phases.len() {
                    self.phase_verified(phase)
                        .map_err(|e| format!("completed too early: {e}"))?;
                }
                // Clean only when no host failed or was skipped.
                let flawed = self
                    .steps
                    .iter()
                    .any(|s| matches!(s.state, StepState::Failed | StepState::Skipped));
                if flawed != matches!(decision, Decision::CompleteWithFailures { .. }) {
                    return Err(format!("ended {decision:?} with steps {:?}", self.steps));
                }
                self.state = decision.final_state().unwrap_or(RolloutState::Completed);
            }
        }
        Ok(())
    }

    /// The host's agent runs (or answers from its journal) the oldest
    /// delivery it holds, and the controller records the result.
    fn run(&mut self, host_id: &str, how: Behaviour) -> Result<(), String> {
        let Some(inbox) = self.inbox.get_mut(host_id) else {
            return Ok(());
        };
        if inbox.is_empty() {
            return Ok(());
        }
        let (id, action) = inbox.remove(0);
        let runs = self.journal.entry(id.clone()).or_default();
        let fresh = *runs == 0;
        if fresh {
            *runs += 1;
        }
        let dispatch = tierwise_common::rollout::parse_dispatch_id(&id).unwrap();
        let Some(index) = self
            .steps
            .iter()
            .position(|s| s.step_id == dispatch.step_id)
        else {
            return Err(format!("{id} names no step"));
        };
        if dispatch.restart {
            if fresh {
                // The restart command works: the host goes down and comes
                // back later (a Reboot event), or fails.
                if matches!(how, Behaviour::Fails) {
                    let step = &mut self.steps[index];
                    if step.state == StepState::Succeeded
                        && step.restart == RestartState::Requested
                        && step.attempts == dispatch.attempt
                    {
                        step.state = StepState::Failed;
                        step.outcome = Some(StepOutcome::Failed);
                        step.restart = RestartState::None;
                        step.changed_ms = self.now;
                    }
                } else {
                    self.reboot(host_id);
                }
            }
            return Ok(());
        }
        let outcome = match how {
            Behaviour::Honest | Behaviour::Lies => StepOutcome::Succeeded,
            Behaviour::NeedsRestart => StepOutcome::SucceededRestartRequired,
            Behaviour::Fails => StepOutcome::Failed,
            Behaviour::Transient => StepOutcome::FailedTransient,
        };
        if fresh && outcome.succeeded() && !matches!(how, Behaviour::Lies) {
            self.take_effect(host_id, &action);
        }
        let now = self.now;
        let step = &mut self.steps[index];
        if step.state == StepState::Dispatched && step.attempts == dispatch.attempt {
            step.state = if outcome.succeeded() {
                StepState::Succeeded
            } else {
                StepState::Failed
            };
            step.outcome = Some(outcome);
            step.restart = RestartState::after(outcome);
            step.changed_ms = now;
        }
        Ok(())
    }

    /// What a step changes in what its host reports.
    fn take_effect(&mut self, host_id: &str, action: &StepAction) {
        let host = self.host_mut(host_id);
        let mut components = std::mem::take(&mut host.inventory).into_components();
        for component in &mut components {
            match (action, &mut component.facts) {
                (StepAction::InstallComponent { role, version, .. }, _)
                    if component.role == *role =>
                {
                    component.version = ProbedVersion::Installed(*version);
                }
                (StepAction::DeployWebApp { version, .. }, _) if component.role == Role::Web => {
                    component.version = ProbedVersion::Installed(*version);
                }
                (StepAction::ReactivateDatabases { version }, Facts::Server(facts)) => {
                    for db in &mut facts.databases {
                        db.patch_level = Some(*version);
                        db.active = true;
                    }
                }
                _ => {}
            }
        }
        host.inventory = Inventory::new(components).unwrap();
    }

    fn reboot(&mut self, host_id: &str) {
        let now = self.now;
        self.inbox.remove(host_id);
        let host = self.host_mut(host_id);
        host.boot_ms = Some(now + 1);
        host.online = false;
        self.now += 1;
    }

    fn operator(&mut self, op: &Op) -> Result<(), String> {
        let command = match op {
            Op::Pause => Command::Pause,
            Op::Resume => Command::Resume,
            Op::Abort => Command::Abort,
            Op::Approve => Command::Approve,
            Op::Skip { host } => Command::Skip {
                host_id: self.hosts[*host].host_id.clone(),
            },
        };
        let verdict = transition(
            &CommandTarget {
                state: self.state,
                current_phase: self.phase,
                phases: &self.phases,
                steps: &self.steps,
            },
            &command,
        );
        let Ok(change) = verdict else {
            return Ok(());
        };
        if let Command::Skip { host_id } = &command {
            let server_unfinished = self.steps.iter().any(|s| {
                &s.host_id == host_id
                    && s.state.is_unfinished()
                    && matches!(
                        self.kind(s.phase),
                        PhaseKind::Backup | PhaseKind::Server | PhaseKind::Databases
                    )
            });
            if server_unfinished {
                return Err(format!("skip of {host_id} allowed past the server's order"));
            }
        }
        let now = self.now;
        for step in &mut self.steps {
            if change.retry.contains(&step.step_id) && step.state == StepState::Failed {
                step.state = StepState::Pending;
                step.outcome = None;
                step.restart = RestartState::None;
                step.changed_ms = now;
            }
            if change.skip.contains(&step.step_id) {
                step.state = StepState::Skipped;
                step.restart = RestartState::None;
                step.changed_ms = now;
            }
            if change.approve_restarts.contains(&step.step_id)
                && step.restart == RestartState::Required
            {
                step.restart = RestartState::Approved;
            }
        }
        self.state = change.to;
        Ok(())
    }

    fn step(&mut self, event: &Event) -> Result<(), String> {
        let before = self.state;
        match event {
            Event::Tick { ms } => self.now += ms,
            Event::Run { host, how } => {
                // Of the hosts that hold something to run.
                let busy: Vec<String> = self
                    .inbox
                    .iter()
                    .filter(|(_, queue)| !queue.is_empty())
                    .map(|(id, _)| id.clone())
                    .collect();
                let Some(id) = busy.get(host % busy.len().max(1)).cloned() else {
                    return self.evaluate();
                };
                self.now += 1_000;
                self.run(&id, *how)?;
            }
            Event::Disconnect { host } => {
                let id = self.hosts[*host].host_id.clone();
                self.hosts[*host].online = false;
                self.inbox.remove(&id);
            }
            Event::Connect { host } => {
                let id = self.hosts[*host].host_id.clone();
                if !self.hosts[*host].online {
                    self.hosts[*host].online = true;
                    self.hello(&id);
                }
            }
            Event::Reboot { host } => {
                let id = self.hosts[*host].host_id.clone();
                self.reboot(&id);
                self.hosts[*host].online = true;
                self.hello(&id);
            }
            Event::ControllerRestart => {
                self.inbox.clear();
                let online: Vec<String> = self
                    .hosts
                    .iter()
                    .filter(|h| h.online)
                    .map(|h| h.host_id.clone())
                    .collect();
                for id in online {
                    self.hello(&id);
                }
            }
            Event::Operator(op) => self.operator(op)?,
        }
        self.evaluate()?;
        // A halted (or paused) rollout stays so until resume or abort.
        let commanded = matches!(
            event,
            Event::Operator(Op::Resume) | Event::Operator(Op::Abort)
        );
        if matches!(before, RolloutState::Failed | RolloutState::Paused)
            && !commanded
            && self.state != before
        {
            return Err(format!(
                "a {before:?} rollout became {:?} without resume",
                self.state
            ));
        }
        if before.is_final() && self.state != before {
            return Err(format!("a {before:?} rollout moved to {:?}", self.state));
        }
        Ok(())
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// The promises hold after every event of any trace.
    #[test]
    fn the_vendor_order_and_the_engine_promises_hold(
        options in options(),
        clients in 1usize..5,
        events in prop::collection::vec(event(6), 1..300),
    ) {
        let mut world = World::new(options, clients);
        let hosts = world.hosts.len();
        for event in &events {
            let event = match event {
                Event::Run { host, how } => Event::Run { host: host % hosts, how: *how },
                Event::Disconnect { host } => Event::Disconnect { host: host % hosts },
                Event::Connect { host } => Event::Connect { host: host % hosts },
                Event::Reboot { host } => Event::Reboot { host: host % hosts },
                Event::Operator(Op::Skip { host }) => Event::Operator(Op::Skip { host: host % hosts }),
                other => other.clone(),
            };
            if let Err(broken) = world.step(&event) {
                return Err(TestCaseError::fail(format!("after {event:?}: {broken}")));
            }
        }
    }

    /// Honest agents, patient operators: every trace of only results,
    /// reboots and approvals ends with the rollout completed and every
    /// host at the target.
    #[test]
    fn honest_hosts_and_an_approving_operator_finish(
        options in options(),
        clients in 1usize..5,
        restarts in prop::collection::vec(any::<bool>(), 64),
    ) {
        let mut world = World::new(options, clients);
        let mut rounds = 0;
        while world.state != RolloutState::Completed {
            rounds += 1;
            prop_assert!(rounds < 400, "stuck: {:?} in phase {}; steps {:?}", world.state, world.phase, world.steps);
            let ids: Vec<String> = world.hosts.iter().map(|h| h.host_id.clone()).collect();
            for (n, id) in ids.iter().enumerate() {
                let how = if restarts[(rounds + n) % restarts.len()] {
                    Behaviour::NeedsRestart
                } else {
                    Behaviour::Honest
                };
                world.run(id, how).map_err(TestCaseError::fail)?;
                // Hosts left to restart by hand are restarted by a person.
                let owes = world.steps.iter().any(|s| {
                    &s.host_id == id && s.state == StepState::Succeeded
                        && s.restart == RestartState::Required
                        && world.options.restart_policy(s.action.role().unwrap()) == RestartPolicy::Never
                });
                if owes {
                    world.reboot(id);
                }
                if !world.host(id).online {
                    world.hosts.iter_mut().find(|h| &h.host_id == id).unwrap().online = true;
                    world.hello(id);
                }
            }
            world.now += 5_000;
            world.evaluate().map_err(TestCaseError::fail)?;
            if world.state == RolloutState::WaitingForApproval {
                world.operator(&Op::Approve).map_err(TestCaseError::fail)?;
                world.evaluate().map_err(TestCaseError::fail)?;
            }
            prop_assert_ne!(world.state, RolloutState::Failed);
        }
        for host in &world.hosts {
            for component in host.inventory.components() {
                prop_assert_eq!(component.version.installed(), Some(TO), "{}", host.host_id);
            }
        }
    }
}
