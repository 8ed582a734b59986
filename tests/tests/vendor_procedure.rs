//! The vendor's update instructions kept with real processes: a Web
//! Application package of another version is refused before the document
//! directory is touched; a release reaches production only after the test
//! installation ran it for the soak time, unless an operator skips that on
//! record.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;
use tierwise_e2e::{wait_for, Agent, Fleet, FleetOptions, Plays, V263, V931};

/// Every file under `dir` with its contents.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// The current rollout's status once it has ended (failed, completed, or
/// completed with failures).
fn ended(c: &tierwise_e2e::Controller) -> Value {
    let mut last = Value::Null;
    let result = wait_for("the rollout to end", Duration::from_secs(90), || {
        let s = c.rollout_status()?;
        last = s.clone();
        Ok(matches!(
            s["state"].as_str(),
            Some("failed" | "completed" | "completed_with_failures")
        )
        .then_some(s))
    });
    match result {
        Ok((status, _)) => status,
        Err(e) => {
            let log = c.process.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "{e}\nlast status: {last:#}\ncontroller log:\n{}",
                tail.join("\n")
            )
        }
    }
}

#[test]
fn a_web_package_of_another_version_is_refused_and_the_document_directory_is_unchanged() {
    let fleet = Fleet::start(&FleetOptions {
        clients: 1,
        ..FleetOptions::default()
    })
    .unwrap();
    // The package where the web host looks for 26.3.100.34058 is another
    // release's.
    let path = fleet.web.dir.join(format!("WebApp-{V263}.zip"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    for (name, text) in [
        ("version.txt", "26.9.100.34193\n"),
        (
            "index.html",
            "<!doctype html><title>Password Secure</title>",
        ),
    ] {
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    let docroot = fleet.web.dir.join("docroot");
    let before = tree(&docroot);

    let c = &fleet.controller;
    c.rollout_start(&[]).unwrap();
    let status = ended(c);
    assert_eq!(status["state"], "failed", "{status}");
    let failure = &status["failures"][0];
    assert_eq!(failure["host_id"], "web-01");
    assert_eq!(failure["action"], "deploy_web_app");
    let reason = failure["reason"].as_str().unwrap();
    assert!(
        reason.contains("is the Web Application of 26.9.100.34193 (its version.txt says so), not of 26.3.100.34058; nothing was changed"),
        "{reason}"
    );
    assert_eq!(
        tree(&docroot),
        before,
        "the document directory is untouched"
    );
    assert!(fleet.clients.iter().all(|a| a.installs() == 0));
}

#[test]
fn production_waits_for_the_test_installation_to_soak_unless_skipped_on_record() {
    let fleet = Fleet::start(&FleetOptions {
        clients: 1,
        ..FleetOptions::default()
    })
    .unwrap();
    let c = &fleet.controller;
    // The test installation: a server with its database and one client.
    let url = c.url();
    let order = fleet.root.path().join("test-order.log");
    let mut test_server = Agent::start_in(
        "test",
        fleet.root.path(),
        &url,
        "test-srv",
        Plays::Server(vec![("PSDB", true, V931)]),
        V931,
    )
    .unwrap();
    test_server.with_installers(&order, "0.2").unwrap();
    let mut test_client = Agent::start_in(
        "test",
        fleet.root.path(),
        &url,
        "test-cl",
        Plays::Client,
        V931,
    )
    .unwrap();
    test_client.with_installers(&order, "0.1").unwrap();
    wait_for("the test hosts online", Duration::from_secs(30), || {
        let hosts = c.hosts()?;
        Ok((hosts
            .iter()
            .filter(|h| h["installation"] == "test" && h["online"] == true)
            .count()
            == 2)
            .then_some(()))
    })
    .unwrap();
    c.license("test").unwrap();

    // Settings: refused when they make no sense, shown when set.
    let refused = |args: &[&str], says: &str| {
        let mut all = vec!["installations", "set"];
        all.extend_from_slice(args);
        let out = c.cli_output(&all).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    };
    refused(&["prod", "--promote-from", "test"], "--soak is needed");
    refused(
        &["prod", "--promote-from", "none", "--soak", "1d"],
        "--soak has no meaning",
    );
    refused(
        &["prod", "--promote-from", "nowhere", "--soak", "1h"],
        "no installation `nowhere`",
    );
    c.cli(&[
        "installations",
        "set",
        "prod",
        "--promote-from",
        "test",
        "--soak",
        "6s",
    ])
    .unwrap();
    refused(
        &["test", "--promote-from", "prod", "--soak", "1h"],
        "would be promoted from itself",
    );
    let shown: Value =
        serde_json::from_str(&c.cli(&["installations", "show", "prod", "--json"]).unwrap())
            .unwrap();
    assert_eq!(shown["promote_from"], "test");
    assert_eq!(shown["soak_seconds"], 6);

    let plan = |installation: &str| -> (Value, bool) {
        let out = c
            .cli_output(&[
                "rollout",
                "plan",
                "--installation",
                installation,
                "--to",
                V263,
                "--json",
            ])
            .unwrap();
        (
            serde_json::from_slice(&out.stdout).unwrap(),
            out.status.success(),
        )
    };
    // Not rolled out on test: production's plan is blocked, and says why.
    let (prod, ok) = plan("prod");
    assert!(!ok && prod["blocked"] == true);
    assert_eq!(
        prod["promotion"]["state"], "not_rolled_out",
        "{}",
        prod["promotion"]
    );
    let blocker = prod["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "promotion")
        .expect("a promotion finding");
    assert_eq!(blocker["severity"], "blocker");
    let refused = c.rollout_start_output(&[]).unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("has not completed a rollout on test"),
        "{refused:?}"
    );

    // Test rolls to the release; production then waits for the soak.
    c.cli(&[
        "rollout",
        "start",
        "--installation",
        "test",
        "--to",
        V263,
        "--ack-breaking",
        "--ack-server-manager-password",
        "--ack",
        "changelog",
    ])
    .unwrap();
    wait_for(
        "the test rollout to complete",
        Duration::from_secs(60),
        || {
            let status: Value =
                serde_json::from_str(&c.cli(&["rollout", "status", "r1", "--json"])?)?;
            Ok((status["state"] == "completed").then_some(()))
        },
    )
    .unwrap();
    let (prod, ok) = plan("prod");
    assert!(!ok);
    assert_eq!(
        prod["promotion"]["state"], "soaking",
        "{}",
        prod["promotion"]
    );
    let soak_ends = prod["promotion"]["soak_ends"].as_str().unwrap().to_owned();
    assert!(
        prod["promotion"]["reason"]
            .as_str()
            .unwrap()
            .ends_with(&format!("its soak ends at {soak_ends}")),
        "{}",
        prod["promotion"]
    );
    let text = c
        .cli_output(&["rollout", "plan", "--installation", "prod", "--to", V263])
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("Promotion from test: "));
    // Once it has soaked, production may go.
    let (prod, _) = wait_for("the soak to end", Duration::from_secs(30), || {
        let (prod, ok) = plan("prod");
        Ok(ok.then_some(prod))
    })
    .unwrap();
    assert_eq!(prod["promotion"]["state"], "ready");
    assert_eq!(prod["promotion"]["rollout"], "r1");

    // A longer soak blocks again; an emergency start skips it, on record.
    c.cli(&[
        "installations",
        "set",
        "prod",
        "--promote-from",
        "test",
        "--soak",
        "7d",
    ])
    .unwrap();
    assert!(!plan("prod").1);
    c.rollout_start(&["--ack", "skip-promotion"]).unwrap();
    let skipped = c
        .audit_entry("promotion skipped")
        .unwrap()
        .expect("the skip is audited");
    assert_eq!(skipped["actor"], "admin");
    assert_eq!(skipped["subject"], "prod");
    assert!(
        skipped["details"]
            .as_str()
            .unwrap()
            .contains("its soak ends at"),
        "{skipped}"
    );
    assert_eq!(
        c.audit_entry("installation set").unwrap().expect("audited")["subject"],
        "prod"
    );
}

#[test]
fn a_backup_without_a_new_file_for_every_database_halts_before_the_server_is_touched() {
    let mut fleet = Fleet::start(&FleetOptions {
        clients: 1,
        ..FleetOptions::default()
    })
    .unwrap();
    let c = &fleet.controller;
    let plan = || -> Value {
        serde_json::from_str(
            &c.cli(&[
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
        .unwrap()
    };
    let unverified = |plan: &Value| {
        plan["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "backup" && f["severity"] == "warning")
    };
    // Without a location the plan warns that the backup is unverified.
    assert!(unverified(&plan()));
    fleet.server.with_backup_location().unwrap();
    wait_for(
        "the location to be reported",
        Duration::from_secs(30),
        || Ok((!unverified(&plan())).then_some(())),
    )
    .unwrap();

    // The server reports PSDB and Archive. The backup command exits 0 but
    // writes PSDB's file only; Archive has just a backup from an hour ago.
    let backups = fleet.server.dir.join("backups");
    let old = backups.join("Archive_0.bak");
    std::fs::write(&old, "last night's backup").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&old)
        .and_then(|f| f.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600)))
        .unwrap();
    std::fs::write(fleet.server.dir.join("backup-skips"), "Archive\n").unwrap();
    c.rollout_start(&[]).unwrap();
    let status = ended(c);
    assert_eq!(status["state"], "failed", "{status}");
    let failure = &status["failures"][0];
    assert_eq!(failure["action"], "backup");
    let reason = failure["reason"].as_str().unwrap();
    for expected in [
        "the backup command exited 0, but 1 of 2 databases have no new backup of their own in ",
        &format!("`Archive`: the newest, {}, was written ", old.display()),
        "before the step; nothing protects these databases",
    ] {
        assert!(reason.contains(expected), "{expected}: {reason}");
    }
    assert!(!reason.contains("`PSDB`"), "{reason}");
    assert_eq!(status["backup"], Value::Null);
    assert_eq!(status["backups"], serde_json::json!([]));
    let runs = fleet.server.runs();
    assert!(
        runs.iter()
            .all(|r| !r.contains(" stop ") && !r.contains(" install ")),
        "{runs:?}"
    );
    assert!(c.audit_entry("backup verified").unwrap().is_none());

    // With a file for each database, resuming verifies both and goes on.
    std::fs::remove_file(fleet.server.dir.join("backup-skips")).unwrap();
    let id = status["id"].as_str().unwrap().to_owned();
    c.cli(&["rollout", "resume", &id]).unwrap();
    let done = ended(c);
    assert_eq!(done["state"], "completed", "{done}");
    let files = done["backups"].as_array().unwrap();
    let databases: Vec<&str> = files
        .iter()
        .map(|f| f["database"].as_str().unwrap())
        .collect();
    assert_eq!(databases, ["PSDB", "Archive"], "{done}");
    for file in files {
        let path = file["path"].as_str().unwrap();
        let database = file["database"].as_str().unwrap();
        assert_eq!(file["host_id"], "srv-01", "{file}");
        assert!(
            Path::new(path)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{database}_")))
                && path != old.display().to_string()
                && Path::new(path).is_file(),
            "{file}"
        );
        assert!(file["size"].as_u64().unwrap() > 0, "{file}");
        assert!(file["time"].as_str().unwrap().ends_with('Z'), "{file}");
    }
    // `backup` stays, the first file, for scripts written before.
    let backup = &done["backup"];
    assert_eq!(backup["host_id"], "srv-01", "{done}");
    for key in ["path", "size", "time"] {
        assert_eq!(backup[key], files[0][key], "{key}");
    }
    assert_eq!(backup.get("database"), None, "{backup}");

    let text = c.cli(&["rollout", "status"]).unwrap();
    assert!(
        text.contains("Protected by the backups on srv-01 of its 2 databases:"),
        "{text}"
    );
    let verified = c.audit_entry("backup verified").unwrap().expect("audited");
    assert_eq!(verified["actor"], "agent srv-01");
    let details = verified["details"].as_str().unwrap();
    for file in files {
        let line = format!(
            "{}: {}",
            file["database"].as_str().unwrap(),
            file["path"].as_str().unwrap()
        );
        assert!(text.contains(&format!("  {line} (")), "{line}: {text}");
        assert!(details.contains(&format!("{line} (")), "{line}: {details}");
    }
}

/// The web host's package for 26.3.100.34058, with a `config.bat` at its
/// top and one in a subfolder, as the Server Manager might generate them.
fn package_with_config_bats(fleet: &Fleet) {
    let path = fleet.web.dir.join(format!("WebApp-{V263}.zip"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    for (name, text) in [
        ("version.txt", format!("{V263}\n")),
        (
            "index.html",
            "<!doctype html><title>Password Secure</title>".to_owned(),
        ),
        ("config.bat", "@echo configure IIS".to_owned()),
        (
            "setup/iis/config.bat",
            "@echo configure IIS again".to_owned(),
        ),
    ] {
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
}

fn roll_to_the_end(fleet: &Fleet) -> Value {
    let c = &fleet.controller;
    c.rollout_start(&[]).unwrap();
    let status = ended(c);
    assert_eq!(status["state"], "completed", "{status}");
    status
}

#[test]
fn config_bat_is_deleted_wherever_it_sits_on_iis_and_kept_on_apache() {
    // Apache keeps the files the package brings.
    let fleet = Fleet::start(&FleetOptions {
        clients: 1,
        ..FleetOptions::default()
    })
    .unwrap();
    package_with_config_bats(&fleet);
    roll_to_the_end(&fleet);
    let docroot = fleet.web.dir.join("docroot");
    assert!(docroot.join("config.bat").is_file());
    assert!(docroot.join("setup/iis/config.bat").is_file());
    drop(fleet);

    // The same web host as IIS (WebSocket Protocol taken as present).
    let mut fleet = Fleet::start(&FleetOptions {
        clients: 1,
        ..FleetOptions::default()
    })
    .unwrap();
    let config = std::fs::read_to_string(&fleet.web.config).unwrap();
    let websocket = config
        .lines()
        .find(|l| l.starts_with("websocket = "))
        .unwrap()
        .to_owned();
    let config = config
        .replace("server = \"apache\"", "server = \"iis\"")
        .replace(&websocket, "websocket = true");
    tierwise_e2e::set_file(&fleet.web.config, &config).unwrap();
    fleet.web.restart().unwrap();
    let c = &fleet.controller;
    wait_for("the web host back as IIS", Duration::from_secs(30), || {
        let host = c.host("web-01")?.unwrap_or_default();
        let web = tierwise_e2e::component(&host, "web")
            .cloned()
            .unwrap_or_default();
        Ok((host["online"] == true && web.to_string().contains("iis")).then_some(()))
    })
    .unwrap();
    package_with_config_bats(&fleet);
    let status = roll_to_the_end(&fleet);
    let docroot = fleet.web.dir.join("docroot");
    assert!(docroot.join("index.html").is_file());
    assert!(!docroot.join("config.bat").exists());
    assert!(!docroot.join("setup/iis/config.bat").exists());
    assert!(docroot.join("setup/iis").is_dir());
    assert_eq!(status["failures"], serde_json::json!([]));
    // Each deletion is in the step's report (as the agent journaled and
    // sent it).
    let reports: String = std::fs::read_dir(fleet.web.dir.join("state/steps"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    for deleted in ["config.bat", "setup/iis/config.bat"] {
        let line = format!(
            "deleted the generated {} without running it",
            docroot.join(deleted).display()
        );
        assert!(reports.contains(&line), "{line} in {reports}");
    }
}
