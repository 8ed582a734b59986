//! The CLI scripts cleanly, with real processes: `rollout status` and
//! `--watch` exit with a status that says how the rollout ended, off a
//! terminal `--watch` prints only what changed, Ctrl-C stops the watching
//! but not the rollout, `whoami --json` answers, and a refusal names the
//! command a person typed (the method stays in the `--json` error).

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use tierwise_e2e::{binary, wait_for, Controller, Fleet, FleetOptions};

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `tierwise … ARGS` as the first admin, running in the background with
/// its stdout sent line by line to the receiver.
fn spawn(c: &Controller, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(binary("tierwise"))
        .arg("--controller")
        .arg(c.url())
        .arg("--ca-cert")
        .arg(c.ca_path())
        .env("TIERWISE_TOKEN", c.admin_token().unwrap())
        .env_remove("TIERWISE_TOKEN_FILE")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    (child, lines)
}

fn first_line(lines: &mpsc::Receiver<String>) -> String {
    lines.recv_timeout(Duration::from_secs(30)).unwrap()
}

fn finished(mut child: Child) -> std::process::Output {
    let ((), _) = wait_for("the CLI to exit", Duration::from_secs(60), || {
        Ok(child.try_wait()?.map(|_| ()))
    })
    .unwrap();
    child.wait_with_output().unwrap()
}

/// A line `--watch` printed off a terminal: `TIME FACT`, TIME in RFC 3339.
fn fact(line: &str) -> &str {
    let (time, fact) = line.split_once(' ').unwrap_or_default();
    assert!(
        time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "no timestamp on {line:?}"
    );
    fact
}

#[test]
fn watching_a_rollout_exits_with_how_it_ended_and_prints_only_changes() -> anyhow::Result<()> {
    let fleet = Fleet::start(&FleetOptions::default())?;
    let c = &fleet.controller;
    // Both clients fail once: over the threshold of 1, the engine halts
    // the rollout (`failed`).
    for client in &fleet.clients {
        std::fs::write(client.dir.join("fail"), "3")?;
    }
    let started = c.rollout_start_output(&[
        "--client-waves",
        "100%",
        "--error-threshold",
        "1",
        "--watch",
    ])?;
    let said = String::from_utf8_lossy(&started.stdout).into_owned();
    assert_eq!(code(&started), Some(5), "{}", text(&started));
    let mut lines = said.lines();
    assert!(
        lines.next().unwrap().starts_with("Started rollout r1 "),
        "{said}"
    );
    // Off a terminal: one line per change, never the whole block again.
    let facts: Vec<&str> = lines.map(fact).collect();
    let mut unique = facts.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        facts.len(),
        "a line was printed twice:\n{said}"
    );
    assert!(
        facts[0].starts_with("rollout r1 (prod → 26.3.100.34058): running"),
        "{said}"
    );
    assert!(
        facts.contains(&"phase 1. backup (done): 1/1 done"),
        "{said}"
    );
    assert!(
        facts.iter().any(|f| f.starts_with("failed ")
            && f.ends_with("install on cl-001: `sh` exited with code 3")),
        "{said}"
    );
    assert!(
        facts.iter().any(|f| f.starts_with("rollout r1 (prod → 26.3.100.34058): failed — 2 of 2 client(s)")),
        "{said}"
    );
    assert!(!said.contains("Expected"), "{said}");

    // Without --watch, and with --json, the same status.
    let status = c.cli_output(&["rollout", "status"])?;
    assert_eq!(code(&status), Some(5), "{}", text(&status));
    let json = c.cli_output(&["rollout", "status", "r1", "--json"])?;
    assert_eq!(code(&json), Some(5));
    let document: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    assert_eq!(document["state"], "failed");
    // Watching a rollout that already ended says so at once.
    let watched = c.cli_output(&["rollout", "status", "--watch"])?;
    assert_eq!(code(&watched), Some(5), "{}", text(&watched));

    // Fixed (the stand-ins fail once): resumed, it completes: exit 0.
    c.cli(&["rollout", "resume", "r1"])?;
    let watched = c.cli_output(&["rollout", "status", "r1", "--watch", "--json"])?;
    assert_eq!(code(&watched), Some(0), "{}", text(&watched));
    let documents: Vec<serde_json::Value> = String::from_utf8(watched.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(documents.last().unwrap()["state"], "completed");
    let status = c.cli_output(&["rollout", "status"])?;
    assert_eq!(code(&status), Some(0), "{}", text(&status));
    Ok(())
}

#[test]
fn ctrl_c_stops_the_watching_not_the_rollout_and_abort_has_its_own_exit() -> anyhow::Result<()> {
    let fleet = Fleet::start(&FleetOptions {
        clients: 1,
        server_delay: "30",
        ..FleetOptions::default()
    })?;
    let c = &fleet.controller;
    c.rollout_start(&[])?;
    let (watching, lines) = spawn(c, &["rollout", "status", "--watch"]);
    assert!(first_line(&lines).contains("rollout r1 "));
    let interrupt = Command::new("kill")
        .args(["-INT", &watching.id().to_string()])
        .status()?;
    assert!(interrupt.success());
    let out = finished(watching);
    assert_eq!(code(&out), Some(130), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("Rollout r1 goes on on the controller"),
        "{said}"
    );
    let again = format!(
        "tierwise --controller {} --ca-cert {} rollout status r1 --watch",
        c.url(),
        c.ca_path().display()
    );
    assert!(said.contains(&again), "{said}");
    assert_eq!(c.rollout_status()?["state"], "running");

    // Aborted while someone watches: the watcher exits 6.
    let (watching, lines) = spawn(c, &["rollout", "status", "r1", "--watch"]);
    first_line(&lines);
    c.cli(&["rollout", "abort", "r1"])?;
    let out = finished(watching);
    assert_eq!(code(&out), Some(6), "{}", text(&out));
    assert_eq!(code(&c.cli_output(&["rollout", "status"])?), Some(6));
    Ok(())
}

#[test]
fn whoami_answers_in_json_and_a_refusal_names_the_command() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let c = Controller::start(root.path(), "127.0.0.1:0")?;
    let me: serde_json::Value = serde_json::from_str(&c.cli(&["whoami", "--json"])?)?;
    assert_eq!(me["role"], "admin");
    assert!(me["name"].as_str().is_some_and(|n| !n.is_empty()), "{me}");

    let viewer = c.cli(&["operators", "add", "vera", "--role", "viewer"])?;
    let viewer = viewer.trim();
    let me: serde_json::Value =
        serde_json::from_slice(&c.cli_output_as(viewer, &["whoami", "--json"])?.stdout)?;
    assert_eq!(me, serde_json::json!({"name": "vera", "role": "viewer"}));

    let refused = c.cli_output_as(
        viewer,
        &[
            "rollout",
            "start",
            "--installation",
            "prod",
            "--to",
            "26.3.100.34058",
        ],
    )?;
    assert_eq!(code(&refused), Some(1));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("rollout start needs the operator role; operator `vera` has the role viewer"),
        "{said}"
    );
    assert!(!said.contains("StartRollout"), "{said}");

    // With --json the method is kept, in a JSON error on stdout.
    let refused = c.cli_output_as(viewer, &["tokens", "list", "--json"])?;
    assert_eq!(code(&refused), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("tokens list needs the admin role"));
    let error: serde_json::Value = serde_json::from_slice(&refused.stdout)?;
    assert_eq!(error["error"]["method"], "ListTokens", "{error}");
    assert_eq!(error["error"]["code"], "permission_denied", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tokens list needs the admin role"),
        "{error}"
    );
    // The audit log keeps the method.
    let denied = c.audit_entry("denied")?.unwrap();
    assert!(denied.to_string().contains("ListTokens"), "{denied}");
    Ok(())
}
