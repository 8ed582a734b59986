//! The agent's boundary: whatever a controller sends, the agent runs only
//! the command line of its own configuration. Text from the controller can
//! reach that command line only through the placeholders, and only as a
//! parsed four-part version, a checked step id, or a local file path; an
//! action without a local definition runs nothing.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.
#![cfg(unix)]

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tierwise_agent::config::{ActionCommand, ComponentSpec, FactsSpec, VersionProbe};
use tierwise_agent::steps::Executor;
use tierwise_common::action::StepOutcome;
use tierwise_common::{Role, Version};
use tierwise_proto::convert::command_from_wire;
use tierwise_proto::v1::{command::Action, Command, InstallComponent, RoleAction};
use tierwise_testkit::fuzz;

/// An installer that writes each argument it gets on a line of `argv`.
fn recorder(dir: &Path) -> ActionCommand {
    let script = format!(
        "for a in \"$@\"; do printf '%s\\n' \"$a\" >> {log}; done",
        log = dir.join("argv").display()
    );
    ActionCommand {
        argv: vec![
            "sh".into(),
            "-c".into(),
            script,
            "installer".into(),
            "/i".into(),
            "{artifact}".into(),
            "VERSION={version}".into(),
            "STEP={step}".into(),
            "ROLE={role}".into(),
        ],
        timeout: Duration::from_secs(10),
        transient_exit_codes: vec![],
        restart_exit_codes: vec![],
    }
}

fn executor(dir: &Path) -> Executor {
    let client = ComponentSpec {
        role: Role::Client,
        version: VersionProbe::Fixed(Version::new(9, 3, 1, 33994)),
        facts: FactsSpec::Client { update_check: None },
        // Only `install` is defined for this host.
        actions: BTreeMap::from([("install", recorder(dir))]),
        health: None,
        backup_location: None,
        web_app_output: None,
    };
    Executor::new(&dir.join("state"), vec![client]).unwrap()
}

/// Text a hostile controller might send, biased towards shell syntax.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9.;&|`$(){}<>\\\\ '\"\n*?a-z/-]{0,40}",
        Just("9.3.1.1; rm -rf /".to_owned()),
        Just("$(touch /tmp/owned)".to_owned()),
        Just("../../etc/passwd".to_owned()),
        Just("26.3.100.34058".to_owned()),
        Just("step-1".to_owned()),
    ]
}

#[test]
fn text_from_the_controller_never_becomes_a_command() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let allowed_value = |line: &str, prefix: &str, ok: &dyn Fn(&str) -> bool| {
        line.strip_prefix(prefix).is_some_and(ok)
    };
    // "Accepted" counts the commands that ran, as configured; the rest were
    // refused without running anything.
    fuzz(
        "agent boundary (hostile commands)",
        (hostile_text(), hostile_text(), hostile_text(), 0..3usize),
        |(step_id, version, sha, which)| {
            let dir = tempfile::tempdir().unwrap();
            let exec = executor(dir.path());
            let action = match which {
                0 => Action::InstallComponent(InstallComponent {
                    role: tierwise_proto::v1::Role::Client.into(),
                    version: version.clone(),
                    artifact_sha256: sha.clone(),
                }),
                1 => Action::StopServices(RoleAction {
                    role: tierwise_proto::v1::Role::Client.into(),
                }),
                _ => Action::Backup(tierwise_proto::v1::Empty {}),
            };
            let command = Command {
                step_id: step_id.clone(),
                action: Some(action),
                dispatched_ms: 0,
            };
            let Ok((step, action)) = command_from_wire(&command) else {
                return Ok(false);
            };
            // The agent gives the installer its own local path, never
            // one from the controller.
            let artifact = dir.path().join("artifact.msi");
            let report = runtime.block_on(exec.execute(&step, &action, Some(&artifact)));
            let argv = std::fs::read_to_string(dir.path().join("argv")).unwrap_or_default();
            match report {
                Ok(report) if report.outcome == StepOutcome::Succeeded => {
                    // Only `install` is defined, so only it can have run…
                    prop_assert_eq!(which, 0, "an undefined action ran: {:?}", report);
                    // …with the configured arguments and typed values.
                    let lines: Vec<&str> = argv.lines().collect();
                    prop_assert_eq!(lines.len(), 5, "{:?}", lines);
                    prop_assert_eq!(lines[0], "/i");
                    prop_assert_eq!(lines[1], artifact.to_str().unwrap());
                    prop_assert!(
                        allowed_value(lines[2], "VERSION=", &|v| v.parse::<Version>().is_ok()
                            && v.chars().all(|c| c.is_ascii_digit() || c == '.')),
                        "{}",
                        lines[2]
                    );
                    prop_assert!(
                        allowed_value(lines[3], "STEP=", &|s| !s.is_empty()
                            && s.chars()
                                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))),
                        "{}",
                        lines[3]
                    );
                    prop_assert_eq!(lines[4], "ROLE=client");
                    Ok(true)
                }
                _ => {
                    prop_assert!(argv.is_empty(), "a refused step ran: {}", argv);
                    Ok(false)
                }
            }
        },
    );
}
