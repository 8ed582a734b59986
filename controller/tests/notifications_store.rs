//! The notification outbox in the store, on SQLite and (with
//! `TIERWISE_TEST_POSTGRES_URL`) PostgreSQL: events are written with the
//! change of state that makes them, for the subscriptions that want them;
//! one replica at a time holds a subscription's lease; delivery and
//! give-up are counted.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

#[path = "support/postgres.rs"]
mod postgres;

use tierwise_common::action::StepAction;
use tierwise_common::notify::{RetryVerdict, Subscription};
use tierwise_common::plan::PhaseKind;
use tierwise_common::rollout::{Decision, ExecPhase, ExecStep, RolloutOptions, StepState};
use tierwise_common::{Inventory, Version};
use tierwise_controller::store::{HostReport, Store};

const V263: Version = Version::new(26, 3, 100, 34058);
const T0: i64 = 1_800_000_000_000;

fn steps(id: &str) -> (Vec<ExecPhase>, Vec<ExecStep>) {
    let step = ExecStep {
        step_id: format!("{id}-1"),
        phase: 0,
        host_id: "srv-01".into(),
        action: StepAction::Backup,
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
            kind: PhaseKind::Backup,
        }],
        vec![step],
    )
}

async fn pending(store: &Store, name: &str) -> Vec<String> {
    let mut events = Vec::new();
    let list = store.subscriptions().await.unwrap();
    let count = list
        .iter()
        .find(|s| s.name == name)
        .map_or(0, |s| s.pending);
    for _ in 0..count {
        let event = store.oldest_notification(name).await.unwrap().unwrap();
        let payload: serde_json::Value = serde_json::from_str(&event.payload).unwrap();
        events.push(payload["event"].as_str().unwrap().to_owned());
        store.notification_delivered(&event, T0).await.unwrap();
    }
    events
}

async fn suite(store: &Store, other_replica: &Store) {
    store
        .record_hello(
            &HostReport {
                host_id: "srv-01".into(),
                hostname: "srv-01".into(),
                installation: "prod".into(),
                os: "Windows".into(),
                agent_version: "0.1.0".into(),
                heartbeat_seconds: 10,
                inventory: Inventory::new(Vec::new()).unwrap(),
                boot_ms: None,
            },
            "s1",
            T0,
        )
        .await
        .unwrap();
    let all = Subscription::new("all", "http://127.0.0.1:9/hook", "", "json", "").unwrap();
    let halts = Subscription::new(
        "halts",
        "https://hooks.example/x/y",
        "rollout.halted",
        "slack",
        "0123456789abcdef",
    )
    .unwrap();
    assert!(store.add_subscription(&all, "admin", T0).await.unwrap());
    assert!(store.add_subscription(&halts, "admin", T0).await.unwrap());
    assert!(
        !store.add_subscription(&all, "admin", T0).await.unwrap(),
        "name taken"
    );

    store
        .create_rollout(
            "prod",
            V263,
            &RolloutOptions::default(),
            steps,
            "op",
            "start",
            T0,
        )
        .await
        .unwrap();
    let (rollout, _) = store.rollout("r1").await.unwrap().unwrap();
    let halt = [Decision::Halt {
        reason: "it broke".into(),
    }];
    store
        .apply_decisions(&rollout, &halt, T0 + 1)
        .await
        .unwrap()
        .unwrap();

    let list = store.subscriptions().await.unwrap();
    let halts_status = &list[1];
    assert_eq!(
        (
            halts_status.name.as_str(),
            halts_status.pending,
            halts_status.signed
        ),
        ("halts", 1, true)
    );
    assert_eq!(halts_status.url, "https://hooks.example/…", "no path shown");

    // One replica at a time holds a subscription.
    assert!(store.lease_subscription("all", T0).await.unwrap());
    assert!(!other_replica
        .lease_subscription("all", T0 + 1)
        .await
        .unwrap());
    assert!(other_replica.due_subscriptions(T0 + 1).await.unwrap() == ["halts"]);
    // A lapsed lease is taken over.
    assert!(other_replica
        .lease_subscription("all", T0 + 61_000)
        .await
        .unwrap());
    other_replica.release_subscription("all").await.unwrap();

    assert_eq!(
        pending(store, "all").await,
        ["rollout.started", "rollout.halted"]
    );

    // A failure waits for its retry; a give-up is counted and removed.
    let event = store.oldest_notification("halts").await.unwrap().unwrap();
    store
        .notification_failed(&event, "cannot connect", RetryVerdict::At(T0 + 2_000), T0)
        .await
        .unwrap();
    assert!(store
        .due_subscriptions(T0 + 1_000)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.due_subscriptions(T0 + 2_000).await.unwrap(),
        ["halts"]
    );
    let event = store.oldest_notification("halts").await.unwrap().unwrap();
    assert_eq!(event.attempts, 1);
    store
        .notification_failed(&event, "still down", RetryVerdict::GiveUp, T0 + 3_000)
        .await
        .unwrap();
    let list = store.subscriptions().await.unwrap();
    assert_eq!(
        (
            list[1].pending,
            list[1].given_up,
            list[1].last_error.as_str()
        ),
        (0, 1, "still down")
    );
    assert_eq!((list[0].delivered, list[0].pending), (2, 0));

    assert!(store
        .queue_test_notification("halts", "admin", T0)
        .await
        .unwrap());
    assert!(!store
        .queue_test_notification("nope", "admin", T0)
        .await
        .unwrap());
    assert!(store
        .remove_subscription("halts", "admin", T0)
        .await
        .unwrap());
    assert!(!store
        .remove_subscription("halts", "admin", T0)
        .await
        .unwrap());
    let audit: Vec<String> = store
        .audit_log(20)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for action in ["notify add", "notify test", "notify remove"] {
        assert!(audit.iter().any(|a| a == action), "{action}: {audit:?}");
    }
}

#[tokio::test]
async fn sqlite_notification_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tierwise.db").display());
    let store = Store::open(&url).await.unwrap();
    let other = Store::open(&url).await.unwrap();
    suite(&store, &other).await;
}

#[tokio::test]
async fn postgres_notification_outbox() {
    let Some(database) = postgres::ScratchDatabase::create("notify").await else {
        return;
    };
    let url = database.url.clone();
    let store = Store::open(&url).await.unwrap();
    let other = Store::open(&url).await.unwrap();
    // The engine's writes need the leadership on PostgreSQL.
    let _leading = store.claim_leadership(T0).await.unwrap().expect("leads");
    suite(&store, &other).await;
    store.close().await;
    other.close().await;
    database.drop().await;
}
