//! One time format with real processes: every time in the CLI's `--json`
//! output is RFC 3339 UTC (the older Unix-millisecond fields keep an
//! RFC 3339 twin), text shows the local time zone unless `--utc`, and a
//! rollout that is not running has no expected end.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use serde_json::Value;
use std::process::Command;
use std::time::Duration;
use tierwise_e2e::{binary, wait_for, Controller, Fleet, FleetOptions, V263};

/// A string that reads as a date and time (not a bare date like a
/// release's `2026-03-10`).
fn looks_like_a_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 19
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
}

/// Every time in `value` is RFC 3339 UTC, and every `*_ms` field has its
/// RFC 3339 twin (the name without `_ms`, or with `_at` for it) saying the
/// same second.
fn check_times(path: &str, value: &Value, problems: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            for (key, field) in object {
                let here = format!("{path}.{key}");
                if let Some(stem) = key.strip_suffix("_ms") {
                    // The twin drops `_ms` (`created`) or, where the
                    // field is named for an event, says `_at` (`started_at`).
                    let at = format!("{stem}_at");
                    let twin = if object.contains_key(stem) {
                        stem
                    } else {
                        at.as_str()
                    };
                    match (field.as_i64(), object.get(twin)) {
                        (_, None) => problems.push(format!("{here} has no twin `{twin}`")),
                        (Some(ms), Some(Value::String(text))) => {
                            match text.parse::<jiff::Timestamp>() {
                                Ok(at) if at.as_second() == ms.div_euclid(1000) => {}
                                _ => problems.push(format!("{here}={ms} but {twin}={text}")),
                            }
                        }
                        (None, Some(Value::Null)) if field.is_null() => {}
                        (_, Some(other)) => {
                            problems.push(format!("{here}={field} but {twin}={other}"))
                        }
                    }
                }
                check_times(&here, field, problems);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_times(&format!("{path}[{i}]"), item, problems);
            }
        }
        Value::String(text)
            if looks_like_a_time(text)
                && (text.parse::<jiff::Timestamp>().is_err() || !text.ends_with('Z')) =>
        {
            problems.push(format!("{path}={text} is not RFC 3339 UTC"));
        }
        _ => {}
    }
}

fn status(c: &Controller, id: &str) -> Value {
    serde_json::from_str(&c.cli(&["rollout", "status", id, "--json"]).unwrap()).unwrap()
}

fn wait_state(c: &Controller, id: &str, state: &str) -> Value {
    wait_for(&format!("{id} {state}"), Duration::from_secs(60), || {
        let s = status(c, id);
        Ok((s["state"] == state).then_some(s))
    })
    .unwrap()
    .0
}

/// A rollout waiting, paused or halted has no expected end, in JSON
/// (`eta` null) or text.
fn has_no_expected_end(c: &Controller, id: &str) {
    let json = status(c, id);
    assert_eq!(json["eta"], Value::Null, "{} {json}", json["state"]);
    let text = c.cli(&["rollout", "status", id]).unwrap();
    assert!(!text.contains("Expected end"), "{text}");
}

#[test]
fn times_are_rfc3339_utc_in_json_and_local_in_text_and_only_a_running_rollout_has_an_end() {
    let fleet = Fleet::start(&FleetOptions {
        clients: 1,
        ..FleetOptions::default()
    })
    .unwrap();
    let c = &fleet.controller;
    let installer = fleet.root.path().join("client.msi");
    std::fs::write(&installer, b"client installer").unwrap();
    c.cli(&[
        "artifacts",
        "add",
        installer.to_str().unwrap(),
        "--release",
        V263,
        "--component",
        "client",
    ])
    .unwrap();
    c.cli(&["operators", "add", "olga", "--role", "operator"])
        .unwrap();

    c.rollout_start(&["--approve-phases"]).unwrap();
    wait_state(c, "r1", "waiting_for_approval");
    has_no_expected_end(c, "r1");
    c.cli(&["rollout", "pause", "r1"]).unwrap();
    has_no_expected_end(c, "r1");
    c.cli(&["rollout", "abort", "r1"]).unwrap();
    // The server's first action fails: the rollout halts.
    std::fs::write(fleet.server.dir.join("fail"), "103").unwrap();
    c.rollout_start(&[]).unwrap();
    wait_state(c, "r2", "failed");
    has_no_expected_end(c, "r2");

    let commands: &[&[&str]] = &[
        &["hosts", "list", "--json"],
        &["hosts", "show", "srv-01", "--json"],
        &["rollout", "list", "--json"],
        &["rollout", "status", "r1", "--json"],
        &["rollout", "status", "r2", "--json"],
        &[
            "rollout",
            "plan",
            "--installation",
            "prod",
            "--to",
            V263,
            "--json",
        ],
        &["tokens", "list", "--json"],
        &["tokens", "create", "--json"],
        &["operators", "list", "--json"],
        &["audit", "--json"],
        &["audit", "verify", "--json"],
        &["installations", "maps", "--json"],
        &["installations", "show", "prod", "--json"],
        &["windows", "list", "--json"],
        &["releases", "list", "--json"],
        &["releases", "metadata", "show", "--json"],
        &["license", "show", "--json"],
        &["artifacts", "list", "--json"],
    ];
    let mut problems = Vec::new();
    for args in commands {
        let out = c.cli_output(args).unwrap();
        let json: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        check_times(&args.join(" "), &json, &mut problems);
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The twins are there (and say the same as the milliseconds).
    let operators: Value =
        serde_json::from_str(&c.cli(&["operators", "list", "--json"]).unwrap()).unwrap();
    assert!(operators[0]["created"].as_str().unwrap().ends_with('Z'));
    let audit: Value = serde_json::from_str(&c.cli(&["audit", "--json"]).unwrap()).unwrap();
    assert!(audit[0]["at"].as_str().unwrap().ends_with('Z'));
}

/// `tierwise ARGS` against `c` as its admin, with `env` set.
fn cli_with_env(c: &Controller, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut command = Command::new(binary("tierwise"));
    command
        .args(["--controller", &c.url(), "--ca-cert"])
        .arg(c.ca_path())
        .env("TIERWISE_TOKEN", c.admin_token().unwrap())
        .env_remove("TIERWISE_UTC")
        .env_remove("TZ");
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn text_shows_the_local_time_zone_unless_utc_is_asked_for() {
    let root = tempfile::tempdir().unwrap();
    let c = Controller::start(&root.path().join("controller"), "127.0.0.1:0").unwrap();
    // Tokyo keeps no summer time: its abbreviation is always JST.
    let tokyo = [("TZ", "Asia/Tokyo")];
    for args in [&["tokens", "list"][..], &["audit"], &["operators", "list"]] {
        let local = cli_with_env(&c, &tokyo, args);
        assert!(local.contains(" JST"), "{args:?}: {local}");
        for utc in [
            cli_with_env(&c, &tokyo, &[&["--utc"][..], args].concat()),
            cli_with_env(&c, &[("TZ", "Asia/Tokyo"), ("TIERWISE_UTC", "true")], args),
        ] {
            assert!(!utc.contains(" JST"), "{args:?}: {utc}");
            assert!(
                utc.split_whitespace()
                    .any(|word| looks_like_a_time(word) && word.ends_with('Z')),
                "{args:?}: {utc}"
            );
        }
    }
    // The same instant either way: a token's expiry, nine hours apart on
    // the clock.
    let expires = |text: &str, zone: &str| -> jiff::Timestamp {
        let line = text.lines().nth(1).unwrap();
        match zone {
            "utc" => line
                .split_whitespace()
                .find(|w| looks_like_a_time(w))
                .unwrap()
                .parse()
                .unwrap(),
            _ => {
                let words: Vec<&str> = line.split_whitespace().collect();
                let at = words.iter().position(|w| *w == "JST").unwrap();
                let civil: jiff::civil::DateTime = format!("{}T{}", words[at - 2], words[at - 1])
                    .parse()
                    .unwrap();
                civil.in_tz("Asia/Tokyo").unwrap().timestamp()
            }
        }
    };
    let local = cli_with_env(&c, &tokyo, &["tokens", "list"]);
    let utc = cli_with_env(&c, &tokyo, &["--utc", "tokens", "list"]);
    assert_eq!(expires(&local, "tokyo"), expires(&utc, "utc"));
    // JSON stays UTC whatever the zone.
    let json = cli_with_env(&c, &tokyo, &["tokens", "list", "--json"]);
    assert!(!json.contains("+09:00") && json.contains("Z\""), "{json}");
}
