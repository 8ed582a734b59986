//! `tierwise demo`, as the README's first command runs it: a controller,
//! 22 real agents and a rollout from 9.3.1 to 26.3.100 in one process tree,
//! ending with every host online and the rollout's backup of each database
//! verified.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tierwise_e2e::binary;

#[test]
fn the_demo_rolls_its_installation_forward_and_says_what_protected_it() -> anyhow::Result<()> {
    let mut child = Command::new(binary("tierwise"))
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > Duration::from_secs(240) {
            let _ = child.kill();
            anyhow::bail!("the demo did not finish within 240 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = reader.join().expect("reader");
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        stderr.read_to_string(&mut err)?;
    }
    assert!(status.success(), "{status}\n{out}\n{err}");
    for expected in [
        // The plan, in the vendor's order, the backup first.
        "1. Backup — 1 step",
        // The rollout's backup, found and checked by the server's agent:
        // a file of each of the server's two databases.
        "Protected by the backups on srv-01 of its 2 databases:",
        "  PSDB-Prod: ",
        "  PSDB-Archive: ",
        "22 host(s): 22 online, 0 offline",
        "Demo ready after ",
    ] {
        assert!(out.contains(expected), "`{expected}` missing from:\n{out}");
    }
    // With a backup location the plan has no unverified-backup warning.
    assert!(!out.contains("backup action names no location"), "{out}");
    Ok(())
}

/// The issue that made plans honest: the demo's web host has a package of
/// 26.3.100 only, so a plan to 26.4.10 must not say "Ready" as if nothing
/// were missing: it lists the Web Application the Server Manager has to
/// generate first.
#[test]
fn the_demos_plan_to_the_next_release_names_the_web_application_to_generate() -> anyhow::Result<()>
{
    use std::io::BufRead;
    let mut child = Command::new(binary("tierwise"))
        .args(["demo", "--listen", "127.0.0.1:0", "--keep-running"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut env: Vec<(String, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    while env.is_empty() {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let Ok(line) = line else {
            let _ = child.kill();
            anyhow::bail!("the demo did not say how to reach its fleet");
        };
        if let Some(exports) = line.trim().strip_prefix("export ") {
            env = exports
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        }
    }
    let plan = Command::new(binary("tierwise"))
        .args([
            "rollout",
            "plan",
            "--installation",
            "demo",
            "--to",
            "26.4.10.34111",
        ])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output();
    // Ctrl-C, as a person ends it: the demo stops its fleet.
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let stopped = Instant::now();
    while child.try_wait()?.is_none() && stopped.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let plan = plan?;
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(!text.contains("Ready: nothing blocks"), "{text}");
    assert!(text.contains("OPERATOR TASK (generate_web_app)"), "{text}");
    assert!(text.contains("waits for 1 operator task(s)"), "{text}");
    println!("{text}");
    Ok(())
}
