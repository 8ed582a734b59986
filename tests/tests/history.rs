//! History that keeps every failure, with real processes: two clients fail
//! their install, the wave halts; an operator skips one and resumes, the
//! other succeeds on its retry. The rollout ends `completed_with_failures`,
//! and the failed attempts stay visible in `rollout status` (text and
//! JSON), `rollout list`, `hosts history`, the dashboard's host and rollout
//! pages (fetched over HTTPS with a real session), and the audit log names
//! the engine's halt and ending.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use anyhow::Context;
use serde_json::Value;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;
use tierwise_e2e::{wait_for, Controller, Fleet, FleetOptions, V263};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTPS request to the dashboard, trusting the controller's CA:
/// (status code, head, body).
fn https(c: &Controller, addr: &str, request: &str) -> anyhow::Result<(u16, String, String)> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(c.ca_certificate()?)?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost")?.to_owned();
    let connection = rustls::ClientConnection::new(Arc::new(config), name)?;
    let mut tls = rustls::StreamOwned::new(connection, std::net::TcpStream::connect(addr)?);
    tls.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    if let Err(error) = tls.read_to_end(&mut answer) {
        // A peer that closes without close_notify after the whole answer.
        anyhow::ensure!(
            error.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty(),
            "{error}"
        );
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP head")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status code")?;
    Ok((code, head.to_owned(), body.to_owned()))
}

/// Logs in to the dashboard with the admin's token: the session cookie.
fn login(c: &Controller, addr: &str) -> anyhow::Result<String> {
    let body = format!("token={}", c.admin_token()?);
    let (code, head, _) = https(
        c,
        addr,
        &format!(
            "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )?;
    anyhow::ensure!(code == 303 || code == 302, "login: {head}");
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie").then(|| {
                value
                    .trim()
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
        })
        .context("no session cookie")
}

fn page(c: &Controller, addr: &str, cookie: &str, path: &str) -> (u16, String) {
    let (code, _, body) = https(
        c,
        addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        ),
    )
    .unwrap();
    (code, body)
}

/// The metrics page (plain HTTP on `--metrics-listen`).
fn scrape(addr: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn state_is(c: &Controller, state: &str) -> anyhow::Result<Option<Value>> {
    let s = c.rollout_status()?;
    Ok((s["state"] == state).then_some(s))
}

#[test]
fn failures_stay_in_history_after_a_skip_and_a_retry() {
    let ui = format!("127.0.0.1:{}", free_port());
    let flag: &'static str = Box::leak(ui.clone().into_boxed_str());
    let metrics: &'static str = Box::leak(format!("127.0.0.1:{}", free_port()).into_boxed_str());
    let fleet = Fleet::start(&FleetOptions {
        controller_flags: vec!["--ui-listen", flag, "--metrics-listen", metrics],
        ..FleetOptions::default()
    })
    .unwrap();
    let c = &fleet.controller;
    let (skipped, retried) = (
        fleet.clients[0].host_id.clone(),
        fleet.clients[1].host_id.clone(),
    );
    // Both clients' installers fail once (exit 43 and 44).
    std::fs::write(fleet.clients[0].dir.join("fail"), "43").unwrap();
    std::fs::write(fleet.clients[1].dir.join("fail"), "44").unwrap();
    c.rollout_start(&["--client-waves", "100%", "--error-threshold", "0"])
        .unwrap();
    wait_for("both failures", Duration::from_secs(90), || {
        let s = c.rollout_status()?;
        let failed = s["failures"].as_array().map_or(0, Vec::len);
        Ok((s["state"] == "failed" && failed == 2).then_some(()))
    })
    .unwrap();

    // One is skipped, the rollout resumes, the other succeeds on its retry.
    c.cli(&["rollout", "skip", "r1", "--host", &skipped])
        .unwrap();
    c.cli(&["rollout", "resume", "r1"]).unwrap();
    let (done, _) = wait_for("completed with failures", Duration::from_secs(60), || {
        state_is(c, "completed_with_failures")
    })
    .unwrap();
    assert!(done["failures"].as_array().unwrap().is_empty(), "{done:#}");
    assert_eq!(done["skipped_hosts"], serde_json::json!([skipped]));
    let histories = done["step_histories"].as_array().unwrap();
    let of = |host: &str| {
        histories
            .iter()
            .find(|h| h["host_id"] == host)
            .cloned()
            .unwrap_or_else(|| panic!("{host} in {done:#}"))
    };
    let first = of(&skipped);
    assert_eq!(first["summary"], "failed, then skipped", "{first:#}");
    assert_eq!(first["recovery"], "failed_then_skipped");
    assert_eq!(first["attempts"][0]["exit_code"], 43);
    assert!(first["attempts"][0]["output_tail"]
        .as_str()
        .unwrap()
        .contains("installer error 43"));
    let second = of(&retried);
    assert_eq!(second["summary"], "failed, then succeeded on retry");
    assert_eq!(second["state"], "succeeded");
    assert_eq!(
        second["attempts"].as_array().unwrap().len(),
        1,
        "only the failed attempt: {second:#}"
    );
    assert_eq!(second["attempts"][0]["exit_code"], 44);

    let text = c.cli(&["rollout", "status"]).unwrap();
    for expected in [
        "completed with failures",
        &format!("on {skipped}: failed, then skipped"),
        &format!("on {retried}: failed, then succeeded on retry"),
        "attempt 1 failed, exit 43",
        "| installer error 44",
    ] {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }
    let list = c.cli(&["rollout", "list"]).unwrap();
    assert!(list.contains("completed_with_failures"), "{list}");
    let scraped = scrape(metrics);
    for series in [
        r#"tierwise_rollouts{state="completed_with_failures"} 1"#,
        r#"tierwise_rollouts{state="completed"} 0"#,
    ] {
        assert!(
            scraped.lines().any(|l| l == series),
            "{series} in\n{scraped}"
        );
    }

    // The host's history across rollouts, for a viewer too.
    let viewer = c
        .cli(&["operators", "add", "vera", "--role", "viewer"])
        .unwrap();
    let out = c
        .cli_output_as(viewer.trim(), &["hosts", "history", &retried, "--json"])
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    let step = &history["steps"][0];
    assert_eq!(
        (step["rollout_id"].as_str(), step["release"].as_str()),
        (Some("r1"), Some(V263)),
        "{history:#}"
    );
    assert_eq!(step["summary"], "failed, then succeeded on retry");
    let attempts = step["attempts"].as_array().unwrap();
    let results: Vec<(&str, i64)> = attempts
        .iter()
        .map(|a| {
            (
                a["result"].as_str().unwrap(),
                a["exit_code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(results, [("failed", 44), ("succeeded", 0)]);
    for field in ["started_at", "finished_at"] {
        let at = attempts[0][field].as_str().unwrap();
        assert!(at.ends_with('Z') && at.contains('T'), "{field}: {at}");
    }
    let text = c.cli(&["hosts", "history", &skipped]).unwrap();
    assert!(
        text.contains("install — failed, then skipped") && text.contains("exit 43"),
        "{text}"
    );
    let unknown = c.cli_output(&["hosts", "history", "nope"]).unwrap();
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no host `nope`"),
        "{unknown:?}"
    );

    // The engine's part in the audit log.
    let audit: Value = serde_json::from_str(&c.cli(&["audit", "--json"]).unwrap()).unwrap();
    let engine: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "engine" && e["subject"] == "r1")
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["details"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let actions: Vec<&str> = engine.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        ["rollout halted", "rollout completed with failures"],
        "{engine:?}"
    );
    assert!(
        engine[1].1.contains(&format!("skipped: {skipped}")),
        "{engine:?}"
    );

    // The dashboard: the host's page and the rollout's page say the same.
    let cookie = login(c, &ui).unwrap();
    let (code, html) = page(c, &ui, &cookie, &format!("/hosts/{skipped}"));
    assert_eq!(code, 200, "{html}");
    for expected in [
        "failed, then skipped",
        "exit code 43",
        "installer error 43",
        "href=\"/rollouts/r1\"",
        "id=\"host-components\"",
    ] {
        assert!(html.contains(expected), "{expected} in {html}");
    }
    let (code, html) = page(c, &ui, &cookie, "/hosts/nope");
    assert_eq!(code, 404, "{html}");
    assert!(html.contains("There is no host `nope`"), "{html}");
    let (code, html) = page(c, &ui, &cookie, "/rollouts/r1");
    assert_eq!(code, 200);
    for expected in [
        "completed_with_failures",
        "failed, then skipped",
        "failed, then succeeded on retry",
        "exit code 44",
    ] {
        assert!(html.contains(expected), "{expected} in {html}");
    }
    in_the_browser(c, &ui, &skipped);
}

/// The host page in headless Chromium, when it is here: what a person
/// sees, and the screenshot in `docs/` (with TIERWISE_UPDATE_SCREENSHOTS=1).
fn in_the_browser(c: &Controller, ui: &str, host: &str) {
    let Some((chromium, driver)) = tierwise_e2e::webdriver::tools_or_skip() else {
        return;
    };
    let browser = tierwise_e2e::webdriver::Browser::start(&chromium, &driver).unwrap();
    browser.goto(&format!("https://{ui}/login")).unwrap();
    browser
        .type_into("#token", c.admin_token().unwrap().trim())
        .unwrap();
    browser.click("#login").unwrap();
    browser.text_when("#operator", |t| !t.is_empty()).unwrap();
    browser.goto(&format!("https://{ui}/hosts/{host}")).unwrap();
    let history = browser
        .text_when("#host-history", |t| t.contains("failed, then skipped"))
        .unwrap();
    assert!(history.contains("exit code 43"), "{history}");
    assert_eq!(browser.text("#host-online").unwrap(), "online");
    browser
        .screenshot(&tierwise_e2e::webdriver::screenshot_dir().join("dashboard-host.png"))
        .unwrap();
}
