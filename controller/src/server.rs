//! `tierwise serve`: opens the store, listens for agents and operators, and
//! keeps the online/offline view true.

use crate::engine::Engine;
use crate::grpc::auth::{Authenticator, Guard};
use crate::grpc::sessions::Sessions;
use crate::grpc::{admin::AdminApi, agent::AgentGateway};
use crate::pki::{Pki, PkiSettings};
use crate::store::{DatabaseUrl, Store};
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tierwise_proto::v1::admin_service_server::AdminServiceServer;
use tierwise_proto::v1::agent_service_server::AgentServiceServer;
use tierwise_proto::{
    MAX_ADMIN_MESSAGE_BYTES, MAX_AGENT_MESSAGE_BYTES, MAX_CONTROLLER_MESSAGE_BYTES,
};
use tierwise_runtime::clock::now_ms;
use tierwise_transport::server::{AcceptLimits, ActivityLayer, PlainLimits};
use tierwise_transport::Fingerprint;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// How often the controller looks for hosts that stopped heartbeating.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// How long a shutdown waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Everything `serve` needs, already resolved from defaults and flags.
#[derive(Clone, Debug)]
pub struct ServeSettings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: DatabaseUrl,
    pub pki: PkiSettings,
    /// How long an agent's certificate is valid; agents renew after half.
    pub agent_certificate_lifetime: Duration,
    /// TLS handshakes in flight from one address (behind a load balancer
    /// in TCP mode every agent comes from its address: raise it there).
    pub max_handshakes_per_address: usize,
    /// Agent sessions close after about this long (jittered) so streams
    /// spread again over replicas behind a load balancer; `None`: never.
    pub max_session_age: Option<Duration>,
    /// Rate limits and the coalescing of refused calls in the audit log.
    pub limits: crate::grpc::limits::LimitSettings,
    /// A plaintext listener that serves only the gRPC health service (for
    /// probes that speak no TLS); `None`: none.
    pub health_listen: Option<SocketAddr>,
    /// A plaintext HTTP listener for Prometheus (`GET /metrics`); `None`:
    /// none.
    pub metrics_listen: Option<SocketAddr>,
    /// The web dashboard's TLS listener; `None`: no dashboard.
    pub ui_listen: Option<SocketAddr>,
    /// Rollouts of installers that signed release metadata does not cover
    /// may start (the plan warns loudly); off: they are refused.
    pub allow_unsigned_releases: bool,
    /// The only root release metadata may come from (64 lowercase hex
    /// digits); `None`: the root of the first metadata imported.
    pub release_root: Option<String>,
}

/// Handshakes in flight from one address unless configured: one peer
/// cannot hold every slot.
pub const DEFAULT_HANDSHAKES_PER_ADDRESS: usize = 64;

/// Agents' certificates are valid this long by default.
pub const DEFAULT_AGENT_CERTIFICATE_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// The shortest lifetime accepted (for tests and trials of renewal).
pub const MIN_AGENT_CERTIFICATE_LIFETIME: Duration = Duration::from_secs(10);

impl ServeSettings {
    /// Defaults < flags. The database defaults to `tierwise.db` in the data
    /// directory.
    pub fn resolve(
        listen: Option<SocketAddr>,
        data_dir: Option<PathBuf>,
        database_url: Option<&str>,
    ) -> anyhow::Result<Self> {
        let listen = listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], tierwise_proto::DEFAULT_PORT)));
        let data_dir = data_dir.unwrap_or_else(crate::paths::default_data_dir);
        let database = match database_url {
            Some(url) => DatabaseUrl::parse(url)?,
            None => DatabaseUrl::sqlite_file(&data_dir.join("tierwise.db")),
        };
        Ok(Self {
            listen,
            data_dir,
            database,
            pki: PkiSettings::default(),
            agent_certificate_lifetime: DEFAULT_AGENT_CERTIFICATE_LIFETIME,
            max_handshakes_per_address: DEFAULT_HANDSHAKES_PER_ADDRESS,
            max_session_age: None,
            limits: crate::grpc::limits::LimitSettings::default(),
            health_listen: None,
            metrics_listen: None,
            ui_listen: None,
            allow_unsigned_releases: false,
            release_root: None,
        })
    }
}

/// A controller that is up and serving.
#[derive(Debug)]
pub struct RunningController {
    pub addr: SocketAddr,
    pub store: Store,
    /// The CA's fingerprint, which agents pin.
    pub fingerprint: Fingerprint,
    /// Where the plaintext health listener listens, if there is one.
    pub health_addr: Option<SocketAddr>,
    /// Where `GET /metrics` is served, if it is.
    pub metrics_addr: Option<SocketAddr>,
    metrics: Option<JoinHandle<std::io::Result<()>>>,
    /// Where the web dashboard is served, if it is.
    pub ui_addr: Option<SocketAddr>,
    ui: Option<JoinHandle<()>>,
    health: tonic_health::server::HealthReporter,
    probe: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    sessions: Sessions,
    /// Resolves (recv returns None) once every session task has ended.
    drained: mpsc::Receiver<()>,
    stop: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    sweeper: JoinHandle<()>,
    refusal_audit: JoinHandle<()>,
    engine: JoinHandle<()>,
    /// The outbox reader and the leadership keeper.
    outbox: JoinHandle<()>,
    leadership: JoinHandle<()>,
    /// Sends webhook notifications from the store's notification outbox.
    notifier: JoinHandle<()>,
    /// Logs the audit chain's head every hour.
    audit_head_log: JoinHandle<()>,
    /// Held while the controller runs: one controller per SQLite file.
    _sqlite_lock: Option<std::fs::File>,
}

impl RunningController {
    /// Stops accepting, ends every agent session (each records its host as
    /// offline) and waits for the server and the sessions to finish, at most
    /// `SHUTDOWN_GRACE`; then closes the store.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        // Probes see the drain at once; the plaintext one answers until the end.
        crate::grpc::health::mark(&self.health, false).await;
        self.sweeper.abort();
        self.refusal_audit.abort();
        self.engine.abort();
        self.leadership.abort();
        self.outbox.abort();
        self.notifier.abort();
        self.audit_head_log.abort();
        let _ = self.stop.send(true);
        self.sessions.close_all();
        let finished = tokio::time::timeout(SHUTDOWN_GRACE, async {
            let served = (&mut self.server).await;
            // The server owned the gateway; with it gone only session tasks
            // hold drain senders.
            while self.drained.recv().await.is_some() {}
            served
        })
        .await;
        let served = match finished {
            Ok(joined) => joined.context("the gRPC server task failed")?,
            Err(_) => {
                warn!(
                    "connections did not close within {} s; stopping anyway",
                    SHUTDOWN_GRACE.as_secs()
                );
                self.server.abort();
                Ok(())
            }
        };
        if let Some(probe) = self.probe.take() {
            probe.abort();
        }
        if let Some(metrics) = self.metrics.take() {
            metrics.abort();
        }
        if let Some(ui) = self.ui.take() {
            ui.abort();
        }
        if let Err(error) = self.store.flush_heartbeats().await {
            warn!(%error, "could not write the last heartbeats");
        }
        self.store.close().await;
        served.context("the gRPC server failed")
    }

    /// Waits until the server stops by itself (it only does on error).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.server)
            .await
            .context("the gRPC server task failed")?
            .context("the gRPC server failed")
    }
}

/// Opens the store and starts serving on `settings.listen` (port 0 picks a
/// free port; `RunningController::addr` tells which).
pub async fn start(settings: &ServeSettings) -> anyhow::Result<RunningController> {
    if settings.database.backend() == crate::store::Backend::Sqlite {
        crate::paths::private_data_dir(&settings.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}; choose another with --data-dir",
                settings.data_dir.display()
            )
        })?;
    }
    // Bind before touching the database: a busy port must not leave a
    // freshly created or migrated database behind.
    let listener = listen(settings.listen).with_context(|| {
        format!(
            "cannot listen on {}; is another controller running? Choose another address with --listen",
            settings.listen
        )
    })?;
    let health_listener = match settings.health_listen {
        Some(addr) => Some(listen(addr).with_context(|| {
            format!("cannot listen on {addr} for health probes; choose another address with --health-listen")
        })?),
        None => None,
    };
    let metrics_listener = match settings.metrics_listen {
        Some(addr) => Some(listen(addr).with_context(|| {
            format!(
                "cannot listen on {addr} for metrics; choose another address with --metrics-listen"
            )
        })?),
        None => None,
    };
    let ui_listener = match settings.ui_listen {
        Some(addr) => Some(listen(addr).with_context(|| {
            format!("cannot listen on {addr} for the web dashboard; choose another address with --ui-listen")
        })?),
        None => None,
    };
    // An SQLite store belongs to one controller: a second one on the same
    // file would run a second engine over the same rollouts.
    let sqlite_lock = match settings.database.sqlite_path() {
        Some(path) => lock_sqlite(&path)?,
        None => None,
    };
    let addr = listener.local_addr()?;
    let budget = connection_budget(settings);
    let pki = Arc::new(Pki::load_or_create(
        &settings.data_dir,
        &settings.pki,
        now_ms(),
    )?);
    let tls = pki.server_config()?;
    let store = Store::open(settings.database.connect_string()).await?;
    info!(database = %settings.database.redacted(), backend = %store.backend(), "store ready");
    crate::audit_key::load_or_create(&settings.data_dir, &store).await?;
    first_admin(&store, &settings.data_dir).await?;
    let limits = Arc::new(crate::grpc::limits::Limits::new(&settings.limits));
    let auth = Authenticator::new(store.clone(), limits.clone());
    let refusal_audit = tokio::spawn(auth.clone().run_refusal_audit());
    let sessions = Sessions::default();
    let (drain_tx, drained) = mpsc::channel::<()>(1);
    let engine = Engine::new(store.clone(), Arc::new(sessions.clone())).trusting(
        crate::web_packages::ReleaseTrust {
            allow_unsigned: settings.allow_unsigned_releases,
            release_root: settings.release_root.clone(),
        },
    );
    let artifacts = crate::artifacts::ArtifactStore::new(&settings.data_dir);
    match artifacts.remove_leftovers(crate::artifacts::LEFTOVER_AGE) {
        Ok(0) => {}
        Ok(removed) => info!(removed, "removed partial uploads left by an earlier run"),
        Err(error) => tracing::warn!(%error, "cannot look for partial uploads to remove"),
    }

    let agent_service = AgentServiceServer::new(
        AgentGateway::new(
            store.clone(),
            sessions.clone(),
            engine.clone(),
            artifacts.clone(),
            pki.clone(),
            settings.agent_certificate_lifetime,
            drain_tx,
        )
        .with_max_session_age(settings.max_session_age)
        .with_limits(limits),
    )
    .max_decoding_message_size(MAX_AGENT_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_CONTROLLER_MESSAGE_BYTES);
    let admin_api = AdminApi::new(store.clone(), sessions.clone(), engine.clone(), artifacts)
        .allowing_unsigned_releases(settings.allow_unsigned_releases)
        .pinning_release_root(settings.release_root.clone());
    let (ui, ui_addr) = match ui_listener {
        Some(listener) => {
            let at = listener.local_addr()?;
            let dashboard = crate::ui::Ui::new(admin_api.clone(), auth.clone(), store.clone());
            info!(addr = %at, "web dashboard served at https://{at}/ (TLS)");
            (
                Some(tokio::spawn(crate::ui::serve(
                    listener,
                    pki.browser_config()?,
                    dashboard,
                    budget.dashboard,
                ))),
                Some(at),
            )
        }
        None => (None, None),
    };
    let admin_service = AdminServiceServer::new(admin_api)
        .max_decoding_message_size(MAX_AGENT_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_ADMIN_MESSAGE_BYTES);
    // Authorisation runs before either service sees a call.
    let agent_service = Guard::new(agent_service, auth.clone());
    let admin_service = Guard::new(admin_service, auth.clone());
    let (reflection_v1, reflection_v1alpha) = crate::grpc::health::reflection()?;
    let reflection_v1 = Guard::new(reflection_v1, auth.clone());
    let reflection_v1alpha = Guard::new(reflection_v1alpha, auth);
    // Health answers anyone, also without a client certificate or token.
    let (health, health_service) = tonic_health::server::health_reporter();
    crate::grpc::health::mark(&health, true).await;
    let (metrics, metrics_addr) = match metrics_listener {
        Some(listener) => {
            let at = listener.local_addr()?;
            info!(addr = %at, "metrics served at /metrics (plain HTTP)");
            (
                Some(tokio::spawn(crate::metrics::serve(
                    listener,
                    store.clone(),
                    budget.metrics,
                ))),
                Some(at),
            )
        }
        None => (None, None),
    };
    let (probe, health_addr) = match health_listener {
        Some(listener) => {
            let at = listener.local_addr()?;
            let served = tonic::transport::Server::builder()
                .layer(ActivityLayer)
                .add_service(health_service.clone())
                .serve_with_incoming(tierwise_transport::server::incoming_plain(
                    listener,
                    PlainLimits {
                        idle_timeout: HEALTH_IDLE_TIMEOUT,
                        max_connections: budget.health,
                        max_connections_per_address: HEALTH_CONNECTIONS_PER_ADDRESS,
                    },
                    "health probes",
                ));
            info!(addr = %at, "health probes served without TLS");
            (Some(tokio::spawn(served)), Some(at))
        }
        None => (None, None),
    };

    let (stop, mut stopped) = watch::channel(false);
    let shutdown = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let server = tonic::transport::Server::builder()
        // Dead peers are noticed even when the agent's heartbeat is long.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        // One agent needs one stream (two while it downloads); a peer
        // opening hundreds is misbehaving.
        .max_concurrent_streams(Some(64))
        // Explicit HTTP/2 limits: headers, frames and flow-control windows
        // bound what one peer can make the controller hold.
        .http2_max_header_list_size(Some(16 * 1024))
        .max_frame_size(Some(16 * 1024))
        .initial_stream_window_size(Some(256 * 1024))
        .initial_connection_window_size(Some(1024 * 1024))
        // A peer that opens streams and resets them at once (the "rapid
        // reset" flood) is disconnected.
        .http2_max_pending_accept_reset_streams(Some(32))
        .http2_max_local_error_reset_streams(Some(256))
        // Requests in flight per connection: idle ones without a client
        // certificate are closed.
        .layer(ActivityLayer)
        .add_service(agent_service)
        .add_service(admin_service)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(
            tierwise_transport::server::incoming(
                listener,
                tls,
                AcceptLimits {
                    max_connections: budget.grpc,
                    max_connections_per_address: settings.max_handshakes_per_address.max(1),
                    ..AcceptLimits::default()
                },
            ),
            shutdown,
        );
    let server = tokio::spawn(server);
    let sweeper = tokio::spawn(sweep_offline(store.clone()));
    let outbox = tokio::spawn(engine.clone().run_outbox());
    let leadership = tokio::spawn(lead(store.clone(), engine.clone()));
    let notifier = tokio::spawn(crate::notify::run(store.clone()));
    let audit_head_log = tokio::spawn(crate::audit_key::publish_head(store.clone()));
    let engine_task = tokio::spawn(engine.run());
    info!(%addr, ca_fingerprint = %pki.fingerprint(), "controller listening (TLS)");
    Ok(RunningController {
        addr,
        store,
        fingerprint: pki.fingerprint(),
        health_addr,
        metrics_addr,
        metrics,
        ui_addr,
        ui,
        health,
        probe,
        sessions,
        drained,
        stop,
        server,
        sweeper,
        refusal_audit,
        engine: engine_task,
        outbox,
        leadership,
        notifier,
        audit_head_log,
        _sqlite_lock: sqlite_lock,
    })
}

/// A connection to the plaintext health listener with no call in flight
/// this long is closed (also one that never sends the HTTP/2 preface).
pub const HEALTH_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections to the plaintext health listener from one address at once.
pub const HEALTH_CONNECTIONS_PER_ADDRESS: usize = 16;
/// Where the process has no open-file limit (Windows), the connections
/// are shared out as if it were this.
const OPEN_FILES_WITHOUT_A_LIMIT: u64 = 16_384;

/// Raises the open-file limit to the hard limit and shares it out between
/// the listeners, keeping some for the store, the logs and accepting.
fn connection_budget(settings: &ServeSettings) -> tierwise_transport::slots::Budget {
    let open_files =
        tierwise_transport::accept::raise_open_files().unwrap_or(OPEN_FILES_WITHOUT_A_LIMIT);
    let budget = tierwise_transport::slots::budget(
        open_files,
        tierwise_transport::slots::Listeners {
            health: settings.health_listen.is_some(),
            metrics: settings.metrics_listen.is_some(),
            dashboard: settings.ui_listen.is_some(),
        },
    );
    info!(
        open_files,
        reserved = budget.reserved,
        agents_and_operators = budget.grpc,
        health = budget.health,
        metrics = budget.metrics,
        dashboard = budget.dashboard,
        "connections each listener may hold"
    );
    budget
}

/// Room for a reconnect storm: connections wait in the kernel's queue
/// while handshakes run (the kernel may cap it at `net.core.somaxconn`).
pub const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Takes the SQLite database's lock file (`FILE.lock`), held for the
/// process's life; refuses when another controller holds it. Where the
/// database's directory does not exist there is nothing to lock: opening
/// the store then says what is wrong.
fn lock_sqlite(database: &std::path::Path) -> anyhow::Result<Option<std::fs::File>> {
    if database
        .parent()
        .is_some_and(|dir| !dir.as_os_str().is_empty() && !dir.is_dir())
    {
        return Ok(None);
    }
    let mut path = database.as_os_str().to_owned();
    path.push(".lock");
    let path = PathBuf::from(path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another controller already uses the SQLite database {} (its lock file {} is held); \
             an SQLite store serves one controller — stop the other one, or use PostgreSQL \
             (--database-url postgres://…) to run several",
            database.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Where the first administrator's token is written.
pub fn admin_token_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("admin.token")
}

/// A controller without operators creates the first administrator, `admin`,
/// and writes its token into the data directory, readable only by the
/// controller's user: whoever can read that file owns the controller anyway.
async fn first_admin(store: &Store, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let now = now_ms();
    let operators = store.operators().await?;
    let token = crate::grpc::auth::new_operator_token();
    let digest = crate::grpc::auth::token_digest(&token);
    let expires = Some(now + crate::grpc::admin::OPERATOR_TOKEN_LIFETIME.as_millis() as i64);
    let path = admin_token_path(data_dir);
    if operators.is_empty() {
        // Replicas started together on a new database all find no operator:
        // only the one whose `admin` is stored writes the file, so the file
        // never holds a token another replica's insert replaced. The token
        // is on disk before it is stored, and named only once it is.
        // Its own name: replicas may share the data directory.
        let pending = path.with_extension(format!("token.{:016x}.new", fastrand::u64(..)));
        tierwise_transport::files::write_private(&pending, format!("{token}\n").as_bytes())?;
        let added = store
            .add_operator(
                "admin",
                "admin",
                &digest,
                expires,
                "tierwise serve (first start)",
                now,
            )
            .await?;
        if added {
            std::fs::rename(&pending, &path).with_context(|| {
                format!("cannot rename {} to {}", pending.display(), path.display())
            })?;
            info!(token_file = %path.display(), "created the first operator `admin`; its token is in the file");
        } else {
            std::fs::remove_file(&pending).ok();
        }
        return Ok(());
    }
    // Every admin token expired: whoever can start the controller and read
    // its data directory gets a new one (they hold the CA key already).
    let admins: Vec<_> = operators.iter().filter(|o| o.role == "admin").collect();
    if admins.iter().all(|o| o.expired(now)) {
        if let Some(admin) = admins.first() {
            tierwise_transport::files::write_private(&path, format!("{token}\n").as_bytes())?;
            store
                .rotate_operator(
                    &admin.name,
                    &digest,
                    expires,
                    "tierwise serve (every admin token had expired)",
                    now,
                )
                .await?;
            warn!(operator = %admin.name, token_file = %path.display(), "every admin token had expired; a new one for this admin is in the file");
        }
    }
    Ok(())
}

/// How often a replica tries to become the leader, and the leader checks
/// that its lock still holds.
const LEADERSHIP_CHECK: Duration = Duration::from_secs(2);
/// Outbox rows no replica took (offline hosts) are dropped after this.
const OUTBOX_KEEP_MS: i64 = 3_600_000;

/// Keeps this replica's part in the engine's leadership: tries to take it
/// while another holds it, and while holding it checks every couple of
/// seconds that the lock's connection still answers; a leader that lost it
/// stops deciding at once (and its epoch no longer lets it write).
async fn lead(store: Store, engine: Engine) {
    loop {
        match store.claim_leadership(now_ms()).await {
            Ok(Some(mut leadership)) => {
                info!(
                    replica = store.replica(),
                    epoch = store.epoch(),
                    "this controller runs the rollout engine"
                );
                engine.wake();
                loop {
                    tokio::time::sleep(LEADERSHIP_CHECK).await;
                    if !leadership.alive().await {
                        warn!(replica = store.replica(), "lost the engine's leadership (its database connection failed); another controller takes over");
                        store.set_epoch(0);
                        break;
                    }
                    if let Err(error) = store.prune_outbox(now_ms() - OUTBOX_KEEP_MS).await {
                        warn!(%error, "could not prune the outbox");
                    }
                }
            }
            Ok(None) => {}
            Err(error) => warn!(%error, "could not try for the engine's leadership"),
        }
        tokio::time::sleep(LEADERSHIP_CHECK).await;
    }
}

/// Writes the heartbeats noted in memory, then marks hosts offline that
/// missed three heartbeats, including those a killed controller left marked
/// online.
async fn sweep_offline(store: Store) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = std::time::Instant::now();
        let flushed = store.flush_heartbeats().await;
        crate::metrics::metrics().store_operation("heartbeats", started.elapsed());
        if let Err(error) = flushed {
            warn!(%error, "could not write heartbeats; the next ones will be");
        }
        // The flag is the fleet's, not this replica's: the leader sweeps
        // (seven replicas sweeping 100,000 rows each second fought each
        // other and every writer for the same rows).
        if store.epoch() == 0 {
            continue;
        }
        match store.sweep_offline(now_ms()).await {
            Ok(hosts) => {
                for host_id in hosts {
                    info!(%host_id, "host offline: missed three heartbeats");
                }
            }
            Err(error) => warn!(%error, "offline sweep failed; retrying"),
        }
    }
}
