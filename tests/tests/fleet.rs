//! The walking skeleton end to end: a real controller, three real agents,
//! the real CLI; versions change, an agent dies, the controller is killed and
//! restarted.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::time::Duration;
use tierwise_e2e::{component, wait_for, Agent, Controller, Plays, V263, V931};

#[test]
fn fleet_reports_changes_survives_agent_loss_and_controller_restart() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let data_dir = root.path().join("controller");
    let mut controller = Controller::start(&data_dir, "127.0.0.1:0")?;
    let url = controller.url();

    let _server = Agent::start(
        root.path(),
        &url,
        "srv-01",
        Plays::Server(vec![
            ("PSDB-Prod", true, V931),
            ("PSDB-Archive", false, V931),
        ]),
        V931,
    )?;
    let mut web = Agent::start(
        root.path(),
        &url,
        "web-01",
        Plays::Web { websocket: true },
        V931,
    )?;
    let client = Agent::start(root.path(), &url, "cl-001", Plays::Client, "9.2.6.33415")?;

    // All three appear, online, with the right roles and versions.
    let (hosts, took) = wait_for("three agents online", Duration::from_secs(20), || {
        let hosts = controller.hosts()?;
        Ok((hosts.len() == 3 && hosts.iter().all(|h| h["online"] == true)).then_some(hosts))
    })?;
    eprintln!("three agents online after {took:?}");
    let by_id = |id: &str| hosts.iter().find(|h| h["host_id"] == id).cloned().unwrap();
    let server = by_id("srv-01");
    assert_eq!(server["installation"], "prod");
    assert_eq!(component(&server, "server").unwrap()["version"], V931);
    let databases = component(&server, "server").unwrap()["databases"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(databases.len(), 2);
    assert_eq!(databases[0]["name"], "PSDB-Archive");
    assert_eq!(databases[0]["active"], false);
    assert_eq!(databases[1]["patch_level"], V931);
    let web_host = by_id("web-01");
    let web_component = component(&web_host, "web").unwrap();
    assert_eq!(web_component["version"], V931);
    assert_eq!(web_component["web"]["server"], "apache");
    assert_eq!(web_component["web"]["websocket"], "yes");
    let client_host = by_id("cl-001");
    assert_eq!(
        component(&client_host, "client").unwrap()["version"],
        "9.2.6.33415"
    );
    for host in &hosts {
        for field in [
            "host_id",
            "hostname",
            "installation",
            "online",
            "last_seen",
            "components",
        ] {
            assert!(!host[field].is_null(), "{field} missing in {host}");
        }
    }

    // The human table shows the same fleet.
    let table = controller.cli(&["hosts", "list", "--role", "server"])?;
    assert!(table.contains("srv-01") && table.contains(V931), "{table}");
    assert!(!table.contains("cl-001"), "{table}");
    let shown = controller.cli(&["hosts", "show", "srv-01"])?;
    assert!(shown.contains("PSDB-Prod"), "{shown}");

    // An installer ran: the version file changes, the controller follows.
    client.set_version(V931)?;
    let ((), took) = wait_for("the client's new version", Duration::from_secs(10), || {
        let host = controller.host("cl-001")?;
        Ok(host
            .filter(|h| component(h, "client").is_some_and(|c| c["version"] == V931))
            .map(|_| ()))
    })?;
    eprintln!("new client version visible after {took:?}");

    // The web agent dies: its host goes offline, the others stay online.
    web.process.kill();
    let took = controller.wait_online("web-01", false, Duration::from_secs(10))?;
    eprintln!("killed agent offline after {took:?}");
    assert_eq!(controller.host("srv-01")?.unwrap()["online"], true);

    // The controller is killed outright and started again on the same address.
    let before = controller.hosts()?;
    let addr = controller.addr.to_string();
    controller.process.kill();
    controller = Controller::start(&data_dir, &addr)?;
    let after = controller.hosts()?;
    assert_eq!(after.len(), 3, "inventory intact after the restart");
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(old["host_id"], new["host_id"]);
        assert_eq!(
            old["components"], new["components"],
            "inventory of {}",
            old["host_id"]
        );
        assert_eq!(old["first_seen"], new["first_seen"]);
    }
    // The surviving agents reconnect by themselves; the dead one stays offline.
    let ((), took) = wait_for("agents reconnected", Duration::from_secs(20), || {
        let hosts = controller.hosts()?;
        let online = |id: &str| {
            hosts
                .iter()
                .any(|h| h["host_id"] == id && h["online"] == true)
        };
        Ok((online("srv-01") && online("cl-001")).then_some(()))
    })?;
    eprintln!("agents reconnected {took:?} after the controller restart");
    assert_eq!(controller.host("web-01")?.unwrap()["online"], false);

    // The dead agent comes back: same host, not a new row.
    web.restart()?;
    controller.wait_online("web-01", true, Duration::from_secs(20))?;
    assert_eq!(controller.hosts()?.len(), 3);
    Ok(())
}

#[test]
fn silent_host_goes_offline_after_three_missed_heartbeats() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0")?;
    let agent = Agent::start(
        root.path(),
        &controller.url(),
        "cl-002",
        Plays::Client,
        V263,
    )?;
    controller.wait_online("cl-002", true, Duration::from_secs(20))?;
    // SIGSTOP freezes the agent with its TCP connection open: no heartbeat,
    // no disconnect. Only the missed heartbeats can tell.
    let pid = agent.process.pid().to_string();
    let status = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()?;
    assert!(status.success());
    let took = controller.wait_online("cl-002", false, Duration::from_secs(15))?;
    eprintln!("frozen agent (1 s heartbeat) offline after {took:?}");
    assert!(
        took >= Duration::from_secs(2),
        "not before the third missed heartbeat"
    );
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()?;
    controller.wait_online("cl-002", true, Duration::from_secs(20))?;
    Ok(())
}

#[test]
fn refresh_makes_agents_probe_now() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0")?;
    // An hour between probes: only the refresh can make it look again.
    let agent = Agent::start_probing_every(
        root.path(),
        &controller.url(),
        "cl-003",
        Plays::Client,
        V931,
        3600,
    )?;
    controller.wait_online("cl-003", true, Duration::from_secs(20))?;
    agent.set_version(V263)?;
    let asked = controller.cli(&["hosts", "refresh", "cl-003"])?;
    assert_eq!(
        asked,
        "Asked 1 connected agent(s) to report their inventory: cl-003\n"
    );
    let ((), took) = wait_for("the refreshed version", Duration::from_secs(10), || {
        Ok(controller
            .host("cl-003")?
            .filter(|h| component(h, "client").is_some_and(|c| c["version"] == V263))
            .map(|_| ()))
    })?;
    eprintln!("refreshed version visible after {took:?}");
    let none = controller.cli(&["hosts", "refresh", "--installation", "test"])?;
    assert!(none.starts_with("No connected agent matched"), "{none}");
    Ok(())
}
