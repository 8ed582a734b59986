//! The one table of policy settings: where each setting lives in the
//! registry, its type and bounds, the configuration key it sets, and the text
//! an administrator reads in the Group Policy editor.
//!
//! The policy reader (`layer.rs`) and the ADMX/ADML generator (`admx.rs`)
//! both read this table and nothing else, so the templates cannot drift from
//! what the agent understands.

use tierwise_common::Role;

/// The key Group Policy writes (ADMX templates point here).
pub const POLICY_KEY: &str = r"SOFTWARE\Policies\Tierwise\Agent";
/// The key the MSI writes from its public properties at install time.
pub const INSTALL_KEY: &str = r"SOFTWARE\Tierwise\Agent";
/// Under either root: one subkey per component, e.g. `Components\Client`.
pub const COMPONENTS_SUBKEY: &str = "Components";

/// A registry value's type, with the bounds the agent accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// REG_SZ (REG_EXPAND_SZ is read too and its `%VARIABLES%` expanded).
    Text,
    /// REG_SZ holding one of a few words.
    Choice(&'static [&'static str]),
    /// REG_DWORD within bounds; `default` is what the agent uses when unset
    /// (and what the Group Policy editor proposes).
    Number { min: u32, max: u32, default: u32 },
    /// REG_DWORD, 0 or 1: a policy of its own (Enabled writes 1, Disabled
    /// writes 0, Not Configured writes nothing).
    Flag,
    /// REG_MULTI_SZ: one program argument per line.
    Lines,
    /// REG_SZ: whole numbers separated by commas (exit codes).
    NumberList,
}

/// Where a setting lands in the configuration document (the same shape as
/// the TOML file), so every source is validated by one parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A top-level key, e.g. `controller`.
    Top(&'static str),
    /// A key of the role's `[[component]]`, e.g. `docroot`.
    Component(&'static str),
    /// A key inside one of the component's probe tables, e.g.
    /// (`version`, `registry`). A `Flag` in a check's place sets the check
    /// to `true`/`false` instead of a table.
    Probe(&'static str, &'static str),
    /// A key of one action command, e.g. (`install`, `command`).
    Action(&'static str, &'static str),
}

/// The group a setting is shown in: one ADMX policy per group, so an
/// administrator sets, say, a component's version probe in one dialog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Group {
    /// ADMX policy name (an identifier).
    pub id: &'static str,
    pub title: &'static str,
    pub help: &'static str,
}

/// One policy value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// `None` for the agent's root key, or the component it belongs to.
    pub role: Option<Role>,
    /// The registry value's name.
    pub value: &'static str,
    pub kind: ValueKind,
    pub target: Target,
    pub group: Group,
    /// The label beside the field in the Group Policy editor.
    pub label: &'static str,
}

impl Setting {
    /// The subkey under the policy or install-time root (`""` for the root).
    pub fn subkey(&self) -> String {
        match self.role {
            None => String::new(),
            Some(role) => format!(r"{COMPONENTS_SUBKEY}\{}", role_subkey(role)),
        }
    }

    /// `HKLM\…\Agent\Components\Client` → `VersionRegistry`: the full name of
    /// the value under `root`, for messages.
    pub fn path(&self, root: &str) -> String {
        let subkey = self.subkey();
        if subkey.is_empty() {
            format!(r"HKLM\{root}\{}", self.value)
        } else {
            format!(r"HKLM\{root}\{subkey}\{}", self.value)
        }
    }
}

/// The subkey name of a role's component.
pub fn role_subkey(role: Role) -> &'static str {
    match role {
        Role::Server => "Server",
        Role::AppServer => "AppServer",
        Role::Web => "Web",
        Role::Client => "Client",
    }
}

/// Log levels the agent accepts (`log_level`, policy `LogLevel`).
pub const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];
/// Web servers a web component names (`server`, policy `WebServer`).
pub const WEB_SERVERS: &[&str] = &["iis", "apache", "nginx"];

const CONNECTION: Group = Group {
    id: "Connection",
    title: "Controller connection",
    help: "The controller this agent reports to, the controller's CA pinned by its SHA-256 fingerprint (`tierwise pki show --fingerprint`), and the installation the host belongs to (`auto`: the controller places a client by the server it is set up for).",
};
const ENROLLMENT: Group = Group {
    id: "Enrollment",
    title: "Enrollment token",
    help: "The token an agent trades once for its certificate (`tierwise tokens create --installation NAME --uses N --expires 7d`). A value set by Group Policy is readable by every domain user: use an installation-scoped, short-lived, multi-use token. Once enrolled the agent never needs it again.",
};
const IDENTITY: Group = Group {
    id: "Identity",
    title: "Host id and state directory",
    help: "The host id (default: the computer name) and the directory of the agent's identity, journal and downloads (default: %ProgramData%\\Tierwise\\Agent).",
};
const TIMING: Group = Group {
    id: "Timing",
    title: "Heartbeat, probe and reconnect intervals",
    help: "Seconds between heartbeats (the controller marks a host offline after three missed ones), between probes of what is installed, and the longest wait between reconnect attempts.",
};
const LOGGING: Group = Group {
    id: "Logging",
    title: "Log level",
    help: "How much the agent writes to its log files under %ProgramData%\\Tierwise\\Agent\\logs. Warnings and errors also go to the Windows Event Log (source \"Tierwise Agent\").",
};

/// Every policy setting, in the order the templates show them.
pub fn settings() -> &'static [Setting] {
    static TABLE: std::sync::OnceLock<Vec<Setting>> = std::sync::OnceLock::new();
    TABLE.get_or_init(build)
}

fn build() -> Vec<Setting> {
    let top = |value, kind, key, group, label| Setting {
        role: None,
        value,
        kind,
        target: Target::Top(key),
        group,
        label,
    };
    let mut all = vec![
        top(
            "Controller",
            ValueKind::Text,
            "controller",
            CONNECTION,
            "Controller address (https://HOST:7700)",
        ),
        top(
            "CaFingerprint",
            ValueKind::Text,
            "ca_fingerprint",
            CONNECTION,
            "CA fingerprint (SHA-256)",
        ),
        top(
            "ReleaseRootFingerprint",
            ValueKind::Text,
            "release_root_fingerprint",
            CONNECTION,
            "Release root fingerprint (signed installers only)",
        ),
        top(
            "Installation",
            ValueKind::Text,
            "installation",
            CONNECTION,
            "Installation (or auto)",
        ),
        top(
            "EnrollmentToken",
            ValueKind::Text,
            "enrollment_token",
            ENROLLMENT,
            "Enrollment token",
        ),
        top(
            "EnrollmentTokenFile",
            ValueKind::Text,
            "enrollment_token_file",
            ENROLLMENT,
            "or a file holding it",
        ),
        top("HostId", ValueKind::Text, "host_id", IDENTITY, "Host id"),
        top(
            "StateDir",
            ValueKind::Text,
            "state_dir",
            IDENTITY,
            "State directory",
        ),
        top(
            "HeartbeatSeconds",
            ValueKind::Number {
                min: 1,
                max: 3600,
                default: 10,
            },
            "heartbeat_seconds",
            TIMING,
            "Heartbeat (seconds)",
        ),
        top(
            "ProbeSeconds",
            ValueKind::Number {
                min: 1,
                max: 86_400,
                default: 30,
            },
            "probe_seconds",
            TIMING,
            "Probe interval (seconds)",
        ),
        top(
            "ReconnectMaxSeconds",
            ValueKind::Number {
                min: 1,
                max: 3600,
                default: 60,
            },
            "reconnect_max_seconds",
            TIMING,
            "Longest reconnect wait (seconds)",
        ),
        top(
            "LogLevel",
            ValueKind::Choice(LOG_LEVELS),
            "log_level",
            LOGGING,
            "Log level",
        ),
    ];
    for role in Role::ALL {
        all.extend(component_settings(role));
    }
    all
}

/// A component's groups; their ids and titles name the role.
fn component_settings(role: Role) -> Vec<Setting> {
    let groups = ComponentGroups::of(role);
    let mut list = Vec::new();
    let mut add = |value, kind, target, group, label| {
        list.push(Setting {
            role: Some(role),
            value,
            kind,
            target,
            group,
            label,
        })
    };
    use Target::{Action, Component, Probe};
    use ValueKind::{Lines, Number, NumberList, Text};
    let seconds = Number {
        min: 1,
        max: 3600,
        default: 30,
    };
    let v = groups.version;
    add(
        "VersionRegistry",
        Text,
        Probe("version", "registry"),
        v,
        "Uninstall entry DisplayName (regular expression)",
    );
    add(
        "VersionFileVersion",
        Text,
        Probe("version", "file_version"),
        v,
        "or: executable whose file version is read",
    );
    add(
        "VersionFile",
        Text,
        Probe("version", "file"),
        v,
        "or: text file holding the version",
    );
    add(
        "VersionCommand",
        Lines,
        Probe("version", "command"),
        v,
        "or: command printing it (one argument per line)",
    );
    add(
        "VersionPattern",
        Text,
        Probe("version", "pattern"),
        v,
        "Pattern picking the version from the file or output",
    );
    add(
        "VersionTimeoutSeconds",
        seconds,
        Probe("version", "timeout_seconds"),
        v,
        "Command time limit (seconds)",
    );
    add(
        "VersionValue",
        Text,
        Probe("version", "value"),
        v,
        "or: a fixed version",
    );
    let f = groups.facts;
    match role {
        Role::Server => {
            add(
                "DatabasesFile",
                Text,
                Probe("databases", "file"),
                f,
                "File listing the databases (JSON)",
            );
            add(
                "DatabasesCommand",
                Lines,
                Probe("databases", "command"),
                f,
                "or: command printing them (one argument per line)",
            );
            add(
                "DatabasesTimeoutSeconds",
                seconds,
                Probe("databases", "timeout_seconds"),
                f,
                "Command time limit (seconds)",
            );
            add(
                "WebAppOutput",
                Text,
                Component("web_app_output"),
                f,
                "Folder the Server Manager saves the generated Web Application in (a subfolder per kind: iis, apache, nginx)",
            );
        }
        Role::Web => {
            add(
                "WebServer",
                ValueKind::Choice(WEB_SERVERS),
                Component("server"),
                f,
                "Web server (iis, apache or nginx)",
            );
            add(
                "Docroot",
                Text,
                Component("docroot"),
                f,
                "Document directory of the Web Application",
            );
            add(
                "WebApp",
                Text,
                Component("web_app"),
                f,
                "Web Application package path ({version} is filled in)",
            );
            check_settings(&mut add, role, "websocket", "WebSocket", f);
        }
        Role::Client => check_settings(&mut add, role, "update_check", "UpdateCheck", f),
        Role::AppServer => {}
    }
    let h = groups.health;
    add(
        "HealthTcp",
        Lines,
        Probe("health", "tcp"),
        h,
        "Ports that must accept a connection (HOST:PORT, one per line)",
    );
    add(
        "HealthHttps",
        Lines,
        Probe("health", "https"),
        h,
        "HTTPS addresses that must answer 200 (one per line)",
    );
    add(
        "HealthServices",
        Lines,
        Probe("health", "services"),
        h,
        "Windows services that must be running (one name per line)",
    );
    add(
        "HealthCaFile",
        Text,
        Probe("health", "ca_file"),
        h,
        "PEM file of certificates trusted for the HTTPS checks",
    );
    add(
        "HealthWaitSeconds",
        Number {
            min: 1,
            max: 3600,
            default: 120,
        },
        Probe("health", "wait_seconds"),
        h,
        "How long the checks have to pass (seconds, default 120)",
    );
    for (action, name, server_only) in ACTIONS {
        if (server_only && role != Role::Server) || (role == Role::Web && action == "install") {
            continue;
        }
        let group = groups.action(action);
        let (command, timeout, transient, restart) = action_value_names(name);
        add(
            command,
            Lines,
            Action(action, "command"),
            group,
            "Command (one argument per line; {artifact}, {version}, {role}, {step} are filled in)",
        );
        if takes_windows_services(role, action) {
            add(
                leak(format!("{name}WindowsServices")),
                Lines,
                Action(action, "windows_services"),
                group,
                "or: Windows services, one name per line as sc query shows it (the agent orders them by their dependencies)",
            );
        }
        add(
            timeout,
            Number {
                min: 1,
                max: 86_400,
                default: 1800,
            },
            Action(action, "timeout_seconds"),
            group,
            "Time limit (seconds, default 1800)",
        );
        add(
            transient,
            NumberList,
            Action(action, "transient_exit_codes"),
            group,
            "Exit codes meaning try again later (comma-separated, default 1618)",
        );
        add(
            restart,
            NumberList,
            Action(action, "restart_exit_codes"),
            group,
            "Exit codes meaning succeeded, restart required (comma-separated, default 3010, 1641)",
        );
        if action == "backup" {
            add(
                "BackupDirectory",
                Text,
                Action(action, "backup_directory"),
                group,
                "Directory the backups land in (the step then needs a new file there for every database)",
            );
            add(
                "BackupPattern",
                Text,
                Action(action, "backup_pattern"),
                group,
                "Backup file name pattern (* and ?, {database} for each database's name, default *)",
            );
        }
    }
    list
}

/// The yes/no check of a web host (WebSocket support) or a client (the
/// update-check setting): a fixed answer (a policy of its own) or a probe.
fn check_settings(
    add: &mut impl FnMut(&'static str, ValueKind, Target, Group, &'static str),
    role: Role,
    table: &'static str,
    prefix: &'static str,
    group: Group,
) {
    let name = |suffix: &str| -> &'static str { leak(format!("{prefix}{suffix}")) };
    let (title, help) = match table {
        "websocket" => (
            "WebSocket support is present (fixed answer)",
            "Enabled: the host reports WebSocket support without probing; Disabled: it reports none. Not configured: the probe in the facts policy (or the file) decides. Use either this or a probe, not both.",
        ),
        _ => (
            "\"Can search for updates\" is on for normal users (fixed answer)",
            "Enabled: the client reports the update check as on (the plan warns); Disabled: off. Not configured: the probe in the facts policy (or the file) decides. Use either this or a probe, not both.",
        ),
    };
    let fixed = Group {
        id: leak(format!("{}{prefix}", role_subkey(role))),
        title: leak(format!("{}: {title}", role_title(role))),
        help,
    };
    add(
        name(""),
        ValueKind::Flag,
        Target::Probe(table, ""),
        fixed,
        title,
    );
    add(
        name("RegistryKey"),
        ValueKind::Text,
        Target::Probe(table, "registry_key"),
        group,
        "Registry key (HKLM) of a DWORD flag",
    );
    add(
        name("RegistryValue"),
        ValueKind::Text,
        Target::Probe(table, "registry_value"),
        group,
        "and the flag's value name",
    );
    add(
        name("File"),
        ValueKind::Text,
        Target::Probe(table, "file"),
        group,
        "or: file to search",
    );
    add(
        name("Command"),
        ValueKind::Lines,
        Target::Probe(table, "command"),
        group,
        "or: command to run (one argument per line)",
    );
    add(
        name("Pattern"),
        ValueKind::Text,
        Target::Probe(table, "pattern"),
        group,
        "Pattern meaning yes",
    );
}

/// Action keys, their value-name stem, and whether only a server has them.
pub const ACTIONS: [(&str, &str, bool); 7] = [
    ("backup", "Backup", true),
    ("stop_services", "StopServices", false),
    ("install", "Install", false),
    ("start_services", "StartServices", false),
    ("reactivate_databases", "ReactivateDatabases", true),
    ("generate_web_app", "GenerateWebApp", true),
    ("restart", "Restart", false),
];

/// Whether the action may name Windows services instead of a command
/// (`<Action>WindowsServices`): stopping and starting the Password Secure
/// services on the hosts that run them.
fn takes_windows_services(role: Role, action: &str) -> bool {
    matches!(role, Role::Server | Role::AppServer)
        && matches!(action, "stop_services" | "start_services")
}

fn action_value_names(stem: &str) -> (&'static str, &'static str, &'static str, &'static str) {
    (
        leak(format!("{stem}Command")),
        leak(format!("{stem}TimeoutSeconds")),
        leak(format!("{stem}TransientExitCodes")),
        leak(format!("{stem}RestartExitCodes")),
    )
}

/// Names composed from a role and a stem. The table is built once per
/// process (`settings`), so these few strings live as long as it does.
fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// The ADMX groups of one component.
struct ComponentGroups {
    role: Role,
    version: Group,
    facts: Group,
    health: Group,
}

impl ComponentGroups {
    fn of(role: Role) -> Self {
        let stem = role_subkey(role);
        let title = role_title(role);
        Self {
            role,
            version: Group {
                id: leak(format!("{stem}Version")),
                title: leak(format!("{title}: how the installed version is read")),
                help: leak(format!(
                    "Makes this host report a `{role}` component and says how its installed version is read. Set exactly one of: the Uninstall entry whose DisplayName matches (its DisplayVersion is the version), an executable's file version, a text file, a command (with a pattern), or a fixed version. Leave every component unset to let the agent discover Password Secure itself."
                )),
            },
            facts: Group {
                id: leak(format!("{stem}Facts")),
                title: leak(format!("{title}: facts the rules need")),
                help: match role {
                    Role::Server => "Where the primary server's databases are listed: a file or a command printing JSON such as [{\"name\": \"PSDB\", \"active\": true, \"patch_level\": \"9.3.1.33994\"}].",
                    Role::Web => "The web server, the Web Application's document directory and package, and whether the WebSocket support the Web Application needs is present (IIS WebSocket Protocol, Apache proxy_wstunnel): a fixed answer, a DWORD flag in the registry, or a file or command whose text the pattern matches.",
                    Role::Client => "Whether \"Can search for updates\" is on for normal users (the vendor recommends off): a fixed answer, a DWORD flag in the registry, or a file or command whose text the pattern matches.",
                    Role::AppServer => "",
                },
            },
            health: Group {
                id: leak(format!("{stem}Health")),
                title: leak(format!("{title}: health checks after an update")),
                help: leak(format!(
                    "What must answer once an update left the `{role}` component running (after its services start; for a client after its install; for the Web Application after its deployment): ports that accept a connection, HTTPS addresses that answer 200, Windows services that run. The checks are repeated until all pass or the wait is over; if they do not pass, the step fails with every check's result and the rollout halts as for any failed step. Vendor ports: 11011 (clients and web server to the application server), 11014 (backup service), 11016 (web server to the application server)."
                )),
            },
        }
    }

    fn action(&self, action: &str) -> Group {
        let (_, stem, _) = ACTIONS
            .iter()
            .find(|(key, _, _)| *key == action)
            .copied()
            .unwrap_or((action, action, false));
        let services = if takes_windows_services(self.role, action) {
            format!(
                " Instead of a command, {stem}WindowsServices may name the Windows services (e.g. PsrBackupService and PsrServer, as `sc query` shows them; check the names on site): the agent then {} them through the Service Control Manager in the order their dependencies require, waits until each is {} within the time limit, and fails the step naming any service that is missing or does not get there. Set one of the two, not both; the exit code settings then do not apply.",
                if action == "stop_services" { "stops" } else { "starts" },
                if action == "stop_services" { "stopped" } else { "running" },
            )
        } else {
            String::new()
        };
        Group {
            id: leak(format!("{}{stem}", role_subkey(self.role))),
            title: leak(format!(
                "{}: {} command",
                role_title(self.role),
                action.replace('_', " ")
            )),
            help: leak(format!(
                "The local command the agent runs for the `{action}` step of a `{}` component. The controller sends only the typed action; the command comes from here or the agent's file, never from the controller. Exit codes 0, 3010 and 1641 are success (the last two: restart required).{services}",
                self.role
            )),
        }
    }
}

fn role_title(role: Role) -> &'static str {
    match role {
        Role::Server => "Application server (primary)",
        Role::AppServer => "Further application server",
        Role::Web => "Web Application host",
        Role::Client => "Windows client",
    }
}

/// The settings of one group, in table order.
pub fn groups(settings: &[Setting]) -> Vec<(Group, Vec<&Setting>)> {
    let mut out: Vec<(Group, Vec<&Setting>)> = Vec::new();
    for setting in settings {
        match out.iter_mut().find(|(g, _)| g.id == setting.group.id) {
            Some((_, list)) => list.push(setting),
            None => out.push((setting.group, vec![setting])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_names_are_unique_per_key() {
        let all = settings();
        let mut seen = std::collections::BTreeSet::new();
        for s in all {
            assert!(
                seen.insert((s.subkey(), s.value)),
                "{} {} twice",
                s.subkey(),
                s.value
            );
        }
        assert!(all.len() > 40, "{} settings", all.len());
    }

    #[test]
    fn group_ids_are_identifiers_and_unique() {
        let all = settings();
        let groups = groups(all);
        let mut ids = std::collections::BTreeSet::new();
        for (group, members) in &groups {
            assert!(
                group.id.chars().all(|c| c.is_ascii_alphanumeric()),
                "{}",
                group.id
            );
            assert!(ids.insert(group.id), "{} twice", group.id);
            // A group writes to one key, as an ADMX policy does.
            let keys: std::collections::BTreeSet<_> = members.iter().map(|s| s.subkey()).collect();
            assert_eq!(keys.len(), 1, "{} spans {keys:?}", group.id);
        }
    }

    #[test]
    fn paths_name_the_full_value() {
        let all = settings();
        let registry = all
            .iter()
            .find(|s| s.value == "VersionRegistry" && s.role == Some(Role::Client))
            .expect("client version registry");
        assert_eq!(
            registry.path(POLICY_KEY),
            r"HKLM\SOFTWARE\Policies\Tierwise\Agent\Components\Client\VersionRegistry"
        );
        assert!(!all
            .iter()
            .any(|s| s.role == Some(Role::Client) && s.value == "BackupCommand"));
        assert!(!all
            .iter()
            .any(|s| s.role == Some(Role::Web) && s.value == "InstallCommand"));
    }
}
