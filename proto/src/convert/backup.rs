//! Backup files on the wire: a step result and a rollout carry every file,
//! one per database, in `backups`, and the first also in the single
//! `backup` that peers from before there was one per database read.

use crate::v1;
use tierwise_common::action::BackupFile;

impl From<&BackupFile> for v1::BackupFile {
    fn from(file: &BackupFile) -> Self {
        v1::BackupFile {
            path: file.path.clone(),
            size: file.size,
            modified_ms: file.modified_ms,
            database: file.database.clone().unwrap_or_default(),
        }
    }
}

impl From<&v1::BackupFile> for BackupFile {
    fn from(wire: &v1::BackupFile) -> Self {
        BackupFile {
            database: super::non_empty(&wire.database),
            path: wire.path.clone(),
            size: wire.size,
            modified_ms: wire.modified_ms,
        }
    }
}

/// A step result's `backup` and `backups` for the files a backup found.
pub fn backups_to_wire(files: &[BackupFile]) -> (Option<v1::BackupFile>, Vec<v1::BackupFile>) {
    let backups: Vec<v1::BackupFile> = files.iter().map(v1::BackupFile::from).collect();
    (backups.first().cloned(), backups)
}

/// The files a step result reports: its `backups`, or, from an agent that
/// knows only one file, its `backup`.
pub fn backups_from_wire(result: &v1::StepResult) -> Vec<BackupFile> {
    if result.backups.is_empty() {
        result.backup.iter().map(BackupFile::from).collect()
    } else {
        result.backups.iter().map(BackupFile::from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(database: Option<&str>, path: &str) -> BackupFile {
        BackupFile {
            database: database.map(str::to_owned),
            path: path.to_owned(),
            size: 6,
            modified_ms: 1_800_000_000_000,
        }
    }

    #[test]
    fn every_file_travels_and_the_first_also_alone() {
        let files = [
            file(Some("PSDB"), "/b/PSDB_1.bak"),
            file(Some("Archive"), "/b/Archive_1.bak"),
        ];
        let (backup, backups) = backups_to_wire(&files);
        assert_eq!(backup.as_ref(), backups.first());
        let result = v1::StepResult {
            backup,
            backups,
            ..v1::StepResult::default()
        };
        assert_eq!(backups_from_wire(&result), files);
    }

    #[test]
    fn an_older_agent_s_single_backup_is_one_file_of_no_database() {
        let result = v1::StepResult {
            backup: Some(v1::BackupFile {
                path: "/b/PSDB_1.bak".into(),
                size: 6,
                modified_ms: 1_800_000_000_000,
                database: String::new(),
            }),
            ..v1::StepResult::default()
        };
        assert_eq!(backups_from_wire(&result), [file(None, "/b/PSDB_1.bak")]);
        assert!(backups_from_wire(&v1::StepResult::default()).is_empty());
    }
}
