//! The Windows installer's tables against the goldens in
//! `deploy/windows/golden/`: builds the MSI with `scripts/build-msi` from a
//! dummy exe (no table depends on the exe's bytes), exports the tables with
//! `scripts/msi-tables` and compares them line by line, so any change to
//! what the MSI installs (service, registry, upgrade rules, folders) shows
//! up as a diff someone has to accept.
//!
//! Needs wixl and msitools (`scripts/install-windows-toolchain`); without
//! them the test says it skipped, unless `TIERWISE_REQUIRE_WINDOWS_TOOLS=1`.
//! `TIERWISE_UPDATE_GOLDEN=1` rewrites the goldens from the current build.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

const UPDATE_HINT: &str =
    "TIERWISE_UPDATE_GOLDEN=1 cargo test -p tierwise-agent --test msi, then review the diff of deploy/windows/golden/";

#[test]
fn msi_tables_match_the_goldens() {
    // msibuild and msiextract, which scripts/build-msi also runs, come in
    // the same package as msiinfo (msitools).
    let missing: Vec<&str> = ["wixl", "msiinfo"]
        .into_iter()
        .filter(|tool| !runs(tool))
        .collect();
    if !missing.is_empty() {
        let message = format!(
            "{} not found (scripts/install-windows-toolchain installs them)",
            missing.join(", ")
        );
        if env_flag("TIERWISE_REQUIRE_WINDOWS_TOOLS") {
            panic!("{message}; TIERWISE_REQUIRE_WINDOWS_TOOLS=1 requires them");
        }
        eprintln!("skipped: {message}");
        return;
    }

    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the agent crate lies in the workspace")
        .to_path_buf();
    let work = tempfile::tempdir().expect("a temporary directory");
    let exe = work.path().join("dummy.exe");
    fs::write(&exe, b"MZ: stands in for tierwise-agent.exe").expect("write the dummy exe");
    let msi = work.path().join("tierwise-agent.msi");
    let tables = work.path().join("tables");

    // The version defaults to the workspace's: a version an MSI cannot
    // carry fails here, not only at release time.
    run(Command::new("bash")
        .arg(repo.join("scripts/build-msi"))
        .arg("--exe")
        .arg(&exe)
        .arg("--out")
        .arg(&msi));
    run(Command::new("bash")
        .arg(repo.join("scripts/msi-tables"))
        .arg(&msi)
        .arg(&tables));

    let golden = repo.join("deploy/windows/golden");
    if env_flag("TIERWISE_UPDATE_GOLDEN") {
        update_goldens(&tables, &golden);
        eprintln!("updated the goldens in {}", golden.display());
        return;
    }

    let mut report = String::new();
    for name in file_names(&golden).union(&file_names(&tables)) {
        let expected = read_or_empty(&golden.join(name));
        let actual = read_or_empty(&tables.join(name));
        if expected != actual {
            report.push_str(&unified_diff(
                &format!("deploy/windows/golden/{name}"),
                &format!("built/{name}"),
                &expected,
                &actual,
            ));
        }
    }
    assert!(
        report.is_empty(),
        "the MSI's tables differ from the goldens:\n{report}\nIf the change is intended, run {UPDATE_HINT}"
    );
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|value| value == "1")
}

/// Whether `tool --version` runs (wixl and msiinfo answer it).
fn runs(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("could not run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn file_names(dir: &Path) -> BTreeSet<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .map(|entry| entry.expect("a directory entry").file_name())
        .filter_map(|name| name.into_string().ok())
        .filter(|name| name.ends_with(".idt"))
        .collect()
}

fn read_or_empty(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn update_goldens(tables: &Path, golden: &Path) {
    fs::create_dir_all(golden).expect("create the golden directory");
    for stale in file_names(golden).difference(&file_names(tables)) {
        fs::remove_file(golden.join(stale)).expect("remove a stale golden");
    }
    for name in file_names(tables) {
        fs::copy(tables.join(&name), golden.join(&name)).expect("copy a golden");
    }
}

/// A unified-style diff (three lines of context) of two small texts, from
/// their longest common subsequence of lines.
fn unified_diff(old_name: &str, new_name: &str, old: &str, new: &str) -> String {
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    // common[i][j]: length of the longest common subsequence of old[i..] and new[j..].
    let mut common = vec![vec![0usize; new.len() + 1]; old.len() + 1];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            common[i][j] = if old[i] == new[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    // Each line of the edit script: (' ' | '-' | '+', text).
    let mut script = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            script.push((' ', old[i]));
            i += 1;
            j += 1;
        } else if i < old.len() && (j == new.len() || common[i + 1][j] >= common[i][j + 1]) {
            script.push(('-', old[i]));
            i += 1;
        } else {
            script.push(('+', new[j]));
            j += 1;
        }
    }

    const CONTEXT: usize = 3;
    let changed: Vec<usize> = (0..script.len()).filter(|&k| script[k].0 != ' ').collect();
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k < changed.len() && changed[k] <= end + 2 * CONTEXT + 1 {
            end = changed[k];
            k += 1;
        }
        let end = (end + CONTEXT + 1).min(script.len());
        let old_start = script[..start].iter().filter(|(op, _)| *op != '+').count();
        let new_start = script[..start].iter().filter(|(op, _)| *op != '-').count();
        let hunk = &script[start..end];
        let old_len = hunk.iter().filter(|(op, _)| *op != '+').count();
        let new_len = hunk.iter().filter(|(op, _)| *op != '-').count();
        out.push_str(&format!(
            "@@ -{},{old_len} +{},{new_len} @@\n",
            old_start + 1,
            new_start + 1
        ));
        for (op, line) in hunk {
            out.push_str(&format!("{op}{line}\n"));
        }
    }
    out
}
