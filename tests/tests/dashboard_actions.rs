//! Acting from the web dashboard in a real browser: headless Chromium,
//! driven through chromedriver, against a real controller and real agents.
//! An operator starts a rollout from its plan (refused first for a missing
//! acknowledgement), approves it when it waits, is refused a command the
//! rollout does not take, and says an operator task is done — each through
//! its confirmation page — and the controller's state and audit log show
//! it, under the operator's name. A viewer sees no buttons, and posts made
//! outside the pages (with the viewer's cookie, or an operator's without
//! the form token) are refused and change nothing. Screenshots land in a
//! temporary directory, or in `docs/screenshots/` with
//! TIERWISE_UPDATE_SCREENSHOTS=1.
//!
//! Without Chromium and chromedriver the test says it skipped and passes,
//! unless TIERWISE_REQUIRE_CHROMIUM=1 (CI), which makes that a failure.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use serde_json::Value;
use std::time::Duration;
use tierwise_e2e::webdriver::{self, Browser};
use tierwise_e2e::{wait_for, Controller, Fleet, FleetOptions, V263};

const SESSION_COOKIE: &str = "__Host-tierwise_session";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A form posted the way a script would, outside any page: the status the
/// dashboard answers.
fn post(url: &str, cookie: &str, body: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args(["-H", &format!("Cookie: {SESSION_COOKIE}={cookie}")])
        .args(["-H", "Content-Type: application/x-www-form-urlencoded"])
        .args(["--data", body, url])
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Clicks `css` once it is there: the rollout's live part is replaced
/// every two seconds, so an element found may be gone by the click.
fn click_when_there(browser: &Browser, css: &str) {
    wait_for(css, Duration::from_secs(30), || {
        browser.click(css)?;
        Ok(Some(()))
    })
    .unwrap();
}

fn login(browser: &Browser, base: &str, token: &str) {
    browser.goto(&format!("{base}/login")).unwrap();
    browser.type_into("#token", token.trim()).unwrap();
    browser.click("#login").unwrap();
    browser.text_when("#operator", |_| true).unwrap();
}

fn status(c: &Controller, id: &str) -> Value {
    serde_json::from_str(&c.cli(&["rollout", "status", id, "--json"]).unwrap()).unwrap()
}

fn audited(c: &Controller, action: &str) -> Value {
    c.audit_entry(action).unwrap().unwrap_or(Value::Null)
}

#[test]
fn an_operator_approves_and_completes_a_task_from_the_dashboard_and_a_viewer_cannot() {
    let Some((chromium, driver)) = webdriver::tools_or_skip() else {
        return;
    };
    let shots = webdriver::screenshot_dir();

    let ui = format!("127.0.0.1:{}", free_port());
    let flag: &'static str = Box::leak(ui.clone().into_boxed_str());
    let mut fleet = Fleet::start(&FleetOptions {
        clients: 1,
        controller_flags: vec!["--ui-listen", flag],
        ..FleetOptions::default()
    })
    .unwrap();
    // The databases' reactivation becomes a task for a person.
    fleet.server.without_action("reactivate_databases").unwrap();
    let c = &fleet.controller;
    c.wait_online("srv-01", true, Duration::from_secs(20))
        .unwrap();
    c.wait_for_planned_task(V263).unwrap();
    let operator = c
        .cli(&["operators", "add", "otto", "--role", "operator"])
        .unwrap();
    let viewer = c
        .cli(&["operators", "add", "vera", "--role", "viewer"])
        .unwrap();
    let base = format!("https://{ui}");
    let browser = Browser::start(&chromium, &driver).unwrap();
    login(&browser, &base, &operator);

    // The plan offers its acknowledgements; starting without them is
    // refused with the plan's reason, and nothing starts.
    let plan_url = format!("{base}/plan?installation=prod&to={V263}");
    browser.goto(&plan_url).unwrap();
    browser.text_when("#plan-verdict", |_| true).unwrap();
    assert!(browser.exists("#ack-breaking").unwrap());
    browser.click("#start-approve-phases").unwrap();
    browser.click("#start-submit").unwrap();
    let command = browser.text_when("#cli-command", |_| true).unwrap();
    assert!(
        command.starts_with(&format!(
            "tierwise rollout start --installation prod --to {V263}"
        )) && command.ends_with("--approve-phases"),
        "{command}"
    );
    browser.click("#confirm-yes").unwrap();
    let refused = browser.text_when("#flash.flash-refused", |_| true).unwrap();
    assert!(
        refused.starts_with("Not started:") && refused.contains("breaking"),
        "{refused}"
    );
    assert!(browser.url().unwrap().contains("/plan?installation=prod"));
    let listed: Value =
        serde_json::from_str(&c.cli(&["rollout", "list", "--json"]).unwrap()).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");

    // With every acknowledgement ticked it starts, under the operator's name.
    browser
        .run("document.querySelectorAll('input[name=ack]').forEach(b => b.checked = true); return null;")
        .unwrap();
    browser.click("#start-approve-phases").unwrap();
    browser
        .run("document.getElementById('start-form').scrollIntoView(); return null;")
        .unwrap();
    browser
        .screenshot(&shots.join("dashboard-plan-start.png"))
        .unwrap();
    browser.click("#start-submit").unwrap();
    browser
        .text_when("#cli-command", |t| t.contains("--ack breaking"))
        .unwrap();
    browser.click("#confirm-yes").unwrap();
    let started = browser.text_when("#flash.flash-done", |_| true).unwrap();
    assert!(started.starts_with("Started rollout "), "{started}");
    let id = browser
        .url()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(audited(c, "rollout start")["actor"], "otto");
    // The fleet: the rollout's target is the installation's current
    // release (green) from now on, whatever the catalogue's newest.
    browser.goto(&format!("{base}/")).unwrap();
    let current = browser.text("#current-prod").unwrap();
    assert!(
        current.contains(V263) && current.contains(&format!("the target of rollout {id}")),
        "{current}"
    );
    // The message was shown once.
    assert!(!browser.exists("#flash").unwrap());
    browser.goto(&format!("{base}/rollouts/{id}")).unwrap();
    browser.text_when("#rollout-state", |_| true).unwrap();
    assert!(!browser.exists("#flash").unwrap());

    // Waiting for approval: the page names the command with the id, and
    // the operator approves from it.
    browser
        .text_when("#rollout-state", |t| t == "waiting_for_approval")
        .unwrap();
    let how = browser.text("#approve-how").unwrap();
    assert!(
        how.contains(&format!("tierwise rollout approve {id}")),
        "{how}"
    );
    browser
        .screenshot(&shots.join("dashboard-waiting-approval.png"))
        .unwrap();
    click_when_there(&browser, "#action-approve");
    assert_eq!(
        browser.text_when("#cli-command", |_| true).unwrap(),
        format!("tierwise rollout approve {id}")
    );
    browser
        .screenshot(&shots.join("dashboard-approve-confirm.png"))
        .unwrap();
    browser.click("#confirm-yes").unwrap();
    let approved = browser.text_when("#flash.flash-done", |_| true).unwrap();
    assert!(
        approved.starts_with(&format!("Approved rollout {id}")),
        "{approved}"
    );
    browser
        .screenshot(&shots.join("dashboard-approved.png"))
        .unwrap();
    let entry = audited(c, "rollout approve");
    assert_eq!(entry["actor"], "otto", "{entry}");
    assert_eq!(entry["subject"], id.as_str(), "{entry}");

    // A command the rollout does not take now: the engine's refusal, in
    // words, and nothing changes.
    browser
        .goto(&format!("{base}/rollouts/{id}/confirm/resume"))
        .unwrap();
    browser.click("#confirm-yes").unwrap();
    let refused = browser.text_when("#flash.flash-refused", |_| true).unwrap();
    assert!(
        refused.starts_with("Refused:")
            && refused.contains("resume needs it to be paused or failed"),
        "{refused}"
    );
    assert!(audited(c, "rollout resume").is_null());

    // The databases' reactivation waits for a person (later approvals from
    // the CLI); the operator says it is done from the page, with a note.
    let task = wait_for("the task to open", Duration::from_secs(60), || {
        let now = status(c, &id);
        if now["state"] == "waiting_for_approval" {
            c.cli(&["rollout", "approve", &id])?;
        }
        Ok((now["state"] == "waiting_for_operator").then(|| {
            now["tasks"][0]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }))
    })
    .unwrap()
    .0;
    browser.goto(&format!("{base}/rollouts/{id}")).unwrap();
    click_when_there(&browser, &format!("#done-{task}"));
    assert_eq!(
        browser.text_when("#cli-command", |_| true).unwrap(),
        format!("tierwise rollout done {id} {task} --note \"…\"")
    );
    browser
        .type_into("#note", "both databases reactivated in the Server Manager")
        .unwrap();
    browser
        .screenshot(&shots.join("dashboard-task-confirm.png"))
        .unwrap();
    browser.click("#confirm-yes").unwrap();
    let done = browser.text_when("#flash.flash-done", |_| true).unwrap();
    assert!(
        done.starts_with(&format!("Task {task} of rollout {id} is done")),
        "{done}"
    );
    browser
        .text_when(&format!("#task-{task} .task-state"), |t| t == "done")
        .unwrap();
    browser
        .screenshot(&shots.join("dashboard-task-done.png"))
        .unwrap();
    let now = status(c, &id);
    let recorded = &now["tasks"][0];
    assert_eq!(recorded["state"], "done", "{now:#}");
    assert_eq!(recorded["done_by"], "otto", "{now:#}");
    assert_eq!(
        recorded["note"],
        "both databases reactivated in the Server Manager"
    );
    let entry = audited(c, "rollout task done");
    assert_eq!(entry["actor"], "otto", "{entry}");
    assert!(
        entry["details"]
            .as_str()
            .is_some_and(|d| d.contains("both databases reactivated")),
        "{entry}"
    );

    // Posts from outside the pages. The operator's own session without the
    // form token, or with a made-up one: refused, nothing changes.
    let operator_cookie = browser.cookie(SESSION_COOKIE).unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let pause = format!("{base}/rollouts/{id}/pause");
    assert_eq!(post(&pause, &operator_cookie, "note="), "403");
    assert_eq!(
        post(
            &pause,
            &operator_cookie,
            &format!("csrf={}", "0".repeat(64))
        ),
        "403"
    );
    assert_ne!(status(c, &id)["state"], "paused");
    assert!(audited(c, "rollout pause").is_null());

    // A viewer: the same pages without a button, and every post refused.
    browser.click("form.who button").unwrap();
    wait_for("the login page", Duration::from_secs(10), || {
        Ok(browser.url()?.ends_with("/login").then_some(()))
    })
    .unwrap();
    login(&browser, &base, &viewer);
    assert_eq!(browser.text("#operator").unwrap(), "vera (viewer)");
    browser.goto(&format!("{base}/rollouts/{id}")).unwrap();
    browser.text_when("#rollout-state", |_| true).unwrap();
    assert!(!browser.exists("a.button").unwrap());
    assert!(!browser.exists("#actions").unwrap());
    browser.goto(&plan_url).unwrap();
    browser.text_when("#plan-verdict", |_| true).unwrap();
    assert!(!browser.exists("#start-form").unwrap());
    browser
        .goto(&format!("{base}/rollouts/{id}/confirm/abort"))
        .unwrap();
    assert!(!browser.exists("#confirm-yes").unwrap());
    let viewer_cookie = browser.cookie(SESSION_COOKIE).unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    for (url, body) in [
        (format!("{base}/rollouts/{id}/abort"), String::new()),
        (format!("{base}/rollouts/{id}/pause"), "csrf=x".to_owned()),
        (
            format!("{base}/rollouts"),
            format!("installation=prod&to={V263}&ack=breaking"),
        ),
    ] {
        assert_eq!(post(&url, &viewer_cookie, &body), "403", "{url}");
    }
    let now = status(c, &id);
    assert!(
        !matches!(now["state"].as_str(), Some("aborted" | "paused")),
        "{now:#}"
    );
    assert!(audited(c, "rollout abort").is_null());
    let listed: Value =
        serde_json::from_str(&c.cli(&["rollout", "list", "--json"]).unwrap()).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    // The operator again: pause, resume, skip a host and abort, each from
    // its confirmation, each audited under the operator's name.
    browser.goto(&format!("{base}/")).unwrap();
    browser.click("form.who button").unwrap();
    wait_for("the login page", Duration::from_secs(10), || {
        Ok(browser.url()?.ends_with("/login").then_some(()))
    })
    .unwrap();
    login(&browser, &base, &operator);
    for (command, said, action) in [
        ("pause", "Paused rollout", "rollout pause"),
        ("resume", "Resumed rollout", "rollout resume"),
        (
            "skip?host=cl-001",
            "Skipped cl-001 in rollout",
            "rollout skip host",
        ),
        ("abort", "Aborted rollout", "rollout abort"),
    ] {
        browser
            .goto(&format!("{base}/rollouts/{id}/confirm/{command}"))
            .unwrap();
        browser.click("#confirm-yes").unwrap();
        let flash = browser.text_when("#flash", |_| true).unwrap();
        assert!(flash.starts_with(said), "{command}: {flash}");
        assert_eq!(audited(c, action)["actor"], "otto", "{action}");
    }
    let ended = status(c, &id);
    assert_eq!(ended["state"], "aborted", "{ended:#}");
    assert!(
        !browser.exists("a.button").unwrap(),
        "an ended rollout has no buttons"
    );
}
