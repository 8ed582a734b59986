//! The rollout engine on a real SQLite store, with a recording delivery in
//! place of agent sessions: what it hands out on a decision, on a hello,
//! and after a restart-required result.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

mod support;

use std::sync::{Arc, Mutex};
use tierwise_common::action::StepOutcome;
use tierwise_common::fixtures::{client, licence, password_secure_catalogue, server, web};
use tierwise_common::plan::{plan, PlanRequest};
use tierwise_common::rollout::{steps_from_plan, Delivery, RolloutOptions, RolloutState};
use tierwise_common::{Check, ClientWaves, HostRecord, ProbedVersion, Version, WebServerKind};
use tierwise_controller::delivery::Deliver;
use tierwise_controller::engine::Engine;
use tierwise_controller::store::rollouts::StepResultRecord;
use tierwise_controller::store::Store;

const FROM: Version = Version::new(9, 3, 0, 33526);
const TO: Version = Version::new(9, 3, 1, 33994);

/// Remembers every delivery; every host counts as connected.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Delivery>>);

impl Deliver for Recorder {
    fn deliver(&self, delivery: &Delivery) -> bool {
        self.0.lock().unwrap().push(delivery.clone());
        true
    }

    fn refresh(&self, _host_id: &str) -> bool {
        true
    }

    fn close(&self, _host_id: &str) -> bool {
        true
    }

    /// Nothing waits: a delivery is recorded at once.
    fn queued(&self) -> usize {
        0
    }
}

impl Recorder {
    fn take(&self) -> Vec<(String, String)> {
        self.0
            .lock()
            .unwrap()
            .drain(..)
            .map(|d| (d.host_id, d.action.config_key().to_owned()))
            .collect()
    }

    /// What the outbox reader handed over within a few seconds.
    async fn wait_take(&self) -> Vec<(String, String)> {
        self.wait_take_with_id().await.0
    }

    /// As `wait_take`, with the last dispatch id handed over.
    async fn wait_take_with_id(&self) -> (Vec<(String, String)>, String) {
        for _ in 0..100 {
            if !self.0.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let id = self
            .0
            .lock()
            .unwrap()
            .last()
            .map(|d| d.dispatch_id.clone())
            .unwrap_or_default();
        (self.take(), id)
    }

    fn last_id(&self) -> String {
        self.0.lock().unwrap().last().unwrap().dispatch_id.clone()
    }
}

fn fleet() -> Vec<HostRecord> {
    vec![
        server("srv", "prod", FROM, &[("PSDB", true, FROM)]),
        web("web", "prod", FROM, WebServerKind::Apache, Check::Yes),
        client("cl-1", "prod", ProbedVersion::Installed(FROM), Check::No),
    ]
}

fn now() -> i64 {
    tierwise_runtime::clock::now_ms()
}

async fn result(store: &Store, host: &str, dispatch_id: &str, outcome: StepOutcome) {
    let record = StepResultRecord {
        step_id: dispatch_id.to_owned(),
        outcome,
        exit_code: Some(0),
        output_tail: String::new(),
        reason: String::new(),
    };
    assert!(store
        .record_step_result(host, &record, now())
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn the_engine_hands_out_decisions_outstanding_steps_and_restarts() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let hosts = fleet();
    for host in &hosts {
        support::hello(&store, host, 1_000).await;
    }
    let planned = plan(&PlanRequest {
        installation: "prod",
        hosts: &hosts,
        catalogue: &password_secure_catalogue(),
        licence: Some(&licence("prod", "2030-12-31")),
        target: TO,
        waves: &ClientWaves::parse("100%").unwrap(),
        web_packages: None,
    })
    .unwrap();
    let options = RolloutOptions::default();
    store
        .create_rollout(
            "prod",
            TO,
            &options,
            |id| steps_from_plan(id, &planned, now()),
            "tester",
            "",
            now(),
        )
        .await
        .unwrap();
    let recorder = Arc::new(Recorder::default());
    let engine = Engine::new(store.clone(), recorder.clone());
    tokio::spawn(engine.clone().run_outbox());
    // The one controller on SQLite leads.
    assert!(store.claim_leadership(now()).await.unwrap().is_some());

    // The first decision hands out the backup, once.
    engine.evaluate_all().await.unwrap();
    assert_eq!(
        recorder.wait_take().await,
        [("srv".into(), "backup".into())]
    );
    engine.evaluate_all().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(recorder.take().is_empty(), "nothing is handed out twice");

    // A hello hands the host what it has outstanding, under the same id.
    engine.hello("srv", Some(1_000)).await.unwrap();
    let backup = recorder.last_id();
    assert_eq!(recorder.take(), [("srv".into(), "backup".into())]);
    assert_eq!(engine.hello("cl-1", Some(1_000)).await.unwrap(), 0);

    // Through the server phase: stop, install (restart required), ...
    result(&store, "srv", &backup, StepOutcome::Succeeded).await;
    engine.evaluate_all().await.unwrap();
    let handed = recorder.wait_take_with_id().await;
    let stop = handed.1;
    assert_eq!(handed.0, [("srv".into(), "stop_services".into())]);
    result(&store, "srv", &stop, StepOutcome::Succeeded).await;
    engine.evaluate_all().await.unwrap();
    let handed = recorder.wait_take_with_id().await;
    let install = handed.1;
    assert_eq!(handed.0, [("srv".into(), "install".into())]);
    result(
        &store,
        "srv",
        &install,
        StepOutcome::SucceededRestartRequired,
    )
    .await;
    // The server's policy is `ask`: the rollout waits, nothing goes out.
    engine.evaluate_all().await.unwrap();
    assert!(recorder.take().is_empty());
    let (rollout, _) = store.rollout("r1").await.unwrap().unwrap();
    assert_eq!(rollout.state, RolloutState::WaitingForApproval);
    assert!(
        rollout.reason.contains("srv must restart"),
        "{}",
        rollout.reason
    );

    // Approved: the restart goes out, and again on a hello until the host
    // reports a later boot.
    store
        .apply_command(
            "r1",
            &tierwise_common::rollout::Command::Approve,
            "tester",
            now(),
        )
        .await
        .unwrap();
    engine.evaluate_all().await.unwrap();
    let handed = recorder.wait_take_with_id().await;
    let restart = handed.1;
    assert!(restart.ends_with(".restart"), "{restart}");
    assert_eq!(handed.0, [("srv".into(), "restart".into())]);
    engine.hello("srv", Some(1_000)).await.unwrap();
    assert_eq!(recorder.last_id(), restart);
    recorder.take();
    let mut rebooted = hosts[0].clone();
    rebooted.inventory = server("srv", "prod", TO, &[("PSDB", false, FROM)]).inventory;
    support::hello(&store, &rebooted, now() + 1_000).await;
    assert_eq!(engine.hello("srv", Some(now() + 1_000)).await.unwrap(), 0);
    // Back with a later boot and the new version: start services next.
    engine.evaluate_all().await.unwrap();
    assert_eq!(
        recorder.wait_take().await,
        [("srv".into(), "start_services".into())]
    );
}
