//! Notifications with real processes: a real HTTP receiver started here,
//! subscribed with a secret, receives a rollout's events once each, in
//! order, signed; a receiver that is down gets them when it is back;
//! `notify test`, list, remove, bad input and roles.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tierwise_e2e::{
    catalogue_path, wait_for, Agent, Controller, Database, Fleet, FleetOptions, Plays, V263, V931,
};

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Received {
    event: Value,
    received_ms: i64,
    signature_valid: bool,
    timestamp_fresh: bool,
}

type Inbox = Arc<Mutex<Vec<Received>>>;

/// Checks the signature as a receiver would, with ring directly.
fn verify(headers: &HeaderMap, body: &[u8]) -> (bool, bool) {
    let timestamp = headers
        .get("x-tierwise-timestamp")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let signature = headers
        .get("x-tierwise-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .unwrap_or_default();
    let bytes: Vec<u8> = (0..signature.len() / 2)
        .filter_map(|i| u8::from_str_radix(&signature[2 * i..2 * i + 2], 16).ok())
        .collect();
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let valid = bytes.len() == 32 && ring::hmac::verify(&key, &message, &bytes).is_ok();
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|t| (now_ms() / 1000 - t).abs() <= 300);
    (valid, fresh)
}

async fn hook(
    State(inbox): State<Inbox>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let (signature_valid, timestamp_fresh) = verify(&headers, &body);
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    inbox.lock().unwrap().push(Received {
        event,
        received_ms: now_ms(),
        signature_valid,
        timestamp_fresh,
    });
    StatusCode::NO_CONTENT
}

/// A webhook receiver on 127.0.0.1:`port` (0: any), running until the
/// returned handle is aborted. Returns its port.
fn receive(
    runtime: &tokio::runtime::Runtime,
    port: u16,
    inbox: &Inbox,
) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(inbox.clone());
    let server = runtime.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, server)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Subscribes the receiver on `port` to `events` (all), signed.
fn subscribe(c: &Controller, dir: &std::path::Path, port: u16, events: &str) -> anyhow::Result<()> {
    let secret = dir.join("hook.secret");
    std::fs::write(&secret, format!("{SECRET}\n"))?;
    c.cli(&[
        "notify",
        "add",
        "hook",
        "--url",
        &format!("http://127.0.0.1:{port}/hook"),
        "--secret-file",
        secret.to_str().unwrap(),
        "--events",
        events,
    ])?;
    Ok(())
}

/// The events received, leaving out hosts going offline other than
/// `offline` (on a loaded machine any agent may miss three heartbeats).
fn events(inbox: &Inbox, offline: Option<&str>) -> Vec<String> {
    inbox
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.event["event"] != "host.offline" || r.event["host"].as_str() == offline)
        .map(|r| r.event["event"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Waits until the receiver holds `expected` (no more, no less).
fn wait_events(
    inbox: &Inbox,
    expected: &[&str],
    offline: Option<&str>,
    limit: u64,
) -> anyhow::Result<Vec<Received>> {
    let result = wait_for(
        &format!("events {expected:?}"),
        Duration::from_secs(limit),
        || Ok((events(inbox, offline).len() >= expected.len()).then_some(())),
    );
    let got = events(inbox, offline);
    result.map_err(|e| anyhow::anyhow!("{e}; received {got:?}"))?;
    // A moment for anything that should not come (a second copy).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        events(inbox, offline),
        expected,
        "each event once, in order"
    );
    let received: Vec<Received> = inbox
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.event["event"] != "host.offline" || r.event["host"].as_str() == offline)
        .cloned()
        .collect();
    for r in &received {
        assert!(r.signature_valid, "signature valid: {}", r.event);
        assert!(r.timestamp_fresh, "timestamp fresh: {}", r.event);
        assert_eq!(r.event["version"], 1);
    }
    Ok(received)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn wait_state(c: &Controller, state: &str) -> anyhow::Result<()> {
    wait_for(&format!("rollout {state}"), Duration::from_secs(60), || {
        Ok((c.rollout_status()?["state"] == state).then_some(()))
    })?;
    Ok(())
}

#[test]
fn a_rollout_s_events_arrive_once_in_order_and_signed() -> anyhow::Result<()> {
    let runtime = runtime();
    let inbox = Inbox::default();
    let (port, _server) = receive(&runtime, 0, &inbox);
    let fleet = Fleet::start(&FleetOptions::default())?;
    let c = &fleet.controller;
    let rollout_events =
        "rollout.started,rollout.waiting_for_approval,rollout.waiting_for_operator,\
                          rollout.halted,rollout.completed,rollout.aborted";
    subscribe(c, fleet.root.path(), port, rollout_events)?;
    // cl-001's install fails once (exit 3): the wave halts at threshold 0.
    std::fs::write(fleet.clients[0].dir.join("fail"), "3")?;
    c.rollout_start(&[
        "--approve-phases",
        "--client-waves",
        "100%",
        "--error-threshold",
        "0",
    ])?;
    wait_state(c, "waiting_for_approval")?;
    c.cli(&["rollout", "approve", "r1"])?;
    wait_state(c, "failed")?;
    c.cli(&["rollout", "resume", "r1"])?;
    wait_state(c, "completed")?;
    let received = wait_events(
        &inbox,
        &[
            "rollout.started",
            "rollout.waiting_for_approval",
            "rollout.halted",
            "rollout.completed",
        ],
        None,
        30,
    )?;
    let halted = &received[2].event;
    assert_eq!(halted["rollout"]["id"], "r1");
    assert_eq!(halted["rollout"]["state"], "failed");
    assert_eq!(halted["failed_hosts"], serde_json::json!(["cl-001"]));
    assert_eq!(halted["hosts"][0]["host"], "cl-001");
    assert_eq!(halted["hosts"][0]["exit_code"], 3);
    let done = &received[3].event;
    assert_eq!(done["rollout"]["state"], "completed");
    assert!(
        done["failed_hosts"].as_array().is_some_and(Vec::is_empty),
        "{done}"
    );

    // The delay from each event's commit to its receipt.
    let mut delays: Vec<i64> = received
        .iter()
        .map(|r| r.received_ms - r.event["at_ms"].as_i64().unwrap())
        .collect();
    delays.sort_unstable();
    println!(
        "webhook delay (commit → received) over {} events: p50 {} ms, p99 {} ms",
        delays.len(),
        percentile(&delays, 0.5),
        percentile(&delays, 0.99)
    );
    let list: Value = serde_json::from_str(&c.cli(&["notify", "list", "--json"])?)?;
    assert_eq!(list[0]["delivered"], 4);
    assert_eq!(list[0]["pending"], 0);
    Ok(())
}

#[test]
fn a_receiver_that_was_down_gets_the_events_afterwards_in_order() -> anyhow::Result<()> {
    let runtime = runtime();
    let inbox = Inbox::default();
    // A port that refuses connections until the receiver starts on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut fleet = Fleet::start(&FleetOptions::default())?;
    let c = &fleet.controller;
    subscribe(c, fleet.root.path(), port, "all")?;
    c.rollout_start(&["--approve-phases"])?;
    wait_state(c, "waiting_for_approval")?;
    // A client with steps to come goes away during the rollout.
    fleet.clients[1].process.kill();
    let gone = fleet.clients[1].host_id.clone();
    wait_for("the offline event queued", Duration::from_secs(30), || {
        let list: Value = serde_json::from_str(&c.cli(&["notify", "list", "--json"])?)?;
        Ok((list[0]["pending"].as_i64() >= Some(3)).then_some(list))
    })?;
    c.cli(&["rollout", "abort", "r1"])?;
    let list: Value = serde_json::from_str(&c.cli(&["notify", "list", "--json"])?)?;
    assert!(
        list[0]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot connect"),
        "{list}"
    );
    assert_eq!(list[0]["delivered"], 0);
    let (_, _server) = receive(&runtime, port, &inbox);
    let received = wait_events(
        &inbox,
        &[
            "rollout.started",
            "rollout.waiting_for_approval",
            "host.offline",
            "rollout.aborted",
        ],
        Some(&gone),
        40,
    )?;
    assert_eq!(received[2].event["host"], gone.as_str());
    assert_eq!(received[2].event["rollout"]["id"], "r1");
    Ok(())
}

#[test]
fn subscriptions_are_admin_only_checked_and_never_show_their_secret() -> anyhow::Result<()> {
    let runtime = runtime();
    let inbox = Inbox::default();
    let (port, _server) = receive(&runtime, 0, &inbox);
    let dir = tempfile::tempdir()?;
    let c = Controller::start(&dir.path().join("controller"), "127.0.0.1:0")?;
    let url = format!("http://127.0.0.1:{port}/hook");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET)?;
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n")?;
    let refused = |args: &[&str], expected: &str| {
        let out = c.cli_output(args).unwrap();
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(said.contains(expected), "{args:?}: {said}");
        assert!(
            said.contains("nothing was changed") || expected.starts_with("no notification"),
            "{said}"
        );
    };
    let secret_arg = secret.to_str().unwrap();
    refused(
        &["notify", "add", "a", "--url", "ftp://x/y"],
        "is not a URL",
    );
    refused(
        &[
            "notify",
            "add",
            "a",
            "--url",
            &url,
            "--events",
            "rollout.halted,rollout.nope",
        ],
        "`rollout.nope` is not an event",
    );
    refused(
        &["notify", "add", "a", "--url", &url, "--format", "xml"],
        "not a format",
    );
    refused(
        &[
            "notify",
            "add",
            "a",
            "--url",
            &url,
            "--secret-file",
            "/nonexistent/s",
        ],
        "cannot read the secret file",
    );
    refused(
        &[
            "notify",
            "add",
            "a",
            "--url",
            &url,
            "--secret-file",
            empty.to_str().unwrap(),
        ],
        "is empty",
    );
    c.cli(&[
        "notify",
        "add",
        "ops",
        "--url",
        &url,
        "--secret-file",
        secret_arg,
        "--events",
        "rollout.halted",
        "--events",
        "rollout.completed",
    ])?;
    refused(&["notify", "add", "ops", "--url", &url], "exists already");
    refused(
        &["notify", "remove", "nope"],
        "no notification subscription `nope`",
    );
    refused(
        &["notify", "test", "nope"],
        "no notification subscription `nope`",
    );

    let text = c.cli(&["notify", "list"])?;
    assert!(
        text.contains("ops") && text.contains("rollout.halted,rollout.completed"),
        "{text}"
    );
    assert!(
        !text.contains(SECRET) && !text.contains("/hook"),
        "no secret, no path: {text}"
    );
    let list: Value = serde_json::from_str(&c.cli(&["notify", "list", "--json"])?)?;
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(1),
        "only the good one: {list}"
    );
    assert_eq!(list[0]["signed"], true);
    assert!(!list.to_string().contains(SECRET));

    // A test event goes out whatever --events says, signed.
    c.cli(&["notify", "test", "ops"])?;
    let received = wait_events(&inbox, &["test"], None, 10)?;
    assert!(received[0].event["summary"]
        .as_str()
        .unwrap()
        .contains("ops"));
    // With the audit chain's head, which `audit verify --expect` takes.
    let head = &received[0].event["audit_head"];
    let kept = format!(
        "{}:{}",
        head["seq"].as_i64().unwrap(),
        head["sha256"].as_str().unwrap()
    );
    assert!(c
        .cli(&["audit", "verify", "--expect", &kept])?
        .contains(&format!("The kept head {kept} is in the log")));

    // The Slack format: a message with the same facts, signed alike.
    c.cli(&[
        "notify",
        "add",
        "chat",
        "--url",
        &url,
        "--format",
        "slack",
        "--secret-file",
        secret_arg,
    ])?;
    c.cli(&["notify", "test", "chat"])?;
    let (slack, _) = wait_for("the Slack message", Duration::from_secs(10), || {
        let inbox = inbox.lock().unwrap();
        Ok(inbox.iter().find(|r| r.event["text"].is_string()).cloned())
    })?;
    assert!(slack.signature_valid);
    let text = slack.event["text"].as_str().unwrap();
    assert!(
        text.starts_with("*Test notification for subscription chat"),
        "{text}"
    );
    assert!(text.contains("_audit head "), "{text}");
    c.cli(&["notify", "remove", "chat"])?;

    let viewer = c.cli(&["operators", "add", "vera", "--role", "viewer"])?;
    let operator = c.cli(&["operators", "add", "otto", "--role", "operator"])?;
    for token in [viewer.trim(), operator.trim()] {
        for args in [
            &["notify", "list"][..],
            &["notify", "add", "x", "--url", &url][..],
            &["notify", "test", "ops"][..],
            &["notify", "remove", "ops"][..],
        ] {
            let out = c.cli_output_as(token, args)?;
            assert!(!out.status.success(), "{args:?} as a non-admin");
            let said = String::from_utf8_lossy(&out.stderr);
            assert!(said.contains("admin"), "{said}");
        }
    }
    c.cli(&["notify", "remove", "ops"])?;
    assert!(c
        .cli(&["notify", "list"])?
        .contains("No notification subscriptions"));
    let audit = c.cli(&["audit"])?;
    for action in ["notify add", "notify test", "notify remove"] {
        assert!(audit.contains(action), "{action}: {audit}");
    }
    assert!(!audit.contains(SECRET));
    Ok(())
}

#[test]
fn two_replicas_on_postgresql_send_each_event_once_in_order() -> anyhow::Result<()> {
    let Some(db) = Database::create()? else {
        return Ok(());
    };
    let runtime = runtime();
    let inbox = Inbox::default();
    let (port, _server) = receive(&runtime, 0, &inbox);
    let root = tempfile::tempdir()?;
    let data = root.path().join("controller");
    let flags = ["--database-url", db.url.as_str()];
    let first = Controller::start_with(&data, "127.0.0.1:0", &flags)?;
    let second = Controller::start_with(&data, "127.0.0.1:0", &flags)?;
    subscribe(&first, root.path(), port, "all")?;
    // Events queued through either replica; both senders compete for them.
    let count = 30;
    for i in 0..count {
        let through = if i % 2 == 0 { &first } else { &second };
        through.cli(&["notify", "test", "hook"])?;
    }
    let expected = vec!["test"; count];
    let received = wait_events(&inbox, &expected, None, 30)?;
    let ids: std::collections::BTreeSet<&str> = received
        .iter()
        .map(|r| r.event["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), count, "each event once");
    let committed: Vec<i64> = received
        .iter()
        .map(|r| r.event["at_ms"].as_i64().unwrap())
        .collect();
    assert!(committed.is_sorted(), "in order: {committed:?}");
    let mut delays: Vec<i64> = received
        .iter()
        .map(|r| r.received_ms - r.event["at_ms"].as_i64().unwrap())
        .collect();
    delays.sort_unstable();
    println!(
        "webhook delay with two replicas (commit → received) over {count} events: p50 {} ms, p99 {} ms",
        percentile(&delays, 0.5),
        percentile(&delays, 0.99)
    );
    let list: Value = serde_json::from_str(&second.cli(&["notify", "list", "--json"])?)?;
    assert_eq!(
        (list[0]["delivered"].as_u64(), list[0]["pending"].as_u64()),
        (Some(count as u64), Some(0))
    );
    Ok(())
}

#[test]
fn an_open_operator_task_is_announced_with_its_host() -> anyhow::Result<()> {
    let runtime = runtime();
    let inbox = Inbox::default();
    let (port, _server) = receive(&runtime, 0, &inbox);
    let root = tempfile::tempdir()?;
    let c = Controller::start(&root.path().join("controller"), "127.0.0.1:0")?;
    let order = root.path().join("order.log");
    let mut server = Agent::start(
        root.path(),
        &c.url(),
        "srv-01",
        Plays::Server(vec![("PSDB", true, V931)]),
        V931,
    )?;
    server.with_installers(&order, "0.1")?;
    // No command for the reactivation: a person does it.
    server.without_action("reactivate_databases")?;
    let mut client = Agent::start(root.path(), &c.url(), "cl-01", Plays::Client, V931)?;
    client.with_installers(&order, "0.1")?;
    for host in ["srv-01", "cl-01"] {
        c.wait_online(host, true, Duration::from_secs(20))?;
    }
    c.cli(&["releases", "import", &catalogue_path()])?;
    c.license("prod")?;
    c.wait_for_planned_task(V263)?;
    subscribe(
        &c,
        root.path(),
        port,
        "rollout.waiting_for_operator,rollout.aborted",
    )?;
    c.rollout_start(&[])?;
    let received = wait_events(&inbox, &["rollout.waiting_for_operator"], None, 30)?;
    let waiting = &received[0].event;
    assert_eq!(waiting["rollout"]["state"], "waiting_for_operator");
    assert_eq!(waiting["hosts"][0]["host"], "srv-01", "{waiting}");
    assert!(
        waiting["summary"]
            .as_str()
            .unwrap()
            .contains("waits for an operator task"),
        "{waiting}"
    );
    c.cli(&["rollout", "abort", "r1"])?;
    wait_events(
        &inbox,
        &["rollout.waiting_for_operator", "rollout.aborted"],
        None,
        10,
    )?;
    Ok(())
}
