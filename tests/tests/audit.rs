//! The audit log is a hash chain: `tierwise audit verify` recomputes it on
//! the operator's side and finds an entry changed behind the controller's
//! back; `tierwise audit --follow --json` streams new entries, one JSON
//! object per line, as a SIEM would take them. The chain cannot be cut
//! quietly: entries removed from its end show against a kept head
//! (`--expect`), blanked hashes no longer pass for entries from before the
//! chain, and recomputing the chain after a rewrite needs the controller's
//! audit key — on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;
use tierwise_e2e::{binary, psql, wait_for, Controller, Database};

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
            verified.contains("The audit log verifies: 5 chained entries hold their hashes"),
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
        said.contains("the audit log does not verify: entry 2 does not match its keyed hash"),
        "{said}"
    );
}

/// The controller's database, as someone who can write to it reaches it.
enum Store {
    Sqlite(String),
    Postgres(String),
}

impl Store {
    async fn exec(&self, sql: &str) {
        match self {
            Store::Sqlite(url) => {
                let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(url)
                    .await
                    .unwrap();
                sqlx::query(sql).execute(&mut db).await.unwrap();
            }
            Store::Postgres(url) => psql(url, sql).unwrap(),
        }
    }
}

/// A controller on SQLite, or on a fresh PostgreSQL database (`None` when
/// PostgreSQL is not configured: the test is skipped), with a few audit
/// entries.
fn controller(
    data: &std::path::Path,
    postgres: bool,
) -> Option<(Controller, Store, Option<Database>)> {
    let (controller, store, db) = if postgres {
        let db = Database::create().unwrap()?;
        let controller =
            Controller::start_with(data, "127.0.0.1:0", &["--database-url", db.url.as_str()])
                .unwrap();
        (controller, Store::Postgres(db.url.clone()), Some(db))
    } else {
        let controller = Controller::start(data, "127.0.0.1:0").unwrap();
        let url = format!("sqlite://{}", data.join("tierwise.db").display());
        (controller, Store::Sqlite(url), None)
    };
    tokio::task::block_in_place(|| {
        for _ in 0..4 {
            controller.cli(&["tokens", "create"]).unwrap();
        }
    });
    Some((controller, store, db))
}

/// The log as `audit --json` lists it, oldest first.
fn entries(controller: &Controller) -> Vec<serde_json::Value> {
    let listed = tokio::task::block_in_place(|| controller.cli(&["audit", "--json"])).unwrap();
    serde_json::from_str::<serde_json::Value>(&listed)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// `audit verify` with these arguments: its exit status and what it said.
fn verify(controller: &Controller, args: &[&str]) -> (bool, String) {
    let mut all = vec!["audit", "verify"];
    all.extend_from_slice(args);
    let out = tokio::task::block_in_place(|| controller.cli_output(&all)).unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// The head `audit verify --json` reports, as SEQ:SHA256.
fn head(controller: &Controller) -> String {
    let (ok, said) = verify(controller, &["--json"]);
    assert!(ok, "{said}");
    let json: serde_json::Value = serde_json::from_str(&said).unwrap();
    assert_eq!(json["verified"], true, "{json}");
    json["head"].as_str().unwrap().to_owned()
}

/// An entry's hash as someone with the database but not the key computes
/// it: the published unkeyed rule (`tierwise audit v1`), or an HMAC with a
/// key of their own.
fn recompute(entry: &serde_json::Value, prev: &str, key: Option<&ring::hmac::Key>) -> String {
    let mut encoded = Vec::new();
    let text = |name: &str| entry[name].as_str().unwrap().as_bytes().to_vec();
    for field in [
        prev.as_bytes().to_vec(),
        entry["seq"].as_i64().unwrap().to_be_bytes().to_vec(),
        entry["at_ms"].as_i64().unwrap().to_be_bytes().to_vec(),
        text("actor"),
        text("action"),
        text("subject"),
        text("details"),
    ] {
        encoded.extend_from_slice(&(field.len() as u64).to_be_bytes());
        encoded.extend_from_slice(&field);
    }
    let digest: Vec<u8> = match key {
        None => {
            let mut all = b"tierwise audit v1".to_vec();
            all.extend_from_slice(&encoded);
            ring::digest::digest(&ring::digest::SHA256, &all)
                .as_ref()
                .to_vec()
        }
        Some(key) => {
            let mut context = ring::hmac::Context::with_key(key);
            context.update(b"tierwise audit v2");
            context.update(&encoded);
            context.sign().as_ref().to_vec()
        }
    };
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

async fn entries_removed_from_the_end(postgres: bool) {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("controller");
    let Some((controller, store, _db)) = controller(&data, postgres) else {
        return;
    };
    // The head is published to the controller's log at its start.
    tokio::task::block_in_place(|| {
        wait_for("the audit head in the log", Duration::from_secs(10), || {
            Ok(controller
                .process
                .log_text()
                .contains("audit head")
                .then_some(()))
        })
        .unwrap()
    });
    let kept = head(&controller);
    let all = entries(&controller);
    let last = all.last().unwrap()["seq"].as_i64().unwrap();
    let keep = last - 2;
    let new_head = all[keep as usize - 1]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();

    // The last two entries removed: the store's record of the head shows it.
    store
        .exec(&format!("DELETE FROM audit_log WHERE seq > {keep}"))
        .await;
    let (ok, said) = verify(&controller, &[]);
    assert!(!ok);
    assert!(
        said.contains(&format!(
            "the log ends at entry {keep}, but the chain's recorded head is entry {last}"
        )),
        "{said}"
    );
    // The record moved back too: only a head kept elsewhere shows it.
    store
        .exec(&format!(
            "UPDATE audit_head SET seq = {keep}, sha256 = '{new_head}' WHERE id = 1"
        ))
        .await;
    assert!(verify(&controller, &[]).0);
    let (ok, said) = verify(&controller, &["--expect", &kept]);
    assert!(!ok);
    assert!(
        said.contains(&format!(
            "the audit log does not verify: the kept head {kept} is not in the log, which ends at entry {keep}: entries were removed from its end"
        )),
        "{said}"
    );
    let (ok, said) = verify(&controller, &["--json", "--expect", &kept]);
    assert!(!ok);
    assert!(said.contains("\"verified\": false"), "{said}");
    // A head that is still there passes; a malformed one is refused.
    let (ok, said) = verify(&controller, &["--expect", &format!("{keep}:{new_head}")]);
    assert!(ok, "{said}");
    let (ok, said) = verify(&controller, &["--expect", "12"]);
    assert!(!ok);
    assert!(said.contains("SEQ:SHA256"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_expect_finds_entries_removed_from_the_end_sqlite() {
    entries_removed_from_the_end(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_expect_finds_entries_removed_from_the_end_postgres() {
    entries_removed_from_the_end(true).await;
}

async fn blanked_hashes(postgres: bool) {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("controller");
    let Some((controller, store, _db)) = controller(&data, postgres) else {
        return;
    };
    assert!(verify(&controller, &[]).0);
    // Every hash blanked: the log no longer passes for one from before the
    // chain, which began at entry 1.
    store
        .exec("UPDATE audit_log SET sha256 = '', prev_sha256 = ''")
        .await;
    let (ok, said) = verify(&controller, &[]);
    assert!(!ok);
    assert!(
        said.contains(
            "the audit log does not verify: entry 1 has no hash, but the chain began at entry 1"
        ),
        "{said}"
    );
    // Nor does moving where the chain begins past them: that record is
    // bound to the key.
    let last = entries(&controller).last().unwrap()["seq"]
        .as_i64()
        .unwrap();
    store
        .exec(&format!(
            "UPDATE audit_head SET chained_from = {} WHERE id = 1",
            last + 1
        ))
        .await;
    let (ok, said) = verify(&controller, &[]);
    assert!(!ok);
    assert!(
        said.contains("does not match the controller's audit key"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_finds_every_hash_blanked_sqlite() {
    blanked_hashes(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_finds_every_hash_blanked_postgres() {
    blanked_hashes(true).await;
}

async fn rewritten_and_recomputed(postgres: bool) {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("controller");
    let Some((mut controller, store, db)) = controller(&data, postgres) else {
        return;
    };
    // Entry 3 rewritten and every hash recomputed, first with the
    // published unkeyed rule, then with a key of the attacker's own.
    let own_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[42; 32]);
    for key in [None, Some(&own_key)] {
        let mut prev = "0".repeat(64);
        let mut all = entries(&controller);
        all[2]["details"] = serde_json::json!("role admin");
        for entry in &all {
            let sha = recompute(entry, &prev, key);
            store
                .exec(&format!(
                    "UPDATE audit_log SET details = '{}', prev_sha256 = '{prev}', sha256 = '{sha}' WHERE seq = {}",
                    entry["details"].as_str().unwrap().replace('\'', "''"),
                    entry["seq"]
                ))
                .await;
            prev = sha;
        }
        store
            .exec(&format!(
                "UPDATE audit_head SET sha256 = '{prev}' WHERE id = 1"
            ))
            .await;
        let (ok, said) = verify(&controller, &[]);
        assert!(!ok, "{key:?}");
        assert!(
            said.contains("the audit log does not verify: entry 1 does not match its keyed hash"),
            "{said}"
        );
    }

    // The key is not in the database: a controller started without the
    // file (a replica it was not copied to) refuses to start.
    controller.process.kill();
    std::fs::remove_file(data.join("audit.key")).unwrap();
    let mut flags = vec![];
    if let Some(db) = &db {
        flags = vec!["--database-url", db.url.as_str()];
    }
    let refused = Controller::start_with(&data, "127.0.0.1:0", &flags)
        .err()
        .unwrap()
        .to_string();
    assert!(
        refused.contains("this controller has no audit key")
            && refused
                .contains("copy audit.key from the data directory of the controller that keyed it"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_needs_the_key_to_accept_a_recomputed_chain_sqlite() {
    rewritten_and_recomputed(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_needs_the_key_to_accept_a_recomputed_chain_postgres() {
    rewritten_and_recomputed(true).await;
}

/// Replicas sharing one PostgreSQL database share the audit key as they
/// share the CA: one with a data directory of its own refuses to start
/// until `audit.key` is copied there, then appends to the same keyed chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_needs_the_audit_key_copied_to_join_a_keyed_chain() {
    let Some(db) = Database::create().unwrap() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let flags = ["--database-url", db.url.as_str()];
    let first = Controller::start_with(&root.path().join("first"), "127.0.0.1:0", &flags).unwrap();
    let second_dir = root.path().join("second");
    let refused = Controller::start_with(&second_dir, "127.0.0.1:0", &flags)
        .err()
        .unwrap()
        .to_string();
    assert!(
        refused.contains("this controller has no audit key")
            && refused
                .contains("copy audit.key from the data directory of the controller that keyed it"),
        "{refused}"
    );
    // The operator's token (from the first start) works on every replica.
    for file in ["audit.key", "admin.token"] {
        std::fs::copy(root.path().join("first").join(file), second_dir.join(file)).unwrap();
    }
    let second = Controller::start_with(&second_dir, "127.0.0.1:0", &flags).unwrap();
    tokio::task::block_in_place(|| {
        second.cli(&["tokens", "create"]).unwrap();
        first.cli(&["tokens", "create"]).unwrap();
    });
    let (ok, said) = verify(&first, &[]);
    assert!(ok && said.contains("keyed from entry 1"), "{said}");
    assert_eq!(head(&first), head(&second));
}
