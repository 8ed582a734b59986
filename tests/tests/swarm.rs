//! The swarm load tool's smoke run: a few hundred simulated agents against
//! a real controller, every scenario, its figures printed. The large
//! figures come from running it by hand (README, "Load").

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::process::Command;
use tierwise_e2e::{binary, Controller, Database};

#[test]
fn the_swarm_runs_every_scenario_and_prints_its_figures() -> anyhow::Result<()> {
    let catalogue = format!(
        "{}/../deploy/catalogue/password-secure.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = Command::new(binary("tierwise-swarm"))
        .args([
            "--agents",
            "300",
            "--steady-seconds",
            "3",
            "--heartbeat-seconds",
            "5",
        ])
        .args([
            "--step-ms",
            "20",
            "--failure-rate",
            "0.01",
            "--catalogue",
            &catalogue,
        ])
        .arg("--tierwise")
        .arg(binary("tierwise"))
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "enrolled 300 agents",
        "all 300 agents connected",
        "KiB per agent",
        "storm: controller killed and restarted; all 300 back",
        "rollout of 300 hosts: completed",
        "delivery (queued at the commit → agent has the command): p50",
        "of which the controller's (the commit → the connection takes it to write, tierwise_command_delivery_seconds): p50",
        "handoff (latest result → next command",
        "ingest: 3000 inventory reports (10 per agent at once) stored in",
    ] {
        assert!(stdout.contains(expected), "`{expected}` missing:\n{stdout}");
    }
    Ok(())
}

/// The swarm drives two replicas it did not start (one PostgreSQL
/// database), its agents spread over both and run in two child processes;
/// the figures are over all of them.
#[test]
fn the_swarm_drives_running_replicas_from_two_processes() -> anyhow::Result<()> {
    let Some(db) = Database::create()? else {
        return Ok(());
    };
    let root = tempfile::tempdir()?;
    let data = root.path().join("controller");
    // One token and one address for 40 agents: the enrollment limits off,
    // as the swarm sets them on the controller it starts.
    let flags = [
        "--database-url",
        db.url.as_str(),
        "--enroll-rate-per-address=off",
        "--enroll-rate-per-token=off",
    ];
    let (first, second) = Controller::replicas(&data, &flags)?;
    let catalogue = format!(
        "{}/../deploy/catalogue/password-secure.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = Command::new(binary("tierwise-swarm"))
        .args(["--controller", &first.url(), "--controller", &second.url()])
        .args(["--controller-pid", &first.process.pid().to_string()])
        .args(["--controller-pid", &second.process.pid().to_string()])
        .arg("--ca-cert")
        .arg(first.ca_path())
        .arg("--token-file")
        .arg(data.join("admin.token"))
        .args(["--database-url", &db.url])
        .args(["--processes", "2", "--agents", "40"])
        .args(["--steady-seconds", "1", "--heartbeat-seconds", "5"])
        .args(["--step-ms", "20", "--catalogue", &catalogue])
        .env_remove("TIERWISE_TOKEN")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "2 controllers given, agents in 2 processes",
        "enrolled 40 agents",
        "all 40 agents connected",
        &format!(
            "agents connected per controller: {} 20, {} 20",
            first.url(),
            second.url()
        ),
        &format!(
            "controller {} (pid {}): RSS",
            first.url(),
            first.process.pid()
        ),
        &format!(
            "controller {} (pid {}): RSS",
            second.url(),
            second.process.pid()
        ),
        "KiB per agent on it, 20 agents)",
        "PostgreSQL: CPU",
        "write-ahead log",
        "(3 processes together)",
        "rollout of 40 hosts: completed",
        "hosts the swarm saw updated to 26.3.100.34058: 40 of 40",
        "delivery (queued at the commit → agent has the command): p50",
        "handoff (latest result → next command",
        "ingest: 400 inventory reports (10 per agent at once) stored in",
    ] {
        assert!(stdout.contains(expected), "`{expected}` missing:\n{stdout}");
    }
    assert!(!stdout.contains("storm"), "{stdout}");
    Ok(())
}
