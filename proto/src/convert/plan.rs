//! The plan on the wire: `Plan` ⇄ `v1::Plan`, without loss, so what the CLI
//! prints (`rollout plan`, `--json`) is the document the planner made.

use super::role_from_wire;
use crate::v1;
use std::str::FromStr;
use tierwise_common::plan::{
    Action, Counts, DatabaseChange, Phase, PhaseKind, Plan, PlannedTask, Step, TargetSummary,
};
use tierwise_common::rules::{Finding, Rule, Severity, Subject};
use tierwise_common::task::TaskKind;
use tierwise_common::{ClientWaves, ReleaseDate, Version};

/// Why a plan from the controller cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the plan: {0}")]
pub struct PlanWireError(String);

fn bad(what: impl Into<String>) -> PlanWireError {
    PlanWireError(what.into())
}

fn text(version: Option<Version>) -> String {
    version.map(|v| v.to_string()).unwrap_or_default()
}

fn version(text: &str, what: &str) -> Result<Version, PlanWireError> {
    Version::parse(text).map_err(|e| bad(format!("{what}: {e}")))
}

fn optional_version(text: &str, what: &str) -> Result<Option<Version>, PlanWireError> {
    if text.is_empty() {
        return Ok(None);
    }
    version(text, what).map(Some)
}

fn size(value: u64, what: &str) -> Result<usize, PlanWireError> {
    usize::try_from(value).map_err(|_| bad(format!("{what} {value} is too large")))
}

/// A phase's kind on the wire (the plan's phases and a rollout's).
pub fn phase_kind_to_wire(kind: PhaseKind) -> v1::PhaseKind {
    use v1::PhaseKindWire as K;
    let (kind, wave, percent) = match kind {
        PhaseKind::Backup => (K::Backup, 0, 0),
        PhaseKind::Server => (K::Server, 0, 0),
        PhaseKind::Databases => (K::Databases, 0, 0),
        PhaseKind::AppServers => (K::AppServers, 0, 0),
        PhaseKind::Web => (K::Web, 0, 0),
        PhaseKind::ClientWave { wave, percent } => (
            K::ClientWave,
            u64::try_from(wave).unwrap_or(u64::MAX),
            u32::from(percent),
        ),
    };
    v1::PhaseKind {
        kind: kind.into(),
        wave,
        percent,
    }
}

/// Reads a phase's kind; refuses an unknown one.
pub fn phase_kind_from_wire(wire: Option<&v1::PhaseKind>) -> Result<PhaseKind, PlanWireError> {
    use v1::PhaseKindWire as K;
    let wire = wire.ok_or_else(|| bad("a phase without its kind"))?;
    Ok(match K::try_from(wire.kind).unwrap_or(K::Unspecified) {
        K::Backup => PhaseKind::Backup,
        K::Server => PhaseKind::Server,
        K::Databases => PhaseKind::Databases,
        K::AppServers => PhaseKind::AppServers,
        K::Web => PhaseKind::Web,
        K::ClientWave => PhaseKind::ClientWave {
            wave: size(wire.wave, "wave")?,
            percent: u8::try_from(wire.percent)
                .map_err(|_| bad(format!("wave share {}", wire.percent)))?,
        },
        K::Unspecified => return Err(bad(format!("unknown phase kind {}", wire.kind))),
    })
}

fn action_to_wire(action: Action) -> v1::PlanAction {
    use v1::PlanAction as A;
    match action {
        Action::Backup => A::Backup,
        Action::StopServices => A::StopServices,
        Action::InstallServer => A::InstallServer,
        Action::StartServices => A::StartServices,
        Action::ReactivateDatabases => A::ReactivateDatabases,
        Action::InstallAppServer => A::InstallAppServer,
        Action::DeployWebApp => A::DeployWebApp,
        Action::InstallClient => A::InstallClient,
        Action::GenerateWebApp => A::GenerateWebApp,
    }
}

fn action_from_wire(value: i32) -> Result<Action, PlanWireError> {
    use v1::PlanAction as A;
    Ok(match A::try_from(value).unwrap_or(A::Unspecified) {
        A::Backup => Action::Backup,
        A::StopServices => Action::StopServices,
        A::InstallServer => Action::InstallServer,
        A::StartServices => Action::StartServices,
        A::ReactivateDatabases => Action::ReactivateDatabases,
        A::InstallAppServer => Action::InstallAppServer,
        A::DeployWebApp => Action::DeployWebApp,
        A::InstallClient => Action::InstallClient,
        A::GenerateWebApp => Action::GenerateWebApp,
        A::Unspecified => return Err(bad(format!("unknown step action {value}"))),
    })
}

fn severity_to_wire(severity: Severity) -> v1::Severity {
    match severity {
        Severity::Blocker => v1::Severity::Blocker,
        Severity::Warning => v1::Severity::Warning,
        Severity::AckRequired => v1::Severity::AckRequired,
    }
}

fn severity_from_wire(value: i32) -> Result<Severity, PlanWireError> {
    match v1::Severity::try_from(value).unwrap_or(v1::Severity::Unspecified) {
        v1::Severity::Blocker => Ok(Severity::Blocker),
        v1::Severity::Warning => Ok(Severity::Warning),
        v1::Severity::AckRequired => Ok(Severity::AckRequired),
        v1::Severity::Unspecified => Err(bad(format!("unknown severity {value}"))),
    }
}

fn subject_to_wire(subject: &Subject) -> v1::Subject {
    use v1::subject::Subject as S;
    let subject = match subject {
        Subject::Installation { name } => S::Installation(name.clone()),
        Subject::Release { version } => S::Release(version.to_string()),
        Subject::Host { host_id, role } => S::Host(v1::HostSubject {
            host_id: host_id.clone(),
            role: v1::Role::from(*role).into(),
        }),
        Subject::Database { host_id, name } => S::Database(v1::DatabaseSubject {
            host_id: host_id.clone(),
            name: name.clone(),
        }),
    };
    v1::Subject {
        subject: Some(subject),
    }
}

fn subject_from_wire(wire: Option<&v1::Subject>) -> Result<Subject, PlanWireError> {
    use v1::subject::Subject as S;
    Ok(
        match wire
            .and_then(|s| s.subject.as_ref())
            .ok_or_else(|| bad("a finding without its subject"))?
        {
            S::Installation(name) => Subject::Installation { name: name.clone() },
            S::Release(v) => Subject::Release {
                version: version(v, "finding subject")?,
            },
            S::Host(host) => Subject::Host {
                host_id: host.host_id.clone(),
                role: role_from_wire(host.role)
                    .ok_or_else(|| bad(format!("unknown role {}", host.role)))?,
            },
            S::Database(db) => Subject::Database {
                host_id: db.host_id.clone(),
                name: db.name.clone(),
            },
        },
    )
}

impl From<&Plan> for v1::Plan {
    fn from(plan: &Plan) -> Self {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let c = &plan.counts;
        v1::Plan {
            installation: plan.installation.clone(),
            target: Some(v1::PlanTarget {
                version: plan.target.version.to_string(),
                released: match plan.target.released {
                    ReleaseDate::Undated => String::new(),
                    other => other.to_string(),
                },
                breaking: plan.target.breaking,
                oldest_client: text(plan.target.oldest_client),
            }),
            server_version: text(plan.server_version),
            blocked: plan.blocked,
            clients_immediately_after_web: plan.clients_immediately_after_web,
            waves: Some(v1::Waves {
                percents: plan
                    .waves
                    .percents()
                    .iter()
                    .map(|p| u32::from(*p))
                    .collect(),
                first_wave_cap: plan.waves.first_wave_cap().map(count),
            }),
            phases: plan
                .phases
                .iter()
                .map(|phase| v1::PlanPhase {
                    kind: Some(phase_kind_to_wire(phase.kind)),
                    blocked: phase.blocked,
                    steps: phase
                        .steps
                        .iter()
                        .map(|step| v1::PlanStep {
                            host_id: step.host_id.clone(),
                            action: action_to_wire(step.action).into(),
                            databases: step
                                .databases
                                .iter()
                                .map(|d| v1::DatabaseChange {
                                    name: d.name.clone(),
                                    from: text(d.from),
                                })
                                .collect(),
                            from: text(step.from),
                            to: step.to.to_string(),
                            offline: step.offline,
                            task: step.task.map(|k| k.as_str().to_owned()).unwrap_or_default(),
                            web_servers: step
                                .web_servers
                                .iter()
                                .map(|k| k.as_str().to_owned())
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
            findings: plan
                .findings
                .iter()
                .map(|f| v1::Finding {
                    severity: severity_to_wire(f.severity).into(),
                    rule: f.rule.as_str().to_owned(),
                    subject: Some(subject_to_wire(&f.subject)),
                    reason: f.reason.clone(),
                    remedy: f.remedy.clone(),
                    ack: f.ack.clone(),
                })
                .collect(),
            acks_required: plan.acks_required.clone(),
            excluded: plan.excluded.clone(),
            counts: Some(v1::PlanCounts {
                hosts: count(c.hosts),
                hosts_offline: count(c.hosts_offline),
                databases: count(c.databases),
                app_servers: count(c.app_servers),
                web_hosts: count(c.web_hosts),
                clients: count(c.clients),
                clients_to_update: count(c.clients_to_update),
                clients_at_target: count(c.clients_at_target),
                clients_excluded: count(c.clients_excluded),
                clients_locked_out: count(c.clients_locked_out),
                clients_update_check_enabled: count(c.clients_update_check_enabled),
            }),
            tasks: plan
                .tasks
                .iter()
                .map(|t| v1::PlannedTask {
                    phase: count(t.phase),
                    host_id: t.host_id.clone(),
                    kind: t.kind.as_str().to_owned(),
                    instructions: t.instructions.clone(),
                    observable: t.observable,
                    verification: t.verification.clone(),
                })
                .collect(),
        }
    }
}

/// A task kind as the wire names it; empty: none.
fn task_kind(text: &str) -> Result<Option<TaskKind>, PlanWireError> {
    if text.is_empty() {
        return Ok(None);
    }
    TaskKind::parse(text)
        .map(Some)
        .ok_or_else(|| bad(format!("unknown operator task `{text}`")))
}

impl TryFrom<&v1::Plan> for Plan {
    type Error = PlanWireError;

    fn try_from(wire: &v1::Plan) -> Result<Self, Self::Error> {
        let target = wire.target.as_ref().ok_or_else(|| bad("no target"))?;
        let waves = wire.waves.as_ref().ok_or_else(|| bad("no waves"))?;
        let counts = wire.counts.as_ref().ok_or_else(|| bad("no counts"))?;
        let percents = waves
            .percents
            .iter()
            .map(|p| u8::try_from(*p).map_err(|_| bad(format!("wave share {p}"))))
            .collect::<Result<Vec<u8>, _>>()?;
        let cap = waves
            .first_wave_cap
            .map(|cap| size(cap, "first wave cap"))
            .transpose()?;
        let mut phases = Vec::with_capacity(wire.phases.len());
        for phase in &wire.phases {
            let mut steps = Vec::with_capacity(phase.steps.len());
            for step in &phase.steps {
                let mut databases = Vec::with_capacity(step.databases.len());
                for db in &step.databases {
                    databases.push(DatabaseChange {
                        name: db.name.clone(),
                        from: optional_version(&db.from, "database patch level")?,
                    });
                }
                steps.push(Step {
                    host_id: step.host_id.clone(),
                    action: action_from_wire(step.action)?,
                    databases,
                    from: optional_version(&step.from, "step")?,
                    to: version(&step.to, "step")?,
                    offline: step.offline,
                    task: task_kind(&step.task)?,
                    web_servers: step
                        .web_servers
                        .iter()
                        .map(|k| {
                            tierwise_common::WebServerKind::parse(k)
                                .ok_or_else(|| bad(format!("unknown web server kind `{k}`")))
                        })
                        .collect::<Result<_, _>>()?,
                });
            }
            phases.push(Phase {
                kind: phase_kind_from_wire(phase.kind.as_ref())?,
                blocked: phase.blocked,
                steps,
            });
        }
        let mut findings = Vec::with_capacity(wire.findings.len());
        for f in &wire.findings {
            findings.push(Finding {
                severity: severity_from_wire(f.severity)?,
                rule: Rule::from_str(&f.rule)
                    .map_err(|_| bad(format!("unknown rule `{}`", f.rule)))?,
                subject: subject_from_wire(f.subject.as_ref())?,
                reason: f.reason.clone(),
                remedy: f.remedy.clone(),
                ack: f.ack.clone(),
            });
        }
        Ok(Plan {
            installation: wire.installation.clone(),
            target: TargetSummary {
                version: version(&target.version, "target")?,
                released: if target.released.is_empty() {
                    ReleaseDate::Undated
                } else {
                    ReleaseDate::parse(&target.released).map_err(bad)?
                },
                breaking: target.breaking,
                oldest_client: optional_version(&target.oldest_client, "oldest client")?,
            },
            server_version: optional_version(&wire.server_version, "server version")?,
            blocked: wire.blocked,
            clients_immediately_after_web: wire.clients_immediately_after_web,
            waves: ClientWaves::from_parts(&percents, cap)
                .map_err(|e| bad(format!("waves: {e}")))?,
            phases,
            findings,
            acks_required: wire.acks_required.clone(),
            excluded: wire.excluded.clone(),
            tasks: wire
                .tasks
                .iter()
                .map(|t| {
                    Ok(PlannedTask {
                        phase: size(t.phase, "task phase")?,
                        host_id: t.host_id.clone(),
                        kind: task_kind(&t.kind)?.ok_or_else(|| bad("a task without a kind"))?,
                        instructions: t.instructions.clone(),
                        observable: t.observable,
                        verification: t.verification.clone(),
                    })
                })
                .collect::<Result<_, PlanWireError>>()?,
            counts: Counts {
                hosts: size(counts.hosts, "hosts")?,
                hosts_offline: size(counts.hosts_offline, "hosts offline")?,
                databases: size(counts.databases, "databases")?,
                app_servers: size(counts.app_servers, "app servers")?,
                web_hosts: size(counts.web_hosts, "web hosts")?,
                clients: size(counts.clients, "clients")?,
                clients_to_update: size(counts.clients_to_update, "clients to update")?,
                clients_at_target: size(counts.clients_at_target, "clients at target")?,
                clients_excluded: size(counts.clients_excluded, "clients excluded")?,
                clients_locked_out: size(counts.clients_locked_out, "clients locked out")?,
                clients_update_check_enabled: size(
                    counts.clients_update_check_enabled,
                    "clients with the update check",
                )?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tierwise_common::fixtures::{client, licence, password_secure_catalogue, server, web};
    use tierwise_common::plan::{plan, PlanRequest};
    use tierwise_common::{Check, ProbedVersion, WebServerKind};

    /// Every kind of field survives the trip: findings of each subject,
    /// unknown versions, undated and month-dated releases, capped waves.
    #[test]
    fn a_plan_travels_without_loss() {
        let v931 = Version::new(9, 3, 1, 33994);
        let hosts = vec![
            server(
                "srv",
                "prod",
                v931,
                &[("PSDB", true, v931), ("Archive", false, v931)],
            ),
            web("web", "prod", v931, WebServerKind::Iis, Check::Unknown),
            client("cl-1", "prod", ProbedVersion::Installed(v931), Check::Yes),
            client(
                "cl-2",
                "prod",
                ProbedVersion::Unknown("probe failed".into()),
                Check::No,
            ),
        ];
        let catalogue = password_secure_catalogue();
        for (target, until) in [
            (Version::new(26, 3, 100, 34058), "2026-12-31"),
            (Version::new(26, 6, 100, 34161), "2026-01-31"),
            (v931, "2026-12-31"),
        ] {
            let planned = plan(&PlanRequest {
                installation: "prod",
                hosts: &hosts,
                catalogue: &catalogue,
                licence: Some(&licence("prod", until)),
                target,
                waves: &ClientWaves::default(),
                web_packages: None,
            })
            .unwrap();
            let back = Plan::try_from(&v1::Plan::from(&planned)).unwrap();
            assert_eq!(back, planned);
            assert_eq!(
                serde_json::to_string(&back).unwrap(),
                serde_json::to_string(&planned).unwrap()
            );
        }
    }

    #[test]
    fn a_malformed_plan_is_refused_with_what_is_wrong() {
        let mut wire = v1::Plan::default();
        assert_eq!(
            Plan::try_from(&wire).unwrap_err().to_string(),
            "the plan: no target"
        );
        wire.target = Some(v1::PlanTarget {
            version: "9.x".into(),
            ..Default::default()
        });
        wire.waves = Some(v1::Waves::default());
        wire.counts = Some(v1::PlanCounts::default());
        assert!(Plan::try_from(&wire)
            .unwrap_err()
            .to_string()
            .starts_with("the plan: target:"));
    }
}
