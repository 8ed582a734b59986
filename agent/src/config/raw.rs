//! The configuration file exactly as written: serde structures that mirror
//! the TOML (unknown keys refused, spans kept) and nothing else. What the
//! values mean, and whether they go together, is checked in `validate`.

use super::Pattern;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use tierwise_common::{Role, Version};
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) controller: Spanned<String>,
    pub(super) enrollment_token: Option<Spanned<String>>,
    pub(super) enrollment_token_file: Option<Spanned<PathBuf>>,
    pub(super) ca_fingerprint: Option<Spanned<String>>,
    pub(super) release_root_fingerprint: Option<Spanned<String>>,
    pub(super) installation: Spanned<String>,
    pub(super) host_id: Option<Spanned<String>>,
    pub(super) heartbeat_seconds: Option<Spanned<u32>>,
    pub(super) probe_seconds: Option<Spanned<u32>>,
    pub(super) reconnect_max_seconds: Option<Spanned<u32>>,
    pub(super) state_dir: Option<PathBuf>,
    pub(super) log_level: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) component: Vec<Spanned<RawComponent>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawComponent {
    pub(super) role: Role,
    pub(super) version: Spanned<RawSource>,
    pub(super) databases: Option<Spanned<RawSource>>,
    pub(super) server: Option<Spanned<RawWebServer>>,
    pub(super) docroot: Option<PathBuf>,
    pub(super) websocket: Option<Spanned<RawCheck>>,
    pub(super) update_check: Option<Spanned<RawCheck>>,
    pub(super) web_app: Option<Spanned<String>>,
    pub(super) web_app_output: Option<Spanned<PathBuf>>,
    pub(super) health: Option<Spanned<RawHealth>>,
    pub(super) actions: Option<RawActions>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    pub(super) tcp: Option<Vec<String>>,
    pub(super) https: Option<Vec<String>>,
    pub(super) services: Option<Vec<String>>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) wait_seconds: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawActions {
    pub(super) backup: Option<Spanned<RawActionCommand>>,
    pub(super) stop_services: Option<Spanned<RawActionCommand>>,
    pub(super) install: Option<Spanned<RawActionCommand>>,
    pub(super) start_services: Option<Spanned<RawActionCommand>>,
    pub(super) reactivate_databases: Option<Spanned<RawActionCommand>>,
    pub(super) generate_web_app: Option<Spanned<RawActionCommand>>,
    pub(super) restart: Option<Spanned<RawActionCommand>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawActionCommand {
    pub(super) command: Vec<String>,
    pub(super) timeout_seconds: Option<u32>,
    pub(super) transient_exit_codes: Option<Vec<i32>>,
    pub(super) restart_exit_codes: Option<Vec<i32>>,
    /// `backup` only: where its backups land, and which files they are.
    pub(super) backup_directory: Option<PathBuf>,
    pub(super) backup_pattern: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawWebServer {
    Iis,
    Apache,
    Nginx,
}

/// Every probe key; which ones may appear together is checked afterwards.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub(super) file: Option<PathBuf>,
    pub(super) command: Option<Vec<String>>,
    pub(super) pattern: Option<Pattern>,
    pub(super) timeout_seconds: Option<u32>,
    pub(super) value: Option<Version>,
    pub(super) registry: Option<Pattern>,
    pub(super) file_version: Option<PathBuf>,
    pub(super) registry_key: Option<String>,
    pub(super) registry_value: Option<String>,
}

/// `true`, `false`, or a table of probe keys.
pub(super) enum RawCheck {
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
