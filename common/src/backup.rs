//! Which new files protect which databases: the pure half of a verified
//! backup. The agent lists its backup directory and asks its databases
//! probe; this decides whether every database the server reports has a
//! fresh backup of its own, and otherwise says which have none and what was
//! seen for each. An exit code of 0 alone proves nothing, and neither does
//! one file standing for two databases.

use crate::action::BackupFile;
use std::fmt;
use std::str::FromStr;

/// What a backup pattern may fill in: each database's name.
pub const DATABASE_PLACEHOLDER: &str = "{database}";

/// File systems that keep times to 2 s (FAT) may date a file just written
/// up to this much before the step began.
pub const TIME_GRACE_MS: i64 = 2000;

/// A backup dated further ahead than this says the clocks disagree (a
/// share's file server and this host): its time proves nothing.
pub const FUTURE_LIMIT_MS: i64 = 5 * 60 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    /// `*`: any run of characters.
    Any,
    /// `?`: one character.
    One,
    /// `{database}`: the database's name, itself.
    Database,
    /// Itself, lower-cased: names match in any case.
    Char(char),
}

/// How a server's backup files are named: `*` any run of characters, `?`
/// one character, `{database}` the name of the database it holds,
/// everything else itself, in any case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupPattern {
    text: String,
    tokens: Vec<Token>,
}

/// A pattern that cannot name backup files, with what to write instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackupPatternError {
    #[error(
        "`backup_pattern` is a file name pattern such as \"PSDB_*.bak\" or \"{{database}}_*.bak\" (`*` and `?`), not `{0}`"
    )]
    NotAFileName(String),
    #[error(
        "`backup_pattern` may fill in only `{{database}}` (each database's name), not `{placeholder}` in `{pattern}`"
    )]
    Placeholder {
        pattern: String,
        placeholder: String,
    },
}

impl FromStr for BackupPattern {
    type Err = BackupPatternError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().is_empty() || text.contains(['/', '\\']) {
            return Err(BackupPatternError::NotAFileName(text.to_owned()));
        }
        let mut tokens = Vec::with_capacity(text.len());
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix(DATABASE_PLACEHOLDER) {
                tokens.push(Token::Database);
                rest = after;
                continue;
            }
            match c {
                // A date or a server name would need a value the agent
                // does not have; a brace that is not `{database}` is
                // almost always such a wish, so it is refused, not matched.
                '{' | '}' => {
                    let end = match c {
                        '{' => rest.find('}').map_or(rest.len(), |at| at + 1),
                        _ => 1,
                    };
                    return Err(BackupPatternError::Placeholder {
                        pattern: text.to_owned(),
                        placeholder: rest[..end].to_owned(),
                    });
                }
                '*' => tokens.push(Token::Any),
                '?' => tokens.push(Token::One),
                c => tokens.extend(c.to_lowercase().map(Token::Char)),
            }
            rest = &rest[c.len_utf8()..];
        }
        Ok(Self {
            text: text.to_owned(),
            tokens,
        })
    }
}

impl fmt::Display for BackupPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl BackupPattern {
    /// Whether the pattern holds `{database}`.
    pub fn names_database(&self) -> bool {
        self.tokens.contains(&Token::Database)
    }

    /// Whether the file name `name` matches, `{database}` standing for
    /// `database` (taken literally: a `*` in a name is no wildcard). A
    /// pattern with `{database}` matches nothing without a database.
    pub fn matches(&self, name: &str, database: Option<&str>) -> bool {
        let mut pattern = Vec::with_capacity(self.tokens.len());
        for token in &self.tokens {
            match (token, database) {
                (Token::Database, Some(database)) => {
                    pattern.extend(database.to_lowercase().chars().map(Token::Char));
                }
                (Token::Database, None) => return false,
                (token, _) => pattern.push(*token),
            }
        }
        let name: Vec<char> = name.to_lowercase().chars().collect();
        wildcard(&pattern, &name)
    }

    /// The pattern with `database` filled in, as people read it.
    pub fn filled(&self, database: &str) -> String {
        self.text.replace(DATABASE_PLACEHOLDER, database)
    }
}

/// Classic two-pointer wildcard match, backtracking to the last `*`.
fn wildcard(pattern: &[Token], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(Token::Any) => {
                star = Some((p, n));
                p += 1;
            }
            Some(Token::One) => {
                p += 1;
                n += 1;
            }
            Some(Token::Char(c)) if *c == name[n] => {
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
    pattern[p..].iter().all(|t| *t == Token::Any)
}

/// A file in the backup directory, as the agent listed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedFile {
    /// Its name in the directory, which the pattern is matched against.
    pub name: String,
    pub path: String,
    pub size: u64,
    /// When it was last written (Unix ms).
    pub modified_ms: i64,
}

/// What a backup step must have left once its command exited 0.
#[derive(Clone, Copy, Debug)]
pub struct BackupRule<'a> {
    /// Where backups land, for the reasons.
    pub directory: &'a str,
    pub pattern: &'a BackupPattern,
    /// The databases the server's agent reports; empty when it has no
    /// databases probe (or it lists none): then one file stands for all.
    pub databases: &'a [String],
    pub started_ms: i64,
    pub now_ms: i64,
}

/// The backup that protects a rollout: what its server's agent found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedBackup {
    pub host_id: String,
    /// One per database, in the order the server reports them (or one for
    /// a server that names no databases); never empty.
    pub files: Vec<BackupFile>,
}

/// Why what a database (or the server) needs is not there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Missing {
    /// No file matches.
    NoFile,
    /// The newest matching file was written before the step started.
    Old(BackupFile),
    /// The newest matching file is dated in the future.
    FutureDated(BackupFile),
    /// The newest matching file is empty.
    Empty(BackupFile),
}

/// A database (or the server) without a fresh backup of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingBackup {
    /// `None`: the server, which names no databases.
    pub database: Option<String>,
    /// How its files are named, as people read it.
    pub wanted: String,
    pub missing: Missing,
}

/// A backup step that did not leave what the rule needs: the step fails
/// with this as its reason, and the rollout halts before the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackupShortfall {
    /// `{database}` is in the pattern and the server reports no database.
    NoDatabases { pattern: String },
    /// What the server lacks (`of` is 1: one database, or none named), or
    /// which of its `of` databases lack a fresh file of their own.
    Missing {
        directory: String,
        pattern: String,
        started_ms: i64,
        of: usize,
        missing: Vec<MissingBackup>,
    },
}

impl BackupRule<'_> {
    /// The file protecting each database (or the one protecting the
    /// server), each newest of its own, non-empty, written after the step
    /// started and not dated in the future; otherwise every database that
    /// lacks one, with the newest file seen for it.
    pub fn check(&self, files: &[ListedFile]) -> Result<Vec<BackupFile>, BackupShortfall> {
        if self.databases.is_empty() && self.pattern.names_database() {
            return Err(BackupShortfall::NoDatabases {
                pattern: self.pattern.to_string(),
            });
        }
        let targets: Vec<Option<&str>> = if self.databases.is_empty() {
            vec![None]
        } else {
            self.databases.iter().map(|d| Some(d.as_str())).collect()
        };
        let mut newest: Vec<Option<&ListedFile>> = vec![None; targets.len()];
        for file in files {
            let Some(owner) = self.owner(&targets, &file.name) else {
                continue;
            };
            if newest[owner].is_none_or(|b| (file.modified_ms, file.size) > (b.modified_ms, b.size))
            {
                newest[owner] = Some(file);
            }
        }
        let mut found = Vec::with_capacity(targets.len());
        let mut missing = Vec::new();
        for (target, file) in targets.iter().zip(newest) {
            let file = file.map(|f| BackupFile {
                database: target.map(str::to_owned),
                path: f.path.clone(),
                size: f.size,
                modified_ms: f.modified_ms,
            });
            match self.judge(file) {
                Ok(file) => found.push(file),
                Err(why) => missing.push((*target, why)),
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        Err(BackupShortfall::Missing {
            directory: self.directory.to_owned(),
            pattern: self.pattern.to_string(),
            started_ms: self.started_ms,
            of: targets.len(),
            missing: missing
                .into_iter()
                .map(|(database, missing)| MissingBackup {
                    database: database.map(str::to_owned),
                    wanted: database.map_or_else(
                        || format!("`{}`", self.pattern),
                        |database| self.wanted(database),
                    ),
                    missing,
                })
                .collect(),
        })
    }

    /// Which target a file is a backup of, if any. With several
    /// databases a file belongs to one at most, so that one file never
    /// stands for two: the longest name it fits wins (`PSDB_Test_1.bak` is
    /// `PSDB_Test`'s, not `PSDB`'s); a tie belongs to neither.
    fn owner(&self, targets: &[Option<&str>], name: &str) -> Option<usize> {
        let several = targets.len() > 1;
        let lower = name.to_lowercase();
        let fits = |target: Option<&str>| match target {
            Some(database) if self.pattern.names_database() => {
                self.pattern.matches(name, Some(database))
            }
            Some(database) if several => {
                self.pattern.matches(name, None) && lower.contains(&database.to_lowercase())
            }
            _ => self.pattern.matches(name, None),
        };
        let length = |index: usize| targets[index].map_or(0, |d| d.chars().count());
        let mut best: Option<usize> = None;
        let mut tied = false;
        for index in (0..targets.len()).filter(|&i| fits(targets[i])) {
            match best {
                Some(b) if length(index) == length(b) => tied = true,
                Some(b) if length(index) < length(b) => {}
                _ => {
                    best = Some(index);
                    tied = false;
                }
            }
        }
        best.filter(|_| !tied)
    }

    fn judge(&self, file: Option<BackupFile>) -> Result<BackupFile, Missing> {
        match file {
            None => Err(Missing::NoFile),
            Some(file) if file.modified_ms < self.started_ms - TIME_GRACE_MS => {
                Err(Missing::Old(file))
            }
            Some(file) if file.modified_ms > self.now_ms + FUTURE_LIMIT_MS => {
                Err(Missing::FutureDated(file))
            }
            Some(file) if file.size == 0 => Err(Missing::Empty(file)),
            Some(file) => Ok(file),
        }
    }

    /// How a database's files are named, for a reason.
    fn wanted(&self, database: &str) -> String {
        if self.pattern.names_database() {
            format!("`{}`", self.pattern.filled(database))
        } else if self.databases.len() > 1 {
            format!("`{}` whose name contains `{database}`", self.pattern)
        } else {
            format!("`{}`", self.pattern)
        }
    }
}

impl BackupShortfall {
    /// The databases without a fresh backup (none for a server that
    /// names no databases).
    pub fn databases(&self) -> Vec<&str> {
        match self {
            BackupShortfall::NoDatabases { .. } => Vec::new(),
            BackupShortfall::Missing { missing, .. } => missing
                .iter()
                .filter_map(|m| m.database.as_deref())
                .collect(),
        }
    }
}

impl fmt::Display for BackupShortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let utc = crate::date::utc;
        let (directory, pattern, started_ms, of, missing) = match self {
            BackupShortfall::NoDatabases { pattern } => {
                return write!(
                    f,
                    "the backup command exited 0, but the server reports no database to fill into `{pattern}`; nothing says which files protect it"
                )
            }
            BackupShortfall::Missing {
                directory,
                pattern,
                started_ms,
                of,
                missing,
            } => (directory, pattern, *started_ms, *of, missing),
        };
        // One backup for the server: the reasons it always had.
        if let ([single], 1) = (missing.as_slice(), of) {
            return match &single.missing {
                Missing::NoFile => write!(
                    f,
                    "the backup command exited 0, but no file matching `{pattern}` is in {directory}; nothing protects this update"
                ),
                Missing::Old(file) => write!(
                    f,
                    "the backup command exited 0, but no new file matching `{pattern}` appeared in {directory} after the step started at {} (the newest, {}, was written {})",
                    utc(started_ms),
                    file.path,
                    utc(file.modified_ms)
                ),
                Missing::FutureDated(file) => write!(
                    f,
                    "the backup command exited 0, but its newest backup {} is dated {}, in the future: the clocks of this host and of the backup directory disagree, so its time proves nothing",
                    file.path,
                    utc(file.modified_ms)
                ),
                Missing::Empty(file) => write!(
                    f,
                    "the backup command exited 0, but its newest backup {} is empty",
                    file.path
                ),
            };
        }
        write!(
            f,
            "the backup command exited 0, but {} of {of} databases have no new backup of their own in {directory} since the step started at {}: ",
            missing.len(),
            utc(started_ms)
        )?;
        for (index, m) in missing.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            let database = m.database.as_deref().unwrap_or_default();
            match &m.missing {
                Missing::NoFile => write!(f, "`{database}`: no file matching {}", m.wanted),
                Missing::Old(file) => write!(
                    f,
                    "`{database}`: the newest, {}, was written {}, before the step",
                    file.path,
                    utc(file.modified_ms)
                ),
                Missing::FutureDated(file) => write!(
                    f,
                    "`{database}`: the newest, {}, is dated {}, in the future (the clocks of this host and of the backup directory disagree)",
                    file.path,
                    utc(file.modified_ms)
                ),
                Missing::Empty(file) => write!(
                    f,
                    "`{database}`: the newest, {} (written {}), is empty",
                    file.path,
                    utc(file.modified_ms)
                ),
            }?;
        }
        f.write_str("; nothing protects these databases")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STARTED: i64 = 1_800_000_000_000;
    const NOW: i64 = STARTED + 10_000;

    fn pattern(text: &str) -> BackupPattern {
        text.parse().expect("a pattern")
    }

    fn file(name: &str, size: u64, modified_ms: i64) -> ListedFile {
        ListedFile {
            name: name.to_owned(),
            path: format!("/b/{name}"),
            size,
            modified_ms,
        }
    }

    fn check(
        pattern_text: &str,
        databases: &[&str],
        files: &[ListedFile],
    ) -> Result<Vec<BackupFile>, BackupShortfall> {
        let databases: Vec<String> = databases.iter().map(|d| (*d).to_owned()).collect();
        let pattern = pattern(pattern_text);
        BackupRule {
            directory: "/b",
            pattern: &pattern,
            databases: &databases,
            started_ms: STARTED,
            now_ms: NOW,
        }
        .check(files)
    }

    fn found(result: &[BackupFile]) -> Vec<(Option<&str>, &str)> {
        result
            .iter()
            .map(|f| (f.database.as_deref(), f.path.as_str()))
            .collect()
    }

    #[test]
    fn patterns_match_like_file_name_wildcards_in_any_case() {
        let m = |p: &str, name: &str| pattern(p).matches(name, None);
        assert!(m("PSDB_*.bak", "psdb_2026-12-05.BAK"));
        assert!(m("*", "anything"));
        assert!(m("backup-??.zip", "backup-01.zip"));
        assert!(!m("backup-??.zip", "backup-001.zip"));
        assert!(m("*.bak", "a.b.bak"));
        assert!(!m("*.bak", "a.bak.tmp"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
    }

    #[test]
    fn the_database_placeholder_is_each_name_taken_literally() {
        let p = pattern("{database}_*.bak");
        assert!(p.names_database());
        assert!(p.matches("PSDB_20261205.BAK", Some("psdb")));
        assert!(!p.matches("Archive_20261205.bak", Some("PSDB")));
        // Without a database it names nothing.
        assert!(!p.matches("PSDB_1.bak", None));
        // A wildcard in a database's name is no wildcard.
        assert!(p.matches("a?b_1.bak", Some("a?b")));
        assert!(!p.matches("axb_1.bak", Some("a?b")));
        assert_eq!(p.filled("PSDB"), "PSDB_*.bak");
        assert!(!pattern("PSDB_*.bak").names_database());
    }

    #[test]
    fn a_pattern_fills_in_only_the_database() {
        for (text, expected) in [
            ("{date}_*.bak", "not `{date}` in `{date}_*.bak`"),
            ("{Database}.bak", "not `{Database}`"),
            ("PSDB_{.bak", "not `{.bak`"),
            ("PSDB_}.bak", "not `}`"),
            ("x/{database}.bak", "is a file name pattern"),
            ("  ", "is a file name pattern"),
        ] {
            let error = text.parse::<BackupPattern>().expect_err(text).to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
        assert!("{database}-{database}.bak".parse::<BackupPattern>().is_ok());
    }

    #[test]
    fn with_the_placeholder_every_database_needs_its_own_file() {
        let files = [
            file("PSDB_1.bak", 10, STARTED + 1000),
            file("Archive_1.bak", 20, STARTED + 1000),
            file("Archive_0.bak", 20, STARTED - 3_600_000),
        ];
        let ok = check("{database}_*.bak", &["PSDB", "Archive"], &files).expect("both");
        assert_eq!(
            found(&ok),
            [
                (Some("PSDB"), "/b/PSDB_1.bak"),
                (Some("Archive"), "/b/Archive_1.bak")
            ]
        );

        let missing = check("{database}_*.bak", &["PSDB", "Archive"], &files[..1])
            .expect_err("Archive has none");
        assert_eq!(missing.databases(), ["Archive"]);
        let text = missing.to_string();
        assert!(
            text.contains("1 of 2 databases have no new backup")
                && text.contains("`Archive`: no file matching `Archive_*.bak`"),
            "{text}"
        );
    }

    #[test]
    fn without_the_placeholder_one_file_no_longer_stands_for_two_databases() {
        let one = [file("PSDB_1.bak", 10, STARTED + 1000)];
        // One database, or none named: any matching file, as before.
        assert_eq!(
            found(&check("*.bak", &["Prod"], &one).expect("one database")),
            [(Some("Prod"), "/b/PSDB_1.bak")]
        );
        assert_eq!(
            found(&check("*.bak", &[], &one).expect("no databases probe")),
            [(None, "/b/PSDB_1.bak")]
        );
        // Two databases: each needs a file with its name in it.
        let error = check("*.bak", &["Prod", "Archive"], &one).expect_err("none named");
        assert_eq!(error.databases(), ["Prod", "Archive"]);
        assert!(
            error
                .to_string()
                .contains("`Prod`: no file matching `*.bak` whose name contains `Prod`"),
            "{error}"
        );
        let both = [
            file("full_prod_1.bak", 10, STARTED + 1000),
            file("FULL_ARCHIVE_1.bak", 10, STARTED + 1000),
        ];
        assert_eq!(
            found(&check("*.bak", &["Prod", "Archive"], &both).expect("both")),
            [
                (Some("Prod"), "/b/full_prod_1.bak"),
                (Some("Archive"), "/b/FULL_ARCHIVE_1.bak")
            ]
        );
    }

    #[test]
    fn a_file_belongs_to_the_longest_name_it_fits() {
        let files = [file("PSDB_Test_1.bak", 10, STARTED + 1000)];
        for p in ["{database}_*.bak", "*.bak"] {
            let error = check(p, &["PSDB", "PSDB_Test"], &files).expect_err(p);
            assert_eq!(error.databases(), ["PSDB"], "{p}");
        }
        // Two names of one length in one file: it is neither's.
        let error = check("*.bak", &["AAAA", "BBBB"], &[file("AAAA_BBBB.bak", 1, NOW)])
            .expect_err("ambiguous");
        assert_eq!(error.databases(), ["AAAA", "BBBB"]);
    }

    #[test]
    fn each_database_is_judged_by_its_newest_file() {
        let dbs = ["A", "B", "C", "D"];
        let files = [
            // A: old. B: empty. C: dated an hour ahead. D: fine.
            file("A_1.bak", 10, STARTED - 60_000),
            file("B_1.bak", 0, STARTED + 1000),
            file("C_1.bak", 10, NOW + 3_600_000),
            file("D_1.bak", 10, STARTED - 1000),
        ];
        let error = check("{database}_*.bak", &dbs, &files).expect_err("three short");
        assert_eq!(error.databases(), ["A", "B", "C"]);
        let text = error.to_string();
        for expected in [
            "3 of 4 databases",
            "`A`: the newest, /b/A_1.bak, was written 2027-01-15T07:59:00Z, before the step",
            "`B`: the newest, /b/B_1.bak (written 2027-01-15T08:00:01Z), is empty",
            "`C`: the newest, /b/C_1.bak, is dated 2027-01-15T09:00:10Z, in the future",
        ] {
            assert!(text.contains(expected), "{expected}: {text}");
        }
        // A newer empty file hides an older full one: the newest decides.
        let files = [
            file("A_1.bak", 10, STARTED + 1000),
            file("A_2.bak", 0, STARTED + 2000),
        ];
        assert!(check("{database}_*.bak", &["A"], &files).is_err());
    }

    #[test]
    fn a_single_backup_keeps_its_reasons() {
        let reason = |files: &[ListedFile]| {
            check("PSDB_*.bak", &[], files)
                .expect_err("short")
                .to_string()
        };
        assert!(reason(&[]).contains("no file matching `PSDB_*.bak` is in /b"));
        assert!(reason(&[file("PSDB_1.bak", 1, STARTED - 60_000)])
            .contains("no new file matching `PSDB_*.bak` appeared in /b after the step started"));
        assert!(reason(&[file("PSDB_1.bak", 0, NOW)]).ends_with("is empty"));
        assert!(reason(&[file("PSDB_1.bak", 1, NOW + 3_600_000)]).contains("in the future"));
        let none = check("{database}.bak", &[], &[file("x.bak", 1, NOW)]).expect_err("none");
        assert!(none.to_string().contains("reports no database"), "{none}");
    }
}
