//! Signed release metadata end to end, with a real controller and real
//! agents: a controller refuses rollouts of unsigned installers until
//! metadata signed offline covers them; an agent that pins a release root
//! refuses, with the reason and before anything runs, every attack a
//! compromised controller (or a stolen admin token) can make — an installer
//! that is not signed, one signed for another release, rolled-back,
//! expired, tampered or uncertified metadata, a root rotation short of its
//! threshold, and a catalogue other than the signed one.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tierwise_e2e::{catalogue_path, wait_for, Agent, Controller, Plays, V263};

const V931: &str = "9.3.1.33994";
const OTHER_RELEASE: &str = "26.4.10.34111";

fn keys(dir: &Path, args: &[&str]) -> String {
    tierwise_e2e::keys(dir, args).unwrap()
}

fn public(created: &str) -> String {
    tierwise_e2e::public_key(created).unwrap()
}

/// The offline side: keys, a root (two of three root keys), and the
/// installers and catalogue it signs for.
struct Offline {
    dir: PathBuf,
    pin: String,
    release_public: String,
    catalogue: PathBuf,
    client_msi: PathBuf,
    other_msi: PathBuf,
}

impl Offline {
    fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let r1 = public(&keys(dir, &["create", "root1.key"]));
        let _ = r1;
        public(&keys(dir, &["create", "root2.key"]));
        let r3 = public(&keys(dir, &["create", "root3.key"]));
        let release_public = public(&keys(dir, &["create", "release.key"]));
        let rogue = public(&keys(dir, &["create", "rogue.key"]));
        keys(
            dir,
            &[
                "root",
                "--out",
                "root-1.json",
                "--version",
                "1",
                "--root-key",
                "root1.key",
                "--root-key",
                "root2.key",
                "--root-public",
                &r3,
                "--threshold",
                "2",
                "--release-public",
                &release_public,
            ],
        );
        let pin = keys(dir, &["fingerprint", "root-1.json"]).trim().to_owned();

        let catalogue = dir.join("password-secure.toml");
        std::fs::copy(catalogue_path(), &catalogue).unwrap();
        let client_msi = dir.join("PasswordSecure_Client_26.3.100.msi");
        std::fs::write(&client_msi, vec![7u8; 200_000]).unwrap();
        let other_msi = dir.join("PasswordSecure_Client_26.4.10.msi");
        std::fs::write(&other_msi, vec![9u8; 210_000]).unwrap();
        // Someone else's root, certifying the rogue key, and what it signs.
        keys(dir, &["create", "attacker.key"]);
        keys(
            dir,
            &[
                "root",
                "--out",
                "attacker-root.json",
                "--version",
                "1",
                "--root-key",
                "attacker.key",
                "--release-public",
                &rogue,
            ],
        );
        keys(
            dir,
            &[
                "release",
                "--out",
                "attacker-release.json",
                "--version",
                "9",
                "--key",
                "rogue.key",
                "--catalogue",
                catalogue.to_str().unwrap(),
                "--installer",
                &format!("{}={V263}:client", client_msi.display()),
            ],
        );
        Self {
            dir: dir.to_path_buf(),
            pin,
            release_public,
            catalogue,
            client_msi,
            other_msi,
        }
    }

    /// Release metadata `version` for the catalogue and both client
    /// installers, signed with `key`.
    fn release(&self, out: &str, version: u64, key: &str, expires: &str) -> PathBuf {
        self.release_with(out, version, key, expires, &[])
    }

    /// As `release`, with more `--installer FILE=RELEASE:COMPONENT`.
    fn release_with(
        &self,
        out: &str,
        version: u64,
        key: &str,
        expires: &str,
        more: &[String],
    ) -> PathBuf {
        let mut extra = Vec::new();
        for installer in more {
            extra.push("--installer");
            extra.push(installer.as_str());
        }
        keys(
            &self.dir,
            &[
                &[
                    "release",
                    "--out",
                    out,
                    "--version",
                    &version.to_string(),
                    "--key",
                    key,
                    "--catalogue",
                    self.catalogue.to_str().unwrap(),
                    "--installer",
                    &format!("{}={V263}:client", self.client_msi.display()),
                    "--installer",
                    &format!("{}={OTHER_RELEASE}:client", self.other_msi.display()),
                    "--expires",
                    expires,
                ][..],
                &extra,
            ]
            .concat(),
        );
        self.dir.join(out)
    }
}

/// A primary server already at the target and one client at 9.3.1 that
/// pins the root and takes its installer from the controller; with `web`,
/// also a web host at 9.3.1 that pins it and deploys the package it is
/// given.
fn fleet(
    root: &Path,
    controller: &Controller,
    pin: &str,
    web: bool,
) -> (Agent, Agent, Option<Agent>) {
    let url = controller.url();
    let order = root.join("order.log");
    let mut server = Agent::start(
        root,
        &url,
        "srv-01",
        Plays::Server(vec![("PSDB", true, V263)]),
        V263,
    )
    .unwrap();
    server.with_installers(&order, "0.1").unwrap();
    let mut client = Agent::start(root, &url, "cl-001", Plays::Client, V931).unwrap();
    client.with_installers_using(&order, "0.1", true).unwrap();
    client.pin_release_root(pin).unwrap();
    let web = web.then(|| {
        let mut web =
            Agent::start(root, &url, "web-01", Plays::Web { websocket: true }, V931).unwrap();
        web.with_web_package(V263).unwrap();
        web.pin_release_root(pin).unwrap();
        web
    });
    let expected = 2 + usize::from(web.is_some());
    wait_for("agents online", Duration::from_secs(30), || {
        let hosts = controller.hosts()?;
        Ok((hosts.len() == expected && hosts.iter().all(|h| h["online"] == true)).then_some(()))
    })
    .unwrap();
    controller.license("prod").unwrap();
    (server, client, web)
}

fn add_installer(controller: &Controller, file: &Path) {
    add_artifact(controller, file, "client");
}

fn add_artifact(controller: &Controller, file: &Path, component: &str) {
    controller
        .cli(&[
            "artifacts",
            "add",
            file.to_str().unwrap(),
            "--release",
            V263,
            "--component",
            component,
        ])
        .unwrap();
}

/// `tierwise releases metadata import --root … --release …`, whatever its
/// exit status.
fn import_metadata(
    controller: &Controller,
    roots: &[&Path],
    release: &Path,
) -> std::process::Output {
    let mut args = vec!["releases", "metadata", "import"];
    for root in roots {
        args.push("--root");
        args.push(root.to_str().unwrap());
    }
    args.push("--release");
    args.push(release.to_str().unwrap());
    controller.cli_output(&args).unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Waits until the rollout failed with a step whose reason holds `text`.
fn failed_with(controller: &Controller, text: &str) -> String {
    let (reason, _) = wait_for(
        &format!("a failure saying {text:?}"),
        Duration::from_secs(60),
        || {
            let status = controller.rollout_status()?;
            if status["state"] != "failed" {
                return Ok(None);
            }
            Ok(status["failures"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["reason"].as_str())
                .find(|r| r.contains(text))
                .map(str::to_owned))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}",
            controller.cli(&["rollout", "status"]).unwrap_or_default()
        )
    });
    assert!(reason.contains("nothing ran"), "{reason}");
    reason
}

fn trusted(client: &Agent) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(client.dir.join("state/release-trust.json")).unwrap(),
    )
    .unwrap()
}

#[test]
fn a_controller_refuses_unsigned_rollouts_until_signed_metadata_covers_them() {
    let root = tempfile::tempdir().unwrap();
    let offline = Offline::new(&root.path().join("offline"));
    // No --allow-unsigned-releases; metadata only from the offline root.
    let controller = Controller::start_exactly(
        &root.path().join("controller"),
        "127.0.0.1:0",
        &["--release-root-fingerprint", &offline.pin],
    )
    .unwrap();
    let (_server, client, web) = fleet(root.path(), &controller, &offline.pin, true);
    let web = web.unwrap();
    let package = web.dir.join(format!("WebApp-{V263}.zip"));
    controller
        .cli(&["releases", "import", offline.catalogue.to_str().unwrap()])
        .unwrap();
    add_installer(&controller, &offline.client_msi);
    add_artifact(&controller, &package, "web");

    // Nothing signed yet: the plan is blocked (exit 3) and says why.
    let plan = controller
        .cli_output(&["rollout", "plan", "--installation", "prod", "--to", V263])
        .unwrap();
    assert_eq!(plan.status.code(), Some(3), "{}", stderr(&plan));
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("installers are not signed: no signed release metadata imported")
            && text.contains("--allow-unsigned-releases"),
        "{text}"
    );
    let refused = controller.rollout_start_output(&[]).unwrap();
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("installers are not signed"),
        "{}",
        stderr(&refused)
    );

    // Metadata tampered with after signing is refused and nothing is stored.
    let good = offline.release_with(
        "release-1.json",
        1,
        "release.key",
        "30d",
        &[format!("{}={V263}:web", package.display())],
    );
    let mut envelope: Value =
        serde_json::from_str(&std::fs::read_to_string(&good).unwrap()).unwrap();
    let payload = envelope["payload"]
        .as_str()
        .unwrap()
        .replace("200000", "200001");
    envelope["payload"] = Value::String(payload);
    let tampered = offline.dir.join("tampered.json");
    std::fs::write(&tampered, envelope.to_string()).unwrap();
    let out = import_metadata(&controller, &[&offline.dir.join("root-1.json")], &tampered);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("0 valid signature(s) of the 1 required")
            && stderr(&out).contains("nothing was imported"),
        "{}",
        stderr(&out)
    );
    let shown: Value = serde_json::from_str(
        &controller
            .cli(&["releases", "metadata", "show", "--json"])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(shown["present"], false);
    assert_eq!(shown["pinned_root"], offline.pin.as_str());
    assert_eq!(shown["pinned_by"], "--release-root-fingerprint");
    // Metadata from keys of someone's own (an admin token is enough to
    // try) is refused: it does not start from the pinned root.
    let out = import_metadata(
        &controller,
        &[&offline.dir.join("attacker-root.json")],
        &offline.dir.join("attacker-release.json"),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "accepts release metadata only from root {} (pinned by --release-root-fingerprint)",
            offline.pin
        )),
        "{}",
        stderr(&out)
    );

    // The signed metadata: shown, and the plan is clear.
    let out = import_metadata(&controller, &[&offline.dir.join("root-1.json")], &good);
    assert!(out.status.success(), "{}", stderr(&out));
    let imported = String::from_utf8_lossy(&out.stdout);
    assert!(imported.contains(&offline.pin), "{imported}");
    let shown: Value = serde_json::from_str(
        &controller
            .cli(&["releases", "metadata", "show", "--json"])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(shown["present"], true);
    assert_eq!(shown["root_fingerprint"], offline.pin.as_str());
    assert_eq!(shown["release_version"], 1);
    assert_eq!(shown["catalogue_matches"], true);
    assert_eq!(shown["installers"].as_array().unwrap().len(), 3);
    assert_eq!(shown["problem"], Value::Null);
    let plan: Value = serde_json::from_str(
        &controller
            .cli(&[
                "rollout",
                "plan",
                "--installation",
                "prod",
                "--to",
                V263,
                "--json",
            ])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(plan["blocked"], false);
    assert!(
        !plan["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "signed_release"),
        "{plan}"
    );

    // The rollout runs; the pinned agent checked and remembers version 1.
    controller.rollout_start(&[]).unwrap();
    wait_for("rollout completed", Duration::from_secs(60), || {
        let s = controller.rollout_status()?;
        Ok((s["state"] == "completed").then_some(()))
    })
    .unwrap();
    assert_eq!(client.installs(), 1);
    assert_eq!(trusted(&client)["release_version"], 1);
    // The web host deployed the signed package.
    assert_eq!(
        std::fs::read_to_string(web.dir.join("docroot/version.txt"))
            .unwrap()
            .trim(),
        V263
    );
    assert_eq!(trusted(&web)["release_version"], 1);
    assert!(client
        .process
        .log_text()
        .contains("installer verified against signed release metadata"));
    let audit = controller.cli(&["audit"]).unwrap();
    assert!(audit.contains("release metadata import"), "{audit}");
}

/// What a compromised controller serves: rows written straight into its
/// store, which it does not check again (agents do).
fn serve_metadata(controller: &Controller, roots: &[PathBuf], release: &Path) {
    let roots: Vec<String> = roots
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let roots = format!("[{}]", roots.join(","));
    let release = std::fs::read_to_string(release).unwrap();
    let url = format!(
        "sqlite://{}",
        controller.data_dir.join("tierwise.db").display()
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO release_metadata (imported_ms, roots, release, root_version, release_version) \
                 VALUES (1, ?, ?, 0, 0)",
            )
            .bind(roots)
            .bind(release)
            .execute(&mut db)
            .await
            .unwrap();
        });
}

#[test]
fn a_pinned_agent_refuses_every_metadata_attack_and_nothing_runs() {
    let root = tempfile::tempdir().unwrap();
    let offline = Offline::new(&root.path().join("offline"));
    // The controller an attacker controls allows unsigned releases.
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0").unwrap();
    let (_server, client, _) = fleet(root.path(), &controller, &offline.pin, false);
    controller
        .cli(&["releases", "import", offline.catalogue.to_str().unwrap()])
        .unwrap();
    let release_1 = offline.release("release-1.json", 1, "release.key", "30d");
    let release_2 = offline.release("release-2.json", 2, "release.key", "30d");
    let root_1 = offline.dir.join("root-1.json");
    let out = import_metadata(&controller, &[&root_1], &release_2);
    assert!(out.status.success(), "{}", stderr(&out));

    // The first import pinned its root: metadata of another root is refused.
    let out = import_metadata(
        &controller,
        &[&offline.dir.join("attacker-root.json")],
        &offline.dir.join("attacker-release.json"),
    );
    assert!(
        stderr(&out).contains(&format!(
            "accepts release metadata only from root {} (pinned by first import)",
            offline.pin
        )),
        "{}",
        stderr(&out)
    );

    // 1. An installer nobody signed, stored with an admin token.
    let evil = offline.dir.join("evil.msi");
    std::fs::write(&evil, vec![6u8; 200_000]).unwrap();
    add_installer(&controller, &evil);
    let plan = controller
        .cli(&["rollout", "plan", "--installation", "prod", "--to", V263])
        .unwrap();
    assert!(plan.contains("!!! UNSIGNED RELEASE"), "{plan}");
    controller.rollout_start(&[]).unwrap();
    failed_with(
        &controller,
        "is not in the signed release metadata (version 2)",
    );
    assert!(client.runs().is_empty());
    // The metadata itself verified: version 2 is remembered.
    assert_eq!(trusted(&client)["release_version"], 2);

    // 2. The installer signed for another release (mix and match).
    controller.cli(&["rollout", "abort", "r1"]).unwrap();
    add_installer(&controller, &offline.other_msi);
    controller.rollout_start(&[]).unwrap();
    failed_with(
        &controller,
        &format!("is signed for client {OTHER_RELEASE}, not for client {V263}"),
    );
    assert!(client.runs().is_empty());

    // The right installer from now on; the attacks are on the metadata.
    controller.cli(&["rollout", "abort", "r2"]).unwrap();
    add_installer(&controller, &offline.client_msi);

    // 3. Rolled back to version 1, validly signed but older.
    serve_metadata(&controller, std::slice::from_ref(&root_1), &release_1);
    controller.rollout_start(&[]).unwrap();
    failed_with(
        &controller,
        "has version 1, but version 2 was already trusted",
    );

    let attacks: Vec<(&str, Vec<PathBuf>, PathBuf, &str)> = {
        // Expired: signed for one second.
        let expired = offline.release("release-3-expired.json", 3, "release.key", "1s");
        // Signed by a key the root does not certify.
        let rogue = offline.release("release-3-rogue.json", 3, "rogue.key", "30d");
        // A root rotation signed by only one of the two old keys it needs.
        keys(&offline.dir, &["create", "root4.key"]);
        keys(
            &offline.dir,
            &[
                "root",
                "--out",
                "root-2.json",
                "--version",
                "2",
                "--root-key",
                "root4.key",
                "--release-public",
                &offline.release_public,
                "--sign-with",
                "root1.key",
            ],
        );
        // Signed, then changed: the length of the client installer.
        let mut envelope: Value =
            serde_json::from_str(&std::fs::read_to_string(&release_2).unwrap()).unwrap();
        envelope["payload"] = Value::String(
            envelope["payload"]
                .as_str()
                .unwrap()
                .replace("200000", "200001"),
        );
        let tampered = offline.dir.join("release-2-tampered.json");
        std::fs::write(&tampered, envelope.to_string()).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        vec![
            ("expired", vec![root_1.clone()], expired, "expired at"),
            (
                "uncertified key",
                vec![root_1.clone()],
                rogue,
                "the release metadata: 0 valid signature(s) of the 1 required",
            ),
            (
                "root threshold",
                vec![root_1.clone(), offline.dir.join("root-2.json")],
                release_2.clone(),
                "root version 2 (by the previous root's keys): 1 valid signature(s) of the 2 required",
            ),
            (
                "tampered",
                vec![root_1.clone()],
                tampered,
                "the release metadata: 0 valid signature(s) of the 1 required",
            ),
        ]
    };
    for (attack, roots, release, expected) in attacks {
        serve_metadata(&controller, &roots, &release);
        controller.cli(&["rollout", "resume", "r3"]).unwrap();
        let reason = failed_with(&controller, expected);
        assert!(client.runs().is_empty(), "{attack}: {reason}");
    }

    // 4. The signed metadata back, but a catalogue other than the signed one.
    serve_metadata(&controller, std::slice::from_ref(&root_1), &release_2);
    let changed = offline.dir.join("changed.toml");
    let mut text = std::fs::read_to_string(&offline.catalogue).unwrap();
    text.push_str("\n# one line more\n");
    std::fs::write(&changed, text).unwrap();
    controller
        .cli(&["releases", "import", changed.to_str().unwrap()])
        .unwrap();
    controller.cli(&["rollout", "resume", "r3"]).unwrap();
    failed_with(
        &controller,
        "is not the one release metadata version 2 was signed for",
    );
    assert!(client.runs().is_empty());

    // Everything as signed: the step runs, once.
    controller
        .cli(&["releases", "import", offline.catalogue.to_str().unwrap()])
        .unwrap();
    controller.cli(&["rollout", "resume", "r3"]).unwrap();
    wait_for("rollout completed", Duration::from_secs(60), || {
        let s = controller.rollout_status()?;
        Ok((s["state"] == "completed").then_some(()))
    })
    .unwrap();
    assert_eq!(client.installs(), 1);
}
