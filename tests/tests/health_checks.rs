//! Post-update health checks with a real controller and agents: a server
//! whose port does not answer after its services started fails that step
//! with the check's output and halts the rollout before any client is
//! touched; once the port answers, `resume` runs the step again and the
//! rollout completes, the clients' own checks passing after their installs.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::time::Duration;
use tierwise_e2e::{wait_for, Fleet, FleetOptions};

#[test]
fn a_failing_health_check_halts_the_rollout_with_its_output_until_it_passes() {
    let mut fleet = Fleet::start(&FleetOptions {
        clients: 2,
        ..FleetOptions::default()
    })
    .unwrap();
    // A port nobody listens on yet: the server's "application port".
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    fleet
        .server
        .with_health(&format!("tcp = [\"127.0.0.1:{port}\"]\nwait_seconds = 3"))
        .unwrap();
    // The clients check that their application server answers: here the
    // controller's own port stands for it.
    let controller_port = fleet
        .controller
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    for client in &mut fleet.clients {
        client
            .with_health(&format!("tcp = [\"127.0.0.1:{controller_port}\"]"))
            .unwrap();
    }
    let c = &fleet.controller;
    wait_for("agents back online", Duration::from_secs(30), || {
        let hosts = c.hosts()?;
        Ok(hosts.iter().all(|h| h["online"] == true).then_some(()))
    })
    .unwrap();

    c.rollout_start(&[]).unwrap();
    let (status, _) = wait_for("the rollout to halt", Duration::from_secs(60), || {
        let s = c.rollout_status()?;
        Ok((s["state"] == "failed").then_some(s))
    })
    .unwrap();
    let failure = &status["failures"][0];
    assert_eq!(failure["host_id"], "srv-01", "{status}");
    assert_eq!(failure["action"], "start_services", "{status}");
    let reason = failure["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("health check failed after ")
            && reason.contains(&format!("tcp 127.0.0.1:{port}: ")),
        "{reason}"
    );
    let output = failure["output_tail"].as_str().unwrap();
    assert!(
        output.contains("done: start") && output.contains("health checks:\nFAIL tcp 127.0.0.1:"),
        "{output}"
    );
    let text = c.cli(&["rollout", "status"]).unwrap();
    assert!(text.contains("health check failed"), "{text}");
    // Halted in the server phase: no client was touched.
    assert!(fleet.clients.iter().all(|a| a.installs() == 0));

    // The port answers now; the operator resumes and everything follows.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let id = status["id"].as_str().unwrap().to_owned();
    c.cli(&["rollout", "resume", &id]).unwrap();
    let (done, _) = wait_for("the rollout to complete", Duration::from_secs(120), || {
        let s = c.rollout_status()?;
        Ok(matches!(s["state"].as_str(), Some("completed" | "failed")).then_some(s))
    })
    .unwrap();
    assert_eq!(done["state"], "completed", "{done}");
    assert!(fleet.clients.iter().all(|a| a.installs() == 1));
    for client in &fleet.clients {
        let log = client.process.log_text();
        assert!(log.contains("running health checks"), "{log}");
    }
    drop(listener);
}
