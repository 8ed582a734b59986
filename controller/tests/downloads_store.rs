//! The steps a download is decided on, read from the store on SQLite and
//! on the real local PostgreSQL (set `TIERWISE_TEST_POSTGRES_URL`, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`): a host's steps that name
//! the file, with their rollouts — never another host's, never a step that
//! names another file — and the decision they lead to as the rollout goes.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

#[path = "support/postgres.rs"]
mod postgres;

use sqlx::Executor;
use tierwise_common::action::{StepAction, StepOutcome};
use tierwise_common::plan::PhaseKind;
use tierwise_common::rollout::{
    dispatch_id, may_download, Command, Decision, ExecPhase, ExecStep, RolloutOptions,
    RolloutState, StepState, ENDED_STEP_GRACE_MS,
};
use tierwise_common::{ClientFacts, Component, Facts, Inventory, ProbedVersion, Role, Version};
use tierwise_controller::store::rollouts::StepResultRecord;
use tierwise_controller::store::{HostReport, Store};

const V931: Version = Version::new(9, 3, 1, 33994);
const V263: Version = Version::new(26, 3, 100, 34058);
const T0: i64 = 1_800_000_000_000;

fn sha(c: char) -> String {
    c.to_string().repeat(64)
}

/// One client wave: cl-01 and cl-02 install `a`, cl-03 installs `b`.
fn wave(id: &str) -> (Vec<ExecPhase>, Vec<ExecStep>) {
    wave_of(id, sha('a'), sha('b'))
}

fn wave_of(id: &str, a: String, b: String) -> (Vec<ExecPhase>, Vec<ExecStep>) {
    let step = |n: usize, sha256: String| ExecStep {
        step_id: format!("{id}-{n}"),
        phase: 0,
        host_id: format!("cl-0{n}"),
        action: StepAction::InstallComponent {
            role: Role::Client,
            version: V263,
            artifact_sha256: Some(sha256),
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
        vec![step(1, a.clone()), step(2, a), step(3, b)],
    )
}

async fn decide(store: &Store, host: &str, sha256: &str, at: i64) -> bool {
    let steps = store.download_steps(host, sha256).await.unwrap();
    may_download(sha256, &steps, at).is_ok()
}

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

async fn downloads(store: &Store) {
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
    let (a, b) = (sha('a'), sha('b'));
    // Read as they are: the host's own steps naming the file, no other.
    let steps = store.download_steps("cl-01", &a).await.unwrap();
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(steps[0].step_id, format!("{id}-1"));
    assert_eq!(steps[0].state, StepState::Pending);
    assert_eq!(steps[0].rollout_id, id);
    assert_eq!(steps[0].rollout_state, RolloutState::Running);
    assert_eq!(steps[0].installation, "prod");
    assert_eq!(steps[0].host_installation, "prod");
    assert!(store.download_steps("cl-01", &b).await.unwrap().is_empty());
    assert!(store.download_steps("cl-09", &a).await.unwrap().is_empty());
    // Not a SHA-256: nothing read (no pattern from an agent reaches SQL).
    for bad in ["%", "_", &a.to_uppercase(), &a[..10]] {
        assert!(store.download_steps("cl-01", bad).await.unwrap().is_empty());
    }

    // Before the step goes out: nothing.
    assert!(!decide(store, "cl-01", &a, T0 + 5).await);
    let (rollout, _) = store.rollout(&id).await.unwrap().unwrap();
    let sent = store
        .apply_decisions(
            &rollout,
            &[Decision::Dispatch {
                step_id: format!("{id}-1"),
            }],
            T0 + 10,
        )
        .await
        .unwrap()
        .expect("applied");
    assert_eq!(sent.len(), 1);
    // Dispatched: its host, for its file, in its installation — only.
    assert!(decide(store, "cl-01", &a, T0 + 20).await);
    assert!(!decide(store, "cl-01", &b, T0 + 20).await);
    assert!(
        !decide(store, "cl-02", &a, T0 + 20).await,
        "not sent to cl-02 yet"
    );
    assert!(!decide(store, "cl-03", &a, T0 + 20).await);
    // A host in another installation now (a client that said `auto`,
    // placed elsewhere since) gets nothing of its old installation's
    // rollout.
    let mut elsewhere = client("br-01");
    elsewhere.installation = "branch".into();
    store
        .record_hello(&elsewhere, "br-01-session", T0)
        .await
        .unwrap();
    store_exec(
        store,
        "UPDATE hosts SET installation = 'branch' WHERE host_id = 'cl-01'",
    )
    .await;
    assert!(!decide(store, "cl-01", &a, T0 + 20).await);
    store_exec(
        store,
        "UPDATE hosts SET installation = 'prod' WHERE host_id = 'cl-01'",
    )
    .await;
    assert!(decide(store, "cl-01", &a, T0 + 20).await);

    // Its result: the file stays available for a while (a download cut by
    // the step's end may resume), then not.
    let recorded = store
        .record_step_result(
            "cl-01",
            &StepResultRecord {
                step_id: dispatch_id(&format!("{id}-1"), 1, &rollout.nonce),
                outcome: StepOutcome::Succeeded,
                exit_code: Some(0),
                output_tail: String::new(),
                reason: String::new(),
            },
            T0 + 100,
        )
        .await
        .unwrap();
    assert_eq!(recorded.as_deref(), Some(id.as_str()));
    assert!(decide(store, "cl-01", &a, T0 + 100 + ENDED_STEP_GRACE_MS).await);
    assert!(!decide(store, "cl-01", &a, T0 + 101 + ENDED_STEP_GRACE_MS).await);

    // Aborted: nothing more, not even a dispatched step's file.
    let (rollout, _) = store.rollout(&id).await.unwrap().unwrap();
    store
        .apply_decisions(
            &rollout,
            &[Decision::Dispatch {
                step_id: format!("{id}-2"),
            }],
            T0 + 200,
        )
        .await
        .unwrap()
        .expect("applied");
    assert!(decide(store, "cl-02", &a, T0 + 210).await);
    store
        .apply_command(&id, &Command::Abort, "alice", T0 + 220)
        .await
        .unwrap();
    assert!(!decide(store, "cl-02", &a, T0 + 230).await);
}

/// Changes the store behind its back, as a placement would have.
async fn store_exec(store: &Store, sql: &str) {
    let url = store.connect_string().to_owned();
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        pool.execute(sql).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        pool.execute(sql).await.unwrap();
        pool.close().await;
    }
}

/// How long the read and the decision take for a host with a long
/// history: 300 more rollouts, each with an installer of its own, and then
/// 300 that all name the same file (printed, not asserted: the machine is
/// shared).
async fn timed(store: &Store) {
    let mut n = 0;
    let mut history = |store: &Store, file: Option<String>| {
        n += 1;
        let at = T0 + 1000 + n;
        let file = file.unwrap_or_else(|| format!("{n:064x}"));
        let store = store.clone();
        async move {
            let id = store
                .create_rollout(
                    "prod",
                    V263,
                    &RolloutOptions::default(),
                    |id| wave_of(id, file.clone(), file),
                    "alice",
                    "start",
                    at,
                )
                .await
                .unwrap();
            store
                .apply_command(&id, &Command::Abort, "alice", at)
                .await
                .unwrap();
        }
    };
    for _ in 0..300 {
        history(store, None).await;
    }
    let measure = |what: &'static str| async move {
        let rounds = 200;
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            assert!(!decide(store, "cl-01", &sha('a'), T0 + 5000).await);
        }
        eprintln!(
            "download decision, {what}: {:?} per call on {}",
            started.elapsed() / rounds,
            store.backend()
        );
    };
    assert_eq!(
        store
            .download_steps("cl-01", &sha('a'))
            .await
            .unwrap()
            .len(),
        1
    );
    measure("301 steps of the host, 1 naming the file").await;
    for _ in 0..300 {
        history(store, Some(sha('a'))).await;
    }
    assert_eq!(
        store
            .download_steps("cl-01", &sha('a'))
            .await
            .unwrap()
            .len(),
        301
    );
    measure("601 steps of the host, 301 naming the file").await;
}

#[tokio::test]
async fn sqlite_reads_the_steps_a_download_is_decided_on() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tierwise.db").display());
    let store = Store::open(&url).await.unwrap();
    downloads(&store).await;
    timed(&store).await;
}

#[tokio::test]
async fn postgres_reads_the_steps_a_download_is_decided_on() {
    let Some(database) = postgres::ScratchDatabase::create("downloads").await else {
        return;
    };
    let store = Store::open(&database.url).await.unwrap();
    downloads(&store).await;
    timed(&store).await;
    store.close().await;
    database.drop().await;
}
