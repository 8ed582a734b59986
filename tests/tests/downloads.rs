//! Downloads follow dispatches, with real processes: an agent gets an
//! installer from the controller only for a step dispatched to it. Another
//! installation's installer, its own installation's before any step named
//! it, or a file that does not exist: the same NOT_FOUND, and the attempts
//! of one host are one audit entry. The dispatched host still downloads its
//! installer and the rollout completes. On SQLite, and on PostgreSQL when
//! `TIERWISE_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use tierwise_e2e::{wait_for, Agent, Controller, Database, Fleet, FleetOptions, Plays, V263, V931};
use tierwise_proto::v1::{agent_service_client::AgentServiceClient, DownloadArtifactRequest};
use tonic::transport::Channel;
use tonic::Code;

/// The release installation B is to get.
const V264: &str = "26.4.10.34111";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Asks for a file as the agent behind `channel`: all of it, or the refusal.
async fn download(channel: &Channel, sha256: &str) -> Result<Vec<u8>, tonic::Status> {
    let mut client = AgentServiceClient::new(channel.clone());
    let mut stream = client
        .download_artifact(DownloadArtifactRequest {
            sha256: sha256.to_owned(),
            offset: 0,
        })
        .await?
        .into_inner();
    let mut data = Vec::new();
    while let Some(chunk) = stream.message().await? {
        data.extend(chunk.data);
    }
    Ok(data)
}

/// Stores `bytes` as the client installer of `release`; its SHA-256.
fn store_installer(c: &Controller, dir: &Path, release: &str, bytes: &[u8]) -> String {
    let file = dir.join(format!("PasswordSecure_Client_{release}.msi"));
    std::fs::write(&file, bytes).unwrap();
    c.cli(&[
        "artifacts",
        "add",
        file.to_str().unwrap(),
        "--release",
        release,
        "--component",
        "client",
    ])
    .unwrap();
    let list: Value =
        serde_json::from_str(&c.cli(&["artifacts", "list", "--json"]).unwrap()).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|a| a["release"] == release && a["component"] == "client")
        .unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The audit entries of refused downloads by `host` among the newest
/// hundred: (first ones of a window, counts of the rest).
fn refusals(c: &Controller, host: &str) -> (Vec<Value>, Vec<Value>) {
    let audit: Value = serde_json::from_str(&c.cli(&["audit", "--json"]).unwrap()).unwrap();
    audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "download refused" && e["actor"] == format!("agent {host}"))
        .cloned()
        .partition(|e| {
            !e["details"]
                .as_str()
                .unwrap_or_default()
                .contains("more refused call(s)")
        })
}

/// The answer's message with the file it named replaced: every refusal
/// reads as the answer for a file that does not exist.
fn shape(status: &tonic::Status, sha256: &str) -> String {
    status.message().replace(sha256, "<sha256>")
}

fn downloads_follow_dispatches(controller_flags: Vec<&'static str>) {
    let fleet = Fleet::start(&FleetOptions {
        clients: 1,
        controller_flags,
        ..FleetOptions::default()
    })
    .unwrap();
    let c = &fleet.controller;
    let dir = fleet.root.path();
    let rt = runtime();
    // Installation B, with a host of its own and its installer stored.
    let _branch =
        Agent::start_in("branch", dir, &c.url(), "br-cl-01", Plays::Client, V931).unwrap();
    c.wait_online("br-cl-01", true, Duration::from_secs(30))
        .unwrap();
    let b_sha = store_installer(c, dir, V264, &[9u8; 200_000]);
    // Installation A's (prod) installer.
    let a_bytes = vec![7u8; 300_000];
    let a_sha = store_installer(c, dir, V263, &a_bytes);

    // An agent of A, tampered with, speaks for itself (cl-001's own
    // certificate): B's installer, a file that does not exist, and A's own
    // installer before any step named it.
    let client = &fleet.clients[0];
    let own = rt.block_on(client.channel(c)).unwrap();
    let made_up = "f".repeat(64);
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push((b_sha.clone(), rt.block_on(download(&own, &b_sha))));
    }
    answers.push((made_up.clone(), rt.block_on(download(&own, &made_up))));
    answers.push((a_sha.clone(), rt.block_on(download(&own, &a_sha))));
    let expected = "no artifact <sha256> in the controller's store";
    for (sha, answer) in &answers {
        let refused = answer.as_ref().expect_err("refused");
        assert_eq!(refused.code(), Code::NotFound, "{sha}: {refused:?}");
        assert_eq!(shape(refused, sha), expected, "{sha}: {refused:?}");
    }
    // Seven attempts, one audit entry (a count of the rest follows when
    // the window ends).
    let (first, _) = refusals(c, "cl-001");
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["subject"], "DownloadArtifact");
    let details = first[0]["details"].as_str().unwrap();
    assert!(
        details.contains(&b_sha) && details.contains("no step dispatched to this host names it"),
        "{details}"
    );

    // A's rollout: the dispatched host downloads its installer and the
    // rollout completes as ever.
    c.rollout_start(&[]).unwrap();
    // A host of A in no step of it gets nothing of it either.
    let intruder = rt.block_on(c.agent_channel("cl-intruder")).unwrap();
    let refused = rt.block_on(download(&intruder, &a_sha)).unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    assert_eq!(shape(&refused, &a_sha), expected);
    wait_for("the rollout completed", Duration::from_secs(120), || {
        let status = c.rollout_status()?;
        Ok((status["state"] == "completed").then_some(()))
    })
    .map_err(|e| {
        format!(
            "{e}\n{}\n{}",
            c.cli(&["rollout", "status"]).unwrap_or_default(),
            c.process.log_text()
        )
    })
    .unwrap();
    assert_eq!(client.installs(), 1);
    let installer = client.dir.join("state/artifacts").join(&a_sha);
    assert_eq!(std::fs::read(&installer).unwrap(), a_bytes);
    let log = c.process.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("artifact download") && l.contains(&a_sha) && l.contains("cl-001")),
        "{log}"
    );
    let (first, _) = refusals(c, "cl-intruder");
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(
        first[0]["details"].as_str().unwrap().contains(&a_sha),
        "{first:?}"
    );
    // Each attempt is in the controller's log; the rollout's own download
    // was not refused.
    let refused_here = log
        .lines()
        .filter(|l| l.contains("download refused") && l.contains("host_id=cl-001"))
        .count();
    assert_eq!(refused_here, answers.len(), "{log}");
}

#[test]
fn an_agent_downloads_only_what_was_dispatched_to_it() {
    downloads_follow_dispatches(Vec::new());
}

#[test]
fn an_agent_downloads_only_what_was_dispatched_to_it_on_postgresql() {
    let Some(db) = Database::create().unwrap() else {
        return;
    };
    let url: &'static str = Box::leak(db.url.clone().into_boxed_str());
    downloads_follow_dispatches(vec!["--database-url", url]);
}
