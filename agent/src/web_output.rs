//! Handing the Web Application the Server Manager generated to the
//! controller. The vendor's package exists only once the new Server Manager
//! made it, one per kind of web server; the site saves each in its folder
//! under `web_app_output` (`iis`, `apache`, `nginx`), and the primary
//! server's agent offers the newest ZIP of each folder. The controller takes
//! one only while a rollout waits for it, so an offer made too early is
//! simply refused and made again later.

use crate::steps::download::Downloader;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};
use tierwise_common::WebServerKind;

/// How long a refused offer waits before it is made again.
const RETRY_REFUSED: Duration = Duration::from_secs(10);

/// The newest `.zip` of each kind's folder: (kind, path, written at ms).
pub fn newest_packages(output: &Path) -> Vec<(WebServerKind, PathBuf, i64)> {
    let mut found = Vec::new();
    for kind in [
        WebServerKind::Iis,
        WebServerKind::Apache,
        WebServerKind::Nginx,
    ] {
        let Ok(entries) = std::fs::read_dir(output.join(kind.as_str())) else {
            continue;
        };
        let newest = entries
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .to_ascii_lowercase()
                    .ends_with(".zip")
            })
            .filter_map(|e| {
                let meta = e.metadata().ok().filter(|m| m.is_file() && m.len() > 0)?;
                let modified = meta
                    .modified()
                    .ok()?
                    .duration_since(UNIX_EPOCH)
                    .ok()
                    .and_then(|d| i64::try_from(d.as_millis()).ok())?;
                Some((modified, e.path()))
            })
            .max();
        if let Some((modified, path)) = newest {
            found.push((kind, path, modified));
        }
    }
    found
}

/// Offers new packages every `interval`, forever. What the controller
/// took is not offered again (by path and time); a refusal is retried
/// after `RETRY_REFUSED`.
pub async fn run(output: PathBuf, downloader: Downloader, interval: Duration) {
    let mut taken: BTreeMap<PathBuf, i64> = BTreeMap::new();
    let mut refused: BTreeMap<PathBuf, tokio::time::Instant> = BTreeMap::new();
    loop {
        let scan = {
            let output = output.clone();
            tokio::task::spawn_blocking(move || newest_packages(&output))
                .await
                .unwrap_or_default()
        };
        for (kind, path, modified) in scan {
            if taken.get(&path) == Some(&modified) {
                continue;
            }
            if refused
                .get(&path)
                .is_some_and(|at| at.elapsed() < RETRY_REFUSED)
            {
                continue;
            }
            match downloader.upload_web_package(kind, &path, modified).await {
                Ok(receipt) => {
                    tracing::info!(path = %path.display(), web_server = kind.as_str(), release = %receipt.release, sha256 = %receipt.sha256, "Web Application handed to the controller");
                    taken.insert(path.clone(), modified);
                    refused.remove(&path);
                }
                Err(why) => {
                    tracing::debug!(path = %path.display(), %why, "Web Application not taken yet");
                    refused.insert(path.clone(), tokio::time::Instant::now());
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_zip_of_each_kinds_folder_is_offered() {
        let dir = tempfile::tempdir().unwrap();
        let iis = dir.path().join("iis");
        std::fs::create_dir_all(&iis).unwrap();
        std::fs::create_dir_all(dir.path().join("apache")).unwrap();
        std::fs::write(iis.join("old.zip"), b"old").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(iis.join("new.ZIP"), b"new").unwrap();
        std::fs::write(iis.join("notes.txt"), b"not a package").unwrap();
        std::fs::write(dir.path().join("apache").join("empty.zip"), b"").unwrap();
        let found = newest_packages(dir.path());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, WebServerKind::Iis);
        assert!(found[0].1.ends_with("new.ZIP"));
    }
}
