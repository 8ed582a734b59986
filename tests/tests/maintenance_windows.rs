//! Maintenance windows with a real controller and agents: a rollout's
//! server phases wait for the server window, `status` says when it opens,
//! and they run once it is open; bad windows are refused and change
//! nothing. (Daylight saving is covered where the decision is made, in
//! `common/src/window/tests.rs`.)

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tierwise_e2e::{wait_for, Fleet, FleetOptions};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Minutes since midnight UTC now, and today's weekday (0: Monday).
fn now_utc() -> (u64, usize) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let days = secs / 86_400;
    // 1 January 1970 was a Thursday.
    (secs % 86_400 / 60, ((days + 3) % 7) as usize)
}

fn hhmm(minutes: u64) -> String {
    let m = minutes % (24 * 60);
    format!("{:02}:{:02}", m / 60, m % 60)
}

#[test]
fn server_phases_wait_for_their_window_and_status_says_when_it_opens() {
    let fleet = Fleet::start(&FleetOptions {
        clients: 1,
        ..FleetOptions::default()
    })
    .unwrap();
    let c = &fleet.controller;
    let set = |args: &[&str]| {
        let mut all = vec!["windows", "set", "--installation", "prod"];
        all.extend_from_slice(args);
        c.cli_output(&all).unwrap()
    };
    // Bad windows are refused with what to write, and nothing is stored.
    for (args, expected) in [
        (
            vec![
                "--scope", "server", "--days", "funday", "--from", "02:00", "--to", "06:00",
                "--tz", "UTC",
            ],
            "`funday` are no days",
        ),
        (
            vec![
                "--scope",
                "server",
                "--days",
                "sat",
                "--from",
                "02:00",
                "--to",
                "06:00",
                "--tz",
                "Mars/Olympus",
            ],
            "`Mars/Olympus` is no IANA time zone",
        ),
        (
            vec![
                "--scope",
                "databases",
                "--days",
                "sat",
                "--from",
                "02:00",
                "--to",
                "06:00",
                "--tz",
                "UTC",
            ],
            "unknown scope `databases`",
        ),
        (
            vec![
                "--scope", "server", "--days", "sat", "--from", "2am", "--to", "06:00", "--tz",
                "UTC",
            ],
            "`2am` is no time of day",
        ),
        (
            vec![
                "--scope", "server", "--days", "sat", "--from", "02:00", "--to", "03:00", "--tz",
                "UTC",
            ],
            "shorter than a step's time limit (120 min)",
        ),
    ] {
        let out = set(&args);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
    let unknown = c
        .cli_output(&[
            "windows",
            "set",
            "--installation",
            "nope",
            "--scope",
            "server",
            "--days",
            "sat",
            "--from",
            "02:00",
            "--to",
            "06:00",
            "--tz",
            "UTC",
        ])
        .unwrap();
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no installation `nope`"));
    assert!(c
        .cli(&["windows", "list"])
        .unwrap()
        .contains("No maintenance windows"));

    // The server window is three days away.
    let (_, today) = now_utc();
    let day = DAYS[(today + 3) % 7];
    let out = set(&[
        "--scope", "server", "--days", day, "--from", "02:00", "--to", "06:00", "--tz", "UTC",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value =
        serde_json::from_str(&c.cli(&["windows", "list", "--json"]).unwrap()).unwrap();
    assert_eq!(listed[0]["scope"], "server");
    assert_eq!(listed[0]["days"], day);
    assert_eq!(listed[0]["open_now"], false);
    assert!(listed[0]["next_start"]
        .as_str()
        .unwrap()
        .ends_with("T02:00:00Z"));
    let plan = c
        .cli(&[
            "rollout",
            "plan",
            "--installation",
            "prod",
            "--to",
            tierwise_e2e::V263,
        ])
        .unwrap();
    assert!(
        plan.contains("Maintenance windows") && plan.contains(&format!("{day} 02:00–06:00")),
        "{plan}"
    );
    let plan: Value = serde_json::from_str(
        &c.cli(&[
            "rollout",
            "plan",
            "--installation",
            "prod",
            "--to",
            tierwise_e2e::V263,
            "--json",
        ])
        .unwrap(),
    )
    .unwrap();
    assert_eq!(plan["windows"][0]["scope"], "server");
    assert_eq!(plan["windows"][0]["time_zone"], "UTC");

    // The rollout starts, and its backup waits for the window.
    c.rollout_start(&[]).unwrap();
    let (status, _) = wait_for("the wait to show", Duration::from_secs(30), || {
        let s = c.rollout_status()?;
        Ok(s["waiting_for_window"].as_str().is_some().then_some(s))
    })
    .unwrap();
    let waiting = status["waiting_for_window"].as_str().unwrap();
    assert!(
        waiting.starts_with(&format!(
            "waiting for the server window ({day} 02:00–06:00 UTC), opens "
        )) && waiting.ends_with("02:00 UTC"),
        "{waiting}"
    );
    // The expectation: nothing measured yet on this controller, and the
    // first phase starts when the window opens.
    let eta = &status["eta"];
    assert_eq!(eta["expected_end"], Value::Null, "{eta}");
    assert!(
        eta["unmeasured"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == "install on client"),
        "{eta}"
    );
    assert_eq!(eta["phases"][0]["phase"], 1);
    assert_eq!(eta["phases"][0]["waits_for_window"], true);
    assert!(
        eta["phases"][0]["starts"]
            .as_str()
            .unwrap()
            .ends_with("T02:00:00Z"),
        "{eta}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.rollout_status().unwrap()["state"], "running");
    assert!(
        fleet.server.runs().is_empty(),
        "nothing ran outside the window"
    );
    let text = c.cli(&["rollout", "status"]).unwrap();
    assert!(text.contains("Waiting for the server window"), "{text}");

    // A window open now, with room for a step's two hours: it goes on.
    let (minutes, _) = now_utc();
    let out = set(&[
        "--scope",
        "server",
        "--days",
        "daily",
        "--from",
        &hhmm(minutes + 24 * 60 - 60),
        "--to",
        &hhmm(minutes + 180),
        "--tz",
        "UTC",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("rollout completed", Duration::from_secs(90), || {
        let s = c.rollout_status()?;
        Ok((s["state"] == "completed").then_some(()))
    })
    .unwrap();
    assert_eq!(
        c.rollout_status().unwrap()["waiting_for_window"],
        Value::Null
    );
    assert!(!fleet.server.runs().is_empty());
    // Every action has been measured now: a plan for a client that went
    // back expects a known amount of work.
    fleet.clients[0].set_version("9.3.1.33994").unwrap();
    let (plan, _) = wait_for(
        "a plan with the client to update",
        Duration::from_secs(30),
        || {
            let plan: Value = serde_json::from_str(&c.cli(&[
                "rollout",
                "plan",
                "--installation",
                "prod",
                "--to",
                tierwise_e2e::V263,
                "--json",
            ])?)?;
            Ok((plan["counts"]["clients_to_update"] == 1).then_some(plan))
        },
    )
    .unwrap();
    assert!(plan["eta"]["expected_seconds"].is_i64(), "{}", plan["eta"]);
    assert_eq!(plan["eta"]["unmeasured"], serde_json::json!([]));
    assert_eq!(plan["eta"]["expected_end"], Value::Null);
    // The expectation is numbered as the plan lists its phases, those with
    // nothing to do included: the only phase with work is the client's.
    let listed = plan["phases"].as_array().unwrap();
    let with_work: Vec<usize> = listed
        .iter()
        .enumerate()
        .filter(|(_, p)| !p["steps"].as_array().unwrap().is_empty())
        .map(|(i, _)| i + 1)
        .collect();
    let expected: Vec<usize> = plan["eta"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(expected, with_work, "{}", plan["eta"]);
    assert!(listed.len() > with_work.len(), "{}", plan["phases"]);
    assert_eq!(listed[with_work[0] - 1]["kind"], "client_wave");
    let text = c
        .cli(&[
            "rollout",
            "plan",
            "--installation",
            "prod",
            "--to",
            tierwise_e2e::V263,
        ])
        .unwrap();
    assert!(text.contains("Expected work: "), "{text}");
    c.cli(&[
        "windows",
        "remove",
        "--installation",
        "prod",
        "--scope",
        "server",
    ])
    .unwrap();
    let audit = c.cli(&["audit"]).unwrap();
    assert!(
        audit.contains("window set") && audit.contains("window remove"),
        "{audit}"
    );
}
