use super::*;
use crate::action::{StepAction, StepOutcome};
use crate::fixtures::{client, licence, password_secure_catalogue, server, web};
use crate::plan::PhaseKind;
use crate::plan::{plan, PlanRequest};
use crate::ProbedVersion;
use crate::{Check, ClientWaves, WebServerKind};
use crate::{HostRecord, Role, Version};

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
        web_packages: None,
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
        windows: &[],
        web_packages: None,
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
        // Never between the server's install and the reactivation.
        let databases = phases[next].kind == PhaseKind::Databases;
        assert_eq!(
            needs_approval(&plain, &phases, next),
            !databases,
            "phase {next}"
        );
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
        parse_verify_timeouts(&["install=20m".into(), "reactivate_databases=90s".into()]).unwrap();
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
            nonce: "9f3a0c17b2e4",
            restart: false,
        })
    );
    // The restart that finishes an attempt has an id of its own.
    let restart = restart_dispatch_id("r1-3", 2, "9f3a0c17b2e4");
    assert_eq!(restart, "r1-3.2.9f3a0c17b2e4.restart");
    assert_eq!(
        parse_dispatch_id(&restart),
        Some(DispatchId {
            step_id: "r1-3",
            attempt: 2,
            nonce: "9f3a0c17b2e4",
            restart: true,
        })
    );
    assert_eq!(parse_dispatch_id("r1-3.2.ab.restart.restart"), None);
    // Rollouts from before nonces: the old form still reads.
    assert_eq!(dispatch_id("r1-3", 2, ""), "r1-3.2");
    assert_eq!(
        parse_dispatch_id("r1-3.2"),
        Some(DispatchId {
            step_id: "r1-3",
            attempt: 2,
            nonce: "",
            restart: false,
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

pub(super) fn target<'a>(
    state: RolloutState,
    phase: usize,
    phases: &'a [ExecPhase],
    steps: &'a [ExecStep],
) -> CommandTarget<'a> {
    CommandTarget {
        state,
        current_phase: phase,
        phases,
        steps,
    }
}

#[test]
fn operator_commands_are_typed_transitions_or_refusals() {
    let (phases, mut steps) = rollout(2);
    let pause = transition(
        &target(RolloutState::Running, 0, &phases, &steps),
        &Command::Pause,
    );
    assert_eq!(pause.unwrap().to, RolloutState::Paused);
    let refused = transition(
        &target(RolloutState::Running, 0, &phases, &steps),
        &Command::Approve,
    )
    .unwrap_err();
    assert_eq!(
        format!("rollout r1 {refused}"),
        "rollout r1 is running; approve needs it to be waiting_for_approval"
    );
    assert!(matches!(
        transition(
            &target(RolloutState::Completed, 0, &phases, &steps),
            &Command::Abort
        ),
        Err(Refusal::WrongState { .. })
    ));
    // Resuming a halted rollout gives the current phase's failures a new
    // attempt; resuming a paused one changes no step.
    set(
        &mut steps,
        "r1-2",
        StepState::Failed,
        Some(StepOutcome::Failed),
    );
    let resumed = transition(
        &target(RolloutState::Failed, 1, &phases, &steps),
        &Command::Resume,
    )
    .unwrap();
    assert_eq!(
        (resumed.to, resumed.retry.as_slice()),
        (RolloutState::Running, ["r1-2".to_owned()].as_slice())
    );
    let resumed = transition(
        &target(RolloutState::Paused, 1, &phases, &steps),
        &Command::Resume,
    )
    .unwrap();
    assert!(resumed.retry.is_empty());
    // Skipping the server is refused with what to do; a client is skipped
    // with the consequence in the audit line.
    let skip_server = transition(
        &target(RolloutState::Failed, 1, &phases, &steps),
        &Command::Skip {
            host_id: "srv".into(),
        },
    )
    .unwrap_err();
    assert!(
        skip_server.to_string().contains("rollout resume"),
        "{skip_server}"
    );
    let skipped = transition(
        &target(RolloutState::Running, 1, &phases, &steps),
        &Command::Skip {
            host_id: "cl-01".into(),
        },
    )
    .unwrap();
    assert_eq!(skipped.to, RolloutState::Running);
    assert_eq!(skipped.skip.len(), 1);
    assert!(
        skipped.details.contains("keeps its old client version"),
        "{}",
        skipped.details
    );
}

#[test]
fn restarts_follow_the_role_policy() {
    let (phases, mut steps) = rollout(2);
    let mut hosts = fleet(V263, 2);
    for host in &mut hosts {
        host.inventory = {
            let mut components = std::mem::take(&mut host.inventory).into_components();
            for c in &mut components {
                c.version = ProbedVersion::Installed(V263);
            }
            crate::Inventory::new(components).unwrap()
        };
    }
    let wave = phases
        .iter()
        .position(|p| matches!(p.kind, PhaseKind::ClientWave { .. }))
        .unwrap();
    let step = steps.iter().position(|s| s.phase == wave).unwrap();
    let id = steps[step].step_id.clone();
    for s in steps.iter_mut().filter(|s| s.phase == wave) {
        s.state = StepState::Succeeded;
        s.outcome = Some(StepOutcome::Succeeded);
        s.attempts = 1;
        s.changed_ms = 1_800_000_000_000;
    }
    steps[step].outcome = Some(StepOutcome::SucceededRestartRequired);
    steps[step].restart = RestartState::after(StepOutcome::SucceededRestartRequired);
    let at = 1_800_000_001_000;
    let mut options = RolloutOptions::default();
    // Clients restart at once by default.
    let auto = decide(&snapshot(wave, &phases, &steps, &hosts, &options), at);
    assert_eq!(
        auto,
        [Decision::Restart {
            step_id: id.clone()
        }]
    );
    options.restarts.insert(Role::Client, RestartPolicy::Ask);
    let ask = decide(&snapshot(wave, &phases, &steps, &hosts, &options), at);
    assert_eq!(
        ask,
        [Decision::AwaitRestart {
            hosts: vec![steps[step].host_id.clone()]
        }]
    );
    options.restarts.insert(Role::Client, RestartPolicy::Never);
    let never = decide(&snapshot(wave, &phases, &steps, &hosts, &options), at);
    assert!(never.is_empty(), "{never:?}");
    // An approved restart goes out whatever the policy; a requested one
    // waits for the host to come back with a later boot time.
    steps[step].restart = RestartState::Approved;
    let approved = decide(&snapshot(wave, &phases, &steps, &hosts, &options), at);
    assert_eq!(
        approved,
        [Decision::Restart {
            step_id: id.clone()
        }]
    );
    steps[step].restart = RestartState::Requested;
    assert!(decide(&snapshot(wave, &phases, &steps, &hosts, &options), at).is_empty());
    let delivery = outstanding(&steps[step], "ab12", hosts[0].boot_ms).unwrap();
    assert_eq!(delivery.dispatch_id, format!("{id}.1.ab12.restart"));
    assert_eq!(delivery.action, StepAction::Restart { role: Role::Client });
    let host = hosts
        .iter_mut()
        .find(|h| h.host_id == steps[step].host_id)
        .unwrap();
    host.boot_ms = Some(steps[step].changed_ms + 30_000);
    assert_eq!(outstanding(&steps[step], "ab12", host.boot_ms), None);
    let done = decide(
        &snapshot(wave, &phases, &steps, &hosts, &options),
        at + 60_000,
    );
    assert!(
        matches!(
            done.as_slice(),
            [Decision::EnterPhase { .. } | Decision::Complete]
        ),
        "{done:?}"
    );
    // Approving a rollout that waits for restarts approves them.
    steps[step].restart = RestartState::Required;
    let approve = transition(
        &target(RolloutState::WaitingForApproval, wave, &phases, &steps),
        &Command::Approve,
    )
    .unwrap();
    assert_eq!(approve.approve_restarts, [id]);
}

#[test]
fn admission_refuses_blocked_plans_missing_acks_and_installers() {
    use crate::catalogue::Artifact;
    let hosts = fleet(V931, 1);
    let catalogue = password_secure_catalogue();
    let planned = plan(&PlanRequest {
        installation: "prod",
        hosts: &hosts,
        catalogue: &catalogue,
        licence: Some(&licence("prod", "2026-12-31")),
        target: V263,
        waves: &ClientWaves::default(),
        web_packages: None,
    })
    .unwrap();
    let named: std::collections::BTreeMap<Role, Artifact> = [(
        Role::Client,
        Artifact {
            file: "client.msi".into(),
            sha256: "aa".repeat(32),
        },
    )]
    .into();
    let none = std::collections::BTreeMap::new();
    let request = |acks: &'static [String], stored| AdmissionRequest {
        plan: &planned,
        acks,
        named: &named,
        stored,
    };
    let unacknowledged = admit(&request(&[], &none)).unwrap_err();
    assert!(
        unacknowledged.to_string().contains("--ack breaking"),
        "{unacknowledged}"
    );
    let acks: &'static [String] = Box::leak(planned.acks_required.clone().into_boxed_slice());
    let missing = admit(&request(acks, &none)).unwrap_err();
    assert!(
        missing.to_string().contains(
            "tierwise artifacts add client.msi --release 26.3.100.34058 --component client"
        ),
        "{missing}"
    );
    let wrong = [(Role::Client, "bb".repeat(32))].into();
    assert!(matches!(
        admit(&request(acks, &wrong)),
        Err(NotAdmitted::WrongInstaller { .. })
    ));
    let right = [(Role::Client, "aa".repeat(32))].into();
    assert_eq!(admit(&request(acks, &right)).unwrap().installers, right);
    let mut blocked = planned.clone();
    blocked.blocked = true;
    let refused = admit(&AdmissionRequest {
        plan: &blocked,
        ..request(acks, &right)
    })
    .unwrap_err();
    assert!(
        refused.to_string().starts_with("the plan is blocked"),
        "{refused}"
    );
}

/// The names the store, the CLI and `--json` use come from one derived
/// table per enum: serde's name is the stored one, and it reads back.
#[test]
fn state_names_round_trip() {
    use strum::IntoEnumIterator;
    fn check<T>(
        variants: impl Iterator<Item = T>,
        name: fn(T) -> &'static str,
        parse: fn(&str) -> Option<T>,
    ) where
        T: Copy + PartialEq + std::fmt::Debug + serde::Serialize,
    {
        for v in variants {
            assert_eq!(
                serde_json::to_string(&v).unwrap(),
                format!("\"{}\"", name(v))
            );
            assert_eq!(parse(name(v)), Some(v));
        }
    }
    check(
        RolloutState::iter(),
        RolloutState::as_str,
        RolloutState::parse,
    );
    check(StepState::iter(), StepState::as_str, StepState::parse);
    check(
        RestartState::iter(),
        RestartState::as_str,
        RestartState::parse,
    );
    check(
        RestartPolicy::iter(),
        RestartPolicy::as_str,
        RestartPolicy::parse,
    );
    check(
        crate::Check::iter(),
        crate::Check::as_str,
        crate::Check::parse,
    );
    check(
        crate::WebServerKind::iter(),
        crate::WebServerKind::as_str,
        crate::WebServerKind::parse,
    );
    assert_eq!(
        RolloutState::parse("waiting_for_approval"),
        Some(RolloutState::WaitingForApproval)
    );
    assert_eq!(
        StepState::parse("Pending"),
        None,
        "names are snake_case only"
    );
}

#[test]
fn steps_start_only_when_their_time_limit_fits_in_the_window() {
    use crate::window::{Gate, MaintenanceWindow};
    let (phases, steps) = rollout(1);
    let hosts = fleet(V931, 1);
    let options = RolloutOptions::default(); // steps may take 2 h
                                             // Friday 2026-12-04 12:00 UTC.
    let friday_noon = 1_796_385_600_000;
    let saturday = [MaintenanceWindow::new("server", "sat", "02:00", "06:00", "UTC").unwrap()];
    let snap = RolloutSnapshot {
        windows: &saturday,
        web_packages: None,
        ..snapshot(0, &phases, &steps, &hosts, &options)
    };
    assert!(
        decide(&snap, friday_noon).is_empty(),
        "the backup waits for Saturday"
    );
    assert!(
        matches!(phase_gate(&snap, friday_noon), Gate::Wait { reason, .. } if reason.contains("opens Sat 2026-12-05 02:00 UTC"))
    );
    // Saturday 03:00: two hours fit before 06:00; at 04:30 they do not.
    let three = friday_noon + 15 * 3_600_000;
    assert!(matches!(
        decide(&snap, three).as_slice(),
        [Decision::Dispatch { .. }]
    ));
    assert!(decide(&snap, three + 90 * 60_000).is_empty());
    // A window of another scope does not hold the server's phases.
    let clients = [MaintenanceWindow::new("clients", "sat", "02:00", "06:00", "UTC").unwrap()];
    let other = RolloutSnapshot {
        windows: &clients,
        web_packages: None,
        ..snapshot(0, &phases, &steps, &hosts, &options)
    };
    assert!(matches!(
        decide(&other, friday_noon).as_slice(),
        [Decision::Dispatch { .. }]
    ));
    // With a breaking release crossed the client waves follow at once.
    let wave = phases
        .iter()
        .position(|p| matches!(p.kind, PhaseKind::ClientWave { .. }))
        .unwrap();
    let at_once = RolloutOptions {
        clients_at_once: true,
        ..RolloutOptions::default()
    };
    let breaking = RolloutSnapshot {
        windows: &clients,
        web_packages: None,
        ..snapshot(wave, &phases, &steps, &hosts, &at_once)
    };
    assert_eq!(phase_gate(&breaking, friday_noon), Gate::Free);
    let held = RolloutSnapshot {
        windows: &clients,
        web_packages: None,
        ..snapshot(wave, &phases, &steps, &hosts, &options)
    };
    assert!(matches!(phase_gate(&held, friday_noon), Gate::Wait { .. }));
}

#[test]
fn the_expected_duration_follows_the_slowest_host_and_waits_for_windows() {
    use crate::window::MaintenanceWindow;
    let (phases, steps) = rollout(2);
    let release = V263.to_string();
    let min = 60_000;
    let mut durations = Durations::default();
    for (action, role, each) in [
        ("backup", Role::Server, 2),
        ("stop_services", Role::Server, 1),
        ("install", Role::Server, 10),
        ("start_services", Role::Server, 1),
        ("reactivate_databases", Role::Server, 3),
        ("deploy_web_app", Role::Web, 1),
    ] {
        durations.add(action, role, &release, 2, 2 * each * min);
    }
    let options = RolloutOptions::default();
    let now = 1_796_385_600_000; // Friday 2026-12-04 12:00 UTC
                                 // Clients never measured: the work of their waves, and the end, are unknown.
    let partial = estimate(&phases, &steps, 0, &release, &durations, &[], &options, now);
    assert_eq!(partial.unmeasured, ["install on client"]);
    assert_eq!(partial.end_ms, None);
    assert_eq!(
        partial.phases[1].work_ms,
        Some(12 * min),
        "stop, install, start on one host"
    );
    // Measured for another release: that mean is used.
    durations.add("install", Role::Client, "26.4.10.34111", 4, 4 * 5 * min);
    let full = estimate(&phases, &steps, 0, &release, &durations, &[], &options, now);
    assert!(full.unmeasured.is_empty());
    // backup 2 + server 12 + databases 3 + web 1 + two waves of 5.
    assert_eq!(full.work_ms, Some(28 * min));
    assert_eq!(full.end_ms, Some(now + 28 * min));
    // A server window on Saturday: everything moves to 02:00 UTC.
    let saturday = [MaintenanceWindow::new("server", "sat", "02:00", "06:00", "UTC").unwrap()];
    let waiting = estimate(
        &phases, &steps, 0, &release, &durations, &saturday, &options, now,
    );
    let opens = now + 14 * 3_600_000;
    assert!(waiting.phases[0].waits_for_window);
    assert_eq!(waiting.phases[0].starts_ms, Some(opens));
    assert_eq!(waiting.end_ms, Some(opens + 28 * min));
    // From the first client wave on, only what is left counts.
    let wave = phases
        .iter()
        .position(|p| matches!(p.kind, PhaseKind::ClientWave { .. }))
        .unwrap();
    let rest = estimate(
        &phases, &steps, wave, &release, &durations, &saturday, &options, now,
    );
    assert_eq!(rest.work_ms, Some(10 * min));
    assert_eq!(duration_text(28 * min), "28 min");
    assert_eq!(duration_text(80 * min), "1 h 20 min");
}

#[test]
fn the_expected_duration_saturates_instead_of_overflowing() {
    let (phases, steps) = rollout(2);
    let release = V263.to_string();
    let mut durations = Durations::default();
    for (action, role) in [
        ("backup", Role::Server),
        ("stop_services", Role::Server),
        ("install", Role::Server),
        ("start_services", Role::Server),
        ("reactivate_databases", Role::Server),
        ("deploy_web_app", Role::Web),
        ("install", Role::Client),
    ] {
        durations.add(action, role, &release, 1, i64::MAX);
        durations.add(action, role, &release, 1, i64::MAX);
    }
    let now = 1_796_385_600_000;
    let options = RolloutOptions::default();
    let full = estimate(&phases, &steps, 0, &release, &durations, &[], &options, now);
    assert_eq!(full.work_ms, Some(i64::MAX));
    assert_eq!(full.end_ms, Some(i64::MAX));
    assert!(!duration_text(i64::MAX).is_empty());
}

#[test]
fn once_a_scope_began_its_work_goes_on_past_the_window() {
    use crate::window::{Gate, MaintenanceWindow};
    let (phases, mut steps) = rollout(1);
    let hosts = fleet(V931, 1);
    let options = RolloutOptions::default();
    let friday_noon = 1_796_385_600_000;
    let windows = [
        MaintenanceWindow::new("server", "sat", "02:00", "06:00", "UTC").unwrap(),
        MaintenanceWindow::new("web", "sat", "02:00", "06:00", "UTC").unwrap(),
    ];
    let at = |kind: fn(&PhaseKind) -> bool| phases.iter().position(|p| kind(&p.kind)).unwrap();
    // The server phase and the databases follow the backup whatever the time.
    for phase in [
        at(|k| *k == PhaseKind::Server),
        at(|k| *k == PhaseKind::Databases),
    ] {
        let snap = RolloutSnapshot {
            windows: &windows,
            web_packages: None,
            ..snapshot(phase, &phases, &steps, &hosts, &options)
        };
        assert_eq!(phase_gate(&snap, friday_noon), Gate::Free);
    }
    // The web phase begins a scope of its own: it waits, unless a breaking
    // release makes everything after the server follow at once.
    let web = at(|k| *k == PhaseKind::Web);
    let snap = RolloutSnapshot {
        windows: &windows,
        web_packages: None,
        ..snapshot(web, &phases, &steps, &hosts, &options)
    };
    assert!(matches!(phase_gate(&snap, friday_noon), Gate::Wait { .. }));
    let at_once = RolloutOptions {
        clients_at_once: true,
        ..RolloutOptions::default()
    };
    let snap = RolloutSnapshot {
        windows: &windows,
        web_packages: None,
        ..snapshot(web, &phases, &steps, &hosts, &at_once)
    };
    assert_eq!(phase_gate(&snap, friday_noon), Gate::Free);
    // A backup that failed transiently inside the window is retried after it.
    let backup = steps.iter_mut().find(|s| s.phase == 0).unwrap();
    backup.state = StepState::Failed;
    backup.outcome = Some(StepOutcome::FailedTransient);
    backup.attempts = 1;
    backup.changed_ms = friday_noon - 3_600_000;
    let snap = RolloutSnapshot {
        windows: &windows,
        web_packages: None,
        ..snapshot(0, &phases, &steps, &hosts, &options)
    };
    assert!(matches!(
        decide(&snap, friday_noon).as_slice(),
        [Decision::Retry { .. }]
    ));
}

#[test]
fn a_rollout_ends_cleanly_only_when_no_host_failed_or_was_skipped() {
    let (phases, mut steps) = rollout(4);
    let hosts = fleet(V931, 4);
    let options = RolloutOptions::default();
    let done =
        |steps: &[ExecStep]| decide(&snapshot(phases.len(), &phases, steps, &hosts, &options), 0);
    for step in &mut steps {
        step.state = StepState::Succeeded;
    }
    assert_eq!(done(&steps), [Decision::Complete]);
    assert_eq!(
        Decision::Complete.final_state(),
        Some(RolloutState::Completed)
    );
    // A client failed within its wave's threshold; another was skipped
    // after it failed (both of its steps), a third was skipped unseen.
    let client = |n: usize| format!("cl-{n:02}");
    for step in steps.iter_mut() {
        if step.host_id == client(1) {
            step.state = StepState::Failed;
        } else if step.host_id == client(2) || step.host_id == client(3) {
            step.state = StepState::Skipped;
        }
    }
    let ended = done(&steps);
    assert_eq!(
        ended,
        [Decision::CompleteWithFailures {
            failed_hosts: vec![client(1)],
            skipped_hosts: vec![client(2), client(3)],
        }]
    );
    assert_eq!(
        ended[0].final_state(),
        Some(RolloutState::CompletedWithFailures)
    );
}

#[test]
fn a_rollout_completed_with_failures_is_final_and_takes_no_command() {
    let state = RolloutState::CompletedWithFailures;
    assert!(state.is_final() && state.is_settled() && !state.is_evaluated());
    assert_eq!(state.as_str(), "completed_with_failures");
    assert_eq!(RolloutState::parse("completed_with_failures"), Some(state));
    assert_eq!(
        RolloutState::final_sql_list(),
        "'completed', 'completed_with_failures', 'aborted'"
    );
    assert!(RolloutState::Failed.is_settled() && !RolloutState::Failed.is_final());
    use strum::IntoEnumIterator;
    assert_eq!(
        RolloutState::iter().collect::<Vec<_>>(),
        RolloutState::ALL,
        "ALL names every state"
    );
    let (phases, steps) = rollout(1);
    for command in [
        Command::Pause,
        Command::Resume,
        Command::Abort,
        Command::Approve,
        Command::Skip {
            host_id: "cl-00".into(),
        },
    ] {
        assert!(
            matches!(
                transition(&target(state, 0, &phases, &steps), &command),
                Err(Refusal::WrongState { .. })
            ),
            "{command:?}"
        );
    }
    let hosts = fleet(V931, 1);
    let options = RolloutOptions::default();
    let snap = RolloutSnapshot {
        state,
        ..snapshot(0, &phases, &steps, &hosts, &options)
    };
    assert!(decide(&snap, 0).is_empty());
}
