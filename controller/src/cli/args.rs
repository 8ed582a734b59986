//! The `tierwise` command line as clap declares it: the connection flags of
//! the commands that talk to a controller, `serve`, and one subcommand
//! group per area. `run.rs` carries each out.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use tierwise_common::ratelimit::Rate;
use tierwise_common::Role;
use tierwise_runtime::logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "tierwise",
    version,
    about = "Tier-ordered Netwrix Password Secure rollouts: controller and operator CLI"
)]
pub struct Cli {
    // The connection, given before the command (`tierwise --controller URL
    // hosts list`). Given after it too, the one given after counts (clap
    // leaves the value in force here: a flag over the environment over the
    // default).
    #[command(flatten)]
    pub connection: ConnectionFlagsBefore,
    /// Log format on stderr.
    #[arg(long, global = true, env = "TIERWISE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, help_heading = GLOBAL_OPTIONS)]
    pub log_format: LogFormat,
    /// Show times in UTC instead of the local time zone (the TZ environment
    /// variable, else the system's); `--json` output is always UTC.
    #[arg(long, global = true, env = "TIERWISE_UTC", value_parser = clap::builder::BoolishValueParser::new(), help_heading = GLOBAL_OPTIONS)]
    pub utc: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The help heading of the options every command takes.
pub const GLOBAL_OPTIONS: &str = "Global options";
/// The help heading of the flags that say how to reach a controller.
pub const CONNECTION: &str = "Connection";

/// How the CLI reaches a controller, as the commands that talk to one take
/// it (after the command: `tierwise hosts list --controller URL`). Commands
/// that never talk to a controller (`serve`, `keys`, `pki`, `demo`, …)
/// do not take it.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = CONNECTION)]
pub struct ConnectionFlags {
    /// The controller the CLI talks to.
    #[arg(
        long,
        global = true,
        env = "TIERWISE_CONTROLLER",
        value_name = "URL",
        default_value = crate::cli::DEFAULT_CONTROLLER
    )]
    pub controller: String,
    /// The controller's CA certificate (PEM), to check whom the CLI talks to
    /// [default: the one in this machine's controller data directory].
    #[arg(long, global = true, env = "TIERWISE_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// A file holding the operator token (the token itself may be given in
    /// TIERWISE_TOKEN) [default: the first admin's token in this machine's
    /// controller data directory, when readable].
    #[arg(long, global = true, env = "TIERWISE_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// The same flags before the command (`tierwise --controller URL hosts
/// list`), as they have always been accepted.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = CONNECTION)]
pub struct ConnectionFlagsBefore {
    /// The controller the CLI talks to.
    #[arg(long, env = "TIERWISE_CONTROLLER", value_name = "URL", default_value = crate::cli::DEFAULT_CONTROLLER)]
    pub controller: String,
    /// The controller's CA certificate (PEM), to check whom the CLI talks to
    /// [default: the one in this machine's controller data directory].
    #[arg(long, env = "TIERWISE_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// A file holding the operator token (the token itself may be given in
    /// TIERWISE_TOKEN) [default: the first admin's token in this machine's
    /// controller data directory, when readable].
    #[arg(long, env = "TIERWISE_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

// Parsed once per run: the size of `serve`'s many flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller: agents connect here, operators' commands land here.
    Serve {
        /// Address to listen on for agents and operators [default: 0.0.0.0:7700].
        #[arg(long, env = "TIERWISE_LISTEN")]
        listen: Option<SocketAddr>,
        /// Directory for the embedded database, the installers, the CA (pki/)
        /// and the first admin's token.
        /// [default: /var/lib/tierwise as root, else ~/.local/share/tierwise]
        #[arg(long, env = "TIERWISE_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// sqlite://PATH or postgres://USER[:PASSWORD]@HOST[:PORT]/DB [default: sqlite in the data directory].
        #[arg(long, env = "TIERWISE_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// The CA that issues agents' certificates (PEM) [default: made on
        /// first start in DATA_DIR/pki].
        #[arg(long, env = "TIERWISE_TLS_CA_CERT", requires = "tls_ca_key")]
        tls_ca_cert: Option<PathBuf>,
        /// The CA's private key (PEM).
        #[arg(long, env = "TIERWISE_TLS_CA_KEY", requires = "tls_ca_cert")]
        tls_ca_key: Option<PathBuf>,
        /// The controller's own certificate chain (PEM), issued by the CA
        /// [default: made on every start, signed by the CA].
        #[arg(long, env = "TIERWISE_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key of --tls-cert.
        #[arg(long, env = "TIERWISE_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// A DNS name or IP address agents and operators use to reach the
        /// controller, for its generated certificate (repeatable; the host
        /// name, localhost and loopback are always in it).
        #[arg(long = "tls-name", value_name = "NAME")]
        tls_names: Vec<String>,
        /// How long an agent's certificate is valid (agents renew it after
        /// half of that).
        #[arg(long, env = "TIERWISE_AGENT_CERT_LIFETIME", default_value = "7d", value_parser = parse_lifetime)]
        agent_cert_lifetime: std::time::Duration,
        /// Connections from one address (an IPv6 /64) that have not
        /// presented a client certificate — TLS handshakes in flight,
        /// operators' calls, enrollments; further ones from it are closed
        /// at once. Agents with their certificate count per certificate
        /// instead. Behind a load balancer in TCP mode everyone comes from
        /// the balancer's address: raise it (up to 1024).
        #[arg(long, env = "TIERWISE_MAX_HANDSHAKES_PER_ADDRESS", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
        max_handshakes_per_address: u16,
        /// Close each agent session after about this long (±10 %, at least
        /// 10 s); the agent reconnects at once, so behind a load balancer
        /// streams spread again over replicas started later. Off by default.
        #[arg(long, env = "TIERWISE_MAX_SESSION_AGE", value_parser = parse_lifetime)]
        max_session_age: Option<std::time::Duration>,
        /// Enrollment attempts allowed per source address (`20/s`, `6/min`,
        /// `100/h` or `off`; five seconds' worth may come at once).
        #[arg(long, env = "TIERWISE_ENROLL_RATE_PER_ADDRESS", default_value = "20/s")]
        enroll_rate_per_address: Rate,
        /// Enrollment attempts allowed per enrollment token.
        #[arg(long, env = "TIERWISE_ENROLL_RATE_PER_TOKEN", default_value = "500/s")]
        enroll_rate_per_token: Rate,
        /// Certificate renewals allowed per host.
        #[arg(long, env = "TIERWISE_RENEW_RATE_PER_HOST", default_value = "6/min")]
        renew_rate_per_host: Rate,
        /// Failed dashboard logins allowed per source address after a
        /// burst of 10 (`10/min`, `100/h` or `off`; an IPv6 /64 counts as
        /// one address); more are answered 429 without checking the token.
        #[arg(
            long,
            env = "TIERWISE_UI_LOGIN_RATE_PER_ADDRESS",
            default_value = "10/min"
        )]
        ui_login_rate_per_address: Rate,
        /// A refused call of an operator is audited once per method within
        /// this window; the others are counted in one entry at its end.
        #[arg(long, env = "TIERWISE_AUDIT_REFUSAL_WINDOW", default_value = "60s", value_parser = parse_duration)]
        audit_refusal_window: std::time::Duration,
        /// Serve Prometheus metrics (`GET /metrics`, OpenMetrics text) on
        /// this address, in plain HTTP; off by default.
        #[arg(long, env = "TIERWISE_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
        /// Serve the web dashboard over TLS on this address (operators log
        /// in with their token; operator roles can act from it); off by
        /// default.
        #[arg(long, env = "TIERWISE_UI_LISTEN")]
        ui_listen: Option<SocketAddr>,
        /// Also serve the gRPC health service, and only it, without TLS on
        /// this address (for Kubernetes probes, which speak no TLS).
        #[arg(long, env = "TIERWISE_HEALTH_LISTEN")]
        health_listen: Option<SocketAddr>,
        /// Let rollouts start whose installers no signed release metadata
        /// covers (`rollout plan` warns loudly). Without it they are
        /// refused. Agents that pin a release root refuse them anyway.
        #[arg(long, env = "TIERWISE_ALLOW_UNSIGNED_RELEASES", value_parser = clap::builder::BoolishValueParser::new())]
        allow_unsigned_releases: bool,
        /// Accept release metadata only from this root (`tierwise keys
        /// fingerprint root-1.json`, the one agents pin) [default: the root
        /// of the first metadata imported].
        #[arg(long, env = "TIERWISE_RELEASE_ROOT_FINGERPRINT", value_parser = parse_root_fingerprint)]
        release_root_fingerprint: Option<String>,
    },
    /// Print the shell completion script (bash, zsh, fish, powershell,
    /// elvish), e.g. `tierwise completions bash > /etc/bash_completion.d/tierwise`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (tierwise.1 and one per subcommand, e.g.
    /// tierwise-rollout-start.1) into DIR, e.g. /usr/local/share/man/man1.
    Man {
        /// The directory to write the pages into (created if missing).
        dir: PathBuf,
    },
    /// Offline keys for signed release metadata: never talks to a
    /// controller. Run it on a machine that keeps the keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The controller's certificate authority.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Enrollment tokens for agents (admin).
    Tokens {
        // The values in force are read from `Cli::connection`.
        #[command(flatten)]
        _connection: ConnectionFlags,
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Who may use the CLI, and with which role (admin).
    Operators {
        // The values in force are read from `Cli::connection`.
        #[command(flatten)]
        _connection: ConnectionFlags,
        #[command(subcommand)]
        command: OperatorsCommand,
    },
    /// The operator this CLI authenticates as: name and role.
    Whoami {
        /// Machine-readable output: `name` and `role`.
        #[arg(long)]
        json: bool,
        // The values in force are read from `Cli::connection`.
        #[command(flatten)]
        _connection: ConnectionFlags,
    },
    /// Hosts and what their agents report.
    Hosts {
        // The values in force are read from `Cli::connection`.
        #[command(flatten)]
        _connection: ConnectionFlags,
        #[command(subcommand)]
        command: HostsCommand,
    },
    /// Installations: where clients whose agents say installation "auto" belong.
    Installations {
        // The values in force are read from `Cli::connection`.
        #[command(flatten)]
        _connection: ConnectionFlags,
        #[command(subcommand)]
        command: InstallationsCommand,
    },
    /// The release catalogue: what Tierwise knows about each release.
    Releases {
        // The values in force are read from `Cli::connection`.
        #[command(flatten)]
        _connection: ConnectionFlags,
        #[command(subcommand)]
        command: ReleasesCommand,
    },
    /// Maintenance windows: when the steps of a scope may start (admin to
    /// change, anyone to list).
    Windows {
        // The values in force are read from `Cli::connection`.
        #[command(flatten)]
        _connection: ConnectionFlags,
        #[command(subcommand)]
        command: WindowsCommand,
    },
    /// Maintenance end dates, per installation.
    License {
        // The values in force are read from `Cli::connection`.
        #[command(flatten)]
        _connection: ConnectionFlags,
        #[command(subcommand)]
        command: LicenseCommand,
    },
    /// Rollouts of one installation to one release.
    Rollout {
        // The values in force are read from `Cli::connection`.
        #[command(flatten)]
        _connection: ConnectionFlags,
        #[command(subcommand)]
        command: RolloutCommand,
    },
    /// Installers in the controller's content-addressed store.
    Artifacts {
        // The values in force are read from `Cli::connection`.
        #[command(flatten)]
        _connection: ConnectionFlags,
        #[command(subcommand)]
        command: ArtifactsCommand,
    },
    /// Webhook notifications of rollout events: Teams, Slack or any HTTP
    /// receiver (admin).
    Notify {
        // The values in force are read from `Cli::connection`.
        #[command(flatten)]
        _connection: ConnectionFlags,
        #[command(subcommand)]
        command: NotifyCommand,
    },
    /// Every operator action, oldest first (the newest 100); `verify`
    /// checks the log's hash chain.
    Audit {
        // The values in force are read from `Cli::connection`.
        #[command(flatten)]
        _connection: ConnectionFlags,
        /// Machine-readable output (one array; with --follow one object
        /// per line).
        #[arg(long)]
        json: bool,
        /// Keep printing new entries as they are written, until stopped
        /// (with --json one object per line, for a SIEM).
        #[arg(long)]
        follow: bool,
        #[command(subcommand)]
        command: Option<AuditCommand>,
    },
    /// Start a controller and a small simulated Password Secure installation
    /// of real agent processes, and show what the controller sees.
    Demo {
        /// Address of the demo's controller.
        #[arg(long, default_value = "127.0.0.1:7700")]
        listen: SocketAddr,
        /// The tierwise-agent binary [default: next to this one].
        #[arg(long)]
        agent_bin: Option<PathBuf>,
        /// Keep the fleet running after the tour, until Ctrl-C.
        #[arg(long)]
        keep_running: bool,
        /// Also serve the web dashboard on this address (log in with the
        /// token the demo prints the path of).
        #[arg(long)]
        ui_listen: Option<SocketAddr>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Fetch the whole audit log and check its hash chain: the links and
    /// unkeyed hashes here, the keyed hashes by the controller (which holds
    /// the chain's key). Any entry changed, removed, reordered, inserted or
    /// unhashed after it was written is found. Prints the chain's head as
    /// SEQ:SHA256 to keep.
    Verify {
        /// Machine-readable output (fields documented in docs/security.md).
        #[arg(long)]
        json: bool,
        /// A head kept earlier (SEQ:SHA256, as verify printed it, or from a
        /// notification or the controller's log): fail unless that entry is
        /// still in the log with that hash. Repeatable.
        #[arg(long, value_name = "SEQ:SHA256", value_parser = parse_audit_head)]
        expect: Vec<tierwise_common::audit::Head>,
    },
}

#[derive(Debug, Subcommand)]
pub enum HostsCommand {
    /// List hosts, their status and component versions.
    List {
        /// Only hosts of this installation.
        #[arg(long)]
        installation: Option<String>,
        /// Only hosts with a component of this role (server, app_server, web, client).
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// Machine-readable output (field names documented in the README).
        #[arg(long)]
        json: bool,
    },
    /// Everything known about one host.
    Show {
        /// The host's id, as `hosts list` shows it.
        host: String,
        /// Machine-readable output (field names documented in the README).
        #[arg(long)]
        json: bool,
    },
    /// Refuse the host's certificates from now on and close its session;
    /// it needs a new enrollment token to come back.
    Revoke {
        /// The host's id, as `hosts list` shows it.
        host: String,
    },
    /// Ask connected agents to probe and report right now.
    Refresh {
        /// One host; without it, every connected host (of --installation).
        host: Option<String>,
        /// Only the connected hosts of this installation.
        #[arg(long)]
        installation: Option<String>,
    },
    /// The host's steps across rollouts, newest first, with every failed
    /// attempt kept (its exit code and output), even after a skip or a
    /// successful retry.
    History {
        /// The host's id, as `hosts list` shows it.
        host: String,
        /// How many steps, newest first (1 to 1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Machine-readable output: times as RFC 3339 UTC (`*_at`) and Unix ms (`*_ms`).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum InstallationsCommand {
    /// Place the clients whose Password Secure server is ADDRESS (a host
    /// name or IP address, as their database profiles name it) in
    /// INSTALLATION (admin).
    Map {
        /// The server's host name or IP address, as the clients' database
        /// profiles name it.
        address: String,
        /// The installation those clients belong to.
        installation: String,
    },
    /// Remove the mapping of ADDRESS (admin).
    Unmap {
        /// The address as it was mapped.
        address: String,
    },
    /// List the address mappings.
    Maps {
        /// Machine-readable output (field names documented in the README).
        #[arg(long)]
        json: bool,
    },
    /// Promote NAME's releases from another installation (admin): a plan
    /// or rollout of NAME to a release is blocked until SOURCE completed a
    /// rollout to it at least --soak ago, with no failure there since.
    Set {
        /// The installation to change.
        name: String,
        /// The installation releases must come through first; `none`
        /// clears it.
        #[arg(long)]
        promote_from: String,
        /// How long a release must have run there, completed (e.g. 3d,
        /// 12h; 0s: only completed). Needed unless --promote-from none.
        #[arg(long, value_parser = parse_duration)]
        soak: Option<std::time::Duration>,
    },
    /// Show NAME's settings.
    Show {
        /// The installation.
        name: String,
        /// Machine-readable output (field names documented in the README).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make an Ed25519 signing key in FILE (owner-only; refused if FILE
    /// exists); prints its id and public key.
    Create {
        /// Where to write the new key (must not exist yet).
        file: PathBuf,
    },
    /// Write root metadata: which keys sign roots and releases, and how
    /// many of them must. Signed by every --root-key and --sign-with.
    Root {
        /// Where to write the signed root metadata (JSON).
        #[arg(long)]
        out: PathBuf,
        /// 1 for the first root; the previous root's version + 1 to rotate.
        #[arg(long)]
        version: u64,
        /// How long the root is valid (e.g. 365d); agents refuse it after.
        #[arg(long, default_value = "365d", value_parser = parse_duration)]
        expires: std::time::Duration,
        /// A root key file (listed, and it signs).
        #[arg(long = "root-key", value_name = "FILE", required = true)]
        root_keys: Vec<PathBuf>,
        /// A root key held elsewhere: its public key (listed, does not sign now).
        #[arg(long = "root-public", value_name = "HEX")]
        root_publics: Vec<String>,
        /// Root signatures a root needs.
        #[arg(long, default_value_t = 1)]
        threshold: u32,
        /// A release key's public key (repeatable).
        #[arg(long = "release-public", value_name = "HEX", required = true)]
        release_publics: Vec<String>,
        /// Release signatures a release needs.
        #[arg(long, default_value_t = 1)]
        release_threshold: u32,
        /// Another key that signs too: for a rotation, the previous root's
        /// keys (the threshold of the old root must sign the new one).
        #[arg(long = "sign-with", value_name = "FILE")]
        sign_with: Vec<PathBuf>,
    },
    /// Write release metadata: the catalogue's and every installer's
    /// SHA-256 and length with its release and component, signed by the
    /// release keys.
    Release {
        /// Where to write the signed release metadata (JSON).
        #[arg(long)]
        out: PathBuf,
        /// Higher than every release metadata signed before.
        #[arg(long)]
        version: u64,
        /// How long the release metadata is valid (e.g. 30d); sign it
        /// again before.
        #[arg(long, default_value = "30d", value_parser = parse_duration)]
        expires: std::time::Duration,
        /// A release key file (repeatable).
        #[arg(long = "key", value_name = "FILE", required = true)]
        keys: Vec<PathBuf>,
        /// The release catalogue these installers belong to.
        #[arg(long)]
        catalogue: PathBuf,
        /// An installer: FILE=RELEASE:COMPONENT (repeatable).
        #[arg(long = "installer", value_name = "FILE=RELEASE:COMPONENT")]
        installers: Vec<String>,
    },
    /// The fingerprint of a root file, which agents pin.
    Fingerprint {
        /// A root metadata file (`keys root --out`).
        root: PathBuf,
    },
    /// Check metadata as an agent would: the roots from the pinned one on,
    /// then the release metadata, then each installer.
    Verify {
        /// The fingerprint of the first root (`keys fingerprint`).
        #[arg(long)]
        pin: String,
        /// Root files, oldest first (repeatable).
        #[arg(long = "root", value_name = "FILE", required = true)]
        roots: Vec<PathBuf>,
        /// The release metadata to check against the last root.
        #[arg(long)]
        release: Option<PathBuf>,
        /// The catalogue the release metadata must have been signed for.
        #[arg(long)]
        catalogue: Option<PathBuf>,
        /// An installer to check: FILE=RELEASE:COMPONENT (repeatable).
        #[arg(long = "installer", value_name = "FILE=RELEASE:COMPONENT")]
        installers: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create the CA in the data directory if it has none, then show it as
    /// `pki show` does: run once before starting replicas that share it.
    Init {
        /// The controller's data directory [default: as for `serve`].
        #[arg(long, env = "TIERWISE_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Print the CA certificate and its SHA-256 fingerprint, which agents
    /// pin (`ca_fingerprint`) before they enroll. Reads the controller's files.
    Show {
        /// The controller's data directory [default: as for `serve`].
        #[arg(long, env = "TIERWISE_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Print only the fingerprint.
        #[arg(long)]
        fingerprint: bool,
        /// The CA certificate to show [default: DATA_DIR/pki/ca.pem]. Global
        /// here only so that it may also come before the command, as it
        /// always could.
        #[arg(long, global = true, env = "TIERWISE_CA_CERT", value_name = "FILE")]
        ca_cert: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create an enrollment token; it is printed once, on stdout.
    Create {
        /// Only agents of this installation may enroll with it.
        #[arg(long)]
        installation: Option<String>,
        /// How many agents may enroll with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// How long it is valid (e.g. 30m, 24h, 7d; at most 90d).
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        expires: std::time::Duration,
        /// Machine-readable output (field names documented in the README).
        #[arg(long)]
        json: bool,
    },
    /// Every token with its uses, expiry and state (never the secret).
    List {
        /// Machine-readable output (field names documented in the README).
        #[arg(long)]
        json: bool,
    },
    /// Refuse a token from now on.
    Revoke {
        /// The token's id, as `tokens list` shows it (never the secret).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum OperatorsCommand {
    /// Add an operator; their token is printed once, on stdout.
    Add {
        /// The operator's name, as the audit log will show it.
        name: String,
        /// viewer (reads), operator (also plans and runs rollouts) or admin
        /// (also tokens, operators, hosts' certificates, catalogue,
        /// licences, artifacts).
        #[arg(long)]
        role: String,
        /// How long the token works (`90d`, `12h`, …) or `never`.
        #[arg(long, default_value = "90d", value_parser = parse_expiry)]
        expires: Expiry,
    },
    /// Operators with their role, when their token expires and their last
    /// call.
    List {
        /// Machine-readable output (field names documented in the README).
        #[arg(long)]
        json: bool,
    },
    /// Remove an operator; their token stops working at once.
    Remove {
        /// The operator's name.
        name: String,
    },
    /// A new token for NAME, printed once; the old one stops working at
    /// once. Any operator for themselves, an admin for anyone.
    Rotate {
        /// The operator's name (your own, unless you are an admin).
        name: String,
        /// How long the new token works (`90d`, `12h`, …) or `never`.
        #[arg(long, default_value = "90d", value_parser = parse_expiry)]
        expires: Expiry,
    },
}

/// How long an operator token works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    After(std::time::Duration),
    Never,
}

fn parse_expiry(text: &str) -> Result<Expiry, String> {
    if text == "never" {
        return Ok(Expiry::Never);
    }
    let lifetime = parse_duration(text)?;
    if lifetime.is_zero() {
        return Err(
            "an expiry must be longer than 0; write `never` for a token that does not expire"
                .into(),
        );
    }
    Ok(Expiry::After(lifetime))
}

#[derive(Debug, Subcommand)]
pub enum ArtifactsCommand {
    /// Store an installer for a release and component; checked against the
    /// catalogue's SHA-256 when it names one.
    Add {
        /// The installer file (MSI or EXE; for the web, the Web Application
        /// package).
        file: PathBuf,
        /// The release it installs, e.g. 26.3.100.34058.
        #[arg(long)]
        release: String,
        /// server, app_server, web or client.
        #[arg(long, value_parser = parse_role)]
        component: Role,
        /// With `--component web`: the Web Application the Server Manager
        /// generated for this kind of web server (iis, apache or nginx);
        /// each web host of that kind then gets it.
        #[arg(long, value_parser = parse_web_server)]
        web_server: Option<tierwise_common::WebServerKind>,
    },
    /// The stored installers and Web Application packages: SHA-256, size,
    /// release, component, kind of web server, who added them and when,
    /// and whether signed release metadata covers them.
    List {
        /// Machine-readable output (field names documented in the README).
        #[arg(long)]
        json: bool,
    },
    /// Remove installers from the controller, files included (admin):
    /// by SHA-256, or by --release and --component. Refused while a
    /// rollout that may still run (not completed or aborted) is to their
    /// release.
    Remove {
        /// The SHA-256 of a stored file, or its first 8 or more digits
        /// (repeatable); every installer that is this file goes.
        #[arg(value_name = "SHA256", conflicts_with_all = ["release", "component"], required_unless_present = "release")]
        sha256: Vec<String>,
        /// The release whose installer goes (with --component).
        #[arg(long, requires = "component")]
        release: Option<String>,
        /// server, app_server, web or client.
        #[arg(long, value_parser = parse_role, requires = "release")]
        component: Option<Role>,
        /// With `--component web`: the package made for this kind of web
        /// server (iis, apache or nginx) instead of the one for every kind.
        #[arg(long, value_parser = parse_web_server, requires = "release")]
        web_server: Option<tierwise_common::WebServerKind>,
    },
}

fn parse_web_server(text: &str) -> Result<tierwise_common::WebServerKind, String> {
    tierwise_common::WebServerKind::parse(text)
        .ok_or_else(|| format!("`{text}` is no kind of web server; use iis, apache or nginx"))
}

#[derive(Debug, Subcommand)]
pub enum ReleasesCommand {
    /// Replace the catalogue with a TOML file, all or nothing. An import
    /// that would remove releases is refused unless --allow-remove.
    Import {
        /// The catalogue (TOML, its format described at the top of
        /// deploy/catalogue/password-secure.toml).
        file: PathBuf,
        /// Only show which releases would be added, changed and removed;
        /// change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Let the import remove the releases the file no longer lists.
        #[arg(long)]
        allow_remove: bool,
    },
    /// The releases the controller knows.
    List {
        /// Machine-readable output (field names documented in the README).
        #[arg(long)]
        json: bool,
    },
    /// Signed release metadata (made offline with `tierwise keys`).
    Metadata {
        #[command(subcommand)]
        command: MetadataCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum MetadataCommand {
    /// Store signed metadata for the catalogue in force (admin): checked
    /// first (signatures, expiry, versions, catalogue), all or nothing.
    Import {
        /// Root metadata, oldest first: the first root, then every later
        /// one (repeatable).
        #[arg(long = "root", value_name = "FILE", required = true)]
        roots: Vec<PathBuf>,
        /// The release metadata.
        #[arg(long, value_name = "FILE")]
        release: PathBuf,
    },
    /// The metadata in force and whether it still verifies.
    Show {
        /// Machine-readable output (field names documented in the README).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LicenseCommand {
    /// Record when an installation's software maintenance ends.
    Set {
        /// The installation, as its agents name it.
        #[arg(long)]
        installation: String,
        /// YYYY-MM-DD: releases published after it are refused.
        #[arg(long)]
        maintenance_until: String,
    },
    /// The recorded maintenance end dates.
    Show {
        /// Machine-readable output (field names documented in the README).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// What a rollout would do and what stops it; changes nothing.
    /// Exit status 3 when the plan is blocked.
    Plan {
        /// The installation to plan for, as its agents name it.
        #[arg(long)]
        installation: String,
        /// The target release, e.g. 26.3.100.34058.
        #[arg(long)]
        to: String,
        /// Cumulative client waves [default: 1%,10%,50%,100%, first wave at most 100 hosts].
        #[arg(long)]
        client_waves: Option<String>,
        /// Machine-readable output (field names documented in the README).
        #[arg(long)]
        json: bool,
    },
    /// Start a rollout from the plan; refused while anything blocks or an
    /// acknowledgement is missing.
    Start {
        /// The installation to update, as its agents name it.
        #[arg(long)]
        installation: String,
        /// The target release, e.g. 26.3.100.34058.
        #[arg(long)]
        to: String,
        /// Acknowledge what the plan asks for, by name (repeatable; `rollout
        /// plan` lists them): breaking, server-manager-password, changelog,
        /// a vendor note's id (e.g. pkcs11), skip-promotion.
        #[arg(long = "ack", value_name = "NAME")]
        acks: Vec<String>,
        /// Same as `--ack breaking` (the older form).
        #[arg(long, hide = true)]
        ack_breaking: bool,
        /// Same as `--ack server-manager-password` (the older form).
        #[arg(long, hide = true)]
        ack_server_manager_password: bool,
        /// Cumulative client waves, e.g. 1%,10%,50%,100% or 5,100%
        /// [default: as `rollout plan` shows].
        #[arg(long)]
        client_waves: Option<String>,
        /// Failures a client wave tolerates: a share (5%) or a number of hosts.
        #[arg(long)]
        error_threshold: Option<String>,
        /// Wait for `rollout approve` before each phase after the first.
        #[arg(long)]
        approve_phases: bool,
        /// How long a succeeded step's effect may take to show in what its
        /// host reports before the step counts as failed, per action
        /// (repeatable): install=20m, deploy_web_app=10m,
        /// reactivate_databases=15m [default: 30m each].
        #[arg(long = "verify-timeout", value_name = "ACTION=DURATION")]
        verify_timeouts: Vec<String>,
        /// What happens when an installer says its host must restart (exit
        /// 3010 or 1641), per role (repeatable): server=ask, client=auto,
        /// web=never. ask waits for `rollout approve`, auto restarts the
        /// host at once, never lists it for you [default: client=auto, the
        /// rest ask].
        #[arg(long = "restart", value_name = "ROLE=POLICY")]
        restarts: Vec<String>,
        /// How long an operator task may stay open before the rollout halts
        /// (90m, 24h, 2d; 10s to 7d) [default: 24h].
        #[arg(long, value_name = "DURATION")]
        task_timeout: Option<String>,
        /// The oldest backup the server's update may start on, e.g. after an
        /// approval wait; an older one halts the rollout, and `resume` takes
        /// a new one (30m, 2h; 10s to 7d) [default: 2h].
        #[arg(long, value_name = "DURATION")]
        max_backup_age: Option<String>,
        /// Then follow it as `rollout status --watch` does, and exit with
        /// the status of how it ended (0 completed; see docs/cli.md).
        #[arg(long)]
        watch: bool,
    },
    /// All rollouts.
    List {
        /// Machine-readable output (field names documented in the README).
        #[arg(long)]
        json: bool,
    },
    /// One rollout's progress [default: the newest].
    ///
    /// Exit status (also with --watch, when it ends): 0 while it runs or when it completed, 4 completed
    /// with failures, 5 failed (halted), 6 aborted.
    Status {
        /// The rollout's id, as `rollout list` shows it [default: the newest].
        id: Option<String>,
        /// Machine-readable output (field names documented in the README);
        /// with --watch one document per line, printed when it changes.
        #[arg(long)]
        json: bool,
        /// Follow it live until it ends, then exit with the status of how it
        /// ended; Ctrl-C stops only the watching (exit 130). Off a terminal
        /// only the lines that changed are printed, each with its time.
        #[arg(long)]
        watch: bool,
    },
    /// Stop dispatching new steps (running ones finish).
    Pause {
        /// The rollout's id, as `rollout list` shows it.
        id: String,
    },
    /// Continue a paused rollout, or a halted one after a fix (its failed
    /// steps of the current phase run again).
    Resume {
        /// The rollout's id, as `rollout list` shows it.
        id: String,
    },
    /// End a rollout for good; nothing more is sent.
    Abort {
        /// The rollout's id, as `rollout list` shows it.
        id: String,
    },
    /// Let a rollout waiting for approval start its next phase.
    Approve {
        /// The rollout's id, as `rollout list` shows it.
        id: String,
    },
    /// Let a rollout finish without a host (e.g. one that stays offline):
    /// its unfinished steps are skipped and it keeps its version. Refused
    /// for the primary server and the databases' reactivation.
    Skip {
        /// The rollout's id, as `rollout list` shows it.
        id: String,
        /// The host to go on without (it keeps its old version).
        #[arg(long)]
        host: String,
    },
    /// Say that an operator task is done (as `rollout status` lists it: its
    /// id, or its kind when the rollout has one such task); the rollout then
    /// checks what the agents report and goes on.
    Done {
        /// The rollout's id, as `rollout list` shows it.
        id: String,
        /// The task's id, or its kind when the rollout has one such task.
        task: String,
        /// What was done, for the audit log and the status.
        #[arg(long)]
        note: Option<String>,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse()
        .map_err(|e: tierwise_common::RoleParseError| e.to_string())
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration like 30m, 24h or 7d: {e}"))
}

fn parse_lifetime(text: &str) -> Result<std::time::Duration, String> {
    let lifetime = parse_duration(text)?;
    if lifetime < crate::server::MIN_AGENT_CERTIFICATE_LIFETIME {
        return Err(format!(
            "at least {} s",
            crate::server::MIN_AGENT_CERTIFICATE_LIFETIME.as_secs()
        ));
    }
    Ok(lifetime)
}

/// A root fingerprint as `tierwise keys fingerprint` prints it (colons and
/// upper case accepted), kept as 64 lowercase hex digits.
fn parse_root_fingerprint(text: &str) -> Result<String, String> {
    text.parse::<tierwise_transport::Fingerprint>()
        .map(|f| f.to_string().replace(':', "").to_ascii_lowercase())
        .map_err(|_| format!("`{text}` is not a root fingerprint: give the 64 hexadecimal digits `tierwise keys fingerprint ROOT.json` prints"))
}

#[derive(Debug, Subcommand)]
pub enum WindowsCommand {
    /// Set the window of one scope of an installation (replacing it): a step
    /// of that scope starts only when its time limit fits before it closes.
    Set {
        /// The installation, as its agents name it.
        #[arg(long)]
        installation: String,
        /// server (backup, server, databases), app_servers, web or clients.
        #[arg(long)]
        scope: String,
        /// mon-fri, sat, sat,sun, daily.
        #[arg(long)]
        days: String,
        /// HH:MM local time.
        #[arg(long)]
        from: String,
        /// HH:MM local time; not after --from: past midnight.
        #[arg(long)]
        to: String,
        /// IANA time zone, e.g. Europe/Berlin.
        #[arg(long = "tz")]
        time_zone: String,
    },
    /// Remove the window of one scope.
    Remove {
        /// The installation, as its agents name it.
        #[arg(long)]
        installation: String,
        /// server, app_servers, web or clients.
        #[arg(long)]
        scope: String,
    },
    /// The windows, and when each opens next.
    List {
        /// Only the windows of this installation.
        #[arg(long)]
        installation: Option<String>,
        /// Machine-readable output (field names documented in the README).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Subscribe a webhook to rollout events; each is POSTed once, in
    /// order, retried for over an hour while the receiver is down.
    Add {
        /// A name for the subscription (letters, digits, `.`, `-`, `_`).
        name: String,
        /// Where events are POSTed: http://… or https://….
        #[arg(long)]
        url: String,
        /// The events to send (repeat or comma-separate): rollout.started,
        /// rollout.waiting_for_approval, rollout.waiting_for_operator,
        /// rollout.halted, rollout.completed, rollout.aborted, host.offline;
        /// default: all.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// The body: json (the event's payload), teams (an Adaptive Card for
        /// a Teams workflow webhook) or slack (a Slack incoming webhook
        /// message).
        #[arg(long, default_value = "json")]
        format: String,
        /// A file holding the secret that signs each request
        /// (X-Tierwise-Signature); without it requests are not signed.
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
    /// The subscriptions, with pending, sent and given-up events and the
    /// last error (never the secret).
    List {
        /// JSON: one object per subscription.
        #[arg(long)]
        json: bool,
    },
    /// Remove a subscription and the events still waiting for it.
    Remove {
        /// The subscription's name.
        name: String,
    },
    /// Send a `test` event to a subscription (through the outbox, signed
    /// like any other).
    Test {
        /// The subscription's name.
        name: String,
    },
}

fn parse_audit_head(text: &str) -> Result<tierwise_common::audit::Head, String> {
    text.parse()
}
