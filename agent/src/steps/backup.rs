//! Verifying a backup by what it left behind, the I/O half: list the
//! configured directory and ask the server's databases probe which
//! databases there are; `tierwise_common::backup` decides whether every
//! database has a new, non-empty file of its own. An exit code of 0 alone
//! proves nothing.

use crate::config::{BackupLocation, DatabasesProbe};
use tierwise_common::action::BackupFile;
use tierwise_common::backup::{BackupRule, ListedFile};

/// How long the found backups must stay unchanged to count as finished.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// The databases a backup must cover, as the server's databases probe
/// reports them now; none without a probe (one file then stands for the
/// server). A probe that fails fails the step: a backup of unknown
/// databases protects nothing anyone can name.
pub async fn databases(probe: Option<&DatabasesProbe>) -> Result<Vec<String>, String> {
    let Some(probe) = probe else {
        return Ok(Vec::new());
    };
    match crate::probe::databases(probe).await {
        Ok(databases) => Ok(databases.into_iter().map(|d| d.name).collect()),
        Err(why) => Err(format!(
            "the backup command exited 0, but the databases probe failed, so which databases need a backup is unknown: {why}"
        )),
    }
}

/// The regular files in the backup directory. Blocks: run it off the
/// runtime.
pub fn list(location: &BackupLocation) -> Result<Vec<ListedFile>, String> {
    let entries = std::fs::read_dir(&location.directory).map_err(|e| {
        format!(
            "the backup command exited 0, but its backup directory {} cannot be read: {e}",
            location.directory.display()
        )
    })?;
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        files.push(ListedFile {
            name: entry.file_name().to_string_lossy().into_owned(),
            path: entry.path().display().to_string(),
            size: meta.len(),
            modified_ms: meta.modified().map_or(0, tierwise_runtime::clock::unix_ms),
        });
    }
    Ok(files)
}

/// The backup of each database (or the one of the server) in the
/// directory now, if each is new, non-empty and not dated in the future;
/// otherwise why not, naming each database without one. Blocks.
pub fn found(
    location: &BackupLocation,
    databases: &[String],
    started_ms: i64,
) -> Result<Vec<BackupFile>, String> {
    let files = list(location)?;
    let directory = location.directory.display().to_string();
    BackupRule {
        directory: &directory,
        pattern: &location.pattern,
        databases,
        started_ms,
        now_ms: tierwise_runtime::clock::now_ms(),
    }
    .check(&files)
    .map_err(|shortfall| shortfall.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(dir: &std::path::Path, pattern: &str) -> BackupLocation {
        BackupLocation {
            directory: dir.to_path_buf(),
            pattern: pattern.parse().expect("a pattern"),
        }
    }

    #[test]
    fn only_a_new_non_empty_matching_file_counts() {
        let dir = tempfile::tempdir().expect("dir");
        let location = location(dir.path(), "PSDB_*.bak");
        let now = tierwise_runtime::clock::now_ms();
        let none = found(&location, &[], now).expect_err("nothing there");
        assert!(none.contains("no file matching `PSDB_*.bak`"), "{none}");

        std::fs::write(dir.path().join("other.txt"), "x").expect("write");
        std::fs::write(dir.path().join("PSDB_1.bak"), "").expect("write");
        let empty = found(&location, &[], now).expect_err("empty");
        assert!(empty.ends_with("is empty"), "{empty}");

        std::fs::write(dir.path().join("PSDB_2.bak"), "backup").expect("write");
        let files = found(&location, &[], now).expect("found");
        assert!(
            files.len() == 1 && files[0].path.ends_with("PSDB_2.bak") && files[0].size == 6,
            "{files:?}"
        );

        // Written before the step started: old.
        let old = found(&location, &[], now + 60_000).expect_err("old");
        assert!(old.contains("no new file matching"), "{old}");

        // Dated far ahead: the clocks disagree.
        let ahead = dir.path().join("PSDB_3.bak");
        std::fs::write(&ahead, "backup").expect("write");
        let future = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&ahead)
            .and_then(|f| f.set_modified(future))
            .expect("set the time");
        let wrong = found(&location, &[], now).expect_err("future");
        assert!(wrong.contains("in the future"), "{wrong}");
    }

    #[test]
    fn each_database_needs_a_file_of_its_own_in_the_directory() {
        let dir = tempfile::tempdir().expect("dir");
        let location = location(dir.path(), "{database}_*.bak");
        let databases = ["PSDB".to_owned(), "Archive".to_owned()];
        let now = tierwise_runtime::clock::now_ms();
        std::fs::write(dir.path().join("psdb_1.bak"), "backup").expect("write");
        let short = found(&location, &databases, now).expect_err("Archive has none");
        assert!(
            short.contains("1 of 2 databases")
                && short.contains("`Archive`: no file matching `Archive_*.bak`")
                && !short.contains("`PSDB`"),
            "{short}"
        );
        std::fs::write(dir.path().join("Archive_1.bak"), "backup").expect("write");
        let files = found(&location, &databases, now).expect("both");
        let names: Vec<_> = files
            .iter()
            .map(|f| (f.database.as_deref(), f.path.rsplit('/').next()))
            .collect();
        assert_eq!(
            names,
            [
                (Some("PSDB"), Some("psdb_1.bak")),
                (Some("Archive"), Some("Archive_1.bak"))
            ]
        );
    }
}
