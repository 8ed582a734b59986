//! The actions of a component (`[component.actions]`): how each typed
//! action the controller may send is performed on this host, checked once
//! at start. Pure, like the rest of validation: no file is read here.

use super::raw::RawActionCommand;
use super::{ActionCommand, BackupLocation, DEFAULT_ACTION_TIMEOUT_SECONDS, PLACEHOLDERS};
use std::time::Duration;

/// `backup_directory` and `backup_pattern`: only on the backup action.
pub(super) fn backup_location_of(
    key: &str,
    raw: &RawActionCommand,
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
            let pattern = pattern.clone().unwrap_or_else(|| "*".to_owned());
            if pattern.trim().is_empty() || pattern.contains(['/', '\\']) {
                return Err(format!(
                    "`backup_pattern` is a file name pattern such as \"PSDB_*.bak\" (`*` and `?`), not `{pattern}`"
                ));
            }
            Ok(Some(BackupLocation {
                directory: directory.clone(),
                pattern,
            }))
        }
    }
}

pub(super) fn action_command(raw: &RawActionCommand) -> Result<ActionCommand, String> {
    if raw.command.first().is_none_or(|p| p.trim().is_empty()) {
        return Err("`command` needs at least the program, e.g. [\"msiexec\", \"/i\", \"{artifact}\", \"/qn\"]".into());
    }
    for arg in &raw.command {
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
    let timeout = raw
        .timeout_seconds
        .unwrap_or(DEFAULT_ACTION_TIMEOUT_SECONDS);
    if !(1..=86_400).contains(&timeout) {
        return Err("`timeout_seconds` must be between 1 and 86400".into());
    }
    Ok(ActionCommand {
        argv: raw.command.clone(),
        timeout: Duration::from_secs(u64::from(timeout)),
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
