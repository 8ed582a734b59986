//! The real `tierwise` binary refuses what it cannot use, and says why.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::process::Command;

fn tierwise() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tierwise"))
}

fn fails_with(args: &[&str], expected: &str) {
    let out = tierwise()
        .args(args)
        .env_remove("TIERWISE_DATABASE_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} must fail");
    assert!(
        stderr.contains(expected),
        "{args:?}: wanted {expected:?} in:\n{stderr}"
    );
}

#[test]
fn unsupported_database_url() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    fails_with(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
            "--database-url",
            "mysql://root@localhost/ps",
        ],
        "database URL `mysql://root@localhost/ps` is not supported: use sqlite://PATH",
    );
}

#[test]
fn unreachable_postgres() {
    // Port 9 (discard) is closed on loopback: the connection is refused at once.
    fails_with(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "postgres://tierwise:secret@127.0.0.1:9/tierwise",
        ],
        "cannot connect to PostgreSQL at postgres://tierwise:***@127.0.0.1:9/tierwise",
    );
}

#[test]
fn unwritable_sqlite_location() {
    fails_with(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "sqlite:///nonexistent-dir/sub/t.db",
        ],
        "cannot open the SQLite database sqlite:///nonexistent-dir/sub/t.db",
    );
}

#[test]
fn cli_refuses_plaintext_and_missing_credentials() {
    fails_with(
        &["--controller", "http://127.0.0.1:9", "hosts", "list"],
        "asks for plaintext: Tierwise speaks only TLS; write https://127.0.0.1:9",
    );
    fails_with(
        &[
            "--controller",
            "https://127.0.0.1:9",
            "--ca-cert",
            "/nonexistent/ca.pem",
            "hosts",
            "list",
        ],
        "cannot read /nonexistent/ca.pem",
    );
}

#[test]
fn unknown_role_filter() {
    fails_with(
        &["hosts", "list", "--role", "database"],
        "unknown role `database`",
    );
}
