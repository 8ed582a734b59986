//! The planner: what a rollout of one installation to one release would do,
//! phase by phase, and what stops it. A pure function of its inputs: the same
//! snapshot, catalogue, licence, target and options give the same plan, byte
//! for byte (every collection is ordered).

use crate::rules::{self, Finding, Rule, Severity, Subject};
use crate::task::{self, TaskContext, TaskKind, Verification};
use crate::{
    Catalogue, ClientWaves, Facts, HostRecord, Licence, ProbedVersion, Release, ReleaseDate, Role,
    ServerFacts, Version,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What the planner needs.
#[derive(Clone, Copy, Debug)]
pub struct PlanRequest<'a> {
    pub installation: &'a str,
    /// The installation's hosts (others are ignored).
    pub hosts: &'a [HostRecord],
    pub catalogue: &'a Catalogue,
    pub licence: Option<&'a Licence>,
    pub target: Version,
    pub waves: &'a ClientWaves,
    /// The Web Application packages the controller holds for the target;
    /// `None`: not known, every web host counts as having its package.
    pub web_packages: Option<&'a WebPackages>,
}

/// The Web Application packages the controller holds for one release: one
/// for every kind of web server (`generic`, registered without a kind), or
/// one per kind (made by the Server Manager for IIS, Apache or nginx).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebPackages {
    pub generic: bool,
    pub kinds: BTreeSet<crate::WebServerKind>,
}

impl WebPackages {
    /// Whether a web host of `kind` has a package to deploy.
    pub fn covers(&self, kind: crate::WebServerKind) -> bool {
        self.generic || self.kinds.contains(&kind)
    }
}

/// Requests the planner cannot answer with a plan at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the catalogue is empty; import one with `tierwise releases import FILE`")]
    EmptyCatalogue,
    #[error("{target} is not in the catalogue; known releases: {known}")]
    UnknownTarget { target: Version, known: String },
    #[error("installation `{0}` has no hosts; agents appear once they connect")]
    NoHosts(String),
}

/// One action on one host: each is one step of the rollout, so the plan
/// and the rollout's status count the same steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Backup,
    /// Before an install on the primary server or an application server.
    StopServices,
    InstallServer,
    /// After an install on the primary server or an application server.
    StartServices,
    /// One reactivation on the primary server for all its databases.
    ReactivateDatabases,
    InstallAppServer,
    /// Generate the Web Application on the primary server, for the kinds
    /// of web server whose package nobody holds yet.
    GenerateWebApp,
    DeployWebApp,
    InstallClient,
}

/// A database a reactivation raises, with its patch level now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseChange {
    pub name: String,
    pub from: Option<Version>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub host_id: String,
    pub action: Action,
    /// For `reactivate_databases`: the databases it raises to `to`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<DatabaseChange>,
    /// The version now (the patch level, for a database); `None` if unknown.
    pub from: Option<Version>,
    pub to: Version,
    /// The host is not connected now; its step waits until it returns.
    pub offline: bool,
    /// The host has no command for it: a person does it (`plan.tasks`
    /// says how).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskKind>,
    /// For `generate_web_app`: the kinds of web server it is made for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub web_servers: Vec<crate::WebServerKind>,
}

/// A step a person does, with what they are told and what the rollout
/// checks afterwards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedTask {
    /// The plan's phase (an index into `phases`).
    pub phase: usize,
    pub host_id: String,
    pub kind: TaskKind,
    pub instructions: String,
    /// Whether the agents' reports can show it was done.
    pub observable: bool,
    /// What is checked after `done`, or that nothing can be.
    pub verification: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PhaseKind {
    Backup,
    Server,
    Databases,
    AppServers,
    Web,
    ClientWave { wave: usize, percent: u8 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    #[serde(flatten)]
    pub kind: PhaseKind,
    /// A blocker concerns this phase.
    pub blocked: bool,
    pub steps: Vec<Step>,
}

impl Phase {
    fn new(kind: PhaseKind) -> Self {
        Self {
            kind,
            blocked: false,
            steps: Vec::new(),
        }
    }
}

/// The numbers an operator weighs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub hosts: usize,
    pub hosts_offline: usize,
    pub databases: usize,
    pub app_servers: usize,
    pub web_hosts: usize,
    pub clients: usize,
    pub clients_to_update: usize,
    pub clients_at_target: usize,
    pub clients_excluded: usize,
    /// Clients that cannot log in from the server update until their own.
    pub clients_locked_out: usize,
    pub clients_update_check_enabled: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSummary {
    pub version: Version,
    pub released: ReleaseDate,
    pub breaking: bool,
    /// The oldest client a server of the target accepts (the strictest
    /// `oldest_client` of the target and the releases before it).
    pub oldest_client: Option<Version>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub installation: String,
    pub target: TargetSummary,
    /// The primary server's version now.
    pub server_version: Option<Version>,
    /// A blocker stops the rollout (blockers on clients only exclude them).
    pub blocked: bool,
    /// A breaking release is crossed: the client waves follow the web phase
    /// at once, without waiting for a maintenance window.
    pub clients_immediately_after_web: bool,
    pub waves: ClientWaves,
    pub phases: Vec<Phase>,
    /// Blockers first, then warnings, then acknowledgements.
    pub findings: Vec<Finding>,
    /// Acknowledgement ids the rollout will ask for, sorted.
    pub acks_required: Vec<String>,
    /// Clients left out, by host id, each with a blocker finding.
    pub excluded: Vec<String>,
    pub counts: Counts,
    /// The steps a person does, in the order the rollout reaches them.
    #[serde(default)]
    pub tasks: Vec<PlannedTask>,
}

impl Plan {
    /// Adds a finding made outside the planner (e.g. about signatures),
    /// keeping the order and what blocks as `plan` makes them.
    pub fn add_finding(&mut self, finding: Finding) {
        self.findings.push(finding);
        self.findings.sort();
        self.findings.dedup();
        self.blocked = blocks(&self.findings);
    }

    pub fn steps(&self) -> impl Iterator<Item = (&Phase, &Step)> {
        self.phases
            .iter()
            .flat_map(|p| p.steps.iter().map(move |s| (p, s)))
    }
}

/// A blocker stops the rollout unless it only keeps a client out.
fn blocks(findings: &[Finding]) -> bool {
    findings
        .iter()
        .any(|f| f.severity == Severity::Blocker && !f.excludes_client())
}

/// A deterministic spread of clients over waves: a stable hash of the host
/// id, so a wave is not one department whose machines share a name prefix.
fn spread_key(host_id: &str) -> u64 {
    // FNV-1a, 64 bit, then MurmurHash3's finaliser so that names differing
    // only in their last characters land far apart.
    let mut hash = host_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

fn role_version(host: &HostRecord, role: Role) -> Option<&ProbedVersion> {
    host.inventory.component(role).map(|c| &c.version)
}

fn host_subject(host: &HostRecord, role: Role) -> Subject {
    Subject::Host {
        host_id: host.host_id.clone(),
        role,
    }
}

/// Checks one non-server host component against the target: the version
/// it moves from (`None`: it is at the target), or the findings that stop
/// it.
fn component_move(
    host: &HostRecord,
    role: Role,
    target: &Release,
    catalogue: &Catalogue,
    findings: &mut Vec<Finding>,
) -> Result<Option<Version>, ()> {
    match role_version(host, role) {
        Some(ProbedVersion::Installed(installed)) => {
            if let Some(finding) =
                rules::upgrade_path(&host.host_id, role, *installed, target, catalogue)
            {
                findings.push(finding);
                return Err(());
            }
            Ok((*installed != target.version).then_some(*installed))
        }
        Some(ProbedVersion::Unknown(why)) => {
            findings.push(rules::unknown_version(&host.host_id, role, Some(why)));
            Err(())
        }
        Some(ProbedVersion::NotInstalled) | None => {
            findings.push(rules::unknown_version(&host.host_id, role, None));
            Err(())
        }
    }
}

/// The step moving `host` from `from` to the target.
fn move_step(host: &HostRecord, action: Action, from: Version, target: Version) -> Step {
    Step {
        host_id: host.host_id.clone(),
        action,
        databases: Vec::new(),
        from: Some(from),
        to: target,
        offline: !host.online,
        task: None,
        web_servers: Vec::new(),
    }
}

/// Checks one non-server host component against the target; the step to
/// take, or the findings that stop it.
fn component_step(
    host: &HostRecord,
    role: Role,
    action: Action,
    target: &Release,
    catalogue: &Catalogue,
    findings: &mut Vec<Finding>,
) -> Result<Option<Step>, ()> {
    let from = component_move(host, role, target, catalogue, findings)?;
    Ok(from.map(|from| move_step(host, action, from, target.version)))
}

/// An install on a server runs between stopping and starting its services.
fn with_services(install: Step) -> [Step; 3] {
    [
        Step {
            action: Action::StopServices,
            ..install.clone()
        },
        install.clone(),
        Step {
            action: Action::StartServices,
            ..install
        },
    ]
}

/// The kinds of web server whose Web Application of `target` nobody has
/// yet: neither the controller (for the kind, or for every kind) nor the
/// web host at its own `web_app` path. The vendor's package exists only
/// once the Server Manager of the target generated it, per kind of web
/// server; `None` when every web step has its package.
fn web_app_needed(
    hosts: &[&HostRecord],
    web_phase: &Phase,
    packages: &WebPackages,
    target: Version,
) -> Option<Vec<crate::WebServerKind>> {
    let mut missing = BTreeSet::new();
    for step in &web_phase.steps {
        // The hosts are ordered by host id, each once.
        let facts = hosts
            .binary_search_by(|h| h.host_id.as_str().cmp(&step.host_id))
            .ok()
            .and_then(|i| hosts[i].inventory.component(Role::Web))
            .map(|c| &c.facts);
        if let Some(Facts::Web(web)) = facts {
            let local = web.packages.as_ref().is_some_and(|p| p.contains(&target));
            if !local && !packages.covers(web.server_kind) {
                missing.insert(web.server_kind);
            }
        }
    }
    (!missing.is_empty()).then(|| missing.into_iter().collect())
}

/// The task a step is when the server's agent has no command for it.
fn task_unless(facts: &ServerFacts, kind: TaskKind) -> Option<TaskKind> {
    (!facts.has_command(kind.config_key())).then_some(kind)
}

/// The server's unit: stop its services, install, start them. The install
/// is a task when the agent has no command for it; the vendor's wizard
/// then offers to end the services itself, so a missing stop or start
/// command is left to it. An install by command needs both; without them
/// the plan is blocked (false), naming what to configure.
fn server_unit(
    install: Step,
    facts: &ServerFacts,
    server: &HostRecord,
    findings: &mut Vec<Finding>,
) -> (Vec<Step>, bool) {
    let install_task = task_unless(facts, TaskKind::InstallServer);
    let mut unit = Vec::new();
    let mut missing = Vec::new();
    for (action, key) in [
        (Action::StopServices, "stop_services"),
        (Action::InstallServer, "install"),
        (Action::StartServices, "start_services"),
    ] {
        if action == Action::InstallServer {
            unit.push(Step {
                task: install_task,
                ..install.clone()
            });
        } else if facts.has_command(key) {
            unit.push(Step {
                action,
                ..install.clone()
            });
        } else if install_task.is_none() {
            missing.push(key);
        }
    }
    if !facts.missing_services.is_empty() {
        findings.push(Finding::new(
            Severity::Blocker,
            Rule::Readiness,
            host_subject(server, Role::Server),
            format!(
                "the server's agent stops and starts Windows services this host does not have: {}",
                facts.missing_services.join(", ")
            ),
            "name the services as `sc query` shows them (SERVICE_NAME) in `windows_services` of stop_services and start_services".to_owned(),
        ));
    }
    if !missing.is_empty() {
        findings.push(Finding::new(
            Severity::Blocker,
            Rule::Readiness,
            host_subject(server, Role::Server),
            format!(
                "the server's agent installs by command but has no command for {}: the installer would run with the services up",
                missing.join(" and ")
            ),
            format!(
                "add [component.actions] {} to the server agent's configuration (a command, or `windows_services`)",
                missing
                    .iter()
                    .map(|k| format!("{k} = {{ ... }}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    (
        unit,
        missing.is_empty() && facts.missing_services.is_empty(),
    )
}

/// The tasks of a plan's phases, in step order, with their instructions
/// (ids to be filled in by the rollout) and how each is checked.
fn planned_tasks(
    phases: &[Phase],
    server_reports_databases: bool,
    web_app_output: Option<&str>,
) -> Vec<PlannedTask> {
    let mut tasks = Vec::new();
    for (index, phase) in phases.iter().enumerate() {
        for step in &phase.steps {
            let Some(kind) = step.task else { continue };
            let Verification { observable, text } =
                task::verification(kind, &step.host_id, step.to, server_reports_databases);
            tasks.push(PlannedTask {
                phase: index,
                host_id: step.host_id.clone(),
                kind,
                instructions: task::instructions(&TaskContext {
                    kind,
                    host_id: &step.host_id,
                    from: step.from,
                    to: step.to,
                    databases: &step.databases,
                    ids: None,
                    web_servers: &step.web_servers,
                    web_app_output,
                }),
                observable,
                verification: text,
            });
        }
    }
    tasks
}

/// Plans moving `request.installation` to `request.target`: the primary
/// server, its backup and its databases; the further application servers
/// and the web hosts; the clients in waves; then what the whole asks of
/// the operator.
pub fn plan(request: &PlanRequest<'_>) -> Result<Plan, PlanError> {
    let catalogue = request.catalogue;
    let target = target_release(catalogue, request.target)?;
    let installation = request.installation;
    let hosts = installation_hosts(request.hosts, installation)?;
    let mut planning = Planning {
        target,
        catalogue,
        installation_subject: Subject::Installation {
            name: installation.to_owned(),
        },
        findings: Vec::new(),
        counts: Counts {
            hosts: hosts.len(),
            hosts_offline: hosts.iter().filter(|h| !h.online).count(),
            ..Counts::default()
        },
    };
    planning
        .findings
        .extend(rules::maintenance(installation, target, request.licence));
    let oldest_client = oldest_client(catalogue, target);

    let primary = planning.primary(&hosts);
    let server_updated = !primary.server.steps.is_empty();
    let (app_phase, web_phase) =
        planning.app_servers_and_web(&hosts, primary.server_facts(), request.web_packages);
    let clients = planning.clients(&hosts, primary.version, oldest_client, server_updated);
    if server_updated {
        planning.findings.extend(rules::compatibility(
            installation,
            target.version,
            oldest_client,
            planning.counts.clients_locked_out,
            clients.older_than_target,
        ));
    }
    let mut phases = vec![
        primary.backup,
        primary.server,
        primary.databases,
        app_phase,
        web_phase,
    ];
    planning.offline_with_steps(&phases, &clients.to_update);

    // Acknowledgements: breaking releases crossed by the server, notes, password.
    let from = primary.version.unwrap_or(target.version);
    planning.findings.extend(rules::acknowledgements(
        from,
        target.version,
        catalogue,
        server_updated,
    ));
    let crosses_breaking = catalogue
        .between(from, target.version)
        .any(|r| r.breaking.is_some());

    phases.extend(client_waves(
        clients.to_update,
        request.waves,
        target.version,
    ));
    let web_app_output = primary
        .facts
        .and_then(|facts| facts.web_app_output.as_deref());
    let tasks = planned_tasks(&phases, planning.counts.databases > 0, web_app_output);
    planning.tasks_finding(&tasks);
    let Planning {
        mut findings,
        counts,
        ..
    } = planning;
    findings.sort();
    findings.dedup();
    let blocked = blocks(&findings);
    let acks_required: Vec<String> = findings
        .iter()
        .filter_map(|f| f.ack.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    Ok(Plan {
        installation: installation.to_owned(),
        target: TargetSummary {
            version: target.version,
            released: target.released,
            breaking: target.breaking.is_some(),
            oldest_client,
        },
        server_version: primary.version,
        blocked,
        clients_immediately_after_web: crosses_breaking,
        waves: request.waves.clone(),
        phases,
        findings,
        acks_required,
        excluded: clients.excluded,
        counts,
        tasks,
    })
}

/// The target's release, or why the catalogue cannot say.
fn target_release(catalogue: &Catalogue, target: Version) -> Result<&Release, PlanError> {
    if catalogue.is_empty() {
        return Err(PlanError::EmptyCatalogue);
    }
    catalogue.get(target).ok_or_else(|| {
        let known: Vec<String> = catalogue
            .releases()
            .iter()
            .rev()
            .take(6)
            .map(|r| r.version.to_string())
            .collect();
        PlanError::UnknownTarget {
            target,
            known: known.join(", "),
        }
    })
}

/// The installation's hosts, ordered by host id, each id once (the first
/// record given for it).
fn installation_hosts<'a>(
    hosts: &'a [HostRecord],
    installation: &str,
) -> Result<Vec<&'a HostRecord>, PlanError> {
    let mut hosts: Vec<&HostRecord> = hosts
        .iter()
        .filter(|h| h.installation == installation)
        .collect();
    if hosts.is_empty() {
        return Err(PlanError::NoHosts(installation.to_owned()));
    }
    hosts.sort_by(|a, b| a.host_id.cmp(&b.host_id));
    hosts.dedup_by(|a, b| a.host_id == b.host_id);
    Ok(hosts)
}

/// A server never takes back clients an older server already refused, so
/// the strictest `oldest_client` up to the target applies.
fn oldest_client(catalogue: &Catalogue, target: &Release) -> Option<Version> {
    catalogue
        .releases()
        .iter()
        .filter(|r| r.version <= target.version)
        .filter_map(|r| r.oldest_client)
        .max()
}

/// What every phase of one plan reads, and the findings and counts they
/// add to.
struct Planning<'a> {
    target: &'a Release,
    catalogue: &'a Catalogue,
    installation_subject: Subject,
    findings: Vec<Finding>,
    counts: Counts,
}

/// The primary server's phases: its backup, its install, its databases.
struct PrimaryPhases<'a> {
    backup: Phase,
    server: Phase,
    databases: Phase,
    /// The primary server's version now.
    version: Option<Version>,
    /// The primary server and its facts, when there is exactly one.
    facts: Option<&'a ServerFacts>,
    host: Option<&'a HostRecord>,
}

impl<'a> PrimaryPhases<'a> {
    fn server_facts(&self) -> Option<(&'a HostRecord, &'a ServerFacts)> {
        self.host.zip(self.facts)
    }
}

/// What a server reports when it reports no facts.
static NO_SERVER_FACTS: ServerFacts = ServerFacts {
    databases: Vec::new(),
    databases_error: None,
    backup_location: None,
    commands: None,
    web_app_output: None,
    missing_services: Vec::new(),
};

/// The clients' part of a plan before it is cut into waves.
struct ClientMoves {
    /// Each client to update, in host id order.
    to_update: Vec<ClientMove>,
    /// Clients left out, by host id, in order.
    excluded: Vec<String>,
    older_than_target: usize,
}

/// What a client's step needs, taken in one pass over the hosts in their
/// order: the steps are made in wave order, which is random over the
/// hosts, and would otherwise read every host record once more, each far
/// from the last.
struct ClientMove {
    /// The wave key.
    key: u64,
    host_id: String,
    from: Version,
    offline: bool,
}

impl<'a> Planning<'a> {
    /// The primary server, its backup and its databases.
    fn primary(&mut self, hosts: &[&'a HostRecord]) -> PrimaryPhases<'a> {
        let mut phases = PrimaryPhases {
            backup: Phase::new(PhaseKind::Backup),
            server: Phase::new(PhaseKind::Server),
            databases: Phase::new(PhaseKind::Databases),
            version: None,
            facts: None,
            host: None,
        };
        let mut servers = hosts
            .iter()
            .copied()
            .filter(|h| h.inventory.component(Role::Server).is_some());
        let (Some(server), None) = (servers.next(), servers.next()) else {
            let servers: Vec<&HostRecord> = hosts
                .iter()
                .copied()
                .filter(|h| h.inventory.component(Role::Server).is_some())
                .collect();
            self.topology_finding(&servers);
            phases.server.blocked = true;
            return phases;
        };
        phases.version = role_version(server, Role::Server).and_then(ProbedVersion::installed);
        let facts = match server.inventory.component(Role::Server).map(|c| &c.facts) {
            Some(Facts::Server(facts)) => facts,
            _ => &NO_SERVER_FACTS,
        };
        self.server_unit(server, facts, &mut phases);
        let server_updated = !phases.server.steps.is_empty();
        phases.host = Some(server);
        phases.facts = Some(facts);
        self.counts.databases = facts.databases.len();
        if server_updated
            && facts.backup_location.is_none()
            && facts.has_command(TaskKind::Backup.config_key())
        {
            self.findings.push(Finding::new(
                Severity::Warning,
                Rule::Backup,
                host_subject(server, Role::Server),
                "the backup before the server update is unverified: the server's backup action names no location, so only its exit code says a backup was made".to_owned(),
                "set `backup_directory` (and `backup_pattern`) on the backup action in the server agent's configuration".to_owned(),
            ));
        }
        self.databases(server, facts, server_updated, &mut phases.databases);
        phases
    }

    /// No primary server, or more than one: the plan is blocked.
    fn topology_finding(&mut self, servers: &[&HostRecord]) {
        let finding = if servers.is_empty() {
            Finding::new(
                Severity::Blocker,
                Rule::Topology,
                self.installation_subject.clone(),
                "no host of this installation reports a `server` component".to_owned(),
                "install the agent on the primary application server with a `server` component"
                    .to_owned(),
            )
        } else {
            let ids: Vec<&str> = servers.iter().map(|h| h.host_id.as_str()).collect();
            Finding::new(
                Severity::Blocker,
                Rule::Topology,
                self.installation_subject.clone(),
                format!("{} hosts report a `server` component ({}); an installation has one primary server", ids.len(), ids.join(", ")),
                "give the further application servers the role `app_server`".to_owned(),
            )
        };
        self.findings.push(finding);
    }

    /// The primary server's backup and its install between stopping and
    /// starting its services.
    fn server_unit(
        &mut self,
        server: &HostRecord,
        facts: &ServerFacts,
        phases: &mut PrimaryPhases<'_>,
    ) {
        let step = match component_step(
            server,
            Role::Server,
            Action::InstallServer,
            self.target,
            self.catalogue,
            &mut self.findings,
        ) {
            Ok(step) => step,
            // Every refusal comes with its finding.
            Err(()) => {
                phases.server.blocked = true;
                return;
            }
        };
        if let Some(step) = step {
            phases.backup.steps.push(Step {
                action: Action::Backup,
                to: step.from.unwrap_or(self.target.version),
                task: task_unless(facts, TaskKind::Backup),
                ..step.clone()
            });
            let (unit, ready) = server_unit(step, facts, server, &mut self.findings);
            phases.server.blocked |= !ready;
            phases.server.steps.extend(unit);
        }
    }

    /// The primary server's databases: one reactivation raises them all.
    fn databases(
        &mut self,
        server: &HostRecord,
        facts: &ServerFacts,
        server_updated: bool,
        database_phase: &mut Phase,
    ) {
        let target = self.target;
        if let Some(error) = &facts.databases_error {
            self.findings.push(Finding::new(
                Severity::Blocker,
                Rule::Databases,
                host_subject(server, Role::Server),
                format!("the server's database probe failed: {error}"),
                "fix the agent's `databases` probe so patch levels can be verified".to_owned(),
            ));
            database_phase.blocked = true;
        } else if facts.databases.is_empty() {
            self.findings.push(Finding::new(
                Severity::Warning,
                Rule::Databases,
                host_subject(server, Role::Server),
                if server_updated {
                    "the primary server reports no databases, so nothing can verify their reactivation after the server update: the rollout goes on once the reactivation has run (or an operator said it is done)".to_owned()
                } else {
                    "the server reports no databases, so their patch level cannot be checked"
                        .to_owned()
                },
                "configure the agent's `databases` probe on the primary server".to_owned(),
            ));
        }
        let mut raised = Vec::new();
        for db in &facts.databases {
            let subject = Subject::Database {
                host_id: server.host_id.clone(),
                name: db.name.clone(),
            };
            if db.patch_level.is_some_and(|level| level > target.version) {
                self.findings.push(Finding::new(
                    Severity::Blocker,
                    Rule::Downgrade,
                    subject,
                    format!(
                        "the database's patch level {} is newer than the target {}",
                        db.patch_level.map(|l| l.to_string()).unwrap_or_default(),
                        target.version
                    ),
                    "choose a target at least as new as the databases".to_owned(),
                ));
                database_phase.blocked = true;
                continue;
            }
            if !db.active && !server_updated {
                self.findings.push(Finding::new(
                    Severity::Warning,
                    Rule::Databases,
                    subject.clone(),
                    "the database is not active".to_owned(),
                    "the rollout reactivates it, which raises its patch level".to_owned(),
                ));
            }
            let needs = server_updated || !db.active || db.patch_level != Some(target.version);
            if needs {
                raised.push(DatabaseChange {
                    name: db.name.clone(),
                    from: db.patch_level,
                });
            }
        }
        // One reactivation raises them all (the Server Manager's button
        // works on the databases, not on one of them). After a server
        // update it always follows, databases reported or not: they are
        // deactivated until someone reactivates them.
        if (server_updated && facts.databases_error.is_none()) || !raised.is_empty() {
            database_phase.steps.push(Step {
                host_id: server.host_id.clone(),
                action: Action::ReactivateDatabases,
                from: raised.iter().filter_map(|d| d.from).min(),
                databases: raised,
                to: target.version,
                offline: !server.online,
                task: task_unless(facts, TaskKind::ReactivateDatabases),
                web_servers: Vec::new(),
            });
        }
    }

    /// Further application servers and web hosts: every one must move.
    /// The web phase opens with generating the Web Application on the
    /// primary server when a kind of web server has no package.
    fn app_servers_and_web(
        &mut self,
        hosts: &[&HostRecord],
        primary: Option<(&HostRecord, &ServerFacts)>,
        web_packages: Option<&WebPackages>,
    ) -> (Phase, Phase) {
        let target = self.target;
        let mut app_phase = Phase::new(PhaseKind::AppServers);
        let mut web_phase = Phase::new(PhaseKind::Web);
        for host in hosts {
            if host.inventory.component(Role::AppServer).is_some() {
                self.counts.app_servers += 1;
                match component_step(
                    host,
                    Role::AppServer,
                    Action::InstallAppServer,
                    target,
                    self.catalogue,
                    &mut self.findings,
                ) {
                    Ok(step) => app_phase
                        .steps
                        .extend(step.into_iter().flat_map(with_services)),
                    Err(()) => app_phase.blocked = true,
                }
            }
            if let Some(component) = host.inventory.component(Role::Web) {
                self.counts.web_hosts += 1;
                if let Facts::Web(web) = &component.facts {
                    if let Some(finding) = rules::web_prerequisites(
                        &host.host_id,
                        web.server_kind.as_str(),
                        web.websocket,
                        target,
                    ) {
                        self.findings.push(finding);
                        web_phase.blocked = true;
                    }
                }
                match component_step(
                    host,
                    Role::Web,
                    Action::DeployWebApp,
                    target,
                    self.catalogue,
                    &mut self.findings,
                ) {
                    Ok(step) => web_phase.steps.extend(step),
                    Err(()) => web_phase.blocked = true,
                }
            }
        }
        if let (Some((server, facts)), Some(packages)) = (primary, web_packages) {
            if let Some(generate) = web_app_needed(hosts, &web_phase, packages, target.version) {
                web_phase.steps.insert(
                    0,
                    Step {
                        host_id: server.host_id.clone(),
                        action: Action::GenerateWebApp,
                        databases: Vec::new(),
                        from: None,
                        to: target.version,
                        offline: !server.online,
                        task: task_unless(facts, TaskKind::GenerateWebApp),
                        web_servers: generate,
                    },
                );
            }
        }
        (app_phase, web_phase)
    }

    /// Clients: never past the server's target; blockers exclude the
    /// client.
    fn clients(
        &mut self,
        hosts: &[&HostRecord],
        server_version: Option<Version>,
        oldest_client: Option<Version>,
        server_updated: bool,
    ) -> ClientMoves {
        let target = self.target;
        let mut moves = ClientMoves {
            to_update: Vec::with_capacity(hosts.len()),
            excluded: Vec::new(),
            older_than_target: 0,
        };
        for host in hosts {
            let Some(component) = host.inventory.component(Role::Client) else {
                continue;
            };
            self.counts.clients += 1;
            if let Facts::Client(facts) = &component.facts {
                if let Some(finding) =
                    rules::update_check(&host.host_id, facts.update_check_enabled)
                {
                    self.counts.clients_update_check_enabled += 1;
                    self.findings.push(finding);
                }
            }
            if let ProbedVersion::Installed(client) = &component.version {
                if let Some(server) = server_version {
                    self.findings.extend(rules::client_not_above_server(
                        &host.host_id,
                        *client,
                        server,
                    ));
                }
                if *client < target.version {
                    moves.older_than_target += 1;
                }
                if oldest_client.is_some_and(|oldest| *client < oldest) && server_updated {
                    self.counts.clients_locked_out += 1;
                }
            }
            match component_move(
                host,
                Role::Client,
                target,
                self.catalogue,
                &mut self.findings,
            ) {
                Ok(Some(from)) => moves.to_update.push(ClientMove {
                    key: spread_key(&host.host_id),
                    host_id: host.host_id.clone(),
                    from,
                    offline: !host.online,
                }),
                Ok(None) => self.counts.clients_at_target += 1,
                // The hosts come in host id order, each once: so do these.
                Err(()) => moves.excluded.push(host.host_id.clone()),
            }
        }
        self.counts.clients_to_update = moves.to_update.len();
        self.counts.clients_excluded = moves.excluded.len();
        moves
    }

    /// A warning counting the hosts with a step that are offline now.
    fn offline_with_steps(&mut self, phases: &[Phase], clients: &[ClientMove]) {
        let servers: BTreeSet<&str> = phases
            .iter()
            .flat_map(|p| p.steps.iter())
            .filter(|s| s.offline)
            .map(|s| s.host_id.as_str())
            .collect();
        // A client is one host once; it may also hold a web host's step.
        let clients = clients
            .iter()
            .filter(|c| c.offline && !servers.contains(c.host_id.as_str()))
            .count();
        let offline = servers.len() + clients;
        if offline > 0 {
            self.findings.push(Finding::new(
                Severity::Warning,
                Rule::Offline,
                self.installation_subject.clone(),
                format!("{offline} host(s) with a step are offline now"),
                "their steps wait until they reconnect; `tierwise hosts list` shows them"
                    .to_owned(),
            ));
        }
    }

    /// A warning listing the steps that are operator tasks.
    fn tasks_finding(&mut self, tasks: &[PlannedTask]) {
        if tasks.is_empty() {
            return;
        }
        self.findings.push(Finding::new(
            Severity::Warning,
            Rule::Readiness,
            self.installation_subject.clone(),
            format!(
                "{} step(s) have no command on their host and are operator tasks ({}): the rollout waits at each for `tierwise rollout done`, then checks what the agents report",
                tasks.len(),
                tasks.iter().map(|t| t.kind.as_str()).collect::<Vec<_>>().join(", ")
            ),
            "be ready to do them when the rollout reaches them (`rollout status` shows the instructions), or give the host a command for each".to_owned(),
        ));
    }
}

/// The client waves: the clients spread by their wave key, cut into the
/// waves' sizes.
fn client_waves(mut clients: Vec<ClientMove>, waves: &ClientWaves, target: Version) -> Vec<Phase> {
    let order = spread_order(&clients);
    let mut remaining = order.as_slice();
    waves
        .split(clients.len())
        .into_iter()
        .enumerate()
        .map(|(index, (percent, size))| {
            let (wave, rest) = remaining.split_at(size.min(remaining.len()));
            remaining = rest;
            let steps = wave
                .iter()
                .map(|&client| {
                    let client = &mut clients[client];
                    Step {
                        host_id: std::mem::take(&mut client.host_id),
                        action: Action::InstallClient,
                        databases: Vec::new(),
                        from: Some(client.from),
                        to: target,
                        offline: client.offline,
                        task: None,
                        web_servers: Vec::new(),
                    }
                })
                .collect();
            Phase {
                kind: PhaseKind::ClientWave {
                    wave: index + 1,
                    percent,
                },
                blocked: false,
                steps,
            }
        })
        .collect()
}

/// The clients' indexes ordered by wave key, then by host id. The clients
/// come in host id order, each once, so their index breaks a tie as the
/// host id would and the order is total: it does not depend on the input
/// order.
///
/// The keys are hashes, spread evenly: counted into about as many buckets
/// by their top bits, the clients fall a few to a bucket, and the whole
/// sorts in linear time (a comparison sort of 100,000 clients was a
/// quarter of planning).
fn spread_order(clients: &[ClientMove]) -> Vec<usize> {
    let bits = (usize::BITS - clients.len().leading_zeros()).clamp(1, 24);
    let bucket = |key: u64| (key >> (u64::BITS - bits)) as usize;
    // starts[b]..starts[b + 1]: where bucket b goes.
    let mut starts = vec![0usize; (1 << bits) + 1];
    for client in clients {
        starts[bucket(client.key) + 1] += 1;
    }
    for b in 1..starts.len() {
        starts[b] += starts[b - 1];
    }
    let mut next = starts.clone();
    let mut sorted = vec![(0u64, 0usize); clients.len()];
    for (index, client) in clients.iter().enumerate() {
        let at = &mut next[bucket(client.key)];
        sorted[*at] = (client.key, index);
        *at += 1;
    }
    for bounds in starts.windows(2) {
        sorted[bounds[0]..bounds[1]].sort_unstable();
    }
    sorted.into_iter().map(|(_, index)| index).collect()
}
