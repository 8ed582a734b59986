//! The controller's content-addressed store of installers: files named by
//! their SHA-256 in the data directory's `artifacts/`. A file is written to a
//! temporary name while its checksum is computed, and only then renamed, so
//! the store never holds a file under a wrong name. A temporary file whose
//! upload ends any other way (refused, or the client went away) is removed.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tierwise_common::{hex, is_sha256};
use tokio::io::AsyncWriteExt;

/// Bytes per chunk sent to agents.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// How temporary files of uploads are named.
const INCOMING_PREFIX: &str = "incoming-";

/// A temporary file untouched this long at start is a leftover: replicas
/// sharing the directory may be receiving into younger ones.
pub const LEFTOVER_AGE: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct ArtifactStore {
    dir: PathBuf,
}

/// A file being received: written and hashed as it arrives. Dropped
/// before `finish` stored it, it removes its temporary file.
#[derive(Debug)]
pub struct Incoming {
    tmp: PathBuf,
    file: tokio::fs::File,
    hasher: Sha256,
    size: u64,
    stored: bool,
}

impl ArtifactStore {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("artifacts"),
        }
    }

    /// The stored file of `sha256`, if there is one.
    pub fn path(&self, sha256: &str) -> Option<PathBuf> {
        if !is_sha256(sha256) {
            return None;
        }
        let path = self.dir.join(sha256);
        path.is_file().then_some(path)
    }

    pub async fn begin(&self) -> std::io::Result<Incoming> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let tmp = self
            .dir
            .join(format!("{INCOMING_PREFIX}{:016x}", fastrand::u64(..)));
        let file = tokio::fs::File::create(&tmp).await?;
        Ok(Incoming {
            tmp,
            file,
            hasher: Sha256::new(),
            size: 0,
            stored: false,
        })
    }

    /// Stores the received file under its checksum if `accept` agrees;
    /// otherwise removes it. Returns (sha256, size).
    pub async fn finish(
        &self,
        mut incoming: Incoming,
        accept: impl FnOnce(&str) -> Result<(), String>,
    ) -> Result<(String, u64), String> {
        incoming.file.flush().await.map_err(|e| e.to_string())?;
        incoming.file.sync_all().await.map_err(|e| e.to_string())?;
        let sha256 = hex(&incoming.hasher.finalize_reset());
        accept(&sha256)?;
        tokio::fs::rename(&incoming.tmp, self.dir.join(&sha256))
            .await
            .map_err(|e| e.to_string())?;
        incoming.stored = true;
        Ok((sha256, incoming.size))
    }

    /// Deletes the stored file of `sha256` (nothing to do if it is gone).
    pub async fn remove(&self, sha256: &str) -> std::io::Result<()> {
        if !is_sha256(sha256) {
            return Ok(());
        }
        match tokio::fs::remove_file(self.dir.join(sha256)).await {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }

    /// Removes the temporary files of uploads that ended with the process
    /// that received them (untouched for `older_than`); returns how many.
    pub fn remove_leftovers(&self, older_than: Duration) -> std::io::Result<usize> {
        let entries = match std::fs::read_dir(&self.dir) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            other => other?,
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            let leftover = entry
                .file_name()
                .to_string_lossy()
                .starts_with(INCOMING_PREFIX)
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|at| at.elapsed().unwrap_or_default() >= older_than);
            if leftover && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl Incoming {
    pub async fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.hasher.update(data);
        self.size += data.len() as u64;
        self.file.write_all(data).await
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        // An upload refused, failed, or whose client went away (its
        // request future is dropped mid-stream): no partial file stays.
        // One unlink, so done here rather than on another task.
        if !self.stored {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
