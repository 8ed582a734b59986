//! The audit log is a hash chain: `tierwise audit verify` recomputes it on
//! the operator's side and finds an entry changed behind the controller's
//! back; `tierwise audit --follow --json` streams new entries, one JSON
//! object per line, as a SIEM would take them.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;
use tierwise_e2e::{binary, Controller};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_finds_an_entry_changed_behind_the_controllers_back() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("controller");
    let controller = Controller::start(&data, "127.0.0.1:0").unwrap();
    tokio::task::block_in_place(|| {
        controller.cli(&["tokens", "create"]).unwrap();
        controller
            .cli(&["operators", "add", "vera", "--role", "viewer"])
            .unwrap();
        controller.cli(&["tokens", "create"]).unwrap();

        // The first admin (made at the first start) and the three changes.
        let verified = controller.cli(&["audit", "verify"]).unwrap();
        assert!(
            verified.contains("The audit log verifies: 5 chained entr(y/ies) hold their hashes"),
            "{verified}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&controller.cli(&["audit", "verify", "--json"]).unwrap()).unwrap();
        assert_eq!(json["verified"], true, "{json}");
        assert_eq!(json["head_seq"], 5, "{json}");
        let listed: serde_json::Value =
            serde_json::from_str(&controller.cli(&["audit", "--json"]).unwrap()).unwrap();
        let last = &listed.as_array().unwrap()[4];
        assert_eq!(last["seq"], 5);
        assert_eq!(last["sha256"], json["head_sha256"]);
        assert_eq!(last["prev_sha256"], listed.as_array().unwrap()[3]["sha256"]);
    });

    // New entries reach a follower at once, one JSON object per line.
    let mut follower = std::process::Command::new(binary("tierwise"))
        .args(["--controller", &controller.url(), "--ca-cert"])
        .arg(controller.ca_path())
        .env("TIERWISE_TOKEN", controller.admin_token().unwrap().trim())
        .env_remove("TIERWISE_TOKEN_FILE")
        .args(["audit", "--follow", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    tokio::task::block_in_place(|| controller.cli(&["tokens", "create"]).unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    while !seen.iter().any(|e: &serde_json::Value| e["seq"] == 6) {
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        seen.push(serde_json::from_str(&line).unwrap());
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(seen.last().unwrap()["action"], "token create");

    // Someone with the database file rewrites an entry.
    let url = format!("sqlite://{}", data.join("tierwise.db").display());
    let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET details = 'role admin' WHERE seq = 2")
        .execute(&mut db)
        .await
        .unwrap();
    drop(db);
    let refused =
        tokio::task::block_in_place(|| controller.cli_output(&["audit", "verify"])).unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("the audit log does not verify: entry 2 does not match its hash"),
        "{said}"
    );
}
