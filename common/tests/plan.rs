//! The planner on realistic installations built from the real version numbers.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use tierwise_common::fixtures::{client, licence, offline, password_secure_catalogue, server, web};
use tierwise_common::plan::{plan, Action, PhaseKind, Plan, PlanError, PlanRequest};
use tierwise_common::rules::{Rule, Severity, Subject};
use tierwise_common::{Check, ClientWaves, HostRecord, ProbedVersion, Version, WebServerKind};

fn v(text: &str) -> Version {
    text.parse().unwrap()
}

const V926: &str = "9.2.6.33415";
const V931: &str = "9.3.1.33994";
const V263: &str = "26.3.100.34058";

/// A server with two databases, an Apache web host, `clients` clients.
fn installation(clients: usize, websocket: Check) -> Vec<HostRecord> {
    let mut hosts = vec![
        server(
            "srv-01",
            "prod",
            v(V931),
            &[("PSDB", true, v(V931)), ("Archive", true, v(V931))],
        ),
        web("web-01", "prod", v(V931), WebServerKind::Apache, websocket),
    ];
    for i in 0..clients {
        let version = if i % 4 == 0 { V926 } else { V931 };
        hosts.push(client(
            &format!("cl-{i:04}"),
            "prod",
            ProbedVersion::Installed(v(version)),
            Check::No,
        ));
    }
    hosts
}

fn plan_for(hosts: &[HostRecord], target: &str, until: &str) -> Plan {
    let catalogue = password_secure_catalogue();
    let licence = licence("prod", until);
    plan(&PlanRequest {
        installation: "prod",
        hosts,
        catalogue: &catalogue,
        licence: Some(&licence),
        target: v(target),
        waves: &ClientWaves::default(),
        web_packages: None,
    })
    .unwrap()
}

#[test]
fn a_breaking_update_in_vendor_order() {
    let hosts = installation(20, Check::Yes);
    let plan = plan_for(&hosts, V263, "2026-12-31");
    assert!(!plan.blocked, "{:#?}", plan.findings);
    let kinds: Vec<PhaseKind> = plan.phases.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds[..5],
        [
            PhaseKind::Backup,
            PhaseKind::Server,
            PhaseKind::Databases,
            PhaseKind::AppServers,
            PhaseKind::Web
        ]
    );
    assert!(matches!(
        kinds[5],
        PhaseKind::ClientWave {
            wave: 1,
            percent: 1
        }
    ));
    assert_eq!(plan.phases[0].steps[0].action, Action::Backup);
    // The plan lists the steps the rollout runs: stop, install, start on
    // the server; one reactivation for all databases.
    let server: Vec<Action> = plan.phases[1].steps.iter().map(|s| s.action).collect();
    assert_eq!(
        server,
        [
            Action::StopServices,
            Action::InstallServer,
            Action::StartServices
        ]
    );
    assert_eq!(plan.phases[1].steps[1].from, Some(v(V931)));
    assert_eq!(plan.phases[2].steps.len(), 1);
    let databases: Vec<&str> = plan.phases[2].steps[0]
        .databases
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(databases, ["PSDB", "Archive"]);
    let (phases, steps) = tierwise_common::rollout::steps_from_plan("r1", &plan, 0);
    for (index, phase) in plan
        .phases
        .iter()
        .filter(|p| !p.steps.is_empty())
        .enumerate()
    {
        assert_eq!(phases[index].kind, phase.kind);
        assert_eq!(
            steps.iter().filter(|s| s.phase == index).count(),
            phase.steps.len(),
            "{:?}: plan and rollout count the same steps",
            phase.kind
        );
    }
    assert_eq!(plan.phases[4].steps[0].action, Action::DeployWebApp);
    let client_steps: usize = plan.phases[5..].iter().map(|p| p.steps.len()).sum();
    assert_eq!(client_steps, 20);
    assert_eq!(
        plan.counts.clients_locked_out, 20,
        "every client is older than 26.3.100"
    );
    assert!(plan.clients_immediately_after_web);
    assert_eq!(
        plan.acks_required,
        ["breaking", "changelog", "server-manager-password"]
    );
    let locked = plan
        .findings
        .iter()
        .find(|f| f.rule == Rule::Compatibility)
        .unwrap();
    assert!(locked
        .reason
        .starts_with("20 client(s) older than 26.3.100.34058 will be unable to log in"));
}

#[test]
fn the_same_input_gives_the_same_plan_byte_for_byte() {
    let hosts = installation(500, Check::Yes);
    let mut shuffled = hosts.clone();
    shuffled.reverse();
    let a = serde_json::to_string(&plan_for(&hosts, V263, "2026-12-31")).unwrap();
    let b = serde_json::to_string(&plan_for(&shuffled, V263, "2026-12-31")).unwrap();
    assert_eq!(a, b);
}

#[test]
fn apache_without_proxy_wstunnel_blocks_the_web_phase() {
    let plan = plan_for(&installation(3, Check::No), V263, "2026-12-31");
    assert!(plan.blocked);
    let web_phase = plan
        .phases
        .iter()
        .find(|p| p.kind == PhaseKind::Web)
        .unwrap();
    assert!(web_phase.blocked);
    let finding = plan
        .findings
        .iter()
        .find(|f| f.rule == Rule::WebPrerequisites)
        .unwrap();
    assert_eq!(finding.severity, Severity::Blocker);
    assert_eq!(
        finding.subject,
        Subject::Host {
            host_id: "web-01".into(),
            role: tierwise_common::Role::Web
        }
    );
    assert!(finding.reason.contains("proxy_wstunnel"));
}

#[test]
fn a_target_released_after_maintenance_is_refused() {
    let plan = plan_for(&installation(3, Check::Yes), V263, "2026-02-28");
    assert!(plan.blocked);
    let finding = plan
        .findings
        .iter()
        .find(|f| f.rule == Rule::Maintenance)
        .unwrap();
    assert!(
        finding
            .reason
            .contains("after maintenance ended on 2026-02-28"),
        "{}",
        finding.reason
    );
    // Blockers come first.
    assert_eq!(plan.findings[0].severity, Severity::Blocker);
}

#[test]
fn a_client_newer_than_the_server_is_reported_and_never_downgraded() {
    let mut hosts = installation(2, Check::Yes);
    hosts.push(client(
        "cl-new",
        "prod",
        ProbedVersion::Installed(v(V263)),
        Check::No,
    ));
    let plan = plan_for(&hosts, "9.3.1.33994", "2026-12-31");
    let newer = plan
        .findings
        .iter()
        .find(|f| f.rule == Rule::ClientNotAboveServer)
        .unwrap();
    assert_eq!(newer.severity, Severity::Warning);
    assert!(newer.reason.contains("newer than the server"));
    let downgrade = plan
        .findings
        .iter()
        .find(|f| f.rule == Rule::Downgrade)
        .unwrap();
    assert!(downgrade.excludes_client());
    assert_eq!(plan.excluded, ["cl-new"]);
    assert!(!plan.blocked, "a client blocker excludes the client only");
    assert!(plan.steps().all(|(_, s)| s.to <= v(V931)));
}

#[test]
fn broken_clients_are_excluded_offline_hosts_keep_their_steps() {
    let mut hosts = installation(2, Check::Yes);
    hosts.push(client(
        "cl-broken",
        "prod",
        ProbedVersion::Unknown("pattern did not match".into()),
        Check::No,
    ));
    hosts.push(client(
        "cl-check",
        "prod",
        ProbedVersion::Installed(v(V931)),
        Check::Yes,
    ));
    hosts.push(offline(client(
        "cl-away",
        "prod",
        ProbedVersion::Installed(v(V931)),
        Check::No,
    )));
    let plan = plan_for(&hosts, V263, "2026-12-31");
    assert_eq!(plan.excluded, ["cl-broken"]);
    assert_eq!(plan.counts.clients_excluded, 1);
    assert_eq!(plan.counts.clients_update_check_enabled, 1);
    assert!(plan.findings.iter().any(|f| f.rule == Rule::UpdateCheck));
    assert!(plan.findings.iter().any(|f| f.rule == Rule::Offline));
    assert!(plan
        .steps()
        .any(|(_, s)| s.host_id == "cl-away" && s.offline));
}

#[test]
fn crossing_pkcs11_needs_its_note_acknowledged() {
    let plan = plan_for(&installation(1, Check::Yes), "26.6.100.34161", "2026-12-31");
    assert_eq!(
        plan.acks_required,
        ["breaking", "changelog", "pkcs11", "server-manager-password"]
    );
}

#[test]
fn a_server_already_at_the_target_needs_no_backup_or_password() {
    let hosts = vec![
        server("srv-01", "prod", v(V263), &[("PSDB", true, v(V263))]),
        client("cl-1", "prod", ProbedVersion::Installed(v(V931)), Check::No),
    ];
    let plan = plan_for(&hosts, V263, "2026-12-31");
    assert!(plan.phases[0].steps.is_empty() && plan.phases[1].steps.is_empty());
    assert!(
        plan.phases[2].steps.is_empty(),
        "databases already at the target"
    );
    assert!(plan.acks_required.is_empty());
    assert_eq!(plan.counts.clients_to_update, 1);
}

#[test]
fn topology_problems_block() {
    let two = vec![
        server("srv-01", "prod", v(V931), &[]),
        server("srv-02", "prod", v(V931), &[]),
    ];
    let plan = plan_for(&two, V263, "2026-12-31");
    assert!(plan.blocked);
    assert!(plan.findings[0]
        .reason
        .contains("2 hosts report a `server` component (srv-01, srv-02)"));
    let none = vec![client(
        "cl-1",
        "prod",
        ProbedVersion::Installed(v(V931)),
        Check::No,
    )];
    let plan = plan_for(&none, V263, "2026-12-31");
    assert!(plan.blocked);
    assert!(plan.findings.iter().any(|f| f.rule == Rule::Topology));
}

#[test]
fn unknown_target_and_empty_installation_are_errors() {
    let catalogue = password_secure_catalogue();
    let hosts = installation(1, Check::Yes);
    let waves = ClientWaves::default();
    let request = |target: Version, installation: &'static str| PlanRequest {
        installation,
        hosts: &hosts,
        catalogue: &catalogue,
        licence: None,
        target,
        waves: &waves,
        web_packages: None,
    };
    let err = plan(&request(v("26.3.100.99999"), "prod")).unwrap_err();
    assert!(matches!(err, PlanError::UnknownTarget { .. }));
    assert!(err
        .to_string()
        .starts_with("26.3.100.99999 is not in the catalogue; known releases: 26.6.100.34161"));
    assert_eq!(
        plan(&request(v(V263), "test")).unwrap_err(),
        PlanError::NoHosts("test".into())
    );
    let empty = tierwise_common::Catalogue::default();
    let err = plan(&PlanRequest {
        catalogue: &empty,
        ..request(v(V263), "prod")
    })
    .unwrap_err();
    assert_eq!(err, PlanError::EmptyCatalogue);
}

#[test]
fn default_waves_on_a_large_fleet() {
    let plan = plan_for(&installation(20_000, Check::Yes), V263, "2026-12-31");
    let sizes: Vec<usize> = plan.phases[5..].iter().map(|p| p.steps.len()).collect();
    assert_eq!(sizes, [100, 1_900, 8_000, 10_000]);
}

#[test]
fn the_json_form_reads_back_to_the_same_plan() {
    let mut hosts = installation(30, Check::No);
    hosts.push(client(
        "cl-broken",
        "prod",
        ProbedVersion::Unknown("x".into()),
        Check::Yes,
    ));
    let plan = plan_for(&hosts, "26.6.100.34161", "2026-12-31");
    let json = serde_json::to_string(&plan).unwrap();
    let back: Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, plan);
}
