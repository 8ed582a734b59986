//! A database of its own on the test PostgreSQL server, for the PostgreSQL
//! half of a store test: made from TIERWISE_TEST_POSTGRES_URL, dropped at
//! the end.

use sqlx::Executor;

pub struct ScratchDatabase {
    admin: sqlx::PgPool,
    name: String,
    /// The new database's URL, for `Store::open`.
    pub url: String,
}

impl ScratchDatabase {
    /// A new database named after `prefix`, or `None` (the half skipped)
    /// without TIERWISE_TEST_POSTGRES_URL; with TIERWISE_REQUIRE_POSTGRES
    /// set, a missing URL fails the test instead.
    pub async fn create(prefix: &str) -> Option<Self> {
        let Some(admin_url) = std::env::var("TIERWISE_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            assert!(
                std::env::var("TIERWISE_REQUIRE_POSTGRES").is_err(),
                "TIERWISE_REQUIRE_POSTGRES is set but TIERWISE_TEST_POSTGRES_URL is not"
            );
            eprintln!("skipping the PostgreSQL half: set TIERWISE_TEST_POSTGRES_URL");
            return None;
        };
        let name = format!(
            "tierwise_{prefix}_{}_{}",
            std::process::id(),
            fastrand::u32(..)
        );
        let admin = sqlx::PgPool::connect(&admin_url)
            .await
            .expect("connect to TIERWISE_TEST_POSTGRES_URL");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        Some(Self { admin, name, url })
    }

    /// Drops the database, with any connection still open to it.
    pub async fn drop(self) {
        self.admin
            .execute(format!("DROP DATABASE {} WITH (FORCE)", self.name).as_str())
            .await
            .unwrap();
    }
}
