//! The audit chain's records in the store: where it begins, where its
//! keying began (bound to the key by `start_mac`), its head, and the key
//! this process appends with. The rules are `tierwise_common::audit`'s.

use super::{Store, StoreError};
use sqlx::Row;
use std::sync::OnceLock;
use tierwise_common::audit::{self, ChainBreak, Head, Key, Rules, Start, Verified, Verifier};

/// Entries read per page when verifying.
const PAGE: i64 = 10_000;

/// The audit key of this process, once the controller has loaded it (see
/// `crate::audit_key`); appends to a keyed chain need it.
static KEY: OnceLock<Key> = OnceLock::new();

/// Appends from now on use `key` (the first key given stays).
pub fn use_key(key: Key) {
    let _ = KEY.set(key);
}

/// The key appends use, if this process has one.
pub fn key() -> Option<&'static Key> {
    KEY.get()
}

/// The hash of a new entry numbered `seq`: keyed from `keyed_from` on
/// (0: not keyed). Without the key for a keyed chain nothing is written.
#[allow(clippy::too_many_arguments)] // The entry's fields.
pub(crate) fn entry_hash(
    keyed_from: i64,
    prev: &str,
    seq: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
    details: &str,
) -> Result<String, sqlx::Error> {
    if keyed_from == 0 || seq < keyed_from {
        return Ok(audit::entry_sha256(
            prev, seq, at_ms, actor, action, subject, details,
        ));
    }
    let key = key().ok_or_else(|| {
        sqlx::Error::Configuration(
            format!(
                "the audit log is keyed from entry {keyed_from} on, but this controller has no audit key: \
                 copy {} from the data directory of the controller that keyed it (owner-only, as the CA) and restart",
                crate::audit_key::FILE_NAME
            )
            .into(),
        )
    })?;
    Ok(audit::entry_mac(
        key, prev, seq, at_ms, actor, action, subject, details,
    ))
}

/// The chain's records, as the store keeps them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainRecord {
    pub start: Start,
    /// The start record's MAC (empty while the chain is not keyed).
    pub start_mac: String,
    /// The newest entry's number and hash (`GENESIS` while nothing is
    /// chained).
    pub head: Head,
}

/// What keying the chain with this process's key found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keying {
    /// The chain was not keyed: it is from this entry on.
    Began { keyed_from: i64 },
    /// The chain was keyed with this key, from this entry on.
    Holds { keyed_from: i64 },
    /// The chain was keyed with another key, or its start record changed.
    Differs { start: Start },
}

/// What verifying the whole log with this process's key found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub start: Start,
    pub result: Result<Verified, ChainBreak>,
}

fn record_from_row(row: &sqlx::any::AnyRow) -> Result<ChainRecord, sqlx::Error> {
    Ok(ChainRecord {
        start: Start {
            chained_from: row.try_get("chained_from")?,
            keyed_from: row.try_get("keyed_from")?,
        },
        start_mac: row.try_get("start_mac")?,
        head: Head {
            seq: row.try_get("seq")?,
            sha256: row.try_get("sha256")?,
        },
    })
}

impl Store {
    /// The chain's records.
    pub async fn audit_chain(&self) -> Result<ChainRecord, StoreError> {
        let row = sqlx::query(
            "SELECT seq, sha256, chained_from, keyed_from, start_mac FROM audit_head WHERE id = 1",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(record_from_row(&row)?)
    }

    /// The chain's head as the store records it, to publish (notifications,
    /// the controller's log).
    pub async fn audit_head(&self) -> Result<Head, StoreError> {
        Ok(self.audit_chain().await?.head)
    }

    /// Keys the chain from the next entry on if it is not keyed yet (under
    /// the head's lock, so no append slips in between), or checks that it
    /// was keyed with `key`.
    pub async fn key_audit_chain(&self, key: &Key) -> Result<Keying, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE audit_head SET seq = seq WHERE id = 1 \
             RETURNING seq, sha256, chained_from, keyed_from, start_mac",
        )
        .fetch_one(&mut *tx)
        .await?;
        let record = record_from_row(&row)?;
        if record.start.keyed_from > 0 {
            return Ok(
                match audit::check_start(key, &record.start, &record.start_mac) {
                    Ok(()) => Keying::Holds {
                        keyed_from: record.start.keyed_from,
                    },
                    Err(_) => Keying::Differs {
                        start: record.start,
                    },
                },
            );
        }
        let start = Start {
            keyed_from: record.head.seq + 1,
            ..record.start
        };
        sqlx::query("UPDATE audit_head SET keyed_from = $1, start_mac = $2 WHERE id = 1")
            .bind(start.keyed_from)
            .bind(audit::start_mac(key, &start))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Keying::Began {
            keyed_from: start.keyed_from,
        })
    }

    /// Verifies the whole log, page by page, with `key` (keyed hashes are
    /// only checked for their links without it): the chain from where the
    /// store says it begins, the start record against the key, and that
    /// the log ends at the recorded head.
    pub async fn verify_audit(&self, key: Option<&Key>) -> Result<Verdict, StoreError> {
        let record = self.audit_chain().await?;
        let start = record.start;
        if let (Some(key), true) = (key, start.keyed_from > 0) {
            if let Err(broken) = audit::check_start(key, &start, &record.start_mac) {
                return Ok(Verdict {
                    start,
                    result: Err(broken),
                });
            }
        }
        let mut verifier = Verifier::new(Rules {
            start,
            key: key.cloned(),
            expected: Vec::new(),
        });
        let mut after = 0;
        loop {
            let page = self.audit_after(after, PAGE).await?;
            let Some(newest) = page.last() else { break };
            after = newest.seq;
            for entry in &page {
                if let Err(broken) = verifier.push(&entry.link()) {
                    return Ok(Verdict {
                        start,
                        result: Err(broken),
                    });
                }
            }
        }
        let result = verifier.finish().and_then(|verified| {
            audit::check_head(&verified, record.head.seq)?;
            Ok(verified)
        });
        Ok(Verdict { start, result })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // A failed unwrap is a failed test.
    use super::*;
    use sqlx::any::AnyPoolOptions;
    use std::borrow::Cow;
    use tierwise_common::audit::KEY_BYTES;

    async fn migrate_to(pool: &sqlx::AnyPool, version: i64) {
        let mut migrator = super::super::migrations::migrator(super::super::Backend::Sqlite)
            .await
            .unwrap();
        migrator.migrations = Cow::Owned(
            migrator
                .migrations
                .iter()
                .filter(|m| m.version <= version)
                .cloned()
                .collect(),
        );
        migrator.run(pool).await.unwrap();
    }

    /// A database upgraded from before the chain records its first chained
    /// entry as where the chain begins; keying begins at the next entry
    /// after the key's first start; unhashing a chained entry is found.
    #[tokio::test]
    async fn an_upgraded_log_records_where_its_chain_and_its_keying_began() {
        sqlx::any::install_default_drivers();
        let path = std::env::temp_dir().join(format!(
            "tierwise-audit-upgrade-{}-{:08x}.db",
            std::process::id(),
            fastrand::u32(..)
        ));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        migrate_to(&pool, 12).await;
        for subject in ["a", "b", "c"] {
            sqlx::query(
                "INSERT INTO audit_log (at_ms, actor, action, subject, details) \
                 VALUES (1, 'admin', 'operator add', $1, '')",
            )
            .bind(subject)
            .execute(&pool)
            .await
            .unwrap();
        }
        migrate_to(&pool, 25).await;
        // Two entries chained as controllers before migration 0026 did.
        let mut prev = audit::GENESIS.to_owned();
        for (seq, subject) in [(4, "d"), (5, "e")] {
            let sha = audit::entry_sha256(&prev, seq, 2, "admin", "token create", subject, "");
            sqlx::query(
                "INSERT INTO audit_log (seq, at_ms, actor, action, subject, details, prev_sha256, sha256) \
                 VALUES ($1, 2, 'admin', 'token create', $2, '', $3, $4)",
            )
            .bind(seq)
            .bind(subject)
            .bind(&prev)
            .bind(&sha)
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query("UPDATE audit_head SET seq = $1, sha256 = $2")
                .bind(seq)
                .bind(&sha)
                .execute(&pool)
                .await
                .unwrap();
            prev = sha;
        }
        pool.close().await;

        let store = Store::open(&url).await.unwrap();
        let record = store.audit_chain().await.unwrap();
        assert_eq!(
            record.start,
            Start {
                chained_from: 4,
                keyed_from: 0
            }
        );
        let key = Key::new(&[9; KEY_BYTES]);
        use_key(key.clone());
        assert_eq!(
            store.key_audit_chain(&key).await.unwrap(),
            Keying::Began { keyed_from: 6 }
        );
        store.audit("admin", "test", "f", "", 3).await.unwrap();
        let verified = store
            .verify_audit(Some(&key))
            .await
            .unwrap()
            .result
            .unwrap();
        assert_eq!(
            (verified.unchained, verified.chained, verified.keyed),
            (3, 3, 1)
        );
        // Another key, or a start record moved: refused.
        let other = Key::new(&[1; KEY_BYTES]);
        assert!(matches!(
            store.key_audit_chain(&other).await.unwrap(),
            Keying::Differs { .. }
        ));
        assert!(store
            .verify_audit(Some(&other))
            .await
            .unwrap()
            .result
            .is_err());

        sqlx::query("UPDATE audit_log SET sha256 = '', prev_sha256 = '' WHERE seq = 4")
            .execute(&store.pool)
            .await
            .unwrap();
        assert_eq!(
            store.verify_audit(Some(&key)).await.unwrap().result,
            Err(ChainBreak::Unhashed {
                seq: 4,
                chained_from: 4
            })
        );
        sqlx::query("UPDATE audit_head SET chained_from = 5")
            .execute(&store.pool)
            .await
            .unwrap();
        assert!(matches!(
            store.verify_audit(Some(&key)).await.unwrap().result,
            Err(ChainBreak::StartRecord { .. })
        ));
        store.close().await;
        for suffix in ["", "-wal", "-shm", ".lock"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
