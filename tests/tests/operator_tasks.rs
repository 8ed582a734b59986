//! Operator tasks end to end, with a real controller and real agents: a
//! step of the vendor's procedure that the server's agent has no command
//! for (the Server Manager's buttons) makes the rollout wait for a person,
//! tell them what to do, and check what the agents report before it goes
//! on; the server's unit is never split by an approval; the server is never
//! updated on a stale backup.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use anyhow::Result;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use tierwise_e2e::{catalogue_path, set_file, wait_for, Agent, Controller, Plays, V263, V931};

const V264: &str = "26.4.10.34111";

/// `wait_for`, keeping what was waited for.
fn until<T>(what: &str, limit: Duration, check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    Ok(wait_for(what, limit, check)?.0)
}

/// A controller with a catalogue and licence, a server at `server_at` with
/// the stand-in installers and one client.
fn site(
    root: &Path,
    server_at: &str,
    databases: Vec<(&'static str, bool, &'static str)>,
) -> Result<(Controller, Agent, Agent)> {
    let controller = Controller::start(&root.join("controller"), "127.0.0.1:0")?;
    let url = controller.url();
    let order = root.join("order.log");
    let mut server = Agent::start(root, &url, "srv-01", Plays::Server(databases), server_at)?;
    server.with_installers(&order, "0.1")?;
    let mut client = Agent::start(root, &url, "cl-01", Plays::Client, server_at)?;
    client.with_installers(&order, "0.1")?;
    for host in ["srv-01", "cl-01"] {
        controller.wait_online(host, true, Duration::from_secs(20))?;
    }
    controller.cli(&["releases", "import", &catalogue_path()])?;
    controller.license("prod")?;
    Ok((controller, server, client))
}

fn plan(controller: &Controller, to: &str) -> Result<Value> {
    Ok(serde_json::from_str(&controller.cli(&[
        "rollout",
        "plan",
        "--installation",
        "prod",
        "--to",
        to,
        "--json",
    ])?)?)
}

fn state_is(controller: &Controller, state: &str) -> Result<Option<Value>> {
    let status = controller.rollout_status()?;
    Ok((status["state"] == state).then_some(status))
}

fn task<'a>(status: &'a Value, kind: &str) -> &'a Value {
    status["tasks"]
        .as_array()
        .and_then(|tasks| tasks.iter().find(|t| t["kind"] == kind))
        .unwrap_or(&Value::Null)
}

/// Waits until the server agent reports its commands (its probe runs every
/// second): what the plan sees must be what the agent has.
fn reports_commands(controller: &Controller) -> Result<()> {
    controller.wait_for_planned_task(V263)
}

#[test]
fn a_reactivation_task_holds_every_later_step_until_done_and_verified() -> Result<()> {
    let root = tempfile::tempdir()?;
    let (controller, mut server, client) = site(root.path(), V931, vec![("PSDB", true, V931)])?;
    server.without_action("reactivate_databases")?;
    controller.wait_online("srv-01", true, Duration::from_secs(20))?;
    reports_commands(&controller)?;

    // The plan names the task, the host, the database and the button.
    let planned = plan(&controller, V263)?;
    let tasks = planned["tasks"].as_array().cloned().unwrap_or_default();
    assert_eq!(tasks.len(), 1, "{planned:#}");
    assert_eq!(tasks[0]["kind"], "reactivate_databases");
    assert_eq!(tasks[0]["host_id"], "srv-01");
    assert_eq!(tasks[0]["observable"], true);
    let instructions = tasks[0]["instructions"].as_str().unwrap_or_default();
    assert!(
        instructions.contains("PSDB (patch level 9.3.1.33994)")
            && instructions.contains("ribbon")
            && instructions.contains(V263),
        "{instructions}"
    );
    assert_eq!(planned["blocked"], false);
    let text = controller.cli(&["rollout", "plan", "--installation", "prod", "--to", V263])?;
    assert!(text.contains("Operator tasks (1)"), "{text}");
    assert!(
        text.contains("OPERATOR TASK (reactivate_databases)"),
        "{text}"
    );

    // A breaking release: without the task the clients would follow at
    // once. The rollout waits at the task instead, and nothing goes past.
    controller.rollout_start(&[])?;
    let status = until(
        "the rollout to wait for an operator",
        Duration::from_secs(30),
        || state_is(&controller, "waiting_for_operator"),
    )?;
    let open = task(&status, "reactivate_databases");
    assert_eq!(open["state"], "open", "{status:#}");
    let id = open["id"].as_str().unwrap_or_default().to_owned();
    let rollout = status["id"].as_str().unwrap_or_default().to_owned();
    assert!(
        status["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&id) && r.contains("out of service")),
        "{status:#}"
    );
    assert!(
        open["instructions"]
            .as_str()
            .is_some_and(|i| i.contains(&format!("tierwise rollout done {rollout} {id}"))),
        "{open:#}"
    );
    let text = controller.cli(&["rollout", "status"])?;
    assert!(text.contains("waiting for operator"), "{text}");
    assert!(
        text.contains(&format!("{id} reactivate_databases on srv-01: OPEN")),
        "{text}"
    );
    // The server itself was updated; the client was not touched, and stays
    // untouched while the task is open.
    assert_eq!(server.installs(), 1);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        client.installs(),
        0,
        "no client step while a server task is open"
    );
    assert_eq!(
        controller.rollout_status()?["state"],
        "waiting_for_operator"
    );

    // `done` too early for the agents: the database still reports inactive
    // at the old patch level, so the rollout checks and waits.
    let said = controller.cli(&[
        "rollout",
        "done",
        &rollout,
        &id,
        "--note",
        "ribbon button pressed",
    ])?;
    assert!(
        said.contains(&format!("Task {id} of rollout {rollout} is done")),
        "{said}"
    );
    let status = until("the task to count as done", Duration::from_secs(10), || {
        let status = controller.rollout_status()?;
        Ok((task(&status, "reactivate_databases")["state"] == "done").then_some(status))
    })?;
    let done = task(&status, "reactivate_databases");
    assert_eq!(done["note"], "ribbon button pressed");
    assert!(
        done["done_by"].as_str().is_some_and(|by| !by.is_empty()),
        "{done:#}"
    );
    assert!(done["done_at"].is_string(), "{done:#}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        client.installs(),
        0,
        "not past a task the agents do not show"
    );

    // The person really reactivated it: the agent reports it, and the
    // next phase goes out.
    let asked = Instant::now();
    set_file(
        &server.dir.join("databases.json"),
        &format!("[{{\"name\": \"PSDB\", \"active\": true, \"patch_level\": \"{V263}\"}}]"),
    )?;
    until("the client phase to start", Duration::from_secs(30), || {
        Ok((client.installs() > 0).then_some(()))
    })?;
    println!(
        "from the agent's report of the reactivation to the client's install: {} ms",
        asked.elapsed().as_millis()
    );
    let status = until("the rollout to complete", Duration::from_secs(30), || {
        state_is(&controller, "completed")
    })?;
    assert_eq!(task(&status, "reactivate_databases")["state"], "verified");
    let audit = controller
        .audit_entry("rollout task done")?
        .unwrap_or(Value::Null);
    assert!(
        audit["details"]
            .as_str()
            .is_some_and(|d| d.contains(&id) && d.contains("ribbon button pressed")),
        "{audit:#}"
    );
    assert!(controller.audit_entry("rollout task open")?.is_some());
    Ok(())
}

#[test]
fn without_a_databases_probe_a_reactivation_proceeds_on_done_alone() -> Result<()> {
    let root = tempfile::tempdir()?;
    let (controller, mut server, client) = site(root.path(), V931, vec![])?;
    server.without_action("reactivate_databases")?;
    controller.wait_online("srv-01", true, Duration::from_secs(20))?;
    reports_commands(&controller)?;
    let planned = plan(&controller, V263)?;
    let planned_task = &planned["tasks"][0];
    assert_eq!(planned_task["kind"], "reactivate_databases");
    assert_eq!(planned_task["observable"], false, "{planned:#}");
    assert!(
        planned_task["verification"]
            .as_str()
            .is_some_and(|v| v.contains("`done` alone")),
        "{planned_task:#}"
    );
    // No acknowledgement of unverifiable databases any more: a task instead.
    assert!(planned["acks_required"]
        .as_array()
        .is_some_and(|a| !a.iter().any(|x| x == "unverified-databases")));

    controller.rollout_start(&[])?;
    let status = until(
        "the rollout to wait for an operator",
        Duration::from_secs(30),
        || state_is(&controller, "waiting_for_operator"),
    )?;
    let rollout = status["id"].as_str().unwrap_or_default().to_owned();
    // Unknown names and agents' steps are refused, naming the tasks.
    let refused = controller.cli_output(&["rollout", "done", &rollout, "backup"])?;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("has no task `backup`"), "{stderr}");
    assert_eq!(client.installs(), 0);
    // By its kind: the rollout's only reactivation. Nothing can show it,
    // so `done` alone lets the next phase go.
    let said = Instant::now();
    controller.cli(&["rollout", "done", &rollout, "reactivate_databases"])?;
    until("the client's install", Duration::from_secs(30), || {
        Ok((client.runs().iter().any(|l| l.contains(" install "))).then_some(()))
    })?;
    println!(
        "from `rollout done` to the next phase's install running on its host: {} ms",
        said.elapsed().as_millis()
    );
    let status = until("the rollout to complete", Duration::from_secs(30), || {
        state_is(&controller, "completed")
    })?;
    assert_eq!(task(&status, "reactivate_databases")["state"], "verified");
    assert_eq!(client.installs(), 1);
    Ok(())
}

#[test]
fn approvals_never_split_the_install_from_the_reactivation() -> Result<()> {
    let root = tempfile::tempdir()?;
    let (controller, server, _client) = site(root.path(), V263, vec![("PSDB", true, V263)])?;
    let start = controller.cli_output(&[
        "rollout",
        "start",
        "--installation",
        "prod",
        "--to",
        V264,
        "--ack-server-manager-password",
        "--ack",
        "changelog",
        "--approve-phases",
    ])?;
    assert!(
        start.status.success(),
        "{}",
        String::from_utf8_lossy(&start.stderr)
    );
    let reactivated = || server.runs().iter().any(|l| l.contains(" reactivate "));
    let installed = || server.installs() > 0;
    // After the backup: asked before the server's unit.
    let waiting = |what: &str| {
        until(what, Duration::from_secs(30), || {
            state_is(&controller, "waiting_for_approval")
        })
    };
    let first = waiting("the approval before the server")?;
    assert_eq!(first["current_phase"], 1, "{first:#}");
    assert!(!installed());
    let id = first["id"].as_str().unwrap_or_default().to_owned();
    controller.cli(&["rollout", "approve", &id])?;
    // The next approval comes only after the databases are reactivated.
    let second = until(
        "the approval after the unit",
        Duration::from_secs(30),
        || {
            let status = controller.rollout_status()?;
            Ok(
                (status["state"] == "waiting_for_approval" && status["current_phase"] != 1)
                    .then_some(status),
            )
        },
    )?;
    assert!(installed() && reactivated(), "{second:#}");
    let phase = second["current_phase"].as_u64().unwrap_or(0) as usize;
    assert_ne!(second["phases"][phase]["kind"], "databases", "{second:#}");
    Ok(())
}

#[test]
fn a_backup_older_than_max_backup_age_is_taken_again_before_the_server() -> Result<()> {
    let root = tempfile::tempdir()?;
    let (controller, server, _client) = site(root.path(), V931, vec![("PSDB", true, V931)])?;
    controller.rollout_start(&["--approve-phases", "--max-backup-age", "10s"])?;
    let first = until(
        "the approval after the backup",
        Duration::from_secs(30),
        || state_is(&controller, "waiting_for_approval"),
    )?;
    let id = first["id"].as_str().unwrap_or_default().to_owned();
    let backups = || {
        server
            .runs()
            .iter()
            .filter(|l| l.contains(" backup "))
            .count()
    };
    assert_eq!(backups(), 1);
    // The approval comes late: the backup is older than allowed.
    std::thread::sleep(Duration::from_secs(11));
    controller.cli(&["rollout", "approve", &id])?;
    let halted = until(
        "the stale backup to halt the rollout",
        Duration::from_secs(20),
        || state_is(&controller, "failed"),
    )?;
    assert!(
        halted["reason"]
            .as_str()
            .is_some_and(|r| r.contains("--max-backup-age")),
        "{halted:#}"
    );
    assert_eq!(halted["current_phase"], 0, "back in the backup phase");
    assert_eq!(server.installs(), 0, "the server was not touched");
    assert!(
        !server.runs().iter().any(|l| l.contains(" stop ")),
        "its services were not stopped"
    );
    // Resume takes a new backup; approved at once, the server goes ahead.
    controller.cli(&["rollout", "resume", &id])?;
    until("a new backup", Duration::from_secs(20), || {
        Ok((backups() == 2).then_some(()))
    })?;
    until(
        "the approval after the new backup",
        Duration::from_secs(20),
        || state_is(&controller, "waiting_for_approval"),
    )?;
    controller.cli(&["rollout", "approve", &id])?;
    until("the server's install", Duration::from_secs(30), || {
        Ok((server.installs() == 1).then_some(()))
    })?;
    Ok(())
}

/// Writes a Web Application package: its `version.txt` (what the harness's
/// web probe reads) and an `index.html` naming who it was made for.
fn web_package(path: &Path, version: &str, made_for: &str) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path)?);
    for (name, text) in [
        ("version.txt", format!("{version}\n")),
        (
            "index.html",
            format!("<!doctype html><title>{made_for}</title>"),
        ),
    ] {
        zip.start_file(name, zip::write::SimpleFileOptions::default())?;
        zip.write_all(text.as_bytes())?;
    }
    zip.finish()?;
    Ok(())
}

#[test]
fn a_web_application_generated_mid_rollout_reaches_each_kind_of_web_server() -> Result<()> {
    let root = tempfile::tempdir()?;
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0")?;
    let url = controller.url();
    let order = root.path().join("order.log");
    let mut server = Agent::start(
        root.path(),
        &url,
        "srv-01",
        Plays::Server(vec![("PSDB", true, V931)]),
        V931,
    )?;
    server.with_installers(&order, "0.1")?;
    // The Server Manager saves what it generates here, a folder per kind.
    let output = root.path().join("webapp-out");
    let config = std::fs::read_to_string(&server.config)?;
    let config = config.replacen(
        "\n[component.actions]",
        &format!(
            "web_app_output = {:?}\n\n[component.actions]",
            output.display().to_string()
        ),
        1,
    );
    set_file(&server.config, &config)?;
    server.restart()?;
    let apache = Agent::start(
        root.path(),
        &url,
        "web-apache",
        Plays::Web { websocket: true },
        V931,
    )?;
    let mut iis = Agent::start(
        root.path(),
        &url,
        "web-iis",
        Plays::Web { websocket: true },
        V931,
    )?;
    let config =
        std::fs::read_to_string(&iis.config)?.replace("server = \"apache\"", "server = \"iis\"");
    set_file(&iis.config, &config)?;
    iis.restart()?;
    for host in ["srv-01", "web-apache", "web-iis"] {
        controller.wait_online(host, true, Duration::from_secs(20))?;
    }
    controller.cli(&["releases", "import", &catalogue_path()])?;
    controller.license("prod")?;

    // Neither web host has a package of the target, nor the controller:
    // the plan says who makes them, and is not "Ready".
    let planned = until("the web hosts to report", Duration::from_secs(20), || {
        let planned = plan(&controller, V263)?;
        Ok(planned["tasks"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["kind"] == "generate_web_app"))
            .then_some(planned))
    })?;
    let task_plan = planned["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["kind"] == "generate_web_app"))
        .cloned()
        .unwrap_or_default();
    let instructions = task_plan["instructions"].as_str().unwrap_or_default();
    assert!(
        instructions.contains("iis and apache")
            && instructions.contains(&output.display().to_string()),
        "{instructions}"
    );
    let text = controller.cli(&["rollout", "plan", "--installation", "prod", "--to", V263])?;
    assert!(!text.contains("Ready: nothing blocks"), "{text}");
    assert!(text.contains("generate_web_app"), "{text}");

    controller.rollout_start(&[])?;
    let status = until(
        "the rollout to wait for the Web Application",
        Duration::from_secs(30),
        || {
            let status = controller.rollout_status()?;
            Ok((status["state"] == "waiting_for_operator"
                && task(&status, "generate_web_app")["state"] == "open")
                .then_some(status))
        },
    )?;
    let rollout = status["id"].as_str().unwrap_or_default().to_owned();
    assert!(
        !apache.runs().iter().any(|l| l.contains("deploy")),
        "nothing deployed before the package exists"
    );

    // The person generates one package per kind into the output folder;
    // the server's agent hands them over.
    web_package(
        &output.join("iis").join("PSWebApp-IIS.zip"),
        V263,
        "made for IIS",
    )?;
    web_package(
        &output.join("apache").join("PSWebApp-Apache.zip"),
        V263,
        "made for Apache",
    )?;
    until(
        "both packages at the controller",
        Duration::from_secs(30),
        || {
            let audit: Value = serde_json::from_str(&controller.cli(&["audit", "--json"])?)?;
            let handed: Vec<Value> = audit
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["action"] == "web package add" && e["actor"] == "agent srv-01")
                .cloned()
                .collect();
            Ok((handed.len() == 2).then_some(()))
        },
    )?;
    // An operator may hand one over too: per kind, admin only, audited.
    let nginx = root.path().join("PSWebApp-nginx.zip");
    web_package(&nginx, V263, "made for nginx")?;
    let nginx = nginx.display().to_string();
    let added = controller.cli(&[
        "artifacts",
        "add",
        &nginx,
        "--release",
        V263,
        "--component",
        "web",
        "--web-server",
        "nginx",
    ])?;
    assert!(added.contains("for nginx web servers"), "{added}");
    let wrong = controller.cli_output(&[
        "artifacts",
        "add",
        &nginx,
        "--release",
        V263,
        "--component",
        "client",
        "--web-server",
        "iis",
    ])?;
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("--web-server goes with --component web"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    controller.cli(&["rollout", "done", &rollout, "generate_web_app"])?;
    let status = until("the rollout to complete", Duration::from_secs(60), || {
        state_is(&controller, "completed")
    })?;
    assert_eq!(task(&status, "generate_web_app")["state"], "verified");
    let index = |agent: &Agent| {
        std::fs::read_to_string(agent.dir.join("docroot").join("index.html")).unwrap_or_default()
    };
    assert!(index(&iis).contains("made for IIS"), "{}", index(&iis));
    assert!(
        index(&apache).contains("made for Apache"),
        "{}",
        index(&apache)
    );
    Ok(())
}
