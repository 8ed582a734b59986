//! The stable JSON view of what agents report, shared by the operator CLI
//! (`tierwise hosts … --json`) and the agent (`tierwise-agent --check`).
//! Field names are a contract documented in the README: add fields, never
//! rename or remove them.

use crate::{Check, Component, Facts, ProbedVersion, Role};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ComponentJson {
    pub role: Role,
    /// `installed`, `not_installed` or `unknown` (the probe failed).
    pub status: &'static str,
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub databases: Option<Vec<DatabaseJson>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub databases_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web: Option<WebJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_check_enabled: Option<Check>,
    /// Client: the servers it is set up for (`host`, `database`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_profiles: Option<Vec<crate::DatabaseProfile>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DatabaseJson {
    pub name: String,
    pub active: bool,
    pub patch_level: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WebJson {
    pub server: &'static str,
    pub docroot: String,
    pub websocket: Check,
}

impl From<&Component> for ComponentJson {
    fn from(c: &Component) -> Self {
        let (status, version, probe_error) = match &c.version {
            ProbedVersion::Installed(v) => ("installed", Some(v.to_string()), None),
            ProbedVersion::NotInstalled => ("not_installed", None, None),
            ProbedVersion::Unknown(why) => ("unknown", None, Some(why.clone())),
        };
        let mut json = ComponentJson {
            role: c.role,
            status,
            version,
            probe_error,
            databases: None,
            databases_error: None,
            web: None,
            update_check_enabled: None,
            database_profiles: None,
        };
        match &c.facts {
            Facts::None => {}
            Facts::Server(server) => {
                json.databases = Some(
                    server
                        .databases
                        .iter()
                        .map(|db| DatabaseJson {
                            name: db.name.clone(),
                            active: db.active,
                            patch_level: db.patch_level.map(|v| v.to_string()),
                        })
                        .collect(),
                );
                json.databases_error = server.databases_error.clone();
            }
            Facts::Web(web) => {
                json.web = Some(WebJson {
                    server: web.server_kind.as_str(),
                    docroot: web.docroot.clone(),
                    websocket: web.websocket,
                });
            }
            Facts::Client(client) => {
                json.update_check_enabled = Some(client.update_check_enabled);
                json.database_profiles = Some(client.profiles.clone());
            }
        }
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Database, ServerFacts, Version};

    #[test]
    fn field_names_are_stable() {
        let component = Component {
            role: Role::Server,
            version: ProbedVersion::Installed(Version::new(9, 3, 1, 33994)),
            facts: Facts::Server(ServerFacts {
                databases: vec![Database {
                    name: "PSDB".into(),
                    active: true,
                    patch_level: None,
                }],
                databases_error: None,
                backup_location: None,
                commands: None,
                web_app_output: None,
            }),
        };
        let json = serde_json::to_string(&ComponentJson::from(&component)).unwrap();
        assert_eq!(
            json,
            r#"{"role":"server","status":"installed","version":"9.3.1.33994","databases":[{"name":"PSDB","active":true,"patch_level":null}]}"#
        );
    }
}
