//! Migrations compiled into the binary, one directory per backend.
//!
//! They are embedded with `include_str!` instead of sqlx's `migrate!` macro
//! so the build needs no proc-macro copy of the database drivers.

use super::Backend;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

/// (version, description, SQLite SQL, PostgreSQL SQL), in order.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "inventory",
        include_str!("../../migrations/sqlite/0001_inventory.sql"),
        include_str!("../../migrations/postgres/0001_inventory.sql"),
    ),
    (
        2,
        "catalogue and licences",
        include_str!("../../migrations/sqlite/0002_catalogue_licences.sql"),
        include_str!("../../migrations/postgres/0002_catalogue_licences.sql"),
    ),
    (
        3,
        "rollouts and audit log",
        include_str!("../../migrations/sqlite/0003_rollouts.sql"),
        include_str!("../../migrations/postgres/0003_rollouts.sql"),
    ),
    (
        4,
        "artifacts",
        include_str!("../../migrations/sqlite/0004_artifacts.sql"),
        include_str!("../../migrations/postgres/0004_artifacts.sql"),
    ),
    (
        5,
        "step progress",
        include_str!("../../migrations/sqlite/0005_step_progress.sql"),
        include_str!("../../migrations/postgres/0005_step_progress.sql"),
    ),
    (
        6,
        "enrollment tokens, agent certificates, operators",
        include_str!("../../migrations/sqlite/0006_security.sql"),
        include_str!("../../migrations/postgres/0006_security.sql"),
    ),
    (
        7,
        "placement of auto clients",
        include_str!("../../migrations/sqlite/0007_placement.sql"),
        include_str!("../../migrations/postgres/0007_placement.sql"),
    ),
    (
        8,
        "rollout nonce",
        include_str!("../../migrations/sqlite/0008_rollout_nonce.sql"),
        include_str!("../../migrations/postgres/0008_rollout_nonce.sql"),
    ),
    (
        9,
        "restarts",
        include_str!("../../migrations/sqlite/0009_restarts.sql"),
        include_str!("../../migrations/postgres/0009_restarts.sql"),
    ),
    (
        10,
        "replicas",
        include_str!("../../migrations/sqlite/0010_replicas.sql"),
        include_str!("../../migrations/postgres/0010_replicas.sql"),
    ),
    (
        11,
        "engine inbox",
        include_str!("../../migrations/sqlite/0011_engine_inbox.sql"),
        include_str!("../../migrations/postgres/0011_engine_inbox.sql"),
    ),
    (
        12,
        "certificate renewal",
        include_str!("../../migrations/sqlite/0012_renewal.sql"),
        include_str!("../../migrations/postgres/0012_renewal.sql"),
    ),
    (
        13,
        "audit chain",
        include_str!("../../migrations/sqlite/0013_audit_chain.sql"),
        include_str!("../../migrations/postgres/0013_audit_chain.sql"),
    ),
    (
        14,
        "operator token expiry",
        include_str!("../../migrations/sqlite/0014_operator_expiry.sql"),
        include_str!("../../migrations/postgres/0014_operator_expiry.sql"),
    ),
    (
        15,
        "signed release metadata",
        include_str!("../../migrations/sqlite/0015_release_metadata.sql"),
        include_str!("../../migrations/postgres/0015_release_metadata.sql"),
    ),
    (
        16,
        "maintenance windows",
        include_str!("../../migrations/sqlite/0016_windows.sql"),
        include_str!("../../migrations/postgres/0016_windows.sql"),
    ),
    (
        17,
        "step durations",
        include_str!("../../migrations/sqlite/0017_step_durations.sql"),
        include_str!("../../migrations/postgres/0017_step_durations.sql"),
    ),
    (
        18,
        "promotion between installations",
        include_str!("../../migrations/sqlite/0018_promotion.sql"),
        include_str!("../../migrations/postgres/0018_promotion.sql"),
    ),
    (
        19,
        "verified backups",
        include_str!("../../migrations/sqlite/0019_verified_backups.sql"),
        include_str!("../../migrations/postgres/0019_verified_backups.sql"),
    ),
    (
        20,
        "dashboard sessions",
        include_str!("../../migrations/sqlite/0020_dashboard_sessions.sql"),
        include_str!("../../migrations/postgres/0020_dashboard_sessions.sql"),
    ),
    (
        21,
        "backup files per database",
        include_str!("../../migrations/sqlite/0021_backup_files.sql"),
        include_str!("../../migrations/postgres/0021_backup_files.sql"),
    ),
    (
        22,
        "operator tasks and site-made Web Applications",
        include_str!("../../migrations/sqlite/0022_operator_tasks.sql"),
        include_str!("../../migrations/postgres/0022_operator_tasks.sql"),
    ),
    (
        23,
        "notification subscriptions and their outbox",
        include_str!("../../migrations/sqlite/0023_notifications.sql"),
        include_str!("../../migrations/postgres/0023_notifications.sql"),
    ),
    (
        24,
        "step attempts: history that keeps every failure",
        include_str!("../../migrations/sqlite/0024_step_attempts.sql"),
        include_str!("../../migrations/postgres/0024_step_attempts.sql"),
    ),
    (
        25,
        "who added each installer",
        include_str!("../../migrations/sqlite/0025_artifact_owners.sql"),
        include_str!("../../migrations/postgres/0025_artifact_owners.sql"),
    ),
    (
        26,
        "where the audit chain begins and its keying",
        include_str!("../../migrations/sqlite/0026_audit_start.sql"),
        include_str!("../../migrations/postgres/0026_audit_start.sql"),
    ),
    (
        27,
        "a digest of each host's stored inventory",
        include_str!("../../migrations/sqlite/0027_inventory_digest.sql"),
        include_str!("../../migrations/postgres/0027_inventory_digest.sql"),
    ),
];

#[derive(Debug)]
struct Embedded(Backend);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async move {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sqlite, postgres)| {
                    let sql = match self.0 {
                        Backend::Sqlite => *sqlite,
                        Backend::Postgres => *postgres,
                    };
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

pub(super) async fn migrator(backend: Backend) -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded(backend)).await
}
