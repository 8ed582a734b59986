//! Settings from every source, by precedence, documented once:
//! policy key (`HKLM\SOFTWARE\Policies\Tierwise\Agent`, Group Policy)
//! > install-time key (`HKLM\SOFTWARE\Tierwise\Agent`, the MSI)
//! > TOML file > defaults.
//!
//! `table` is the one list of policy values (the ADMX templates are made
//! from it), `layer` checks what a registry key holds, `document` merges the
//! sources into one document of the file's shape that `config::parse`
//! validates, and `watch` decides when a changed policy is applied. When no
//! source configures any component, the components are discovered from the
//! Uninstall entries (`probe::discovery`). Only `registry` and the reading of
//! the Uninstall entries touch Windows; everything else is plain code,
//! tested on any platform with registry contents made in memory.

pub mod admx;
pub mod document;
pub mod layer;
#[cfg(windows)]
mod registry;
pub mod table;
pub mod watch;

use crate::config::{self, ConfigError, Settings};
use crate::probe::discovery::{self, UninstallEntry};
use document::{Document, Provenance};
use layer::{Origin, RawKey};
use std::path::{Path, PathBuf};

/// What the agent read from each source, before checking.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    /// The TOML file (path, text), if there is one.
    pub file: Option<(String, String)>,
    pub install_key: RawKey,
    pub policy_key: RawKey,
    /// Windows: the Uninstall entries of both registry views, from which
    /// components are discovered when no source configures any; empty
    /// elsewhere.
    pub uninstall: Vec<UninstallEntry>,
}

/// A configuration that validated, with where each value came from.
#[derive(Clone, Debug)]
pub struct Effective {
    pub settings: Settings,
    pub provenance: Vec<Provenance>,
    /// Registry values the agent does not know (ignored).
    pub ignored: Vec<String>,
    /// Identifies the configuration: equal texts, equal settings.
    pub fingerprint: String,
}

/// The file the agent reads when `--config` is not given: on Windows
/// `%ProgramData%\Tierwise\Agent\agent.toml` if it exists; elsewhere none
/// (the agent then needs `--config`).
pub fn default_file() -> Option<PathBuf> {
    if cfg!(windows) {
        let path = config::default_state_dir().join("agent.toml");
        path.exists().then_some(path)
    } else {
        None
    }
}

/// Reads every source: the file (when given or found), and on Windows the
/// two registry keys and the Uninstall entries.
pub fn read_sources(file: Option<&Path>) -> Result<Sources, ConfigError> {
    let file = match file.map(Path::to_path_buf).or_else(default_file) {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError {
                path: path.display().to_string(),
                message: format!("cannot read the configuration: {e}"),
            })?;
            Some((path.display().to_string(), text))
        }
    };
    #[cfg(windows)]
    let (install_key, policy_key) = (
        registry::read(table::INSTALL_KEY),
        registry::read(table::POLICY_KEY),
    );
    #[cfg(not(windows))]
    let (install_key, policy_key) = (RawKey::default(), RawKey::default());
    Ok(Sources {
        file,
        install_key,
        policy_key,
        uninstall: crate::probe::uninstall_entries(),
    })
}

/// Merges and validates the sources. A bad value anywhere refuses the whole
/// configuration, naming the registry value or file line to fix. With no
/// component configured anywhere, the components are the discovered ones.
pub fn resolve(sources: &Sources) -> Result<Effective, ConfigError> {
    let (document, configured) = resolve_configured(sources)?;
    Ok(discover(&document, &sources.uninstall, configured))
}

/// The configuration the file and the registry keys give, and the merged
/// document it was made from.
fn resolve_configured(sources: &Sources) -> Result<(Document, Effective), ConfigError> {
    let registry_empty = sources.install_key.is_empty() && sources.policy_key.is_empty();
    let file_table = match &sources.file {
        Some((path, text)) => {
            Some(
                toml::from_str::<toml::Table>(text).map_err(|e| ConfigError {
                    path: path.clone(),
                    message: e.to_string().trim_end().to_owned(),
                })?,
            )
        }
        None => None,
    };
    let mut document = match (&sources.file, file_table) {
        (Some((path, _)), Some(table)) => Document::from_file(table, path),
        _ => Document::default(),
    };
    if registry_empty {
        // The file alone: its own line numbers in every message.
        let Some((path, text)) = &sources.file else {
            return Err(ConfigError {
                path: "configuration".into(),
                message: format!(
                    "no configuration found: give `--config FILE`, or set the policy values under HKLM\\{} (README: Deploy by Group Policy)",
                    table::POLICY_KEY
                ),
            });
        };
        let settings = config::parse(text, path)?;
        let effective = Effective {
            provenance: document.provenance(&settings),
            settings,
            ignored: Vec::new(),
            fingerprint: text.clone(),
        };
        return Ok((document, effective));
    }
    let mut ignored = Vec::new();
    for (origin, raw) in [
        (Origin::InstallKey, &sources.install_key),
        (Origin::Policy, &sources.policy_key),
    ] {
        let root = origin.root().unwrap_or_default();
        let fail = |errors: Vec<String>| ConfigError {
            path: format!(r"HKLM\{root}"),
            message: errors.join("; "),
        };
        let layer = layer::read(origin.clone(), raw).map_err(fail)?;
        document.overlay(&layer).map_err(fail)?;
        ignored.extend(layer.ignored);
    }
    let rendered = document.render();
    let settings = config::parse_located(&rendered.text, "configuration", &|line| {
        rendered.locate(line)
    })?;
    let effective = Effective {
        provenance: document.provenance(&settings),
        settings,
        ignored,
        fingerprint: rendered.text,
    };
    Ok((document, effective))
}

/// Zero-touch: when no source configures a component, the components the
/// Uninstall entries show. The fingerprint gains the discovered roles but
/// not their versions or names: a client installed later is picked up at
/// the next re-read, while an upgrade (a new DisplayVersion, which is
/// probed, not configured) restarts nothing.
fn discover(
    document: &Document,
    uninstall: &[UninstallEntry],
    mut effective: Effective,
) -> Effective {
    if document.has_components() {
        return effective;
    }
    let found = discovery::discovered_roles(uninstall);
    let components = discovery::discovered_components(uninstall, &effective.settings.state_dir);
    if components.is_empty() {
        return effective;
    }
    let roles: Vec<&str> = components.iter().map(|c| c.role.as_str()).collect();
    effective
        .fingerprint
        .push_str(&format!("\n# discovered: {}\n", roles.join(", ")));
    effective
        .provenance
        .extend(document::discovered_provenance(&found, &components));
    effective.settings.components = components;
    effective
}

/// Reads and resolves, as at start.
pub fn load(file: Option<&Path>) -> Result<Effective, ConfigError> {
    resolve(&read_sources(file)?)
}

#[cfg(test)]
mod tests {
    use super::layer::RegValue;
    use super::*;
    use tierwise_common::Role;

    const FILE: &str = r#"
controller = "https://file.example:7700"
installation = "prod"
host_id = "pc-1"
heartbeat_seconds = 20

[[component]]
role = "client"
version = { file = "/opt/ps/VERSION" }
update_check = false

[component.actions]
install = { command = ["msiexec", "/i", "{artifact}"], timeout_seconds = 600 }
"#;

    fn sources(policy: &[(&str, &str, RegValue)], install: &[(&str, &str, RegValue)]) -> Sources {
        let mut s = Sources {
            file: Some(("agent.toml".into(), FILE.into())),
            ..Sources::default()
        };
        for (k, n, v) in policy {
            s.policy_key.insert(k, n, v.clone());
        }
        for (k, n, v) in install {
            s.install_key.insert(k, n, v.clone());
        }
        s
    }

    fn text(t: &str) -> RegValue {
        RegValue::Text(t.into())
    }

    fn source_of<'a>(effective: &'a Effective, key: &str) -> &'a str {
        &effective
            .provenance
            .iter()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("no {key} in {:?}", effective.provenance))
            .source
    }

    #[test]
    fn policy_beats_install_key_beats_file_beats_defaults() {
        let effective = resolve(&sources(
            &[("", "Controller", text("https://policy.example:7700"))],
            &[
                ("", "Controller", text("https://install.example:7700")),
                ("", "Installation", text("test")),
            ],
        ))
        .expect("valid");
        let s = &effective.settings;
        assert_eq!(s.controller.to_string(), "https://policy.example:7700");
        assert_eq!(s.installation, "test");
        assert_eq!(s.heartbeat.as_secs(), 20);
        assert_eq!(
            s.probe_interval.as_secs(),
            u64::from(config::DEFAULT_PROBE_SECONDS)
        );
        assert_eq!(source_of(&effective, "controller"), "policy");
        assert_eq!(source_of(&effective, "installation"), "install-time key");
        assert_eq!(
            source_of(&effective, "heartbeat_seconds"),
            "file agent.toml"
        );
        assert_eq!(source_of(&effective, "probe_seconds"), "default");
    }

    #[test]
    fn a_policy_probe_replaces_the_file_probe_whole() {
        let effective = resolve(&sources(
            &[
                (
                    r"Components\Client",
                    "VersionCommand",
                    RegValue::Lines(vec!["ps-version".into()]),
                ),
                (
                    r"Components\Client",
                    "VersionPattern",
                    text(r"(\d+\.\d+\.\d+\.\d+)"),
                ),
            ],
            &[],
        ))
        .expect("valid");
        let client = &effective.settings.components[0];
        assert!(matches!(
            &client.version,
            config::VersionProbe::Text { source: config::Source::Command { argv, .. }, pattern: Some(_) } if argv == &["ps-version"]
        ));
        // An action comes from one source whole: a policy timeout alone
        // replaces the file's action, which then lacks its command.
        let refused = resolve(&sources(
            &[(
                r"Components\Client",
                "InstallTimeoutSeconds",
                RegValue::Number(900),
            )],
            &[],
        ))
        .expect_err("an action without a command");
        assert!(
            refused.to_string().contains(
                r"HKLM\SOFTWARE\Policies\Tierwise\Agent\Components\Client\InstallTimeoutSeconds"
            ),
            "{refused}"
        );
        assert_eq!(source_of(&effective, "component.client.version"), "policy");
        assert_eq!(
            source_of(&effective, "component.client.actions.install"),
            "file agent.toml"
        );
    }

    #[test]
    fn health_checks_come_from_policy_as_one_table() {
        let effective = resolve(&sources(
            &[
                (
                    r"Components\Client",
                    "HealthTcp",
                    RegValue::Lines(vec!["ps-app-01:11011".into(), "ps-app-02:11011".into()]),
                ),
                (
                    r"Components\Client",
                    "HealthWaitSeconds",
                    RegValue::Number(60),
                ),
            ],
            &[],
        ))
        .expect("valid");
        let health = effective.settings.components[0]
            .health
            .as_ref()
            .expect("health checks");
        let tcp: Vec<String> = health.tcp.iter().map(ToString::to_string).collect();
        assert_eq!(tcp, ["ps-app-01:11011", "ps-app-02:11011"]);
        assert_eq!(health.wait.as_secs(), 60);
        assert_eq!(source_of(&effective, "component.client.health"), "policy");

        // A wait alone names no check: refused, naming the value to fix.
        let refused = resolve(&sources(
            &[(
                r"Components\Client",
                "HealthWaitSeconds",
                RegValue::Number(60),
            )],
            &[],
        ))
        .expect_err("no check");
        let refused = refused.to_string();
        assert!(refused.contains("names no check"), "{refused}");
        assert!(
            refused.contains(r"Components\Client\HealthWaitSeconds"),
            "{refused}"
        );
    }

    #[test]
    fn policy_alone_is_a_whole_configuration() {
        let mut s = Sources::default();
        for (k, n, v) in [
            ("", "Controller", text("https://ctl:7700")),
            ("", "Installation", text("prod")),
            ("", "HostId", text("pc-2")),
            ("", "EnrollmentToken", text("twe_abc")),
            ("", "CaFingerprint", text(&["AB"; 32].join(":"))),
            ("", "ReleaseRootFingerprint", text(&"CD".repeat(32))),
            (r"Components\Client", "VersionValue", text("9.3.1.33994")),
            (
                r"Components\Client",
                "InstallCommand",
                RegValue::Lines(vec!["msiexec".into(), "/i".into(), "{artifact}".into()]),
            ),
        ] {
            s.policy_key.insert(k, n, v);
        }
        let effective = resolve(&s).expect("valid");
        assert_eq!(effective.settings.host_id, "pc-2");
        assert_eq!(
            effective.settings.release_root.as_deref(),
            Some("cd".repeat(32).as_str())
        );
        assert!(effective.settings.enrollment.is_some());
        let token = effective
            .provenance
            .iter()
            .find(|p| p.key == "enrollment_token")
            .expect("token");
        assert_eq!(token.value, "<hidden>");
        assert_eq!(
            token.registry,
            vec![r"HKLM\SOFTWARE\Policies\Tierwise\Agent\EnrollmentToken".to_owned()]
        );
    }

    #[test]
    fn a_policy_backup_pattern_is_checked_like_the_file_s() {
        let server = |pattern: &str| {
            sources(
                &[
                    (r"Components\Server", "VersionValue", text("9.3.1.33994")),
                    (
                        r"Components\Server",
                        "DatabasesFile",
                        text("/opt/ps/databases.json"),
                    ),
                    (
                        r"Components\Server",
                        "BackupCommand",
                        RegValue::Lines(vec!["ps-backup".into()]),
                    ),
                    (
                        r"Components\Server",
                        "BackupDirectory",
                        text("/srv/backups"),
                    ),
                    (r"Components\Server", "BackupPattern", text(pattern)),
                ],
                &[],
            )
        };
        let effective = resolve(&server("{database}_*.bak")).expect("valid");
        let location = effective
            .settings
            .components
            .iter()
            .find(|c| c.role == Role::Server)
            .and_then(|c| c.backup_location.as_ref())
            .expect("a backup location");
        assert!(location.pattern.matches("PSDB_1.bak", Some("PSDB")));
        let refused = resolve(&server("{date}_*.bak"))
            .expect_err("only {database} is filled in")
            .to_string();
        assert!(
            refused.contains("may fill in only `{database}` (each database's name), not `{date}`"),
            "{refused}"
        );
        assert!(
            refused.contains(r"Components\Server\BackupPattern"),
            "{refused}"
        );
    }

    #[test]
    fn errors_name_the_registry_value_to_fix() {
        let bad_pattern = resolve(&sources(
            &[(r"Components\Client", "VersionRegistry", text("(unclosed"))],
            &[],
        ))
        .expect_err("invalid regex");
        let message = bad_pattern.to_string();
        if cfg!(windows) {
            assert!(message.contains("invalid regular expression"), "{message}");
        }
        assert!(
            message.contains(
                r"policy HKLM\SOFTWARE\Policies\Tierwise\Agent\Components\Client\VersionRegistry"
            ),
            "{message}"
        );
        let bad_controller = resolve(&sources(&[("", "Controller", text("http://x:7700"))], &[]))
            .expect_err("plaintext address");
        assert!(
            bad_controller.to_string().contains(r"Agent\Controller"),
            "{bad_controller}"
        );
        let bad_type = resolve(&sources(&[("", "HeartbeatSeconds", text("10"))], &[]))
            .expect_err("wrong type");
        assert!(
            bad_type
                .to_string()
                .contains("is REG_SZ; it must be REG_DWORD"),
            "{bad_type}"
        );
    }

    fn uninstall(entries: &[(&str, &str)]) -> Vec<UninstallEntry> {
        entries
            .iter()
            .map(|(name, version)| UninstallEntry {
                display_name: (*name).into(),
                display_version: Some((*version).into()),
                publisher: None,
            })
            .collect()
    }

    /// Group Policy with the connection only, as for zero-touch rollout.
    fn policy_without_components(entries: &[(&str, &str)]) -> Sources {
        let mut s = Sources {
            uninstall: uninstall(entries),
            ..Sources::default()
        };
        for (n, v) in [
            ("Controller", "https://127.0.0.1:7700"),
            ("Installation", "auto"),
            ("HostId", "win-1"),
            ("StateDir", "/state"),
        ] {
            s.policy_key.insert("", n, text(v));
        }
        s
    }

    const MACHINE: [(&str, &str); 4] = [
        ("Netwrix Auditor", "10.6.0.1"),
        ("Netwrix Password Secure Autofill Add-on", "9.3.1.33994"),
        ("Netwrix Password Secure", "9.3.1.33994"),
        ("Password Secure Server Manager", "9.3.1.33994"),
    ];

    #[test]
    fn with_no_component_configured_the_agent_discovers_them() {
        let effective = resolve(&policy_without_components(&MACHINE)).expect("valid");
        let components = &effective.settings.components;
        let roles: Vec<Role> = components.iter().map(|c| c.role).collect();
        assert_eq!(roles, [Role::Server, Role::Client]);
        assert!(matches!(
            components[1].version,
            config::VersionProbe::Discovered(Role::Client)
        ));
        assert_eq!(
            components[1].actions["install"]
                .command()
                .map(|c| c.argv.as_slice())
                .unwrap_or_default()
                .last()
                .map(String::as_str),
            Some("/state/logs/client-{version}.log"),
            "the install log goes to the effective state directory"
        );
        assert_eq!(
            source_of(&effective, "component.client.version"),
            document::DISCOVERED
        );
        let version = effective
            .provenance
            .iter()
            .find(|p| p.key == "component.client.version")
            .expect("client version");
        assert_eq!(
            version.value,
            r#"Uninstall entry "Netwrix Password Secure""#
        );
        assert_eq!(
            source_of(&effective, "component.client.actions.install"),
            document::DISCOVERED
        );
        assert_eq!(
            source_of(&effective, "component.server.version"),
            document::DISCOVERED
        );
        assert!(
            !effective
                .provenance
                .iter()
                .any(|p| p.key == "component.server.actions.install"),
            "the Server Manager gets no action by discovery"
        );

        // The file alone, without components, discovers too.
        let file = Sources {
            file: Some((
                "agent.toml".into(),
                "controller = \"https://ctl:7700\"\ninstallation = \"auto\"\nhost_id = \"pc-1\"\n"
                    .into(),
            )),
            uninstall: uninstall(&MACHINE[2..3]),
            ..Sources::default()
        };
        let effective = resolve(&file).expect("valid");
        let roles: Vec<Role> = effective
            .settings
            .components
            .iter()
            .map(|c| c.role)
            .collect();
        assert_eq!(roles, [Role::Client]);

        // Nothing of the vendor's installed: nothing to report.
        let effective = resolve(&policy_without_components(&MACHINE[..2])).expect("valid");
        assert!(effective.settings.components.is_empty());
    }

    #[test]
    fn any_configured_component_turns_discovery_off() {
        // The file configures the client: the Server Manager installed
        // beside it is not added.
        let mut s = sources(&[], &[]);
        s.uninstall = uninstall(&MACHINE);
        let effective = resolve(&s).expect("valid");
        let roles: Vec<Role> = effective
            .settings
            .components
            .iter()
            .map(|c| c.role)
            .collect();
        assert_eq!(roles, [Role::Client]);
        assert!(matches!(
            effective.settings.components[0].version,
            config::VersionProbe::Text { .. }
        ));
        assert!(!effective
            .provenance
            .iter()
            .any(|p| p.source == document::DISCOVERED));

        // Policy configures only the server: the client is not discovered.
        let mut s = policy_without_components(&MACHINE);
        s.policy_key
            .insert(r"Components\Server", "VersionValue", text("9.3.1.33994"));
        let effective = resolve(&s).expect("valid");
        let roles: Vec<Role> = effective
            .settings
            .components
            .iter()
            .map(|c| c.role)
            .collect();
        assert_eq!(roles, [Role::Server]);
        assert!(matches!(
            effective.settings.components[0].version,
            config::VersionProbe::Fixed(_)
        ));
    }

    #[test]
    fn the_fingerprint_follows_discovered_roles_not_versions() {
        let fingerprint = |entries: &[(&str, &str)]| {
            resolve(&policy_without_components(entries))
                .expect("valid")
                .fingerprint
        };
        let client = fingerprint(&[("Netwrix Password Secure", "9.2.0.30000")]);
        assert_eq!(
            fingerprint(&[("Netwrix Password Secure", "9.3.1.33994")]),
            client,
            "an upgrade changes no setting"
        );
        assert_eq!(
            fingerprint(&[
                ("Password Safe and Repository 8", "8.16.0.1"),
                ("Netwrix Password Secure", "9.3.1.33994"),
            ]),
            client,
            "another entry of the same role changes no setting"
        );
        let nothing = fingerprint(&[]);
        assert_ne!(nothing, client, "a client installed later is picked up");
        let both = fingerprint(&[
            ("Netwrix Password Secure", "9.2.0.30000"),
            ("Netwrix Password Secure Server", "9.2.0.30000"),
        ]);
        assert_ne!(
            both, client,
            "a Server Manager installed later is picked up"
        );
        assert_ne!(both, nothing);
        assert_eq!(
            fingerprint(&[("Netwrix Password Secure Autofill Add-on", "9.3.1.33994")]),
            nothing,
            "add-ons are no component"
        );
    }

    #[test]
    fn nothing_configured_says_where_to_configure() {
        let error = resolve(&Sources::default()).expect_err("nothing");
        assert!(error.to_string().contains("--config FILE"), "{error}");
    }

    #[test]
    fn windows_services_come_from_policy_as_one_action_with_their_time_limit() {
        let server = r"Components\Server";
        let lines =
            |names: &[&str]| RegValue::Lines(names.iter().map(|n| (*n).to_owned()).collect());
        let effective = resolve(&sources(
            &[
                (server, "VersionValue", text("9.3.1.33994")),
                (
                    server,
                    "StopServicesWindowsServices",
                    lines(&["PsrServer", "PsrBackupService"]),
                ),
                (server, "StopServicesTimeoutSeconds", RegValue::Number(300)),
            ],
            &[],
        ));
        let value =
            r"HKLM\SOFTWARE\Policies\Tierwise\Agent\Components\Server\StopServicesWindowsServices";
        match effective {
            Ok(effective) if cfg!(windows) => {
                let server = effective
                    .settings
                    .components
                    .iter()
                    .find(|c| c.role == Role::Server)
                    .expect("a server");
                assert_eq!(
                    server.actions["stop_services"],
                    config::ConfiguredAction::WindowsServices(config::WindowsServicesAction {
                        services: vec!["PsrServer".into(), "PsrBackupService".into()],
                        timeout: std::time::Duration::from_secs(300),
                    })
                );
                assert_eq!(
                    source_of(&effective, "component.server.actions.stop_services"),
                    "policy"
                );
            }
            Err(error) if !cfg!(windows) => {
                let error = error.to_string();
                assert!(
                    error.contains(value) && error.contains("`windows_services` needs Windows"),
                    "{error}"
                );
            }
            other => panic!("{other:?}"),
        }
        // A command and services for the same action: refused, naming both.
        let both = resolve(&sources(
            &[
                (server, "VersionValue", text("9.3.1.33994")),
                (server, "StopServicesWindowsServices", lines(&["PsrServer"])),
                (
                    server,
                    "StopServicesCommand",
                    lines(&["net", "stop", "PsrServer"]),
                ),
            ],
            &[],
        ))
        .expect_err("both");
        let both = both.to_string();
        assert!(
            both.contains(value)
                && both.contains("StopServicesCommand")
                && both.contains("give either `command` or `windows_services`, not both"),
            "{both}"
        );
        // Only the components that run the services have the value.
        assert!(!table::settings()
            .iter()
            .any(|s| s.value == "StopServicesWindowsServices"
                && matches!(s.role, Some(Role::Client | Role::Web))));
    }
}
