//! The agent's configuration file (TOML), read and validated once at start.
//!
//! Parsing happens in two steps, as in zincati: the file is deserialized into
//! raw structures that mirror it (unknown keys refused, spans kept), then
//! validated into `Settings`, which the rest of the agent uses and which can
//! only hold what makes sense. Every error names the file, the line and the
//! key, and says what to write instead.

use regex_lite::Regex;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tierwise_common::{line_of, validate_name, Role, Version, WebServerKind};
use tierwise_transport::client::ControllerAddress;
use tierwise_transport::Fingerprint;
use toml::Spanned;

/// Default heartbeat interval in seconds.
pub const DEFAULT_HEARTBEAT_SECONDS: u32 = 10;
/// Default re-probe interval in seconds.
pub const DEFAULT_PROBE_SECONDS: u32 = 30;
/// Default longest wait between reconnect attempts.
pub const DEFAULT_RECONNECT_MAX_SECONDS: u32 = 60;
/// Default limit for a probe command.
pub const DEFAULT_COMMAND_TIMEOUT_SECONDS: u32 = 30;

/// A configuration the agent refuses to start with.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

/// A regular expression from the configuration. The first capture group, if
/// the pattern has one, is the interesting part; otherwise the whole match.
#[derive(Clone, Debug)]
pub struct Pattern(Regex);

impl Pattern {
    pub fn new(text: &str) -> Result<Self, String> {
        regex_lite::RegexBuilder::new(text)
            .size_limit(1 << 20)
            .build()
            .map(Pattern)
            .map_err(|e| format!("invalid regular expression `{text}`: {e}"))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The first capture group of the first match, or the whole match.
    pub fn extract<'t>(&self, text: &'t str) -> Option<&'t str> {
        let captures = self.0.captures(text)?;
        captures
            .get(1)
            .or_else(|| captures.get(0))
            .map(|m| m.as_str())
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Pattern::new(&text).map_err(de::Error::custom)
    }
}

/// Where a probe reads its text from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A text file; absent means "not installed".
    File(PathBuf),
    /// A program and its arguments, run without a shell.
    Command {
        argv: Vec<String>,
        timeout: Duration,
    },
}

/// How the agent finds a component's installed version.
#[derive(Clone, Debug)]
pub enum VersionProbe {
    /// Text from a file or a command; `pattern` picks the version out of it,
    /// otherwise the whole (trimmed) text must be the version.
    Text {
        source: Source,
        pattern: Option<Pattern>,
    },
    /// A fixed version, for components that cannot be probed.
    Fixed(Version),
    /// Windows: the Uninstall entry whose DisplayName matches → DisplayVersion.
    UninstallRegistry { display_name: Pattern },
    /// Windows: the file version of an executable or DLL.
    FileVersion(PathBuf),
    /// Windows, for a discovered component (never written in a file): the
    /// highest DisplayVersion among Uninstall entries that
    /// `probe::discovery::classify` gives this role.
    Discovered(Role),
}

/// A yes/no check on the host (WebSocket support, the update-check setting).
#[derive(Clone, Debug)]
pub enum CheckProbe {
    Fixed(bool),
    /// Yes when the pattern matches the text, no when it does not; unknown
    /// when the file is absent or the command fails.
    Text {
        source: Source,
        pattern: Pattern,
    },
    /// Windows: a DWORD registry value; non-zero is yes, absent is no.
    RegistryValue {
        key: String,
        value: String,
    },
}

/// Where the primary server's databases are listed: JSON, an array of
/// `{"name": "...", "active": true, "patch_level": "9.3.1.33994"}`.
#[derive(Clone, Debug)]
pub struct DatabasesProbe {
    pub source: Source,
}

#[derive(Clone, Debug)]
pub enum FactsSpec {
    None,
    Server {
        databases: Option<DatabasesProbe>,
    },
    Web {
        server: WebServerKind,
        docroot: PathBuf,
        websocket: Option<CheckProbe>,
        /// Where the Web Application package (the ZIP the Server Manager
        /// generates) of a version lies; `{version}` is filled in.
        web_app: Option<String>,
    },
    Client {
        update_check: Option<CheckProbe>,
    },
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

/// Placeholders an action command may use.
pub const PLACEHOLDERS: [&str; 4] = ["{artifact}", "{version}", "{role}", "{step}"];

#[derive(Clone, Debug)]
pub struct ComponentSpec {
    pub role: Role,
    pub version: VersionProbe,
    pub facts: FactsSpec,
    /// Commands by action key (`install`, `stop_services`, ...).
    pub actions: std::collections::BTreeMap<&'static str, ActionCommand>,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub controller: ControllerAddress,
    /// How to enroll when the agent holds no valid certificate yet.
    pub enrollment: Option<EnrollmentSettings>,
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
// The file as written.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    controller: Spanned<String>,
    enrollment_token: Option<Spanned<String>>,
    enrollment_token_file: Option<Spanned<PathBuf>>,
    ca_fingerprint: Option<Spanned<String>>,
    installation: Spanned<String>,
    host_id: Option<Spanned<String>>,
    heartbeat_seconds: Option<Spanned<u32>>,
    probe_seconds: Option<Spanned<u32>>,
    reconnect_max_seconds: Option<Spanned<u32>>,
    state_dir: Option<PathBuf>,
    log_level: Option<Spanned<String>>,
    #[serde(default)]
    component: Vec<Spanned<RawComponent>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    role: Role,
    version: Spanned<RawSource>,
    databases: Option<Spanned<RawSource>>,
    server: Option<Spanned<RawWebServer>>,
    docroot: Option<PathBuf>,
    websocket: Option<Spanned<RawCheck>>,
    update_check: Option<Spanned<RawCheck>>,
    web_app: Option<Spanned<String>>,
    actions: Option<RawActions>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawActions {
    backup: Option<Spanned<RawActionCommand>>,
    stop_services: Option<Spanned<RawActionCommand>>,
    install: Option<Spanned<RawActionCommand>>,
    start_services: Option<Spanned<RawActionCommand>>,
    reactivate_databases: Option<Spanned<RawActionCommand>>,
    restart: Option<Spanned<RawActionCommand>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawActionCommand {
    command: Vec<String>,
    timeout_seconds: Option<u32>,
    transient_exit_codes: Option<Vec<i32>>,
    restart_exit_codes: Option<Vec<i32>>,
}

/// Default limit for an action command: installers can take a while.
pub const DEFAULT_ACTION_TIMEOUT_SECONDS: u32 = 1800;

fn action_command(raw: &RawActionCommand) -> Result<ActionCommand, String> {
    if raw.command.first().is_none_or(|p| p.trim().is_empty()) {
        return Err("`command` needs at least the program, e.g. [\"msiexec\", \"/i\", \"{artifact}\", \"/qn\"]".into());
    }
    for arg in &raw.command {
        let mut rest = arg.as_str();
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                return Err(format!("`{arg}` has a `{{` without `}}`"));
            };
            let token = &rest[open..open + close + 1];
            if !PLACEHOLDERS.contains(&token) {
                return Err(format!(
                    "unknown placeholder `{token}`; use {}",
                    PLACEHOLDERS.join(", ")
                ));
            }
            rest = &rest[open + close + 1..];
        }
    }
    let timeout = raw
        .timeout_seconds
        .unwrap_or(DEFAULT_ACTION_TIMEOUT_SECONDS);
    if !(1..=86_400).contains(&timeout) {
        return Err("`timeout_seconds` must be between 1 and 86400".into());
    }
    Ok(ActionCommand {
        argv: raw.command.clone(),
        timeout: Duration::from_secs(u64::from(timeout)),
        transient_exit_codes: raw
            .transient_exit_codes
            .clone()
            .unwrap_or_else(|| vec![tierwise_common::action::MSI_ALREADY_RUNNING]),
        restart_exit_codes: raw
            .restart_exit_codes
            .clone()
            .unwrap_or_else(|| tierwise_common::action::DEFAULT_RESTART_EXIT_CODES.to_vec()),
    })
}

/// On Windows, a component without its own `restart` action restarts the
/// machine after a minute's warning to whoever is logged on.
fn default_windows_restart() -> ActionCommand {
    ActionCommand {
        argv: [
            "shutdown.exe",
            "/r",
            "/t",
            "60",
            "/d",
            "p:2:17",
            "/c",
            "Tierwise: this computer restarts in one minute to finish the Password Secure update.",
        ]
        .map(str::to_owned)
        .to_vec(),
        timeout: Duration::from_secs(60),
        transient_exit_codes: vec![tierwise_common::action::MSI_ALREADY_RUNNING],
        restart_exit_codes: Vec::new(),
    }
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawWebServer {
    Iis,
    Apache,
    Nginx,
}

/// Every probe key; which ones may appear together is checked afterwards.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSource {
    file: Option<PathBuf>,
    command: Option<Vec<String>>,
    pattern: Option<Pattern>,
    timeout_seconds: Option<u32>,
    value: Option<Version>,
    registry: Option<Pattern>,
    file_version: Option<PathBuf>,
    registry_key: Option<String>,
    registry_value: Option<String>,
}

/// `true`, `false`, or a table of probe keys.
enum RawCheck {
    Fixed(bool),
    Table(Box<RawSource>),
}

impl<'de> Deserialize<'de> for RawCheck {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CheckVisitor;
        impl<'de> Visitor<'de> for CheckVisitor {
            type Value = RawCheck;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "true, false, or a table such as { command = [...], pattern = \"...\" }",
                )
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<RawCheck, E> {
                Ok(RawCheck::Fixed(value))
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<RawCheck, M::Error> {
                RawSource::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|table| RawCheck::Table(Box::new(table)))
            }
        }
        deserializer.deserialize_any(CheckVisitor)
    }
}

// ---------------------------------------------------------------------------
// Validation.

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
    let fail = |message: String| ConfigError {
        path: origin.to_owned(),
        message,
    };
    let place = |line: usize| match locate {
        Some(locate) => locate(line),
        None => format!("line {line}"),
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| match (locate, e.span()) {
        (Some(_), Some(span)) => fail(format!(
            "{}: {}",
            place(line_of(text, span.start)),
            e.message().trim_end()
        )),
        _ => fail(e.to_string().trim_end().to_owned()),
    })?;
    let at = |span: std::ops::Range<usize>, key: &str, message: String| {
        fail(format!(
            "{}: `{key}`: {message}",
            place(line_of(text, span.start))
        ))
    };

    let controller: ControllerAddress = raw.controller.get_ref().parse().map_err(
        |e: tierwise_transport::client::AddressError| {
            at(raw.controller.span(), "controller", e.to_string())
        },
    )?;
    let ca_fingerprint = raw
        .ca_fingerprint
        .as_ref()
        .map(|f| {
            f.get_ref()
                .parse::<Fingerprint>()
                .map_err(|e| at(f.span(), "ca_fingerprint", e.to_string()))
        })
        .transpose()?;
    let token = match (&raw.enrollment_token, &raw.enrollment_token_file) {
        (Some(_), Some(file)) => {
            return Err(at(
                file.span(),
                "enrollment_token_file",
                "give enrollment_token or enrollment_token_file, not both".into(),
            ))
        }
        (Some(token), None) => Some((
            token.get_ref().trim().to_owned(),
            token.span(),
            "enrollment_token",
        )),
        (None, Some(file)) => {
            // A token is short: read at most 4 KiB, whatever the path names.
            let text = read_small(file.get_ref()).map_err(|e| {
                at(
                    file.span(),
                    "enrollment_token_file",
                    format!("cannot read {}: {e}", file.get_ref().display()),
                )
            })?;
            Some((text.trim().to_owned(), file.span(), "enrollment_token_file"))
        }
        (None, None) => None,
    };
    let enrollment = match (token, ca_fingerprint) {
        (Some((token, span, key)), Some(ca_fingerprint)) => {
            if token.is_empty() || token.len() > 200 || !token.chars().all(|c| c.is_ascii_graphic()) {
                return Err(at(span, key, "the enrollment token is empty or has characters a token cannot have".into()));
            }
            Some(EnrollmentSettings { token, ca_fingerprint })
        }
        (Some((_, span, key)), None) => {
            return Err(at(
                span,
                key,
                "an enrollment token needs `ca_fingerprint` too (`tierwise pki show --fingerprint` on the controller prints it)".into(),
            ))
        }
        (None, Some(_)) | (None, None) => None,
    };
    validate_name("installation", raw.installation.get_ref())
        .map_err(|e| at(raw.installation.span(), "installation", e.to_string()))?;
    let host_id = match &raw.host_id {
        Some(id) => {
            validate_name("host id", id.get_ref())
                .map_err(|e| at(id.span(), "host_id", e.to_string()))?;
            id.get_ref().clone()
        }
        None => {
            let name = crate::host::hostname();
            validate_name("host id", &name).map_err(|e| {
                fail(format!(
                    "`host_id` is not set and this machine's hostname cannot serve as one ({e}); set host_id"
                ))
            })?;
            name
        }
    };
    let seconds = |value: &Option<Spanned<u32>>, key: &str, default: u32, max: u32| match value {
        None => Ok(Duration::from_secs(u64::from(default))),
        Some(v) if (1..=max).contains(v.get_ref()) => {
            Ok(Duration::from_secs(u64::from(*v.get_ref())))
        }
        Some(v) => Err(at(
            v.span(),
            key,
            format!("must be between 1 and {max} seconds"),
        )),
    };
    let heartbeat = seconds(
        &raw.heartbeat_seconds,
        "heartbeat_seconds",
        DEFAULT_HEARTBEAT_SECONDS,
        3600,
    )?;
    let probe_interval = seconds(
        &raw.probe_seconds,
        "probe_seconds",
        DEFAULT_PROBE_SECONDS,
        86_400,
    )?;
    let reconnect_max = seconds(
        &raw.reconnect_max_seconds,
        "reconnect_max_seconds",
        DEFAULT_RECONNECT_MAX_SECONDS,
        3600,
    )?;

    let log_level = raw
        .log_level
        .as_ref()
        .map(|level| {
            let lower = level.get_ref().trim().to_ascii_lowercase();
            if crate::policy::table::LOG_LEVELS.contains(&lower.as_str()) {
                Ok(lower)
            } else {
                Err(at(
                    level.span(),
                    "log_level",
                    format!(
                        "`{}` is not a log level; use one of {}",
                        level.get_ref(),
                        crate::policy::table::LOG_LEVELS.join(", ")
                    ),
                ))
            }
        })
        .transpose()?;

    let mut components: Vec<ComponentSpec> = Vec::new();
    for spanned in &raw.component {
        let line = line_of(text, spanned.span().start);
        let component = spanned.get_ref();
        let role = component.role;
        let here = |key: &str, span: Option<std::ops::Range<usize>>, message: String| {
            let line = span.map_or(line, |s| line_of(text, s.start));
            fail(format!(
                "{}: component `{role}`: `{key}`: {message}",
                place(line)
            ))
        };
        if components.iter().any(|c| c.role == role) {
            return Err(fail(format!(
                "{}: component `{role}` is configured twice; a host has at most one component per role",
                place(line)
            )));
        }
        let version = version_probe(component.version.get_ref())
            .map_err(|m| here("version", Some(component.version.span()), m))?;

        let misplaced = |key: &str, span: std::ops::Range<usize>, belongs: &str| {
            here(
                key,
                Some(span),
                format!("only a `{belongs}` component has this key"),
            )
        };
        if role != Role::Server {
            if let Some(d) = &component.databases {
                return Err(misplaced("databases", d.span(), "server"));
            }
        }
        if role != Role::Web {
            if let Some(s) = &component.server {
                return Err(misplaced("server", s.span(), "web"));
            }
            if let Some(w) = &component.websocket {
                return Err(misplaced("websocket", w.span(), "web"));
            }
            if component.docroot.is_some() {
                return Err(here(
                    "docroot",
                    None,
                    "only a `web` component has this key".into(),
                ));
            }
        }
        if role != Role::Client {
            if let Some(u) = &component.update_check {
                return Err(misplaced("update_check", u.span(), "client"));
            }
        }
        let facts = match role {
            Role::Server => FactsSpec::Server {
                databases: component
                    .databases
                    .as_ref()
                    .map(|d| {
                        source(d.get_ref(), false)
                            .map(|source| DatabasesProbe { source })
                            .map_err(|m| here("databases", Some(d.span()), m))
                    })
                    .transpose()?,
            },
            Role::Web => {
                let server = component.server.as_ref().ok_or_else(|| {
                    here(
                        "server",
                        None,
                        "a web component needs `server = \"iis\"`, `\"apache\"` or `\"nginx\"`"
                            .into(),
                    )
                })?;
                let docroot = component.docroot.clone().ok_or_else(|| {
                    here(
                        "docroot",
                        None,
                        "a web component needs the Web Application's document directory".into(),
                    )
                })?;
                FactsSpec::Web {
                    server: match server.get_ref() {
                        RawWebServer::Iis => WebServerKind::Iis,
                        RawWebServer::Apache => WebServerKind::Apache,
                        RawWebServer::Nginx => WebServerKind::Nginx,
                    },
                    docroot,
                    web_app: component
                        .web_app
                        .as_ref()
                        .map(|w| {
                            let text = w.get_ref();
                            let rest = text.replace("{version}", "");
                            if rest.contains('{') || rest.contains('}') {
                                return Err(here("web_app", Some(w.span()), "only `{version}` may be filled in".into()));
                            }
                            if text.trim().is_empty() {
                                return Err(here("web_app", Some(w.span()), "name the Web Application package, e.g. \"/srv/ps/WebApp-{version}.zip\"".into()));
                            }
                            Ok(text.clone())
                        })
                        .transpose()?,
                    websocket: component
                        .websocket
                        .as_ref()
                        .map(|w| {
                            check_probe(w.get_ref())
                                .map_err(|m| here("websocket", Some(w.span()), m))
                        })
                        .transpose()?,
                }
            }
            Role::Client => FactsSpec::Client {
                update_check: component
                    .update_check
                    .as_ref()
                    .map(|u| {
                        check_probe(u.get_ref())
                            .map_err(|m| here("update_check", Some(u.span()), m))
                    })
                    .transpose()?,
            },
            Role::AppServer => FactsSpec::None,
        };
        let mut actions = std::collections::BTreeMap::new();
        if let Some(raw) = &component.actions {
            for (key, entry, server_only) in [
                ("backup", &raw.backup, true),
                ("stop_services", &raw.stop_services, false),
                ("install", &raw.install, false),
                ("start_services", &raw.start_services, false),
                ("reactivate_databases", &raw.reactivate_databases, true),
                ("restart", &raw.restart, false),
            ] {
                let Some(entry) = entry else { continue };
                let name = format!("actions.{key}");
                if server_only && role != Role::Server {
                    return Err(here(
                        &name,
                        Some(entry.span()),
                        "only a `server` component has this action".into(),
                    ));
                }
                if role == Role::Web && key == "install" {
                    return Err(here(
                        &name,
                        Some(entry.span()),
                        "the Web Application is deployed by the agent itself (empty the docroot, unzip); no install command".into(),
                    ));
                }
                let command = action_command(entry.get_ref())
                    .map_err(|m| here(&name, Some(entry.span()), m))?;
                actions.insert(key, command);
            }
        }
        if cfg!(windows) && !actions.contains_key("restart") {
            actions.insert("restart", default_windows_restart());
        }
        components.push(ComponentSpec {
            role,
            version,
            facts,
            actions,
        });
    }
    components.sort_by_key(|c| c.role);

    Ok(Settings {
        controller,
        enrollment,
        installation: raw.installation.get_ref().clone(),
        host_id,
        heartbeat,
        probe_interval,
        reconnect_max,
        state_dir: raw.state_dir.unwrap_or_else(default_state_dir),
        log_level,
        components,
    })
}

fn read_small(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(4096)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// Which keys of a probe table were used, for "exactly one of" checks.
fn kinds_present(raw: &RawSource) -> Vec<&'static str> {
    let mut kinds = Vec::new();
    if raw.file.is_some() {
        kinds.push("file");
    }
    if raw.command.is_some() {
        kinds.push("command");
    }
    if raw.value.is_some() {
        kinds.push("value");
    }
    if raw.registry.is_some() {
        kinds.push("registry");
    }
    if raw.file_version.is_some() {
        kinds.push("file_version");
    }
    if raw.registry_key.is_some() {
        kinds.push("registry_key");
    }
    kinds
}

fn source(raw: &RawSource, allow_pattern: bool) -> Result<Source, String> {
    if raw.pattern.is_some() && !allow_pattern {
        return Err("`pattern` is not used here".into());
    }
    if raw.value.is_some()
        || raw.registry.is_some()
        || raw.file_version.is_some()
        || raw.registry_key.is_some()
    {
        return Err("use `file = \"PATH\"` or `command = [\"program\", \"arg\"]` here".into());
    }
    if raw.timeout_seconds.is_some() && raw.command.is_none() {
        return Err("`timeout_seconds` only applies to `command`".into());
    }
    match (&raw.file, &raw.command) {
        (Some(_), Some(_)) => Err("set either `file` or `command`, not both".into()),
        (Some(path), None) => Ok(Source::File(path.clone())),
        (None, Some(argv)) => {
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                return Err(
                    "`command` needs at least the program, e.g. [\"apache2ctl\", \"-M\"]".into(),
                );
            }
            let timeout = raw
                .timeout_seconds
                .unwrap_or(DEFAULT_COMMAND_TIMEOUT_SECONDS);
            if !(1..=3600).contains(&timeout) {
                return Err("`timeout_seconds` must be between 1 and 3600".into());
            }
            Ok(Source::Command {
                argv: argv.clone(),
                timeout: Duration::from_secs(u64::from(timeout)),
            })
        }
        (None, None) => {
            Err("say where to look: `file = \"PATH\"` or `command = [\"program\", \"arg\"]`".into())
        }
    }
}

fn version_probe(raw: &RawSource) -> Result<VersionProbe, String> {
    let kinds = kinds_present(raw);
    if kinds.len() != 1 || raw.registry_key.is_some() {
        return Err(format!(
            "set exactly one of `file`, `command`, `value`, `registry` (Windows) or `file_version` (Windows); found {}",
            if kinds.is_empty() { "none".to_owned() } else { kinds.join(", ") }
        ));
    }
    if let Some(version) = raw.value {
        if raw.pattern.is_some() || raw.timeout_seconds.is_some() {
            return Err("`value` takes no other keys".into());
        }
        return Ok(VersionProbe::Fixed(version));
    }
    if let Some(display_name) = &raw.registry {
        windows_only("registry")?;
        if raw.pattern.is_some() || raw.timeout_seconds.is_some() {
            return Err("`registry` takes no other keys; it is a pattern for DisplayName".into());
        }
        return Ok(VersionProbe::UninstallRegistry {
            display_name: display_name.clone(),
        });
    }
    if let Some(path) = &raw.file_version {
        windows_only("file_version")?;
        if raw.pattern.is_some() || raw.timeout_seconds.is_some() {
            return Err("`file_version` takes no other keys".into());
        }
        return Ok(VersionProbe::FileVersion(path.clone()));
    }
    Ok(VersionProbe::Text {
        source: source(raw, true)?,
        pattern: raw.pattern.clone(),
    })
}

fn check_probe(raw: &RawCheck) -> Result<CheckProbe, String> {
    let raw = match raw {
        RawCheck::Fixed(value) => return Ok(CheckProbe::Fixed(*value)),
        RawCheck::Table(raw) => raw,
    };
    if let Some(key) = &raw.registry_key {
        windows_only("registry_key")?;
        let value = raw
            .registry_value
            .clone()
            .ok_or("`registry_key` needs `registry_value`, the DWORD value's name")?;
        if kinds_present(raw).len() != 1 || raw.pattern.is_some() {
            return Err("`registry_key` takes only `registry_value`".into());
        }
        return Ok(CheckProbe::RegistryValue {
            key: key.clone(),
            value,
        });
    }
    if raw.registry_value.is_some() {
        return Err("`registry_value` needs `registry_key`".into());
    }
    let pattern = raw
        .pattern
        .clone()
        .ok_or("a check needs `pattern`: yes when it matches, no when it does not")?;
    Ok(CheckProbe::Text {
        source: source(raw, true)?,
        pattern,
    })
}

fn windows_only(key: &str) -> Result<(), String> {
    if cfg!(windows) {
        Ok(())
    } else {
        Err(format!(
            "`{key}` reads the Windows registry or file versions and works only on Windows"
        ))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
controller = "https://127.0.0.1:7700"
installation = "prod"
host_id = "srv-01"
heartbeat_seconds = 10
state_dir = "/var/lib/tierwise-agent"

[[component]]
role = "server"
version = { file = "/opt/password-secure/server/VERSION" }
"#;

    fn error(text: &str) -> String {
        parse(text, "agent.toml").unwrap_err().to_string()
    }

    #[test]
    fn the_documented_shape_loads() {
        let settings = parse(GOOD, "agent.toml").unwrap();
        assert_eq!(settings.controller.to_string(), "https://127.0.0.1:7700");
        assert_eq!(settings.installation, "prod");
        assert_eq!(settings.host_id, "srv-01");
        assert_eq!(settings.heartbeat, Duration::from_secs(10));
        assert_eq!(settings.probe_interval, Duration::from_secs(30));
        assert_eq!(settings.components.len(), 1);
        assert!(matches!(
            &settings.components[0].version,
            VersionProbe::Text { source: Source::File(p), pattern: None } if p == Path::new("/opt/password-secure/server/VERSION")
        ));
    }

    #[test]
    fn a_full_configuration_loads() {
        let text = r#"
controller = "https://tierwise.corp.example:7700"
installation = "prod"
probe_seconds = 5

[[component]]
role = "client"
version = { command = ["psclient", "--version"], pattern = 'Version (\d+\.\d+\.\d+\.\d+)', timeout_seconds = 5 }
update_check = false

[[component]]
role = "web"
version = { value = "9.3.1.33994" }
server = "apache"
docroot = "/var/www/psweb"
websocket = { command = ["apache2ctl", "-M"], pattern = "proxy_wstunnel_module" }

[[component]]
role = "server"
version = { file = "/opt/ps/VERSION", pattern = '(\S+)' }
databases = { command = ["ps-databases", "--json"] }
"#;
        let settings = parse(text, "agent.toml").unwrap();
        let roles: Vec<Role> = settings.components.iter().map(|c| c.role).collect();
        assert_eq!(roles, [Role::Server, Role::Web, Role::Client]);
        assert!(!settings.host_id.is_empty(), "defaults to the hostname");
    }

    #[test]
    fn unknown_key_names_the_key_and_line() {
        let text = GOOD.replace("heartbeat_seconds = 10", "heartbeat_secs = 10");
        let err = error(&text);
        assert!(err.starts_with("agent.toml: "), "{err}");
        assert!(err.contains("line 5"), "{err}");
        assert!(err.contains("unknown field `heartbeat_secs`"), "{err}");
    }

    #[test]
    fn unknown_key_inside_a_probe_names_it() {
        let text = GOOD.replace("{ file =", "{ path =");
        let err = error(&text);
        assert!(err.contains("line 10"), "{err}");
        assert!(err.contains("unknown field `path`"), "{err}");
    }

    #[test]
    fn bad_version_literal_names_the_line() {
        let text = GOOD.replace(
            "version = { file = \"/opt/password-secure/server/VERSION\" }",
            "version = { value = \"9.3\" }",
        );
        let err = error(&text);
        assert!(err.contains("line 10"), "{err}");
        assert!(err.contains("`9.3` has 2 part(s)"), "{err}");
    }

    #[test]
    fn bad_regex_names_the_line() {
        let text = GOOD.replace(
            "version = { file = \"/opt/password-secure/server/VERSION\" }",
            "version = { file = \"/v\", pattern = \"(unclosed\" }",
        );
        let err = error(&text);
        assert!(err.contains("line 10"), "{err}");
        assert!(
            err.contains("invalid regular expression `(unclosed`"),
            "{err}"
        );
    }

    #[test]
    fn semantic_errors_name_key_and_line() {
        let cases = [
            (GOOD.replace("{ file = \"/opt/password-secure/server/VERSION\" }", "{ }"), "line 10: component `server`: `version`: set exactly one of"),
            (GOOD.replace("{ file = ", "{ command = [\"x\"], file = "), "set exactly one of `file`, `command`"),
            (GOOD.replace("heartbeat_seconds = 10", "heartbeat_seconds = 0"), "line 5: `heartbeat_seconds`: must be between 1 and 3600"),
            (GOOD.replace("\"https://127.0.0.1:7700\"", "\"http://127.0.0.1:7700\""), "line 2: `controller`: `http://127.0.0.1:7700` asks for plaintext: Tierwise speaks only TLS; write https://127.0.0.1:7700"),
            (GOOD.replace("\"https://127.0.0.1:7700\"", "\"https://\""), "line 2: `controller`: `https://` is not a controller address"),
            (GOOD.replace("installation = ", "enrollment_token = \"twe_x\"\ninstallation = "), "`enrollment_token`: an enrollment token needs `ca_fingerprint` too"),
            (GOOD.replace("installation = ", "ca_fingerprint = \"AB:CD\"\ninstallation = "), "`ca_fingerprint`: `AB:CD` is not a SHA-256 fingerprint"),
            (GOOD.replace("\"prod\"", "\"prod env\""), "line 3: `installation`: installation `prod env` contains ` `"),
            (GOOD.replace("role = \"server\"", "role = \"database\""), "unknown role `database`"),
            (format!("{GOOD}\n[[component]]\nrole = \"server\"\nversion = {{ value = \"9.3.1.1\" }}\n"), "line 12: component `server` is configured twice"),
            (format!("{GOOD}update_check = true\n"), "`update_check`: only a `client` component has this key"),
            (format!("{GOOD}\n[[component]]\nrole = \"web\"\nversion = {{ value = \"9.3.1.1\" }}\n"), "component `web`: `server`: a web component needs"),
            (GOOD.replace("{ file = \"/opt/password-secure/server/VERSION\" }", "{ command = [] }"), "`command` needs at least the program"),
            (GOOD.replace("{ file = \"/opt/password-secure/server/VERSION\" }", "{ file = \"/v\", timeout_seconds = 3 }"), "`timeout_seconds` only applies to `command`"),
        ];
        for (text, expected) in cases {
            let err = error(&text);
            assert!(err.contains(expected), "wanted {expected:?} in {err:?}");
        }
    }

    #[cfg(not(windows))]
    #[test]
    fn windows_probes_are_refused_elsewhere() {
        let text = GOOD.replace(
            "{ file = \"/opt/password-secure/server/VERSION\" }",
            "{ registry = \"Password Secure Server\" }",
        );
        assert!(error(&text).contains("works only on Windows"));
    }

    #[test]
    fn actions_are_checked() {
        let with_actions = format!(
            "{GOOD}[component.actions]\ninstall = {{ command = [\"msiexec\", \"/i\", \"{{artifact}}\", \"/qn\"], timeout_seconds = 600 }}\nbackup = {{ command = [\"backup.cmd\", \"{{step}}\"] }}\n"
        );
        let settings = parse(&with_actions, "agent.toml").unwrap();
        let install = &settings.components[0].actions["install"];
        assert_eq!(install.argv, ["msiexec", "/i", "{artifact}", "/qn"]);
        assert_eq!(install.timeout, Duration::from_secs(600));
        assert_eq!(install.transient_exit_codes, [1618]);
        let err = error(
            &with_actions
                .replace("{{step}}", "{{host}}")
                .replace("{step}", "{host}"),
        );
        assert!(
            err.contains("`actions.backup`: unknown placeholder `{host}`"),
            "{err}"
        );
        let err = error(&format!(
            "{GOOD}[component.actions]\nreboot = {{ command = [\"x\"] }}\n"
        ));
        assert!(err.contains("unknown field `reboot`"), "{err}");
        let client = GOOD.replace("role = \"server\"", "role = \"client\"");
        let err = error(&format!(
            "{client}[component.actions]\nbackup = {{ command = [\"x\"] }}\n"
        ));
        assert!(
            err.contains("only a `server` component has this action"),
            "{err}"
        );
    }

    #[test]
    fn pattern_prefers_the_first_group() {
        let p = Pattern::new(r"Version (\S+)").unwrap();
        assert_eq!(
            p.extract("Product Version 9.3.1.33994 (x64)"),
            Some("9.3.1.33994")
        );
        let p = Pattern::new(r"\d+\.\d+\.\d+\.\d+").unwrap();
        assert_eq!(p.extract("v 26.3.100.34058"), Some("26.3.100.34058"));
        assert_eq!(p.extract("none"), None);
    }
}
