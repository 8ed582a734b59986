//! The host page (`/hosts/{id}`): what the host's agent reports (its
//! components and versions, when it last reported, whether it is online)
//! and its steps across rollouts, each with every attempt kept — the
//! failed ones too, after a skip or a successful retry. Authorised as
//! `GetHostHistory` (viewer); an unknown host is a 404 page.

use super::data;
use super::pages::{problem, render, Page};
use super::session::authorize;
use super::Ui;
use crate::history_view::HostStepView;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tierwise_common::{HostRecord, Placement, ProbedVersion};
use tierwise_runtime::clock::{ago, now_ms, rfc3339};

/// Steps the page shows, newest first.
const STEPS_SHOWN: u32 = 100;

/// One component as the page lists it.
struct ComponentRow {
    role: String,
    version: String,
    /// Why the version is unknown; empty otherwise.
    problem: String,
}

/// What the agent reports about the host itself.
struct Summary {
    host_id: String,
    hostname: String,
    installation: String,
    os: String,
    agent_version: String,
    online: bool,
    last_seen: String,
    last_seen_ago: String,
    first_seen: String,
    boot: String,
    heartbeat_seconds: u32,
}

#[derive(Template)]
#[template(path = "host.html")]
struct HostPage {
    page: Page,
    host: Summary,
    components: Vec<ComponentRow>,
    steps: Vec<HostStepView>,
    limit: u32,
}

fn summary(host: &HostRecord, now: i64) -> Summary {
    Summary {
        host_id: host.host_id.clone(),
        hostname: host.hostname.clone(),
        installation: match &host.placement {
            None => host.installation.clone(),
            Some(Placement::Placed { installation, by }) => {
                format!("{installation} (placed automatically: {by})")
            }
            Some(Placement::Unassigned { reason }) => format!("unassigned: {reason}"),
        },
        os: host.os.clone(),
        agent_version: host.agent_version.clone(),
        online: host.online,
        last_seen: rfc3339(host.last_seen_ms),
        last_seen_ago: ago(host.last_seen_ms, now),
        first_seen: rfc3339(host.first_seen_ms),
        boot: host.boot_ms.map(rfc3339).unwrap_or_default(),
        heartbeat_seconds: host.heartbeat_seconds,
    }
}

fn components(host: &HostRecord) -> Vec<ComponentRow> {
    host.inventory
        .components()
        .iter()
        .map(|c| {
            let (version, problem) = match &c.version {
                ProbedVersion::Installed(v) => (v.to_string(), String::new()),
                ProbedVersion::NotInstalled => ("not installed".to_owned(), String::new()),
                ProbedVersion::Unknown(why) => ("unknown".to_owned(), why.clone()),
            };
            ComponentRow {
                role: c.role.to_string(),
                version,
                problem,
            }
        })
        .collect()
}

pub async fn host(State(ui): State<Ui>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let viewer = match authorize(&ui, &headers, "GetHostHistory").await {
        Ok(viewer) => viewer,
        Err(refused) => return refused,
    };
    let unavailable = |e: &str| {
        problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "The controller cannot answer",
            e,
        )
    };
    let record = match data::host(&ui.api, &viewer, &id).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            return problem(
                StatusCode::NOT_FOUND,
                "No such host",
                &format!("There is no host `{id}`; the hosts page lists the known hosts."),
            )
        }
        Err(error) => return unavailable(&error),
    };
    let history = match data::host_history(&ui.api, &viewer, &record.host_id, STEPS_SHOWN).await {
        Ok(history) => history,
        Err(error) => return unavailable(&error),
    };
    render(&HostPage {
        page: Page::of(&viewer, &format!("Host {}", record.host_id), "hosts"),
        host: summary(&record, now_ms()),
        components: components(&record),
        steps: history.steps,
        limit: STEPS_SHOWN,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history_view::{AttemptView, StepHistoryView};
    use tierwise_common::rollout::Recovery;

    #[test]
    fn the_page_shows_each_failed_attempt_as_text_never_as_markup() {
        let attempt = AttemptView {
            attempt: 1,
            result: "failed".into(),
            outcome: "failed".into(),
            exit_code: Some(43),
            output_tail: "<script>alert(1)</script>installer error 43".into(),
            reason: "exit code 43".into(),
            started_at: Some("2026-12-07T12:00:00Z".into()),
            started_ms: Some(0),
            finished_at: "2026-12-07T12:00:02Z".into(),
            finished_ms: 0,
        };
        let page = HostPage {
            page: Page::anonymous("Host cl-013"),
            host: Summary {
                host_id: "cl-013".into(),
                hostname: "cl-013.corp".into(),
                installation: "prod".into(),
                os: "Windows 11".into(),
                agent_version: "0.1.0".into(),
                online: false,
                last_seen: "2026-12-07T12:10:00Z".into(),
                last_seen_ago: "5 min ago".into(),
                first_seen: "2026-12-01T08:00:00Z".into(),
                boot: String::new(),
                heartbeat_seconds: 10,
            },
            components: vec![ComponentRow {
                role: "client".into(),
                version: "9.3.1.33994".into(),
                problem: String::new(),
            }],
            steps: vec![HostStepView {
                rollout_id: "r2".into(),
                installation: "prod".into(),
                release: "26.3.100.34058".into(),
                step: StepHistoryView {
                    step_id: "r2-9".into(),
                    host_id: "cl-013".into(),
                    action: "install".into(),
                    state: "skipped".into(),
                    recovery: Some(Recovery::FailedThenSkipped),
                    summary: "failed, then skipped".into(),
                    attempts: vec![attempt],
                },
                changed_at: "2026-12-07T12:05:00Z".into(),
                changed_ms: 0,
            }],
            limit: STEPS_SHOWN,
        };
        let html = page.render().expect("renders");
        for expected in [
            "failed, then skipped",
            "exit code 43",
            "&#60;script&#62;alert(1)",
            "href=\"/rollouts/r2\"",
            "9.3.1.33994",
            "offline",
        ] {
            assert!(html.contains(expected), "{expected}: {html}");
        }
        assert!(!html.contains("<script>alert"), "{html}");
    }
}
