//! The real `tierwise-agent` binary: refuses bad configurations before doing
//! anything, and `--check` shows what it would report.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::process::Command;

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tierwise-agent"))
}

fn write_config(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(&path, body).unwrap();
    path
}

fn refused(body: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), body);
    let out = agent().arg("--config").arg(&path).output().unwrap();
    assert!(!out.status.success(), "the agent must refuse:\n{body}");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains(&path.display().to_string()),
        "names the file: {stderr}"
    );
    assert!(
        !dir.path().join("state").exists(),
        "a refused configuration changes nothing"
    );
    stderr
}

const HEADER: &str = "controller = \"https://127.0.0.1:9\"\ninstallation = \"prod\"\nhost_id = \"srv-01\"\nstate_dir = \"STATE\"\n";

fn config(components: &str) -> String {
    format!("{HEADER}\n{components}")
}

#[test]
fn unknown_key_is_refused_with_key_and_line() {
    let err = refused(&config(
        "[[component]]\nrole = \"server\"\nversoin = { file = \"/v\" }\n",
    ));
    assert!(err.contains("line 8"), "{err}");
    assert!(err.contains("unknown field `versoin`"), "{err}");
}

#[test]
fn bad_version_literal_is_refused_with_line() {
    let err = refused(&config(
        "[[component]]\nrole = \"client\"\nversion = { value = \"9.3.1.x\" }\n",
    ));
    assert!(err.contains("line 8"), "{err}");
    assert!(err.contains("part 4 of `9.3.1.x` is `x`"), "{err}");
}

#[test]
fn bad_regex_is_refused_with_line() {
    let err = refused(&config(
        "[[component]]\nrole = \"client\"\nversion = { command = [\"psclient\"], pattern = \"Version ([0-9\" }\n",
    ));
    assert!(err.contains("line 8"), "{err}");
    assert!(err.contains("invalid regular expression"), "{err}");
}

#[test]
fn missing_file_is_refused() {
    let out = agent()
        .arg("--config")
        .arg("/nonexistent/agent.toml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/agent.toml: cannot read the configuration"),
        "{stderr}"
    );
}

#[test]
fn check_prints_the_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let version = dir.path().join("VERSION");
    std::fs::write(&version, "9.3.1.33994\n").unwrap();
    let body = config(&format!(
        "[[component]]\nrole = \"server\"\nversion = {{ file = \"{}\" }}\n\n[[component]]\nrole = \"client\"\nversion = {{ file = \"{}\" }}\n",
        version.display(),
        dir.path().join("absent").display()
    ));
    let path = write_config(dir.path(), &body);
    let out = agent()
        .arg("--config")
        .arg(&path)
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["host_id"], "srv-01");
    assert_eq!(json["components"][0]["role"], "server");
    assert_eq!(json["components"][0]["version"], "9.3.1.33994");
    assert_eq!(json["components"][1]["role"], "client");
    assert_eq!(json["components"][1]["status"], "not_installed");
}

#[test]
fn shipped_examples_are_valid() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/agent");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // Examples for Windows hosts use registry probes, refused elsewhere.
        let windows_only = name.contains("windows") || name.contains("iis");
        match tierwise_agent::config::load(&path) {
            Ok(_) => assert!(!windows_only || cfg!(windows), "{name} should need Windows"),
            Err(error) if windows_only && !cfg!(windows) => {
                assert!(
                    error.to_string().contains("works only on Windows"),
                    "{error}"
                )
            }
            Err(error) => panic!("{error}"),
        }
        checked += 1;
    }
    assert!(checked >= 5, "found only {checked} examples");
}

#[test]
fn completions_and_man_pages_come_from_the_cli_definition() {
    let out = agent().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(script.contains("_tierwise__agent()") && script.contains("policy-templates"));
    let dir = tempfile::tempdir().unwrap();
    let out = agent().args(["man"]).arg(dir.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page =
        std::fs::read_to_string(dir.path().join("tierwise-agent-service-install.1")).unwrap();
    assert!(
        page.contains(".TH tierwise-agent-service-install 1"),
        "{page}"
    );
}
