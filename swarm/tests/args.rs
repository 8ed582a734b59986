//! The swarm refuses what it cannot run, saying what to give instead (and,
//! being an integration test, makes `cargo test` build the binary the
//! end-to-end smoke run uses).

use std::process::Command;

fn swarm(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tierwise-swarm"))
        .args(args)
        .output()
        .expect("run tierwise-swarm")
}

#[test]
fn bad_arguments_are_refused_with_what_to_give() {
    let out = swarm(&["--agents", "2"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 3"));
    let out = swarm(&["--failure-rate", "2"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("between 0.0 and 1.0"));
    let out = swarm(&["--scenarios", "chaos"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("steady"));
    let help = swarm(&["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("--serve-flag"));
}
