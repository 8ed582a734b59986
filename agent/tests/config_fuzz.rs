//! Fuzz-style property tests of the agent's configuration parser,
//! `tierwise_agent::config::parse`, the only code that reads the file an
//! operator writes on every host.
//!
//! Whatever the text, the parser must return validated settings or a clean
//! error, never panic: a typo must stop one agent with a message, not crash it
//! in a loop under the service manager. The module promises that every error
//! names the file and the line; that is checked too, and the line must exist.
//! Inputs: arbitrary text, documents assembled from the config's own keys
//! with near-valid values, and the shipped examples with one careless edit.
//!
//! `parse` writes nothing: paths are only stored, regular expressions compiled
//! (with a size limit), and without `host_id` it asks the system for the host
//! name. It reads one file, the one `enrollment_token_file` names; no input
//! here contains that key, and no single edit of an example can enable it
//! (server.toml comments it out next to `enrollment_token`, and both together
//! are refused before the read). So running it thousands of times is harmless.
//!
//! Each test prints how many cases it ran. PROPTEST_CASES sets the count.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::string::string_regex;
use std::time::Duration;
use tierwise_agent::config::parse;
use tierwise_common::validate_name;
use tierwise_testkit::{apply, edit, fuzz, Checked};

/// The shipped example configurations, which operators copy and edit.
const EXAMPLES: [&str; 6] = [
    include_str!("../../deploy/agent/server.toml"),
    include_str!("../../deploy/agent/server-windows.toml"),
    include_str!("../../deploy/agent/client.toml"),
    include_str!("../../deploy/agent/client-windows.toml"),
    include_str!("../../deploy/agent/web-apache.toml"),
    include_str!("../../deploy/agent/web-iis.toml"),
];

/// The line an error points at: "line N: ..." from the validation or
/// "TOML parse error at line N, column M" from the TOML reader.
fn pointed_line(message: &str) -> Option<usize> {
    let rest = (message.strip_prefix("line "))
        .or_else(|| message.strip_prefix("TOML parse error at line "))?;
    let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

/// The parser's promise for one document; `Ok(true)` when it was accepted.
fn check_config(document: &str) -> Checked {
    match parse(document, "fuzz.toml") {
        Ok(settings) => {
            // Accepted settings hold only what makes sense.
            let url = settings.controller.to_string();
            prop_assert!(
                url.starts_with("https://") || url.starts_with("http://"),
                "{url}"
            );
            prop_assert!(validate_name("installation", &settings.installation).is_ok());
            prop_assert!(validate_name("host id", &settings.host_id).is_ok());
            let within = |d: Duration, max: u64| (1..=max).contains(&d.as_secs());
            prop_assert!(within(settings.heartbeat, 3600) && within(settings.reconnect_max, 3600));
            prop_assert!(within(settings.probe_interval, 86_400));
            let roles: Vec<_> = settings.components.iter().map(|c| c.role).collect();
            prop_assert!(
                roles.windows(2).all(|r| r[0] < r[1]),
                "one component per role: {roles:?}"
            );
            Ok(true)
        }
        Err(e) => {
            prop_assert_eq!(e.path.as_str(), "fuzz.toml");
            prop_assert!(!e.message.trim().is_empty());
            // Only a missing host_id on a host with an unusable name has no line.
            let line = pointed_line(&e.message);
            prop_assert!(
                line.is_some() || e.message.contains("`host_id` is not set"),
                "no line: {}",
                e.message
            );
            let lines = document.split('\n').count();
            let inside = line.is_none_or(|n| (1..=lines).contains(&n));
            prop_assert!(inside, "line {line:?} of {lines}: {}", e.message);
            Ok(false)
        }
    }
}

/// A valid start, so that assembled components reach their validation.
const HEADER: &str =
    "controller = \"https://127.0.0.1:9\"\ninstallation = \"prod\"\nhost_id = \"srv-01\"\n";

/// Joins the lines that are present, so that no key appears twice.
fn present(lines: &[Option<String>]) -> String {
    lines.iter().flatten().map(|l| format!("{l}\n")).collect()
}

/// The top-level keys, each at most once, with near-valid values: wrong
/// schemes, names with spaces, seconds out of range or negative, tokens and
/// CA fingerprints of the wrong length.
fn header() -> impl Strategy<Value = String> {
    let some = |re: &'static str| prop::option::of(re);
    let keys = (
        some("controller = \"((http|https|ftp)://)?[a-z0-9.:/?\\[\\]]{0,12}\""),
        some("installation = \"[a-z0-9 _.-]{0,8}\""),
        some("host_id = \"[a-z0-9 _.-]{0,8}\""),
        some("(heartbeat|probe|reconnect_max)_seconds = -?[0-9]{1,6}"),
    );
    let fuzzed = keys.prop_map(|(a, b, c, d)| present(&[a, b, c, d]));
    // Never `enrollment_token_file`: `parse` would read the file it names.
    let rare = |re: &'static str| prop::option::weighted(0.2, re);
    let enrollment = (
        rare("enrollment_token = \"(twe_)?[0-9a-f_ ]{0,70}\""),
        rare("ca_fingerprint = \"(sha256:)?([0-9A-Fa-f]{2}:?){30,33}\""),
    );
    let enrollment = enrollment.prop_map(|(t, f)| present(&[t, f]));
    let start = prop_oneof![Just(HEADER.to_owned()), fuzzed];
    (start, enrollment).prop_map(|(start, enrollment)| start + &enrollment)
}

/// A probe table (a regex for proptest): one or two kinds, an arbitrary
/// regular expression for the agent to compile, any timeout.
const PROBE: &str = r#"\{ ((file|file_version|registry|value) = "[0-9./a-z]{0,10}"|command = \[("[a-z ]{0,4}")?\]), (pattern = '[()\[\]*+?a-z|{}0-9.^$\\]{0,12}'|timeout_seconds = [0-9]{1,6}|file = "/f") \}"#;

/// An action: a command (placeholders, empty programs) or Windows services
/// (empty, odd and repeated names), odd timeouts and codes.
const ACTION: &str = r#"\{ (command = \[("[a-z{} ]{0,10}", ?){0,3}\]|windows_services = \[("[A-Za-z+/ ]{0,8}", ?){0,3}\]|command = \["x"\], windows_services = \["S"\])(, timeout_seconds = [0-9]{1,6})?(, transient_exit_codes = \[-?[0-9]{1,4}\])? \}"#;

/// One `[[component]]` with any subset of the keys a component may have,
/// whether or not its role allows them, and maybe its actions.
fn component() -> impl Strategy<Value = String> {
    let regex = |re: String| string_regex(&re).unwrap();
    let some = |re: String| prop::option::of(regex(re));
    let check = format!(r#"(true|false|{PROBE}|\{{ registry_key = "k", registry_value = "v" \}})"#);
    let keys = (
        // Roles with facts twice as often; `db` is no role.
        r#"role = "(server|app_server|web|client|server|web|client|db)""#,
        regex(format!("version = {PROBE}")),
        some(format!("databases = {PROBE}")),
        some(r#"server = "(iis|apache|nginx|x)""#.into()),
        some(r#"docroot = "/srv""#.into()),
        some(format!("(websocket|update_check) = {check}")),
        some(r#"web_app = "[a-z{}/ -]{0,16}""#.into()),
        some(format!(
            "\\[component\\.actions\\]\n(backup|stop_services|install) = {ACTION}"
        )),
        some(format!("(start_services|reactivate_databases) = {ACTION}")),
    );
    keys.prop_map(|(role, version, d, s, r, c, w, a, b)| {
        let lines = [Some(role), Some(version), d, s, r, c, w, a, b];
        "[[component]]\n".to_owned() + &present(&lines)
    })
}

#[test]
fn config_never_panics_on_arbitrary_text() {
    fuzz("config::parse (arbitrary)", any::<String>(), |doc| {
        check_config(&doc)
    });
    let components = prop::collection::vec(component(), 0..4);
    let assembled = (header(), components).prop_map(|(h, c)| h + &c.concat());
    fuzz("config::parse (assembled)", assembled, |doc| {
        check_config(&doc)
    });
}

#[test]
fn shipped_examples_are_accepted() {
    for (i, text) in EXAMPLES.iter().enumerate() {
        // Registry probes and file versions exist only on Windows; elsewhere
        // the Windows examples must be refused with that reason.
        match parse(text, &format!("example {i}")) {
            Ok(_) => {}
            Err(e) if !cfg!(windows) && e.message.contains("only on Windows") => {}
            Err(e) => panic!("a shipped example is refused: {e}"),
        }
    }
}

#[test]
fn edited_examples_never_panic() {
    let input = (any::<Index>(), edit());
    fuzz("config::parse (edited examples)", input, |(which, edit)| {
        check_config(&apply(EXAMPLES[which.index(EXAMPLES.len())], &edit))
    });
}
