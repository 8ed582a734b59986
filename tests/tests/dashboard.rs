//! The web dashboard in a real browser: headless Chromium, driven through
//! chromedriver, logs in to a real controller with real agents, looks at
//! the fleet, the hosts and a plan, then follows a rollout to its end on
//! the rollout's page — which updates itself, never reloaded — and checks
//! what the page shows. Screenshots land in a temporary directory, or in
//! `docs/` with TIERWISE_UPDATE_SCREENSHOTS=1.
//!
//! Without Chromium and chromedriver the test says it skipped and passes,
//! unless TIERWISE_REQUIRE_CHROMIUM=1 (CI), which makes that a failure.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::time::Duration;
use tierwise_e2e::webdriver::{self, Browser};
use tierwise_e2e::{wait_for, Fleet, FleetOptions, V263, V931};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn an_operator_follows_a_rollout_to_its_end_in_the_browser() {
    let Some((chromium, driver)) = webdriver::tools_or_skip() else {
        return;
    };
    let shots = webdriver::screenshot_dir();

    let ui = format!("127.0.0.1:{}", free_port());
    let flag: &'static str = Box::leak(ui.clone().into_boxed_str());
    let fleet = Fleet::start(&FleetOptions {
        clients: 6,
        server_delay: "1",
        client_delay: "2",
        controller_flags: vec!["--ui-listen", flag],
    })
    .unwrap();
    let c = &fleet.controller;
    let base = format!("https://{ui}");
    let browser = Browser::start(&chromium, &driver).unwrap();

    // Not logged in: every page leads to the login; a wrong token is
    // refused with the reason.
    browser.goto(&format!("{base}/rollouts")).unwrap();
    assert!(browser.url().unwrap().ends_with("/login"));
    browser.type_into("#token", "not-a-token").unwrap();
    browser.click("#login").unwrap();
    let refused = browser.text_when("#login-error", |_| true).unwrap();
    assert!(refused.contains("not valid"), "{refused}");

    browser
        .type_into("#token", c.admin_token().unwrap().trim())
        .unwrap();
    browser.click("#login").unwrap();
    browser
        .text_when("#operator", |t| t == "admin (admin)")
        .unwrap();
    assert_eq!(browser.url().unwrap(), format!("{base}/"));

    // The fleet: each role's hosts, online, and versions.
    let prod = browser.text("#installation-prod").unwrap();
    for expected in ["server", "web", "client", V931] {
        assert!(prod.contains(expected), "{expected} in {prod}");
    }
    let clients = browser.text("#installation-prod tr.role-client").unwrap();
    assert!(clients.starts_with("client 6 6"), "{clients}");
    assert!(browser
        .text("#latest")
        .unwrap()
        .starts_with("Latest release in the catalogue: "));

    // Hosts, filtered with the form.
    browser.goto(&format!("{base}/hosts?role=client")).unwrap();
    assert_eq!(browser.text("#host-count").unwrap(), "6 hosts.");
    browser.type_into("input[name=q]", "cl-00").unwrap();
    browser.click("form.filters button").unwrap();
    // The page before the click says the same count: wait for the new one.
    let arrived = |query: &str| {
        wait_for("the filtered page", Duration::from_secs(20), || {
            Ok(browser.url()?.contains(query).then_some(()))
        })
        .unwrap();
    };
    arrived("q=cl-00");
    browser
        .text_when("#host-count", |t| t == "6 hosts.")
        .unwrap();
    browser.type_into("input[name=q]", "cl-003").unwrap();
    browser.click("form.filters button").unwrap();
    arrived("q=cl-003");
    browser
        .text_when("#host-count", |t| t == "1 host.")
        .unwrap();
    assert!(browser.text("#hosts").unwrap().contains("cl-003"));
    browser.goto(&format!("{base}/hosts")).unwrap();
    browser
        .screenshot(&shots.join("dashboard-hosts.png"))
        .unwrap();

    // A plan with its findings.
    browser.goto(&format!("{base}/plan")).unwrap();
    browser.type_into("#plan-to", V263).unwrap();
    browser.click("#plan-submit").unwrap();
    browser
        .text_when("#plan-verdict", |t| t == "can start")
        .unwrap();
    let findings = browser.text("#findings").unwrap();
    assert!(
        findings.contains("acknowledge") && findings.contains("--ack breaking"),
        "{findings}"
    );
    browser
        .screenshot(&shots.join("dashboard-plan.png"))
        .unwrap();

    // A rollout where one client's installer fails (within the threshold).
    std::fs::write(fleet.clients[3].dir.join("fail"), "43").unwrap();
    c.rollout_start(&["--error-threshold", "1"]).unwrap();
    browser.goto(&format!("{base}/rollouts")).unwrap();
    browser.click("#rollouts a").unwrap();
    browser.text_when("#rollout-state", |_| true).unwrap();
    assert!(browser.url().unwrap().contains("/rollouts/"));
    // The page is never reloaded: this mark survives only if htmx updates
    // it in place.
    browser
        .run("window.tierwiseMark = 'kept'; return null;")
        .unwrap();
    let mut running_shot = false;
    wait_for("the page to show the end", Duration::from_secs(120), || {
        let state = browser.text("#rollout-state")?;
        if state == "running" && !running_shot && browser.exists(".phase-current")? {
            let progress = browser.text("#phases")?;
            if progress.contains("clients") && browser.exists("article.failure")? {
                browser.screenshot(&shots.join("dashboard-rollout-running.png"))?;
                running_shot = true;
            }
        }
        Ok(matches!(
            state.as_str(),
            "completed" | "completed_with_failures" | "failed" | "aborted"
        )
        .then_some(state))
    })
    .unwrap();
    // The client that failed keeps its old version: no clean completion.
    assert_eq!(
        browser.text("#rollout-state").unwrap(),
        "completed_with_failures"
    );
    assert_eq!(
        browser.run("return window.tierwiseMark;").unwrap(),
        "kept",
        "the page was reloaded instead of updated"
    );
    let phases = browser.text("#phases").unwrap();
    for phase in ["backup", "server", "databases", "web", "clients wave"] {
        assert!(phases.contains(phase), "{phase} in {phases}");
    }
    let failure = browser.text("article.failure").unwrap();
    assert!(
        failure.contains(&fleet.clients[3].host_id)
            && failure.contains("exit code 43")
            && failure.contains("installer error 43"),
        "{failure}"
    );
    // Once it ended the page stops asking.
    assert!(!browser.exists("#live[hx-get]").unwrap());
    browser
        .screenshot(&shots.join("dashboard-rollout.png"))
        .unwrap();

    // Everything the pages loaded came from the controller itself.
    let resources = browser
        .run("return performance.getEntriesByType('resource').map(e => e.name);")
        .unwrap();
    for url in resources.as_array().unwrap() {
        assert!(
            url.as_str().unwrap().starts_with(&format!("{base}/")),
            "{url}"
        );
    }

    // The fleet now shows the new version; logging out ends the session.
    browser.goto(&format!("{base}/")).unwrap();
    let clients = browser.text("#installation-prod tr.role-client").unwrap();
    assert!(
        clients.contains(&format!("{V931} 1")) && clients.contains(&format!("{V263} 5")),
        "{clients}"
    );
    browser
        .screenshot(&shots.join("dashboard-fleet.png"))
        .unwrap();
    browser.click("form.who button").unwrap();
    wait_for("the login page", Duration::from_secs(10), || {
        Ok(browser.url()?.ends_with("/login").then_some(()))
    })
    .unwrap();
    browser.goto(&format!("{base}/hosts")).unwrap();
    assert!(browser.url().unwrap().ends_with("/login"));
    let audit = c.cli(&["audit"]).unwrap();
    assert!(audit.contains("ui login"), "{audit}");
}
