//! Operator tasks: the steps of the vendor's procedure that a host has no
//! command for. The vendor documents the backup, the Server Manager's
//! install and the databases' reactivation only as buttons and wizards in
//! the Server Manager, so a site may have no command line for them. Such a
//! step becomes a task for a person: the rollout stops there, says exactly
//! what to do, waits for `tierwise rollout done`, and then checks what the
//! agents can report before it goes on. A task is never a silent pass.

use crate::plan::{Action, DatabaseChange};
use crate::Version;
use serde::{Deserialize, Serialize};

/// What a person does by hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString)]
#[cfg_attr(test, derive(strum::EnumIter))]
#[strum(serialize_all = "snake_case")]
pub enum TaskKind {
    /// Start the backup profile in the Server Manager.
    Backup,
    /// Install the Server Manager with its wizard.
    InstallServer,
    /// Reactivate the databases in the Server Manager's ribbon.
    ReactivateDatabases,
    /// Generate the Web Application for each kind of web server.
    GenerateWebApp,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }

    /// The task a planned action becomes when its host has no command for
    /// it; `None` for actions that are never done by hand.
    pub const fn of(action: Action) -> Option<Self> {
        match action {
            Action::Backup => Some(TaskKind::Backup),
            Action::InstallServer => Some(TaskKind::InstallServer),
            Action::ReactivateDatabases => Some(TaskKind::ReactivateDatabases),
            Action::GenerateWebApp => Some(TaskKind::GenerateWebApp),
            _ => None,
        }
    }

    /// The agent's configuration key whose command would do it instead.
    pub const fn config_key(self) -> &'static str {
        match self {
            TaskKind::Backup => "backup",
            TaskKind::InstallServer => "install",
            TaskKind::ReactivateDatabases => "reactivate_databases",
            TaskKind::GenerateWebApp => "generate_web_app",
        }
    }

    /// A short name for lists: "reactivate the databases".
    pub const fn title(self) -> &'static str {
        match self {
            TaskKind::Backup => "back up the databases",
            TaskKind::InstallServer => "install the Server Manager",
            TaskKind::ReactivateDatabases => "reactivate the databases",
            TaskKind::GenerateWebApp => "generate the Web Application",
        }
    }

    /// Whether the installation is out of service while the task is open:
    /// from the server's install until its databases are reactivated
    /// nobody can log in.
    pub const fn installation_down(self) -> bool {
        matches!(
            self,
            TaskKind::InstallServer | TaskKind::ReactivateDatabases
        )
    }
}

/// A step a person does, as a rollout keeps it: what they were told, how
/// it is checked, and who said it is done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorTask {
    pub kind: TaskKind,
    pub instructions: String,
    pub observable: bool,
    pub verification: String,
    /// The operator who said it is done (empty until then).
    #[serde(default)]
    pub done_by: String,
    #[serde(default)]
    pub done_at_ms: Option<i64>,
    #[serde(default)]
    pub note: String,
}

/// Where a task stands, as `rollout status` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum TaskState {
    /// The rollout has not reached it yet.
    Pending,
    /// Reached: the rollout waits for a person.
    Open,
    /// An operator said it is done; the agents do not show it yet.
    Done,
    /// Done, and what the agents report agrees (or nothing can show it).
    Verified,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What the instructions of one task name.
#[derive(Clone, Copy, Debug)]
pub struct TaskContext<'a> {
    pub kind: TaskKind,
    pub host_id: &'a str,
    /// The server's version now.
    pub from: Option<Version>,
    pub to: Version,
    /// The databases the server reports (for a reactivation: those raised).
    pub databases: &'a [DatabaseChange],
    /// The rollout and the task's id, once the rollout exists; the plan
    /// shows placeholders.
    pub ids: Option<(&'a str, &'a str)>,
    /// For the Web Application: the kinds of web server it is made for,
    /// and where the server's agent picks the packages up.
    pub web_servers: &'a [crate::WebServerKind],
    pub web_app_output: Option<&'a str>,
}

/// How the rollout checks a task once an operator said it is done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Something the agents report shows whether it was done.
    pub observable: bool,
    /// What is checked, or that nothing can be.
    pub text: String,
}

fn names(databases: &[DatabaseChange]) -> String {
    databases
        .iter()
        .map(|d| match d.from {
            Some(level) => format!("{} (patch level {level})", d.name),
            None => d.name.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn kinds(web_servers: &[crate::WebServerKind]) -> String {
    web_servers
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// What the rollout checks after `done`, from what the server's agent
/// reports (`databases`: whether it reports any).
pub fn verification(kind: TaskKind, host_id: &str, to: Version, databases: bool) -> Verification {
    match kind {
        TaskKind::GenerateWebApp => Verification {
            observable: true,
            text: format!(
                "the controller must hold a Web Application package of {to} for each kind of web server (and, where releases are signed, signed metadata covering it); each web host then gets the one for its kind"
            ),
        },
        TaskKind::Backup => Verification {
            observable: false,
            text: format!(
                "nothing the agents report shows a backup made by hand: the rollout goes on on `done` alone (a backup action with `backup_directory` on {host_id} would verify its files)"
            ),
        },
        TaskKind::InstallServer => Verification {
            observable: true,
            text: format!("{host_id} must report server {to}"),
        },
        TaskKind::ReactivateDatabases if databases => Verification {
            observable: true,
            text: format!("every database on {host_id} must report active at patch level {to}"),
        },
        TaskKind::ReactivateDatabases => Verification {
            observable: false,
            text: format!(
                "{host_id} reports no databases (no `databases` probe), so nothing can show the reactivation: the rollout goes on on `done` alone"
            ),
        },
    }
}

/// How a plan's instructions say a task is done, before the rollout and
/// the task have ids.
pub const DONE_PLACEHOLDER: &str = "`tierwise rollout done ROLLOUT TASK`";

fn add_command(to: Version) -> String {
    format!("`tierwise artifacts add FILE --release {to} --component web --web-server KIND`")
}

/// The instructions a person follows, precise enough to act on without
/// the manual: the host, the button, the release, the databases by name,
/// and how to say it is done.
pub fn instructions(ctx: &TaskContext<'_>) -> String {
    let host = ctx.host_id;
    let to = ctx.to;
    let done = match ctx.ids {
        Some((rollout, task)) => format!("`tierwise rollout done {rollout} {task}`"),
        None => DONE_PLACEHOLDER.to_owned(),
    };
    let databases = if ctx.databases.is_empty() {
        "every database it manages".to_owned()
    } else {
        format!("the databases {}", names(ctx.databases))
    };
    match ctx.kind {
        TaskKind::Backup => format!(
            "On {host}, open the Server Manager, start the backup profile (Backup management, in the ribbon) for {databases} and wait until it has finished; then {done}. The server is updated only after that."
        ),
        TaskKind::InstallServer => format!(
            "On {host}, install the Server Manager {to} over the existing one{from} with its installation wizard; end the Password Secure services when the wizard offers to, and have the Server Manager's database password at hand. Then {done}.",
            from = ctx
                .from
                .map(|v| format!(" ({v})"))
                .unwrap_or_default(),
        ),
        TaskKind::ReactivateDatabases => format!(
            "On {host}, log in to the Server Manager {to}, open the module Databases and reactivate {databases} with the button in the ribbon; this raises their patch level to {to}. Then {done}. Nobody can log in until it is done."
        ),
        TaskKind::GenerateWebApp => {
            let kinds = kinds(ctx.web_servers);
            let hand_over = match ctx.web_app_output {
                Some(dir) => format!(
                    "save each ZIP in its own folder under {dir} ({}), where the server's agent picks it up and hands it to the controller, or add it with {}",
                    ctx.web_servers
                        .iter()
                        .map(|k| format!("{dir}/{}", k.as_str()))
                        .collect::<Vec<_>>()
                        .join(", "),
                    add_command(to)
                ),
                None => format!("add each ZIP with {}", add_command(to)),
            };
            format!(
                "On {host}, log in to the Server Manager {to} and generate the Web Application for {kinds} (one package per kind of web server; it carries this installation's server address and port); {hand_over}. Where releases are signed, sign each package offline (`tierwise keys release … --installer FILE={to}:web`) and import the metadata. Then {done}."
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    fn v(text: &str) -> Version {
        text.parse().expect("version")
    }

    #[test]
    fn every_task_names_its_host_release_and_how_to_finish() {
        let databases = [
            DatabaseChange {
                name: "PSDB".into(),
                from: Some(v("9.3.1.33994")),
            },
            DatabaseChange {
                name: "PSDB_HR".into(),
                from: None,
            },
        ];
        for kind in TaskKind::iter() {
            let text = instructions(&TaskContext {
                kind,
                host_id: "srv-01",
                from: Some(v("9.3.1.33994")),
                to: v("26.3.100.34058"),
                databases: &databases,
                ids: Some(("r4", "r4-5")),
                web_servers: &[crate::WebServerKind::Iis],
                web_app_output: None,
            });
            assert!(text.contains("srv-01"), "{text}");
            assert!(text.contains("tierwise rollout done r4 r4-5"), "{text}");
            assert!(text.contains("Server Manager"), "{text}");
            assert_eq!(TaskKind::parse(kind.as_str()), Some(kind));
        }
        let reactivate = instructions(&TaskContext {
            kind: TaskKind::ReactivateDatabases,
            host_id: "srv-01",
            from: None,
            to: v("26.3.100.34058"),
            databases: &databases,
            ids: None,
            web_servers: &[],
            web_app_output: None,
        });
        assert!(reactivate.contains("PSDB (patch level 9.3.1.33994), PSDB_HR"));
        assert!(reactivate.contains("raises their patch level to 26.3.100.34058"));
        assert!(reactivate.contains("ROLLOUT TASK"));
    }

    #[test]
    fn a_reactivation_is_observable_only_with_databases_reported() {
        let to = v("26.3.100.34058");
        assert!(verification(TaskKind::ReactivateDatabases, "srv", to, true).observable);
        let blind = verification(TaskKind::ReactivateDatabases, "srv", to, false);
        assert!(!blind.observable);
        assert!(blind.text.contains("`done` alone"), "{}", blind.text);
        assert!(verification(TaskKind::InstallServer, "srv", to, false).observable);
        assert!(!verification(TaskKind::Backup, "srv", to, true).observable);
    }

    #[test]
    fn only_the_server_managers_buttons_become_tasks() {
        assert_eq!(TaskKind::of(Action::Backup), Some(TaskKind::Backup));
        assert_eq!(TaskKind::of(Action::StopServices), None);
        assert_eq!(TaskKind::of(Action::InstallClient), None);
        for kind in TaskKind::iter() {
            assert!(!kind.config_key().is_empty());
        }
    }
}
