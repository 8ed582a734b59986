//! The actions of a component (`[component.actions]`): how each typed
//! action the controller may send is performed on this host, checked once
//! at start. Pure, like the rest of validation: no file is read here.

use super::raw::RawAction;
use super::{
    ActionCommand, BackupLocation, ConfiguredAction, WindowsServicesAction,
    DEFAULT_ACTION_TIMEOUT_SECONDS, PLACEHOLDERS,
};
use std::time::Duration;
use tierwise_common::Role;

/// The most services one action may name: Password Secure has two; a list
/// much longer than that is a mistake, not a server.
const MAX_WINDOWS_SERVICES: usize = 32;
/// Windows' limit on a service name.
const MAX_SERVICE_NAME_CHARS: usize = 256;

/// The action `key` of a `role` component as written: a command, or the
/// Windows services to stop or start — exactly one of them.
pub(super) fn configured_action(
    key: &str,
    role: Role,
    raw: &RawAction,
) -> Result<ConfiguredAction, String> {
    match (&raw.command, &raw.windows_services) {
        (Some(_), Some(_)) => Err("give either `command` or `windows_services`, not both".into()),
        (Some(argv), None) => action_command(argv, raw).map(ConfiguredAction::Command),
        (None, Some(names)) => {
            let services = windows_services(key, role, names, raw)?;
            // Last, so that everything else about the list is checked on
            // any machine (and in the tests, which run on Linux).
            if !cfg!(windows) {
                return Err("`windows_services` needs Windows: the Service Control Manager works only on Windows; use `command = [...]` here".into());
            }
            Ok(ConfiguredAction::WindowsServices(services))
        }
        (None, None) if is_services_action(key) => Err(
            "say how: `command = [\"program\", \"arg\"]`, or on Windows `windows_services = [\"NAME\", ...]` as `sc query` names them".into(),
        ),
        (None, None) => Err(
            "needs `command`, at least the program, e.g. [\"msiexec\", \"/i\", \"{artifact}\", \"/qn\"]".into(),
        ),
    }
}

fn is_services_action(key: &str) -> bool {
    matches!(key, "stop_services" | "start_services")
}

/// `windows_services`: only where Password Secure's services are stopped
/// and started, with names Windows could have, each once.
fn windows_services(
    key: &str,
    role: Role,
    names: &[String],
    raw: &RawAction,
) -> Result<WindowsServicesAction, String> {
    if !is_services_action(key) {
        return Err(format!(
            "`windows_services` is for `stop_services` and `start_services`; `{key}` needs `command = [...]`"
        ));
    }
    if !matches!(role, Role::Server | Role::AppServer) {
        return Err("`windows_services` is for the Password Secure services of a `server` or `app_server` component; use `command = [...]` here".into());
    }
    if raw.transient_exit_codes.is_some() || raw.restart_exit_codes.is_some() {
        return Err("exit codes belong to a `command`; with `windows_services` the step checks each service's state instead".into());
    }
    if names.is_empty() {
        return Err("`windows_services` names no service; give them as `sc query` shows them, e.g. [\"PsrBackupService\", \"PsrServer\"]".into());
    }
    if names.len() > MAX_WINDOWS_SERVICES {
        return Err(format!(
            "`windows_services` names {} services; at most {MAX_WINDOWS_SERVICES}",
            names.len()
        ));
    }
    for (i, name) in names.iter().enumerate() {
        if let Some(why) = service_name_problem(name) {
            return Err(format!(
                "`windows_services`: `{}` {why}; give the name `sc query` shows as SERVICE_NAME, e.g. \"PsrServer\"",
                name.escape_debug()
            ));
        }
        // The Service Control Manager ignores case in names.
        if names[..i]
            .iter()
            .any(|earlier| earlier.to_lowercase() == name.to_lowercase())
        {
            return Err(format!(
                "`windows_services` names `{name}` twice (service names ignore case)"
            ));
        }
    }
    Ok(WindowsServicesAction {
        services: names.to_vec(),
        timeout: timeout_of(raw)?,
    })
}

/// Why `name` cannot be the name of a Windows service, if it cannot.
fn service_name_problem(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        Some("is empty")
    } else if name.trim() != name {
        Some("has spaces around it")
    } else if name.chars().count() > MAX_SERVICE_NAME_CHARS {
        Some("is longer than a service name can be (256 characters)")
    } else if name.contains(['/', '\\']) {
        Some("has a `/` or `\\`, which a service name cannot have")
    } else if name.chars().any(char::is_control) {
        Some("has a control character")
    } else if name.starts_with('+') {
        Some("starts with `+`, which names a load-order group, not a service")
    } else {
        None
    }
}

/// `timeout_seconds`: the step's time limit, whatever performs it.
fn timeout_of(raw: &RawAction) -> Result<Duration, String> {
    let timeout = raw
        .timeout_seconds
        .unwrap_or(DEFAULT_ACTION_TIMEOUT_SECONDS);
    if !(1..=86_400).contains(&timeout) {
        return Err("`timeout_seconds` must be between 1 and 86400".into());
    }
    Ok(Duration::from_secs(u64::from(timeout)))
}

/// `backup_directory` and `backup_pattern`: only on the backup action.
pub(super) fn backup_location_of(
    key: &str,
    raw: &RawAction,
    facts: &super::FactsSpec,
) -> Result<Option<BackupLocation>, String> {
    match (&raw.backup_directory, &raw.backup_pattern) {
        (None, None) => Ok(None),
        _ if key != "backup" => {
            Err("`backup_directory` and `backup_pattern` belong to the `backup` action".into())
        }
        (None, Some(_)) => {
            Err("`backup_pattern` needs `backup_directory`, where the backups land".into())
        }
        (Some(directory), pattern) => {
            if directory.as_os_str().is_empty() || !directory.is_absolute() {
                return Err(format!(
                    "`backup_directory` must be an absolute path, not `{}`",
                    directory.display()
                ));
            }
            let pattern: tierwise_common::backup::BackupPattern = pattern
                .as_deref()
                .unwrap_or("*")
                .parse()
                .map_err(|e: tierwise_common::backup::BackupPatternError| e.to_string())?;
            if pattern.names_database()
                && !matches!(facts, super::FactsSpec::Server { databases: Some(_) })
            {
                return Err(format!(
                    "`backup_pattern` `{pattern}` names `{{database}}`, but this component has no `databases` probe to say which databases there are; add one, or name the files without `{{database}}`"
                ));
            }
            Ok(Some(BackupLocation {
                directory: directory.clone(),
                pattern,
            }))
        }
    }
}

fn action_command(argv: &[String], raw: &RawAction) -> Result<ActionCommand, String> {
    if argv.first().is_none_or(|p| p.trim().is_empty()) {
        return Err("`command` needs at least the program, e.g. [\"msiexec\", \"/i\", \"{artifact}\", \"/qn\"]".into());
    }
    for arg in argv {
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
    Ok(ActionCommand {
        argv: argv.to_vec(),
        timeout: timeout_of(raw)?,
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
pub(super) fn default_windows_restart() -> ActionCommand {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawAction {
        toml::from_str(text).expect("an action table")
    }

    /// What a Windows host keeps of a valid list, checked on any host (the
    /// configuration refuses it off Windows only after every other check).
    #[test]
    fn a_valid_list_keeps_its_names_as_written_and_the_time_limit() {
        let names = vec!["PsrBackupService".to_owned(), "PsrServer".to_owned()];
        let action = windows_services(
            "stop_services",
            Role::AppServer,
            &names,
            &raw("timeout_seconds = 300"),
        )
        .expect("valid");
        assert_eq!(
            action,
            WindowsServicesAction {
                services: names.clone(),
                timeout: Duration::from_secs(300),
            }
        );
        let action =
            windows_services("start_services", Role::Server, &names, &raw("")).expect("valid");
        assert_eq!(
            action.timeout,
            Duration::from_secs(u64::from(DEFAULT_ACTION_TIMEOUT_SECONDS))
        );
    }
}
