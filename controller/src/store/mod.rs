//! The controller's store: inventory, catalogue, licences, rollouts,
//! security records and the audit log.
//!
//! One implementation over sqlx's `Any` driver serves both SQLite (the
//! embedded default, one file in WAL mode) and PostgreSQL (the scale-out
//! path). SQL is written in the subset both understand (`$n` parameters,
//! `ON CONFLICT`, BIGINT/INTEGER times in Unix ms, 0/1 flags); each backend
//! has its own migration directory so their DDL can diverge when needed.

pub mod artifacts;
pub mod audit;
mod backups;
mod changes;
pub mod history;
mod ingest;
mod migrations;
pub mod notifications;
mod notify_lease;
pub mod outbox;
pub mod placement;
pub mod promotion;
pub mod release_metadata;
pub mod rollouts;
pub mod security;
pub mod sessions;
pub mod stats;
mod url;
pub mod web_packages;
pub mod windows;

pub use url::{Backend, DatabaseUrl};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Connection, Executor, Row};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tierwise_common::liveness::{is_overdue, MISSED_HEARTBEATS_BEFORE_OFFLINE};
use tierwise_common::{
    Check, ClientFacts, Component, Database, Date, Facts, HostRecord, Inventory, Licence,
    Placement, ProbedVersion, Role, ServerFacts, Version, WebFacts, WebServerKind,
    AUTO_INSTALLATION,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Url(#[from] url::UrlError),
    #[error("cannot open the SQLite database {url}: {source}")]
    SqliteOpen {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot connect to PostgreSQL at {url}: {source}")]
    PostgresConnect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("no answer from the {backend} database at {url} within 10 s; check the host, port and firewall")]
    NoAnswer { backend: Backend, url: String },
    #[error("migrating the {backend} database to the current schema failed: {source}")]
    Migrate {
        backend: Backend,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("the store is closed (the controller is shutting down)")]
    Closed,
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

/// What an agent says about itself when its stream opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostReport {
    pub host_id: String,
    pub hostname: String,
    pub installation: String,
    pub os: String,
    pub agent_version: String,
    pub heartbeat_seconds: u32,
    pub inventory: Inventory,
    /// When the host last started (Unix ms), if the agent says.
    pub boot_ms: Option<i64>,
}

/// Which hosts a listing returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostFilter {
    pub installation: Option<String>,
    pub role: Option<Role>,
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The connect string, for connections of their own (leadership).
    url: Arc<str>,
    /// This process among the controllers sharing the database: random,
    /// new on every start.
    replica: Arc<str>,
    /// The leadership epoch this process holds (0: not the leader). Engine
    /// transactions on PostgreSQL write only while it is still the current
    /// one, so an ex-leader that was paused or cut off cannot write.
    epoch: Arc<std::sync::atomic::AtomicI64>,
    /// Heartbeats noted since the last flush: host id → (session, when).
    /// They reach the store together, once a second, not one write a beat.
    heartbeats: Arc<std::sync::Mutex<std::collections::HashMap<String, (String, i64)>>>,
    /// Writes inventory reports in batches.
    ingest: ingest::Writer,
}

/// The SQLite database holds the fleet's inventory and the audit log: its
/// file (made before SQLite makes it, so it is never readable by others)
/// and its journal files are owner-only. SQLite gives the journal files the
/// database file's permissions when it creates them.
fn keep_private(path: &std::path::Path) {
    // A database in a directory that does not exist: SQLite says so.
    if path
        .parent()
        .is_some_and(|p| !p.as_os_str().is_empty() && !p.is_dir())
    {
        return;
    }
    let journals = ["-wal", "-shm"].map(|suffix| {
        let mut journal = path.as_os_str().to_owned();
        journal.push(suffix);
        std::path::PathBuf::from(journal)
    });
    let existing_journals = journals.iter().filter(|j| j.exists());
    for file in std::iter::once(path).chain(existing_journals.map(|j| j.as_path())) {
        match tierwise_transport::files::private_file(file) {
            Ok(true) => {
                tracing::warn!(file = %file.display(), "the database file was readable by others; it is owner-only now")
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "cannot make the database file owner-only"),
        }
    }
}

/// The most heartbeats one statement writes (three values each, well
/// under both stores' limits on bound values).
const HEARTBEATS_PER_STATEMENT: usize = 512;

impl Store {
    /// Connects, and brings the schema up to date. Fails with a message that
    /// says which database could not be opened and why.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let url = DatabaseUrl::parse(url)?;
        let backend = url.backend();
        let connect_error = |source| match backend {
            Backend::Sqlite => StoreError::SqliteOpen {
                url: url.redacted(),
                source,
            },
            Backend::Postgres => StoreError::PostgresConnect {
                url: url.redacted(),
                source,
            },
        };
        if let Some(path) = url.sqlite_path() {
            keep_private(&path);
        }
        // One direct connection first: the pool would retry a refused or
        // misconfigured connection until its timeout and then report only
        // the timeout; the operator needs the reason, at once.
        let probe = tokio::time::timeout(
            Duration::from_secs(10),
            sqlx::AnyConnection::connect(url.connect_string()),
        )
        .await
        .map_err(|_| StoreError::NoAnswer {
            backend,
            url: url.redacted(),
        })?
        .map_err(connect_error)?;
        // An in-memory SQLite database exists once per connection: keep one.
        let in_memory = url.is_in_memory();
        let options = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite if in_memory => 1,
                // One writer at a time anyway; a few readers beside it.
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            })
            .min_connections(u32::from(in_memory))
            .idle_timeout((!in_memory).then_some(Duration::from_secs(600)))
            .max_lifetime((!in_memory).then_some(Duration::from_secs(1800)))
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never block the writer; NORMAL sync is
                        // durable against a killed process. Foreign keys are
                        // off by default in SQLite.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            });
        let pool = options
            .connect(url.connect_string())
            .await
            .map_err(connect_error)?;
        probe.close().await.ok();
        migrations::migrator(backend)
            .await
            .map_err(|source| StoreError::Migrate { backend, source })?
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate { backend, source })?;
        Ok(Self {
            backend,
            url: url.connect_string().into(),
            replica: format!("{:016x}", fastrand::u64(..)).into(),
            epoch: Arc::default(),
            heartbeats: Arc::default(),
            ingest: ingest::Writer::start(pool.clone()),
            pool,
        })
    }

    /// The database's connect string, for connections of their own.
    pub fn connect_string(&self) -> &str {
        &self.url
    }

    /// This process's replica id.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The leadership epoch this process holds (0: none).
    pub fn epoch(&self) -> i64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records the epoch this process leads under (0: it does not lead); set
    /// by the leadership keeper only.
    pub fn set_epoch(&self, epoch: i64) {
        self.epoch.store(epoch, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Records a hello: creates or updates the host (same host id → same row),
    /// marks it online under `session_id`, and replaces its inventory; drops
    /// what the outbox held for it and restarts the timeout of its
    /// unanswered steps (the engine's `hello` hands them over again).
    /// Hellos arriving together (a reconnect storm) are written in one
    /// transaction with the inventory reports beside them (`ingest.rs`);
    /// this returns once its own is committed.
    pub async fn record_hello(
        &self,
        report: &HostReport,
        session_id: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.ingest
            .write(ingest::Write::Hello(ingest::Hello {
                report: report.clone(),
                session_id: session_id.to_owned(),
                replica: self.replica.clone(),
                now_ms,
            }))
            .await
            .map(|_| ())
    }

    /// Replaces a host's inventory; ignored unless `session_id` is current,
    /// so a stale stream cannot overwrite what a newer one reported. Reports
    /// arriving together are written in one transaction (`ingest.rs`);
    /// this returns once its own is committed.
    pub async fn record_inventory(
        &self,
        host_id: &str,
        session_id: &str,
        inventory: Inventory,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.ingest
            .write(ingest::Write::Inventory(ingest::Report {
                host_id: host_id.to_owned(),
                session_id: session_id.to_owned(),
                inventory,
                now_ms,
            }))
            .await
            .map(ingest::Written::current)
    }

    /// How many inventory reports (hellos included) the store has taken in
    /// over all hosts: what a load tool counts ingestion by.
    pub async fn inventory_reports(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT CAST(COALESCE(SUM(inventory_rev), 0) AS BIGINT) FROM hosts")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Notes a heartbeat in memory; `flush_heartbeats` writes it.
    pub fn note_heartbeat(&self, host_id: &str, session_id: &str, now_ms: i64) {
        self.heartbeats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(host_id.to_owned(), (session_id.to_owned(), now_ms));
    }

    /// Writes the heartbeats noted since the last flush, in one
    /// transaction; a beat of a session that is no longer its host's
    /// current one changes nothing. Returns how many hosts it touched.
    pub async fn flush_heartbeats(&self) -> Result<u64, StoreError> {
        let beats: Vec<(String, (String, i64))> = self
            .heartbeats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain()
            .collect();
        if beats.is_empty() {
            return Ok(0);
        }
        // One statement per part instead of one per host: at 100,000 agents
        // every replica writes hundreds of beats a second.
        let mut tx = self.pool.begin().await?;
        let mut touched = 0;
        let mut rest = beats.as_slice();
        while !rest.is_empty() {
            // Parts of 512 or a power of two, so the statements prepared
            // (and cached) are a handful of shapes, not one per count.
            let size = rest.len().min(HEARTBEATS_PER_STATEMENT);
            let (part, after) = rest.split_at(1 << size.ilog2());
            rest = after;
            let rows = (0..part.len())
                .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "UPDATE hosts SET last_seen_ms = beat.column3, online = 1 FROM (VALUES {rows}) AS beat \
                 WHERE hosts.host_id = beat.column1 AND hosts.session_id = beat.column2 \
                 AND hosts.last_seen_ms < beat.column3"
            );
            let mut update = sqlx::query(&sql);
            for (host_id, (session_id, at)) in part {
                update = update
                    .bind(host_id.as_str())
                    .bind(session_id.as_str())
                    .bind(*at);
            }
            touched += update.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(touched)
    }

    /// A stream ended: the host is offline, unless a newer stream took over.
    pub async fn record_disconnect(
        &self,
        host_id: &str,
        session_id: &str,
    ) -> Result<bool, StoreError> {
        let touched = sqlx::query(
            "UPDATE hosts SET online = 0, session_id = NULL, replica = NULL WHERE host_id = $1 AND session_id = $2",
        )
        .bind(host_id)
        .bind(session_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(touched > 0)
    }

    /// Marks offline every host that missed three heartbeat intervals
    /// (also those left "online" by a controller that was killed). Returns
    /// their ids. The session stays current: if its agent was only late, its
    /// next heartbeat brings the host back online without a reconnect.
    pub async fn sweep_offline(&self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // On PostgreSQL a row another transaction is writing (a hello, a
        // report, heartbeats: the host is alive) is skipped, not waited
        // for: waiting, the sweep and a batch of reports locked each
        // other's rows in opposite orders, and at 100,000 agents reports
        // went in at 185 a second between deadlocks.
        let sql = match self.backend {
            Backend::Postgres => {
                "UPDATE hosts SET online = 0 WHERE host_id IN (SELECT host_id FROM hosts \
                 WHERE online = 1 AND last_seen_ms + $2 * heartbeat_seconds * 1000 < $1 \
                 FOR UPDATE SKIP LOCKED) RETURNING host_id"
            }
            Backend::Sqlite => {
                "UPDATE hosts SET online = 0 \
                 WHERE online = 1 AND last_seen_ms + $2 * heartbeat_seconds * 1000 < $1 \
                 RETURNING host_id"
            }
        };
        let rows = sqlx::query(sql)
            .bind(now_ms)
            .bind(MISSED_HEARTBEATS_BEFORE_OFFLINE)
            .fetch_all(&mut *tx)
            .await?;
        let mut ids = rows
            .iter()
            .map(|row| row.try_get::<String, _>("host_id"))
            .collect::<Result<Vec<_>, _>>()?;
        ids.sort();
        notifications::notice_offline_in(&mut tx, now_ms).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Hosts matching `filter`, ordered by host id. `online` is what a person
    /// would expect at `now_ms`: a host that is overdue shows offline even
    /// before the sweeper has written it down.
    pub async fn list_hosts(
        &self,
        filter: &HostFilter,
        now_ms: i64,
    ) -> Result<Vec<HostRecord>, StoreError> {
        let installation = filter.installation.as_deref().unwrap_or("");
        let role = filter.role.map(Role::as_str).unwrap_or("");
        let host_filter = "($1 = '' OR h.installation = $1) AND ($2 = '' OR EXISTS \
             (SELECT 1 FROM components r WHERE r.host_id = h.host_id AND r.role = $2))";
        self.load_hosts(
            host_filter,
            &[installation, role],
            None,
            Liveness::At(now_ms),
        )
        .await
    }

    /// One page of `list_hosts`: at most `limit` hosts whose id sorts after
    /// `after` ("" for the first page), in host id order.
    pub async fn list_hosts_page(
        &self,
        filter: &HostFilter,
        after: &str,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<HostRecord>, StoreError> {
        let installation = filter.installation.as_deref().unwrap_or("");
        let role = filter.role.map(Role::as_str).unwrap_or("");
        let host_filter = "($1 = '' OR h.installation = $1) AND ($2 = '' OR EXISTS \
             (SELECT 1 FROM components r WHERE r.host_id = h.host_id AND r.role = $2)) \
             AND h.host_id > $3";
        self.load_hosts(
            host_filter,
            &[installation, role, after],
            Some(limit),
            Liveness::At(now_ms),
        )
        .await
    }

    pub async fn get_host(
        &self,
        host_id: &str,
        now_ms: i64,
    ) -> Result<Option<HostRecord>, StoreError> {
        let mut hosts = self
            .load_hosts("h.host_id = $1", &[host_id], None, Liveness::At(now_ms))
            .await?;
        Ok(hosts.pop())
    }

    /// Hosts that match `host_filter` (SQL over `h`, with `params`), with
    /// their components and databases read in one snapshot; with `limit`,
    /// the first that many in host id order.
    async fn load_hosts(
        &self,
        host_filter: &str,
        params: &[&str],
        limit: Option<usize>,
        liveness: Liveness,
    ) -> Result<Vec<HostRecord>, StoreError> {
        let limit_sql = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
        let host_sql = format!(
            "SELECT h.host_id, h.hostname, h.installation, h.os, h.agent_version, \
                    h.first_seen_ms, h.last_seen_ms, h.heartbeat_seconds, h.online, \
                    h.claimed_installation, h.placement_note, h.boot_ms, h.volumes \
             FROM hosts h WHERE {host_filter} ORDER BY h.host_id{limit_sql}"
        );
        // With a limit, components and databases are read for the hosts of
        // the page only: up to the page's last host id.
        let (host_filter, last_param) = if limit.is_some() {
            (
                format!("{host_filter} AND h.host_id <= ${}", params.len() + 1),
                true,
            )
        } else {
            (host_filter.to_owned(), false)
        };
        let component_sql = format!(
            "SELECT c.host_id, c.role, c.version, c.probe_error, c.web_server_kind, \
                    c.web_docroot, c.web_websocket, c.client_update_check, c.databases_error, \
                    c.client_profiles, c.backup_location, c.server_commands, c.web_app_output, \
                    c.web_packages, c.missing_services \
             FROM components c JOIN hosts h ON h.host_id = c.host_id WHERE {host_filter}"
        );
        let database_sql = format!(
            "SELECT d.host_id, d.name, d.active, d.patch_level \
             FROM databases d JOIN hosts h ON h.host_id = d.host_id WHERE {host_filter} \
             ORDER BY d.host_id, d.name"
        );
        // One snapshot for the three reads, so a host and its components
        // always come from the same report.
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await?;
        }
        let host_rows = bind_all(&host_sql, params).fetch_all(&mut *tx).await?;
        let last: Option<String> = match host_rows.last() {
            Some(row) if last_param => Some(row.try_get("host_id")?),
            _ => None,
        };
        let mut params = params.to_vec();
        if last_param {
            let Some(last) = last.as_deref() else {
                tx.commit().await?;
                return Ok(Vec::new());
            };
            params.push(last);
        }
        let component_rows = bind_all(&component_sql, &params)
            .fetch_all(&mut *tx)
            .await?;
        let database_rows = bind_all(&database_sql, &params).fetch_all(&mut *tx).await?;
        tx.commit().await?;

        let mut databases: BTreeMap<String, Vec<Database>> = BTreeMap::new();
        for row in &database_rows {
            let host_id: String = row.try_get("host_id")?;
            let patch_level = optional_version(row, "patch_level")?;
            databases.entry(host_id).or_default().push(Database {
                name: row.try_get("name")?,
                active: row.try_get::<i64, _>("active")? != 0,
                patch_level,
            });
        }
        let mut components: BTreeMap<String, Vec<Component>> = BTreeMap::new();
        for row in &component_rows {
            let host_id: String = row.try_get("host_id")?;
            let component = component_from_row(row, &mut databases)?;
            components.entry(host_id).or_default().push(component);
        }
        host_rows
            .iter()
            .map(|row| {
                let host_id: String = row.try_get("host_id")?;
                let volumes: Vec<tierwise_common::Volume> = row
                    .try_get::<Option<String>, _>("volumes")?
                    .map(|text| serde_json::from_str(&text))
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(format!("host `{host_id}`: volumes: {e}")))?
                    .unwrap_or_default();
                let inventory = Inventory::new(components.remove(&host_id).unwrap_or_default())
                    .and_then(|i| i.with_volumes(volumes))
                    .map_err(|e| StoreError::Corrupt(format!("host `{host_id}`: {e}")))?;
                let heartbeat_seconds = u32::try_from(row.try_get::<i64, _>("heartbeat_seconds")?)
                    .map_err(|_| StoreError::Corrupt(format!("host `{host_id}`: heartbeat")))?;
                let last_seen_ms: i64 = row.try_get("last_seen_ms")?;
                let stored_online = row.try_get::<i64, _>("online")? != 0;
                let installation: String = row.try_get("installation")?;
                let claimed: Option<String> = row.try_get("claimed_installation")?;
                let note: Option<String> = row.try_get("placement_note")?;
                let placement = (claimed.as_deref() == Some(AUTO_INSTALLATION)).then(|| {
                    let note = note.unwrap_or_default();
                    if installation == AUTO_INSTALLATION {
                        Placement::Unassigned { reason: note }
                    } else {
                        Placement::Placed {
                            installation: installation.clone(),
                            by: note,
                        }
                    }
                });
                Ok(HostRecord {
                    hostname: row.try_get("hostname")?,
                    installation,
                    placement,
                    os: row.try_get("os")?,
                    agent_version: row.try_get("agent_version")?,
                    online: match liveness {
                        Liveness::At(now_ms) => {
                            stored_online && !is_overdue(last_seen_ms, heartbeat_seconds, now_ms)
                        }
                        Liveness::Stored => stored_online,
                    },
                    first_seen_ms: row.try_get("first_seen_ms")?,
                    last_seen_ms,
                    heartbeat_seconds,
                    inventory,
                    boot_ms: row.try_get("boot_ms")?,
                    host_id,
                })
            })
            .collect()
    }
}

/// How `online` is read for a host.
#[derive(Clone, Copy, Debug)]
enum Liveness {
    /// What a person would expect at this time (Unix ms): overdue hosts
    /// show offline before the sweeper writes it down.
    At(i64),
    /// As stored: changed by hellos, disconnects and the sweeper, each of
    /// which the engine is told about (an answer it may keep).
    Stored,
}

/// The catalogue in force, as the operator imported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCatalogue {
    pub source: String,
    pub imported_ms: i64,
    pub document: String,
}

impl Store {
    /// Stores an imported catalogue document (already validated by the
    /// caller); from now on it is the catalogue in force.
    pub async fn import_catalogue(
        &self,
        source: &str,
        document: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO catalogues (imported_ms, source, document) VALUES ($1, $2, $3)")
            .bind(now_ms)
            .bind(source)
            .bind(document)
            .execute(&mut *tx)
            .await?;
        audit_in(&mut tx, now_ms, actor, "catalogue import", source, "").await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn current_catalogue(&self) -> Result<Option<StoredCatalogue>, StoreError> {
        let row = sqlx::query(
            "SELECT source, imported_ms, document FROM catalogues ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(StoredCatalogue {
                source: row.try_get("source")?,
                imported_ms: row.try_get("imported_ms")?,
                document: row.try_get("document")?,
            })
        })
        .transpose()
    }

    /// Installation names known to the controller (from agents' hellos).
    pub async fn installations(&self) -> Result<Vec<String>, StoreError> {
        // `auto` holds the clients not placed yet; it is no installation.
        let rows = sqlx::query("SELECT name FROM installations WHERE name <> $1 ORDER BY name")
            .bind(AUTO_INSTALLATION)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| row.try_get::<String, _>("name").map_err(StoreError::from))
            .collect()
    }

    /// Records an installation's maintenance end date. False when the
    /// installation is unknown (nothing is written then).
    pub async fn set_licence(
        &self,
        installation: &str,
        maintenance_until: Date,
        actor: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Write first: the installation row is locked for the transaction
        // (and SQLite takes its write lock now, not after a read, which
        // would fail with SQLITE_BUSY_SNAPSHOT instead of waiting).
        let known = lock_installation(&mut tx, installation).await?;
        if !known {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO licences (installation, maintenance_until, updated_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (installation) DO UPDATE SET \
                maintenance_until = excluded.maintenance_until, updated_ms = excluded.updated_ms",
        )
        .bind(installation)
        .bind(maintenance_until.to_string())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let details = format!("maintenance until {maintenance_until}");
        audit_in(
            &mut tx,
            now_ms,
            actor,
            "licence set",
            installation,
            &details,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every recorded licence, by installation.
    pub async fn licences(&self) -> Result<Vec<Licence>, StoreError> {
        let rows = sqlx::query(
            "SELECT installation, maintenance_until FROM licences ORDER BY installation",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let installation: String = row.try_get("installation")?;
                let text: String = row.try_get("maintenance_until")?;
                let maintenance_until = Date::parse(&text).map_err(|e| {
                    StoreError::Corrupt(format!("licence of `{installation}`: {e}"))
                })?;
                Ok(Licence {
                    installation,
                    maintenance_until,
                })
            })
            .collect()
    }
}

impl Store {
    /// Records an installer of a release and role (replacing an older one).
    /// Records a stored installer for its release and role, with its audit
    /// entry, in one transaction.
    pub async fn record_artifact(
        &self,
        artifact: &NewArtifact<'_>,
        actor: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let NewArtifact {
            release,
            role,
            sha256,
            file_name,
            size,
        } = *artifact;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO artifacts (release, role, sha256, file_name, size, added_ms, added_by) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (release, role) DO UPDATE SET sha256 = excluded.sha256, file_name = excluded.file_name, \
                size = excluded.size, added_ms = excluded.added_ms, added_by = excluded.added_by",
        )
        .bind(release)
        .bind(role.as_str())
        .bind(sha256)
        .bind(file_name)
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(now_ms)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        let subject = format!("{role} {release}");
        let details = format!("{file_name} sha256 {sha256}, {size} bytes");
        audit_in(&mut tx, now_ms, actor, "artifact add", &subject, &details).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The SHA-256 of the stored installer of a release and role.
    pub async fn artifact(
        &self,
        release: &str,
        role: Role,
    ) -> Result<Option<(String, u64)>, StoreError> {
        let row =
            sqlx::query("SELECT sha256, size FROM artifacts WHERE release = $1 AND role = $2")
                .bind(release)
                .bind(role.as_str())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            let size: i64 = r.try_get("size")?;
            Ok((
                r.try_get::<String, _>("sha256")?,
                u64::try_from(size).unwrap_or_default(),
            ))
        })
        .transpose()
    }
}

/// An installer to record: release, component role, checksum, name, size.
#[derive(Clone, Copy, Debug)]
pub struct NewArtifact<'a> {
    pub release: &'a str,
    pub role: Role,
    pub sha256: &'a str,
    pub file_name: &'a str,
    pub size: u64,
}

/// Appends an entry to the audit log's hash chain, in the caller's
/// transaction: takes the chain's head (its row lock orders concurrent
/// appends), links the entry to it (keyed once the chain is, see
/// `audit::entry_hash`) and moves it on.
pub(crate) async fn audit_in(
    conn: &mut sqlx::AnyConnection,
    now_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
    details: &str,
) -> Result<(), sqlx::Error> {
    let head = sqlx::query(
        "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, sha256, keyed_from",
    )
    .fetch_one(&mut *conn)
    .await?;
    let seq: i64 = head.try_get("seq")?;
    let prev: String = head.try_get("sha256")?;
    let keyed_from: i64 = head.try_get("keyed_from")?;
    let sha256 = audit::entry_hash(
        keyed_from, &prev, seq, now_ms, actor, action, subject, details,
    )?;
    sqlx::query("UPDATE audit_head SET sha256 = $1 WHERE id = 1")
        .bind(&sha256)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO audit_log (seq, at_ms, actor, action, subject, details, prev_sha256, sha256) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(seq)
    .bind(now_ms)
    .bind(actor)
    .bind(action)
    .bind(subject)
    .bind(details)
    .bind(&prev)
    .bind(&sha256)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A no-op write that locks an installation's row for the transaction;
/// false when there is no such installation. Read-then-write transactions
/// start with a write like this: on SQLite it takes the write lock at once
/// (waiting for the busy timeout), on PostgreSQL it serialises them per row.
pub(crate) async fn lock_installation(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    installation: &str,
) -> Result<bool, StoreError> {
    let touched = sqlx::query("UPDATE installations SET created_ms = created_ms WHERE name = $1")
        .bind(installation)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(touched > 0)
}

fn bind_all<'q>(
    sql: &'q str,
    params: &[&str],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut query = sqlx::query(sql);
    for param in params {
        query = query.bind(param.to_string());
    }
    query
}

/// One hello within `tx`: creates or updates the host, marks it online
/// under `session_id` on `replica`, and replaces its inventory.
async fn hello_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    report: &HostReport,
    session_id: &str,
    replica: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    // An `auto` host starts (or stays) where it was placed until its
    // new profiles are read below.
    placement::ensure_installation(tx, report.installation.as_str()).await?;
    let stored: Option<Option<String>> =
        sqlx::query_scalar("SELECT inventory_sha256 FROM hosts WHERE host_id = $1")
            .bind(report.host_id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
    let row = sqlx::query(
        "INSERT INTO hosts (host_id, hostname, installation, os, agent_version, \
                            first_seen_ms, last_seen_ms, heartbeat_seconds, online, session_id, \
                            claimed_installation, boot_ms, replica, inventory_rev) \
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7, 1, $8, $3, $9, $10, 1) \
         ON CONFLICT (host_id) DO UPDATE SET \
            hostname = excluded.hostname, \
            installation = CASE WHEN excluded.installation = 'auto' \
                AND hosts.claimed_installation = 'auto' \
                THEN hosts.installation ELSE excluded.installation END, \
            claimed_installation = excluded.claimed_installation, \
            placement_note = CASE WHEN excluded.installation = 'auto' \
                THEN hosts.placement_note ELSE NULL END, \
            os = excluded.os, agent_version = excluded.agent_version, \
            last_seen_ms = excluded.last_seen_ms, \
            heartbeat_seconds = excluded.heartbeat_seconds, online = 1, \
            session_id = excluded.session_id, boot_ms = excluded.boot_ms, \
            replica = excluded.replica, inventory_rev = hosts.inventory_rev + 1 \
         RETURNING installation",
    )
    .bind(report.host_id.as_str())
    .bind(report.hostname.as_str())
    .bind(report.installation.as_str())
    .bind(report.os.as_str())
    .bind(report.agent_version.as_str())
    .bind(now_ms)
    .bind(i64::from(report.heartbeat_seconds))
    .bind(session_id)
    .bind(report.boot_ms)
    .bind(replica)
    .fetch_one(&mut **tx)
    .await?;
    // Every agent says hello again after a restart of the controllers,
    // nearly always with what it reported before.
    if stored.flatten() != Some(inventory_digest(&report.inventory)) {
        write_inventory(tx, &report.host_id, &report.inventory).await?;
    }
    if report.installation == AUTO_INSTALLATION {
        let current: String = row.try_get("installation")?;
        placement::place_one(tx, &report.host_id, &current, &report.inventory).await?;
    }
    if placement::moves_others(&report.installation, &report.inventory) {
        placement::place_all(tx).await?;
    }
    outbox::clear_outbox_in(tx, &report.host_id).await?;
    rollouts::touch_dispatched_in(tx, &report.host_id, now_ms).await?;
    Ok(())
}

/// One inventory report within `tx`: false (nothing written) unless
/// `session_id` is the host's current session.
async fn inventory_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    host_id: &str,
    session_id: &str,
    inventory: &Inventory,
    now_ms: i64,
) -> Result<bool, StoreError> {
    // One statement both checks the session and says where the host
    // belongs: this runs for every inventory report.
    let Some(row) = sqlx::query(
        "UPDATE hosts SET last_seen_ms = $3, online = 1, inventory_rev = inventory_rev + 1 \
         WHERE host_id = $1 AND session_id = $2 \
         RETURNING installation, claimed_installation",
    )
    .bind(host_id)
    .bind(session_id)
    .bind(now_ms)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(false);
    };
    write_inventory(tx, host_id, inventory).await?;
    let installation: String = row.try_get("installation")?;
    let claimed: Option<String> = row.try_get("claimed_installation")?;
    if claimed.as_deref() == Some(AUTO_INSTALLATION) {
        placement::place_one(tx, host_id, &installation, inventory).await?;
    } else if placement::moves_others(&installation, inventory) {
        placement::place_all(tx).await?;
    }
    Ok(true)
}

/// What `hosts.inventory_sha256` holds: a digest of everything
/// `write_inventory` stores. It is taken over the inventory's `Debug` form,
/// which holds every field in a fixed order (lists and ordered sets only);
/// another build of the controller may write it differently, which costs
/// one rewrite of that host's rows, never a missed one.
fn inventory_digest(inventory: &Inventory) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{inventory:?}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Replaces a host's components and databases. Callers count the report in
/// `hosts.inventory_rev` in the same transaction (in the statement that
/// checks the session), which tells the engine through its inbox trigger.
async fn write_inventory(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    host_id: &str,
    inventory: &Inventory,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM databases WHERE host_id = $1")
        .bind(host_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM components WHERE host_id = $1")
        .bind(host_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("UPDATE hosts SET volumes = $2, inventory_sha256 = $3 WHERE host_id = $1")
        .bind(host_id)
        .bind(
            serde_json::to_string(inventory.volumes())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        )
        .bind(inventory_digest(inventory))
        .execute(&mut **tx)
        .await?;
    for component in inventory.components() {
        let (version, probe_error) = match &component.version {
            ProbedVersion::Installed(v) => (Some(v.to_string()), None),
            ProbedVersion::NotInstalled => (None, None),
            ProbedVersion::Unknown(why) => (None, Some(why.clone())),
        };
        let mut web_server_kind = None;
        let mut web_docroot = None;
        let mut web_websocket = None;
        let mut client_update_check = None;
        let mut client_profiles = None;
        let mut databases_error = None;
        let mut backup_location = None;
        let mut server_commands = None;
        let mut web_app_output = None;
        let mut web_packages = None;
        let mut missing_services = None;
        match &component.facts {
            Facts::None => {}
            Facts::Server(server) => {
                databases_error = server.databases_error.clone();
                backup_location = server.backup_location.clone();
                server_commands = server
                    .commands
                    .as_ref()
                    .map(|c| c.iter().cloned().collect::<Vec<_>>().join(","));
                web_app_output = server.web_app_output.clone();
                if !server.missing_services.is_empty() {
                    missing_services = Some(
                        serde_json::to_string(&server.missing_services)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    );
                }
                for db in &server.databases {
                    sqlx::query(
                        "INSERT INTO databases (host_id, name, active, patch_level) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(host_id)
                    .bind(db.name.as_str())
                    .bind(i64::from(db.active))
                    .bind(db.patch_level.map(|v| v.to_string()))
                    .execute(&mut **tx)
                    .await?;
                }
            }
            Facts::Web(web) => {
                web_server_kind = Some(web.server_kind.as_str());
                web_docroot = Some(web.docroot.clone());
                web_websocket = Some(web.websocket.as_str());
                web_packages = web.packages.as_ref().map(|p| {
                    p.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                });
            }
            Facts::Client(client) => {
                client_update_check = Some(client.update_check_enabled.as_str());
                client_profiles = Some(placement::profiles_to_json(&client.profiles));
            }
        }
        sqlx::query(
            "INSERT INTO components (host_id, role, version, probe_error, web_server_kind, \
                web_docroot, web_websocket, client_update_check, databases_error, client_profiles, \
                backup_location, server_commands, web_app_output, web_packages, missing_services) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(host_id)
        .bind(component.role.as_str())
        .bind(version)
        .bind(probe_error)
        .bind(web_server_kind.map(str::to_owned))
        .bind(web_docroot)
        .bind(web_websocket.map(str::to_owned))
        .bind(client_update_check.map(str::to_owned))
        .bind(databases_error)
        .bind(client_profiles)
        .bind(backup_location)
        .bind(server_commands)
        .bind(web_app_output)
        .bind(web_packages)
        .bind(missing_services)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn optional_version(row: &AnyRow, column: &str) -> Result<Option<Version>, StoreError> {
    row.try_get::<Option<String>, _>(column)?
        .map(|text| {
            Version::parse(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
        })
        .transpose()
}

fn check_from_row(row: &AnyRow, column: &str) -> Result<Check, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    Ok(text.as_deref().and_then(Check::parse).unwrap_or_default())
}

fn component_from_row(
    row: &AnyRow,
    databases: &mut BTreeMap<String, Vec<Database>>,
) -> Result<Component, StoreError> {
    let host_id: String = row.try_get("host_id")?;
    let role_text: String = row.try_get("role")?;
    let role: Role = role_text
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("host `{host_id}`: {e}")))?;
    let version = match (
        optional_version(row, "version")?,
        row.try_get::<Option<String>, _>("probe_error")?,
    ) {
        (Some(v), _) => ProbedVersion::Installed(v),
        (None, Some(why)) => ProbedVersion::Unknown(why),
        (None, None) => ProbedVersion::NotInstalled,
    };
    let facts = match role {
        Role::Server => Facts::Server(ServerFacts {
            databases: databases.remove(&host_id).unwrap_or_default(),
            databases_error: row.try_get("databases_error")?,
            backup_location: row.try_get("backup_location")?,
            commands: row
                .try_get::<Option<String>, _>("server_commands")?
                .map(|text| {
                    text.split(',')
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned)
                        .collect()
                }),
            web_app_output: row.try_get("web_app_output")?,
            missing_services: row
                .try_get::<Option<String>, _>("missing_services")?
                .map(|text| serde_json::from_str(&text))
                .transpose()
                .map_err(|e| {
                    StoreError::Corrupt(format!("host `{host_id}`: missing services: {e}"))
                })?
                .unwrap_or_default(),
        }),
        Role::Web => {
            let kind: Option<String> = row.try_get("web_server_kind")?;
            match kind.as_deref().and_then(WebServerKind::parse) {
                Some(server_kind) => Facts::Web(WebFacts {
                    server_kind,
                    docroot: row
                        .try_get::<Option<String>, _>("web_docroot")?
                        .unwrap_or_default(),
                    websocket: check_from_row(row, "web_websocket")?,
                    packages: row
                        .try_get::<Option<String>, _>("web_packages")?
                        .map(|text| {
                            text.split(',')
                                .filter(|v| !v.is_empty())
                                .map(|v| {
                                    Version::parse(v).map_err(|e| {
                                        StoreError::Corrupt(format!(
                                            "host `{host_id}`: web package {e}"
                                        ))
                                    })
                                })
                                .collect::<Result<Vec<_>, _>>()
                        })
                        .transpose()?,
                }),
                None => Facts::None,
            }
        }
        Role::Client => Facts::Client(ClientFacts {
            update_check_enabled: check_from_row(row, "client_update_check")?,
            profiles: placement::profiles_from_json(row.try_get("client_profiles")?)?,
        }),
        Role::AppServer => Facts::None,
    };
    Ok(Component {
        role,
        version,
        facts,
    })
}
