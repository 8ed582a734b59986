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
