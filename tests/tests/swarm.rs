//! The swarm load tool's smoke run: a few hundred simulated agents against
//! a real controller, every scenario, its figures printed. The large
//! figures come from running it by hand (README, "Load").

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::process::Command;
use tierwise_e2e::binary;

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
        "handoff (latest result → next command",
        "ingest: 3000 inventory reports (10 per agent at once) stored in",
    ] {
        assert!(stdout.contains(expected), "`{expected}` missing:\n{stdout}");
    }
    Ok(())
}
