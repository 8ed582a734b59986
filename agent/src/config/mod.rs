//! The agent's configuration file (TOML), read and validated once at start.
//!
//! Parsing happens in two steps, as in zincati: the file is deserialized into
//! raw structures that mirror it (unknown keys refused, spans kept), then
//! validated into `Settings`, which the rest of the agent uses and which can
//! only hold what makes sense. Every error names the file, the line and the
//! key, and says what to write instead.
//!
//! The files follow those steps: `raw` is the file as written, `validate`
//! turns it into `Settings` (every check, message and default, and no I/O),
//! with `actions` checking each component's actions; `probes` holds the
//! validated probe specifications. This file holds the
//! public types and the loading functions, the only code of the
//! configuration that reads files or asks the machine anything.

mod actions;
mod probes;
mod raw;
#[cfg(test)]
mod tests;
mod validate;

pub use probes::{CheckProbe, DatabasesProbe, FactsSpec, Pattern, Source, VersionProbe};

use std::path::{Path, PathBuf};
use std::time::Duration;
use tierwise_common::Role;
use tierwise_transport::client::ControllerAddress;
use tierwise_transport::Fingerprint;

/// Default heartbeat interval in seconds.
pub const DEFAULT_HEARTBEAT_SECONDS: u32 = 10;
/// Default re-probe interval in seconds.
pub const DEFAULT_PROBE_SECONDS: u32 = 30;
/// Default longest wait between reconnect attempts.
pub const DEFAULT_RECONNECT_MAX_SECONDS: u32 = 60;
/// Default limit for a probe command.
pub const DEFAULT_COMMAND_TIMEOUT_SECONDS: u32 = 30;
/// Default limit for an action command: installers can take a while.
pub const DEFAULT_ACTION_TIMEOUT_SECONDS: u32 = 1800;

/// A configuration the agent refuses to start with.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

/// The local command that performs one typed action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionCommand {
    /// Program and arguments; placeholders such as `{artifact}` and
    /// `{version}` are filled in per step. Run without a shell.
    pub argv: Vec<String>,
    pub timeout: Duration,
    /// Exit codes that mean "try again later" (default: 1618).
    pub transient_exit_codes: Vec<i32>,
    /// Exit codes that mean "succeeded, the host must restart" (default:
    /// 3010, 1641).
    pub restart_exit_codes: Vec<i32>,
}

/// How the agent performs one typed action on this host: exactly one of a
/// local command or, for `stop_services` and `start_services` on Windows,
/// the named services through the Service Control Manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfiguredAction {
    Command(ActionCommand),
    WindowsServices(WindowsServicesAction),
}

impl ConfiguredAction {
    /// The step's time limit.
    pub fn timeout(&self) -> Duration {
        match self {
            ConfiguredAction::Command(command) => command.timeout,
            ConfiguredAction::WindowsServices(services) => services.timeout,
        }
    }

    /// The command, when a command performs it.
    pub fn command(&self) -> Option<&ActionCommand> {
        match self {
            ConfiguredAction::Command(command) => Some(command),
            ConfiguredAction::WindowsServices(_) => None,
        }
    }
}

impl From<ActionCommand> for ConfiguredAction {
    fn from(command: ActionCommand) -> Self {
        ConfiguredAction::Command(command)
    }
}

/// `windows_services = [...]`: services stopped or started through the
/// Service Control Manager, in the order their dependencies require (asked
/// of the SCM, not taken from how the list is written), each awaited until
/// it reached the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowsServicesAction {
    /// Service names as `sc query` shows them (SERVICE_NAME), unique
    /// without regard to case.
    pub services: Vec<String>,
    /// For all of them together.
    pub timeout: Duration,
}

/// Placeholders an action command may use.
pub const PLACEHOLDERS: [&str; 4] = ["{artifact}", "{version}", "{role}", "{step}"];

#[derive(Clone, Debug)]
pub struct ComponentSpec {
    pub role: Role,
    pub version: VersionProbe,
    pub facts: FactsSpec,
    /// How each action is performed, by action key (`install`,
    /// `stop_services`, ...).
    pub actions: std::collections::BTreeMap<&'static str, ConfiguredAction>,
    /// What must answer once an update left the component running.
    pub health: Option<HealthChecks>,
    /// `server` only: where the backup action's backups land; the step
    /// then succeeds only when a new one is there.
    pub backup_location: Option<BackupLocation>,
    /// `server` only: where the Server Manager saves the Web Application
    /// it generates, a folder per kind of web server (`iis`, `apache`,
    /// `nginx`); the agent hands new packages to the controller.
    pub web_app_output: Option<PathBuf>,
}

/// Where backups land: a directory, and the pattern of their file names
/// (`*` and `?`, any case; `{database}` for each database's name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupLocation {
    pub directory: PathBuf,
    pub pattern: tierwise_common::backup::BackupPattern,
}

impl std::fmt::Display for BackupLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.directory.display(), self.pattern)
    }
}

/// Default time the health checks have to pass after a step.
pub const DEFAULT_HEALTH_WAIT_SECONDS: u32 = 120;

/// Post-update health checks of one component: every one must pass, within
/// `wait`, for the step that left the component running to succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthChecks {
    /// Ports that must accept a connection.
    pub tcp: Vec<TcpTarget>,
    /// URLs that must answer 200 over HTTPS.
    pub https: Vec<HttpsTarget>,
    /// Windows services that must be running.
    pub services: Vec<String>,
    /// A PEM file of certificates trusted for `https` besides the system's.
    pub ca_file: Option<PathBuf>,
    pub wait: Duration,
}

/// `HOST:PORT` of a TCP check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpTarget {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for TcpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// An `https://` URL, split for the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpsTarget {
    /// As written, for messages.
    pub url: String,
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub controller: ControllerAddress,
    /// How to enroll when the agent holds no valid certificate yet.
    pub enrollment: Option<EnrollmentSettings>,
    /// The release root pinned by its fingerprint (64 lowercase hex
    /// digits): installers run only when signed release metadata from it
    /// covers them. `None`: checked by their SHA-256 only.
    pub release_root: Option<String>,
    pub installation: String,
    pub host_id: String,
    pub heartbeat: Duration,
    pub probe_interval: Duration,
    /// Longest wait between reconnect attempts.
    pub reconnect_max: Duration,
    pub state_dir: PathBuf,
    /// `error`, `warn`, `info`, `debug` or `trace`; `None`: the default
    /// (`info`, or `RUST_LOG`).
    pub log_level: Option<String>,
    pub components: Vec<ComponentSpec>,
}

/// What an agent needs to get its first certificate.
#[derive(Clone)]
pub struct EnrollmentSettings {
    /// The enrollment token (from `tierwise tokens create`).
    pub token: String,
    /// The controller's CA, pinned by fingerprint (`tierwise pki show`).
    pub ca_fingerprint: Fingerprint,
}

impl std::fmt::Debug for EnrollmentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never in logs.
        write!(
            f,
            "EnrollmentSettings {{ token: <hidden>, ca_fingerprint: {} }}",
            self.ca_fingerprint
        )
    }
}

// ---------------------------------------------------------------------------
// Loading: the only I/O.

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.display().to_string(),
        message: format!("cannot read the configuration: {e}"),
    })?;
    parse(&text, &path.display().to_string())
}

/// Validates configuration text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Settings, ConfigError> {
    parse_with(text, origin, None)
}

/// Validates a document merged from several sources; `locate` turns a line
/// of `text` into the source to fix (a registry value, a file).
pub fn parse_located(
    text: &str,
    origin: &str,
    locate: &dyn Fn(usize) -> String,
) -> Result<Settings, ConfigError> {
    parse_with(text, origin, Some(locate))
}

fn parse_with(
    text: &str,
    origin: &str,
    locate: Option<&dyn Fn(usize) -> String>,
) -> Result<Settings, ConfigError> {
    let origin = validate::Origin {
        text,
        name: origin,
        locate,
    };
    let raw = validate::deserialize(&origin)?;
    let machine = validate::Machine {
        // A token is short: read at most 4 KiB, whatever the path names.
        token_file: validate::token_file(&raw).map(read_small),
        hostname: crate::host::hostname(),
        default_state_dir: default_state_dir(),
    };
    validate::settings(raw, machine, &origin)
}

/// Validates configuration text without asking this machine anything: a
/// token file the text names reads as `token_file_text`, the host name is
/// `hostname`. For the fuzz targets in `fuzz/` (so arbitrary text reads no
/// file); [`parse`] is this with the machine's own answers. Not an API.
#[doc(hidden)]
pub fn parse_detached(
    text: &str,
    origin: &str,
    token_file_text: &str,
    hostname: &str,
) -> Result<Settings, ConfigError> {
    let origin = validate::Origin {
        text,
        name: origin,
        locate: None,
    };
    let raw = validate::deserialize(&origin)?;
    let machine = validate::Machine {
        token_file: validate::token_file(&raw).map(|_| Ok(token_file_text.to_owned())),
        hostname: hostname.to_owned(),
        default_state_dir: default_state_dir(),
    };
    validate::settings(raw, machine, &origin)
}

fn read_small(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(4096)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// `%ProgramData%\Tierwise\Agent` on Windows, `/var/lib/tierwise-agent` elsewhere.
pub fn default_state_dir() -> PathBuf {
    #[cfg(windows)]
    {
        crate::host::program_data().join("Tierwise").join("Agent")
    }
    #[cfg(not(windows))]
    {
        PathBuf::from("/var/lib/tierwise-agent")
    }
}
