//! The configuration as a whole: documents parsed end to end, checked for
//! the settings they yield and for the errors (file, line, key, advice) they
//! are refused with.

use super::{parse, Source, VersionProbe};
use std::path::Path;
use std::time::Duration;
use tierwise_common::Role;

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
        (GOOD.replace("installation = ", "release_root_fingerprint = \"AB:CD\"\ninstallation = "), "line 3: `release_root_fingerprint`: `AB:CD` is not a root fingerprint: write the 64 hexadecimal digits `tierwise keys fingerprint ROOT.json` prints"),
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
    let install = settings.components[0].actions["install"]
        .command()
        .expect("a command");
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
fn a_pinned_release_root_is_kept_as_lowercase_hex() {
    let upper = "AB".repeat(32);
    let settings = parse(
        &GOOD.replace(
            "installation = ",
            &format!("release_root_fingerprint = {upper:?}\ninstallation = "),
        ),
        "agent.toml",
    )
    .unwrap();
    assert_eq!(
        settings.release_root.as_deref(),
        Some("ab".repeat(32).as_str())
    );
    assert_eq!(parse(GOOD, "agent.toml").unwrap().release_root, None);
}

#[test]
fn a_pinned_release_root_needs_the_installer_given_as_artifact() {
    let pinned = GOOD.replace(
        "installation = ",
        &format!(
            "release_root_fingerprint = \"{}\"\ninstallation = ",
            "ab".repeat(32)
        ),
    );
    let local = format!("{pinned}\n[component.actions]\ninstall = {{ command = [\"msiexec\", \"/i\", \"C:\\\\inst\\\\x.msi\"] }}\n");
    let err = error(&local);
    assert!(
        err.contains("`actions.install`: with `release_root_fingerprint` set, only the signed installer may run"),
        "{err}"
    );
    let signed = format!("{pinned}\n[component.actions]\ninstall = {{ command = [\"msiexec\", \"/i\", \"{{artifact}}\"] }}\n");
    assert!(parse(&signed, "agent.toml").is_ok());
}

#[test]
fn health_checks_are_read_with_their_defaults() {
    let text = format!(
        "{GOOD}health = {{ tcp = [\"localhost:11011\", \"[::1]:11014\"], https = [\"https://ps.corp.example:8443/status?x=1\", \"https://ps.corp.example\"] }}\n"
    );
    let settings = parse(&text, "agent.toml").unwrap();
    let health = settings.components[0].health.as_ref().expect("health");
    assert_eq!(health.wait, Duration::from_secs(120));
    let tcp: Vec<String> = health.tcp.iter().map(ToString::to_string).collect();
    assert_eq!(tcp, ["localhost:11011", "[::1]:11014"]);
    assert_eq!(health.https[0].host, "ps.corp.example");
    assert_eq!(health.https[0].port, 8443);
    assert_eq!(health.https[0].path, "/status?x=1");
    assert_eq!(health.https[1].port, 443);
    assert_eq!(health.https[1].path, "/");
    let text = format!("{GOOD}health = {{ https = [\"HTTPS://[::1]:8443?ready\"] }}\n");
    let settings = parse(&text, "agent.toml").unwrap();
    let https = &settings.components[0]
        .health
        .as_ref()
        .expect("health")
        .https[0];
    assert_eq!((https.host.as_str(), https.port), ("::1", 8443));
    assert_eq!(https.path, "/?ready");

    // The same as a table of its own, with a wait.
    let text =
        format!("{GOOD}[component.health]\ntcp = [\"ps-app-01:11016\"]\nwait_seconds = 300\n");
    let settings = parse(&text, "agent.toml").unwrap();
    let health = settings.components[0].health.as_ref().expect("health");
    assert_eq!(health.wait, Duration::from_secs(300));
}

#[test]
fn wrong_health_checks_are_refused_with_what_to_write() {
    let with = |health: &str| error(&format!("{GOOD}health = {health}\n"));
    let e = with("{ tcp = [\"ps-app-01\"] }");
    assert!(
        e.contains("component `server`: `health`") && e.contains("not HOST:PORT"),
        "{e}"
    );
    let e = with("{ tcp = [\"ps-app-01:0\"] }");
    assert!(e.contains("not HOST:PORT"), "{e}");
    for bad in [
        "::1:11011",
        "host:+80",
        "[::1:80",
        "[::1]",
        "host:",
        ":80",
        "host:99999",
    ] {
        let e = with(&format!("{{ tcp = [\"{bad}\"] }}"));
        assert!(e.contains("not HOST:PORT"), "{bad}: {e}");
    }
    let e = with("{ https = [\"https://ps.corp.example:0/\"] }");
    assert!(e.contains("no usable port"), "{e}");
    let e = with("{ https = [\"http://ps.corp.example/\"] }");
    assert!(e.contains("is not an https:// URL"), "{e}");
    let e = with("{ https = [\"https://user@ps.corp.example/\"] }");
    assert!(e.contains("user name"), "{e}");
    let e = with("{ wait_seconds = 30 }");
    assert!(e.contains("names no check"), "{e}");
    let e = with("{ tcp = [\"a:1\"], ca_file = \"/etc/ca.pem\" }");
    assert!(e.contains("`ca_file` is for the `https` checks"), "{e}");
    let e = with("{ tcp = [\"a:1\"], wait_seconds = 0 }");
    assert!(e.contains("between 1 and 3600"), "{e}");
    let e = with("{ tcp = [\"a:1\"], ports = [1] }");
    assert!(e.contains("unknown field `ports`"), "{e}");
    if !cfg!(windows) {
        let e = with("{ services = [\"PasswordSecureServer\"] }");
        assert!(e.contains("works only on Windows"), "{e}");
    }
}

#[test]
fn a_backup_names_where_its_backups_land() {
    let with = |actions: &str| format!("{GOOD}\n[component.actions]\n{actions}\n");
    let settings = parse(
        &with(r#"backup = { command = ["b"], backup_directory = "/srv/backups", backup_pattern = "PSDB_*.bak" }"#),
        "agent.toml",
    )
    .unwrap();
    let location = settings.components[0]
        .backup_location
        .as_ref()
        .expect("a location");
    assert_eq!(location.directory, Path::new("/srv/backups"));
    assert_eq!(location.pattern.to_string(), "PSDB_*.bak");
    let settings = parse(
        &with(r#"backup = { command = ["b"], backup_directory = "/srv/backups" }"#),
        "agent.toml",
    )
    .unwrap();
    assert_eq!(
        settings.components[0]
            .backup_location
            .as_ref()
            .expect("a location")
            .pattern
            .to_string(),
        "*"
    );
    for (actions, expected) in [
        (
            r#"backup = { command = ["b"], backup_pattern = "*.bak" }"#,
            "`backup_pattern` needs `backup_directory`",
        ),
        (
            r#"backup = { command = ["b"], backup_directory = "backups" }"#,
            "must be an absolute path",
        ),
        (
            r#"backup = { command = ["b"], backup_directory = "/b", backup_pattern = "x/*.bak" }"#,
            "is a file name pattern",
        ),
        (
            r#"stop_services = { command = ["s"], backup_directory = "/b" }"#,
            "belong to the `backup` action",
        ),
        (
            r#"backup = { command = ["b"], backup_directory = "/b", backup_pattern = "{date}_*.bak" }"#,
            "may fill in only `{database}` (each database's name), not `{date}`",
        ),
        (
            // Which databases there are is the databases probe's to say.
            r#"backup = { command = ["b"], backup_directory = "/b", backup_pattern = "{database}_*.bak" }"#,
            "has no `databases` probe",
        ),
    ] {
        let e = error(&with(actions));
        assert!(e.contains(expected), "{actions}: {e}");
    }
}

#[test]
fn stop_and_start_services_may_name_windows_services_instead_of_a_command() {
    let with = |role: &str, actions: &str| {
        format!(
            "{}[component.actions]\n{actions}\n",
            GOOD.replace("role = \"server\"", &format!("role = \"{role}\""))
        )
    };
    let services = r#"stop_services = { windows_services = ["PsrBackupService", "PsrServer"], timeout_seconds = 300 }"#;
    for role in ["server", "app_server"] {
        match parse(&with(role, services), "agent.toml") {
            Ok(settings) if cfg!(windows) => assert_eq!(
                settings.components[0].actions["stop_services"],
                super::ConfiguredAction::WindowsServices(super::WindowsServicesAction {
                    services: vec!["PsrBackupService".into(), "PsrServer".into()],
                    timeout: Duration::from_secs(300),
                })
            ),
            Err(e) if !cfg!(windows) => {
                let e = e.to_string();
                assert!(
                    e.contains("line 12: component `")
                        && e.contains("`actions.stop_services`: `windows_services` needs Windows")
                        && e.ends_with("use `command = [...]` here"),
                    "{e}"
                );
            }
            other => panic!("{role}: {other:?}"),
        }
    }
}

#[test]
fn windows_services_are_refused_where_they_cannot_work_with_the_reason() {
    for (role, action, expected) in [
        (
            "server",
            r#"stop_services = { command = ["x"], windows_services = ["PsrServer"] }"#,
            "give either `command` or `windows_services`, not both",
        ),
        (
            "server",
            r#"stop_services = { timeout_seconds = 60 }"#,
            "say how: `command = [\"program\", \"arg\"]`, or on Windows `windows_services = [\"NAME\", ...]`",
        ),
        (
            "server",
            r#"install = { timeout_seconds = 60 }"#,
            "needs `command`, at least the program",
        ),
        (
            "server",
            r#"install = { windows_services = ["PsrServer"] }"#,
            "`windows_services` is for `stop_services` and `start_services`; `install` needs `command = [...]`",
        ),
        (
            "client",
            r#"start_services = { windows_services = ["PsrServer"] }"#,
            "for the Password Secure services of a `server` or `app_server` component",
        ),
        (
            "server",
            r#"stop_services = { windows_services = [] }"#,
            "`windows_services` names no service",
        ),
        (
            "server",
            r#"stop_services = { windows_services = ["PsrServer", ""] }"#,
            "`windows_services`: `` is empty; give the name `sc query` shows as SERVICE_NAME",
        ),
        (
            "server",
            r#"stop_services = { windows_services = [" PsrServer"] }"#,
            "` PsrServer` has spaces around it",
        ),
        (
            "server",
            r#"start_services = { windows_services = ['Psr\Server'] }"#,
            "has a `/` or `\\`",
        ),
        (
            "server",
            r#"start_services = { windows_services = ["Psr\tServer"] }"#,
            "`Psr\\tServer` has a control character",
        ),
        (
            "server",
            r#"start_services = { windows_services = ["+NetworkProvider"] }"#,
            "names a load-order group",
        ),
        (
            "server",
            r#"stop_services = { windows_services = ["PsrServer", "psrserver"] }"#,
            "names `psrserver` twice (service names ignore case)",
        ),
        (
            "server",
            r#"stop_services = { windows_services = ["PsrServer"], restart_exit_codes = [3010] }"#,
            "exit codes belong to a `command`",
        ),
        (
            "server",
            r#"stop_services = { windows_services = ["PsrServer"], timeout_seconds = 0 }"#,
            "`timeout_seconds` must be between 1 and 86400",
        ),
        (
            "server",
            r#"stop_services = { windows_services = ["PsrServer"], backup_directory = "/b" }"#,
            "belong to the `backup` action",
        ),
        ("server", r#"stop_services = { windows_services = "PsrServer" }"#, "invalid type"),
    ] {
        let text = format!(
            "{}[component.actions]\n{action}\n",
            GOOD.replace("role = \"server\"", &format!("role = \"{role}\""))
        );
        let e = error(&text);
        assert!(e.contains(expected), "{action}: {e}");
        assert!(e.contains("line 12"), "{action}: {e}");
    }
    let long = "S".repeat(257);
    let e = error(&format!(
        "{GOOD}[component.actions]\nstop_services = {{ windows_services = [\"{long}\"] }}\n"
    ));
    assert!(e.contains("is longer than a service name can be"), "{e}");
    let many: Vec<String> = (0..33).map(|i| format!("\"S{i}\"")).collect();
    let e = error(&format!(
        "{GOOD}[component.actions]\nstop_services = {{ windows_services = [{}] }}\n",
        many.join(", ")
    ));
    assert!(e.contains("names 33 services; at most 32"), "{e}");
}

#[test]
fn a_backup_pattern_may_name_each_database() {
    let text = GOOD.replace(
        "version = { file = \"/opt/password-secure/server/VERSION\" }",
        "version = { file = \"/opt/password-secure/server/VERSION\" }\ndatabases = { file = \"/opt/ps/databases.json\" }",
    ) + "\n[component.actions]\nbackup = { command = [\"b\"], backup_directory = \"/srv/backups\", backup_pattern = \"{database}_*.bak\" }\n";
    let settings = parse(&text, "agent.toml").unwrap();
    let location = settings.components[0]
        .backup_location
        .as_ref()
        .expect("a location");
    assert!(location.pattern.names_database());
    assert!(location.pattern.matches("PSDB_1.BAK", Some("psdb")));
}
