//! A running agent's configuration changes: re-read on every reconnect (and
//! every minute), a change that does not validate is refused and the running
//! configuration kept, a valid one is applied once it has settled — on real
//! controller and agent processes.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use anyhow::Result;
use std::time::Duration;
use tierwise_e2e::{set_file, wait_for, Agent, Controller, Plays, V931};

/// Restarts the controller on the same address and data, so every agent
/// reconnects — and re-reads its configuration.
fn bounce(controller: Controller) -> Result<Controller> {
    let (addr, data_dir) = (controller.addr.to_string(), controller.data_dir.clone());
    drop(controller);
    Controller::start(&data_dir, &addr)
}

#[test]
fn a_bad_change_keeps_the_running_configuration_and_a_good_one_is_applied() -> Result<()> {
    let root = tempfile::tempdir()?;
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0")?;
    let agent = Agent::start(
        root.path(),
        &controller.url(),
        "cl-001",
        Plays::Client,
        V931,
    )?;
    controller.wait_online("cl-001", true, Duration::from_secs(30))?;
    let heartbeat = |c: &Controller| -> Result<Option<u64>> {
        Ok(c.host("cl-001")?
            .and_then(|h| h["heartbeat_seconds"].as_u64()))
    };
    assert_eq!(heartbeat(&controller)?, Some(1));
    let original = std::fs::read_to_string(&agent.config)?;

    // Not valid: refused, named, and the agent goes on as it was.
    set_file(
        &agent.config,
        &original.replace("heartbeat_seconds = 1", "heartbeat_seconds = 0"),
    )?;
    let sessions = |agent: &Agent| {
        agent
            .process
            .log_text()
            .matches("connected session=")
            .count()
    };
    let before = sessions(&agent);
    let controller = bounce(controller)?;
    wait_for(
        "the refusal in the agent's log",
        Duration::from_secs(30),
        || {
            let log = agent.process.log_text();
            Ok(
                (log.contains("keeping the running one") && log.contains("heartbeat_seconds"))
                    .then_some(()),
            )
        },
    )?;
    // Back with the new controller (a session of its own, not the old
    // one's last record), still on the running configuration.
    wait_for("the agent back", Duration::from_secs(30), || {
        Ok((sessions(&agent) > before).then_some(()))
    })?;
    controller.wait_online("cl-001", true, Duration::from_secs(30))?;
    assert_eq!(
        heartbeat(&controller)?,
        Some(1),
        "the running configuration is kept"
    );

    // Valid: applied once two reads agree, without restarting the process.
    set_file(
        &agent.config,
        &original.replace("heartbeat_seconds = 1", "heartbeat_seconds = 3"),
    )?;
    let pid = agent.process.pid();
    let controller = bounce(controller)?;
    if let Err(error) = wait_for("the new heartbeat", Duration::from_secs(60), || {
        Ok((heartbeat(&controller)? == Some(3)).then_some(()))
    }) {
        anyhow::bail!("{error}\nagent log:\n{}", agent.process.log_text());
    }
    assert!(agent
        .process
        .log_text()
        .contains("configuration changed; applying it"));
    assert_eq!(agent.process.pid(), pid, "the same process");
    Ok(())
}
