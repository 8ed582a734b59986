//! What an operator does from the dashboard: approve, pause, resume, abort,
//! skip a host, say a task is done, and start a rollout from a plan.
//!
//! Every change takes two steps. A button on a page is a link to a
//! confirmation page (GET, changes nothing) that says what will happen and
//! the CLI command doing the same; only its form, which carries the
//! session's form token, makes the change (POST). The POST is refused (403,
//! nothing changed) from another site, for a role the gRPC call refuses,
//! or without the token; otherwise it goes through the admin API's own
//! handler — the one the CLI calls, which checks the rollout's state and
//! audits the change under the operator's name — and leads back to the
//! rollout or plan with what the controller said.

use super::data::{self, StartChoice};
use super::flash::{self, Flash};
use super::pages::{not_found, problem, render, Page};
use super::session::{authorize, authorize_form};
use super::Ui;
use crate::rollout_view::RolloutStatus;
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tierwise_common::rollout::Command;

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    page: Page,
    /// What will happen, a paragraph each.
    lines: Vec<String>,
    /// The CLI command that does the same.
    cli: String,
    /// Where the form goes, and what it carries besides the token.
    action: String,
    fields: Vec<(String, String)>,
    csrf: String,
    /// The `done` form asks for a note.
    note: bool,
    yes: String,
    /// Abort cannot be undone: its button says so in red.
    danger: bool,
    back: String,
}

/// What a confirmation says about one command.
#[derive(Debug, PartialEq, Eq)]
struct Described {
    title: String,
    lines: Vec<String>,
    cli: String,
    yes: &'static str,
}

/// Which host or task a command concerns (query of the confirmation, or
/// fields of its form).
#[derive(serde::Deserialize, Default)]
pub struct ChangeTarget {
    #[serde(default)]
    host: String,
    #[serde(default)]
    task: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    csrf: String,
}

/// The command a path names (`/rollouts/ID/approve` …).
fn command(name: &str, target: &ChangeTarget) -> Option<Command> {
    Some(match name {
        "approve" => Command::Approve,
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        "abort" => Command::Abort,
        "skip" => Command::Skip {
            host_id: target.host.trim().to_owned(),
        },
        "done" => Command::Done {
            task: target.task.trim().to_owned(),
            note: target.note.trim().to_owned(),
        },
        _ => return None,
    })
}

/// A rollout id as ids are made; anything else names no rollout (and never
/// reaches a redirect's header).
fn rollout_id_ok(id: &str) -> bool {
    tierwise_common::validate_name("rollout id", id).is_ok()
}

/// The confirmation of `command` on `status`, in words and as the CLI
/// command.
fn describe(status: &RolloutStatus, command: &Command) -> Described {
    let id = &status.id;
    let now = format!(
        "Rollout {id} ({} to {}) is {}.",
        status.installation,
        status.target,
        status.state.as_str()
    );
    let mut lines = vec![now];
    if !status.reason.is_empty() {
        lines.push(status.reason.clone());
    }
    let (title, what, cli, yes) = match command {
        Command::Approve => (
            format!("Approve rollout {id}"),
            "Approving lets it go on: its next phase starts (and hosts waiting for an approved restart restart).".to_owned(),
            format!("tierwise rollout approve {id}"),
            "Approve",
        ),
        Command::Pause => (
            format!("Pause rollout {id}"),
            "No new step is sent; steps already running finish. Resume it to go on.".to_owned(),
            format!("tierwise rollout pause {id}"),
            "Pause",
        ),
        Command::Resume => (
            format!("Resume rollout {id}"),
            "It goes on from where it stopped; after a halt, the current phase's failed steps run again.".to_owned(),
            format!("tierwise rollout resume {id}"),
            "Resume",
        ),
        Command::Abort => (
            format!("Abort rollout {id}"),
            "It ends for good: nothing more is sent, and it cannot be resumed. Hosts keep the version they have now.".to_owned(),
            format!("tierwise rollout abort {id}"),
            "Abort the rollout",
        ),
        Command::Skip { host_id } => (
            format!("Skip {host_id} in rollout {id}"),
            format!("The unfinished steps of {host_id} are skipped: it keeps its old version and the rollout finishes without it. Refused for the primary server and the databases' reactivation."),
            format!("tierwise rollout skip {id} --host {host_id}"),
            "Skip the host",
        ),
        Command::Done { task, .. } => {
            let found = status
                .tasks
                .iter()
                .find(|t| &t.id == task || &t.kind == task);
            let what = match found {
                Some(t) => format!(
                    "Task {}: {} on {}. {} Then checked: {}",
                    t.id, t.kind, t.host_id, t.instructions, t.verification
                ),
                None => format!("Task {task}."),
            };
            (
                format!("Task {task} of rollout {id} is done"),
                what,
                format!("tierwise rollout done {id} {task} --note \"…\""),
                "It is done",
            )
        }
    };
    lines.push(what);
    Described {
        title,
        lines,
        cli,
        yes,
    }
}

/// `GET /rollouts/{id}/confirm/{command}`: what the command would do.
pub async fn confirm_change(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
    Query(target): Query<ChangeTarget>,
) -> Response {
    let viewer = match authorize(&ui, &headers, "ChangeRollout").await {
        Ok(viewer) => viewer,
        Err(refused) => return refused,
    };
    let Some(command) = command(&name, &target).filter(|_| rollout_id_ok(&id)) else {
        return not_found().await;
    };
    let status = match data::rollout(&ui.api, &viewer, &id).await {
        Ok(status) => status,
        Err(e) => return problem(StatusCode::NOT_FOUND, "No such rollout", &e),
    };
    let described = describe(&status, &command);
    let mut fields = Vec::new();
    match &command {
        Command::Skip { host_id } => fields.push(("host".to_owned(), host_id.clone())),
        Command::Done { task, .. } => fields.push(("task".to_owned(), task.clone())),
        _ => {}
    }
    render(&ConfirmPage {
        page: Page::of(&viewer, &described.title, "rollouts"),
        lines: described.lines,
        cli: described.cli,
        action: format!("/rollouts/{}/{}", status.id, command.name()),
        fields,
        csrf: viewer.csrf.clone(),
        note: matches!(command, Command::Done { .. }),
        yes: described.yes.to_owned(),
        danger: matches!(command, Command::Abort),
        back: format!("/rollouts/{}", status.id),
    })
}

/// What the controller did, in a sentence.
fn outcome(command: &Command, status: &RolloutStatus) -> String {
    let id = &status.id;
    let state = status.state.as_str();
    match command {
        Command::Approve => format!("Approved rollout {id}; it is now {state}."),
        Command::Pause => format!("Paused rollout {id}; steps already running finish."),
        Command::Resume => format!("Resumed rollout {id}; it is now {state}."),
        Command::Abort => format!("Aborted rollout {id}; nothing more is sent."),
        Command::Skip { host_id } => {
            format!("Skipped {host_id} in rollout {id}: it keeps its old version.")
        }
        Command::Done { task, .. } => format!(
            "Task {task} of rollout {id} is done; the rollout checks what the agents report, then goes on."
        ),
    }
}

/// `POST /rollouts/{id}/{command}`: makes the change, back to the rollout.
pub async fn change(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
    Form(form): Form<ChangeTarget>,
) -> Response {
    let viewer = match authorize_form(&ui, &headers, "ChangeRollout", &form.csrf).await {
        Ok(viewer) => viewer,
        Err(refused) => return refused,
    };
    let Some(command) = command(&name, &form).filter(|_| rollout_id_ok(&id)) else {
        return not_found().await;
    };
    let back = format!("/rollouts/{id}");
    match data::change(&ui.api, &viewer, &id, &command).await {
        Ok(status) => flash::redirect(&back, &Flash::done(outcome(&command, &status))),
        Err(reason) => flash::redirect(&back, &Flash::refused(format!("Refused: {reason}"))),
    }
}

/// The start form's fields as `StartChoice`, and the form token.
fn start_choice(pairs: &[(String, String)]) -> (StartChoice, String) {
    let mut choice = StartChoice::default();
    let mut csrf = String::new();
    let list = |text: &str| -> Vec<String> {
        text.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    for (name, value) in pairs {
        let value = value.trim();
        match name.as_str() {
            "installation" => choice.installation = value.to_owned(),
            "to" => choice.target = value.to_owned(),
            "waves" => choice.client_waves = value.to_owned(),
            "ack" if !value.is_empty() => choice.acks.push(value.to_owned()),
            "approve_phases" => choice.approve_phases = !value.is_empty(),
            "error_threshold" => choice.error_threshold = value.to_owned(),
            "restarts" => choice.restarts = list(value),
            "verify_timeouts" => choice.verify_timeouts = list(value),
            "task_timeout" => choice.task_timeout = value.to_owned(),
            "max_backup_age" => choice.max_backup_age = value.to_owned(),
            "csrf" => csrf = value.to_owned(),
            _ => {}
        }
    }
    (choice, csrf)
}

/// The choice as form fields again (what the confirmation carries).
fn start_fields(choice: &StartChoice) -> Vec<(String, String)> {
    let mut fields = vec![
        ("installation", choice.installation.clone()),
        ("to", choice.target.clone()),
        ("waves", choice.client_waves.clone()),
        ("error_threshold", choice.error_threshold.clone()),
        ("restarts", choice.restarts.join(",")),
        ("verify_timeouts", choice.verify_timeouts.join(",")),
        ("task_timeout", choice.task_timeout.clone()),
        ("max_backup_age", choice.max_backup_age.clone()),
    ];
    if choice.approve_phases {
        fields.push(("approve_phases", "on".to_owned()));
    }
    fields.extend(choice.acks.iter().map(|a| ("ack", a.clone())));
    fields
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// `tierwise rollout start …` with the same choice.
fn start_command(choice: &StartChoice) -> String {
    let mut words = vec![
        "tierwise rollout start".to_owned(),
        format!("--installation {}", choice.installation),
        format!("--to {}", choice.target),
    ];
    let mut flag = |name: &str, value: &str| {
        if !value.is_empty() {
            words.push(format!("--{name} {value}"));
        }
    };
    flag("client-waves", &choice.client_waves);
    for ack in &choice.acks {
        flag("ack", ack);
    }
    flag("error-threshold", &choice.error_threshold);
    for restart in &choice.restarts {
        flag("restart", restart);
    }
    for timeout in &choice.verify_timeouts {
        flag("verify-timeout", timeout);
    }
    flag("task-timeout", &choice.task_timeout);
    flag("max-backup-age", &choice.max_backup_age);
    if choice.approve_phases {
        words.push("--approve-phases".to_owned());
    }
    words.join(" ")
}

/// What starting would do, a paragraph each.
fn start_lines(choice: &StartChoice) -> Vec<String> {
    let or = |value: &str, default: &str| {
        if value.is_empty() {
            default.to_owned()
        } else {
            value.to_owned()
        }
    };
    let mut lines = vec![
        format!(
            "A rollout of {} to {} starts now, phase by phase as the plan shows.",
            choice.installation, choice.target
        ),
        format!(
            "Client waves: {}.",
            or(&choice.client_waves, "as the plan chose")
        ),
        format!("Acknowledged: {}.", or(&choice.acks.join(", "), "nothing")),
        format!(
            "Approval before each phase after the first: {}.",
            if choice.approve_phases { "yes" } else { "no" }
        ),
        format!(
            "Failures a client wave tolerates: {}.",
            or(&choice.error_threshold, "5%")
        ),
    ];
    if !choice.restarts.is_empty() {
        lines.push(format!("Restarts: {}.", choice.restarts.join(", ")));
    }
    if !choice.verify_timeouts.is_empty() {
        lines.push(format!(
            "Verification deadlines: {}.",
            choice.verify_timeouts.join(", ")
        ));
    }
    lines.push(format!(
        "An operator task may stay open {}; the server's update starts on a backup at most {} old.",
        or(&choice.task_timeout, "24h"),
        or(&choice.max_backup_age, "2h")
    ));
    lines
}

/// The plan page of a choice, where a refused start leads back to.
fn plan_url(choice: &StartChoice) -> String {
    format!(
        "/plan?installation={}&to={}&waves={}",
        query_value(&choice.installation),
        query_value(&choice.target),
        query_value(&choice.client_waves)
    )
}

/// `text` percent-encoded for a URL's query.
fn query_value(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `GET /plan/start?…`: what starting this plan would do.
pub async fn confirm_start(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let viewer = match authorize(&ui, &headers, "StartRollout").await {
        Ok(viewer) => viewer,
        Err(refused) => return refused,
    };
    let (choice, _) = start_choice(&pairs);
    render(&ConfirmPage {
        page: Page::of(
            &viewer,
            &format!("Start {} to {}", choice.installation, choice.target),
            "plan",
        ),
        lines: start_lines(&choice),
        cli: start_command(&choice),
        action: "/rollouts".to_owned(),
        fields: start_fields(&choice),
        csrf: viewer.csrf.clone(),
        note: false,
        yes: "Start the rollout".to_owned(),
        danger: false,
        back: plan_url(&choice),
    })
}

/// `POST /rollouts`: starts the rollout, on to its page; a refusal (a
/// missing acknowledgement, a blocked plan) back to the plan with why.
pub async fn start(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let (choice, csrf) = start_choice(&pairs);
    let viewer = match authorize_form(&ui, &headers, "StartRollout", &csrf).await {
        Ok(viewer) => viewer,
        Err(refused) => return refused,
    };
    match data::start(&ui.api, &viewer, &choice).await {
        Ok(status) => flash::redirect(
            &format!("/rollouts/{}", status.id),
            &Flash::done(format!(
                "Started rollout {}: {} to {}.",
                status.id, status.installation, status.target
            )),
        ),
        Err(reason) => flash::redirect(
            &plan_url(&choice),
            &Flash::refused(format!("Not started: {reason}")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_form_reads_as_the_cli_command_and_survives_its_confirmation() {
        let pairs: Vec<(String, String)> = [
            ("installation", "prod"),
            ("to", "26.3.100.34058"),
            ("waves", ""),
            ("ack", "breaking"),
            ("ack", "pkcs11"),
            ("approve_phases", "on"),
            ("restarts", "server=ask, client=auto"),
            ("csrf", "abc"),
            ("unknown", "ignored"),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
        let (choice, csrf) = start_choice(&pairs);
        assert_eq!(csrf, "abc");
        assert_eq!(choice.acks, ["breaking", "pkcs11"]);
        assert_eq!(choice.restarts, ["server=ask", "client=auto"]);
        assert!(choice.approve_phases);
        assert_eq!(
            start_command(&choice),
            "tierwise rollout start --installation prod --to 26.3.100.34058 --ack breaking \
             --ack pkcs11 --restart server=ask --restart client=auto --approve-phases"
        );
        // What the confirmation carries reads back as the same choice.
        let (again, no_token) = start_choice(&start_fields(&choice));
        assert_eq!(again, choice);
        assert!(no_token.is_empty());
        assert_eq!(
            plan_url(&choice),
            "/plan?installation=prod&to=26.3.100.34058&waves="
        );
        assert_eq!(query_value("1%,10% &x"), "1%25%2C10%25%20%26x");
    }

    #[test]
    fn a_confirmation_says_what_happens_and_the_cli_command_with_the_ids() {
        use tierwise_common::rollout::RolloutState;
        let status = crate::ui::chart::tests::rollout(
            "r1",
            "prod",
            "26.3.100.34058",
            RolloutState::WaitingForApproval,
        );
        let approve = describe(&status, &Command::Approve);
        assert_eq!(approve.title, "Approve rollout r1");
        assert_eq!(approve.cli, "tierwise rollout approve r1");
        assert_eq!(
            approve.lines[0],
            "Rollout r1 (prod to 26.3.100.34058) is waiting_for_approval."
        );
        let skip = Command::Skip {
            host_id: "cl-003".into(),
        };
        assert_eq!(
            describe(&status, &skip).cli,
            "tierwise rollout skip r1 --host cl-003"
        );
        let done = Command::Done {
            task: "r1-5".into(),
            note: String::new(),
        };
        assert_eq!(
            describe(&status, &done).cli,
            "tierwise rollout done r1 r1-5 --note \"…\""
        );
        let mut running = status.clone();
        running.state = RolloutState::Running;
        assert_eq!(
            outcome(&Command::Approve, &running),
            "Approved rollout r1; it is now running."
        );
        assert!(outcome(&done, &running).starts_with("Task r1-5 of rollout r1 is done"));
    }

    #[test]
    fn only_the_six_commands_and_well_formed_ids_are_taken() {
        let target = ChangeTarget {
            host: " cl-003 ".into(),
            task: "r1-5".into(),
            note: "pressed".into(),
            csrf: String::new(),
        };
        assert_eq!(
            command("skip", &target),
            Some(Command::Skip {
                host_id: "cl-003".into()
            })
        );
        assert_eq!(
            command("done", &target),
            Some(Command::Done {
                task: "r1-5".into(),
                note: "pressed".into()
            })
        );
        assert_eq!(command("delete", &target), None);
        assert!(rollout_id_ok("r12"));
        assert!(!rollout_id_ok("r1\nSet-Cookie: x"));
        assert!(!rollout_id_ok("../r1"));
    }
}
