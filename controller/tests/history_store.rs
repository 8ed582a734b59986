//! History that keeps every failure, in the store, on SQLite and on the
//! real local PostgreSQL (set `TIERWISE_TEST_POSTGRES_URL`, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`; each run creates a
//! database of its own): each ended attempt is kept through a retry and a
//! skip, a rollout with failed or skipped hosts ends
//! `completed_with_failures`, and the engine's halts, step failures and
//! endings are in the audit log as `engine`.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

#[path = "support/postgres.rs"]
mod postgres;

use tierwise_common::action::{StepAction, StepOutcome};
use tierwise_common::plan::PhaseKind;
use tierwise_common::rollout::{
    dispatch_id, Command, Decision, ExecPhase, ExecStep, RolloutOptions, RolloutState, StepState,
};
use tierwise_common::{ClientFacts, Component, Facts, Inventory, ProbedVersion, Role, Version};
use tierwise_controller::store::rollouts::StepResultRecord;
use tierwise_controller::store::{HostReport, Store};

const V931: Version = Version::new(9, 3, 1, 33994);
const V263: Version = Version::new(26, 3, 100, 34058);
const T0: i64 = 1_800_000_000_000;

fn client(host_id: &str) -> HostReport {
    HostReport {
        host_id: host_id.into(),
        hostname: format!("{host_id}.corp.example"),
        installation: "prod".into(),
        os: "Windows 11".into(),
        agent_version: "0.1.0".into(),
        heartbeat_seconds: 10,
        inventory: Inventory::new(vec![Component {
            role: Role::Client,
            version: ProbedVersion::Installed(V931),
            facts: Facts::Client(ClientFacts::default()),
        }])
        .unwrap(),
        boot_ms: Some(T0 - 1_000_000),
    }
}

/// One client wave of three clients, each installing the target.
fn wave(id: &str) -> (Vec<ExecPhase>, Vec<ExecStep>) {
    let step = |n: usize| ExecStep {
        step_id: format!("{id}-{n}"),
        phase: 0,
        host_id: format!("cl-0{n}"),
        action: StepAction::InstallComponent {
            role: Role::Client,
            version: V263,
            artifact_sha256: None,
        },
        state: StepState::Pending,
        attempts: 0,
        changed_ms: T0,
        outcome: None,
        reason: String::new(),
        restart: Default::default(),
        task: None,
    };
    (
        vec![ExecPhase {
            kind: PhaseKind::ClientWave {
                wave: 0,
                percent: 100,
            },
        }],
        vec![step(1), step(2), step(3)],
    )
}

/// Applies decisions to the rollout as it is stored now.
async fn apply(store: &Store, decisions: &[Decision], at: i64) -> Vec<(String, u32)> {
    let (rollout, _) = store.rollout("r1").await.unwrap().unwrap();
    store
        .apply_decisions(&rollout, decisions, at)
        .await
        .unwrap()
        .expect("applied")
}

fn dispatch(step: &str) -> Decision {
    Decision::Dispatch {
        step_id: step.into(),
    }
}

async fn result(
    store: &Store,
    host: &str,
    dispatch: &str,
    outcome: StepOutcome,
    code: i32,
    at: i64,
) {
    let tail = format!("installer error {code}\n");
    let recorded = store
        .record_step_result(
            host,
            &StepResultRecord {
                step_id: dispatch.into(),
                outcome,
                exit_code: Some(code),
                output_tail: tail,
                reason: format!("exit code {code}"),
            },
            at,
        )
        .await
        .unwrap();
    assert_eq!(recorded.as_deref(), Some("r1"), "{dispatch}");
}

async fn history(store: &Store) {
    for host in ["cl-01", "cl-02", "cl-03"] {
        store
            .record_hello(&client(host), &format!("{host}-session"), T0)
            .await
            .unwrap();
    }
    let _leader = store.claim_leadership(T0).await.unwrap().expect("leads");
    let id = store
        .create_rollout(
            "prod",
            V263,
            &RolloutOptions::default(),
            wave,
            "alice",
            "start",
            T0,
        )
        .await
        .unwrap();
    let (rollout, _) = store.rollout(&id).await.unwrap().unwrap();
    let nonce = rollout.nonce.clone();
    let sent = apply(
        store,
        &[dispatch("r1-1"), dispatch("r1-2"), dispatch("r1-3")],
        T0 + 10,
    )
    .await;
    assert_eq!(sent.len(), 3);

    // cl-01 fails for good; cl-02 fails, is retried and succeeds; cl-03's
    // step gets no result in time.
    result(
        store,
        "cl-01",
        &dispatch_id("r1-1", 1, &nonce),
        StepOutcome::Failed,
        43,
        T0 + 20,
    )
    .await;
    result(
        store,
        "cl-02",
        &dispatch_id("r1-2", 1, &nonce),
        StepOutcome::FailedTransient,
        1618,
        T0 + 30,
    )
    .await;
    apply(
        store,
        &[
            Decision::Retry {
                step_id: "r1-2".into(),
            },
            Decision::TimedOut {
                step_id: "r1-3".into(),
            },
        ],
        T0 + 40,
    )
    .await;
    assert_eq!(
        apply(store, &[dispatch("r1-2")], T0 + 50).await,
        [("r1-2".to_owned(), 2)]
    );
    result(
        store,
        "cl-02",
        &dispatch_id("r1-2", 2, &nonce),
        StepOutcome::Succeeded,
        0,
        T0 + 60,
    )
    .await;

    // The engine halts; an operator skips cl-01 and cl-03 and resumes.
    apply(
        store,
        &[Decision::Halt {
            reason: "2 of 3 client(s) in this wave failed".into(),
        }],
        T0 + 70,
    )
    .await;
    for host in ["cl-01", "cl-03"] {
        store
            .apply_command(
                "r1",
                &Command::Skip {
                    host_id: host.into(),
                },
                "alice",
                T0 + 80,
            )
            .await
            .unwrap();
    }
    store
        .apply_command("r1", &Command::Resume, "alice", T0 + 90)
        .await
        .unwrap();

    // Every failed attempt is still there, beside the retry that worked.
    let kept = store.failed_step_attempts("r1").await.unwrap();
    let summary: Vec<(&str, u32, StepState, Option<i64>)> = kept
        .iter()
        .map(|(step, a)| (step.as_str(), a.attempt, a.result, a.exit_code))
        .collect();
    assert_eq!(
        summary,
        [
            ("r1-1", 1, StepState::Failed, Some(43)),
            ("r1-2", 1, StepState::Failed, Some(1618)),
            ("r1-2", 2, StepState::Succeeded, Some(0)),
            ("r1-3", 1, StepState::Failed, None),
        ]
    );
    let first = &kept[0].1;
    assert_eq!(
        (
            first.started_ms,
            first.finished_ms,
            first.output_tail.as_str()
        ),
        (Some(T0 + 10), T0 + 20, "installer error 43\n")
    );
    assert_eq!(kept[1].1.outcome, "failed_transient");
    assert_eq!(kept[2].1.started_ms, Some(T0 + 50), "the retry's own start");
    assert_eq!(kept[3].1.reason, "no result within the step timeout");

    // The phase is done with a failed-then-skipped host: the rollout ends
    // completed with failures, which is final (a new one may start).
    let (rollout, steps) = store.rollout("r1").await.unwrap().unwrap();
    let decisions = tierwise_common::rollout::decide(
        &tierwise_common::rollout::RolloutSnapshot {
            state: rollout.state,
            current_phase: rollout.current_phase,
            options: &rollout.options,
            phases: &rollout.phases,
            steps: &steps,
            hosts: &[],
            windows: &[],
            web_packages: None,
        },
        T0 + 100,
    );
    let verified_later = decisions
        .iter()
        .all(|d| matches!(d, Decision::Unverified { .. }));
    assert!(decisions.is_empty() || verified_later, "{decisions:?}");
    let ending = tierwise_common::rollout::completion(&steps);
    assert_eq!(
        ending,
        Decision::CompleteWithFailures {
            failed_hosts: vec![],
            skipped_hosts: vec!["cl-01".into(), "cl-03".into()],
        }
    );
    apply(store, &[ending], T0 + 110).await;
    let (ended, _) = store.rollout("r1").await.unwrap().unwrap();
    assert_eq!(ended.state, RolloutState::CompletedWithFailures);
    assert!(store.outstanding_steps("cl-01").await.unwrap().is_empty());
    assert_eq!(
        store
            .create_rollout(
                "prod",
                V263,
                &RolloutOptions::default(),
                wave,
                "alice",
                "again",
                T0 + 120
            )
            .await
            .unwrap(),
        "r2",
        "a rollout completed with failures is over"
    );

    // A host's history, newest first, each step with all its attempts.
    let history = store.host_history("cl-02", 10).await.unwrap();
    let steps: Vec<(&str, StepState, usize)> = history
        .iter()
        .map(|s| (s.step_id.as_str(), s.state, s.attempts.len()))
        .collect();
    assert_eq!(
        steps,
        [
            ("r2-2", StepState::Pending, 0),
            ("r1-2", StepState::Succeeded, 2)
        ]
    );
    assert_eq!(history[1].release, V263);
    assert_eq!(
        store.host_history("cl-02", 1).await.unwrap().len(),
        1,
        "the limit"
    );
    assert!(store.host_history("nobody", 10).await.unwrap().is_empty());

    // The engine's part in the audit log, chained like the rest.
    let audit = store.audit_log(100).await.unwrap();
    let engine: Vec<(&str, &str)> = audit
        .iter()
        .filter(|e| e.actor == "engine")
        .map(|e| (e.action.as_str(), e.details.as_str()))
        .collect();
    assert_eq!(
        engine,
        [
            (
                "rollout step failed",
                "r1-3 on cl-03: no result within the step timeout"
            ),
            ("rollout halted", "2 of 3 client(s) in this wave failed"),
            (
                "rollout completed with failures",
                "skipped: cl-01, cl-03; these hosts keep their old version"
            ),
        ]
    );
    let entries = store.audit_after(0, 100_000).await.unwrap();
    let links: Vec<_> = entries.iter().map(|e| e.link()).collect();
    let verified = tierwise_common::audit::verify(&links).unwrap();
    assert_eq!(verified.chained, entries.len());
}

#[tokio::test]
async fn sqlite_keeps_every_failure() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tierwise.db").display());
    let store = Store::open(&url).await.unwrap();
    history(&store).await;
}

#[tokio::test]
async fn postgres_keeps_every_failure() {
    let Some(database) = postgres::ScratchDatabase::create("history").await else {
        return;
    };
    let store = Store::open(&database.url).await.unwrap();
    history(&store).await;
    store.close().await;
    database.drop().await;
}
