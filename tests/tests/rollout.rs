//! Rollouts with real processes: the controller pushes typed steps, agents
//! run stand-in installers, phases advance only on reported results.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::time::Duration;
use tierwise_e2e::{wait_for, Agent, Controller, Fleet, FleetOptions, Plays, V263, V931};

fn fleet(clients: usize) -> anyhow::Result<Fleet> {
    Fleet::start(&FleetOptions {
        clients,
        ..FleetOptions::default()
    })
}

fn wait_state(
    controller: &Controller,
    state: &str,
    limit: u64,
) -> anyhow::Result<serde_json::Value> {
    let result = wait_for(
        &format!("rollout {state}"),
        Duration::from_secs(limit),
        || {
            let s = controller.rollout_status()?;
            Ok((s["state"] == state).then_some(s))
        },
    );
    match result {
        Ok((s, _)) => Ok(s),
        Err(error) => {
            let now = controller.cli(&["rollout", "status"]).unwrap_or_default();
            let log = controller.process.log_text();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            anyhow::bail!(
                "{error}\n{now}\ncontroller log:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        }
    }
}

#[test]
fn happy_path_in_vendor_order() -> anyhow::Result<()> {
    let fleet = fleet(4)?;
    let c = &fleet.controller;
    // Acknowledgements are required.
    let out = c.cli_output(&["rollout", "start", "--installation", "prod", "--to", V263])?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Every changelog crossed is named, with the breaking release's flag.
    assert!(
        stderr.contains("--ack breaking --ack changelog (changelogs of ")
            && stderr.contains("26.3.100.34058 (no changelog reference in the catalogue)) --ack server-manager-password"),
        "{stderr}"
    );

    let planned: serde_json::Value = serde_json::from_str(&c.cli(&[
        "rollout",
        "plan",
        "--installation",
        "prod",
        "--to",
        V263,
        "--client-waves",
        "50%,100%",
        "--json",
    ])?)?;
    let started = c.cli(&[
        "rollout",
        "start",
        "--installation",
        "prod",
        "--to",
        V263,
        "--ack-breaking",
        "--ack-server-manager-password",
        "--ack",
        "changelog",
        "--client-waves",
        "50%,100%",
    ])?;
    assert!(started.starts_with("Started rollout r1"), "{started}");
    // The plan and the rollout count the same steps, phase by phase.
    let count = |phases: &serde_json::Value, steps: &dyn Fn(&serde_json::Value) -> usize| {
        phases
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["kind"].as_str().unwrap().to_owned(), steps(p)))
            .filter(|(_, n)| *n > 0)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        count(&planned["phases"], &|p| p["steps"]
            .as_array()
            .unwrap()
            .len()),
        count(&c.rollout_status()?["phases"], &|p| usize::try_from(
            p["steps"].as_u64().unwrap()
        )
        .unwrap()),
    );
    let done = wait_state(c, "completed", 90)?;
    assert!(done["failures"].as_array().unwrap().is_empty());

    // Order from the installers' own log: backup, stop, install, start on
    // the server, then reactivation, then the clients.
    let order = std::fs::read_to_string(&fleet.order)?;
    let lines: Vec<&str> = order.lines().collect();
    assert_eq!(
        lines[..5],
        [
            "srv-01 backup ",
            "srv-01 stop ",
            &format!("srv-01 install {V263}"),
            "srv-01 start ",
            &format!("srv-01 reactivate {V263}"),
        ]
    );
    assert!(
        lines[5..]
            .iter()
            .all(|l| l.starts_with("cl-") && l.ends_with(&format!("install {V263}"))),
        "{order}"
    );
    assert_eq!(lines.len(), 5 + 4);
    for client in &fleet.clients {
        assert_eq!(client.runs().len(), 1, "{} ran once", client.host_id);
    }
    assert_eq!(fleet.server.runs().len(), 5);

    // The web host got the new Web Application; the old one was kept.
    let deployed = std::fs::read_to_string(fleet.web.dir.join("docroot/version.txt"))?;
    assert_eq!(deployed.trim(), V263);
    assert!(fleet.web.dir.join("docroot/index.html").exists());
    assert!(fleet.web.dir.join("state/web-backups").is_dir());
    // What the agents report agrees.
    for host in c.hosts()? {
        for component in host["components"].as_array().unwrap() {
            assert_eq!(component["version"], V263, "{host}");
        }
    }
    // The operator's actions are in the audit log.
    let audit: serde_json::Value = serde_json::from_str(&c.cli(&["audit", "--json"])?)?;
    let start = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "rollout start")
        .unwrap();
    assert_eq!(start["subject"], "r1");
    assert_eq!(start["actor"], "admin", "the authenticated operator");
    Ok(())
}

#[test]
fn a_failing_server_install_stops_everything_after_it() -> anyhow::Result<()> {
    let fleet = fleet(2)?;
    let c = &fleet.controller;
    // The server's stop_services succeeds; make its install fail (MSI 1603).
    std::fs::write(fleet.server.dir.join("fail"), "0")?;
    std::fs::remove_file(fleet.server.dir.join("fail"))?;
    c.rollout_start(&[])?;
    // Wait for the backup and stop to have run, then fail the install.
    wait_for("stop ran", Duration::from_secs(30), || {
        Ok(fleet
            .server
            .runs()
            .iter()
            .any(|l| l.contains("stop"))
            .then_some(()))
    })?;
    let _ = std::fs::write(fleet.server.dir.join("fail"), "103");
    let failed = wait_state(c, "failed", 60)?;
    let reason = failed["reason"].as_str().unwrap();
    // Either the install or start failed, depending on timing: nothing later ran.
    assert!(reason.contains("on srv-01 failed"), "{reason}");
    let order = std::fs::read_to_string(&fleet.order)?;
    assert!(
        !order.contains("reactivate") && !order.contains("cl-"),
        "{order}"
    );
    for client in &fleet.clients {
        assert!(client.runs().is_empty());
    }
    let text = c.cli(&["rollout", "status"])?;
    assert!(
        text.contains("Failures") && text.contains("installer error 103"),
        "{text}"
    );

    // Fixed: resume runs the failed step again and finishes.
    c.cli(&["rollout", "resume", "r1"])?;
    wait_state(c, "completed", 90)?;
    let audit = c.cli(&["audit"])?;
    assert!(
        audit.contains("rollout resume") && audit.contains("failed -> running"),
        "{audit}"
    );
    Ok(())
}

#[test]
fn pause_resume_abort_and_approve() -> anyhow::Result<()> {
    let fleet = fleet(2)?;
    let c = &fleet.controller;
    c.rollout_start(&["--approve-phases"])?;
    // The backup phase runs, then the rollout waits for approval.
    let waiting = wait_state(c, "waiting_for_approval", 30)?;
    assert_eq!(waiting["current_phase"], 1);
    assert_eq!(fleet.server.runs(), ["srv-01 backup "]);
    let refused = c.cli_output(&["rollout", "resume", "r1"])?;
    assert!(String::from_utf8_lossy(&refused.stderr)
        .contains("rollout r1 is waiting_for_approval; resume needs it to be paused or failed"));
    c.cli(&["rollout", "pause", "r1"])?;
    assert_eq!(c.rollout_status()?["state"], "paused");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        fleet.server.runs().len(),
        1,
        "nothing dispatched while paused"
    );
    c.cli(&["rollout", "abort", "r1"])?;
    assert_eq!(c.rollout_status()?["state"], "aborted");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fleet.server.runs().len(), 1, "aborted before the server");
    for client in &fleet.clients {
        assert!(client.runs().is_empty(), "aborted before the clients");
    }
    let refused = c.cli_output(&["rollout", "approve", "r1"])?;
    assert!(!refused.status.success());

    // A new rollout may start once the old one is over. 26.3.100 is
    // breaking: once the server phase is approved, the databases, web and
    // client waves follow without waiting (old clients are locked out).
    start(c, &["--approve-phases"])?;
    let waiting = wait_state(c, "waiting_for_approval", 30)?;
    assert_eq!(
        (waiting["id"].as_str(), waiting["current_phase"].as_u64()),
        (Some("r2"), Some(1))
    );
    c.cli(&["rollout", "approve", "r2"])?;
    let done = wait_state(c, "completed", 90)?;
    let waves = done["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "client_wave")
        .count();
    assert_eq!(waves, 2, "a canary, then the rest: {done}");
    for client in &fleet.clients {
        assert_eq!(client.installs(), 1, "{} updated", client.host_id);
    }
    let audit: serde_json::Value = serde_json::from_str(&c.cli(&["audit", "--json"])?)?;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .filter(|action| action.starts_with("rollout"))
        .collect();
    assert_eq!(
        actions,
        [
            "rollout start",
            "rollout pause",
            "rollout abort",
            "rollout start",
            "rollout approve",
            // The engine's own entry: how the rollout ended.
            "rollout completed"
        ]
    );
    Ok(())
}

fn start(c: &Controller, extra: &[&str]) -> anyhow::Result<()> {
    c.rollout_start(extra)
}

/// Stops client `index`'s agent, waits until the controller shows it
/// offline, and starts a one-wave rollout. Returns the absent host's id.
fn start_with_offline_client(fleet: &mut Fleet, index: usize) -> anyhow::Result<String> {
    fleet.clients[index].process.kill();
    let away = fleet.clients[index].host_id.clone();
    fleet
        .controller
        .wait_online(&away, false, Duration::from_secs(20))?;
    start(&fleet.controller, &["--client-waves", "100%"])?;
    Ok(away)
}

#[test]
fn a_killed_controller_resumes_with_no_step_lost_or_repeated() -> anyhow::Result<()> {
    let mut fleet = fleet(6)?;
    // Slow client installers, so the kill lands in the middle of a wave.
    for client in &mut fleet.clients {
        let config = std::fs::read_to_string(client.dir.join("installer.sh"))?;
        std::fs::write(
            client.dir.join("installer.sh"),
            config.replace("sleep 0.1", "sleep 1.5"),
        )?;
    }
    start(&fleet.controller, &["--client-waves", "50%,100%"])?;
    wait_for("a client install running", Duration::from_secs(60), || {
        Ok(fleet.clients.iter().any(|c| c.installs() > 0).then_some(()))
    })?;
    let addr = fleet.controller.addr.to_string();
    let data_dir = fleet.controller.data_dir.clone();
    fleet.controller.process.kill();
    fleet.controller = Controller::start(&data_dir, &addr)?;
    let done = wait_state(&fleet.controller, "completed", 120)?;
    assert!(done["failures"].as_array().unwrap().is_empty(), "{done}");
    for client in &fleet.clients {
        assert_eq!(
            client.installs(),
            1,
            "{} installed exactly once",
            client.host_id
        );
    }
    assert_eq!(fleet.server.runs().len(), 5, "server steps ran once each");
    Ok(())
}

#[test]
fn an_agent_killed_mid_step_reports_from_its_journal_and_never_reruns() -> anyhow::Result<()> {
    let mut fleet = fleet(1)?;
    let script = std::fs::read_to_string(fleet.server.dir.join("installer.sh"))?;
    std::fs::write(
        fleet.server.dir.join("installer.sh"),
        script.replace("sleep 0.3", "sleep 2"),
    )?;
    start(&fleet.controller, &[])?;
    wait_for(
        "the server install running",
        Duration::from_secs(30),
        || Ok((fleet.server.installs() == 1).then_some(())),
    )?;
    fleet.server.process.kill();
    fleet.server.restart()?;
    let failed = wait_state(&fleet.controller, "failed", 60)?;
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.contains("the agent stopped while this step ran"),
        "{reason}"
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        fleet.server.installs(),
        1,
        "the interrupted step was not run again"
    );
    // The operator checked the host: resuming runs a new attempt.
    fleet.controller.cli(&["rollout", "resume", "r1"])?;
    wait_state(&fleet.controller, "completed", 60)?;
    assert_eq!(fleet.server.installs(), 2);
    Ok(())
}

#[test]
fn an_offline_client_gets_its_step_when_it_returns() -> anyhow::Result<()> {
    let mut fleet = fleet(3)?;
    let away = start_with_offline_client(&mut fleet, 0)?;
    let waiting = wait_for(
        "the wave waits for the offline client",
        Duration::from_secs(60),
        || {
            let s = fleet.controller.rollout_status()?;
            Ok((s["waiting_for_offline"] == serde_json::json!([away])).then_some(s))
        },
    )?
    .0;
    assert_eq!(waiting["state"], "running");
    let text = fleet.controller.cli(&["rollout", "status"])?;
    assert!(
        text.contains(&format!("Waiting for offline host(s): {away}")),
        "{text}"
    );
    fleet.clients[0].restart()?;
    wait_state(&fleet.controller, "completed", 60)?;
    assert_eq!(fleet.clients[0].installs(), 1);
    Ok(())
}

#[test]
fn a_wave_over_its_error_threshold_halts_and_resume_continues() -> anyhow::Result<()> {
    let fleet = fleet(4)?;
    // Two of four clients fail once (Windows Installer 1603 → exit 3 here).
    for client in &fleet.clients[..2] {
        std::fs::write(client.dir.join("fail"), "3")?;
    }
    start(
        &fleet.controller,
        &["--client-waves", "100%", "--error-threshold", "1"],
    )?;
    let failed = wait_state(&fleet.controller, "failed", 60)?;
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.contains("2 of 4 client(s) in this wave failed"),
        "{reason}"
    );
    let text = fleet.controller.cli(&["rollout", "status"])?;
    assert!(text.contains("installer error 3"), "{text}");
    // The cause is fixed (the stand-in fails only once): resume finishes.
    fleet.controller.cli(&["rollout", "resume", "r1"])?;
    wait_state(&fleet.controller, "completed", 60)?;
    for client in &fleet.clients {
        assert_eq!(client.installs(), 1, "{}", client.host_id);
    }
    Ok(())
}

#[test]
fn installers_come_from_the_controller_and_are_verified_before_anything_runs() -> anyhow::Result<()>
{
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
    let mut clients = Vec::new();
    for i in 1..=2 {
        let mut agent = Agent::start(
            root.path(),
            &url,
            &format!("cl-{i:03}"),
            Plays::Client,
            V931,
        )?;
        agent.with_installers_using(&order, "0.1", true)?;
        clients.push(agent);
    }
    wait_for("agents online", Duration::from_secs(30), || {
        let hosts = controller.hosts()?;
        Ok((hosts.len() == 3 && hosts.iter().all(|h| h["online"] == true)).then_some(()))
    })?;
    controller.cli(&[
        "license",
        "set",
        "--installation",
        "prod",
        "--maintenance-until",
        "2026-12-31",
    ])?;

    // The operator's catalogue names the client installer and its checksum.
    let msi = root.path().join("PasswordSecure_Client_26.3.100.msi");
    std::fs::write(&msi, vec![7u8; 300_000])?;
    let real_sha = {
        let out = std::process::Command::new("sha256sum").arg(&msi).output()?;
        String::from_utf8(out.stdout)?
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    // The catalogue with a [release.artifact.client] table for 26.3.100.
    let place = |sha: &str| -> String {
        tierwise_e2e::catalogue_with_client_artifact("PasswordSecure_Client_26.3.100.msi", sha)
            .unwrap()
    };
    let file = root.path().join("catalogue.toml");
    std::fs::write(&file, place(&"0".repeat(64)))?;
    controller.cli(&["releases", "import", file.to_str().unwrap()])?;
    // A file that does not match the catalogue is refused and not stored.
    let out = controller.cli_output(&[
        "artifacts",
        "add",
        msi.to_str().unwrap(),
        "--release",
        V263,
        "--component",
        "client",
    ])?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "the file's SHA-256 is {real_sha}, but the catalogue gives {}",
            "0".repeat(64)
        )),
        "{stderr}"
    );
    // Without the stored installer the plan is not ready, and the rollout
    // cannot start.
    let plan =
        controller.cli_output(&["rollout", "plan", "--installation", "prod", "--to", V263])?;
    assert_eq!(plan.status.code(), Some(3), "a blocked plan");
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("but the controller does not hold it"),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
    let out = controller.rollout_start_output(&[])?;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("but the controller does not hold it"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(&file, place(&real_sha))?;
    controller.cli(&["releases", "import", file.to_str().unwrap()])?;
    let stored = controller.cli(&[
        "artifacts",
        "add",
        msi.to_str().unwrap(),
        "--release",
        V263,
        "--component",
        "client",
    ])?;
    assert!(
        stored.contains(&real_sha) && stored.contains("matching the catalogue"),
        "{stored}"
    );

    // Tamper with the controller's copy: the agents must refuse it.
    let cas = controller.data_dir.join("artifacts").join(&real_sha);
    std::fs::write(&cas, vec![8u8; 300_000])?;
    controller.rollout_start(&[])?;
    let failed = wait_state(&controller, "failed", 60)?;
    let failures = failed["failures"].as_array().unwrap();
    assert!(!failures.is_empty());
    let reason = failures[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "expected {real_sha}; it was deleted and nothing ran"
        )),
        "{reason}"
    );
    for client in &clients {
        assert!(
            client.runs().is_empty(),
            "no installer ran on {}",
            client.host_id
        );
    }

    // The right file back in place; one client already has the first half
    // (an interrupted download): it resumes from there.
    std::fs::copy(&msi, &cas)?;
    let partial = clients[0]
        .dir
        .join("state/artifacts")
        .join(format!("{real_sha}.part"));
    std::fs::create_dir_all(partial.parent().unwrap())?;
    std::fs::write(&partial, vec![7u8; 150_000])?;
    // The other holds a partial file longer than the installer: its offset
    // is refused, and it drops the file and starts again from the beginning.
    let overlong = clients[1]
        .dir
        .join("state/artifacts")
        .join(format!("{real_sha}.part"));
    std::fs::create_dir_all(overlong.parent().unwrap())?;
    std::fs::write(&overlong, vec![9u8; 400_000])?;
    controller.cli(&["rollout", "resume", "r1"])?;
    wait_state(&controller, "completed", 60)?;
    for client in &clients {
        assert_eq!(client.installs(), 1);
        let installer = client.dir.join("state/artifacts").join(&real_sha);
        assert!(installer.is_file(), "kept under its checksum");
        let runs = client.runs().join("\n");
        assert!(
            runs.contains(&installer.display().to_string()),
            "the installer got {{artifact}}: {runs}"
        );
    }
    let log = controller.process.log_text();
    assert!(
        log.contains("offset=150000"),
        "the partial download was resumed"
    );
    assert!(
        clients[1]
            .process
            .log_text()
            .contains("the partial download does not fit the installer; starting again"),
        "the overlong partial download was refused"
    );
    // Installer output, downloads (the resumed one included, begun by
    // someone else under this test's umask) and the identity stay the
    // agent's own.
    let umask = std::fs::read_to_string("/proc/self/status")?
        .lines()
        .find_map(|l| l.strip_prefix("Umask:").map(|m| m.trim().to_owned()));
    eprintln!("agents started with umask {umask:?}");
    for client in &clients {
        let open = client.open_to_others()?;
        assert!(open.is_empty(), "{}: {open:#?}", client.host_id);
    }
    Ok(())
}

#[test]
fn an_operator_can_finish_without_a_host_that_stays_offline() -> anyhow::Result<()> {
    let mut fleet = fleet(2)?;
    let away = start_with_offline_client(&mut fleet, 1)?;
    wait_for(
        "the wave waits for the offline client",
        Duration::from_secs(60),
        || {
            let s = fleet.controller.rollout_status()?;
            Ok((s["waiting_for_offline"] == serde_json::json!([away])).then_some(()))
        },
    )?;
    let refused = fleet
        .controller
        .cli_output(&["rollout", "skip", "r1", "--host", "nope"])?;
    assert!(String::from_utf8_lossy(&refused.stderr).contains("has no unfinished step on `nope`"));
    let skipped = fleet
        .controller
        .cli(&["rollout", "skip", "r1", "--host", &away])?;
    assert!(
        skipped.contains(&format!("goes on without {away}")),
        "{skipped}"
    );
    // A skipped host is not on the target: no clean completion.
    wait_state(&fleet.controller, "completed_with_failures", 30)?;
    assert_eq!(fleet.clients[0].installs(), 1);
    let audit = fleet.controller.cli(&["audit"])?;
    assert!(
        audit.contains("rollout skip host")
            && audit.contains(&format!("{away}: 1 step(s) skipped")),
        "{audit}"
    );
    Ok(())
}

#[test]
fn status_shows_what_running_steps_report() -> anyhow::Result<()> {
    let fleet = fleet(1)?;
    let script = std::fs::read_to_string(fleet.server.dir.join("installer.sh"))?;
    std::fs::write(
        fleet.server.dir.join("installer.sh"),
        script.replace("sleep 0.3", "sleep 3"),
    )?;
    start(&fleet.controller, &[])?;
    let (running, _) = wait_for(
        "progress of the server install",
        Duration::from_secs(30),
        || {
            let s = fleet.controller.rollout_status()?;
            let found = s["running"].as_array().and_then(|r| {
                r.iter()
                    .find(|step| {
                        step["progress"]
                            .as_str()
                            .is_some_and(|p| p.contains("install 26.3.100.34058 in progress"))
                    })
                    .cloned()
            });
            Ok(found)
        },
    )?;
    assert_eq!(running["host_id"], "srv-01");
    assert_eq!(running["action"], "install");
    let text = fleet.controller.cli(&["rollout", "status"])?;
    assert!(
        text.contains("Running (1)") && text.contains("srv-01: install 26.3.100.34058 in progress"),
        "{text}"
    );
    wait_state(&fleet.controller, "completed", 60)?;
    Ok(())
}

/// A controller database restored from before a rollout hands out the same
/// rollout id (`r1`) again; the agents still hold the old rollout's attempts
/// in their journals. The new rollout's dispatch ids carry a tag of its own,
/// so its steps really run instead of being answered from the old journal.
#[test]
fn a_restored_database_runs_a_new_rollout_for_real() -> anyhow::Result<()> {
    let mut fleet = fleet(2)?;
    let data_dir = fleet.controller.data_dir.clone();
    let addr = fleet.controller.addr.to_string();
    let backup = fleet.root.path().join("backup");
    // The backup: taken with the controller stopped, as a file copy.
    fleet.controller.process.kill();
    std::fs::create_dir_all(&backup)?;
    let database_files = ["tierwise.db", "tierwise.db-wal", "tierwise.db-shm"];
    for name in database_files {
        if data_dir.join(name).exists() {
            std::fs::copy(data_dir.join(name), backup.join(name))?;
        }
    }
    let restarted = jiff::Timestamp::now();
    fleet.controller = Controller::start(&data_dir, &addr)?;
    // Started only once every agent is back and has reported: a plan made
    // before the web host reports its package would ask for one.
    back_on(&fleet, V931, restarted)?;
    start(&fleet.controller, &[])?;
    wait_state(&fleet.controller, "completed", 120)?;

    // Restore the database; the hosts are back on the old release too.
    fleet.controller.process.kill();
    for name in database_files {
        let _ = std::fs::remove_file(data_dir.join(name));
        if backup.join(name).exists() {
            std::fs::copy(backup.join(name), data_dir.join(name))?;
        }
    }
    fleet.server.set_version(V931)?;
    tierwise_e2e::set_file(
        &fleet.server.dir.join("databases.json"),
        &format!(
            "[{{\"name\": \"PSDB\", \"active\": true, \"patch_level\": \"{V931}\"}}, \
             {{\"name\": \"Archive\", \"active\": true, \"patch_level\": \"{V931}\"}}]"
        ),
    )?;
    tierwise_e2e::set_file(
        &fleet.web.dir.join("docroot").join("version.txt"),
        &format!("{V931}\n"),
    )?;
    for client in &fleet.clients {
        client.set_version(V931)?;
    }
    let restarted = jiff::Timestamp::now();
    fleet.controller = Controller::start(&data_dir, &addr)?;
    back_on(&fleet, V931, restarted)?;
    start(&fleet.controller, &[])?;
    let status = wait_state(&fleet.controller, "completed", 120)?;
    assert_eq!(status["id"], "r1", "the restored database reuses the id");
    for client in &fleet.clients {
        assert_eq!(client.installs(), 2, "{} installed again", client.host_id);
    }
    Ok(())
}

/// Waits until all four hosts have reported to the controller started at
/// `restarted` (a killed controller leaves them "online" for a few
/// heartbeats) and report `version`.
fn back_on(fleet: &Fleet, version: &str, restarted: jiff::Timestamp) -> anyhow::Result<()> {
    // `last_seen` has whole seconds: a report in the next second is new.
    let since = restarted.as_second() + 1;
    let reported = |h: &serde_json::Value| {
        h["last_seen"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .is_some_and(|t| t.as_second() >= since)
    };
    wait_for(
        &format!("the fleet back on {version}"),
        Duration::from_secs(60),
        || {
            let hosts = fleet.controller.hosts()?;
            Ok((hosts.len() == 4
                && hosts.iter().all(|h| {
                    h["online"] == true
                        && reported(h)
                        && h["components"][0]["version"].as_str() == Some(version)
                }))
            .then_some(()))
        },
    )?;
    Ok(())
}

/// `rollout skip` never bypasses the vendor's order: a failed primary
/// server cannot be skipped (so no client goes past it); a client can, and
/// is then named in the status and the audit log.
#[test]
fn skip_refuses_the_primary_server_and_names_a_skipped_client() -> anyhow::Result<()> {
    let fleet = fleet(2)?;
    let c = &fleet.controller;
    // The first server action fails (MSI 1603); the rollout halts there.
    std::fs::write(fleet.server.dir.join("fail"), "103")?;
    start(c, &[])?;
    wait_state(c, "failed", 60)?;
    let out = c.cli_output(&["rollout", "skip", "r1", "--host", "srv-01"])?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("srv-01 is the primary server") && stderr.contains("rollout resume"),
        "{stderr}"
    );
    let status = wait_state(c, "failed", 5)?;
    assert!(status["skipped_hosts"].as_array().unwrap().is_empty());
    for client in &fleet.clients {
        assert!(client.runs().is_empty(), "no client went past the server");
    }

    // A client may be skipped: it keeps its version and is named.
    let client = fleet.clients[0].host_id.clone();
    let said = c.cli(&["rollout", "skip", "r1", "--host", &client])?;
    assert!(
        said.contains(&format!("goes on without {client}")),
        "{said}"
    );
    let _ = std::fs::remove_file(fleet.server.dir.join("fail")); // used up by the failure
    c.cli(&["rollout", "resume", "r1"])?;
    let done = wait_state(c, "completed_with_failures", 90)?;
    assert_eq!(done["skipped_hosts"], serde_json::json!([client]));
    assert!(fleet.clients[0].runs().is_empty());
    assert!(c
        .cli(&["rollout", "status"])?
        .contains("Skipped by an operator"));
    let audit = c.cli(&["audit"])?;
    assert!(audit.contains("keeps its old client version"), "{audit}");
    Ok(())
}

/// An installer that exits 0 while its host keeps reporting the old
/// version (one that needs a restart first, or one that lies) is no silent
/// stall: `status` says what it waits for, and after the verification
/// deadline the step fails with the host, the expected and the reported
/// version — here crossing the wave's error threshold.
#[test]
fn a_success_that_is_never_reported_fails_after_its_deadline() -> anyhow::Result<()> {
    let fleet = fleet(2)?;
    let c = &fleet.controller;
    let liar = &fleet.clients[0];
    let script = std::fs::read_to_string(liar.dir.join("installer.sh"))?;
    let lying = script.replace(r#"echo "$version" > "#, r#"true || echo "$version" > "#);
    assert_ne!(lying, script, "the stand-in installer changed shape");
    std::fs::write(liar.dir.join("installer.sh"), lying)?;
    start(
        c,
        &[
            "--client-waves",
            "100%",
            "--error-threshold",
            "0",
            "--verify-timeout",
            "install=10s",
        ],
    )?;
    wait_for("the wait to show", Duration::from_secs(60), || {
        let s = c.rollout_status()?;
        let awaited = s["awaiting_reports"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(awaited
            .iter()
            .any(|a| {
                a["host_id"] == liar.host_id.as_str() && a["expected"] == format!("client {V263}")
            })
            .then_some(()))
    })?;
    let text = c.cli(&["rollout", "status"])?;
    assert!(
        text.contains(&format!(
            "waiting for {} to report client {V263}",
            liar.host_id
        )),
        "{text}"
    );
    let failed = wait_state(c, "failed", 60)?;
    let failure = failed["failures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["host_id"] == liar.host_id.as_str())
        .cloned()
        .expect("the liar is named");
    let reason = failure["reason"].as_str().unwrap();
    assert!(
        reason.contains("reported success for install")
            && reason.contains(&format!("client {V931}"))
            && reason.contains(&format!("client {V263}")),
        "{reason}"
    );
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("error threshold"),
        "{failed}"
    );
    let refused = c.cli_output(&[
        "rollout",
        "start",
        "--installation",
        "prod",
        "--to",
        V263,
        "--verify-timeout",
        "backup=1m",
    ])?;
    assert!(String::from_utf8_lossy(&refused.stderr).contains("nothing to verify"));
    Ok(())
}

/// Waits for `agent`'s restart command to run, then stands in for the
/// machine's restart.
fn reboot_when_asked(agent: &mut Agent) -> anyhow::Result<()> {
    let marker = agent.dir.join("restart-requested");
    wait_for(
        &format!("{} to be asked to restart", agent.host_id),
        Duration::from_secs(60),
        || Ok(marker.exists().then_some(())),
    )?;
    std::fs::remove_file(&marker)?;
    agent.reboot()
}

#[test]
fn restarts_are_orchestrated_by_role_policy() -> anyhow::Result<()> {
    let mut fleet = fleet(2)?;
    // The server's installer and one client's say "restart required".
    std::fs::write(fleet.server.dir.join("exit-after-install"), "30")?;
    std::fs::write(fleet.clients[0].dir.join("exit-after-install"), "30")?;
    let c = &fleet.controller;
    let refused = c.cli_output(&[
        "rollout",
        "start",
        "--installation",
        "prod",
        "--to",
        V263,
        "--restart",
        "database=auto",
    ])?;
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("`database` is no role"),
        "{refused:?}"
    );
    // Defaults: the server asks, clients restart at once.
    start(c, &["--client-waves", "100%"])?;
    let waiting = wait_state(c, "waiting_for_approval", 60)?;
    assert!(
        waiting["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("{} must restart", fleet.server.host_id)),
        "{waiting}"
    );
    let pending = &waiting["pending_restarts"][0];
    assert_eq!(
        (&pending["host_id"], &pending["policy"], &pending["state"]),
        (
            &serde_json::json!(fleet.server.host_id),
            &serde_json::json!("ask"),
            &serde_json::json!("required")
        ),
        "{waiting}"
    );
    let text = c.cli(&["rollout", "status"])?;
    assert!(
        text.contains("Hosts pending a restart")
            && text.contains("waits for `tierwise rollout approve`"),
        "{text}"
    );
    // Nothing after the install ran on the server while it waits.
    assert!(
        !fleet.server.runs().iter().any(|l| l.contains(" start ")),
        "{:?}",
        fleet.server.runs()
    );
    c.cli(&["rollout", "approve", "r1"])?;
    reboot_when_asked(&mut fleet.server)?;
    // The client's restart goes out without asking; time it from the
    // result that asked for it to the host verified after its reboot.
    let (_, _) = wait_for("the client's restart", Duration::from_secs(90), || {
        let s = c.rollout_status()?;
        Ok(s["pending_restarts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["host_id"] == fleet.clients[0].host_id.as_str())
            .then_some(()))
    })?;
    let asked = std::time::Instant::now();
    reboot_when_asked(&mut fleet.clients[0])?;
    let done = wait_state(c, "completed", 60)?;
    eprintln!(
        "restart required → host verified after its reboot: {:.1} s",
        asked.elapsed().as_secs_f64()
    );
    assert!(done["pending_restarts"].as_array().unwrap().is_empty());
    // On the server the restart came between install and start.
    let runs = fleet.server.runs();
    let at = |action: &str| runs.iter().position(|l| l.contains(&format!(" {action} ")));
    assert!(
        at("install") < at("restart") && at("restart") < at("start"),
        "{runs:?}"
    );
    assert_eq!(
        fleet.clients[1]
            .runs()
            .iter()
            .filter(|l| l.contains(" restart "))
            .count(),
        0,
        "a client that needed no restart got none"
    );
    let audit = c.cli(&["audit"])?;
    assert!(audit.contains("restart approved for 1 step(s)"), "{audit}");
    Ok(())
}
