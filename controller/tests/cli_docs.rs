//! Shell completions and man pages come from the CLI definition itself: they
//! name the real subcommands and flags, and a bash completion completes.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::process::Command;

fn tierwise(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tierwise"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn completions_for_every_shell_name_the_commands_and_flags() {
    for (shell, marker) in [
        ("bash", "_tierwise()"),
        ("zsh", "#compdef tierwise"),
        ("fish", "complete -c tierwise"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let script = tierwise(&["completions", shell]);
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        for word in ["rollout", "ack-breaking", "allow-unsigned-releases"] {
            assert!(script.contains(word), "{shell}: no {word:?}");
        }
    }
    let refused = Command::new(env!("CARGO_BIN_EXE_tierwise"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("possible values: bash"));
}

#[test]
fn a_bash_completion_completes_a_subcommand() {
    if Command::new("bash").arg("--version").output().is_err() {
        return;
    }
    let script = tierwise(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tierwise.bash");
    std::fs::write(&file, script).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(tierwise rollout st); COMP_CWORD=2; \
             COMP_LINE='tierwise rollout st'; COMP_POINT=${{#COMP_LINE}}; \
             _tierwise tierwise st rollout; echo \"${{COMPREPLY[@]}}\"",
            file.display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "start status");
}

#[test]
fn man_pages_are_written_for_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let said = tierwise(&["man", dir.path().to_str().unwrap()]);
    assert!(said.starts_with("Wrote "), "{said}");
    let page = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    assert!(page("tierwise.1").contains(".TH tierwise 1"));
    let start = page("tierwise-rollout-start.1");
    assert!(start.contains(".TH tierwise-rollout-start 1"), "{start}");
    assert!(start.contains("\\fB\\-\\-ack\\fR \\fI<NAME>"), "{start}");
    assert!(start.contains("\\-\\-watch"), "{start}");
    assert!(page("tierwise-releases-metadata-import.1").contains("release"));
    // One page per command and subcommand, none for `help`.
    let pages = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(pages > 40, "{pages} pages");
    assert!(!dir.path().join("tierwise-help.1").exists());
}
