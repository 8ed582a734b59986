//! Verifying a backup by what it left behind: the newest file in the
//! configured directory whose name matches the pattern, which must be
//! non-empty and written after the step started. An exit code of 0 alone
//! proves nothing.

use crate::config::BackupLocation;
use std::time::UNIX_EPOCH;
use tierwise_common::action::BackupFile;

/// File systems that keep times to 2 s (FAT) may date a file just written
/// up to this much before the step began.
const TIME_GRACE_MS: i64 = 2000;
/// A backup dated further ahead than this says the clocks disagree (a
/// share's file server and this host): its time proves nothing.
const FUTURE_LIMIT_MS: i64 = 5 * 60 * 1000;
/// How long a found backup must stay unchanged to count as finished.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether `name` matches `pattern`: `*` any run of characters, `?` one
/// character, everything else itself in any case.
pub fn matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.to_lowercase().chars().collect();
    let name: Vec<char> = name.to_lowercase().chars().collect();
    // Classic two-pointer wildcard match with backtracking to the last `*`.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// The newest matching file, if it is non-empty and written after
/// `started_ms`; otherwise why not, with what the directory holds.
pub fn newest(location: &BackupLocation, started_ms: i64) -> Result<BackupFile, String> {
    let entries = std::fs::read_dir(&location.directory).map_err(|e| {
        format!(
            "the backup command exited 0, but its backup directory {} cannot be read: {e}",
            location.directory.display()
        )
    })?;
    let mut newest: Option<BackupFile> = None;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !matches(&location.pattern, &name) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let modified_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .unwrap_or(0);
        if newest
            .as_ref()
            .is_none_or(|b| (modified_ms, meta.len()) > (b.modified_ms, b.size))
        {
            newest = Some(BackupFile {
                path: entry.path().display().to_string(),
                size: meta.len(),
                modified_ms,
            });
        }
    }
    let stamp = tierwise_runtime::clock::rfc3339;
    match newest {
        None => Err(format!(
            "the backup command exited 0, but no file matching `{}` is in {}; nothing protects this update",
            location.pattern,
            location.directory.display()
        )),
        Some(file) if file.modified_ms < started_ms - TIME_GRACE_MS => Err(format!(
            "the backup command exited 0, but no new file matching `{}` appeared in {} after the step started at {} (the newest, {}, was written {})",
            location.pattern,
            location.directory.display(),
            stamp(started_ms),
            file.path,
            stamp(file.modified_ms)
        )),
        Some(file) if file.modified_ms > tierwise_runtime::clock::now_ms() + FUTURE_LIMIT_MS => {
            Err(format!(
                "the backup command exited 0, but its newest backup {} is dated {}, in the future: the clocks of this host and of the backup directory disagree, so its time proves nothing",
                file.path,
                stamp(file.modified_ms)
            ))
        }
        Some(file) if file.size == 0 => Err(format!(
            "the backup command exited 0, but its newest backup {} is empty",
            file.path
        )),
        Some(file) => Ok(file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_file_name_wildcards_in_any_case() {
        assert!(matches("PSDB_*.bak", "psdb_2026-12-05.BAK"));
        assert!(matches("*", "anything"));
        assert!(matches("backup-??.zip", "backup-01.zip"));
        assert!(!matches("backup-??.zip", "backup-001.zip"));
        assert!(matches("*.bak", "a.b.bak"));
        assert!(!matches("*.bak", "a.bak.tmp"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
    }

    #[test]
    fn only_a_new_non_empty_matching_file_counts() {
        let dir = tempfile::tempdir().expect("dir");
        let location = BackupLocation {
            directory: dir.path().to_path_buf(),
            pattern: "PSDB_*.bak".into(),
        };
        let now = tierwise_runtime::clock::now_ms();
        let none = newest(&location, now).expect_err("nothing there");
        assert!(none.contains("no file matching `PSDB_*.bak`"), "{none}");

        std::fs::write(dir.path().join("other.txt"), "x").expect("write");
        std::fs::write(dir.path().join("PSDB_1.bak"), "").expect("write");
        let empty = newest(&location, now).expect_err("empty");
        assert!(empty.ends_with("is empty"), "{empty}");

        std::fs::write(dir.path().join("PSDB_2.bak"), "backup").expect("write");
        let file = newest(&location, now).expect("found");
        assert!(
            file.path.ends_with("PSDB_2.bak") && file.size == 6,
            "{file:?}"
        );

        // Written before the step started: old.
        let old = newest(&location, now + 60_000).expect_err("old");
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
        let wrong = newest(&location, now).expect_err("future");
        assert!(wrong.contains("in the future"), "{wrong}");
    }
}
