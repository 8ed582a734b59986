//! Probes: how the agent learns what is installed, without changing anything.
//!
//! Every probe is read-only and bounded in time. A probe whose file, registry
//! entry or executable is absent reports "not installed"; a probe that ran
//! and failed reports "unknown" with the reason, never a guessed version.

pub mod discovery;
mod text;
#[cfg(windows)]
mod windows;

use crate::config::{CheckProbe, ComponentSpec, DatabasesProbe, FactsSpec, Source, VersionProbe};
use discovery::UninstallEntry;
use serde::Deserialize;
use tierwise_common::{
    Check, ClientFacts, Component, Database, DatabaseProfile, Facts, Inventory, InventoryError,
    ProbedVersion, ServerFacts, Version, WebFacts,
};

pub use text::{read_source, run_command, SourceText};

/// Probes every configured component. The configuration guarantees one
/// component per role and the database probe refuses duplicate names, so an
/// error here means a bug; callers keep their last good inventory then.
pub async fn inventory(components: &[ComponentSpec]) -> Result<Inventory, InventoryError> {
    let mut probed = Vec::with_capacity(components.len());
    for spec in components {
        probed.push(Component {
            role: spec.role,
            version: version(&spec.version).await,
            facts: match facts(&spec.facts).await {
                // Where backups land is configuration, not a probe.
                Facts::Server(mut server) => {
                    server.backup_location = spec.backup_location.as_ref().map(ToString::to_string);
                    // What has no command here is an operator task.
                    server.commands = Some(spec.actions.keys().map(|k| (*k).to_owned()).collect());
                    server.web_app_output = spec
                        .web_app_output
                        .as_ref()
                        .map(|d| d.display().to_string());
                    Facts::Server(server)
                }
                other => other,
            },
        });
    }
    Inventory::new(probed)
}

pub async fn version(probe: &VersionProbe) -> ProbedVersion {
    match probe {
        VersionProbe::Fixed(version) => ProbedVersion::Installed(*version),
        VersionProbe::Text { source, pattern } => {
            let text = match read_source(source).await {
                Ok(SourceText::Absent) => return ProbedVersion::NotInstalled,
                Ok(SourceText::Text(text)) => text,
                Err(why) => return ProbedVersion::Unknown(why),
            };
            let picked = match pattern {
                Some(pattern) => match pattern.extract(&text) {
                    Some(found) => found,
                    None => {
                        return ProbedVersion::Unknown(format!(
                            "pattern `{}` did not match {}",
                            pattern.as_str(),
                            describe(source)
                        ))
                    }
                },
                None => text.trim(),
            };
            match Version::parse(picked.trim()) {
                Ok(version) => ProbedVersion::Installed(version),
                Err(e) => ProbedVersion::Unknown(format!("{}: {e}", describe(source))),
            }
        }
        #[cfg(windows)]
        VersionProbe::UninstallRegistry { display_name } => {
            windows::uninstall_version(display_name.clone()).await
        }
        #[cfg(windows)]
        VersionProbe::FileVersion(path) => windows::file_version(path.clone()).await,
        #[cfg(windows)]
        VersionProbe::Discovered(role) => windows::discovered_version(*role).await,
        #[cfg(not(windows))]
        VersionProbe::UninstallRegistry { .. }
        | VersionProbe::FileVersion(_)
        | VersionProbe::Discovered(_) => {
            ProbedVersion::Unknown("this probe works only on Windows".into())
        }
    }
}

pub async fn check(probe: &CheckProbe) -> Check {
    match probe {
        CheckProbe::Fixed(value) => Check::from(*value),
        CheckProbe::Text { source, pattern } => match read_source(source).await {
            Ok(SourceText::Text(text)) => Check::from(pattern.extract(&text).is_some()),
            Ok(SourceText::Absent) => Check::Unknown,
            Err(why) => {
                tracing::warn!(%why, "check failed");
                Check::Unknown
            }
        },
        #[cfg(windows)]
        CheckProbe::RegistryValue { key, value } => {
            windows::registry_flag(key.clone(), value.clone()).await
        }
        #[cfg(not(windows))]
        CheckProbe::RegistryValue { .. } => Check::Unknown,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseLine {
    name: String,
    active: bool,
    #[serde(default)]
    patch_level: Option<String>,
}

/// Reads the database list: JSON, an array of objects with `name`, `active`
/// and `patch_level`.
pub async fn databases(probe: &DatabasesProbe) -> Result<Vec<Database>, String> {
    let text = match read_source(&probe.source).await? {
        SourceText::Absent => return Err(format!("{} does not exist", describe(&probe.source))),
        SourceText::Text(text) => text,
    };
    parse_databases(&text).map_err(|e| format!("{}: {e}", describe(&probe.source)))
}

pub fn parse_databases(text: &str) -> Result<Vec<Database>, String> {
    let lines: Vec<DatabaseLine> = serde_json::from_str(text).map_err(|e| {
        format!("expected a JSON array of {{\"name\", \"active\", \"patch_level\"}} objects: {e}")
    })?;
    let mut seen = std::collections::BTreeSet::new();
    lines
        .into_iter()
        .map(|line| {
            if !seen.insert(line.name.clone()) {
                return Err(format!("database `{}` is listed twice", line.name));
            }
            let patch_level = match line.patch_level.as_deref() {
                None | Some("") => None,
                Some(text) => Some(
                    Version::parse(text)
                        .map_err(|e| format!("database `{}`: patch level: {e}", line.name))?,
                ),
            };
            if line.name.is_empty() {
                return Err("a database has an empty name".into());
            }
            Ok(Database {
                name: line.name,
                active: line.active,
                patch_level,
            })
        })
        .collect()
}

async fn facts(spec: &FactsSpec) -> Facts {
    match spec {
        FactsSpec::None => Facts::None,
        FactsSpec::Server { databases: None } => Facts::Server(ServerFacts::default()),
        FactsSpec::Server {
            databases: Some(probe),
        } => Facts::Server(match databases(probe).await {
            Ok(databases) => ServerFacts {
                databases,
                databases_error: None,
                backup_location: None,
                commands: None,
                web_app_output: None,
            },
            Err(why) => ServerFacts {
                databases: Vec::new(),
                databases_error: Some(why),
                backup_location: None,
                commands: None,
                web_app_output: None,
            },
        }),
        FactsSpec::Web {
            server,
            docroot,
            websocket,
            web_app,
        } => Facts::Web(WebFacts {
            server_kind: *server,
            docroot: docroot.display().to_string(),
            websocket: match websocket {
                Some(probe) => check(probe).await,
                None => Check::Unknown,
            },
            packages: web_app.as_deref().map(local_packages),
        }),
        FactsSpec::Client { update_check } => Facts::Client(ClientFacts {
            update_check_enabled: match update_check {
                Some(probe) => check(probe).await,
                None => Check::Unknown,
            },
            profiles: database_profiles().await,
        }),
    }
}

/// The releases whose Web Application package lies at the `web_app` path
/// (`{version}` in its file name; newest first, at most
/// `MAX_WEB_PACKAGES`). A path without `{version}` names no release.
pub fn local_packages(template: &str) -> Vec<tierwise_common::Version> {
    let path = std::path::Path::new(template);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let Some((prefix, suffix)) = name.split_once("{version}") else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<tierwise_common::Version> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let middle = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
            tierwise_common::Version::parse(middle).ok()
        })
        .collect();
    found.sort_unstable_by(|a, b| b.cmp(a));
    found.truncate(tierwise_common::inventory::MAX_WEB_PACKAGES);
    found
}

/// The servers the Windows client is set up for, whether the client was
/// configured or discovered; none elsewhere (no other client keeps them
/// where the agent could read them).
async fn database_profiles() -> Vec<DatabaseProfile> {
    #[cfg(windows)]
    {
        windows::database_profiles().await
    }
    #[cfg(not(windows))]
    {
        Vec::new()
    }
}

/// The Uninstall entries of both registry views, which discovery reads when
/// no component is configured; none elsewhere. Blocks on Windows.
pub fn uninstall_entries() -> Vec<UninstallEntry> {
    #[cfg(windows)]
    {
        windows::uninstall_entries()
    }
    #[cfg(not(windows))]
    {
        Vec::new()
    }
}

/// "file /x/y" or "the output of `prog`", for messages.
pub fn describe(source: &Source) -> String {
    match source {
        Source::File(path) => format!("file {}", path.display()),
        Source::Command { argv, .. } => format!("the output of `{}`", argv.join(" ")),
    }
}
