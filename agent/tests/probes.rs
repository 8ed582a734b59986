//! Version, check and database probes against real files and real programs.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::path::PathBuf;
use std::time::Duration;
use tierwise_agent::config::{CheckProbe, DatabasesProbe, Pattern, Source, VersionProbe};
use tierwise_agent::probe;
use tierwise_common::{Check, ProbedVersion, Version};

fn file_probe(path: PathBuf, pattern: Option<&str>) -> VersionProbe {
    VersionProbe::Text {
        source: Source::File(path),
        pattern: pattern.map(|p| Pattern::new(p).unwrap()),
    }
}

fn command_probe(argv: &[&str], pattern: Option<&str>, timeout: Duration) -> VersionProbe {
    VersionProbe::Text {
        source: Source::Command {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            timeout,
        },
        pattern: pattern.map(|p| Pattern::new(p).unwrap()),
    }
}

const SECOND: Duration = Duration::from_secs(5);

#[tokio::test]
async fn file_holding_a_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("VERSION");
    std::fs::write(&path, "9.3.1.33994\n").unwrap();
    assert_eq!(
        probe::version(&file_probe(path, None)).await,
        ProbedVersion::Installed(Version::new(9, 3, 1, 33994))
    );
}

#[tokio::test]
async fn file_with_a_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("about.txt");
    std::fs::write(
        &path,
        "Netwrix Password Secure\nProductVersion=26.3.100.34058\nEdition=Enterprise\n",
    )
    .unwrap();
    let probe = file_probe(path, Some(r"ProductVersion=(\S+)"));
    assert_eq!(
        probe::version(&probe).await,
        ProbedVersion::Installed(Version::new(26, 3, 100, 34058))
    );
}

#[tokio::test]
async fn missing_file_means_not_installed() {
    let dir = tempfile::tempdir().unwrap();
    let probe = file_probe(dir.path().join("absent"), None);
    assert_eq!(probe::version(&probe).await, ProbedVersion::NotInstalled);
}

#[tokio::test]
async fn file_with_garbage_is_unknown_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("VERSION");
    std::fs::write(&path, "9.3\n").unwrap();
    let ProbedVersion::Unknown(why) = probe::version(&file_probe(path.clone(), None)).await else {
        panic!("expected unknown");
    };
    assert!(why.contains(&path.display().to_string()), "{why}");
    assert!(why.contains("`9.3` has 2 part(s)"), "{why}");

    let ProbedVersion::Unknown(why) = probe::version(&file_probe(path, Some("Version=(.*)"))).await
    else {
        panic!("expected unknown");
    };
    assert!(
        why.contains("pattern `Version=(.*)` did not match"),
        "{why}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn command_with_a_pattern() {
    let probe = command_probe(
        &[
            "sh",
            "-c",
            "echo 'Password Secure Client'; echo 'Version 9.3.1.33994 (x64)'",
        ],
        Some(r"Version (\d+\.\d+\.\d+\.\d+)"),
        SECOND,
    );
    assert_eq!(
        probe::version(&probe).await,
        ProbedVersion::Installed(Version::new(9, 3, 1, 33994))
    );
}

#[cfg(unix)]
#[tokio::test]
async fn failing_command_is_unknown_with_its_stderr() {
    let probe = command_probe(
        &["sh", "-c", "echo 'service not found' >&2; exit 3"],
        Some(r"(\S+)"),
        SECOND,
    );
    let ProbedVersion::Unknown(why) = probe::version(&probe).await else {
        panic!("expected unknown");
    };
    assert!(why.contains("exited with exit status: 3"), "{why}");
    assert!(why.contains("service not found"), "{why}");
}

#[tokio::test]
async fn command_that_does_not_exist_is_unknown() {
    let probe = command_probe(&["/nonexistent/psclient", "--version"], None, SECOND);
    let ProbedVersion::Unknown(why) = probe::version(&probe).await else {
        panic!("expected unknown");
    };
    assert!(
        why.starts_with("cannot run `/nonexistent/psclient`"),
        "{why}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn command_that_hangs_is_stopped() {
    let probe = command_probe(&["sleep", "30"], None, Duration::from_millis(300));
    let ProbedVersion::Unknown(why) = probe::version(&probe).await else {
        panic!("expected unknown");
    };
    assert!(why.contains("did not finish within"), "{why}");
}

#[tokio::test]
async fn fixed_version() {
    let version = Version::new(9, 3, 1, 33994);
    assert_eq!(
        probe::version(&VersionProbe::Fixed(version)).await,
        ProbedVersion::Installed(version)
    );
}

#[tokio::test]
async fn checks_say_yes_no_or_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("modules.txt");
    std::fs::write(
        &modules,
        "Loaded Modules:\n proxy_module (shared)\n proxy_wstunnel_module (shared)\n",
    )
    .unwrap();
    let check = |path: PathBuf, pattern: &str| CheckProbe::Text {
        source: Source::File(path),
        pattern: Pattern::new(pattern).unwrap(),
    };
    assert_eq!(
        probe::check(&check(modules.clone(), "proxy_wstunnel_module")).await,
        Check::Yes
    );
    assert_eq!(
        probe::check(&check(modules, "rewrite_module")).await,
        Check::No
    );
    assert_eq!(
        probe::check(&check(dir.path().join("absent"), "x")).await,
        Check::Unknown
    );
    assert_eq!(probe::check(&CheckProbe::Fixed(false)).await, Check::No);
}

#[tokio::test]
async fn databases_from_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("databases.json");
    std::fs::write(
        &path,
        r#"[{"name": "PSDB", "active": false, "patch_level": "9.3.1.33994"}, {"name": "Archive", "active": true}]"#,
    )
    .unwrap();
    let probe = DatabasesProbe {
        source: Source::File(path.clone()),
    };
    let databases = probe::databases(&probe).await.unwrap();
    assert_eq!(databases.len(), 2);
    assert_eq!(databases[0].name, "PSDB");
    assert!(!databases[0].active);
    assert_eq!(databases[0].patch_level, Some(Version::new(9, 3, 1, 33994)));
    assert_eq!(databases[1].patch_level, None);

    std::fs::write(&path, r#"[{"name": "PSDB", "active": "yes"}]"#).unwrap();
    let err = probe::databases(&probe).await.unwrap_err();
    assert!(err.contains("expected a JSON array"), "{err}");
    std::fs::write(
        &path,
        r#"[{"name": "PSDB", "active": true, "patch_level": "9.x"}]"#,
    )
    .unwrap();
    let err = probe::databases(&probe).await.unwrap_err();
    assert!(err.contains("database `PSDB`: patch level"), "{err}");
}

#[cfg(unix)]
#[tokio::test]
async fn endless_output_is_cut_off() {
    let probe = command_probe(&["yes", "9.3.1.33994"], None, Duration::from_secs(20));
    let started = std::time::Instant::now();
    let ProbedVersion::Unknown(why) = probe::version(&probe).await else {
        panic!("expected unknown");
    };
    assert!(why.contains("printed more than 1048576 bytes"), "{why}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stopped by the limit, not the timeout"
    );
}

#[cfg(not(windows))]
#[tokio::test]
async fn discovery_reads_windows_only() {
    use tierwise_agent::config::{ComponentSpec, FactsSpec};
    use tierwise_common::{Facts, Role};

    let ProbedVersion::Unknown(why) = probe::version(&VersionProbe::Discovered(Role::Client)).await
    else {
        panic!("expected unknown");
    };
    assert!(why.contains("works only on Windows"), "{why}");
    assert!(probe::uninstall_entries().is_empty());

    // A client's database profiles are read only from the Windows registry.
    let client = ComponentSpec {
        role: Role::Client,
        version: VersionProbe::Fixed(Version::new(9, 3, 1, 33994)),
        facts: FactsSpec::Client { update_check: None },
        actions: Default::default(),
        health: None,
        backup_location: None,
        web_app_output: None,
    };
    let inventory = probe::inventory(&[client]).await.unwrap();
    let Facts::Client(facts) = &inventory.components()[0].facts else {
        panic!("client facts");
    };
    assert!(facts.profiles.is_empty());
}
