//! The audit chain's key (`audit.key` in the data directory, owner-only,
//! never in the database): made at the first start, checked against the
//! store's record of the chain at every start; and the chain's head
//! published to the controller's log every hour.
//!
//! Controllers sharing one PostgreSQL database share the key as they share
//! the CA: the file is copied to each replica's data directory (or the
//! data directory is shared). A replica without it refuses to start once
//! the chain is keyed, and one with another key too.

use crate::store::audit::Keying;
use crate::store::Store;
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tierwise_common::audit::{Key, KEY_BYTES};
use tracing::{info, warn};

/// The key file's name in the data directory.
pub const FILE_NAME: &str = "audit.key";

/// A key file younger than this was made by a replica starting beside
/// this one (a shared data directory), not left from an earlier keying.
const JUST_MADE: Duration = Duration::from_secs(60);

/// How often the controller logs the chain's head (`audit head`), also
/// once at its start.
pub const HEAD_LOG_INTERVAL: Duration = Duration::from_secs(3600);

/// Where the key is kept.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Reads the key, or makes it when the chain is not keyed yet, keys the
/// chain from the next entry on if it is not, and has this process append
/// with it. Refuses (with what to do) a missing key for a keyed chain, a
/// key other than the one the chain was keyed with, and a key for a
/// non-empty chain that has lost its key record.
pub async fn load_or_create(data_dir: &Path, store: &Store) -> anyhow::Result<Key> {
    let path = path(data_dir);
    let record = store.audit_chain().await?;
    let key = match read(&path)? {
        Some(key) => {
            // A key made moments ago by a replica sharing the directory,
            // which is keying the chain now, is not a lost key record.
            let just_made = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|at| at.elapsed().ok())
                .is_some_and(|age| age < JUST_MADE);
            if record.start.keyed_from == 0 && record.head.seq > 0 && !just_made {
                anyhow::bail!(
                    "this controller has an audit key ({}), but the audit log in the database (entries 1 to {}) \
                     is not keyed: its key record was removed, or the database was replaced or restored from \
                     before it was keyed. If that is expected, move {} away and start again: a new key is made \
                     and keying begins at the next entry (`tierwise audit verify` then shows where)",
                    path.display(),
                    record.head.seq,
                    path.display()
                );
            }
            key
        }
        None if record.start.keyed_from > 0 => anyhow::bail!(
            "the audit log in the database is keyed (from entry {}), but this controller has no audit key at {}: \
             copy {FILE_NAME} from the data directory of the controller that keyed it (owner-only, as the CA's \
             files) and start again",
            record.start.keyed_from,
            path.display()
        ),
        None => create(&path)?,
    };
    match store.key_audit_chain(&key).await? {
        Keying::Began { keyed_from } => {
            info!(keyed_from, key = %path.display(), "the audit chain is keyed from this entry on")
        }
        Keying::Holds { keyed_from } => {
            info!(keyed_from, "the audit chain is keyed with this controller's key")
        }
        Keying::Differs { start } => anyhow::bail!(
            "the audit key {} is not the one the audit log was keyed with (from entry {}), or the database's \
             record of where the chain begins was changed: copy {FILE_NAME} from the data directory of the \
             controller that keyed it and start again",
            path.display(),
            start.keyed_from
        ),
    }
    crate::store::audit::use_key(key.clone());
    Ok(key)
}

/// The key file's key, if there is one (made owner-only if it was not).
fn read(path: &Path) -> anyhow::Result<Option<Key>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read the audit key {}", path.display()))
        }
    };
    if let Ok(true) = tierwise_transport::files::private_file(path) {
        warn!(file = %path.display(), "the audit key was readable by others; it is owner-only now");
    }
    Key::parse(&text)
        .map(Some)
        .map_err(|reason| anyhow::anyhow!("the audit key {} is damaged: {reason}; restore it from the controller that keyed the log", path.display()))
}

/// Makes a new key file, owner-only (0600), never replacing one another
/// replica sharing the directory made at the same moment (that one is
/// used instead).
fn create(path: &Path) -> anyhow::Result<Key> {
    let bytes = crate::pki::random_bytes::<KEY_BYTES>();
    let text = format!("{}\n", tierwise_common::hex(&bytes));
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{:016x}.tmp", fastrand::u64(..)));
    let temporary = PathBuf::from(temporary);
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        // A link, unlike a rename, never replaces an existing file.
        std::fs::hard_link(&temporary, path)
    })();
    let _ = std::fs::remove_file(&temporary);
    match written {
        Ok(()) => {
            info!(file = %path.display(), "made the audit key; copy it to every controller sharing this database");
            Ok(Key::new(&bytes))
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            read(path)?.context("the audit key disappeared while it was being made")
        }
        Err(error) => Err(error).with_context(|| {
            format!(
                "cannot write the audit key {}; choose another --data-dir",
                path.display()
            )
        }),
    }
}

/// Logs the chain's head (`audit head`, as `SEQ:SHA256`) at once and then
/// every `HEAD_LOG_INTERVAL`, so the log outside the database shows where
/// the chain stood.
pub async fn publish_head(store: Store) {
    let mut tick = tokio::time::interval(HEAD_LOG_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match store.audit_head().await {
            Ok(head) => info!(audit_head = %head, "audit head"),
            Err(error) => warn!(%error, "could not read the audit chain's head"),
        }
    }
}
