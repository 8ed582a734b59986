//! The invariants `docs/architecture.md` states about the code itself,
//! checked on the source tree: where generated protobuf types may be used,
//! what the pure crate may depend on, the workspace lints in every crate,
//! and no comment that promises what comes "later".

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every file under `dir` (relative to the root) whose name ends in one of
/// `extensions`, as (path relative to the root, text).
fn sources(dir: &str, extensions: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = vec![root().join(dir)];
    while let Some(path) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if extensions
                .iter()
                .any(|e| path.to_string_lossy().ends_with(e))
            {
                let relative = path
                    .strip_prefix(root())
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((relative, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The workspace's member crates, from the root manifest.
fn members() -> Vec<String> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let start = manifest.find("members").unwrap();
    let list = &manifest[start..manifest[start..].find(']').unwrap() + start];
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_crate_uses_the_workspace_lints() {
    let members = members();
    assert!(members.len() >= 8, "{members:?}");
    for member in members {
        let manifest = std::fs::read_to_string(root().join(&member).join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("[lints]\nworkspace = true"),
            "{member}/Cargo.toml: add `[lints]\\nworkspace = true`"
        );
    }
}

#[test]
fn generated_types_stay_at_the_wire_edges() {
    let allowed = |path: &str| {
        path.starts_with("controller/src/grpc/")
            || path.starts_with("controller/src/cli/")
            || [
                "controller/src/server.rs",
                "controller/src/wire.rs",
                "controller/src/demo.rs",
                // The dashboard calls the admin API in process.
                "controller/src/ui/data.rs",
                "agent/src/session.rs",
                "agent/src/identity.rs",
                "agent/src/steps/download.rs",
            ]
            .contains(&path)
    };
    let mut offenders = Vec::new();
    for dir in [
        "controller/src",
        "agent/src",
        "common/src",
        "runtime/src",
        "transport/src",
    ] {
        for (path, text) in sources(dir, &[".rs"]) {
            if (text.contains("tierwise_proto::v1") || text.contains("v1::")) && !allowed(&path) {
                offenders.push(path);
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "generated protobuf types outside the wire's edges (convert to domain types where they arrive): {offenders:?}"
    );
    // The engine reaches agents through the delivery interface only.
    let engine = sources("controller/src/engine", &[".rs"]);
    assert!(
        !engine.is_empty(),
        "the engine's files are in controller/src/engine/"
    );
    for (path, text) in engine {
        assert!(
            !text.contains("crate::grpc") && !text.contains("tierwise_proto"),
            "{path} reaches agents other than through the delivery interface"
        );
    }
}

#[test]
fn the_domain_crate_stays_pure() {
    let manifest = std::fs::read_to_string(root().join("common/Cargo.toml")).unwrap();
    let dependencies = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap();
    for forbidden in [
        "tokio",
        "sqlx",
        "tonic",
        "tierwise-proto",
        "tierwise-runtime",
    ] {
        assert!(
            !dependencies.contains(forbidden),
            "common depends on {forbidden}"
        );
    }
    for (path, text) in sources("common/src", &[".rs"]) {
        for io in [
            "std::fs",
            "std::env",
            "std::process",
            "TcpStream",
            "TcpListener",
            "UdpSocket",
            "SystemTime::now",
            "Instant::now",
        ] {
            assert!(!text.contains(io), "{path} uses {io}: common does no I/O");
        }
    }
}

#[test]
fn no_comment_promises_what_comes_later() {
    let stale = [
        "later issue",
        "in later versions",
        "(later)",
        "and later the",
        ", later,",
        "rollouts later",
        "comes with the rollout",
        "until enrollment exists",
        "for now",
        "todo:",
        "fixme",
    ];
    let mut found = Vec::new();
    for dir in [
        "controller",
        "agent",
        "common",
        "proto",
        "runtime",
        "transport",
        "testkit",
        "docs",
    ] {
        for (path, text) in sources(dir, &[".rs", ".proto", ".md", ".toml"]) {
            if path.ends_with("tests/tidy.rs") {
                continue;
            }
            for (number, line) in text.lines().enumerate() {
                let lower = line.to_lowercase();
                if let Some(phrase) = stale.iter().find(|p| lower.contains(*p)) {
                    found.push(format!("{path}:{}: `{phrase}`", number + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "say what the code does now, not what a later change will do:\n{}",
        found.join("\n")
    );
}
