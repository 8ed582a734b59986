//! The incremental `RolloutDecider` equals the full `decide` after every
//! event of random traces: random phases, steps (with operator tasks) and
//! hosts; steps dispatched, succeeding (with or without a restart), failing
//! for good or transiently, skipped; hosts going on and offline, reporting
//! versions and boots, leaving the installation; time passing deadlines
//! and windows; the phase, the state, the options, the windows and the Web
//! Application packages changing; the controller restarting (the decider
//! starts again from the snapshot).

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use super::*;
use crate::action::{StepAction, StepOutcome};
use crate::fixtures::{client, server, web};
use crate::plan::{PhaseKind, WebPackages};
use crate::task::{OperatorTask, TaskKind};
use crate::window::MaintenanceWindow;
use crate::{Check, HostRecord, ProbedVersion, Role, Version, WebServerKind};
use proptest::prelude::*;

const FROM: Version = Version::new(9, 3, 0, 33526);
const TO: Version = Version::new(9, 3, 1, 33994);
/// Friday 2026-12-04 12:00 UTC: a jump of a day reaches Saturday's windows.
const START_MS: i64 = 1_796_385_600_000;

const KINDS: [PhaseKind; 6] = [
    PhaseKind::Backup,
    PhaseKind::Server,
    PhaseKind::Databases,
    PhaseKind::AppServers,
    PhaseKind::Web,
    PhaseKind::ClientWave {
        wave: 1,
        percent: 100,
    },
];
const STATES: [StepState; 5] = [
    StepState::Pending,
    StepState::Dispatched,
    StepState::Succeeded,
    StepState::Failed,
    StepState::Skipped,
];
const RESTARTS: [RestartState; 4] = [
    RestartState::None,
    RestartState::Required,
    RestartState::Approved,
    RestartState::Requested,
];
const POLICIES: [RestartPolicy; 3] = [
    RestartPolicy::Auto,
    RestartPolicy::Ask,
    RestartPolicy::Never,
];

fn action(n: u8) -> StepAction {
    match n % 8 {
        0 => StepAction::Backup,
        1 => StepAction::StopServices { role: Role::Server },
        2 => StepAction::InstallComponent {
            role: Role::Server,
            version: TO,
            artifact_sha256: None,
        },
        3 => StepAction::ReactivateDatabases { version: TO },
        4 => StepAction::GenerateWebApp {
            version: TO,
            web_servers: vec![WebServerKind::Iis],
        },
        5 => StepAction::DeployWebApp {
            version: TO,
            artifact_sha256: None,
        },
        6 => StepAction::Reprobe,
        _ => StepAction::InstallComponent {
            role: Role::Client,
            version: TO,
            artifact_sha256: None,
        },
    }
}

fn task(n: u8) -> Option<OperatorTask> {
    let kind = match n {
        0 => TaskKind::Backup,
        1 => TaskKind::InstallServer,
        2 => TaskKind::ReactivateDatabases,
        3 => TaskKind::GenerateWebApp,
        _ => return None,
    };
    Some(OperatorTask {
        kind,
        instructions: String::new(),
        observable: true,
        verification: String::new(),
        done_by: String::new(),
        done_at_ms: None,
        note: String::new(),
    })
}

/// Host 0 is the server, host 1 a web host, the others clients.
fn host(n: usize, version: Version) -> HostRecord {
    let id = format!("h{n}");
    match n {
        0 => server(&id, "prod", version, &[("PSDB", true, version)]),
        1 => web(&id, "prod", version, WebServerKind::Iis, Check::Yes),
        _ => client(&id, "prod", ProbedVersion::Installed(version), Check::No),
    }
}

fn options(seed: u64) -> RolloutOptions {
    let pick = |shift: u32, n: u64| (seed >> shift) % n;
    let mut options = RolloutOptions {
        error_threshold: ErrorThreshold::Count(pick(0, 3) as usize),
        approve_phases: pick(2, 2) == 0,
        clients_at_once: pick(3, 2) == 0,
        max_attempts: 1 + pick(4, 3) as u32,
        step_timeout_ms: 1_000 + pick(6, 4) as i64 * 1_000,
        retry_backoff_ms: 200 + pick(8, 4) as i64 * 300,
        task_timeout_ms: 3_000 + pick(10, 4) as i64 * 2_000,
        max_backup_age_ms: 2_000 + pick(12, 4) as i64 * 3_000,
        ..RolloutOptions::default()
    };
    options
        .verify_timeouts_ms
        .insert("install".into(), 500 + pick(14, 4) as i64 * 700);
    options
        .restarts
        .insert(Role::Client, POLICIES[pick(16, 3) as usize]);
    options
        .restarts
        .insert(Role::Server, POLICIES[pick(18, 3) as usize]);
    options
}

/// A step as the generator draws it: phase, host, action, task.
type StepSeed = (usize, usize, u8, u8);

#[derive(Clone, Debug)]
enum Event {
    Step {
        step: usize,
        state: usize,
        outcome: usize,
        attempts: u32,
        restart: usize,
    },
    Online {
        host: usize,
        online: bool,
    },
    Report {
        host: usize,
        upgraded: bool,
    },
    Boot {
        host: usize,
    },
    Present {
        host: usize,
        present: bool,
    },
    Tick {
        ms: i64,
    },
    /// The clock on (or just past) one of a step's deadlines.
    Edge {
        step: usize,
        limit: usize,
        past: bool,
    },
    Jump {
        hours: i64,
    },
    Phase {
        phase: usize,
    },
    State {
        running: bool,
    },
    Options {
        seed: u64,
    },
    Packages {
        which: u8,
    },
    Windows {
        which: u8,
    },
    ControllerRestart,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        10 => (any::<usize>(), 0..5usize, 0..5usize, 0..4u32, 0..4usize).prop_map(
            |(step, state, outcome, attempts, restart)| Event::Step { step, state, outcome, attempts, restart }
        ),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(host, online)| Event::Online { host, online }),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(host, upgraded)| Event::Report { host, upgraded }),
        2 => any::<usize>().prop_map(|host| Event::Boot { host }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(host, present)| Event::Present { host, present }),
        5 => (0..4_000i64).prop_map(|ms| Event::Tick { ms }),
        1 => (1..30i64).prop_map(|hours| Event::Jump { hours }),
        3 => (any::<usize>(), 0..5usize, any::<bool>()).prop_map(|(step, limit, past)| Event::Edge { step, limit, past }),
        1 => any::<usize>().prop_map(|phase| Event::Phase { phase }),
        1 => any::<bool>().prop_map(|running| Event::State { running }),
        1 => any::<u64>().prop_map(|seed| Event::Options { seed }),
        1 => (0..3u8).prop_map(|which| Event::Packages { which }),
        1 => (0..3u8).prop_map(|which| Event::Windows { which }),
        1 => Just(Event::ControllerRestart),
    ]
}

/// The store as the trace leaves it.
struct World {
    phases: Vec<ExecPhase>,
    steps: Vec<ExecStep>,
    hosts: Vec<HostRecord>,
    present: Vec<bool>,
    options: RolloutOptions,
    state: RolloutState,
    phase: usize,
    windows: Vec<MaintenanceWindow>,
    packages: Option<WebPackages>,
    now: i64,
}

impl World {
    fn new(kinds: &[usize], hosts: usize, seeds: &[StepSeed], options_seed: u64) -> Self {
        let steps = seeds
            .iter()
            .enumerate()
            .map(|(n, &(phase, host, act, task_kind))| ExecStep {
                step_id: format!("r1-{}", n + 1),
                phase: phase % kinds.len(),
                host_id: format!("h{}", host % hosts),
                action: action(act),
                state: StepState::Pending,
                attempts: 0,
                changed_ms: START_MS,
                outcome: None,
                reason: String::new(),
                restart: RestartState::None,
                task: task(task_kind),
            })
            .collect();
        Self {
            phases: kinds
                .iter()
                .map(|&k| ExecPhase { kind: KINDS[k] })
                .collect(),
            steps,
            hosts: (0..hosts).map(|n| host(n, FROM)).collect(),
            present: vec![true; hosts],
            options: options(options_seed),
            state: RolloutState::Running,
            phase: 0,
            windows: Vec::new(),
            packages: None,
            now: START_MS,
        }
    }

    /// Applies an event; returns the host it changed, if one.
    fn apply(&mut self, event: &Event) -> Option<String> {
        let hosts = self.hosts.len();
        match *event {
            Event::Step {
                step,
                state,
                outcome,
                attempts,
                restart,
            } => {
                let at = step % self.steps.len();
                let step = &mut self.steps[at];
                step.state = STATES[state];
                step.outcome = [
                    None,
                    Some(StepOutcome::Succeeded),
                    Some(StepOutcome::Failed),
                    Some(StepOutcome::FailedTransient),
                    Some(StepOutcome::SucceededRestartRequired),
                ][outcome];
                step.attempts = attempts;
                step.restart = RESTARTS[restart];
                step.changed_ms = self.now;
                step.reason = format!("event at {}", self.now);
                return Some(step.host_id.clone());
            }
            Event::Online { host, online } => self.hosts[host % hosts].online = online,
            Event::Report { host, upgraded } => {
                let version = if upgraded { TO } else { FROM };
                let (online, boot) = (
                    self.hosts[host % hosts].online,
                    self.hosts[host % hosts].boot_ms,
                );
                self.hosts[host % hosts] = HostRecord {
                    online,
                    boot_ms: boot,
                    ..self::host(host % hosts, version)
                };
            }
            Event::Boot { host } => self.hosts[host % hosts].boot_ms = Some(self.now),
            Event::Present { host, present } => self.present[host % hosts] = present,
            Event::Tick { ms } => self.now += ms,
            Event::Jump { hours } => self.now += hours * 3_600_000,
            Event::Edge { step, limit, past } => {
                let step = &self.steps[step % self.steps.len()];
                let options = &self.options;
                let backoff = options.retry_backoff_ms << step.attempts.saturating_sub(1).min(16);
                let limit = [
                    options.step_timeout_ms,
                    options.verify_timeout_ms(&step.action),
                    options.task_timeout_ms,
                    backoff,
                    options.max_backup_age_ms,
                ][limit];
                self.now = step.changed_ms + limit + i64::from(past);
            }
            Event::Phase { phase } => self.phase = phase % (self.phases.len() + 1),
            Event::State { running } => {
                self.state = if running {
                    RolloutState::Running
                } else {
                    RolloutState::WaitingForOperator
                };
            }
            Event::Options { seed } => self.options = options(seed),
            Event::Packages { which } => {
                self.packages = match which {
                    0 => None,
                    1 => Some(WebPackages {
                        generic: true,
                        ..WebPackages::default()
                    }),
                    _ => Some(WebPackages::default()),
                };
            }
            Event::Windows { which } => {
                let window =
                    |scope| MaintenanceWindow::new(scope, "sat", "02:00", "06:00", "UTC").unwrap();
                self.windows = match which {
                    0 => Vec::new(),
                    1 => vec![window("clients")],
                    _ => vec![window("server"), window("web")],
                };
            }
            Event::ControllerRestart => return None,
        }
        match *event {
            Event::Online { host, .. }
            | Event::Report { host, .. }
            | Event::Boot { host }
            | Event::Present { host, .. } => Some(format!("h{}", host % hosts)),
            _ => None,
        }
    }

    fn present_hosts(&self) -> Vec<HostRecord> {
        (self.hosts.iter().zip(&self.present))
            .filter(|(_, present)| **present)
            .map(|(h, _)| h.clone())
            .collect()
    }

    /// The decider's round and the full `decide`, on the same snapshot.
    fn both(&self, decider: &mut RolloutDecider) -> (Vec<Decision>, Vec<Decision>) {
        let hosts = self.present_hosts();
        let snapshot = RolloutSnapshot {
            state: self.state,
            current_phase: self.phase,
            options: &self.options,
            phases: &self.phases,
            steps: &self.steps,
            hosts: &hosts,
            windows: &self.windows,
            web_packages: self.packages.as_ref(),
        };
        let lookup = Observed::new(&hosts, self.packages.as_ref()).hosts;
        (
            decider.decide(&snapshot, &lookup, self.now),
            decide(&snapshot, self.now),
        )
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_incremental_decision_equals_the_full_one_after_every_event(
        kinds in prop::collection::vec(0..KINDS.len(), 1..5),
        hosts in 1..7usize,
        steps in prop::collection::vec((0..5usize, 0..7usize, any::<u8>(), 0..12u8), 1..24),
        options_seed in any::<u64>(),
        events in prop::collection::vec(event(), 1..80),
    ) {
        let mut world = World::new(&kinds, hosts, &steps, options_seed);
        let mut decider = RolloutDecider::default();
        let (round, full) = world.both(&mut decider);
        prop_assert_eq!(round, full, "at the start");
        for (n, event) in events.iter().enumerate() {
            match world.apply(event) {
                Some(host) => decider.changed(&host),
                None if matches!(event, Event::ControllerRestart) => decider.reset(),
                None => {}
            }
            let (round, full) = world.both(&mut decider);
            prop_assert_eq!(round, full, "after event {} ({:?})", n, event);
        }
    }
}

#[test]
fn a_round_reads_only_the_hosts_told_as_changed() {
    // A change the decider is not told of is not seen: the round's cost
    // follows what it is told, not the size of the phase.
    let mut world = World::new(&[5], 3, &[(0, 2, 7, 9), (0, 3, 7, 9)], 1);
    let mut decider = RolloutDecider::default();
    let (round, _) = world.both(&mut decider);
    assert_eq!(round.len(), 2, "both clients are dispatched: {round:?}");
    world.steps[0].state = StepState::Dispatched;
    let (round, full) = world.both(&mut decider);
    assert_eq!((round.len(), full.len()), (2, 1));
    decider.changed("h2");
    let (round, full) = world.both(&mut decider);
    assert_eq!(round, full);
}
