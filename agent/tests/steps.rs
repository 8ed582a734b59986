//! Typed steps run the locally configured command, at most once per step id.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tierwise_agent::config::{
    ActionCommand, BackupLocation, ComponentSpec, ConfiguredAction, DatabasesProbe, FactsSpec,
    HealthChecks, Source, TcpTarget, VersionProbe, WindowsServicesAction,
};
use tierwise_agent::steps::journal::{Journal, JournalEntry};
use tierwise_agent::steps::Executor;
use tierwise_common::action::{StepAction, StepOutcome};
use tierwise_common::{Role, Version};

const V263: Version = Version::new(26, 3, 100, 34058);

/// A stand-in installer: counts its runs in `runs`, prints its arguments,
/// and exits with the code in the file `exit` (0 when absent).
fn installer(dir: &Path) -> ActionCommand {
    let script = format!(
        "echo run >> {runs}; echo \"installing $@\"; echo 'MSI log line' >&2; exit $(cat {exit} 2>/dev/null || echo 0)",
        runs = dir.join("runs").display(),
        exit = dir.join("exit").display()
    );
    ActionCommand {
        argv: vec![
            "sh".into(),
            "-c".into(),
            script,
            "installer".into(),
            "/i".into(),
            "{artifact}".into(),
            "VERSION={version}".into(),
            "STEP={step}".into(),
        ],
        timeout: Duration::from_secs(10),
        transient_exit_codes: vec![1618],
        restart_exit_codes: vec![30],
    }
}

fn executor(dir: &Path, install: ActionCommand) -> Executor {
    let client = ComponentSpec {
        role: Role::Client,
        version: VersionProbe::Fixed(Version::new(9, 3, 1, 33994)),
        facts: FactsSpec::Client { update_check: None },
        actions: BTreeMap::from([("install", install.into())]),
        health: None,
        backup_location: None,
        web_app_output: None,
    };
    Executor::new(&dir.join("state"), vec![client]).unwrap()
}

/// A client whose health check is a port on this machine.
fn checked_executor(dir: &Path, port: u16) -> Executor {
    let client = ComponentSpec {
        role: Role::Client,
        version: VersionProbe::Fixed(Version::new(9, 3, 1, 33994)),
        facts: FactsSpec::Client { update_check: None },
        actions: BTreeMap::from([("install", installer(dir).into())]),
        health: Some(HealthChecks {
            tcp: vec![TcpTarget {
                host: "127.0.0.1".into(),
                port,
            }],
            https: Vec::new(),
            services: Vec::new(),
            ca_file: None,
            wait: Duration::from_secs(1),
        }),
        backup_location: None,
        web_app_output: None,
    };
    Executor::new(&dir.join("state"), vec![client]).unwrap()
}

#[tokio::test]
async fn an_install_counts_only_when_its_health_checks_pass() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let artifact = dir.path().join("client.msi");

    let report = checked_executor(dir.path(), open)
        .execute("ok-1", &install(), Some(&artifact))
        .await
        .unwrap();
    assert_eq!(report.outcome, StepOutcome::Succeeded, "{report:?}");
    assert!(
        report.output_tail.contains("installing /i")
            && report
                .output_tail
                .contains(&format!("health checks:\nok   tcp 127.0.0.1:{open}:")),
        "{}",
        report.output_tail
    );

    let report = checked_executor(dir.path(), closed)
        .execute("bad-1", &install(), Some(&artifact))
        .await
        .unwrap();
    assert_eq!(report.outcome, StepOutcome::Failed, "{report:?}");
    assert_eq!(report.exit_code, Some(0), "the installer itself succeeded");
    assert!(
        report.reason.starts_with("health check failed after ")
            && report.reason.contains(&format!("tcp 127.0.0.1:{closed}:")),
        "{}",
        report.reason
    );
    assert!(report
        .output_tail
        .contains(&format!("FAIL tcp 127.0.0.1:{closed}:")));
    // The journal keeps the failure: a redelivery answers the same.
    let again = checked_executor(dir.path(), open)
        .execute("bad-1", &install(), Some(&artifact))
        .await
        .unwrap();
    assert_eq!(again, report);

    // Restart required: the component is not whole yet, nothing is checked.
    std::fs::write(dir.path().join("exit"), "30").unwrap();
    let report = checked_executor(dir.path(), closed)
        .execute("restart-1", &install(), Some(&artifact))
        .await
        .unwrap();
    assert_eq!(report.outcome, StepOutcome::SucceededRestartRequired);
    assert!(
        report.output_tail.contains("health checks not run"),
        "{}",
        report.output_tail
    );
    drop(listener);
}

fn install() -> StepAction {
    StepAction::InstallComponent {
        role: Role::Client,
        version: V263,
        artifact_sha256: None,
    }
}

fn runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("runs"))
        .unwrap_or_default()
        .lines()
        .count()
}

#[tokio::test]
async fn runs_the_configured_command_once_per_step_id() {
    let dir = tempfile::tempdir().unwrap();
    let exec = executor(dir.path(), installer(dir.path()));
    let artifact = dir.path().join("client.msi");
    let report = exec
        .execute("step-1", &install(), Some(&artifact))
        .await
        .unwrap();
    assert_eq!(report.outcome, StepOutcome::Succeeded, "{report:?}");
    assert_eq!(report.exit_code, Some(0));
    assert!(
        report.output_tail.contains(&format!(
            "installing /i {} VERSION=26.3.100.34058 STEP=step-1",
            artifact.display()
        )),
        "{}",
        report.output_tail
    );
    assert!(report.output_tail.contains("MSI log line"));
    assert_eq!(runs(dir.path()), 1);

    // Delivered again (controller restart, reconnect): the recorded result, no second run.
    let again = exec
        .execute("step-1", &install(), Some(&artifact))
        .await
        .unwrap();
    assert_eq!(again, report);
    // Even by a new agent process over the same state directory.
    let restarted = executor(dir.path(), installer(dir.path()));
    assert_eq!(
        restarted
            .execute("step-1", &install(), Some(&artifact))
            .await
            .unwrap(),
        report
    );
    assert_eq!(runs(dir.path()), 1);
}

/// Exit codes as the executor reads them. Unix exit statuses stop at 255,
/// so 3010 and 1641 (Windows Installer) are covered by the pure
/// `interpret_exit_code` tests in common; here the transient and restart
/// lists are local.
#[tokio::test]
async fn exit_codes_decide_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = installer(dir.path());
    command.transient_exit_codes = vec![75];
    let exec = executor(dir.path(), command);
    let artifact = dir.path().join("client.msi");
    for (id, code, outcome, reason) in [
        ("c0", 0, StepOutcome::Succeeded, ""),
        (
            "c75",
            75,
            StepOutcome::FailedTransient,
            "exit code 75: may succeed when retried",
        ),
        ("c30", 30, StepOutcome::SucceededRestartRequired, ""),
        ("c1", 1, StepOutcome::Failed, "`sh` exited with code 1"),
    ] {
        std::fs::write(dir.path().join("exit"), code.to_string()).unwrap();
        let report = exec.execute(id, &install(), Some(&artifact)).await.unwrap();
        assert_eq!(report.exit_code, Some(code), "{id}");
        assert_eq!(report.outcome, outcome, "{id}");
        assert!(report.reason.contains(reason), "{id}: {}", report.reason);
    }
}

#[tokio::test]
async fn an_interrupted_step_is_reported_not_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let exec = executor(dir.path(), installer(dir.path()));
    // The journal says the step started and never finished: the agent died.
    Journal::open(&dir.path().join("state"))
        .unwrap()
        .put(&JournalEntry {
            step_id: "step-9".into(),
            action: install(),
            started_ms: 1,
            finished: None,
        })
        .unwrap();
    let report = exec.execute("step-9", &install(), None).await.unwrap();
    assert_eq!(report.outcome, StepOutcome::Interrupted);
    assert!(report.reason.contains("stopped while this step ran"));
    assert_eq!(runs(dir.path()), 0);
    assert_eq!(
        exec.execute("step-9", &install(), None).await.unwrap(),
        report
    );
}

#[tokio::test]
async fn what_is_not_configured_does_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let exec = executor(dir.path(), installer(dir.path()));
    let report = exec
        .execute(
            "step-2",
            &StepAction::StopServices { role: Role::Client },
            None,
        )
        .await
        .unwrap();
    assert_eq!(report.outcome, StepOutcome::Failed);
    assert!(
        report.reason.contains("defines no `stop_services` action"),
        "{}",
        report.reason
    );
    let report = exec
        .execute("step-3", &StepAction::Backup, None)
        .await
        .unwrap();
    assert!(
        report.reason.contains("no `server` component configured"),
        "{}",
        report.reason
    );
    let report = exec.execute("step-4", &install(), None).await.unwrap();
    assert!(
        report.reason.contains("needs `{artifact}`"),
        "{}",
        report.reason
    );
    assert_eq!(runs(dir.path()), 0);
    for bad in ["../etc/passwd", "", ".hidden", "a/b", &"x".repeat(200)] {
        assert!(
            exec.execute(bad, &install(), None).await.is_err(),
            "{bad:?}"
        );
    }
}

/// A server whose backup writes `PSDB_<n>.bak`, plus `Archive_<n>.bak`
/// unless the file `only-psdb` exists, into `backups/`, verified per
/// database by `{database}_*.bak` against the databases `databases.json`
/// lists.
fn backing_up_executor(dir: &Path) -> Executor {
    let backups = dir.join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let script = format!(
        "n=$(date +%s%N); echo backup > {b}/PSDB_$n.bak; [ -f {only} ] || echo backup > {b}/Archive_$n.bak",
        b = backups.display(),
        only = dir.join("only-psdb").display()
    );
    let backup = ActionCommand {
        argv: vec!["sh".into(), "-c".into(), script],
        timeout: Duration::from_secs(10),
        transient_exit_codes: Vec::new(),
        restart_exit_codes: Vec::new(),
    };
    let server = ComponentSpec {
        role: Role::Server,
        version: VersionProbe::Fixed(Version::new(9, 3, 1, 33994)),
        facts: FactsSpec::Server {
            databases: Some(DatabasesProbe {
                source: Source::File(dir.join("databases.json")),
            }),
        },
        actions: BTreeMap::from([("backup", ConfiguredAction::Command(backup))]),
        health: None,
        backup_location: Some(BackupLocation {
            directory: backups,
            pattern: "{database}_*.bak".parse().unwrap(),
        }),
        web_app_output: None,
    };
    Executor::new(&dir.join("state"), vec![server]).unwrap()
}

#[tokio::test]
async fn a_backup_succeeds_only_with_a_new_file_for_every_database_the_probe_lists() {
    let dir = tempfile::tempdir().unwrap();
    let exec = backing_up_executor(dir.path());

    // Without the probe's answer nobody can say what the backup covers.
    let report = exec
        .execute("b-1", &StepAction::Backup, None)
        .await
        .unwrap();
    assert_eq!(report.outcome, StepOutcome::Failed, "{report:?}");
    assert!(
        report.reason.contains("the databases probe failed"),
        "{}",
        report.reason
    );

    // Files written within the 2 s a coarse file system's time may lag
    // would count as new for the next step: start from an empty directory.
    std::fs::remove_dir_all(dir.path().join("backups")).unwrap();
    std::fs::create_dir(dir.path().join("backups")).unwrap();
    std::fs::write(
        dir.path().join("databases.json"),
        r#"[{"name": "PSDB", "active": true}, {"name": "Archive", "active": true}]"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("only-psdb"), "").unwrap();
    let report = exec
        .execute("b-2", &StepAction::Backup, None)
        .await
        .unwrap();
    assert_eq!(report.outcome, StepOutcome::Failed, "{report:?}");
    assert!(
        report
            .reason
            .contains("1 of 2 databases have no new backup of their own")
            && report
                .reason
                .contains("`Archive`: no file matching `Archive_*.bak`"),
        "{}",
        report.reason
    );
    assert!(report.backups.is_empty());

    std::fs::remove_file(dir.path().join("only-psdb")).unwrap();
    let report = exec
        .execute("b-3", &StepAction::Backup, None)
        .await
        .unwrap();
    assert_eq!(report.outcome, StepOutcome::Succeeded, "{report:?}");
    let databases: Vec<_> = report
        .backups
        .iter()
        .map(|f| f.database.as_deref())
        .collect();
    assert_eq!(databases, [Some("PSDB"), Some("Archive")]);
    assert!(report.backups.iter().all(|f| f.size > 0));
    assert!(
        report.output_tail.contains("backup verified: PSDB: ")
            && report.output_tail.contains("backup verified: Archive: "),
        "{}",
        report.output_tail
    );
}

#[tokio::test]
async fn a_hanging_installer_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = installer(dir.path());
    command.argv = vec!["sleep".into(), "30".into()];
    command.timeout = Duration::from_millis(300);
    let exec = executor(dir.path(), command);
    let report = exec.execute("step-5", &install(), None).await.unwrap();
    assert_eq!(report.outcome, StepOutcome::Failed);
    assert!(
        report.reason.contains("did not finish within"),
        "{}",
        report.reason
    );
}

mod web_deploy {
    use super::*;
    use std::io::Write;
    use tierwise_agent::config::CheckProbe;
    use tierwise_common::WebServerKind;

    fn package(path: &Path, files: &[(&str, &str)]) {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        for (name, text) in files {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(text.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
    }

    fn web_executor(dir: &Path, server: WebServerKind, websocket: bool) -> Executor {
        let web = ComponentSpec {
            role: Role::Web,
            version: VersionProbe::Fixed(Version::new(9, 3, 1, 33994)),
            facts: FactsSpec::Web {
                server,
                docroot: dir.join("docroot"),
                websocket: Some(CheckProbe::Fixed(websocket)),
                web_app: Some(format!("{}/WebApp-{{version}}.zip", dir.display())),
            },
            actions: BTreeMap::new(),
            health: None,
            backup_location: None,
            web_app_output: None,
        };
        Executor::new(&dir.join("state"), vec![web]).unwrap()
    }

    fn deploy() -> StepAction {
        StepAction::DeployWebApp {
            version: V263,
            artifact_sha256: None,
        }
    }

    fn setup(dir: &Path) {
        std::fs::create_dir_all(dir.join("docroot/assets")).unwrap();
        std::fs::write(dir.join("docroot/version.txt"), "9.3.1.33994\n").unwrap();
        std::fs::write(dir.join("docroot/assets/old.js"), "old").unwrap();
        package(
            &dir.join("WebApp-26.3.100.34058.zip"),
            &[
                ("version.txt", "26.3.100.34058\n"),
                ("index.html", "<html>"),
                ("js/app.js", "new"),
                ("config.bat", "@echo generated"),
                ("setup/iis/Config.BAT", "@echo generated too"),
            ],
        );
    }

    /// Every file under `dir`, with its contents.
    fn tree(dir: &Path) -> BTreeMap<String, String> {
        let mut files = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(at) = stack.pop() {
            for entry in std::fs::read_dir(&at).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let name = path.strip_prefix(dir).unwrap().display().to_string();
                    files.insert(name, std::fs::read_to_string(&path).unwrap_or_default());
                }
            }
        }
        files
    }

    #[tokio::test]
    async fn a_package_of_another_version_is_refused_and_nothing_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        // The file is named for the target, its content says otherwise.
        package(
            &dir.path().join("WebApp-26.3.100.34058.zip"),
            &[
                ("version.txt", "Web Application 26.9.100.34193\n"),
                ("index.html", "<html>"),
            ],
        );
        let before = tree(&dir.path().join("docroot"));
        let report = web_executor(dir.path(), WebServerKind::Iis, true)
            .execute("w-v", &deploy(), None)
            .await
            .unwrap();
        assert_eq!(report.outcome, StepOutcome::Failed);
        assert!(
            report.reason.contains(
                "is the Web Application of 26.9.100.34193 (its version.txt says so), not of 26.3.100.34058; nothing was changed"
            ),
            "{}",
            report.reason
        );
        assert_eq!(tree(&dir.path().join("docroot")), before);
        assert!(!dir.path().join("state/web-backups/w-v").exists());
    }

    #[tokio::test]
    async fn a_package_that_states_no_version_runs_only_as_the_controllers_artifact() {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        let unstated = dir.path().join("WebApp-26.3.100.34058.zip");
        package(&unstated, &[("index.html", "<html>")]);
        let before = tree(&dir.path().join("docroot"));
        let report = web_executor(dir.path(), WebServerKind::Apache, true)
            .execute("w-n", &deploy(), None)
            .await
            .unwrap();
        assert_eq!(report.outcome, StepOutcome::Failed);
        assert!(
            report.reason.contains("states no version"),
            "{}",
            report.reason
        );
        assert_eq!(tree(&dir.path().join("docroot")), before);

        // The same package handed over by the controller, registered for
        // the release and verified by its checksum before this runs.
        let report = web_executor(dir.path(), WebServerKind::Apache, true)
            .execute("w-a", &deploy(), Some(&unstated))
            .await
            .unwrap();
        assert_eq!(report.outcome, StepOutcome::Succeeded, "{report:?}");
        assert!(
            report.output_tail.contains(
                "accepted as the Web Application the controller registered for 26.3.100.34058"
            ),
            "{}",
            report.output_tail
        );
    }

    #[tokio::test]
    async fn iis_deploy_keeps_a_copy_empties_unzips_and_deletes_config_bat() {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        let exec = web_executor(dir.path(), WebServerKind::Iis, true);
        let report = exec.execute("w-1", &deploy(), None).await.unwrap();
        assert_eq!(report.outcome, StepOutcome::Succeeded, "{report:?}");
        let docroot = dir.path().join("docroot");
        assert_eq!(
            std::fs::read_to_string(docroot.join("version.txt")).unwrap(),
            "26.3.100.34058\n"
        );
        assert!(docroot.join("js/app.js").exists() && docroot.join("index.html").exists());
        assert!(!docroot.join("assets").exists(), "the old content is gone");
        assert!(
            !docroot.join("config.bat").exists(),
            "config.bat deleted, never run"
        );
        assert!(
            !docroot.join("setup/iis/Config.BAT").exists(),
            "every config.bat, wherever it sits"
        );
        assert!(docroot.join("setup/iis").is_dir());
        let backup = dir.path().join("state/web-backups/w-1");
        assert_eq!(
            std::fs::read_to_string(backup.join("assets/old.js")).unwrap(),
            "old"
        );
        for deleted in ["config.bat", "setup/iis/Config.BAT"] {
            assert!(
                report.output_tail.contains(&format!(
                    "deleted the generated {} without running it",
                    docroot.join(deleted).display()
                )),
                "{}",
                report.output_tail
            );
        }
        assert!(report
            .output_tail
            .contains("the package states 26.3.100.34058 (version.txt)"));
    }

    #[tokio::test]
    async fn apache_keeps_config_bat_and_missing_prerequisites_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        let refused = web_executor(dir.path(), WebServerKind::Apache, false)
            .execute("w-2", &deploy(), None)
            .await
            .unwrap();
        assert_eq!(refused.outcome, StepOutcome::Failed);
        assert!(
            refused
                .reason
                .contains("proxy_wstunnel is not enabled; nothing was changed"),
            "{}",
            refused.reason
        );
        assert!(dir.path().join("docroot/assets/old.js").exists());

        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        let report = web_executor(dir.path(), WebServerKind::Apache, true)
            .execute("w-3", &deploy(), None)
            .await
            .unwrap();
        assert_eq!(report.outcome, StepOutcome::Succeeded, "{report:?}");
        assert!(
            dir.path().join("docroot/config.bat").exists()
                && dir.path().join("docroot/setup/iis/Config.BAT").exists(),
            "only IIS deletes them"
        );
    }

    #[tokio::test]
    async fn a_package_escaping_the_docroot_or_missing_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        package(
            &dir.path().join("WebApp-26.3.100.34058.zip"),
            &[("../escape.txt", "x")],
        );
        let exec = web_executor(dir.path(), WebServerKind::Nginx, true);
        let report = exec.execute("w-4", &deploy(), None).await.unwrap();
        assert!(
            report
                .reason
                .contains("a path outside the document directory"),
            "{}",
            report.reason
        );
        assert!(dir.path().join("docroot/assets/old.js").exists());
        assert!(!dir.path().join("escape.txt").exists());
        std::fs::remove_file(dir.path().join("WebApp-26.3.100.34058.zip")).unwrap();
        let report = exec.execute("w-5", &deploy(), None).await.unwrap();
        assert!(
            report
                .reason
                .contains("cannot open the Web Application package"),
            "{}",
            report.reason
        );
    }
    #[tokio::test]
    async fn a_package_with_symbolic_links_is_refused_untouched() {
        for (link, target) in [("leak", "/etc/passwd"), ("root", "/"), ("up", "../../..")] {
            let dir = tempfile::tempdir().unwrap();
            setup(dir.path());
            let mut zip = zip::ZipWriter::new(
                std::fs::File::create(dir.path().join("WebApp-26.3.100.34058.zip")).unwrap(),
            );
            zip.start_file("index.html", zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(b"<html>").unwrap();
            zip.add_symlink(link, target, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.finish().unwrap();
            let exec = web_executor(dir.path(), WebServerKind::Apache, true);
            let report = exec.execute("w-6", &deploy(), None).await.unwrap();
            assert_eq!(report.outcome, StepOutcome::Failed, "{link}");
            assert!(
                report
                    .reason
                    .contains(&format!("`{link}`, a symbolic link"))
                    && report.reason.contains("nothing was changed"),
                "{}",
                report.reason
            );
            // The document directory is as it was.
            assert!(dir.path().join("docroot/assets/old.js").exists());
            assert!(!dir.path().join("docroot/index.html").exists());
            assert!(!dir.path().join("docroot").join(link).exists());
        }
    }
}

/// A stop of the agent while an installer runs: a plain stop waits for it
/// (within its own time limit); a shutdown ends it after its short budget
/// and journals it as interrupted, so a redelivery answers "interrupted"
/// and never runs it again.
mod drain {
    use super::*;
    use tierwise_agent::service::{StopCause, SHUTDOWN_BUDGET};
    use tierwise_agent::steps::{download::Downloader, StepRunner};

    fn slow_installer(dir: &Path, seconds: u32) -> ActionCommand {
        ActionCommand {
            argv: vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "echo started >> {runs}; sleep {seconds}; echo done >> {runs}",
                    runs = dir.join("runs").display()
                ),
            ],
            timeout: Duration::from_secs(60),
            transient_exit_codes: vec![],
            restart_exit_codes: vec![],
        }
    }

    fn runner(dir: &Path, seconds: u32) -> (StepRunner, tierwise_agent::steps::RunnerStop) {
        let exec = executor(dir, slow_installer(dir, seconds));
        let controller = "https://127.0.0.1:9".parse().unwrap();
        let downloader = Downloader::new(&controller, &dir.join("state"));
        let (refresh, _probes) = tokio::sync::mpsc::channel(4);
        StepRunner::spawn(
            exec,
            downloader,
            tierwise_agent::steps::signed::ReleaseTrust::new(None, dir),
            refresh,
        )
    }

    async fn started(dir: &Path) {
        for _ in 0..200 {
            if std::fs::read_to_string(dir.join("runs"))
                .unwrap_or_default()
                .contains("started")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the installer did not start");
    }

    #[tokio::test]
    async fn a_plain_stop_lets_the_running_installer_finish() {
        let dir = tempfile::tempdir().unwrap();
        let (steps, stop) = runner(dir.path(), 1);
        steps
            .commands
            .send(("s-1".into(), install()))
            .await
            .unwrap();
        started(dir.path()).await;
        let mut checkpoints = 0;
        stop.drain(StopCause::Stop, &mut || checkpoints += 1).await;
        let log = std::fs::read_to_string(dir.path().join("runs")).unwrap();
        assert_eq!(log, "started\ndone\n", "the installer ran to its end");
        let entry = Journal::open(&dir.path().join("state"))
            .unwrap()
            .get("s-1")
            .unwrap()
            .unwrap();
        assert_eq!(entry.finished.unwrap().outcome, StepOutcome::Succeeded);
    }

    #[tokio::test]
    async fn a_shutdown_ends_a_long_installer_and_journals_it_as_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let (steps, stop) = runner(dir.path(), 30);
        steps
            .commands
            .send(("s-2".into(), install()))
            .await
            .unwrap();
        started(dir.path()).await;
        let began = std::time::Instant::now();
        stop.drain(StopCause::Shutdown, &mut || {}).await;
        let waited = began.elapsed();
        assert!(
            waited >= SHUTDOWN_BUDGET && waited < Duration::from_secs(20),
            "waited {waited:?}"
        );
        let journal = Journal::open(&dir.path().join("state")).unwrap();
        let report = journal.get("s-2").unwrap().unwrap().finished.unwrap();
        assert_eq!(report.outcome, StepOutcome::Interrupted);
        assert!(
            report.reason.contains("the agent had to stop (Shutdown)"),
            "{}",
            report.reason
        );
        // Delivered again after the restart: answered from the journal.
        let again = executor(dir.path(), slow_installer(dir.path(), 30))
            .execute("s-2", &install(), None)
            .await
            .unwrap();
        assert_eq!(again.outcome, StepOutcome::Interrupted);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("runs")).unwrap(),
            "started\n",
            "never run twice"
        );
    }

    #[tokio::test]
    async fn no_new_step_starts_once_the_agent_stops() {
        let dir = tempfile::tempdir().unwrap();
        let (steps, stop) = runner(dir.path(), 1);
        stop.drain(StopCause::Stop, &mut || {}).await;
        // The runner is gone: the command cannot even be queued, or is never run.
        let _ = steps.commands.send(("s-3".into(), install())).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(runs(dir.path()), 0);
        let journal = Journal::open(&dir.path().join("state")).unwrap();
        assert!(journal.get("s-3").unwrap().is_none());
    }
}

/// Off Windows there is no Service Control Manager (the configuration
/// refuses `windows_services` there): a step given services anyway fails
/// saying so, is journaled like any other, and has the services' time limit.
#[tokio::test]
async fn a_windows_services_step_off_windows_fails_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = ComponentSpec {
        role: Role::Server,
        version: VersionProbe::Fixed(Version::new(9, 3, 1, 33994)),
        facts: FactsSpec::Server { databases: None },
        actions: BTreeMap::from([(
            "stop_services",
            ConfiguredAction::WindowsServices(WindowsServicesAction {
                services: vec!["PsrBackupService".into(), "PsrServer".into()],
                timeout: Duration::from_secs(7),
            }),
        )]),
        health: None,
        backup_location: None,
        web_app_output: None,
    };
    let exec = Executor::new(&dir.path().join("state"), vec![server]).unwrap();
    let stop = StepAction::StopServices { role: Role::Server };
    assert_eq!(exec.time_limit(&stop), Duration::from_secs(7));
    let report = exec.execute("step-1", &stop, None).await.unwrap();
    assert_eq!(report.outcome, StepOutcome::Failed);
    assert_eq!(
        report.reason,
        "the Windows Service Control Manager exists only on Windows"
    );
    assert!(exec.known("step-1").unwrap());
}
