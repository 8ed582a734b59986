//! From the file as written to `Settings`: every check, every error message
//! and every default (intervals, timeouts, the Windows restart command).
//!
//! Pure: no file is read and nothing is asked of the machine here. What
//! validation needs from the machine (the token file, the hostname, the
//! default state directory) is gathered beforehand by `mod.rs` and handed in
//! as a [`Machine`].

use super::actions::{backup_location_of, configured_action, default_windows_restart};
use super::raw::{RawCheck, RawConfig, RawHealth, RawSource, RawWebServer};
use super::{
    CheckProbe, ComponentSpec, ConfigError, ConfiguredAction, DatabasesProbe, EnrollmentSettings,
    FactsSpec, HealthChecks, HttpsTarget, Settings, Source, TcpTarget, VersionProbe,
    DEFAULT_COMMAND_TIMEOUT_SECONDS, DEFAULT_HEALTH_WAIT_SECONDS, DEFAULT_HEARTBEAT_SECONDS,
    DEFAULT_PROBE_SECONDS, DEFAULT_RECONNECT_MAX_SECONDS,
};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tierwise_common::{line_of, validate_name, Role, WebServerKind};
use tierwise_transport::client::ControllerAddress;
use tierwise_transport::Fingerprint;
use toml::Spanned;

/// Where errors point: `name` (the file, or what stands for it) starts every
/// message, then the line of `text` the culprit is on — or, for a document
/// merged from several sources, what `locate` makes of that line.
pub(super) struct Origin<'a> {
    pub(super) text: &'a str,
    pub(super) name: &'a str,
    pub(super) locate: Option<&'a dyn Fn(usize) -> String>,
}

impl Origin<'_> {
    fn fail(&self, message: String) -> ConfigError {
        ConfigError {
            path: self.name.to_owned(),
            message,
        }
    }

    fn place(&self, line: usize) -> String {
        match self.locate {
            Some(locate) => locate(line),
            None => format!("line {line}"),
        }
    }
}

/// What validation needs from this machine, gathered beforehand by `mod.rs`
/// (the only place with I/O) so that validation stays pure.
pub(super) struct Machine {
    /// The start (at most 4 KiB) of the file [`token_file`] names, if any.
    pub(super) token_file: Option<std::io::Result<String>>,
    /// This machine's hostname: the host id when `host_id` is not set.
    pub(super) hostname: String,
    /// Where state goes when `state_dir` is not set.
    pub(super) default_state_dir: PathBuf,
}

/// The token file validation needs read: `enrollment_token_file`, unless
/// `enrollment_token` is set as well (an error of its own).
pub(super) fn token_file(raw: &RawConfig) -> Option<&Path> {
    match (&raw.enrollment_token, &raw.enrollment_token_file) {
        (None, Some(file)) => Some(file.get_ref()),
        _ => None,
    }
}

/// The text as raw structures: syntax errors, unknown keys and bad literals
/// (versions, regular expressions) stop here.
pub(super) fn deserialize(origin: &Origin<'_>) -> Result<RawConfig, ConfigError> {
    let text = origin.text;
    toml::from_str(text).map_err(|e| match (origin.locate, e.span()) {
        (Some(_), Some(span)) => origin.fail(format!(
            "{}: {}",
            origin.place(line_of(text, span.start)),
            e.message().trim_end()
        )),
        _ => origin.fail(e.to_string().trim_end().to_owned()),
    })
}

/// Checks the raw file and builds the `Settings` the agent runs with.
pub(super) fn settings(
    raw: RawConfig,
    machine: Machine,
    origin: &Origin<'_>,
) -> Result<Settings, ConfigError> {
    let text = origin.text;
    let fail = |message: String| origin.fail(message);
    let place = |line: usize| origin.place(line);
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
    let release_root = raw
        .release_root_fingerprint
        .as_ref()
        .map(|f| {
            f.get_ref()
                .parse::<Fingerprint>()
                .map(|fp| fp.to_string().replace(':', "").to_ascii_lowercase())
                .map_err(|_| {
                    at(
                        f.span(),
                        "release_root_fingerprint",
                        format!(
                            "`{}` is not a root fingerprint: write the 64 hexadecimal digits `tierwise keys fingerprint ROOT.json` prints",
                            f.get_ref().chars().take(120).collect::<String>()
                        ),
                    )
                })
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
            // `mod.rs` read the file (see `token_file`); should it not have,
            // the empty token is refused below.
            let text = match &machine.token_file {
                Some(read) => read.as_deref().map_err(|e| {
                    at(
                        file.span(),
                        "enrollment_token_file",
                        format!("cannot read {}: {e}", file.get_ref().display()),
                    )
                })?,
                None => "",
            };
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
            let name = machine.hostname;
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
            if let Some(o) = &component.web_app_output {
                return Err(misplaced("web_app_output", o.span(), "server"));
            }
        }
        let web_app_output = component
            .web_app_output
            .as_ref()
            .map(|o| {
                let dir = o.get_ref();
                if dir.as_os_str().is_empty() || !dir.is_absolute() {
                    return Err(here(
                        "web_app_output",
                        Some(o.span()),
                        "give the absolute folder the Server Manager saves the generated Web Application in (a subfolder per kind: iis, apache, nginx)".into(),
                    ));
                }
                Ok(dir.clone())
            })
            .transpose()?;
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
        let mut backup_location = None;
        if let Some(raw) = &component.actions {
            for (key, entry, server_only) in [
                ("backup", &raw.backup, true),
                ("stop_services", &raw.stop_services, false),
                ("install", &raw.install, false),
                ("start_services", &raw.start_services, false),
                ("reactivate_databases", &raw.reactivate_databases, true),
                ("generate_web_app", &raw.generate_web_app, true),
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
                let location = backup_location_of(key, entry.get_ref(), &facts)
                    .map_err(|m| here(&name, Some(entry.span()), m))?;
                let action = configured_action(key, role, entry.get_ref())
                    .map_err(|m| here(&name, Some(entry.span()), m))?;
                if location.is_some() {
                    backup_location = location;
                }
                // A pinned root vouches for the installer the controller
                // hands over; a command that runs another file would
                // bypass it.
                let runs_the_artifact = matches!(&action, ConfiguredAction::Command(command)
                    if command.argv.iter().any(|a| a.contains("{artifact}")));
                if key == "install" && release_root.is_some() && !runs_the_artifact {
                    return Err(here(
                        &name,
                        Some(entry.span()),
                        "with `release_root_fingerprint` set, only the signed installer may run: give it as `{artifact}` in the command".into(),
                    ));
                }
                actions.insert(key, action);
            }
        }
        if cfg!(windows) && !actions.contains_key("restart") {
            actions.insert("restart", default_windows_restart().into());
        }
        let health = component
            .health
            .as_ref()
            .map(|h| health_checks(h.get_ref()).map_err(|m| here("health", Some(h.span()), m)))
            .transpose()?;
        components.push(ComponentSpec {
            role,
            version,
            facts,
            actions,
            health,
            backup_location,
            web_app_output,
        });
    }
    components.sort_by_key(|c| c.role);

    Ok(Settings {
        controller,
        enrollment,
        release_root,
        installation: raw.installation.get_ref().clone(),
        host_id,
        heartbeat,
        probe_interval,
        reconnect_max,
        state_dir: raw.state_dir.unwrap_or(machine.default_state_dir),
        log_level,
        components,
    })
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

fn health_checks(raw: &RawHealth) -> Result<HealthChecks, String> {
    let tcp = raw
        .tcp
        .iter()
        .flatten()
        .map(|entry| tcp_target(entry))
        .collect::<Result<Vec<_>, _>>()?;
    let https = raw
        .https
        .iter()
        .flatten()
        .map(|entry| https_target(entry))
        .collect::<Result<Vec<_>, _>>()?;
    let services: Vec<String> = raw.services.iter().flatten().cloned().collect();
    if !services.is_empty() && !cfg!(windows) {
        return Err("`services` asks the Windows Service Control Manager and works only on Windows; check the service's port with `tcp` instead".into());
    }
    if let Some(name) = services.iter().find(|s| s.trim().is_empty()) {
        return Err(format!(
            "`services`: `{name}` is not a service name; give the service's name as `sc query` shows it"
        ));
    }
    if tcp.is_empty() && https.is_empty() && services.is_empty() {
        return Err("names no check; give at least one of `tcp = [\"HOST:PORT\"]`, `https = [\"https://HOST/\"]` or (Windows) `services = [\"NAME\"]`".into());
    }
    if raw.ca_file.is_some() && https.is_empty() {
        return Err("`ca_file` is for the `https` checks, and there are none".into());
    }
    let wait = match raw.wait_seconds {
        None => DEFAULT_HEALTH_WAIT_SECONDS,
        Some(seconds) if (1..=3600).contains(&seconds) => seconds,
        Some(_) => return Err("`wait_seconds` must be between 1 and 3600".into()),
    };
    Ok(HealthChecks {
        tcp,
        https,
        services,
        ca_file: raw.ca_file.clone(),
        wait: Duration::from_secs(u64::from(wait)),
    })
}

/// `HOST:PORT`, `[IPv6]:PORT`.
fn tcp_target(entry: &str) -> Result<TcpTarget, String> {
    let wrong = || format!("`tcp`: `{entry}` is not HOST:PORT; write e.g. \"ps-app-01:11011\"");
    let entry = entry.trim();
    let (host, port) = match entry.strip_prefix('[') {
        // [IPv6]:PORT
        Some(rest) => rest.split_once("]:").ok_or_else(wrong)?,
        None => {
            let (host, port) = entry.rsplit_once(':').ok_or_else(wrong)?;
            if host.contains(':') {
                return Err(wrong());
            }
            (host, port)
        }
    };
    if host.is_empty() || host.contains(['[', ']', '/', ' ']) {
        return Err(wrong());
    }
    Ok(TcpTarget {
        host: host.to_owned(),
        port: port_number(port).ok_or_else(wrong)?,
    })
}

/// A port written in digits only, 1 to 65535.
fn port_number(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|p| *p > 0)
}

fn https_target(entry: &str) -> Result<HttpsTarget, String> {
    let wrong = |why: &str| {
        format!("`https`: `{entry}` {why}; write e.g. \"https://passwordsecure.corp.example/\"")
    };
    let uri: http::Uri = entry.trim().parse().map_err(|_| wrong("is not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(wrong("is not an https:// URL"));
    }
    let authority = uri.authority().ok_or_else(|| wrong("names no host"))?;
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || authority.as_str().contains('@') {
        return Err(wrong("names no host (or carries a user name)"));
    }
    let port = match authority.port() {
        None => 443,
        Some(port) => port_number(port.as_str()).ok_or_else(|| wrong("has no usable port"))?,
    };
    // `https://host?x=1` asks for `/?x=1`.
    let path = match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("") => "/".to_owned(),
        Some(p) if p.starts_with('/') => p.to_owned(),
        Some(p) => format!("/{p}"),
    };
    Ok(HttpsTarget {
        url: entry.trim().to_owned(),
        host: host.to_owned(),
        port,
        path,
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
