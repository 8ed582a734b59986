//! What agents report: the components on a host, their versions and the facts
//! each role needs for the rules (databases, web server, update-check policy).

use crate::{Role, Version};
use serde::Serialize;
use std::collections::BTreeSet;

/// The outcome of a version probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbedVersion {
    Installed(Version),
    /// The probe's file, registry entry or executable is absent.
    NotInstalled,
    /// The probe ran but could not tell (command failed, pattern did not
    /// match, unreadable file). The text says why.
    Unknown(String),
}

impl ProbedVersion {
    pub fn installed(&self) -> Option<Version> {
        match self {
            ProbedVersion::Installed(v) => Some(*v),
            _ => None,
        }
    }
}

/// A yes/no fact the agent checks on its host; `Unknown` when the check is
/// not configured or failed. The rules treat `Unknown` as "not shown".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString)]
#[cfg_attr(test, derive(strum::EnumIter))]
#[strum(serialize_all = "snake_case")]
pub enum Check {
    #[default]
    Unknown,
    Yes,
    No,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl From<bool> for Check {
    fn from(value: bool) -> Self {
        if value {
            Check::Yes
        } else {
            Check::No
        }
    }
}

/// One database managed by the primary server's Server Manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Database {
    pub name: String,
    pub active: bool,
    pub patch_level: Option<Version>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServerFacts {
    pub databases: Vec<Database>,
    /// Set when the database probe failed; `databases` is then empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub databases_error: Option<String>,
    /// Where the backup action's backups land ("DIR (PATTERN)"); `None`:
    /// a backup is verified by its exit code alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_location: Option<String>,
    /// The actions the server's agent has a command for (`backup`,
    /// `install`, `reactivate_databases`, ...): one without a command is
    /// an operator task. `None` when the agent does not say (an agent from
    /// before tasks), which counts as every command configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commands: Option<BTreeSet<String>>,
    /// Where the Server Manager's generated Web Application packages are
    /// picked up (`web_app_output`: a folder per web server kind); `None`
    /// when not configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_app_output: Option<String>,
    /// Windows services its `stop_services` / `start_services` name that
    /// this host does not have.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_services: Vec<String>,
}

impl ServerFacts {
    /// Whether the server's agent runs `key` itself.
    pub fn has_command(&self, key: &str) -> bool {
        self.commands.as_ref().is_none_or(|c| c.contains(key))
    }
}

/// At most this many Web Application packages per web host are reported.
pub const MAX_WEB_PACKAGES: usize = 64;
/// At most this many action names per component are accepted, each at
/// most `MAX_ACTION_NAME` bytes.
pub const MAX_ACTIONS: usize = 16;
pub const MAX_ACTION_NAME: usize = 32;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString)]
#[cfg_attr(test, derive(strum::EnumIter))]
#[strum(serialize_all = "snake_case")]
pub enum WebServerKind {
    Iis,
    Apache,
    Nginx,
}

impl WebServerKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WebFacts {
    pub server_kind: WebServerKind,
    pub docroot: String,
    /// IIS "WebSocket Protocol" feature, Apache `proxy_wstunnel`, nginx proxying.
    pub websocket: Check,
    /// The releases whose Web Application package lies at the host's own
    /// `web_app` path; `None` when it has none configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packages: Option<Vec<Version>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClientFacts {
    /// Whether "Can search for updates" is on for normal users.
    pub update_check_enabled: Check,
    /// The Password Secure servers this client is set up for (its database
    /// profiles); they tell which installation it belongs to.
    pub profiles: Vec<DatabaseProfile>,
}

/// One database profile of a client: the server it connects to and the
/// database (Windows: `SOFTWARE\MATESO\Password Safe and Repository 8\
/// DatabaseProfiles`, values `HostIP` and `DatabaseName`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DatabaseProfile {
    /// The server's host name or address, as configured.
    pub host: String,
    /// The database name; empty when the profile names none.
    pub database: String,
}

/// At most this many profiles per client are kept.
pub const MAX_PROFILES: usize = 16;
/// Longest profile host name (a DNS name) and database name accepted.
pub const MAX_PROFILE_HOST: usize = 253;
pub const MAX_PROFILE_DATABASE: usize = 128;
/// At most this many databases per server are accepted.
pub const MAX_DATABASES: usize = 32;
/// Longest database name accepted (SQL Server's own limit).
pub const MAX_DATABASE_NAME: usize = 128;
/// Longest document directory accepted.
pub const MAX_DOCROOT: usize = 1024;
/// Free text from a probe (why a version or the databases are unknown) is
/// cut to this many bytes: it explains, it is not data.
pub const MAX_PROBE_TEXT: usize = 512;

/// Facts that only make sense for one role.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Facts {
    #[default]
    None,
    Server(ServerFacts),
    Web(WebFacts),
    Client(ClientFacts),
}

impl Facts {
    /// The role these facts belong to; `None` fits every role.
    pub fn role(&self) -> Option<Role> {
        match self {
            Facts::None => None,
            Facts::Server(_) => Some(Role::Server),
            Facts::Web(_) => Some(Role::Web),
            Facts::Client(_) => Some(Role::Client),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    pub role: Role,
    pub version: ProbedVersion,
    pub facts: Facts,
}

/// Everything installed on one host, at most one component per role,
/// and the free space where the agent writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    components: Vec<Component>,
    volumes: Vec<Volume>,
}

/// What the agent writes to a folder.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum VolumePurpose {
    /// The state directory: installers are downloaded there, and a web
    /// host keeps its copy of the document directory there.
    State,
    /// A web host's document directory.
    Docroot,
    /// Where the server's backups land.
    Backup,
}

/// The free space of the volume holding a folder the agent writes to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Volume {
    pub purpose: VolumePurpose,
    pub path: String,
    /// Rounded down to `VOLUME_GRANULARITY`, so a busy disk does not
    /// make the agent report on every probe.
    pub free_bytes: u64,
}

/// Free space is reported in steps of 64 MiB.
pub const VOLUME_GRANULARITY: u64 = 64 * 1024 * 1024;
/// At most this many volumes per host are accepted.
pub const MAX_VOLUMES: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    #[error("role `{0}` is reported twice; a host has at most one component per role")]
    DuplicateRole(Role),
    #[error("component `{role}` carries facts of role `{facts_role}`")]
    FactsMismatch { role: Role, facts_role: Role },
    #[error("database `{0}` is reported twice")]
    DuplicateDatabase(String),
    #[error("a database has an empty name")]
    EmptyDatabaseName,
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Profile(String),
}

impl Inventory {
    /// Checks the invariants and sorts components into update order, so two
    /// inventories with the same content compare equal.
    ///
    /// A server or client component without facts gets the empty facts of
    /// its role ("nothing known"), so every server has a database list and
    /// every client an update-check answer, even if only `unknown`.
    pub fn new(mut components: Vec<Component>) -> Result<Self, InventoryError> {
        components.sort_by_key(|c| c.role);
        for component in &mut components {
            if component.facts == Facts::None {
                component.facts = match component.role {
                    Role::Server => Facts::Server(ServerFacts::default()),
                    Role::Client => Facts::Client(ClientFacts::default()),
                    Role::AppServer | Role::Web => Facts::None,
                };
            }
        }
        for pair in components.windows(2) {
            if pair[0].role == pair[1].role {
                return Err(InventoryError::DuplicateRole(pair[0].role));
            }
        }
        for component in &mut components {
            if let Some(facts_role) = component.facts.role() {
                if facts_role != component.role {
                    return Err(InventoryError::FactsMismatch {
                        role: component.role,
                        facts_role,
                    });
                }
            }
            if let Facts::Client(client) = &mut component.facts {
                check_profiles(&mut client.profiles)?;
            }
            if let ProbedVersion::Unknown(why) = &mut component.version {
                cut_text(why);
            }
            if let Facts::Web(web) = &component.facts {
                if web.docroot.len() > MAX_DOCROOT || web.docroot.chars().any(char::is_control) {
                    return Err(InventoryError::TooLarge(format!(
                        "the web document directory must be at most {MAX_DOCROOT} printable characters"
                    )));
                }
            }
            if let Facts::Server(server) = &mut component.facts {
                if let Some(why) = &mut server.databases_error {
                    cut_text(why);
                }
                if let Some(output) = &mut server.web_app_output {
                    *output = crate::text::neutralise(output);
                }
                if let Some(location) = &server.backup_location {
                    if location.len() > MAX_DOCROOT || location.chars().any(char::is_control) {
                        return Err(InventoryError::TooLarge(format!(
                            "the backup location must be at most {MAX_DOCROOT} printable characters"
                        )));
                    }
                }
                if let Some(commands) = &server.commands {
                    if commands.len() > MAX_ACTIONS
                        || commands.iter().any(|c| {
                            c.is_empty()
                                || c.len() > MAX_ACTION_NAME
                                || !c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                        })
                    {
                        return Err(InventoryError::TooLarge(format!(
                            "at most {MAX_ACTIONS} action names of lower-case letters and `_` (up to {MAX_ACTION_NAME}) are accepted"
                        )));
                    }
                }
                if server.missing_services.len() > MAX_DATABASES
                    || server
                        .missing_services
                        .iter()
                        .any(|s| s.len() > 256 || s.chars().any(char::is_control))
                {
                    return Err(InventoryError::TooLarge(format!(
                        "at most {MAX_DATABASES} missing service names of up to 256 printable characters are accepted"
                    )));
                }
                if server.databases.len() > MAX_DATABASES {
                    return Err(InventoryError::TooLarge(format!(
                        "{} databases; at most {MAX_DATABASES} are accepted",
                        server.databases.len()
                    )));
                }
                let mut seen = BTreeSet::new();
                for db in &server.databases {
                    if db.name.is_empty() {
                        return Err(InventoryError::EmptyDatabaseName);
                    }
                    if db.name.len() > MAX_DATABASE_NAME || db.name.chars().any(char::is_control) {
                        return Err(InventoryError::TooLarge(format!(
                            "a database name must be at most {MAX_DATABASE_NAME} printable characters"
                        )));
                    }
                    if !seen.insert(db.name.as_str()) {
                        return Err(InventoryError::DuplicateDatabase(db.name.clone()));
                    }
                }
            }
        }
        // Held per host for as long as the controller holds its hosts (all
        // of an installation's while it plans): none of the room left over
        // from pushing the components one by one.
        components.shrink_to_fit();
        Ok(Self {
            components,
            volumes: Vec::new(),
        })
    }

    /// The same inventory with the free space of the volumes the agent
    /// writes to.
    pub fn with_volumes(mut self, volumes: Vec<Volume>) -> Result<Self, InventoryError> {
        if volumes.len() > MAX_VOLUMES
            || volumes
                .iter()
                .any(|v| v.path.len() > MAX_DOCROOT || v.path.chars().any(char::is_control))
        {
            return Err(InventoryError::TooLarge(format!(
                "at most {MAX_VOLUMES} volumes with paths of up to {MAX_DOCROOT} printable characters are accepted"
            )));
        }
        self.volumes = volumes;
        Ok(self)
    }

    pub fn volumes(&self) -> &[Volume] {
        &self.volumes
    }

    /// The free space where the agent downloads installers, if reported.
    pub fn free_for_installers(&self) -> Option<&Volume> {
        self.volumes
            .iter()
            .find(|v| v.purpose == VolumePurpose::State)
    }

    pub fn components(&self) -> &[Component] {
        &self.components
    }

    pub fn component(&self, role: Role) -> Option<&Component> {
        self.components.iter().find(|c| c.role == role)
    }

    pub fn into_components(self) -> Vec<Component> {
        self.components
    }
}

/// Neutralises probe text (control and format characters become a
/// placeholder, see [`crate::text`]) and cuts it to `MAX_PROBE_TEXT` bytes
/// (at a character boundary), marking the cut.
fn cut_text(text: &mut String) {
    *text = crate::text::neutralise(text);
    if text.len() > MAX_PROBE_TEXT {
        let mut end = MAX_PROBE_TEXT - '…'.len_utf8();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
}

/// Profiles are bounded, printable and unique; kept sorted so that equal
/// reports compare equal.
fn check_profiles(profiles: &mut Vec<DatabaseProfile>) -> Result<(), InventoryError> {
    if profiles.len() > MAX_PROFILES {
        return Err(InventoryError::Profile(format!(
            "{} database profiles; at most {MAX_PROFILES} are accepted",
            profiles.len()
        )));
    }
    for profile in profiles.iter() {
        let printable = |t: &str| t.chars().all(|c| !c.is_control());
        if profile.host.trim().is_empty()
            || profile.host.len() > MAX_PROFILE_HOST
            || !printable(&profile.host)
        {
            return Err(InventoryError::Profile(format!(
                "a database profile's server must be 1 to {MAX_PROFILE_HOST} printable characters"
            )));
        }
        if profile.database.len() > MAX_PROFILE_DATABASE || !printable(&profile.database) {
            return Err(InventoryError::Profile(format!(
                "a database profile's database name must be at most {MAX_PROFILE_DATABASE} printable characters"
            )));
        }
    }
    profiles.sort();
    profiles.dedup();
    Ok(())
}

/// A host as the controller knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRecord {
    pub host_id: String,
    pub hostname: String,
    pub installation: String,
    pub os: String,
    pub agent_version: String,
    pub online: bool,
    /// Unix time in milliseconds.
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub heartbeat_seconds: u32,
    pub inventory: Inventory,
    /// For an agent that said `installation = "auto"`: where the controller
    /// placed it and how, or why it could not (`installation` is then
    /// `auto`). `None` for an agent that named its installation.
    pub placement: Option<crate::Placement>,
    /// When the host last started (Unix ms), as its agent reports it: a
    /// restart the rollout waited for is done once this is later than the
    /// step's result. `None` from agents that do not say.
    pub boot_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(role: Role, facts: Facts) -> Component {
        Component {
            role,
            version: ProbedVersion::NotInstalled,
            facts,
        }
    }

    #[test]
    fn probe_text_is_neutralised() {
        let inv = Inventory::new(vec![Component {
            role: Role::Server,
            version: ProbedVersion::Unknown("9.3\u{202e}1\u{1b}[31m".into()),
            facts: Facts::Server(ServerFacts {
                databases: Vec::new(),
                databases_error: Some("\u{200b}down\u{7}".into()),
                backup_location: None,
                commands: None,
                web_app_output: Some("C:\\web\u{2066}".into()),
                missing_services: Vec::new(),
            }),
        }])
        .unwrap();
        let server = &inv.components()[0];
        assert_eq!(
            server.version,
            ProbedVersion::Unknown("9.3\u{fffd}1\u{fffd}[31m".into())
        );
        let Facts::Server(facts) = &server.facts else {
            panic!("server facts")
        };
        assert_eq!(
            facts.databases_error.as_deref(),
            Some("\u{fffd}down\u{fffd}")
        );
        assert_eq!(facts.web_app_output.as_deref(), Some("C:\\web\u{fffd}"));
    }

    #[test]
    fn probe_text_is_cut_and_identifiers_are_bounded() {
        let long = "é".repeat(MAX_PROBE_TEXT);
        let inv = Inventory::new(vec![Component {
            role: Role::Server,
            version: ProbedVersion::Unknown(long.clone()),
            facts: Facts::Server(ServerFacts {
                databases: Vec::new(),
                databases_error: Some(long),
                backup_location: None,
                commands: None,
                web_app_output: None,
                missing_services: Vec::new(),
            }),
        }])
        .unwrap();
        let server = &inv.components()[0];
        let ProbedVersion::Unknown(why) = &server.version else {
            panic!("the version stays unknown")
        };
        assert!(why.len() <= MAX_PROBE_TEXT && why.ends_with('…'), "{why}");
        let Facts::Server(facts) = &server.facts else {
            panic!("server facts")
        };
        assert!(facts.databases_error.as_ref().unwrap().len() <= MAX_PROBE_TEXT);

        let database = |name: String| Database {
            name,
            active: true,
            patch_level: None,
        };
        let server_with = |databases: Vec<Database>| {
            Inventory::new(vec![component(
                Role::Server,
                Facts::Server(ServerFacts {
                    databases,
                    databases_error: None,
                    backup_location: None,
                    commands: None,
                    web_app_output: None,
                    missing_services: Vec::new(),
                }),
            )])
        };
        let many = (0..=MAX_DATABASES)
            .map(|i| database(format!("db{i}")))
            .collect();
        assert!(
            matches!(server_with(many), Err(InventoryError::TooLarge(m)) if m.contains("33 databases"))
        );
        let long_name = vec![database("d".repeat(MAX_DATABASE_NAME + 1))];
        assert!(matches!(
            server_with(long_name),
            Err(InventoryError::TooLarge(_))
        ));
        assert!(server_with(vec![database("d".repeat(MAX_DATABASE_NAME))]).is_ok());
        let web = |docroot: String| {
            Inventory::new(vec![component(
                Role::Web,
                Facts::Web(WebFacts {
                    server_kind: WebServerKind::Iis,
                    docroot,
                    websocket: Check::Yes,
                    packages: None,
                }),
            )])
        };
        assert!(matches!(
            web("/".repeat(MAX_DOCROOT + 1)),
            Err(InventoryError::TooLarge(_))
        ));
        assert!(matches!(
            web("C:\\web\n".into()),
            Err(InventoryError::TooLarge(_))
        ));
        assert!(web("C:\\inetpub\\wwwroot\\psweb".into()).is_ok());
    }

    #[test]
    fn sorts_into_update_order() {
        let inv = Inventory::new(vec![
            component(Role::Client, Facts::None),
            component(Role::Server, Facts::None),
        ])
        .unwrap();
        let roles: Vec<Role> = inv.components().iter().map(|c| c.role).collect();
        assert_eq!(roles, [Role::Server, Role::Client]);
    }

    #[test]
    fn refuses_duplicates_and_mismatched_facts() {
        let dup = Inventory::new(vec![
            component(Role::Web, Facts::None),
            component(Role::Web, Facts::None),
        ]);
        assert_eq!(dup, Err(InventoryError::DuplicateRole(Role::Web)));
        let mismatch = Inventory::new(vec![component(
            Role::Client,
            Facts::Server(ServerFacts::default()),
        )]);
        assert_eq!(
            mismatch,
            Err(InventoryError::FactsMismatch {
                role: Role::Client,
                facts_role: Role::Server
            })
        );
        let db = |name: &str| Database {
            name: name.into(),
            active: true,
            patch_level: None,
        };
        let dup_db = Inventory::new(vec![component(
            Role::Server,
            Facts::Server(ServerFacts {
                databases: vec![db("a"), db("a")],
                databases_error: None,
                backup_location: None,
                commands: None,
                web_app_output: None,
                missing_services: Vec::new(),
            }),
        )]);
        assert_eq!(dup_db, Err(InventoryError::DuplicateDatabase("a".into())));
    }
}
