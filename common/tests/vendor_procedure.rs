//! `docs/vendor-procedure.md` stays true: every rule, action and
//! acknowledgement its table names exists, every test it names exists,
//! and its counts are the table's.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use tierwise_common::action::StepAction;
use tierwise_common::rules::{Rule, ACK_BREAKING, ACK_CHANGELOG, ACK_SERVER_MANAGER_PASSWORD};
use tierwise_common::task::TaskKind;
use tierwise_common::{Role, Version};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The table's rows: (number, tierwise column, kind column, test column).
fn rows(text: &str) -> Vec<(String, String, String, String)> {
    text.lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| #"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 5, "a row has five cells: {l}");
            (
                cells[0].to_owned(),
                cells[2].to_owned(),
                cells[3].to_owned(),
                cells[4].to_owned(),
            )
        })
        .collect()
}

/// Every `prefix:name` in backticks.
fn named<'a>(cell: &'a str, prefix: &str) -> Vec<&'a str> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|code| code.strip_prefix(prefix))
        .collect()
}

/// Every `.rs` file under `dir`, skipping build output.
fn sources(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
}

#[test]
fn the_vendor_procedure_table_names_only_what_exists() {
    let text = std::fs::read_to_string(root().join("docs/vendor-procedure.md")).unwrap();
    let rows = rows(&text);
    assert_eq!(
        rows.len(),
        17,
        "one row per instruction of the vendor's page"
    );

    let v = Version::new(26, 3, 100, 34058);
    let actions: Vec<&str> = [
        StepAction::Backup,
        StepAction::StopServices { role: Role::Server },
        StepAction::InstallComponent {
            role: Role::Server,
            version: v,
            artifact_sha256: None,
        },
        StepAction::StartServices { role: Role::Server },
        StepAction::ReactivateDatabases { version: v },
        StepAction::DeployWebApp {
            version: v,
            artifact_sha256: None,
        },
        StepAction::Restart { role: Role::Server },
    ]
    .iter()
    .map(StepAction::config_key)
    .collect();
    let acks = [
        ACK_BREAKING,
        ACK_CHANGELOG,
        ACK_SERVER_MANAGER_PASSWORD,
        tierwise_common::promotion::ACK_SKIP_PROMOTION,
    ];
    let mut code = Vec::new();
    for dir in [
        "common",
        "controller",
        "agent",
        "tests",
        "proto",
        "transport",
        "runtime",
        "swarm",
    ] {
        sources(&root().join(dir), &mut code);
    }
    let kinds = [
        "enforced",
        "performed",
        "acknowledged",
        "warned",
        "operator task",
        "left to the operator",
    ];
    let mut counts = [0usize; 6];
    for (number, tierwise, kind, tests) in &rows {
        for rule in named(tierwise, "rule:") {
            assert!(
                Rule::from_str(rule).is_ok(),
                "row {number}: no rule `{rule}`"
            );
        }
        for action in named(tierwise, "action:") {
            assert!(
                actions.contains(&action),
                "row {number}: no action `{action}`"
            );
        }
        for task in named(tierwise, "task:") {
            assert!(
                TaskKind::parse(task).is_some(),
                "row {number}: no operator task `{task}`"
            );
        }
        for ack in named(tierwise, "ack:") {
            assert!(
                acks.contains(&ack),
                "row {number}: no acknowledgement `{ack}`"
            );
        }
        let mut any = false;
        for (i, k) in kinds.iter().enumerate() {
            if kind.contains(k) {
                counts[i] += 1;
                any = true;
            }
        }
        assert!(any, "row {number}: `{kind}` is none of {kinds:?}");
        if kind.contains("left to the operator") {
            assert!(
                kind.contains(": "),
                "row {number}: say why it is left to the operator"
            );
        }
        let tests: Vec<&str> = tests.split('`').skip(1).step_by(2).collect();
        assert!(!tests.is_empty(), "row {number} names no test");
        for test in tests {
            let defined = format!("fn {test}(");
            assert!(
                code.iter().any(|c| c.contains(&defined)),
                "row {number}: no test `{test}`"
            );
        }
    }
    let summary = format!(
        "Counts: enforced {}, performed {}, acknowledged {}, warned {}, operator task {}, left to the operator {}.",
        counts[0], counts[1], counts[2], counts[3], counts[4], counts[5]
    );
    assert!(
        text.contains(&summary),
        "the summary should read: {summary}"
    );
}
