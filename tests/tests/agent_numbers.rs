//! Numbers from an agent are bounded where they enter the controller, with
//! real processes: an enrolled client that says it booted at `i64::MAX` and
//! answers each step as having run from `1` to `i64::MAX` ms takes part in
//! a rollout beside real agents. Its boot time counts as not known, its
//! step times are replaced by the controller's own measure, and afterwards
//! `rollout status`, `rollout list` and `rollout plan` still answer, on
//! SQLite and on PostgreSQL (before, the overflowed sum of durations made
//! every one of them fail to decode, for every installation).

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use serde_json::Value;
use std::time::Duration;
use tierwise_e2e::wire::hello;
use tierwise_e2e::{wait_for, Controller, Database, Fleet, FleetOptions, V263, V931};
use tierwise_proto::v1::{
    agent_message, agent_service_client::AgentServiceClient, command, controller_message,
    AgentMessage, Component, Heartbeat, Inventory, Role, StepOutcome, StepResult,
};

/// The client's inventory at `version`.
fn inventory(version: &str) -> AgentMessage {
    AgentMessage {
        body: Some(agent_message::Body::Inventory(Inventory {
            components: vec![Component {
                role: Role::Client.into(),
                version: version.into(),
                probe_error: String::new(),
                facts: None,
            }],
            volumes: Vec::new(),
        })),
    }
}

/// Plays the lying client `host_id` until the test ends: a boot time of
/// `i64::MAX`, every step "run" from 1 to `i64::MAX` ms and succeeded, and
/// the target version reported once it was installed.
async fn lie(controller: &Controller, host_id: &str) {
    let channel = controller.agent_channel(host_id).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut first = hello(host_id, V931, "Windows 11".into());
    if let Some(agent_message::Body::Hello(hello)) = &mut first.body {
        hello.boot_ms = i64::MAX;
    }
    tx.send(first).await.unwrap();
    let mut inbound = AgentServiceClient::new(channel)
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tokio::spawn(async move {
        let mut version = V931.to_owned();
        let mut beat = tokio::time::interval(Duration::from_secs(2));
        loop {
            let message = tokio::select! {
                _ = beat.tick() => {
                    let beat = AgentMessage { body: Some(agent_message::Body::Heartbeat(Heartbeat {})) };
                    if tx.send(beat).await.is_err() { return; }
                    continue;
                }
                message = inbound.message() => message,
            };
            let Ok(Some(message)) = message else { return };
            let answers = match message.body {
                Some(controller_message::Body::ReportInventory(_)) => vec![inventory(&version)],
                Some(controller_message::Body::Command(command)) => {
                    let result = AgentMessage {
                        body: Some(agent_message::Body::StepResult(StepResult {
                            step_id: command.step_id.clone(),
                            outcome: StepOutcome::Succeeded.into(),
                            started_ms: 1,
                            finished_ms: i64::MAX,
                            ..StepResult::default()
                        })),
                    };
                    if let Some(command::Action::InstallComponent(install)) = &command.action {
                        version.clone_from(&install.version);
                    }
                    vec![result, inventory(&version)]
                }
                _ => Vec::new(),
            };
            for answer in answers {
                if tx.send(answer).await.is_err() {
                    return;
                }
            }
        }
    });
}

fn json(controller: &Controller, args: &[&str]) -> Value {
    serde_json::from_str(&controller.cli(args).unwrap()).unwrap()
}

fn a_lying_client_cannot_stop_rollouts(database_url: Option<&str>) {
    let mut flags = Vec::new();
    if let Some(url) = database_url {
        let url: &'static str = Box::leak(url.to_owned().into_boxed_str());
        flags = vec!["--database-url", url];
    }
    let fleet = Fleet::start(&FleetOptions {
        clients: 1,
        controller_flags: flags,
        ..FleetOptions::default()
    })
    .unwrap();
    let c = &fleet.controller;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(lie(c, "cl-liar"));
    c.wait_online("cl-liar", true, Duration::from_secs(20))
        .unwrap();

    // The boot "in the year 292 million" is not believed.
    let host = json(c, &["hosts", "show", "cl-liar", "--json"]);
    assert!(host["boot_time"].is_null(), "{host:#}");

    c.rollout_start(&["--client-waves", "100%"]).unwrap();
    let (done, _) = wait_for("the rollout's end", Duration::from_secs(120), || {
        let status = c.rollout_status()?;
        Ok(["completed", "completed_with_failures", "failed"]
            .contains(&status["state"].as_str().unwrap_or_default())
            .then_some(status))
    })
    .unwrap();
    assert_eq!(done["state"], "completed", "{done:#}");
    let liar = json(c, &["hosts", "show", "cl-liar", "--json"]);
    assert!(liar.to_string().contains(V263), "{liar:#}");

    // Every command that reads the measured durations still answers, and
    // what they expect is within the bound of a step (7 days), not years.
    for args in [
        vec!["rollout", "status", "r1"],
        vec!["rollout", "list"],
        vec!["rollout", "status", "r1", "--json"],
        vec!["rollout", "list", "--json"],
    ] {
        c.cli(&args)
            .unwrap_or_else(|e| panic!("{args:?} failed after the lie: {e}"));
    }
    let plan = json(
        c,
        &[
            "rollout",
            "plan",
            "--installation",
            "prod",
            "--to",
            V263,
            "--json",
        ],
    );
    let expected = plan["eta"]["expected_seconds"].as_i64();
    assert!(
        expected.is_none_or(|s| (0..=7 * 24 * 3600).contains(&s)),
        "{plan:#}"
    );
}

#[test]
fn a_lying_client_cannot_stop_rollouts_on_sqlite() {
    a_lying_client_cannot_stop_rollouts(None);
}

#[test]
fn a_lying_client_cannot_stop_rollouts_on_postgres() -> anyhow::Result<()> {
    let Some(db) = Database::create()? else {
        return Ok(());
    };
    a_lying_client_cannot_stop_rollouts(Some(&db.url));
    Ok(())
}
