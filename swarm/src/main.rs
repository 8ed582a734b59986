//! `tierwise-swarm`: many simulated agents against real controller
//! processes, and the figures that matter at fleet scale.
//!
//! It starts `tierwise serve` (SQLite in a temporary directory, or the
//! PostgreSQL database given) or drives the controllers given with
//! `--controller` (agents spread over them in turn), runs its agents in its
//! own process or in `--processes` child processes (see `children`), enrolls N agents with a token — each with its
//! own key and certificate — and connects each over its own TLS connection
//! from its own loopback address (127.0.0.2, 127.0.0.3, …). Then, in order:
//! - `steady`: N idle agents at the heartbeat interval; controller and
//!   swarm memory per agent and CPU (replicas given with `--controller`:
//!   with `--controller-pid`, and PostgreSQL's CPU and log writes);
//! - `storm`: the controller killed and started again (replicas: by
//!   `--restart-command`); time until all N are back, and the share of
//!   failed handshakes;
//! - `rollout`: a rollout of the installation (one server, one web host,
//!   N−2 clients); steps take `--step-ms` and fail at `--failure-rate`;
//!   wall time, delivery latency (the controller queues the command, just
//!   before its commit, and stamps it → the agent has it; beside it the
//!   controller's own part, from its metrics, see `scrape`) and handoffs (the latest
//!   result → the next command while nothing ran: a phase handoff, or a
//!   host's next step);
//! - `ingest`: every agent sends `--reports` inventory reports at once;
//!   how many the store took in per second (counted in the store).

mod agent;
mod children;
mod scrape;
mod stats;

use agent::{Behaviour, Plays};
use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use stats::{Counts, Samples, Stats};
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
    /// Drive this running controller instead of starting one (repeatable:
    /// replicas on one PostgreSQL database; agents are spread over them in
    /// turn). Needs --ca-cert and an operator token; the storm scenario is
    /// left out, and ingest needs --database-url (the replicas' database,
    /// read to count the reports).
    #[arg(long = "controller", value_name = "URL")]
    controllers: Vec<String>,
    /// The CA certificate (PEM) of the controllers given with --controller.
    #[arg(long, env = "TIERWISE_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// A file holding an administrator's token for --controller (the token
    /// itself may be given in TIERWISE_TOKEN).
    #[arg(long, env = "TIERWISE_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// With --controller: each controller's process id, in the order of
    /// --controller (repeatable); the steady scenario measures their memory
    /// and CPU, and that of every `postgres` process on this machine.
    #[arg(long = "controller-pid", value_name = "PID")]
    controller_pids: Vec<u32>,
    /// With --controller: a shell command that restarts every controller at
    /// once (e.g. `systemctl restart 'tierwise@*'`); the storm scenario runs
    /// it and times until every agent is back.
    #[arg(long, value_name = "COMMAND")]
    restart_command: Option<String>,
    /// Run the agents in this many child processes, each with its share of
    /// them and its own open-file limit (the figures are over all of them).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    processes: u16,
    /// Internal: run as a child process of a swarm, with the agents
    /// FIRST..FIRST+COUNT.
    #[arg(long, hide = true, value_name = "FIRST,COUNT")]
    swarm_child: Option<String>,
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

    /// Where it serves its metrics (`--metrics-listen`, which the swarm
    /// sets unless a --serve-flag did).
    fn metrics_addr(&self) -> Option<SocketAddr> {
        self.flags.iter().find_map(|flag| {
            flag.strip_prefix("--metrics-listen=")?
                .parse::<SocketAddr>()
                .ok()
        })
    }

    /// The histogram of its part of each delivery, as it stands.
    async fn command_delivery(&self) -> Option<scrape::Histogram> {
        let text = scrape::metrics(self.metrics_addr()?).await.ok()?;
        Some(scrape::Histogram::parse(&text, scrape::COMMAND_DELIVERY))
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

    fn ca_path(&self) -> PathBuf {
        self.data_dir.join("pki").join("ca.pem")
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

fn main() -> std::process::ExitCode {
    let matches = Args::command().get_matches();
    let default_scenarios =
        matches.value_source("scenarios") == Some(clap::parser::ValueSource::DefaultValue);
    let args = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(error) => error.exit(),
    };
    tierwise_runtime::logging::init(tierwise_runtime::logging::LogFormat::Pretty, "warn");
    tierwise_runtime::run_main(None, async move {
        match args.swarm_child.clone() {
            Some(share) => child(args, &share).await?,
            None => run(args, default_scenarios).await?,
        }
        Ok(std::process::ExitCode::SUCCESS)
    })
}

/// What the swarm's agents need to enroll and connect.
struct Reach {
    /// The controllers' addresses, in the order given.
    addresses: Vec<ControllerAddress>,
    ca: Vec<rustls::pki_types::CertificateDer<'static>>,
    token: String,
}

/// Enrolls the agents `first..first + count` (agent i through controller
/// i mod the number of controllers), each with its own key and
/// certificate; each with the index of its controller.
async fn enroll(
    reach: &Reach,
    first: usize,
    count: usize,
    addresses: u8,
) -> anyhow::Result<Vec<(agent::Enrolled, usize)>> {
    let pinned = client_config(&Trust::Ca(reach.ca.clone()), None)?;
    let mut channels = Vec::new();
    for address in &reach.addresses {
        let mut per = Vec::new();
        for _ in 0..8 {
            per.push(address.connect(pinned.clone(), |e| e).await?);
        }
        channels.push(per);
    }
    let semaphore = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::with_capacity(count);
    for i in first..first + count {
        let plays = match i {
            0 => Plays::Server,
            1 => Plays::Web,
            _ => Plays::Client,
        };
        let local = IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            2 + u8::try_from(i % usize::from(addresses.max(1))).unwrap_or(0),
        ));
        let at = i % channels.len();
        let (channel, ca, token, permit) = (
            channels[at][(i / channels.len()) % channels[at].len()].clone(),
            reach.ca.clone(),
            reach.token.clone(),
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
            enrolled.map(|enrolled| (enrolled, at))
        }));
    }
    let mut enrolled = Vec::with_capacity(count);
    for task in tasks {
        enrolled.push(task.await??);
    }
    Ok(enrolled)
}

fn behaviour(args: &Args, ingest: tokio::sync::watch::Receiver<u64>) -> Arc<Behaviour> {
    Arc::new(Behaviour {
        heartbeat: Duration::from_secs(args.heartbeat_seconds.clamp(1, 3600)),
        step: Duration::from_millis(args.step_ms),
        failure_rate: args.failure_rate,
        installation: INSTALLATION.into(),
        ingest,
        reports: args.reports,
    })
}

fn start_agents(
    enrolled: Vec<(agent::Enrolled, usize)>,
    reach: &Reach,
    behaviour: &Arc<Behaviour>,
    stats: &Arc<Stats>,
) {
    for (agent, at) in enrolled {
        tokio::spawn(agent::run(
            agent,
            reach.addresses[at].clone(),
            at,
            behaviour.clone(),
            FROM,
            stats.clone(),
        ));
    }
}

/// The child part of a swarm in several processes (see `children`).
async fn child(args: Args, share: &str) -> anyhow::Result<()> {
    tierwise_transport::accept::raise_open_files();
    let (first, count) = share
        .split_once(',')
        .and_then(|(f, c)| Some((f.parse().ok()?, c.parse().ok()?)))
        .context("--swarm-child: FIRST,COUNT")?;
    let ca_path = args
        .ca_cert
        .clone()
        .context("--swarm-child needs --ca-cert")?;
    let reach = Reach {
        addresses: args
            .controllers
            .iter()
            .map(|url| url.parse())
            .collect::<Result<_, _>>()?,
        ca: tierwise_transport::files::read_certificates(&ca_path)?,
        token: std::env::var(children::TOKEN_ENV)
            .with_context(|| format!("--swarm-child needs {}", children::TOKEN_ENV))?,
    };
    let mut orders = children::orders();
    let enrolled = tokio::select! {
        enrolled = enroll(&reach, first, count, args.addresses) => enrolled?,
        // The parent ended while this process enrolled: end with it.
        None = orders.recv() => return Ok(()),
    };
    println!("enrolled {}", enrolled.len());
    let stats = Arc::new(Stats::new(reach.addresses.len()));
    let (ingest, ingest_rx) = tokio::sync::watch::channel(0_u64);
    let behaviour = behaviour(&args, ingest_rx);
    let mut enrolled = Some(enrolled);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tick.tick(), if enrolled.is_none() => {
                println!("counts {}", stats.counts().to_json());
            }
            order = orders.recv() => match order {
                // The parent ended: so does this process, and its agents.
                None => return Ok(()),
                Some(children::Order::Connect) => {
                    if let Some(agents) = enrolled.take() {
                        start_agents(agents, &reach, &behaviour, &stats);
                    }
                }
                Some(children::Order::Ingest) => ingest.send_modify(|round| *round += 1),
                Some(children::Order::Samples) => {
                    println!("samples {}", stats.samples().to_json());
                }
            },
        }
    }
}

/// The swarm's agents: in this process, or in child processes.
enum Agents {
    Here {
        stats: Arc<Stats>,
        ingest: tokio::sync::watch::Sender<u64>,
    },
    Children(children::Children),
}

impl Agents {
    fn counts(&self) -> anyhow::Result<Counts> {
        match self {
            Self::Here { stats, .. } => Ok(stats.counts()),
            Self::Children(children) => children.counts(),
        }
    }

    fn connected_now(&self) -> anyhow::Result<i64> {
        Ok(self.counts()?.connected_now())
    }

    fn samples(&mut self) -> anyhow::Result<Samples> {
        match self {
            Self::Here { stats, .. } => Ok(stats.samples()),
            Self::Children(children) => children.samples(),
        }
    }

    fn ingest(&mut self) -> anyhow::Result<()> {
        match self {
            Self::Here { ingest, .. } => {
                ingest.send_modify(|round| *round += 1);
                Ok(())
            }
            Self::Children(children) => children.ingest(),
        }
    }

    /// Waits `duration`, ending early with an error if a child process
    /// fails meanwhile.
    async fn pause(&self, duration: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            self.counts()?;
            tokio::time::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(200)),
            )
            .await;
        }
        Ok(())
    }

    /// The processes that run the agents (this one, and its children).
    fn pids(&self) -> Vec<u32> {
        let mut pids = vec![std::process::id()];
        if let Self::Children(children) = self {
            pids.extend(children.pids());
        }
        pids
    }
}

/// RSS and CPU time of some processes together.
/// The bytes PostgreSQL has written to its write-ahead log (`None` on
/// SQLite).
async fn wal_bytes(url: &str) -> anyhow::Result<Option<i64>> {
    let store = tierwise_controller::store::Store::open(url).await?;
    let bytes = store.wal_bytes().await?;
    store.close().await;
    Ok(bytes)
}

fn together(pids: &[u32]) -> (u64, f64) {
    pids.iter()
        .filter_map(|&pid| stats::process(pid))
        .fold((0, 0.0), |(rss, cpu), (r, c)| (rss + r, cpu + c))
}

/// Waits until all `n` agents are connected (polling every 100 ms), or a
/// child process failed.
/// A restart as the agents saw it: when the controllers were up again
/// (the restart command ended; at once for the swarm's own controller), the
/// counts then, and when all agents were back (`None`: not within 600 s).
struct Storm {
    up_after: Duration,
    up: Counts,
    back: Option<Duration>,
}

/// Waits for the agents to go (within 30 s) and come back, while the
/// restart command (if any) runs.
async fn storm(
    agents: &Agents,
    mut restarting: Option<tokio::process::Child>,
    n: i64,
) -> anyhow::Result<Storm> {
    let started = Instant::now();
    let mut up = match restarting {
        Some(_) => None,
        None => Some((Duration::ZERO, agents.counts()?)),
    };
    let mut gone = false;
    loop {
        if up.is_none() {
            if let Some(command) = restarting.as_mut() {
                if let Some(status) = command.try_wait()? {
                    anyhow::ensure!(status.success(), "--restart-command ended with {status}");
                    up = Some((started.elapsed(), agents.counts()?));
                }
            }
        }
        let now = agents.connected_now()?;
        gone |= now < n;
        if let (true, Some((up_after, up))) = (gone && now >= n, up.as_ref()) {
            return Ok(Storm {
                up_after: *up_after,
                up: up.clone(),
                back: Some(started.elapsed()),
            });
        }
        if !gone && started.elapsed() > Duration::from_secs(30) {
            anyhow::bail!("storm: the agents did not notice the restart within 30 s");
        }
        if started.elapsed() > Duration::from_secs(600) {
            let (up_after, up) = up.unwrap_or((started.elapsed(), agents.counts()?));
            return Ok(Storm {
                up_after,
                up,
                back: None,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn until_connected(
    agents: &Agents,
    limit: Duration,
    n: i64,
    below: bool,
) -> anyhow::Result<Option<Duration>> {
    let started = Instant::now();
    while started.elapsed() < limit {
        let now = agents.connected_now()?;
        if (below && now < n) || (!below && now >= n) {
            return Ok(Some(started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(None)
}

async fn run(args: Args, default_scenarios: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.agents >= 3,
        "--agents: at least 3 (a server, a web host, a client)"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.failure_rate),
        "--failure-rate: between 0.0 and 1.0"
    );
    let processes = usize::from(args.processes);
    anyhow::ensure!(
        processes <= args.agents,
        "--processes: at most one per agent ({} agents)",
        args.agents
    );
    let driven = !args.controllers.is_empty();
    let mut scenarios = args.scenarios.clone();
    anyhow::ensure!(
        driven || (args.controller_pids.is_empty() && args.restart_command.is_none()),
        "--controller-pid and --restart-command are for controllers given with --controller"
    );
    anyhow::ensure!(
        args.controller_pids.is_empty() || args.controller_pids.len() == args.controllers.len(),
        "--controller-pid: give one for each --controller, in the same order ({} controllers, {} pids)",
        args.controllers.len(),
        args.controller_pids.len()
    );
    if driven {
        let restartable = args.restart_command.is_some();
        if default_scenarios {
            scenarios.retain(|s| {
                (*s != Scenario::Storm || restartable)
                    && (*s != Scenario::Ingest || args.database_url.is_some())
            });
        }
        anyhow::ensure!(
            restartable || !scenarios.contains(&Scenario::Storm),
            "--scenarios: storm restarts the controllers: with --controller, give the command \
             that restarts them all with --restart-command (or leave out storm)"
        );
        anyhow::ensure!(
            !scenarios.contains(&Scenario::Ingest) || args.database_url.is_some(),
            "--scenarios: ingest counts the reports in the store: with --controller, give \
             the replicas' database with --database-url (or leave out ingest)"
        );
        anyhow::ensure!(
            args.ca_cert.is_some(),
            "--controller: give the controllers' CA certificate with --ca-cert FILE or \
             TIERWISE_CA_CERT (`tierwise pki show` on a controller prints it)"
        );
        anyhow::ensure!(
            args.serve_flags.is_empty() && args.tierwise.is_none(),
            "--serve-flag and --tierwise are for the controller the swarm starts; \
             with --controller, start the controllers with the flags you want"
        );
    }
    tierwise_transport::accept::raise_open_files();
    let work = tempfile::tempdir()?;
    let data_dir = work.path().join("controller");
    let mut controller = None;
    let (urls, ca_path, connection) = if driven {
        for url in &args.controllers {
            url.parse::<ControllerAddress>()
                .map_err(|e| anyhow::anyhow!("--controller {url}: {e}"))?;
        }
        let ca_path = args.ca_cert.clone().unwrap_or_default();
        let connection = tierwise_controller::cli::Connection {
            controller: args.controllers[0].clone(),
            ca_cert: Some(ca_path.clone()),
            token: std::env::var("TIERWISE_TOKEN").ok(),
            token_file: args.token_file.clone(),
        };
        (args.controllers.clone(), ca_path, connection)
    } else {
        let binary = match &args.tierwise {
            Some(path) => path.clone(),
            None => std::env::current_exe()?
                .parent()
                .context("no directory of this program")?
                .join("tierwise"),
        };
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
        // Its metrics tell the controller's own part of each delivery.
        if !serve_flags
            .iter()
            .any(|f| f.starts_with("--metrics-listen"))
        {
            let free = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
            serve_flags.push(format!("--metrics-listen={free}"));
        }
        let started = Controller::start(
            binary,
            data_dir.clone(),
            args.database_url.clone(),
            serve_flags,
            "127.0.0.1:0",
        )?;
        let urls = vec![format!("https://{}", started.addr)];
        let (ca_path, connection) = (started.ca_path(), started.connection()?);
        controller = Some(started);
        (urls, ca_path, connection)
    };
    let store = if args.database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "tierwise-swarm: {} agents, heartbeat {} s, store {store}, {} cores{}{}",
        args.agents,
        args.heartbeat_seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if driven {
            format!(", {} controllers given", urls.len())
        } else {
            String::new()
        },
        if processes > 1 {
            format!(", agents in {processes} processes")
        } else {
            String::new()
        }
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (base_rss, _) = controller
        .as_ref()
        .map(Controller::pid)
        .and_then(stats::process)
        .unwrap_or_default();
    let (swarm_base_rss, _) = stats::process(std::process::id()).unwrap_or_default();

    let mut admin = tierwise_controller::cli::connect(&connection).await?;
    let token = admin
        .create_token(CreateTokenRequest {
            installation: INSTALLATION.into(),
            uses: u32::try_from(args.agents + 10).unwrap_or(u32::MAX),
            expires_seconds: 86_400,
        })
        .await?
        .into_inner()
        .token;
    let reach = Reach {
        addresses: urls
            .iter()
            .map(|url| url.parse())
            .collect::<Result<_, _>>()?,
        ca: tierwise_transport::files::read_certificates(&ca_path)?,
        token,
    };

    // Enrollment: every agent its own key and certificate.
    let started = Instant::now();
    let (mut agents, enrolled) = if processes > 1 {
        let mut child_args = vec![
            format!("--agents={}", args.agents),
            format!("--heartbeat-seconds={}", args.heartbeat_seconds),
            format!("--step-ms={}", args.step_ms),
            format!("--failure-rate={}", args.failure_rate),
            format!("--reports={}", args.reports),
            format!("--addresses={}", args.addresses),
            "--ca-cert".into(),
            ca_path.display().to_string(),
        ];
        for url in &urls {
            child_args.push(format!("--controller={url}"));
        }
        let mut children =
            children::Children::start(processes, args.agents, &child_args, &reach.token)?;
        let enrolled = children.enrolled().await?;
        children.connect()?;
        (Agents::Children(children), enrolled)
    } else {
        let enrolled = enroll(&reach, 0, args.agents, args.addresses).await?;
        let stats = Arc::new(Stats::new(urls.len()));
        let (ingest, ingest_rx) = tokio::sync::watch::channel(0_u64);
        let count = enrolled.len();
        start_agents(enrolled, &reach, &behaviour(&args, ingest_rx), &stats);
        (Agents::Here { stats, ingest }, count)
    };
    println!(
        "enrolled {} agents in {:.1} s ({:.0}/s)",
        enrolled,
        started.elapsed().as_secs_f64(),
        enrolled as f64 / started.elapsed().as_secs_f64()
    );

    // Connect them all.
    let n = i64::try_from(args.agents).unwrap_or(i64::MAX);
    let online = until_connected(&agents, Duration::from_secs(600), n, false).await?;
    match online {
        Some(took) => println!(
            "all {} agents connected in {:.1} s",
            args.agents,
            took.as_secs_f64()
        ),
        None => anyhow::bail!(
            "only {} of {} agents connected within 600 s",
            agents.connected_now()?,
            args.agents
        ),
    }
    let counts = agents.counts()?;
    let spread: Vec<String> = urls
        .iter()
        .zip(&counts.connected)
        .map(|(url, count)| format!("{url} {count}"))
        .collect();
    println!("agents connected per controller: {}", spread.join(", "));

    for scenario in &scenarios {
        match scenario {
            Scenario::Steady => {
                agents.pause(Duration::from_secs(2)).await?;
                let pids = agents.pids();
                let (rss0, cpu0) = controller
                    .as_ref()
                    .and_then(|c| stats::process(c.pid()))
                    .unwrap_or_default();
                let (srss0, scpu0) = together(&pids);
                let replicas0: Vec<(u64, f64)> = args
                    .controller_pids
                    .iter()
                    .map(|&pid| stats::process(pid).unwrap_or_default())
                    .collect();
                let postgres = stats::processes_named("postgres");
                let (_, pgcpu0) = together(&postgres);
                let wal0 = match &args.database_url {
                    Some(url) if driven => wal_bytes(url).await?,
                    _ => None,
                };
                agents
                    .pause(Duration::from_secs(args.steady_seconds))
                    .await?;
                let (rss1, cpu1) = controller
                    .as_ref()
                    .and_then(|c| stats::process(c.pid()))
                    .unwrap_or_default();
                let (srss1, scpu1) = together(&pids);
                agents.counts()?;
                let seconds = args.steady_seconds.max(1) as f64;
                let per = |rss: u64, base: u64| {
                    (rss.saturating_sub(base)) as f64 / 1024.0 / args.agents as f64
                };
                println!(
                    "steady ({} s at {} s heartbeats):",
                    args.steady_seconds, args.heartbeat_seconds
                );
                if controller.is_some() {
                    println!(
                        "  controller: RSS {:.1} MiB ({:.1} KiB per agent), CPU {:.1} % of one core",
                        mib(rss1.max(rss0)),
                        per(rss1.max(rss0), base_rss),
                        (cpu1 - cpu0) / seconds * 100.0
                    );
                } else if args.controller_pids.is_empty() {
                    println!("  controllers: not started by the swarm, not measured here (give --controller-pid, or see their RSS and CPU with ps)");
                } else {
                    let on = agents.counts()?.connected;
                    for (i, (url, &pid)) in urls.iter().zip(&args.controller_pids).enumerate() {
                        let (rss0, cpu0) = replicas0.get(i).copied().unwrap_or_default();
                        let (rss1, cpu1) = stats::process(pid).unwrap_or_default();
                        let rss = rss1.max(rss0);
                        let agents_on = on.get(i).copied().unwrap_or(0).max(1);
                        println!(
                            "  controller {url} (pid {pid}): RSS {:.1} MiB ({:.1} KiB per agent on it, {agents_on} agents), CPU {:.1} % of one core",
                            mib(rss),
                            rss as f64 / 1024.0 / agents_on as f64,
                            (cpu1 - cpu0) / seconds * 100.0
                        );
                    }
                    let (_, pgcpu1) = together(&postgres);
                    let wal1 = match &args.database_url {
                        Some(url) => wal_bytes(url).await?,
                        None => None,
                    };
                    let writes = match (wal0, wal1) {
                        (Some(a), Some(b)) => format!(
                            ", write-ahead log {:.1} KiB/s",
                            (b - a).max(0) as f64 / seconds / 1024.0
                        ),
                        _ => String::new(),
                    };
                    println!(
                        "  PostgreSQL: CPU {:.1} % of one core ({} postgres processes){writes}",
                        (pgcpu1 - pgcpu0) / seconds * 100.0,
                        postgres.len()
                    );
                }
                println!(
                    "  swarm:      RSS {:.1} MiB ({:.1} KiB per agent), CPU {:.1} % of one core{}",
                    mib(srss1.max(srss0)),
                    per(srss1.max(srss0), swarm_base_rss),
                    (scpu1 - scpu0) / seconds * 100.0,
                    if processes > 1 {
                        format!(" ({} processes together)", pids.len())
                    } else {
                        String::new()
                    }
                );
            }
            Scenario::Storm => {
                let before = agents.counts()?;
                let restarting = match (controller.as_mut(), &args.restart_command) {
                    (Some(controller), _) => {
                        controller.restart()?;
                        None
                    }
                    (None, Some(command)) => Some(
                        tokio::process::Command::new("sh")
                            .args(["-c", command])
                            .spawn()
                            .with_context(|| format!("--restart-command {command}"))?,
                    ),
                    (None, None) => anyhow::bail!("storm: no controller to restart"),
                };
                let storm = storm(&agents, restarting, n).await?;
                let after = agents.counts()?;
                let (attempts, failed) = (
                    after.attempts - before.attempts,
                    after.failed - before.failed,
                );
                let (late_attempts, late_failed) = (
                    after.attempts - storm.up.attempts,
                    after.failed - storm.up.failed,
                );
                let share = |failed: u64, attempts: u64| {
                    if attempts == 0 {
                        0.0
                    } else {
                        failed as f64 / attempts as f64 * 100.0
                    }
                };
                match storm.back {
                    Some(back) => println!(
                        "storm: {} restarted; all {} back in {:.1} s (up again after {:.1} s); \
                         {} connection attempts, {} failed ({:.2} %); once up: {} attempts, {} failed ({:.2} %)",
                        if controller.is_some() { "controller killed and" } else { "every controller" },
                        args.agents,
                        back.as_secs_f64(),
                        storm.up_after.as_secs_f64(),
                        attempts,
                        failed,
                        share(failed, attempts),
                        late_attempts,
                        late_failed,
                        share(late_failed, late_attempts),
                    ),
                    None => anyhow::bail!(
                        "storm: only {} of {} agents back within 600 s",
                        agents.connected_now()?,
                        args.agents
                    ),
                }
                admin = tierwise_controller::cli::connect(&match controller.as_ref() {
                    Some(controller) => controller.connection()?,
                    None => connection.clone(),
                })
                .await?;
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
                let before = agents.counts()?;
                let controller_part_before = match &controller {
                    Some(controller) => controller.command_delivery().await,
                    None => None,
                };
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
                    agents.counts()?;
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
                // The children's counters arrive every 200 ms: wait for the
                // last step's.
                agents.pause(Duration::from_millis(500)).await?;
                let after = agents.counts()?;
                let samples = agents.samples()?;
                println!(
                    "rollout of {} hosts: {} in {:.1} s ({} steps handed out, {} ms a step, {:.0} % failing)",
                    args.agents,
                    state.state,
                    wall,
                    after.commands - before.commands,
                    args.step_ms,
                    args.failure_rate * 100.0
                );
                println!(
                    "  hosts the swarm saw updated to {TARGET}: {} of {}",
                    after.updated - before.updated,
                    args.agents
                );
                if let Some(q) = samples.delivery_ms() {
                    println!(
                        "  delivery (queued at the commit → agent has the command): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} commands",
                        q.p50, q.p99, q.max, q.count
                    );
                }
                let controller_part_after = match &controller {
                    Some(controller) => controller.command_delivery().await,
                    None => None,
                };
                if let Some(part) = controller_part_after
                    .zip(controller_part_before)
                    .and_then(|(after, before)| after.since(&before).estimate())
                {
                    println!(
                        "  of which the controller's (the commit → the connection takes it to write, {}): p50 {:.0} ms, p99 {:.0} ms, max at most {:.0} ms over {} commands",
                        scrape::COMMAND_DELIVERY, part.p50, part.p99, part.max_at_most, part.count
                    );
                }
                if let Some(q) = samples.handoff_ms() {
                    println!(
                        "  handoff (latest result → next command, nothing running: next phase or the host's next step): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {}",
                        q.p50, q.p99, q.max, q.count
                    );
                }
                if let Some(pid) = controller.as_ref().map(Controller::pid) {
                    let (rss, _) = stats::process(pid).unwrap_or_default();
                    println!("  controller RSS after the rollout: {:.1} MiB", mib(rss));
                }
            }
            Scenario::Ingest => {
                let store = match (&controller, &args.database_url) {
                    (Some(controller), _) => controller.store().await?,
                    (None, Some(url)) => tierwise_controller::store::Store::open(url).await?,
                    (None, None) => anyhow::bail!("ingest: no store to count in (--database-url)"),
                };
                let before = store.inventory_reports().await?;
                let expected = i64::try_from(args.agents)? * i64::from(args.reports);
                let (_, cpu0) = controller
                    .as_ref()
                    .and_then(|c| stats::process(c.pid()))
                    .unwrap_or_default();
                let started = Instant::now();
                agents.ingest()?;
                let mut taken = 0;
                while started.elapsed() < Duration::from_secs(600) {
                    agents.counts()?;
                    taken = store.inventory_reports().await? - before;
                    if taken >= expected {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let seconds = started.elapsed().as_secs_f64();
                let (_, cpu1) = controller
                    .as_ref()
                    .and_then(|c| stats::process(c.pid()))
                    .unwrap_or_default();
                store.close().await;
                anyhow::ensure!(
                    taken >= expected,
                    "ingest: the store took in {taken} of {expected} reports within 600 s"
                );
                let cpu = if controller.is_some() {
                    format!(
                        "; controller CPU {:.0} % of one core",
                        (cpu1 - cpu0) / seconds * 100.0
                    )
                } else {
                    String::new()
                };
                println!(
                    "ingest: {expected} inventory reports ({} per agent at once) stored in {seconds:.1} s: {:.0} reports/s{cpu}",
                    args.reports,
                    expected as f64 / seconds,
                );
            }
        }
    }
    Ok(())
}
