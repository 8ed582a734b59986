//! Controllers sharing a store: an SQLite store serves one controller.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::process::Command;
use tierwise_e2e::{binary, Controller};

#[test]
fn a_second_controller_on_the_same_sqlite_file_is_refused() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let data = root.path().join("controller");
    let first = Controller::start(&data, "127.0.0.1:0")?;
    let second = Command::new(binary("tierwise"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()?;
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another controller already uses the SQLite database")
            && stderr.contains("PostgreSQL"),
        "{stderr}"
    );
    // The first one is unaffected, and the lock goes with it.
    assert!(first.cli(&["whoami"])?.starts_with("admin"));
    drop(first);
    let again = Controller::start(&data, "127.0.0.1:0")?;
    assert!(again.cli(&["whoami"])?.starts_with("admin"));
    Ok(())
}
