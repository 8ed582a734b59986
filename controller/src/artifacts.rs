//! The controller's content-addressed store of installers: files named by
//! their SHA-256 in the data directory's `artifacts/`. A file is written to a
//! temporary name while its checksum is computed, and only then renamed, so
//! the store never holds a file under a wrong name.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tierwise_common::{hex, is_sha256};
use tokio::io::AsyncWriteExt;

/// Bytes per chunk sent to agents.
pub const CHUNK_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct ArtifactStore {
    dir: PathBuf,
}

/// A file being received: written and hashed as it arrives.
#[derive(Debug)]
pub struct Incoming {
    tmp: PathBuf,
    file: tokio::fs::File,
    hasher: Sha256,
    size: u64,
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
            .join(format!("incoming-{:016x}", fastrand::u64(..)));
        let file = tokio::fs::File::create(&tmp).await?;
        Ok(Incoming {
            tmp,
            file,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Stores the received file under its checksum if `accept` agrees;
    /// otherwise removes it. Returns (sha256, size).
    pub async fn finish(
        &self,
        mut incoming: Incoming,
        accept: impl FnOnce(&str) -> Result<(), String>,
    ) -> Result<(String, u64), String> {
        let result = async {
            incoming.file.flush().await.map_err(|e| e.to_string())?;
            incoming.file.sync_all().await.map_err(|e| e.to_string())?;
            let sha256 = hex(&incoming.hasher.finalize_reset());
            accept(&sha256)?;
            tokio::fs::rename(&incoming.tmp, self.dir.join(&sha256))
                .await
                .map_err(|e| e.to_string())?;
            Ok((sha256, incoming.size))
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&incoming.tmp).await;
        }
        result
    }
}

impl Incoming {
    pub async fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.hasher.update(data);
        self.size += data.len() as u64;
        self.file.write_all(data).await
    }
}
