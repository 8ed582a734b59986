//! The agent's boundary: whatever a controller sends, the agent runs only
//! the command line of its own configuration. Text from the controller can
//! reach that command line only through the placeholders, and only as a
//! parsed four-part version, a checked step id, or a local file path; an
//! action without a local definition runs nothing.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.
#![cfg(unix)]

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tierwise_agent::config::{ActionCommand, ComponentSpec, FactsSpec, VersionProbe};
use tierwise_agent::steps::Executor;
use tierwise_common::action::StepOutcome;
use tierwise_common::{Role, Version};
use tierwise_proto::convert::command_from_wire;
use tierwise_proto::v1::{command::Action, Command, InstallComponent, RoleAction};

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
    }
}

fn executor(dir: &Path) -> Executor {
    let client = ComponentSpec {
        role: Role::Client,
        version: VersionProbe::Fixed(Version::new(9, 3, 1, 33994)),
        facts: FactsSpec::Client { update_check: None },
        // Only `install` is defined for this host.
        actions: BTreeMap::from([("install", recorder(dir))]),
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
    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ran, refused, total) = (Cell::new(0u32), Cell::new(0u32), Cell::new(0u32));
    let allowed_value = |line: &str, prefix: &str, ok: &dyn Fn(&str) -> bool| {
        line.strip_prefix(prefix).is_some_and(ok)
    };
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(hostile_text(), hostile_text(), hostile_text(), 0..3usize),
            |(step_id, version, sha, which)| {
                total.set(total.get() + 1);
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
                };
                let Ok((step, action)) = command_from_wire(&command) else {
                    refused.set(refused.get() + 1);
                    return Ok(());
                };
                // The agent gives the installer its own local path, never
                // one from the controller.
                let artifact = dir.path().join("artifact.msi");
                let report = runtime.block_on(exec.execute(&step, &action, Some(&artifact)));
                let argv = std::fs::read_to_string(dir.path().join("argv")).unwrap_or_default();
                match report {
                    Ok(report) if report.outcome == StepOutcome::Succeeded => {
                        ran.set(ran.get() + 1);
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
                    }
                    _ => {
                        refused.set(refused.get() + 1);
                        prop_assert!(argv.is_empty(), "a refused step ran: {}", argv);
                    }
                }
                Ok(())
            },
        )
        .unwrap();
    eprintln!(
        "agent boundary: {} hostile commands, {} ran as configured, {} refused, 0 ran anything else",
        total.get(),
        ran.get(),
        refused.get()
    );
    assert_eq!(total.get(), cases);
}
