//! The typed actions a rollout asks an agent to perform, and how their
//! outcome is read. The controller never sends command text: an action names
//! what to do, and the agent runs what its own configuration defines for it.

use crate::{Role, Version};
use serde::{Deserialize, Serialize};

/// One thing a step does on a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum StepAction {
    /// Run the configured backup on the primary server.
    Backup,
    StopServices {
        role: Role,
    },
    /// Install `version` of the role's component over the existing one.
    InstallComponent {
        role: Role,
        version: Version,
        /// The installer the agent must use; verified before it runs.
        #[serde(skip_serializing_if = "Option::is_none")]
        artifact_sha256: Option<String>,
    },
    StartServices {
        role: Role,
    },
    /// Reactivate the databases, which raises their patch level.
    ReactivateDatabases {
        version: Version,
    },
    /// Generate the Web Application packages of `version` in the Server
    /// Manager, one for each kind of web server (a site's own command).
    GenerateWebApp {
        version: Version,
        web_servers: Vec<crate::WebServerKind>,
    },
    /// Replace the Web Application in the document directory.
    DeployWebApp {
        version: Version,
        #[serde(skip_serializing_if = "Option::is_none")]
        artifact_sha256: Option<String>,
    },
    /// Probe now and report the inventory.
    Reprobe,
    /// Restart the host to finish a step of `role`'s component; the command
    /// is the host's own (on Windows by default a delayed `shutdown /r`).
    Restart {
        role: Role,
    },
}

impl StepAction {
    /// The configuration key of the command that performs this action.
    pub const fn config_key(&self) -> &'static str {
        match self {
            StepAction::Backup => "backup",
            StepAction::StopServices { .. } => "stop_services",
            StepAction::InstallComponent { .. } => "install",
            StepAction::StartServices { .. } => "start_services",
            StepAction::ReactivateDatabases { .. } => "reactivate_databases",
            StepAction::DeployWebApp { .. } => "deploy_web_app",
            StepAction::GenerateWebApp { .. } => "generate_web_app",
            StepAction::Reprobe => "reprobe",
            StepAction::Restart { .. } => "restart",
        }
    }

    /// The role whose configuration defines the command.
    pub const fn role(&self) -> Option<Role> {
        match self {
            StepAction::Backup
            | StepAction::ReactivateDatabases { .. }
            | StepAction::GenerateWebApp { .. } => Some(Role::Server),
            StepAction::StopServices { role }
            | StepAction::StartServices { role }
            | StepAction::InstallComponent { role, .. }
            | StepAction::Restart { role } => Some(*role),
            StepAction::DeployWebApp { .. } => Some(Role::Web),
            StepAction::Reprobe => None,
        }
    }

    /// Sets the installer an install or deploy needs, from the stored
    /// installers by role.
    pub fn attach_artifact(&mut self, installers: &std::collections::BTreeMap<Role, String>) {
        match self {
            StepAction::InstallComponent {
                role,
                artifact_sha256,
                ..
            } => {
                *artifact_sha256 = installers.get(role).cloned();
            }
            StepAction::DeployWebApp {
                artifact_sha256, ..
            } => {
                *artifact_sha256 = installers.get(&Role::Web).cloned();
            }
            _ => {}
        }
    }

    /// The installer this step needs, by SHA-256.
    pub fn artifact(&self) -> Option<&str> {
        match self {
            StepAction::InstallComponent {
                artifact_sha256, ..
            }
            | StepAction::DeployWebApp {
                artifact_sha256, ..
            } => artifact_sha256.as_deref(),
            _ => None,
        }
    }

    /// The component whose post-update health checks run after this step
    /// succeeds: the step that leaves it running again — `start_services`
    /// of a server or application server, the Web Application's
    /// deployment, and a client's install (a client has no services).
    pub const fn health_checked(&self) -> Option<Role> {
        match self {
            StepAction::StartServices { role } => Some(*role),
            StepAction::DeployWebApp { .. } => Some(Role::Web),
            StepAction::InstallComponent {
                role: Role::Client, ..
            } => Some(Role::Client),
            _ => None,
        }
    }

    /// The version the action moves to, for the `{version}` placeholder.
    pub const fn version(&self) -> Option<Version> {
        match self {
            StepAction::InstallComponent { version, .. }
            | StepAction::ReactivateDatabases { version }
            | StepAction::GenerateWebApp { version, .. }
            | StepAction::DeployWebApp { version, .. } => Some(*version),
            _ => None,
        }
    }
}

/// A backup file a verified backup step found: for one database (or, when
/// the server names none, for the whole server), the newest non-empty file
/// matching the configured pattern that appeared after the step started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFile {
    /// The database it protects; `None` when the server reports no
    /// databases and one file stands for the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    pub path: String,
    pub size: u64,
    /// When it was last written (Unix ms).
    pub modified_ms: i64,
}

/// How a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    Succeeded,
    /// Succeeded; the host must restart to finish (MSI 3010, 1641).
    SucceededRestartRequired,
    Failed,
    /// Failed for a reason that may pass on its own (another installation
    /// running, MSI 1618); the controller may retry.
    FailedTransient,
    /// The agent stopped while the step ran; its effect is unknown.
    Interrupted,
}

impl StepOutcome {
    pub const fn succeeded(self) -> bool {
        matches!(
            self,
            StepOutcome::Succeeded | StepOutcome::SucceededRestartRequired
        )
    }
}

/// Windows Installer: "another installation is already in progress".
pub const MSI_ALREADY_RUNNING: i32 = 1618;
/// Windows Installer: success, restart required.
pub const MSI_RESTART_REQUIRED: i32 = 3010;
/// Windows Installer: success, restart initiated.
pub const MSI_RESTART_STARTED: i32 = 1641;

/// The exit codes that mean "succeeded, restart required" unless an
/// action's configuration says otherwise.
pub const DEFAULT_RESTART_EXIT_CODES: [i32; 2] = [MSI_RESTART_REQUIRED, MSI_RESTART_STARTED];

/// Reads an installer's exit code: 0 succeeds; codes in `restart` (by
/// default 3010 and 1641) succeed with a restart required; codes in
/// `transient` (by default 1618) may be retried; anything else, or no code
/// at all (killed), fails.
pub fn interpret_exit_code(code: Option<i32>, transient: &[i32], restart: &[i32]) -> StepOutcome {
    match code {
        Some(0) => StepOutcome::Succeeded,
        Some(code) if restart.contains(&code) => StepOutcome::SucceededRestartRequired,
        Some(code) if transient.contains(&code) => StepOutcome::FailedTransient,
        _ => StepOutcome::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_checks_follow_the_step_that_leaves_a_component_running() {
        let v: Version = "9.3.1.33994".parse().expect("version");
        let install = |role| StepAction::InstallComponent {
            role,
            version: v,
            artifact_sha256: None,
        };
        assert_eq!(
            StepAction::StartServices { role: Role::Server }.health_checked(),
            Some(Role::Server)
        );
        assert_eq!(
            StepAction::StartServices {
                role: Role::AppServer
            }
            .health_checked(),
            Some(Role::AppServer)
        );
        assert_eq!(
            StepAction::DeployWebApp {
                version: v,
                artifact_sha256: None
            }
            .health_checked(),
            Some(Role::Web)
        );
        assert_eq!(install(Role::Client).health_checked(), Some(Role::Client));
        // A server's install is followed by its start: checked then.
        assert_eq!(install(Role::Server).health_checked(), None);
        assert_eq!(StepAction::Backup.health_checked(), None);
        assert_eq!(
            StepAction::StopServices { role: Role::Server }.health_checked(),
            None
        );
        assert_eq!(
            StepAction::ReactivateDatabases { version: v }.health_checked(),
            None
        );
        assert_eq!(
            StepAction::Restart { role: Role::Client }.health_checked(),
            None
        );
    }

    #[test]
    fn installer_exit_codes() {
        let transient = [MSI_ALREADY_RUNNING];
        assert_eq!(
            interpret_exit_code(Some(0), &transient, &DEFAULT_RESTART_EXIT_CODES),
            StepOutcome::Succeeded
        );
        assert_eq!(
            interpret_exit_code(Some(3010), &transient, &DEFAULT_RESTART_EXIT_CODES),
            StepOutcome::SucceededRestartRequired
        );
        assert_eq!(
            interpret_exit_code(Some(1641), &transient, &DEFAULT_RESTART_EXIT_CODES),
            StepOutcome::SucceededRestartRequired
        );
        assert_eq!(
            interpret_exit_code(Some(1618), &transient, &DEFAULT_RESTART_EXIT_CODES),
            StepOutcome::FailedTransient
        );
        assert_eq!(
            interpret_exit_code(Some(1603), &transient, &DEFAULT_RESTART_EXIT_CODES),
            StepOutcome::Failed
        );
        assert_eq!(
            interpret_exit_code(None, &transient, &DEFAULT_RESTART_EXIT_CODES),
            StepOutcome::Failed
        );
        assert_eq!(
            interpret_exit_code(Some(194), &transient, &[194]),
            StepOutcome::SucceededRestartRequired,
            "an installer with its own restart code"
        );
        assert!(StepOutcome::SucceededRestartRequired.succeeded());
        assert!(!StepOutcome::Interrupted.succeeded());
    }

    #[test]
    fn actions_name_their_command_and_role() {
        let install = StepAction::InstallComponent {
            role: Role::Client,
            version: Version::new(26, 3, 100, 34058),
            artifact_sha256: None,
        };
        assert_eq!(install.config_key(), "install");
        assert_eq!(install.role(), Some(Role::Client));
        assert_eq!(install.version(), Some(Version::new(26, 3, 100, 34058)));
        assert_eq!(StepAction::Backup.role(), Some(Role::Server));
        let json = serde_json::to_string(&install).unwrap();
        assert_eq!(
            json,
            r#"{"action":"install_component","role":"client","version":"26.3.100.34058"}"#
        );
        assert_eq!(serde_json::from_str::<StepAction>(&json).unwrap(), install);
    }
}
