//! Measured step durations stay readable whatever an agent reports, in the
//! store, on SQLite and on the real local PostgreSQL (set
//! `TIERWISE_TEST_POSTGRES_URL`, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`): a step result claiming
//! `i64::MAX` ms saturates instead of overflowing the stored sum, and a bad
//! row already in the table is skipped instead of failing every plan.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

#[path = "support/postgres.rs"]
mod postgres;

use sqlx::Executor;
use tierwise_common::action::StepAction;
use tierwise_common::rollout::MAX_STEP_MS;
use tierwise_common::{Role, Version};
use tierwise_controller::store::Store;

const RELEASE: &str = "26.3.100.34058";

fn install() -> StepAction {
    StepAction::InstallComponent {
        role: Role::Client,
        version: Version::new(26, 3, 100, 34058),
        artifact_sha256: None,
    }
}

/// Three absurd results in a row: the sum saturates and stays an integer.
async fn huge_results_saturate(store: &Store) {
    for _ in 0..3 {
        store
            .record_duration(&install(), RELEASE, i64::MAX)
            .await
            .unwrap();
    }
    let durations = store.durations().await.unwrap();
    let expected = durations
        .expected_ms("install", Role::Client, RELEASE)
        .unwrap();
    assert_eq!(expected, MAX_STEP_MS, "each result clamped to the ceiling");
    // Many more, still no overflow: the sum saturates at i64::MAX.
    for _ in 0..3 {
        store.record_duration(&install(), RELEASE, 1).await.unwrap();
    }
    assert!(store.durations().await.is_ok());
}

/// A row written by an older controller (a sum turned floating-point, or a
/// negative one) is skipped; the good rows still count.
async fn bad_rows_are_skipped(store: &Store, raw: &str) {
    store
        .record_duration(&install(), RELEASE, 60_000)
        .await
        .unwrap();
    for sql in raw.split(';').filter(|s| !s.trim().is_empty()) {
        store_exec(store, sql).await;
    }
    let durations = store.durations().await.unwrap();
    assert_eq!(
        durations.expected_ms("install", Role::Client, RELEASE),
        Some(60_000)
    );
}

/// A wave finishing at once: results and durations are written in batches
/// (`store/ingest.rs`); every one of them counts, once.
async fn many_at_once_all_count(store: &Store) {
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..300 {
        let store = store.clone();
        writes.spawn(async move {
            store
                .record_duration(&install(), "26.4.0.2", 1_000 + i)
                .await
        });
    }
    while let Some(written) = writes.join_next().await {
        written.unwrap().unwrap();
    }
    let (count, total) = stored_sums(store, "26.4.0.2").await;
    assert_eq!(count, 300);
    assert_eq!(total, (0..300).map(|i| 1_000 + i).sum::<i64>());
}

async fn stored_sums(store: &Store, release: &str) -> (i64, i64) {
    let url = store.connect_string().to_owned();
    let sql = "SELECT count, total_ms FROM step_durations WHERE release = $1";
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let row: (i64, i64) = sqlx::query_as(sql)
            .bind(release)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        row
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let row: (i64, i64) = sqlx::query_as(sql)
            .bind(release)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        row
    }
}

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

async fn sqlite_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tierwise.db").display());
    let store = Store::open(&url).await.unwrap();
    (dir, store)
}

/// A store on a scratch PostgreSQL database (`None`: no URL set).
async fn postgres_store(name: &str) -> Option<(postgres::ScratchDatabase, Store)> {
    let database = postgres::ScratchDatabase::create(name).await?;
    let store = Store::open(&database.url).await.unwrap();
    Some((database, store))
}

async fn done(database: postgres::ScratchDatabase, store: Store) {
    store.close().await;
    database.drop().await;
}

#[tokio::test]
async fn sqlite_huge_step_durations_saturate() {
    let (_dir, store) = sqlite_store().await;
    huge_results_saturate(&store).await;
}

#[tokio::test]
async fn sqlite_many_durations_at_once_all_count() {
    let (_dir, store) = sqlite_store().await;
    many_at_once_all_count(&store).await;
}

#[tokio::test]
async fn postgres_many_durations_at_once_all_count() {
    let Some((database, store)) = postgres_store("durations_at_once").await else {
        return;
    };
    many_at_once_all_count(&store).await;
    done(database, store).await;
}

#[tokio::test]
async fn sqlite_bad_duration_rows_are_skipped() {
    let (_dir, store) = sqlite_store().await;
    bad_rows_are_skipped(
        &store,
        "INSERT INTO step_durations (action, role, release, count, total_ms) \
         VALUES ('install', 'client', '26.4.0.1', 2, 1.8446744073709552e19); \
         INSERT INTO step_durations (action, role, release, count, total_ms) \
         VALUES ('backup', 'server', '26.4.0.1', 1, -5)",
    )
    .await;
}

#[tokio::test]
async fn postgres_huge_step_durations_saturate() {
    let Some((database, store)) = postgres_store("durations").await else {
        return;
    };
    huge_results_saturate(&store).await;
    done(database, store).await;
}

#[tokio::test]
async fn postgres_bad_duration_rows_are_skipped() {
    let Some((database, store)) = postgres_store("duration_rows").await else {
        return;
    };
    bad_rows_are_skipped(
        &store,
        "INSERT INTO step_durations (action, role, release, count, total_ms) \
         VALUES ('install', 'client', '26.4.0.1', -2, 9223372036854775807); \
         INSERT INTO step_durations (action, role, release, count, total_ms) \
         VALUES ('backup', 'server', '26.4.0.1', 1, -5)",
    )
    .await;
    done(database, store).await;
}
