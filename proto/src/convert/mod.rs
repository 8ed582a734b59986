//! Conversions between the wire types and the domain types of
//! `tierwise-common`. Both the controller and the agent convert here, at the
//! edge, so a malformed message is refused in one place with one wording.

mod backup;
mod plan;
pub use backup::{backups_from_wire, backups_to_wire};
pub use plan::{phase_kind_from_wire, phase_kind_to_wire, PlanWireError};

use crate::v1;
use tierwise_common::action::{StepAction, StepOutcome};
use tierwise_common::{
    Check, ClientFacts, Component, Database, DatabaseProfile, Facts, HostRecord, Inventory,
    InventoryError, Placement, ProbedVersion, Role, ServerFacts, Version, VersionError, WebFacts,
    WebServerKind,
};

/// Why a message from a peer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("component {index}: the role is missing or unknown ({value})")]
    Role { index: usize, value: i32 },
    #[error("component `{role}`: version: {source}")]
    Version {
        role: Role,
        #[source]
        source: VersionError,
    },
    #[error("database `{name}`: patch level: {source}")]
    PatchLevel {
        name: String,
        #[source]
        source: VersionError,
    },
    #[error("component `{role}`: web facts name no web server kind")]
    WebServerKind { role: Role },
    #[error("{0}")]
    Inventory(#[from] InventoryError),
}

impl From<Role> for v1::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::Server => v1::Role::Server,
            Role::AppServer => v1::Role::AppServer,
            Role::Web => v1::Role::Web,
            Role::Client => v1::Role::Client,
        }
    }
}

/// `None` for `ROLE_UNSPECIFIED` and for values this build does not know.
pub fn role_from_wire(value: i32) -> Option<Role> {
    match v1::Role::try_from(value).ok()? {
        v1::Role::Unspecified => None,
        v1::Role::Server => Some(Role::Server),
        v1::Role::AppServer => Some(Role::AppServer),
        v1::Role::Web => Some(Role::Web),
        v1::Role::Client => Some(Role::Client),
    }
}

impl From<Check> for v1::Check {
    fn from(check: Check) -> Self {
        match check {
            Check::Unknown => v1::Check::Unknown,
            Check::Yes => v1::Check::Yes,
            Check::No => v1::Check::No,
        }
    }
}

fn check_from_wire(value: i32) -> Check {
    match v1::Check::try_from(value) {
        Ok(v1::Check::Yes) => Check::Yes,
        Ok(v1::Check::No) => Check::No,
        _ => Check::Unknown,
    }
}

impl From<WebServerKind> for v1::WebServerKind {
    fn from(kind: WebServerKind) -> Self {
        match kind {
            WebServerKind::Iis => v1::WebServerKind::Iis,
            WebServerKind::Apache => v1::WebServerKind::Apache,
            WebServerKind::Nginx => v1::WebServerKind::Nginx,
        }
    }
}

fn web_server_kind_from_wire(value: i32) -> Option<WebServerKind> {
    match v1::WebServerKind::try_from(value).ok()? {
        v1::WebServerKind::Unspecified => None,
        v1::WebServerKind::Iis => Some(WebServerKind::Iis),
        v1::WebServerKind::Apache => Some(WebServerKind::Apache),
        v1::WebServerKind::Nginx => Some(WebServerKind::Nginx),
    }
}

impl From<&Component> for v1::Component {
    fn from(component: &Component) -> Self {
        let (version, probe_error) = match &component.version {
            ProbedVersion::Installed(v) => (v.to_string(), String::new()),
            ProbedVersion::NotInstalled => (String::new(), String::new()),
            ProbedVersion::Unknown(why) => (String::new(), why.clone()),
        };
        let facts = match &component.facts {
            Facts::None => None,
            Facts::Server(server) => Some(v1::component::Facts::Server(v1::ServerFacts {
                databases: server
                    .databases
                    .iter()
                    .map(|db| v1::Database {
                        name: db.name.clone(),
                        active: db.active,
                        patch_level: db.patch_level.map(|v| v.to_string()).unwrap_or_default(),
                    })
                    .collect(),
                databases_error: server.databases_error.clone().unwrap_or_default(),
                backup_location: server.backup_location.clone().unwrap_or_default(),
                commands: server.commands.iter().flatten().cloned().collect(),
                commands_reported: server.commands.is_some(),
                web_app_output: server.web_app_output.clone().unwrap_or_default(),
                missing_services: server.missing_services.clone(),
            })),
            Facts::Web(web) => Some(v1::component::Facts::Web(v1::WebFacts {
                server_kind: v1::WebServerKind::from(web.server_kind).into(),
                docroot: web.docroot.clone(),
                websocket: v1::Check::from(web.websocket).into(),
                packages: web
                    .packages
                    .iter()
                    .flatten()
                    .map(ToString::to_string)
                    .collect(),
                packages_reported: web.packages.is_some(),
            })),
            Facts::Client(client) => Some(v1::component::Facts::Client(v1::ClientFacts {
                update_check_enabled: v1::Check::from(client.update_check_enabled).into(),
                profiles: client
                    .profiles
                    .iter()
                    .map(|p| v1::DatabaseProfile {
                        host: p.host.clone(),
                        database: p.database.clone(),
                    })
                    .collect(),
            })),
        };
        v1::Component {
            role: v1::Role::from(component.role).into(),
            version,
            probe_error,
            facts,
        }
    }
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

fn component_from_wire(index: usize, wire: &v1::Component) -> Result<Component, WireError> {
    let role = role_from_wire(wire.role).ok_or(WireError::Role {
        index,
        value: wire.role,
    })?;
    let version = if !wire.version.is_empty() {
        let parsed =
            Version::parse(&wire.version).map_err(|source| WireError::Version { role, source })?;
        ProbedVersion::Installed(parsed)
    } else if !wire.probe_error.is_empty() {
        ProbedVersion::Unknown(wire.probe_error.clone())
    } else {
        ProbedVersion::NotInstalled
    };
    let facts = match &wire.facts {
        None => Facts::None,
        Some(v1::component::Facts::Server(server)) => {
            let mut databases = Vec::with_capacity(server.databases.len());
            for db in &server.databases {
                let patch_level = if db.patch_level.is_empty() {
                    None
                } else {
                    Some(Version::parse(&db.patch_level).map_err(|source| {
                        WireError::PatchLevel {
                            name: db.name.clone(),
                            source,
                        }
                    })?)
                };
                databases.push(Database {
                    name: db.name.clone(),
                    active: db.active,
                    patch_level,
                });
            }
            Facts::Server(ServerFacts {
                databases,
                databases_error: non_empty(&server.databases_error),
                backup_location: non_empty(&server.backup_location),
                commands: server
                    .commands_reported
                    .then(|| server.commands.iter().cloned().collect()),
                web_app_output: non_empty(&server.web_app_output),
                missing_services: server.missing_services.clone(),
            })
        }
        Some(v1::component::Facts::Web(web)) => Facts::Web(WebFacts {
            server_kind: web_server_kind_from_wire(web.server_kind)
                .ok_or(WireError::WebServerKind { role })?,
            docroot: web.docroot.clone(),
            websocket: check_from_wire(web.websocket),
            packages: if web.packages_reported {
                if web.packages.len() > tierwise_common::inventory::MAX_WEB_PACKAGES {
                    return Err(WireError::Inventory(InventoryError::TooLarge(format!(
                        "{} Web Application packages; at most {} are accepted",
                        web.packages.len(),
                        tierwise_common::inventory::MAX_WEB_PACKAGES
                    ))));
                }
                Some(
                    web.packages
                        .iter()
                        .map(|text| Version::parse(text))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|source| WireError::Version { role, source })?,
                )
            } else {
                None
            },
        }),
        Some(v1::component::Facts::Client(client)) => Facts::Client(ClientFacts {
            update_check_enabled: check_from_wire(client.update_check_enabled),
            profiles: client
                .profiles
                .iter()
                .map(|p| DatabaseProfile {
                    host: p.host.clone(),
                    database: p.database.clone(),
                })
                .collect(),
        }),
    };
    Ok(Component {
        role,
        version,
        facts,
    })
}

impl From<&Inventory> for v1::Inventory {
    fn from(inventory: &Inventory) -> Self {
        v1::Inventory {
            components: inventory.components().iter().map(Into::into).collect(),
            volumes: inventory
                .volumes()
                .iter()
                .map(|v| v1::Volume {
                    purpose: <&str>::from(v.purpose).to_owned(),
                    path: v.path.clone(),
                    free_bytes: v.free_bytes,
                })
                .collect(),
        }
    }
}

impl TryFrom<&v1::Inventory> for Inventory {
    type Error = WireError;
    fn try_from(wire: &v1::Inventory) -> Result<Self, Self::Error> {
        let components = wire
            .components
            .iter()
            .enumerate()
            .map(|(index, c)| component_from_wire(index, c))
            .collect::<Result<Vec<_>, _>>()?;
        let volumes = wire
            .volumes
            .iter()
            .map(|v| {
                Ok(tierwise_common::Volume {
                    purpose: v.purpose.parse().map_err(|_| {
                        InventoryError::TooLarge(format!(
                            "unknown volume purpose `{}`",
                            v.purpose.chars().take(32).collect::<String>()
                        ))
                    })?,
                    path: v.path.clone(),
                    free_bytes: tierwise_common::reported::bytes(v.free_bytes).ok_or_else(|| {
                        InventoryError::TooLarge(format!(
                            "free space of {} bytes is more than any volume holds (at most {} bytes)",
                            v.free_bytes,
                            tierwise_common::reported::MAX_BYTES
                        ))
                    })?,
                })
            })
            .collect::<Result<Vec<_>, InventoryError>>()?;
        Ok(Inventory::new(components)?.with_volumes(volumes)?)
    }
}

impl From<&HostRecord> for v1::HostView {
    fn from(host: &HostRecord) -> Self {
        v1::HostView {
            host_id: host.host_id.clone(),
            hostname: host.hostname.clone(),
            installation: host.installation.clone(),
            os: host.os.clone(),
            agent_version: host.agent_version.clone(),
            online: host.online,
            first_seen_ms: host.first_seen_ms,
            last_seen_ms: host.last_seen_ms,
            heartbeat_seconds: host.heartbeat_seconds,
            components: v1::Inventory::from(&host.inventory).components,
            volumes: v1::Inventory::from(&host.inventory).volumes,
            placement: match &host.placement {
                None => v1::Placement::Fixed,
                Some(Placement::Placed { .. }) => v1::Placement::Placed,
                Some(Placement::Unassigned { .. }) => v1::Placement::Unassigned,
            }
            .into(),
            placement_note: match &host.placement {
                None => String::new(),
                Some(Placement::Placed { by, .. }) => by.clone(),
                Some(Placement::Unassigned { reason }) => reason.clone(),
            },
            boot_ms: host.boot_ms.unwrap_or(0),
        }
    }
}

impl TryFrom<&v1::HostView> for HostRecord {
    type Error = WireError;
    fn try_from(wire: &v1::HostView) -> Result<Self, Self::Error> {
        let inventory = Inventory::try_from(&v1::Inventory {
            components: wire.components.clone(),
            volumes: wire.volumes.clone(),
        })?;
        Ok(HostRecord {
            host_id: wire.host_id.clone(),
            hostname: wire.hostname.clone(),
            installation: wire.installation.clone(),
            os: wire.os.clone(),
            agent_version: wire.agent_version.clone(),
            online: wire.online,
            first_seen_ms: wire.first_seen_ms,
            last_seen_ms: wire.last_seen_ms,
            heartbeat_seconds: wire.heartbeat_seconds,
            inventory,
            boot_ms: (wire.boot_ms > 0).then_some(wire.boot_ms),
            placement: match v1::Placement::try_from(wire.placement) {
                Ok(v1::Placement::Placed) => Some(Placement::Placed {
                    installation: wire.installation.clone(),
                    by: wire.placement_note.clone(),
                }),
                Ok(v1::Placement::Unassigned) => Some(Placement::Unassigned {
                    reason: wire.placement_note.clone(),
                }),
                Ok(v1::Placement::Fixed) | Err(_) => None,
            },
        })
    }
}

impl From<StepOutcome> for v1::StepOutcome {
    fn from(outcome: StepOutcome) -> Self {
        match outcome {
            StepOutcome::Succeeded => v1::StepOutcome::Succeeded,
            StepOutcome::SucceededRestartRequired => v1::StepOutcome::SucceededRestartRequired,
            StepOutcome::Failed => v1::StepOutcome::Failed,
            StepOutcome::FailedTransient => v1::StepOutcome::FailedTransient,
            StepOutcome::Interrupted => v1::StepOutcome::Interrupted,
        }
    }
}

/// `None` for an unspecified or unknown outcome.
pub fn step_outcome_from_wire(value: i32) -> Option<StepOutcome> {
    match v1::StepOutcome::try_from(value).ok()? {
        v1::StepOutcome::Unspecified => None,
        v1::StepOutcome::Succeeded => Some(StepOutcome::Succeeded),
        v1::StepOutcome::SucceededRestartRequired => Some(StepOutcome::SucceededRestartRequired),
        v1::StepOutcome::Failed => Some(StepOutcome::Failed),
        v1::StepOutcome::FailedTransient => Some(StepOutcome::FailedTransient),
        v1::StepOutcome::Interrupted => Some(StepOutcome::Interrupted),
    }
}

/// The wire form of a typed step.
pub fn command_to_wire(step_id: &str, action: &StepAction) -> v1::Command {
    use v1::command::Action as A;
    let role = |r: Role| i32::from(v1::Role::from(r));
    let action = match action {
        StepAction::Backup => A::Backup(v1::Empty {}),
        StepAction::StopServices { role: r } => A::StopServices(v1::RoleAction { role: role(*r) }),
        StepAction::InstallComponent {
            role: r,
            version,
            artifact_sha256,
        } => A::InstallComponent(v1::InstallComponent {
            role: role(*r),
            version: version.to_string(),
            artifact_sha256: artifact_sha256.clone().unwrap_or_default(),
        }),
        StepAction::StartServices { role: r } => {
            A::StartServices(v1::RoleAction { role: role(*r) })
        }
        StepAction::ReactivateDatabases { version } => A::ReactivateDatabases(v1::VersionAction {
            version: version.to_string(),
        }),
        StepAction::DeployWebApp {
            version,
            artifact_sha256,
        } => A::DeployWebApp(v1::DeployWebApp {
            version: version.to_string(),
            artifact_sha256: artifact_sha256.clone().unwrap_or_default(),
        }),
        StepAction::Reprobe => A::Reprobe(v1::Empty {}),
        StepAction::Restart { role: r } => A::Restart(v1::RoleAction { role: role(*r) }),
        StepAction::GenerateWebApp {
            version,
            web_servers,
        } => A::GenerateWebApp(v1::GenerateWebApp {
            version: version.to_string(),
            web_servers: web_servers.iter().map(|k| k.as_str().to_owned()).collect(),
        }),
    };
    v1::Command {
        step_id: step_id.to_owned(),
        action: Some(action),
        dispatched_ms: 0,
    }
}

/// Reads a command from the controller; refuses what this agent cannot read.
pub fn command_from_wire(command: &v1::Command) -> Result<(String, StepAction), String> {
    use v1::command::Action as A;
    let role = |value: i32| role_from_wire(value).ok_or_else(|| format!("unknown role {value}"));
    let version = |text: &str| Version::parse(text).map_err(|e| e.to_string());
    let action = match command
        .action
        .as_ref()
        .ok_or("the command names no action")?
    {
        A::Backup(_) => StepAction::Backup,
        A::StopServices(a) => StepAction::StopServices {
            role: role(a.role)?,
        },
        A::InstallComponent(a) => StepAction::InstallComponent {
            role: role(a.role)?,
            version: version(&a.version)?,
            artifact_sha256: non_empty(&a.artifact_sha256),
        },
        A::StartServices(a) => StepAction::StartServices {
            role: role(a.role)?,
        },
        A::ReactivateDatabases(a) => StepAction::ReactivateDatabases {
            version: version(&a.version)?,
        },
        A::DeployWebApp(a) => StepAction::DeployWebApp {
            version: version(&a.version)?,
            artifact_sha256: non_empty(&a.artifact_sha256),
        },
        A::Reprobe(_) => StepAction::Reprobe,
        A::Restart(a) => StepAction::Restart {
            role: role(a.role)?,
        },
        A::GenerateWebApp(a) => StepAction::GenerateWebApp {
            version: version(&a.version)?,
            web_servers: a
                .web_servers
                .iter()
                .map(|k| {
                    WebServerKind::parse(k).ok_or_else(|| format!("unknown web server kind `{k}`"))
                })
                .collect::<Result<_, _>>()?,
        },
    };
    Ok((command.step_id.clone(), action))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Inventory {
        Inventory::new(vec![
            Component {
                role: Role::Server,
                version: ProbedVersion::Installed(Version::new(9, 3, 1, 33994)),
                facts: Facts::Server(ServerFacts {
                    databases: vec![Database {
                        name: "PSDB".into(),
                        active: false,
                        patch_level: Some(Version::new(9, 3, 1, 33994)),
                    }],
                    databases_error: None,
                    backup_location: None,
                    commands: None,
                    web_app_output: None,
                    missing_services: Vec::new(),
                }),
            },
            Component {
                role: Role::Web,
                version: ProbedVersion::Unknown("pattern did not match".into()),
                facts: Facts::Web(WebFacts {
                    server_kind: WebServerKind::Apache,
                    docroot: "/var/www/psweb".into(),
                    websocket: Check::Yes,
                    packages: None,
                }),
            },
            Component {
                role: Role::Client,
                version: ProbedVersion::NotInstalled,
                facts: Facts::Client(ClientFacts {
                    update_check_enabled: Check::No,
                    profiles: vec![DatabaseProfile {
                        host: "ps-prod.corp.example".into(),
                        database: "PSDB".into(),
                    }],
                }),
            },
        ])
        .unwrap()
    }

    #[test]
    fn commands_round_trip() {
        let actions = [
            StepAction::Backup,
            StepAction::StopServices { role: Role::Server },
            StepAction::InstallComponent {
                role: Role::Client,
                version: Version::new(26, 3, 100, 34058),
                artifact_sha256: Some("ab".repeat(32)),
            },
            StepAction::StartServices {
                role: Role::AppServer,
            },
            StepAction::ReactivateDatabases {
                version: Version::new(26, 3, 100, 34058),
            },
            StepAction::DeployWebApp {
                version: Version::new(26, 3, 100, 34058),
                artifact_sha256: None,
            },
            StepAction::Reprobe,
        ];
        for action in actions {
            let wire = command_to_wire("r1-7", &action);
            assert_eq!(command_from_wire(&wire), Ok(("r1-7".to_owned(), action)));
        }
        let empty = v1::Command {
            step_id: "x".into(),
            action: None,
            dispatched_ms: 0,
        };
        assert!(command_from_wire(&empty).is_err());
    }

    #[test]
    fn inventory_round_trips() {
        let inventory = sample();
        let wire = v1::Inventory::from(&inventory);
        assert_eq!(Inventory::try_from(&wire).unwrap(), inventory);
    }

    #[test]
    fn malformed_components_are_refused_with_reasons() {
        let mut wire = v1::Inventory::from(&sample());
        wire.components[0].version = "9.3".into();
        let err = Inventory::try_from(&wire).unwrap_err().to_string();
        assert!(
            err.starts_with("component `server`: version: `9.3` has 2 part(s)"),
            "{err}"
        );

        let mut wire = v1::Inventory::from(&sample());
        wire.components[1].role = 99;
        let err = Inventory::try_from(&wire).unwrap_err().to_string();
        assert_eq!(err, "component 1: the role is missing or unknown (99)");

        let mut wire = v1::Inventory::from(&sample());
        wire.components[2].role = v1::Role::Server.into();
        let err = Inventory::try_from(&wire).unwrap_err().to_string();
        assert!(err.contains("reported twice"), "{err}");
    }

    #[test]
    fn free_space_beyond_any_volume_is_refused() {
        let volume = |free_bytes| v1::Volume {
            purpose: "state".into(),
            path: "C:\\ProgramData\\Tierwise".into(),
            free_bytes,
        };
        let mut wire = v1::Inventory::from(&sample());
        wire.volumes = vec![volume(tierwise_common::reported::MAX_BYTES)];
        assert!(Inventory::try_from(&wire).is_ok());
        wire.volumes = vec![volume(u64::MAX)];
        let err = Inventory::try_from(&wire).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "free space of 18446744073709551615 bytes is more than any volume holds"
            ),
            "{err}"
        );
    }
}
