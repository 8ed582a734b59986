//! The step journal: one small file per step id in the state directory,
//! written before a step runs and after it ends, so that a step id is never
//! executed twice — not when the controller delivers it again, not after the
//! agent restarts.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use tierwise_common::action::{StepAction, StepOutcome};

/// What the agent knows about one step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub step_id: String,
    pub action: StepAction,
    pub started_ms: i64,
    /// `None` while the step runs (or if the agent died while it ran).
    pub finished: Option<StepReport>,
}

/// How a step ended, as reported to the controller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    pub step_id: String,
    pub outcome: StepOutcome,
    pub exit_code: Option<i32>,
    /// The last lines of the command's output.
    pub output_tail: String,
    /// Why, in words; empty when it simply succeeded.
    pub reason: String,
    pub started_ms: i64,
    pub finished_ms: i64,
    /// A backup step whose location is configured: the backup it found of
    /// each database (or the one of the server). Journals written before
    /// there was one per database hold a single `backup`.
    #[serde(
        default,
        alias = "backup",
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub backups: Vec<tierwise_common::action::BackupFile>,
}

/// A list, or the single value an older agent journaled in its place.
fn one_or_many<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<tierwise_common::action::BackupFile>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<tierwise_common::action::BackupFile>),
        One(tierwise_common::action::BackupFile),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::Many(files) => files,
        OneOrMany::One(file) => vec![file],
    })
}

impl StepReport {
    /// A report of a step that ended now without running a command (so
    /// without exit code or output).
    pub fn without_output(
        step_id: &str,
        outcome: StepOutcome,
        reason: String,
        started_ms: i64,
    ) -> Self {
        Self {
            step_id: step_id.to_owned(),
            outcome,
            exit_code: None,
            output_tail: String::new(),
            reason,
            started_ms,
            finished_ms: tierwise_runtime::clock::now_ms(),
            backups: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("step id `{0}` is not usable (letters, digits, `.`, `-`, `_`; at most 128)")]
    BadStepId(String),
    #[error("the step journal {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the step journal {path} is damaged: {source}")]
    Corrupt {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Clone, Debug)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// Opens (creating) `state_dir/steps`.
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        // Installer output may name paths and accounts: owner-only.
        let dir = state_dir.join("steps");
        for dir in [state_dir, &dir] {
            tierwise_transport::files::private_dir(dir).map_err(|e| JournalError::Io {
                path: dir.display().to_string(),
                source: std::io::Error::other(e.to_string()),
            })?;
        }
        Ok(Self { dir })
    }

    fn path(&self, step_id: &str) -> Result<PathBuf, JournalError> {
        // The id names a file: nothing that could leave the directory.
        let usable = !step_id.is_empty()
            && step_id.len() <= 128
            && step_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && !step_id.starts_with('.');
        if !usable {
            return Err(JournalError::BadStepId(step_id.chars().take(64).collect()));
        }
        Ok(self.dir.join(format!("{step_id}.json")))
    }

    pub fn get(&self, step_id: &str) -> Result<Option<JournalEntry>, JournalError> {
        let path = self.path(step_id)?;
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(JournalError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| JournalError::Corrupt {
                path: path.display().to_string(),
                source,
            })
    }

    /// Writes the entry durably: a temporary file, flushed to disk, renamed
    /// over the old one, so a crash leaves either the old or the new entry.
    pub fn put(&self, entry: &JournalEntry) -> Result<(), JournalError> {
        let path = self.path(&entry.step_id)?;
        let io = |source| JournalError::Io {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(entry).map_err(|source| JournalError::Corrupt {
            path: path.display().to_string(),
            source,
        })?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let _ = std::fs::remove_file(&tmp);
        let mut file = options.open(&tmp).map_err(io)?;
        file.write_all(&text).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(io)?;
        // The rename itself is durable once the directory is synced (Unix).
        #[cfg(unix)]
        if let Ok(dir) = std::fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run with `umask 022` (the usual default): installer output in the
    /// journal is still the owner's alone.
    #[cfg(unix)]
    #[test]
    fn the_state_directory_and_journals_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
        let root = tempfile::tempdir().expect("tempdir");
        let state = root.path().join("state");
        let journal = Journal::open(&state).expect("opened");
        journal
            .put(&JournalEntry {
                step_id: "s-1".into(),
                action: StepAction::Backup,
                started_ms: 1,
                finished: None,
            })
            .expect("written");
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join("steps")), 0o700);
        let file = std::fs::read_dir(state.join("steps"))
            .expect("listed")
            .next()
            .expect("one journal")
            .expect("entry")
            .path();
        assert_eq!(mode(&file), 0o600, "{}", file.display());
        // An existing directory made by an older agent is tightened.
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Journal::open(&state).expect("reopened");
        assert_eq!(mode(&state), 0o700);
    }

    #[test]
    fn a_report_journaled_with_one_backup_reads_as_a_list() {
        let old = r#"{"step_id":"s-1","outcome":"succeeded","exit_code":0,"output_tail":"","reason":"","started_ms":1,"finished_ms":2,
            "backup":{"path":"/b/PSDB_1.bak","size":6,"modified_ms":2}}"#;
        let report: StepReport = serde_json::from_str(old).expect("an old report");
        assert_eq!(report.backups.len(), 1);
        assert_eq!(report.backups[0].path, "/b/PSDB_1.bak");
        assert_eq!(report.backups[0].database, None);
        let written = serde_json::to_string(&report).expect("written");
        let again: StepReport = serde_json::from_str(&written).expect("read back");
        assert_eq!(again, report);
        assert!(written.contains("\"backups\":["), "{written}");
    }
}
