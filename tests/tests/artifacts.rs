//! Installers and the catalogue with real processes: `artifacts list` and
//! `remove` (audited, the files gone, refused while a rollout needs them),
//! partial uploads that never stay behind, and `releases import` that says
//! what it would change and removes releases only when told.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};
use tierwise_e2e::{
    binary, catalogue_path, keys, public_key, wait_for, Controller, Fleet, FleetOptions, V263, V931,
};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn listed(controller: &Controller) -> Vec<Value> {
    let text = controller.cli(&["artifacts", "list", "--json"]).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn artifacts_dir(controller: &Controller) -> PathBuf {
    controller.data_dir.join("artifacts")
}

fn add(controller: &Controller, file: &Path, release: &str, more: &[&str]) {
    let mut args = vec![
        "artifacts",
        "add",
        file.to_str().unwrap(),
        "--release",
        release,
    ];
    args.extend_from_slice(more);
    controller.cli(&args).unwrap();
}

/// Signs `installer` as the client installer of 26.3.100 for the
/// catalogue, offline, and imports that metadata.
fn sign_client_installer(controller: &Controller, dir: &Path, catalogue: &Path, installer: &Path) {
    let release_key = public_key(&keys(dir, &["create", "release.key"]).unwrap()).unwrap();
    keys(dir, &["create", "root.key"]).unwrap();
    keys(
        dir,
        &[
            "root",
            "--out",
            "root-1.json",
            "--version",
            "1",
            "--root-key",
            "root.key",
            "--release-public",
            &release_key,
        ],
    )
    .unwrap();
    keys(
        dir,
        &[
            "release",
            "--out",
            "release-1.json",
            "--version",
            "1",
            "--key",
            "release.key",
            "--catalogue",
            catalogue.to_str().unwrap(),
            "--installer",
            &format!("{}={V263}:client", installer.display()),
        ],
    )
    .unwrap();
    let root = dir.join("root-1.json");
    let release = dir.join("release-1.json");
    controller
        .cli(&[
            "releases",
            "metadata",
            "import",
            "--root",
            root.to_str().unwrap(),
            "--release",
            release.to_str().unwrap(),
        ])
        .unwrap();
}

#[test]
fn the_list_says_who_added_what_and_whether_it_is_signed_and_remove_deletes_it() {
    let root = tempfile::tempdir().unwrap();
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0").unwrap();
    let offline = root.path().join("offline");
    std::fs::create_dir_all(&offline).unwrap();
    let catalogue = offline.join("password-secure.toml");
    std::fs::copy(catalogue_path(), &catalogue).unwrap();
    controller
        .cli(&["releases", "import", catalogue.to_str().unwrap()])
        .unwrap();
    assert!(controller
        .cli(&["artifacts", "list"])
        .unwrap()
        .contains("No installers stored"));
    let client = offline.join("PasswordSecure_Client_26.3.100.msi");
    std::fs::write(&client, vec![7u8; 200_000]).unwrap();
    let web = offline.join("WebApp-iis.zip");
    std::fs::write(&web, vec![5u8; 30_000]).unwrap();
    add(&controller, &client, V263, &["--component", "client"]);
    // The same file kept for another release and component too.
    add(&controller, &client, V931, &["--component", "app_server"]);
    add(
        &controller,
        &web,
        V263,
        &["--component", "web", "--web-server", "iis"],
    );
    sign_client_installer(&controller, &offline, &catalogue, &client);

    let all = listed(&controller);
    assert_eq!(all.len(), 3, "{all:?}");
    let find = |release: &str, component: &str| {
        all.iter()
            .find(|a| a["release"] == release && a["component"] == component)
            .unwrap()
            .clone()
    };
    let signed = find(V263, "client");
    let client_sha = signed["sha256"].as_str().unwrap().to_owned();
    assert_eq!(client_sha.len(), 64);
    assert_eq!(signed["size"], 200_000);
    assert_eq!(signed["file_name"], "PasswordSecure_Client_26.3.100.msi");
    assert_eq!(signed["web_server"], Value::Null);
    assert_eq!(signed["added_by"], "admin");
    assert_eq!(signed["signed"], true, "covered by the imported metadata");
    let added: jiff::Timestamp = signed["added_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        added.as_second(),
        signed["added_at_ms"].as_i64().unwrap() / 1000
    );
    assert!(signed["added_at"].as_str().unwrap().ends_with('Z'));
    let other = find(V931, "app_server");
    assert_eq!(other["sha256"], client_sha.as_str());
    assert_eq!(other["signed"], false, "signed for 26.3.100's client only");
    let package = find(V263, "web");
    assert_eq!(package["web_server"], "iis");
    assert_eq!(package["signed"], false);
    let text = controller.cli(&["--utc", "artifacts", "list"]).unwrap();
    assert!(
        text.contains("SIGNED") && text.contains(&client_sha[..12]) && text.contains("web (iis)"),
        "{text}"
    );

    // A viewer reads the list but removes nothing.
    let viewer = controller
        .cli(&["operators", "add", "vera", "--role", "viewer"])
        .unwrap();
    let out = controller
        .cli_output_as(viewer.trim(), &["artifacts", "list", "--json"])
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = controller
        .cli_output_as(viewer.trim(), &["artifacts", "remove", &client_sha[..12]])
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("admin"), "{}", stderr(&out));

    // Bad input changes nothing and says what to give.
    for (args, says) in [
        (vec!["artifacts", "remove", "abc"], "is no SHA-256"),
        (
            vec!["artifacts", "remove", "00000000"],
            "no stored installer has",
        ),
        (
            vec![
                "artifacts",
                "remove",
                "--release",
                V263,
                "--component",
                "server",
            ],
            "no server installer of 26.3.100.34058 is stored",
        ),
        (
            vec![
                "artifacts",
                "remove",
                "--release",
                V263,
                "--component",
                "client",
                "--web-server",
                "iis",
            ],
            "--web-server goes with --component web",
        ),
        (vec!["artifacts", "remove"], "SHA256"),
    ] {
        let out = controller.cli_output(&args).unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(listed(&controller).len(), 3);

    // By release and component: the file stays while another installer
    // is the same file.
    let said = controller
        .cli(&[
            "artifacts",
            "remove",
            "--release",
            V263,
            "--component",
            "client",
        ])
        .unwrap();
    assert!(
        said.contains("Removed the client installer of 26.3.100.34058"),
        "{said}"
    );
    assert!(artifacts_dir(&controller).join(&client_sha).is_file());
    // By a prefix of the SHA-256: every installer that is this file, and
    // the file.
    let said = controller
        .cli(&["artifacts", "remove", &client_sha[..10]])
        .unwrap();
    assert!(
        said.contains("app_server installer of 9.3.1.33994"),
        "{said}"
    );
    assert!(!artifacts_dir(&controller).join(&client_sha).exists());
    let package_sha = package["sha256"].as_str().unwrap();
    controller
        .cli(&[
            "artifacts",
            "remove",
            "--release",
            V263,
            "--component",
            "web",
            "--web-server",
            "iis",
        ])
        .unwrap();
    assert!(!artifacts_dir(&controller).join(package_sha).exists());
    assert!(listed(&controller).is_empty());
    let removal = controller.audit_entry("artifact remove").unwrap().unwrap();
    assert_eq!(removal["actor"], "admin");
    assert_eq!(removal["subject"], format!("web iis {V263}"));
}

#[test]
fn an_installer_a_rollout_may_still_run_cannot_be_removed() {
    let fleet = Fleet::start(&FleetOptions {
        clients: 1,
        ..FleetOptions::default()
    })
    .unwrap();
    let c = &fleet.controller;
    let file = fleet.root.path().join("client.msi");
    std::fs::write(&file, b"client installer").unwrap();
    add(c, &file, V263, &["--component", "client"]);
    c.rollout_start(&["--approve-phases"]).unwrap();
    wait_for("waiting for approval", Duration::from_secs(30), || {
        Ok((c.rollout_status()?["state"] == "waiting_for_approval").then_some(()))
    })
    .unwrap();
    c.cli(&["rollout", "pause", "r1"]).unwrap();
    let out = c
        .cli_output(&[
            "artifacts",
            "remove",
            "--release",
            V263,
            "--component",
            "client",
        ])
        .unwrap();
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(
        said.contains("the installer `client 26.3.100.34058` cannot be removed")
            && said.contains("rollout r1 (paused)")
            && said.contains("tierwise rollout abort r1")
            && said.contains("nothing was removed"),
        "{said}"
    );
    assert_eq!(listed(c).len(), 1);
    c.cli(&["rollout", "abort", "r1"]).unwrap();
    c.cli(&[
        "artifacts",
        "remove",
        "--release",
        V263,
        "--component",
        "client",
    ])
    .unwrap();
    assert!(listed(c).is_empty());
}

/// Files in the controller's artifact directory whose names start with
/// `incoming-`.
fn incoming(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("incoming-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_partial_upload_goes_when_its_client_does_and_leftovers_go_at_start() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("controller");
    let controller = Controller::start(&data, "127.0.0.1:0").unwrap();
    // Large enough that the upload is still under way when it is killed.
    let big = root.path().join("big.msi");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(2 * 1024 * 1024 * 1024)
        .unwrap();
    let mut upload = Command::new(binary("tierwise"))
        .args(["--controller", &controller.url(), "--ca-cert"])
        .arg(controller.ca_path())
        .env("TIERWISE_TOKEN", controller.admin_token().unwrap())
        .args(["artifacts", "add", big.to_str().unwrap(), "--release", V263])
        .args(["--component", "client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dir = artifacts_dir(&controller);
    let (partial, _) = wait_for("a partial upload", Duration::from_secs(30), || {
        Ok(incoming(&dir)
            .into_iter()
            .find(|p| p.metadata().is_ok_and(|m| m.len() > 1024 * 1024)))
    })
    .unwrap();
    upload.kill().unwrap();
    upload.wait().unwrap();
    wait_for(
        "the partial upload removed",
        Duration::from_secs(10),
        || Ok((!partial.exists()).then_some(())),
    )
    .unwrap();
    assert!(listed(&controller).is_empty());

    // What a controller that died mid-upload leaves is removed when it
    // starts again; a file another replica is still writing is not.
    let old = dir.join("incoming-0123456789abcdef");
    std::fs::write(&old, b"half a file").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(120))
        .unwrap();
    let young = dir.join("incoming-fedcba9876543210");
    std::fs::write(&young, b"being written").unwrap();
    drop(controller);
    let controller = Controller::start(&data, "127.0.0.1:0").unwrap();
    assert!(!old.exists(), "{}", controller.process.log_text());
    assert!(young.exists());
    assert!(controller
        .process
        .log_text()
        .contains("removed partial uploads left by an earlier run"));
}

#[test]
fn an_import_says_what_it_would_change_and_removes_releases_only_when_told() {
    let root = tempfile::tempdir().unwrap();
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0").unwrap();
    controller
        .cli(&["releases", "import", &catalogue_path()])
        .unwrap();
    let releases = |c: &Controller| -> Vec<String> {
        let list: Value =
            serde_json::from_str(&c.cli(&["releases", "list", "--json"]).unwrap()).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|r| r["version"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = releases(&controller);
    assert!(before.len() > 2, "{before:?}");
    let one = root.path().join("one.toml");
    std::fs::write(
        &one,
        format!("[[release]]\nversion = \"{V263}\"\nreleased = \"2026-03-10\"\n\n[[release]]\nversion = \"99.0.0.1\"\nreleased = \"2026-04-01\"\n"),
    )
    .unwrap();
    let gone: Vec<&String> = before.iter().filter(|v| *v != V263).collect();

    let said = controller
        .cli(&["releases", "import", one.to_str().unwrap(), "--dry-run"])
        .unwrap();
    assert!(
        said.contains("Would import 2 release(s)")
            && said.contains("nothing was changed")
            && said.contains("needs --allow-remove")
            && said.contains("added:   99.0.0.1")
            && said.contains(&format!("changed: {V263}")),
        "{said}"
    );
    for version in &gone {
        assert!(said.contains(version.as_str()), "{version}: {said}");
    }
    assert_eq!(releases(&controller), before, "a dry run changes nothing");

    let out = controller
        .cli_output(&["releases", "import", one.to_str().unwrap()])
        .unwrap();
    assert!(!out.status.success());
    let refusal = stderr(&out);
    assert!(
        refusal.contains(&format!("would remove {} release(s)", gone.len()))
            && refusal.contains("--allow-remove")
            && refusal.contains("nothing was imported"),
        "{refusal}"
    );
    for version in &gone {
        assert!(refusal.contains(version.as_str()), "{version}: {refusal}");
    }
    assert_eq!(releases(&controller), before);

    let said = controller
        .cli(&[
            "releases",
            "import",
            one.to_str().unwrap(),
            "--allow-remove",
        ])
        .unwrap();
    assert!(said.contains("Imported 2 release(s)"), "{said}");
    assert_eq!(releases(&controller), [V263, "99.0.0.1"]);
    // Back to the full catalogue: that removes 99.0.0.1 again.
    controller
        .cli(&["releases", "import", &catalogue_path(), "--allow-remove"])
        .unwrap();
    assert_eq!(releases(&controller), before);
    // The same file again removes nothing: no flag needed.
    let said = controller
        .cli(&["releases", "import", &catalogue_path()])
        .unwrap();
    assert!(said.contains("removed: none"), "{said}");
}
