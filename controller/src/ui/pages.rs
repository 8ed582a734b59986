//! The dashboard's pages: each handler checks who is looking, fetches what
//! the page shows through `data`, and renders a template. No page changes
//! anything: its buttons lead to `actions`' confirmations.

use super::chart::{self, Bar};
use super::data::{self, Window};
use super::session::{authorize, Viewer};
use super::Ui;
use crate::cli::rollout::{eta_line, phase_name, protected_by};
use crate::rollout_view::RolloutStatus;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use std::collections::BTreeMap;
use tierwise_common::rollout::{Command, RolloutState};
use tierwise_common::rules::Severity;
use tierwise_common::{HostRecord, ProbedVersion, Role};
use tierwise_runtime::clock::{ago, now_ms};

/// What every page's frame shows.
pub struct Page {
    pub title: String,
    pub operator: String,
    pub role: String,
    /// The menu entry to mark: `fleet`, `hosts`, `rollouts`, `plan`.
    pub nav: &'static str,
    /// What the last change said, shown once.
    pub flash: Option<super::flash::Flash>,
}

impl Page {
    pub fn anonymous(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            operator: String::new(),
            role: String::new(),
            nav: "",
            flash: None,
        }
    }

    pub fn of(viewer: &Viewer, title: &str, nav: &'static str) -> Self {
        Self {
            title: title.to_owned(),
            operator: viewer.name.clone(),
            role: viewer.role.to_string(),
            nav,
            flash: viewer.flash.clone(),
        }
    }

    pub fn signed_in(&self) -> bool {
        !self.operator.is_empty()
    }
}

/// The template as HTML, or a plain error when it cannot be rendered.
pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the page cannot be rendered: {error}"),
        )
            .into_response(),
    }
}

#[derive(Template)]
#[template(path = "problem.html")]
struct Problem {
    page: Page,
    message: String,
}

/// A page that says what went wrong.
pub fn problem(status: StatusCode, title: &str, message: &str) -> Response {
    let page = Problem {
        page: Page::anonymous(title),
        message: message.to_owned(),
    };
    (status, render(&page)).into_response()
}

pub async fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page here.",
    )
}

pub async fn htmx() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("../../assets/htmx-2.0.4.min.js"),
    )
        .into_response()
}

pub async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../assets/style.css"),
    )
        .into_response()
}

// ---------------------------------------------------------------------------
// The fleet.

struct Installation {
    name: String,
    bars: Vec<Bar>,
    /// Its current release and why it is (`chart::current_release`);
    /// empty while it has none.
    current: String,
    current_why: String,
    /// The newest rollout of the installation: (id, target, state).
    rollout: Option<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetPage {
    page: Page,
    installations: Vec<Installation>,
    /// The catalogue's latest release, if a catalogue is imported.
    latest: String,
}

pub async fn fleet(State(ui): State<Ui>, headers: HeaderMap) -> Response {
    let viewer = match authorize(&ui, &headers, "ListHosts").await {
        Ok(viewer) => viewer,
        Err(refused) => return refused,
    };
    let stats = match ui.store.fleet_stats().await {
        Ok(stats) => stats,
        Err(error) => return unavailable(&error.to_string()),
    };
    let rollouts = match data::rollouts(&ui.api, &viewer).await {
        Ok(rollouts) => rollouts,
        Err(error) => return unavailable(&error),
    };
    let latest = match ui.store.current_catalogue().await {
        Ok(stored) => stored
            .and_then(|c| tierwise_common::catalogue::Catalogue::parse(&c.document, &c.source).ok())
            .and_then(|c| c.releases().iter().map(|r| r.version).max()),
        Err(error) => return unavailable(&error.to_string()),
    };
    let mut by_installation: BTreeMap<&str, Vec<(String, String, i64)>> = BTreeMap::new();
    for (installation, role, version, n) in &stats.versions {
        by_installation
            .entry(installation)
            .or_default()
            .push((role.clone(), version.clone(), *n));
    }
    let installations = by_installation
        .into_iter()
        .map(|(name, counts)| {
            let online: Vec<(String, i64)> = stats
                .connected
                .iter()
                .filter(|(i, _, _)| i == name)
                .map(|(_, role, n)| (role.clone(), *n))
                .collect();
            let rollout = rollouts
                .iter()
                .filter(|r| r.installation == name)
                .max_by(|a, b| a.created.cmp(&b.created))
                .map(|r| (r.id.clone(), r.target.clone(), r.state.as_str().to_owned()));
            let current = chart::current_release(&rollouts, name);
            Installation {
                name: name.to_owned(),
                bars: chart::bars(&counts, &online, current.as_ref().map(|c| c.0), latest),
                current: current
                    .as_ref()
                    .map(|c| c.0.to_string())
                    .unwrap_or_default(),
                current_why: current.map(|c| c.1).unwrap_or_default(),
                rollout,
            }
        })
        .collect();
    render(&FleetPage {
        page: Page::of(&viewer, "Fleet", "fleet"),
        installations,
        latest: latest.map(|v| v.to_string()).unwrap_or_default(),
    })
}

fn unavailable(message: &str) -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "The controller cannot answer",
        message,
    )
}

// ---------------------------------------------------------------------------
// Hosts.

#[derive(serde::Deserialize, Default)]
pub struct HostFilter {
    #[serde(default)]
    installation: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    q: String,
}

struct HostRow {
    host_id: String,
    installation: String,
    online: bool,
    components: String,
    agent_version: String,
    last_seen: String,
}

#[derive(Template)]
#[template(path = "hosts.html")]
struct HostsPage {
    page: Page,
    filter: HostFilter,
    installations: Vec<String>,
    roles: Vec<&'static str>,
    rows: Vec<HostRow>,
    matched: usize,
    error: String,
}

/// Whether a host passes the filters the admin API does not apply.
fn host_matches(host: &HostRecord, filter: &HostFilter) -> bool {
    let status = match filter.status.as_str() {
        "online" => host.online,
        "offline" => !host.online,
        _ => true,
    };
    let version = filter.version.trim();
    let version_ok = version.is_empty()
        || host
            .inventory
            .components()
            .iter()
            .any(|c| match &c.version {
                ProbedVersion::Installed(v) => v.to_string().starts_with(version),
                ProbedVersion::NotInstalled => version == "not installed",
                ProbedVersion::Unknown(_) => version == "unknown",
            });
    let q = filter.q.trim().to_lowercase();
    let text_ok = q.is_empty()
        || host.host_id.to_lowercase().contains(&q)
        || host.hostname.to_lowercase().contains(&q);
    status && version_ok && text_ok
}

pub async fn hosts(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Query(filter): Query<HostFilter>,
) -> Response {
    let viewer = match authorize(&ui, &headers, "ListHosts").await {
        Ok(viewer) => viewer,
        Err(refused) => return refused,
    };
    // Every installation hosts report, `auto` (clients not yet placed) too.
    let installations: Vec<String> = match ui.store.fleet_stats().await {
        Ok(stats) => stats
            .versions
            .into_iter()
            .map(|(i, _, _, _)| i)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        Err(error) => return unavailable(&error.to_string()),
    };
    let mut error = String::new();
    let role = match filter.role.as_str() {
        "" => None,
        text => match text.parse::<Role>() {
            Ok(role) => Some(role),
            Err(e) => {
                error = e.to_string();
                None
            }
        },
    };
    let installation = (!filter.installation.is_empty()).then_some(filter.installation.as_str());
    let (rows, matched) = if error.is_empty() {
        match data::hosts(&ui.api, &viewer, installation, role, |h| {
            host_matches(h, &filter)
        })
        .await
        {
            Ok((hosts, matched)) => {
                let now = now_ms();
                let rows = hosts
                    .iter()
                    .map(|h| HostRow {
                        host_id: h.host_id.clone(),
                        installation: h.installation.clone(),
                        online: h.online,
                        components: crate::cli::hosts::component_summary(h),
                        agent_version: h.agent_version.clone(),
                        last_seen: ago(h.last_seen_ms, now),
                    })
                    .collect();
                (rows, matched)
            }
            Err(e) => {
                error = e;
                (Vec::new(), 0)
            }
        }
    } else {
        (Vec::new(), 0)
    };
    render(&HostsPage {
        page: Page::of(&viewer, "Hosts", "hosts"),
        filter,
        installations,
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
        rows,
        matched,
        error,
    })
}

// ---------------------------------------------------------------------------
// Rollouts.

#[derive(Template)]
#[template(path = "rollouts.html")]
struct RolloutsPage {
    page: Page,
    rollouts: Vec<RolloutStatus>,
}

pub async fn rollouts(State(ui): State<Ui>, headers: HeaderMap) -> Response {
    let viewer = match authorize(&ui, &headers, "ListRollouts").await {
        Ok(viewer) => viewer,
        Err(refused) => return refused,
    };
    match data::rollouts(&ui.api, &viewer).await {
        Ok(mut rollouts) => {
            rollouts.sort_by(|a, b| b.created.cmp(&a.created));
            render(&RolloutsPage {
                page: Page::of(&viewer, "Rollouts", "rollouts"),
                rollouts,
            })
        }
        Err(error) => unavailable(&error),
    }
}

/// One phase as the live part shows it.
struct PhaseRow {
    number: usize,
    name: String,
    state: String,
    steps: usize,
    succeeded: usize,
    failed: usize,
    running: usize,
    pending: usize,
}

/// The part of a rollout's page that follows it while it runs.
struct Live {
    id: String,
    installation: String,
    target: String,
    state: String,
    /// Still changing: the part asks again every two seconds.
    running: bool,
    reason: String,
    created: String,
    updated: String,
    eta: String,
    /// The backup protecting the rollout, in the CLI's words: a line, or a
    /// heading and a line per database.
    protected_by: Vec<String>,
    waiting_for_window: String,
    phases: Vec<PhaseRow>,
    status: RolloutStatus,
    windows: Vec<Window>,
    /// The commands the rollout takes now, for a role that may give them
    /// (`ChangeRollout`): (path word, button label). Empty for viewers.
    actions: Vec<(&'static str, &'static str)>,
    /// Whether hosts get a "Skip" and open tasks a "Done" button.
    can_skip: bool,
    can_done: bool,
}

/// The buttons of a rollout in `state` for someone who may change it:
/// exactly the commands the rollout would accept (`Command::allowed_from`).
fn actions(state: RolloutState, may_change: bool) -> Vec<(&'static str, &'static str)> {
    if !may_change {
        return Vec::new();
    }
    [
        (Command::Approve, "Approve…"),
        (Command::Pause, "Pause…"),
        (Command::Resume, "Resume…"),
        (Command::Abort, "Abort…"),
    ]
    .into_iter()
    .filter(|(command, _)| command.allowed_from().contains(&state))
    .map(|(command, label)| (command.name(), label))
    .collect()
}

fn live(status: RolloutStatus, windows: Vec<Window>, may_change: bool) -> Live {
    let allowed = |command: Command| may_change && command.allowed_from().contains(&status.state);
    let can_skip = allowed(Command::Skip {
        host_id: String::new(),
    });
    let can_done = allowed(Command::Done {
        task: String::new(),
        note: String::new(),
    });
    let phases = status
        .phases
        .iter()
        .enumerate()
        .map(|(i, p)| PhaseRow {
            number: i + 1,
            name: phase_name(&p.kind),
            state: p.state.clone(),
            steps: p.steps,
            succeeded: p.succeeded,
            failed: p.failed,
            running: p.dispatched,
            pending: p.pending,
        })
        .collect();
    Live {
        id: status.id.clone(),
        installation: status.installation.clone(),
        target: status.target.clone(),
        state: status.state.as_str().to_owned(),
        running: !matches!(
            status.state,
            RolloutState::Completed
                | RolloutState::CompletedWithFailures
                | RolloutState::Aborted
                | RolloutState::Failed
        ),
        reason: status.reason.clone(),
        created: status.created.clone(),
        updated: status.updated.clone(),
        eta: status
            .eta
            .as_ref()
            .map(|e| eta_line(e, true))
            .unwrap_or_default(),
        protected_by: protected_by(&status),
        waiting_for_window: status.waiting_for_window.clone().unwrap_or_default(),
        phases,
        actions: actions(status.state, may_change),
        can_skip,
        can_done,
        status,
        windows,
    }
}

#[derive(Template)]
#[template(path = "rollout.html")]
struct RolloutPage {
    page: Page,
    live: Live,
}

#[derive(Template)]
#[template(path = "rollout_live.html")]
struct LivePart {
    live: Live,
}

async fn live_of(ui: &Ui, headers: &HeaderMap, id: &str) -> Result<(Viewer, Live), Response> {
    let viewer = authorize(ui, headers, "GetRollout").await?;
    let status = data::rollout(&ui.api, &viewer, id)
        .await
        .map_err(|e| problem(StatusCode::NOT_FOUND, "No such rollout", &e))?;
    let windows = data::windows(&ui.api, &viewer, &status.installation)
        .await
        .map_err(|e| unavailable(&e))?;
    let may_change = viewer.may("ChangeRollout");
    Ok((viewer, live(status, windows, may_change)))
}

pub async fn rollout(State(ui): State<Ui>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match live_of(&ui, &headers, &id).await {
        Ok((viewer, live)) => render(&RolloutPage {
            page: Page::of(&viewer, &format!("Rollout {id}"), "rollouts"),
            live,
        }),
        Err(refused) => refused,
    }
}

pub async fn rollout_live(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match live_of(&ui, &headers, &id).await {
        Ok((_, live)) => render(&LivePart { live }),
        // No session, or one that ended: the whole page goes to the login
        // (htmx would otherwise put the login page inside this one).
        Err(refused)
            if refused.status() == StatusCode::UNAUTHORIZED
                || refused.status().is_redirection() =>
        {
            ([("HX-Redirect", "/login")], "").into_response()
        }
        Err(refused) => refused,
    }
}

// ---------------------------------------------------------------------------
// The plan.

#[derive(serde::Deserialize, Default)]
pub struct PlanQuery {
    #[serde(default)]
    installation: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    waves: String,
}

struct PlanPhase {
    number: usize,
    name: String,
    steps: usize,
    blocked: bool,
}

struct FindingRow {
    severity: &'static str,
    rule: String,
    subject: String,
    reason: String,
    remedy: String,
    ack: String,
}

/// An acknowledgement the start form offers: its name and why the plan
/// asks for it.
struct AckRow {
    name: String,
    why: String,
}

struct PlanView {
    blocked: bool,
    target: String,
    breaking: bool,
    server_version: String,
    hosts: usize,
    hosts_offline: usize,
    clients_to_update: usize,
    clients_excluded: usize,
    phases: Vec<PlanPhase>,
    findings: Vec<FindingRow>,
    /// The acknowledgements the plan asks for, as `--ack NAME` takes them.
    acks: Vec<AckRow>,
    eta: String,
    /// Where the release must come through first; empty without a promotion.
    promotion: String,
    windows: Vec<Window>,
}

#[derive(Template)]
#[template(path = "plan.html")]
struct PlanPage {
    page: Page,
    query: PlanQuery,
    installations: Vec<String>,
    plan: Option<PlanView>,
    error: String,
    /// The role may start a rollout (`StartRollout`): the start form shows.
    may_start: bool,
}

pub async fn plan(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Query(query): Query<PlanQuery>,
) -> Response {
    let viewer = match authorize(&ui, &headers, "PlanRollout").await {
        Ok(viewer) => viewer,
        Err(refused) => return refused,
    };
    // The installations a rollout can be planned for.
    let installations = match ui.store.installations().await {
        Ok(names) => names,
        Err(error) => return unavailable(&error.to_string()),
    };
    let mut error = String::new();
    let mut shown = None;
    if !query.installation.is_empty() && !query.to.is_empty() {
        match data::plan(
            &ui.api,
            &viewer,
            &query.installation,
            query.to.trim(),
            query.waves.trim(),
        )
        .await
        {
            Ok((plan, eta, promotion)) => {
                let windows = data::windows(&ui.api, &viewer, &query.installation)
                    .await
                    .unwrap_or_default();
                shown = Some(plan_view(&plan, &eta, promotion, windows));
            }
            Err(e) => error = e,
        }
    }
    render(&PlanPage {
        page: Page::of(&viewer, "Plan", "plan"),
        query,
        installations,
        plan: shown,
        error,
        may_start: viewer.may("StartRollout"),
    })
}

fn plan_view(
    plan: &tierwise_common::plan::Plan,
    eta: &crate::rollout_view::EtaView,
    promotion: Option<String>,
    windows: Vec<Window>,
) -> PlanView {
    PlanView {
        blocked: plan.blocked,
        target: plan.target.version.to_string(),
        breaking: plan.target.breaking,
        server_version: plan
            .server_version
            .map_or_else(|| "unknown".to_owned(), |v| v.to_string()),
        hosts: plan.counts.hosts,
        hosts_offline: plan.counts.hosts_offline,
        clients_to_update: plan.counts.clients_to_update,
        clients_excluded: plan.counts.clients_excluded,
        phases: plan
            .phases
            .iter()
            .enumerate()
            .map(|(i, p)| PlanPhase {
                number: i + 1,
                name: phase_name(&p.kind),
                steps: p.steps.len(),
                blocked: p.blocked,
            })
            .collect(),
        findings: plan
            .findings
            .iter()
            .map(|f| FindingRow {
                severity: match f.severity {
                    Severity::Blocker => "blocker",
                    Severity::Warning => "warning",
                    Severity::AckRequired => "acknowledge",
                },
                rule: f.rule.to_string(),
                subject: f.subject.to_string(),
                reason: f.reason.clone(),
                remedy: f.remedy.clone(),
                ack: f.ack.clone().unwrap_or_default(),
            })
            .collect(),
        acks: ack_rows(plan),
        eta: eta_line(eta, false),
        promotion: promotion.unwrap_or_default(),
        windows,
    }
}

/// Every acknowledgement the plan asks for or a finding offers (skipping
/// a promotion, say), once, with the first finding's reason.
fn ack_rows(plan: &tierwise_common::plan::Plan) -> Vec<AckRow> {
    let mut names: Vec<&str> = plan.acks_required.iter().map(String::as_str).collect();
    for finding in &plan.findings {
        if let Some(ack) = &finding.ack {
            if !names.contains(&ack.as_str()) {
                names.push(ack);
            }
        }
    }
    names
        .into_iter()
        .map(|name| AckRow {
            name: name.to_owned(),
            why: plan
                .findings
                .iter()
                .find(|f| f.ack.as_deref() == Some(name))
                .map(|f| f.reason.clone())
                .unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout_view::StepFailure;

    fn status(output: &str) -> RolloutStatus {
        RolloutStatus {
            id: "r1".into(),
            installation: "prod".into(),
            target: "26.3.100.34058".into(),
            state: RolloutState::Running,
            current_phase: 0,
            reason: "<b>why</b>".into(),
            created: String::new(),
            updated: String::new(),
            phases: Vec::new(),
            failures: vec![StepFailure {
                step_id: "r1-1".into(),
                host_id: "cl-001".into(),
                action: "install".into(),
                reason: "exit 1".into(),
                exit_code: Some(1),
                output_tail: output.into(),
            }],
            waiting_for_offline: Vec::new(),
            running: Vec::new(),
            skipped_hosts: Vec::new(),
            awaiting_reports: Vec::new(),
            pending_restarts: Vec::new(),
            omitted: BTreeMap::new(),
            waiting_for_window: None,
            eta: None,
            backup: None,
            backups: Vec::new(),
            tasks: Vec::new(),
            step_histories: Vec::new(),
        }
    }

    #[test]
    fn buttons_are_the_commands_the_rollout_takes_and_only_for_those_who_may() {
        use RolloutState::*;
        let names = |state, may| -> Vec<&str> {
            actions(state, may)
                .into_iter()
                .map(|(name, _)| name)
                .collect()
        };
        assert_eq!(
            names(WaitingForApproval, true),
            ["approve", "pause", "abort"]
        );
        assert_eq!(names(Running, true), ["pause", "abort"]);
        assert_eq!(names(Paused, true), ["resume", "abort"]);
        assert_eq!(names(Failed, true), ["resume", "abort"]);
        assert!(names(Completed, true).is_empty());
        assert!(names(WaitingForApproval, false).is_empty());
        // A viewer's page has no button at all, and no link to one.
        let html = LivePart {
            live: live(status(""), Vec::new(), false),
        }
        .render()
        .expect("renders");
        assert!(!html.contains("class=\"button"), "{html}");
        let html = LivePart {
            live: live(status(""), Vec::new(), true),
        }
        .render()
        .expect("renders");
        assert!(html.contains("id=\"action-pause\""), "{html}");
        assert!(
            html.contains("/rollouts/r1/confirm/skip?host=cl-001"),
            "{html}"
        );
        assert!(
            html.contains("<a class=\"host\" href=\"/hosts/cl-001\">"),
            "{html}"
        );
    }

    #[test]
    fn what_hosts_print_is_shown_as_text_never_as_markup() {
        let part = LivePart {
            live: live(
                status("<script>alert(1)</script><img src=x onerror=alert(2)>"),
                Vec::new(),
                false,
            ),
        };
        let html = part.render().expect("renders");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&#60;script&#62;alert(1)"), "{html}");
        assert!(!html.contains("<b>why</b>"), "{html}");
        // A running rollout's part asks again; an ended one does not.
        assert!(html.contains("hx-trigger=\"every 2s\""));
        let mut ended = status("");
        ended.state = RolloutState::Completed;
        let html = LivePart {
            live: live(ended, Vec::new(), false),
        }
        .render()
        .expect("renders");
        assert!(!html.contains("hx-get"), "{html}");
    }

    #[test]
    fn a_rollout_shows_the_backup_of_each_database_as_the_cli_does() {
        let file = |database: &str, path: &str| {
            crate::rollout_view::DatabaseBackupView::new(
                "srv-01",
                &tierwise_common::action::BackupFile {
                    database: Some(database.into()),
                    path: path.into(),
                    size: 1234,
                    modified_ms: 1_800_000_000_000,
                },
            )
        };
        let mut protected = status("");
        protected.set_backups(vec![
            file("PSDB", "/b/PSDB_1.bak"),
            file("<i>Archive</i>", "/b/Archive_1.bak"),
        ]);
        let html = LivePart {
            live: live(protected, Vec::new(), false),
        }
        .render()
        .expect("renders");
        for expected in [
            "<p>Protected by the backups on srv-01 of its 2 databases:</p>",
            "<li>PSDB: /b/PSDB_1.bak (1,234 bytes, written 2027-01-15T08:00:00Z)</li>",
            "<li>&#60;i&#62;Archive&#60;/i&#62;: /b/Archive_1.bak",
        ] {
            assert!(html.contains(expected), "{expected}: {html}");
        }
        // One file: one line, as before there was one per database.
        let mut single = status("");
        single.set_backups(vec![file("PSDB", "/b/PSDB_1.bak")]);
        let html = LivePart {
            live: live(single, Vec::new(), false),
        }
        .render()
        .expect("renders");
        assert!(
            html.contains(
                "<p>Protected by the backup /b/PSDB_1.bak on srv-01 (1,234 bytes, written 2027-01-15T08:00:00Z)</p>"
            ),
            "{html}"
        );
    }

    #[test]
    fn a_plan_shows_its_promotion_line_only_when_there_is_one() {
        let view = |promotion: &str| PlanView {
            blocked: true,
            target: "26.3.100.34058".into(),
            breaking: false,
            server_version: "9.3.1.33994".into(),
            hosts: 3,
            hosts_offline: 0,
            clients_to_update: 1,
            clients_excluded: 0,
            phases: Vec::new(),
            findings: Vec::new(),
            acks: Vec::new(),
            eta: String::new(),
            promotion: promotion.into(),
            windows: Vec::new(),
        };
        let page = |promotion: &str| {
            PlanPage {
                page: Page::anonymous("Plan"),
                query: PlanQuery::default(),
                installations: vec!["prod".into()],
                plan: Some(view(promotion)),
                error: String::new(),
                may_start: false,
            }
            .render()
            .expect("renders")
        };
        let line = "Promotion from test: soaking until 2026-12-07T10:00:00Z.";
        let html = page(line);
        assert!(
            html.contains(&format!(
                "<p class=\"promotion\" id=\"plan-promotion\">{line}</p>"
            )),
            "{html}"
        );
        assert!(!page("").contains("plan-promotion"));
    }
}
