//! `tierwise-swarm`: many simulated agents in one process against a real
//! controller process, and the figures that matter at fleet scale.
//!
//! It starts `tierwise serve` (SQLite in a temporary directory, or the
//! PostgreSQL database given), enrolls N agents with a token — each with its
//! own key and certificate — and connects each over its own TLS connection
//! from its own loopback address (127.0.0.2, 127.0.0.3, …). Then, in order:
//! - `steady`: N idle agents at the heartbeat interval; controller and
//!   swarm memory per agent and CPU;
//! - `storm`: the controller killed and started again; time until all N
//!   are back, and the share of failed handshakes;
//! - `rollout`: a rollout of the installation (one server, one web host,
//!   N−2 clients); steps take `--step-ms` and fail at `--failure-rate`;
//!   wall time, delivery latency (the controller queues the command, just
//!   before its commit, and stamps it → the agent has it) and handoffs (the latest
//!   result → the next command while nothing ran: a phase handoff, or a
//!   host's next step);
//! - `ingest`: every agent sends `--reports` inventory reports at once;
//!   how many the store took in per second (counted in the store).

mod agent;
mod stats;

use agent::{Behaviour, Plays};
use anyhow::Context;
use clap::{Parser, ValueEnum};
use stats::Stats;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tierwise_common::Version;
use tierwise_proto::v1::{CreateTokenRequest, GetRolloutRequest, StartRolloutRequest};
use tierwise_transport::client::{client_config, ControllerAddress, Trust};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Steady,
    Storm,
    Rollout,
    Ingest,
}

#[derive(Debug, Parser)]
#[command(
    name = "tierwise-swarm",
    version,
    about = "Many simulated agents against a real controller; prints what it measures"
)]
struct Args {
    /// Simulated agents: one server, one web host, the rest clients.
    #[arg(long, default_value_t = 500)]
    agents: usize,
    /// Their heartbeat interval, in seconds.
    #[arg(long, default_value_t = 60)]
    heartbeat_seconds: u64,
    /// How long a simulated step takes, in milliseconds.
    #[arg(long, default_value_t = 50)]
    step_ms: u64,
    /// Share of client steps that fail (0.0 to 1.0); the rollout tolerates
    /// them (error threshold 100 %).
    #[arg(long, default_value_t = 0.0)]
    failure_rate: f64,
    /// How long the steady state is measured, in seconds.
    #[arg(long, default_value_t = 30)]
    steady_seconds: u64,
    /// Inventory reports each agent sends at once in the ingest scenario.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    reports: u32,
    /// The scenarios to run, in this order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "steady,storm,rollout,ingest"
    )]
    scenarios: Vec<Scenario>,
    /// A PostgreSQL URL for the controller's store (a fresh database);
    /// without it, SQLite in a temporary directory.
    #[arg(long)]
    database_url: Option<String>,
    /// The controller binary [default: `tierwise` beside this one].
    #[arg(long)]
    tierwise: Option<PathBuf>,
    /// The release catalogue the rollout scenario imports.
    #[arg(long, default_value = "deploy/catalogue/password-secure.toml")]
    catalogue: PathBuf,
    /// How many loopback source addresses the agents are spread over.
    #[arg(long, default_value_t = 200)]
    addresses: u8,
    /// A flag for `tierwise serve` (repeatable), e.g.
    /// --serve-flag=--max-handshakes-per-address=1024.
    #[arg(long = "serve-flag", value_name = "FLAG", allow_hyphen_values = true)]
    serve_flags: Vec<String>,
}

const FROM: Version = Version::new(9, 3, 1, 33994);
const TARGET: &str = "26.3.100.34058";
const INSTALLATION: &str = "swarm";

/// The controller process the swarm runs.
struct Controller {
    binary: PathBuf,
    data_dir: PathBuf,
    database_url: Option<String>,
    flags: Vec<String>,
    addr: SocketAddr,
    child: Child,
}

impl Controller {
    fn start(
        binary: PathBuf,
        data_dir: PathBuf,
        database_url: Option<String>,
        flags: Vec<String>,
        listen: &str,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(&binary);
        command
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(&data_dir)
            .args(&flags)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(data_dir.join("controller.log"))?);
        if let Some(url) = &database_url {
            command.args(["--database-url", url]);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("tierwise controller listening on ")
            .with_context(|| format!("the controller did not start: {line:?}"))?
            .parse()?;
        Ok(Self {
            binary,
            data_dir,
            database_url,
            flags,
            addr,
            child,
        })
    }

    fn restart(&mut self) -> anyhow::Result<()> {
        self.child.kill().ok();
        self.child.wait().ok();
        let again = Self::start(
            self.binary.clone(),
            self.data_dir.clone(),
            self.database_url.clone(),
            self.flags.clone(),
            &self.addr.to_string(),
        )?;
        *self = again;
        Ok(())
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The controller's store, opened beside it (to count what it took in).
    async fn store(&self) -> anyhow::Result<tierwise_controller::store::Store> {
        let url = match &self.database_url {
            Some(url) => url.clone(),
            None => tierwise_controller::store::DatabaseUrl::sqlite_file(
                &self.data_dir.join("tierwise.db"),
            )
            .connect_string()
            .to_owned(),
        };
        Ok(tierwise_controller::store::Store::open(&url).await?)
    }

    fn connection(&self) -> anyhow::Result<tierwise_controller::cli::Connection> {
        let token = std::fs::read_to_string(self.data_dir.join("admin.token"))
            .context("the controller wrote no admin token (use a fresh database)")?;
        Ok(tierwise_controller::cli::Connection {
            controller: format!("https://{}", self.addr),
            ca_cert: Some(self.data_dir.join("pki").join("ca.pem")),
            token: Some(token.trim().to_owned()),
            token_file: None,
        })
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Waits until `check` holds, polling every 100 ms; returns how long.
async fn until(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tierwise_runtime::logging::init(tierwise_runtime::logging::LogFormat::Pretty, "warn");
    tierwise_runtime::run_main(None, async move {
        run(args).await?;
        Ok(std::process::ExitCode::SUCCESS)
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.agents >= 3,
        "--agents: at least 3 (a server, a web host, a client)"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.failure_rate),
        "--failure-rate: between 0.0 and 1.0"
    );
    let binary = match &args.tierwise {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory of this program")?
            .join("tierwise"),
    };
    let work = tempfile::tempdir()?;
    let data_dir = work.path().join("controller");
    std::fs::create_dir_all(&data_dir)?;
    // The swarm's agents all enroll through 127.0.0.1 with one token (set
    // up, not measured): the enrollment rate limits would make that a
    // crawl by design, so they are off unless a --serve-flag sets them.
    let mut serve_flags = args.serve_flags.clone();
    for flag in ["--enroll-rate-per-address", "--enroll-rate-per-token"] {
        if !serve_flags.iter().any(|f| f.starts_with(flag)) {
            serve_flags.push(format!("{flag}=off"));
        }
    }
    // The swarm's installers are made up on the spot and its agents pin no
    // release root: signing is not what it measures.
    if !serve_flags.iter().any(|f| f == "--allow-unsigned-releases") {
        serve_flags.push("--allow-unsigned-releases".into());
    }
    let mut controller = Controller::start(
        binary,
        data_dir.clone(),
        args.database_url.clone(),
        serve_flags,
        "127.0.0.1:0",
    )?;
    let store = if args.database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "tierwise-swarm: {} agents, heartbeat {} s, store {store}, {} cores",
        args.agents,
        args.heartbeat_seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (base_rss, _) = stats::process(controller.pid()).unwrap_or_default();
    let (swarm_base_rss, _) = stats::process(std::process::id()).unwrap_or_default();

    let mut admin = tierwise_controller::cli::connect(&controller.connection()?).await?;
    let token = admin
        .create_token(CreateTokenRequest {
            installation: INSTALLATION.into(),
            uses: u32::try_from(args.agents + 10).unwrap_or(u32::MAX),
            expires_seconds: 86_400,
        })
        .await?
        .into_inner()
        .token;
    let address: ControllerAddress = format!("https://{}", controller.addr).parse()?;
    let ca = tierwise_transport::files::read_certificates(&data_dir.join("pki").join("ca.pem"))?;
    let pinned = client_config(&Trust::Ca(ca.clone()), None)?;

    // Enrollment: every agent its own key and certificate.
    let started = Instant::now();
    let mut channels = Vec::new();
    for _ in 0..8 {
        channels.push(address.connect(pinned.clone(), |e| e).await?);
    }
    let semaphore = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::with_capacity(args.agents);
    for i in 0..args.agents {
        let plays = match i {
            0 => Plays::Server,
            1 => Plays::Web,
            _ => Plays::Client,
        };
        let local = IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            2 + u8::try_from(i % usize::from(args.addresses.max(1))).unwrap_or(0),
        ));
        let (channel, ca, token, permit) = (
            channels[i % channels.len()].clone(),
            ca.clone(),
            token.clone(),
            semaphore.clone().acquire_owned().await?,
        );
        tasks.push(tokio::spawn(async move {
            let enrolled = agent::enroll(
                channel,
                &ca,
                &token,
                format!("swarm-{i:06}"),
                plays,
                local,
                INSTALLATION,
            )
            .await;
            drop(permit);
            enrolled
        }));
    }
    let mut enrolled = Vec::with_capacity(args.agents);
    for task in tasks {
        enrolled.push(task.await??);
    }
    println!(
        "enrolled {} agents in {:.1} s ({:.0}/s)",
        enrolled.len(),
        started.elapsed().as_secs_f64(),
        enrolled.len() as f64 / started.elapsed().as_secs_f64()
    );

    // Connect them all.
    let stats = Arc::new(Stats::default());
    let (ingest, ingest_rx) = tokio::sync::watch::channel(0_u64);
    let behaviour = Arc::new(Behaviour {
        heartbeat: Duration::from_secs(args.heartbeat_seconds.clamp(1, 3600)),
        step: Duration::from_millis(args.step_ms),
        failure_rate: args.failure_rate,
        installation: INSTALLATION.into(),
        ingest: ingest_rx,
        reports: args.reports,
    });
    let started = Instant::now();
    for agent in enrolled {
        tokio::spawn(agent::run(
            agent,
            address.clone(),
            behaviour.clone(),
            FROM,
            stats.clone(),
        ));
    }
    let n = i64::try_from(args.agents).unwrap_or(i64::MAX);
    let online = until(Duration::from_secs(600), || stats.connected_now() >= n).await;
    match online {
        Some(took) => println!(
            "all {} agents connected in {:.1} s",
            args.agents,
            took.as_secs_f64()
        ),
        None => anyhow::bail!(
            "only {} of {} agents connected within 600 s",
            stats.connected_now(),
            args.agents
        ),
    }
    let _ = started;

    for scenario in &args.scenarios {
        match scenario {
            Scenario::Steady => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let (rss0, cpu0) = stats::process(controller.pid()).unwrap_or_default();
                let (srss0, scpu0) = stats::process(std::process::id()).unwrap_or_default();
                tokio::time::sleep(Duration::from_secs(args.steady_seconds)).await;
                let (rss1, cpu1) = stats::process(controller.pid()).unwrap_or_default();
                let (srss1, scpu1) = stats::process(std::process::id()).unwrap_or_default();
                let seconds = args.steady_seconds.max(1) as f64;
                let per = |rss: u64, base: u64| {
                    (rss.saturating_sub(base)) as f64 / 1024.0 / args.agents as f64
                };
                println!(
                    "steady ({} s at {} s heartbeats):",
                    args.steady_seconds, args.heartbeat_seconds
                );
                println!(
                    "  controller: RSS {:.1} MiB ({:.1} KiB per agent), CPU {:.1} % of one core",
                    mib(rss1.max(rss0)),
                    per(rss1.max(rss0), base_rss),
                    (cpu1 - cpu0) / seconds * 100.0
                );
                println!(
                    "  swarm:      RSS {:.1} MiB ({:.1} KiB per agent), CPU {:.1} % of one core",
                    mib(srss1.max(srss0)),
                    per(srss1.max(srss0), swarm_base_rss),
                    (scpu1 - scpu0) / seconds * 100.0
                );
            }
            Scenario::Storm => {
                let (attempts0, failed0) = stats.handshakes();
                controller.restart()?;
                let killed = Instant::now();
                let down = until(Duration::from_secs(30), || stats.connected_now() < n).await;
                let back = until(Duration::from_secs(600), || stats.connected_now() >= n).await;
                let (attempts1, failed1) = stats.handshakes();
                let attempts = attempts1 - attempts0;
                let failed = failed1 - failed0;
                match (down, back) {
                    (Some(_), Some(_)) => println!(
                        "storm: controller killed and restarted; all {} back in {:.1} s; {} connection attempts, {} failed ({:.2} %)",
                        args.agents,
                        killed.elapsed().as_secs_f64(),
                        attempts,
                        failed,
                        if attempts == 0 { 0.0 } else { failed as f64 / attempts as f64 * 100.0 }
                    ),
                    _ => anyhow::bail!(
                        "storm: only {} of {} agents back within 600 s",
                        stats.connected_now(),
                        args.agents
                    ),
                }
                admin = tierwise_controller::cli::connect(&controller.connection()?).await?;
            }
            Scenario::Rollout => {
                let catalogue = std::fs::read_to_string(&args.catalogue).with_context(|| {
                    format!(
                        "the catalogue {} (see --catalogue)",
                        args.catalogue.display()
                    )
                })?;
                admin
                    .import_catalogue(tierwise_proto::v1::ImportCatalogueRequest {
                        source: args.catalogue.display().to_string(),
                        document: catalogue,
                        ..Default::default()
                    })
                    .await?;
                admin
                    .set_licence(tierwise_proto::v1::SetLicenceRequest {
                        installation: INSTALLATION.into(),
                        maintenance_until: "2030-12-31".into(),
                    })
                    .await?;
                let commands0 = stats.commands();
                let started = Instant::now();
                let rollout = admin
                    .start_rollout(StartRolloutRequest {
                        installation: INSTALLATION.into(),
                        target: TARGET.into(),
                        ack_breaking: true,
                        ack_server_manager_password: true,
                        acks: vec!["changelog".into()],
                        error_threshold: "100%".into(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                let state = loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let view = admin
                        .get_rollout(GetRolloutRequest {
                            id: rollout.id.clone(),
                        })
                        .await?
                        .into_inner();
                    if matches!(
                        view.state.as_str(),
                        "completed" | "completed_with_failures" | "failed" | "aborted"
                    ) {
                        break view;
                    }
                    anyhow::ensure!(
                        started.elapsed() < Duration::from_secs(3600),
                        "the rollout did not end within an hour: {}",
                        view.state
                    );
                };
                let wall = started.elapsed().as_secs_f64();
                println!(
                    "rollout of {} hosts: {} in {:.1} s ({} steps handed out, {} ms a step, {:.0} % failing)",
                    args.agents,
                    state.state,
                    wall,
                    stats.commands() - commands0,
                    args.step_ms,
                    args.failure_rate * 100.0
                );
                if let Some(q) = stats.delivery_ms() {
                    println!(
                        "  delivery (queued at the commit → agent has the command): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} commands",
                        q.p50, q.p99, q.max, q.count
                    );
                }
                if let Some(q) = stats.handoff_ms() {
                    println!(
                        "  handoff (latest result → next command, nothing running: next phase or the host's next step): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {}",
                        q.p50, q.p99, q.max, q.count
                    );
                }
                let (rss, _) = stats::process(controller.pid()).unwrap_or_default();
                println!("  controller RSS after the rollout: {:.1} MiB", mib(rss));
            }
            Scenario::Ingest => {
                let store = controller.store().await?;
                let before = store.inventory_reports().await?;
                let expected = i64::try_from(args.agents)? * i64::from(args.reports);
                let (_, cpu0) = stats::process(controller.pid()).unwrap_or_default();
                let started = Instant::now();
                ingest.send_modify(|round| *round += 1);
                let mut taken = 0;
                while started.elapsed() < Duration::from_secs(600) {
                    taken = store.inventory_reports().await? - before;
                    if taken >= expected {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let seconds = started.elapsed().as_secs_f64();
                let (_, cpu1) = stats::process(controller.pid()).unwrap_or_default();
                store.close().await;
                anyhow::ensure!(
                    taken >= expected,
                    "ingest: the store took in {taken} of {expected} reports within 600 s"
                );
                println!(
                    "ingest: {expected} inventory reports ({} per agent at once) stored in {seconds:.1} s: {:.0} reports/s; controller CPU {:.0} % of one core",
                    args.reports,
                    expected as f64 / seconds,
                    (cpu1 - cpu0) / seconds * 100.0
                );
            }
        }
    }
    Ok(())
}
