//! Operator tasks in the rollout: where the plan puts them, how the engine
//! waits at them, what `done` does, and what is checked afterwards.

use super::*;
use crate::action::{StepAction, StepOutcome};
use crate::fixtures::{client, licence, password_secure_catalogue, server, web};
use crate::plan::{plan, Action, PhaseKind, Plan, PlanRequest};
use crate::rules::{Rule, Severity};
use crate::task::{TaskKind, TaskState};
use crate::{Check, ClientWaves, Facts, HostRecord, ProbedVersion, Role, Version, WebServerKind};
use std::collections::BTreeMap;

const V931: Version = Version::new(9, 3, 1, 33994);
const V263: Version = Version::new(26, 3, 100, 34058);

/// A server whose agent has commands for `commands` only.
fn fleet(commands: &[&str], databases: &[(&str, bool, Version)]) -> Vec<HostRecord> {
    let mut srv = server("srv", "prod", V931, databases);
    set_commands(&mut srv, commands);
    vec![
        srv,
        web("web", "prod", V931, WebServerKind::Apache, Check::Yes),
        client("cl-01", "prod", ProbedVersion::Installed(V931), Check::No),
    ]
}

fn set_commands(host: &mut HostRecord, commands: &[&str]) {
    let mut components: Vec<crate::Component> = host.inventory.components().to_vec();
    for component in &mut components {
        if let Facts::Server(facts) = &mut component.facts {
            facts.commands = Some(commands.iter().map(|c| (*c).to_owned()).collect());
        }
    }
    host.inventory = crate::Inventory::new(components).unwrap();
}

fn planned(hosts: &[HostRecord]) -> Plan {
    plan(&PlanRequest {
        installation: "prod",
        hosts,
        catalogue: &password_secure_catalogue(),
        licence: Some(&licence("prod", "2026-12-31")),
        target: V263,
        waves: &ClientWaves::parse("100%").unwrap(),
        web_packages: None,
    })
    .unwrap()
}

fn snapshot<'a>(
    state: RolloutState,
    phase: usize,
    phases: &'a [ExecPhase],
    steps: &'a [ExecStep],
    hosts: &'a [HostRecord],
    options: &'a RolloutOptions,
) -> RolloutSnapshot<'a> {
    RolloutSnapshot {
        state,
        current_phase: phase,
        options,
        phases,
        steps,
        hosts,
        windows: &[],
        web_packages: None,
    }
}

fn succeed(steps: &mut [ExecStep], id: &str, at: i64) {
    let step = steps.iter_mut().find(|s| s.step_id == id).unwrap();
    step.state = StepState::Succeeded;
    step.outcome = Some(StepOutcome::Succeeded);
    step.changed_ms = at;
}

const ALL: [&str; 5] = [
    "backup",
    "stop_services",
    "install",
    "start_services",
    "reactivate_databases",
];

#[test]
fn steps_without_a_command_become_tasks_with_instructions() {
    let hosts = fleet(
        &["stop_services", "install", "start_services"],
        &[("PSDB", true, V931), ("PSDB_HR", true, V931)],
    );
    let plan = planned(&hosts);
    assert!(!plan.blocked, "{:#?}", plan.findings);
    let kinds: Vec<TaskKind> = plan.tasks.iter().map(|t| t.kind).collect();
    assert_eq!(
        kinds,
        [TaskKind::Backup, TaskKind::ReactivateDatabases],
        "{:#?}",
        plan.tasks
    );
    let reactivate = &plan.tasks[1];
    assert_eq!(plan.phases[reactivate.phase].kind, PhaseKind::Databases);
    assert!(reactivate
        .instructions
        .contains("PSDB (patch level 9.3.1.33994), PSDB_HR"));
    assert!(reactivate.observable);
    assert!(!plan.tasks[0].observable, "a backup by hand shows nothing");
    assert!(plan
        .findings
        .iter()
        .any(|f| f.rule == Rule::Readiness && f.severity == Severity::Warning));
    // Every command configured: no task at all.
    assert!(planned(&fleet(&ALL, &[("PSDB", true, V931)]))
        .tasks
        .is_empty());
}

#[test]
fn an_install_by_hand_leaves_the_services_to_the_wizard_but_a_command_needs_them() {
    let wizard = planned(&fleet(
        &["backup", "reactivate_databases"],
        &[("PSDB", true, V931)],
    ));
    let server: Vec<(Action, bool)> = wizard.phases[1]
        .steps
        .iter()
        .map(|s| (s.action, s.task.is_some()))
        .collect();
    assert_eq!(server, [(Action::InstallServer, true)]);
    assert!(!wizard.blocked);

    let half = planned(&fleet(
        &["backup", "install", "reactivate_databases"],
        &[("PSDB", true, V931)],
    ));
    assert!(half.blocked);
    let blocker = half
        .findings
        .iter()
        .find(|f| f.rule == Rule::Readiness && f.severity == Severity::Blocker)
        .unwrap();
    assert!(
        blocker.reason.contains("stop_services and start_services"),
        "{}",
        blocker.reason
    );
}

#[test]
fn a_server_reporting_no_databases_gets_a_reactivation_that_proceeds_on_done_alone() {
    let plan = planned(&fleet(
        &["backup", "stop_services", "install", "start_services"],
        &[],
    ));
    assert!(!plan.blocked, "{:#?}", plan.findings);
    assert!(plan
        .acks_required
        .iter()
        .all(|a| a != "unverified-databases"));
    let task = plan
        .tasks
        .iter()
        .find(|t| t.kind == TaskKind::ReactivateDatabases)
        .unwrap();
    assert!(!task.observable);
    assert!(
        task.verification.contains("`done` alone"),
        "{}",
        task.verification
    );
}

/// A rollout whose reactivation is a task, with the server already updated.
fn at_the_reactivation() -> (Vec<ExecPhase>, Vec<ExecStep>, Vec<HostRecord>, usize) {
    let hosts = fleet(
        &["backup", "stop_services", "install", "start_services"],
        &[("PSDB", true, V931)],
    );
    let plan = planned(&hosts);
    let (phases, mut steps) = steps_from_plan("r7", &plan, 0);
    let databases = phases
        .iter()
        .position(|p| p.kind == PhaseKind::Databases)
        .unwrap();
    let ids: Vec<String> = steps
        .iter()
        .filter(|s| s.phase < databases)
        .map(|s| s.step_id.clone())
        .collect();
    for id in ids {
        succeed(&mut steps, &id, 0);
    }
    let mut hosts = hosts;
    hosts[0] = server("srv", "prod", V263, &[("PSDB", false, V931)]);
    set_commands(
        &mut hosts[0],
        &["backup", "stop_services", "install", "start_services"],
    );
    (phases, steps, hosts, databases)
}

#[test]
fn the_rollout_waits_at_a_task_sends_nothing_past_it_and_verifies_it() {
    let (phases, mut steps, mut hosts, databases) = at_the_reactivation();
    let options = RolloutOptions::default();
    let task_id = steps
        .iter()
        .find(|s| s.task.is_some() && s.phase == databases)
        .unwrap()
        .step_id
        .clone();
    let instructions = &steps
        .iter()
        .find(|s| s.step_id == task_id)
        .unwrap()
        .task
        .as_ref()
        .unwrap()
        .instructions;
    assert!(
        instructions.contains(&format!("tierwise rollout done r7 {task_id}")),
        "{instructions}"
    );
    let run = |state, steps: &[ExecStep], hosts: &[HostRecord]| {
        decide(
            &snapshot(state, databases, &phases, steps, hosts, &options),
            1_000,
        )
    };
    // Reached: opened, and the rollout waits, saying the installation is down.
    let d = run(RolloutState::Running, &steps, &hosts);
    let [Decision::AwaitOperator { open, reason }] = d.as_slice() else {
        panic!("{d:?}")
    };
    assert_eq!(open, std::slice::from_ref(&task_id));
    assert!(reason.contains("out of service"), "{reason}");
    // Open: nothing else happens while the rollout waits.
    let step = steps.iter_mut().find(|s| s.step_id == task_id).unwrap();
    step.state = StepState::Dispatched;
    step.changed_ms = 1_000;
    assert!(run(RolloutState::WaitingForOperator, &steps, &hosts).is_empty());
    // Paused and resumed while open: it waits again.
    assert!(matches!(
        run(RolloutState::Running, &steps, &hosts).as_slice(),
        [Decision::AwaitOperator { open, .. }] if open.is_empty()
    ));
    let by_host = Observed::new(&hosts, None);
    let state_of = |steps: &[ExecStep], by_host: &Observed<'_>| {
        task_state(
            steps.iter().find(|s| s.step_id == task_id).unwrap(),
            by_host,
        )
    };
    assert_eq!(state_of(&steps, &by_host), Some(TaskState::Open));
    // Done, but the database still reports inactive: no next phase.
    succeed(&mut steps, &task_id, 2_000);
    assert_eq!(state_of(&steps, &by_host), Some(TaskState::Done));
    assert!(run(RolloutState::Running, &steps, &hosts).is_empty());
    // The agent reports it active at the new patch level: verified, on.
    hosts[0] = server("srv", "prod", V263, &[("PSDB", true, V263)]);
    let by_host = Observed::new(&hosts, None);
    assert_eq!(state_of(&steps, &by_host), Some(TaskState::Verified));
    assert_eq!(
        run(RolloutState::Running, &steps, &hosts),
        [Decision::EnterPhase {
            phase: databases + 1
        }]
    );
}

#[test]
fn a_task_left_open_past_its_timeout_halts_the_rollout() {
    let (phases, mut steps, hosts, databases) = at_the_reactivation();
    let options = RolloutOptions {
        task_timeout_ms: 60_000,
        ..RolloutOptions::default()
    };
    let task = steps
        .iter_mut()
        .find(|s| s.task.is_some() && s.phase == databases)
        .unwrap();
    task.state = StepState::Dispatched;
    task.changed_ms = 0;
    let id = task.step_id.clone();
    let at = |now| {
        decide(
            &snapshot(
                RolloutState::WaitingForOperator,
                databases,
                &phases,
                &steps,
                &hosts,
                &options,
            ),
            now,
        )
    };
    assert!(at(60_000).is_empty());
    let d = at(60_001);
    let [Decision::TaskExpired { step_id, reason }] = d.as_slice() else {
        panic!("{d:?}")
    };
    assert_eq!(step_id, &id);
    assert!(
        reason.contains("1 min") && reason.contains("out of service"),
        "{reason}"
    );
}

#[test]
fn done_completes_only_an_open_task() {
    let (phases, mut steps, _, databases) = at_the_reactivation();
    let task = steps
        .iter()
        .find(|s| s.task.is_some() && s.phase == databases)
        .unwrap()
        .step_id
        .clone();
    use super::tests::target;
    let done = |name: &str| Command::Done {
        task: name.to_owned(),
        note: "reactivated by hand".to_owned(),
    };
    // Not reached yet.
    let refused = transition(
        &target(RolloutState::Running, databases, &phases, &steps),
        &done(&task),
    )
    .unwrap_err();
    assert!(refused.to_string().contains("has not reached"), "{refused}");
    let open = steps.iter_mut().find(|s| s.step_id == task).unwrap();
    open.state = StepState::Dispatched;
    // An agent's step, an unknown name.
    let refused = transition(
        &target(RolloutState::WaitingForOperator, databases, &phases, &steps),
        &done("r7-1"),
    )
    .unwrap_err();
    assert!(
        refused.to_string().contains("not an operator task"),
        "{refused}"
    );
    let refused = transition(
        &target(RolloutState::WaitingForOperator, databases, &phases, &steps),
        &done("nope"),
    )
    .unwrap_err();
    assert!(
        refused.to_string().contains("has no task `nope`"),
        "{refused}"
    );
    // By id or by kind: done, and the rollout goes on.
    for name in [task.as_str(), "reactivate_databases"] {
        let change = transition(
            &target(RolloutState::WaitingForOperator, databases, &phases, &steps),
            &done(name),
        )
        .unwrap();
        assert_eq!(change.to, RolloutState::Running);
        assert_eq!(
            change.done,
            Some((task.clone(), "reactivated by hand".to_owned()))
        );
        assert!(
            change.details.contains("note: reactivated by hand"),
            "{}",
            change.details
        );
    }
    // Paused: done, still paused.
    let change = transition(
        &target(RolloutState::Paused, databases, &phases, &steps),
        &done(&task),
    )
    .unwrap();
    assert_eq!(change.to, RolloutState::Paused);
    succeed(&mut steps, &task, 5);
    let refused = transition(
        &target(RolloutState::Running, databases, &phases, &steps),
        &done(&task),
    )
    .unwrap_err();
    assert!(refused.to_string().contains("already done"), "{refused}");
}

#[test]
fn the_server_is_never_updated_on_a_stale_backup() {
    let hosts = fleet(&ALL, &[("PSDB", true, V931)]);
    let plan = planned(&hosts);
    let (phases, mut steps) = steps_from_plan("r2", &plan, 0);
    succeed(&mut steps, "r2-1", 0);
    let options = RolloutOptions::default();
    let server = phases
        .iter()
        .position(|p| p.kind == PhaseKind::Server)
        .unwrap();
    let at = |now, steps: &[ExecStep]| {
        decide(
            &snapshot(
                RolloutState::Running,
                server,
                &phases,
                steps,
                &hosts,
                &options,
            ),
            now,
        )
    };
    assert_eq!(
        at(DEFAULT_MAX_BACKUP_AGE_MS, &steps),
        [Decision::Dispatch {
            step_id: "r2-2".into()
        }]
    );
    let d = at(DEFAULT_MAX_BACKUP_AGE_MS + 1, &steps);
    let [Decision::StaleBackup {
        step_id,
        phase,
        reason,
    }] = d.as_slice()
    else {
        panic!("{d:?}")
    };
    assert_eq!((step_id.as_str(), *phase), ("r2-1", 0));
    assert!(
        reason.contains("--max-backup-age") && reason.contains("2 h"),
        "{reason}"
    );
    // Once the server's unit began, it goes on whatever the backup's age.
    let stop = steps.iter_mut().find(|s| s.step_id == "r2-2").unwrap();
    stop.state = StepState::Dispatched;
    stop.attempts = 1;
    stop.changed_ms = DEFAULT_MAX_BACKUP_AGE_MS;
    assert!(at(DEFAULT_MAX_BACKUP_AGE_MS + 1, &steps).is_empty());
}

#[test]
fn durations_read_as_operators_write_them() {
    let parse = |t| parse_duration_ms(t, "--task-timeout", 60_000, 7 * 86_400_000);
    assert_eq!(parse("24h"), Ok(86_400_000));
    assert_eq!(parse("90m"), Ok(5_400_000));
    assert_eq!(parse("2d"), Ok(172_800_000));
    for bad in ["", "h", "10", "5x", "-1h", "1.5h", "30s", "8d"] {
        assert!(parse(bad).is_err(), "{bad}");
    }
    assert_eq!(human_span(7_200_000), "2 h");
    assert_eq!(human_span(90_000), "90 s");
    assert_eq!(
        StepAction::Backup.config_key(),
        TaskKind::Backup.config_key()
    );
    let _ = Role::Server;
}

#[test]
fn a_plan_is_not_ready_without_installers_or_the_space_for_them() {
    use crate::{Artifact, Volume, VolumePurpose};
    let mut hosts = fleet(&ALL, &[("PSDB", true, V931)]);
    let plan = planned(&hosts);
    let sha = |c: char| c.to_string().repeat(64);
    let named: BTreeMap<Role, Artifact> = [(
        Role::Server,
        Artifact {
            file: "PSServer.msi".into(),
            sha256: sha('a'),
        },
    )]
    .into();
    // Named by the catalogue, not held, or held with another checksum.
    let missing = installer_findings(&plan, &named, &BTreeMap::new());
    assert_eq!(missing.len(), 1);
    assert!(
        missing[0].reason.contains("does not hold it"),
        "{}",
        missing[0].reason
    );
    assert_eq!(missing[0].severity, Severity::Blocker);
    let wrong = installer_findings(&plan, &named, &[(Role::Server, sha('b'))].into());
    assert!(
        wrong[0].reason.contains("but the catalogue gives"),
        "{}",
        wrong[0].reason
    );
    assert!(installer_findings(&plan, &named, &[(Role::Server, sha('a'))].into()).is_empty());

    // Free space where the agents download installers.
    let with_free = |host: &mut HostRecord, mib: u64| {
        host.inventory = host
            .inventory
            .clone()
            .with_volumes(vec![Volume {
                purpose: VolumePurpose::State,
                path: "/var/lib/tierwise-agent".into(),
                free_bytes: mib * 1024 * 1024,
            }])
            .unwrap();
    };
    let sizes: BTreeMap<Role, u64> = [(Role::Server, 300 << 20), (Role::Client, 100 << 20)].into();
    assert!(
        disk_findings(&plan, &hosts, &sizes).is_empty(),
        "nothing reported"
    );
    with_free(&mut hosts[0], 512);
    with_free(&mut hosts[2], 150);
    let tight = disk_findings(&plan, &hosts, &sizes);
    assert_eq!(tight.len(), 2, "{tight:#?}");
    assert_eq!(tight[0].severity, Severity::Blocker);
    assert!(
        tight[0].reason.contains("512 MiB are free"),
        "{}",
        tight[0].reason
    );
    assert!(
        tight[0].reason.contains("needs 600 MiB"),
        "{}",
        tight[0].reason
    );
    assert_eq!(tight[1].severity, Severity::Warning, "a client");
    with_free(&mut hosts[0], 4096);
    with_free(&mut hosts[2], 4096);
    assert!(disk_findings(&plan, &hosts, &sizes).is_empty());
}
