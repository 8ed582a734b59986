//! The release catalogue: what the operator knows about each Password Secure
//! release, because the vendor publishes no machine-readable compatibility
//! matrix. A TOML file the operator imports; `deploy/catalogue/` ships one
//! with the vendor's stated facts.
//!
//! Parsing checks everything and names the file, the line and the key of the
//! first problem; a catalogue that parses is internally consistent (unique
//! versions, valid dates, requirements, components and checksums).

use crate::{Date, Role, Version, VersionReq};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use toml::Spanned;

/// When a release came out, as precisely as the vendor says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseDate {
    Day(Date),
    /// The vendor names only the month (the 26.x scheme encodes it).
    Month {
        year: u16,
        month: u8,
    },
    /// No date is published (9.x releases); the operator must add one before
    /// the maintenance rule can pass.
    Undated,
}

impl ReleaseDate {
    /// The earliest and the latest day the release can have come out.
    pub fn span(&self) -> Option<(Date, Date)> {
        match *self {
            ReleaseDate::Day(day) => Some((day, day)),
            ReleaseDate::Month { year, month } => Some((
                Date::new(year, month, 1)?,
                Date::new(year, month, crate::date::days_in_month(year, month))?,
            )),
            ReleaseDate::Undated => None,
        }
    }

    /// Reads `YYYY-MM-DD`, or `YYYY-MM` when only the month is known.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() == 7 && text.as_bytes()[4] == b'-' {
            let year = text[..4].parse::<u16>();
            let month = text[5..].parse::<u8>();
            if let (Ok(year), Ok(month)) = (year, month) {
                if Date::new(year, month, 1).is_some()
                    && text[..4].bytes().all(|b| b.is_ascii_digit())
                    && text[5..].bytes().all(|b| b.is_ascii_digit())
                {
                    return Ok(ReleaseDate::Month { year, month });
                }
            }
            return Err(format!(
                "`{text}` is not a month; write YYYY-MM or YYYY-MM-DD"
            ));
        }
        Date::parse(text)
            .map(ReleaseDate::Day)
            .map_err(|e| format!("{e} (or YYYY-MM when only the month is known)"))
    }
}

impl fmt::Display for ReleaseDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseDate::Day(day) => write!(f, "{day}"),
            ReleaseDate::Month { year, month } => write!(f, "{year:04}-{month:02}"),
            ReleaseDate::Undated => f.write_str("undated"),
        }
    }
}

impl<'de> Deserialize<'de> for ReleaseDate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            None => Ok(ReleaseDate::Undated),
            Some(text) => ReleaseDate::parse(&text).map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for ReleaseDate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ReleaseDate::Undated => serializer.serialize_none(),
            other => serializer.collect_str(other),
        }
    }
}

/// Something a release needs from the hosts beyond the previous version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    /// Every web host supports WebSocket (IIS "WebSocket Protocol", Apache
    /// `proxy_wstunnel`); the vendor requires it from 8.5.0.14896 on.
    WebWebsocket,
}

/// A vendor note the operator must acknowledge before a rollout to (or
/// across) the release may start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Note {
    pub id: String,
    pub text: String,
}

/// An installer file for one component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Artifact {
    pub file: String,
    /// Lower-case hex.
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Release {
    pub version: Version,
    pub released: ReleaseDate,
    /// The vendor's reason, when the release is breaking.
    pub breaking: Option<String>,
    /// The oldest client version that can still log in to a server of this
    /// release; `None` when the vendor does not say.
    pub oldest_client: Option<Version>,
    /// The versions this release may be installed over; `None`: any older.
    pub upgrade_from: Option<VersionReq>,
    pub requires: Vec<Requirement>,
    pub notes: Vec<Note>,
    pub artifacts: BTreeMap<Role, Artifact>,
    /// Where the vendor's changelog of this release is (an address or a
    /// reference); every changelog crossed must be acknowledged as read.
    pub changelog: Option<String>,
}

/// Releases ordered by version, each version once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Catalogue {
    releases: Vec<Release>,
}

/// Where a catalogue is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct CatalogueError {
    pub origin: String,
    pub message: String,
}

impl Catalogue {
    /// Builds a catalogue from releases in any order; refuses duplicates.
    pub fn new(mut releases: Vec<Release>) -> Result<Self, Version> {
        releases.sort_by_key(|r| r.version);
        if let Some(pair) = releases.windows(2).find(|p| p[0].version == p[1].version) {
            return Err(pair[0].version);
        }
        Ok(Self { releases })
    }

    pub fn releases(&self) -> &[Release] {
        &self.releases
    }

    pub fn get(&self, version: Version) -> Option<&Release> {
        self.releases
            .binary_search_by_key(&version, |r| r.version)
            .ok()
            .map(|i| &self.releases[i])
    }

    pub fn is_empty(&self) -> bool {
        self.releases.is_empty()
    }

    /// Releases in the half-open range (`after`, `up_to`], in version order.
    pub fn between(&self, after: Version, up_to: Version) -> impl Iterator<Item = &Release> {
        self.releases
            .iter()
            .filter(move |r| r.version > after && r.version <= up_to)
    }

    /// Parses and checks a catalogue file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, CatalogueError> {
        let fail = |message: String| CatalogueError {
            origin: origin.to_owned(),
            message,
        };
        let raw: RawCatalogue =
            toml::from_str(text).map_err(|e| fail(e.to_string().trim_end().to_owned()))?;
        let line = |offset: usize| crate::line_of(text, offset);
        let mut releases: Vec<Release> = Vec::with_capacity(raw.release.len());
        let mut first_seen: BTreeMap<Version, usize> = BTreeMap::new();
        for entry in raw.release {
            let at = |span: std::ops::Range<usize>, key: &str, message: String| {
                fail(format!("line {}: `{key}`: {message}", line(span.start)))
            };
            let version = Version::parse(entry.version.get_ref())
                .map_err(|e| at(entry.version.span(), "version", e.to_string()))?;
            if let Some(previous) = first_seen.insert(version, line(entry.version.span().start)) {
                return Err(at(
                    entry.version.span(),
                    "version",
                    format!(
                        "{version} is already listed at line {previous}; each release appears once"
                    ),
                ));
            }
            let released = match &entry.released {
                None => ReleaseDate::Undated,
                Some(text) => ReleaseDate::parse(text.get_ref())
                    .map_err(|m| at(text.span(), "released", m))?,
            };
            let breaking = match &entry.breaking {
                None => None,
                Some(reason) if reason.get_ref().trim().is_empty() => {
                    return Err(at(
                        reason.span(),
                        "breaking",
                        "give the vendor's reason, not an empty text".into(),
                    ))
                }
                Some(reason) => Some(reason.get_ref().trim().to_owned()),
            };
            let oldest_client = entry
                .oldest_client
                .as_ref()
                .map(|v| {
                    Version::parse(v.get_ref())
                        .map_err(|e| at(v.span(), "oldest_client", e.to_string()))
                })
                .transpose()?;
            if let (Some(oldest), Some(spanned)) = (oldest_client, &entry.oldest_client) {
                if oldest > version {
                    return Err(at(
                        spanned.span(),
                        "oldest_client",
                        format!("{oldest} is newer than the release {version} itself"),
                    ));
                }
            }
            let upgrade_from = entry
                .upgrade_from
                .as_ref()
                .map(|r| {
                    VersionReq::parse(r.get_ref())
                        .map_err(|e| at(r.span(), "upgrade_from", e.to_string()))
                })
                .transpose()?;
            let mut notes: Vec<Note> = Vec::new();
            for note in &entry.note {
                let raw = note.get_ref();
                if crate::validate_name("note id", &raw.id).is_err() {
                    return Err(at(
                        note.span(),
                        "note.id",
                        format!(
                            "`{}` is not a usable id; use letters, digits, `.`, `-` and `_`",
                            raw.id
                        ),
                    ));
                }
                if raw.id == crate::rules::ACK_CHANGELOG {
                    return Err(at(
                        note.span(),
                        "note.id",
                        "`changelog` is the acknowledgement of the changelogs themselves; give the note another id".into(),
                    ));
                }
                if notes.iter().any(|n| n.id == raw.id) {
                    return Err(at(
                        note.span(),
                        "note.id",
                        format!("`{}` appears twice in this release", raw.id),
                    ));
                }
                if raw.text.trim().is_empty() {
                    return Err(at(
                        note.span(),
                        "note.text",
                        "the note needs its text".into(),
                    ));
                }
                notes.push(Note {
                    id: raw.id.clone(),
                    text: raw.text.trim().to_owned(),
                });
            }
            let mut artifacts = BTreeMap::new();
            if let Some(raw) = &entry.artifact {
                for (role, artifact) in [
                    (Role::Server, &raw.server),
                    (Role::AppServer, &raw.app_server),
                    (Role::Web, &raw.web),
                    (Role::Client, &raw.client),
                ] {
                    let Some(artifact) = artifact else { continue };
                    let key = format!("artifact.{role}");
                    let value = artifact.get_ref();
                    if value.file.get_ref().trim().is_empty() {
                        return Err(at(
                            value.file.span(),
                            &format!("{key}.file"),
                            "name the installer file".into(),
                        ));
                    }
                    let sha256 = value.sha256.get_ref().to_ascii_lowercase();
                    if !crate::is_sha256(&sha256) {
                        return Err(at(
                            value.sha256.span(),
                            &format!("{key}.sha256"),
                            format!(
                                "`{}` is not a SHA-256: 64 hexadecimal characters, as `sha256sum` prints",
                                value.sha256.get_ref()
                            ),
                        ));
                    }
                    artifacts.insert(
                        role,
                        Artifact {
                            file: value.file.get_ref().clone(),
                            sha256,
                        },
                    );
                }
            }
            let changelog = entry
                .changelog
                .as_ref()
                .map(|c| {
                    let text = c.get_ref().trim();
                    if text.is_empty() || text.len() > 500 || text.chars().any(char::is_control) {
                        Err(at(
                            c.span(),
                            "changelog",
                            "give the changelog's address or reference on one line (at most 500 characters)".into(),
                        ))
                    } else {
                        Ok(text.to_owned())
                    }
                })
                .transpose()?;
            let mut requires = entry.requires.clone();
            requires.sort();
            requires.dedup();
            releases.push(Release {
                version,
                released,
                breaking,
                oldest_client,
                upgrade_from,
                requires,
                notes,
                artifacts,
                changelog,
            });
        }
        Catalogue::new(releases).map_err(|v| fail(format!("{v} is listed twice")))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    #[serde(default)]
    release: Vec<RawRelease>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelease {
    version: Spanned<String>,
    released: Option<Spanned<String>>,
    breaking: Option<Spanned<String>>,
    oldest_client: Option<Spanned<String>>,
    upgrade_from: Option<Spanned<String>>,
    #[serde(default)]
    requires: Vec<Requirement>,
    #[serde(default)]
    note: Vec<Spanned<RawNote>>,
    artifact: Option<RawArtifacts>,
    changelog: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNote {
    id: String,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArtifacts {
    server: Option<Spanned<RawArtifact>>,
    app_server: Option<Spanned<RawArtifact>>,
    web: Option<Spanned<RawArtifact>>,
    client: Option<Spanned<RawArtifact>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArtifact {
    file: Spanned<String>,
    sha256: Spanned<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[release]]
version = "9.3.1.33994"

[[release]]
version = "26.3.100.34058"
released = "2026-03"
breaking = "All clients need to be upgraded as soon as the server is upgraded."
oldest_client = "26.3.100.34058"
upgrade_from = ">=9.0"
requires = ["web_websocket"]

[[release.note]]
id = "server-manager-password"
text = "Note down the Server Manager database password."

[release.artifact.client]
file = "PasswordSecure_Client.msi"
sha256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
"#;

    fn error(text: &str) -> String {
        Catalogue::parse(text, "cat.toml").unwrap_err().to_string()
    }

    #[test]
    fn parses_a_catalogue() {
        let catalogue = Catalogue::parse(GOOD, "cat.toml").unwrap();
        assert_eq!(catalogue.releases().len(), 2);
        let r = catalogue.get(Version::new(26, 3, 100, 34058)).unwrap();
        assert_eq!(
            r.released,
            ReleaseDate::Month {
                year: 2026,
                month: 3
            }
        );
        assert!(r.breaking.is_some());
        assert_eq!(r.requires, [Requirement::WebWebsocket]);
        assert_eq!(r.notes[0].id, "server-manager-password");
        assert_eq!(
            r.artifacts[&Role::Client].sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let old = catalogue.get(Version::new(9, 3, 1, 33994)).unwrap();
        assert_eq!(old.released, ReleaseDate::Undated);
        assert_eq!(
            ReleaseDate::Month {
                year: 2024,
                month: 2
            }
            .span(),
            Some((
                Date::new(2024, 2, 1).unwrap(),
                Date::new(2024, 2, 29).unwrap()
            ))
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let cases = [
            (
                GOOD.replace("version = \"26.3.100.34058\"", "version = \"9.3.1.33994\""),
                "cat.toml: line 6: `version`: 9.3.1.33994 is already listed at line 3",
            ),
            (GOOD.replace("\"2026-03\"", "\"2026-02-30\""), "cat.toml: line 7: `released`: `2026-02-30` is not a date of the calendar"),
            (GOOD.replace("\"2026-03\"", "\"March 2026\""), "cat.toml: line 7: `released`: `March 2026` is not a date"),
            (GOOD.replace("\"2026-03\"", "\"2026-13\""), "line 7: `released`: `2026-13` is not a month"),
            (GOOD.replace("\"2026-03\"", "\"2026-+3\""), "line 7: `released`: `2026-+3` is not a month"),
            (GOOD.replace("\">=9.0\"", "\">=9.x\""), "cat.toml: line 10: `upgrade_from`: `>=9.x` is not a version requirement"),
            (GOOD.replace("[release.artifact.client]", "[release.artifact.database]"), "unknown field `database`, expected one of `server`, `app_server`, `web`, `client`"),
            (GOOD.replace("E3B0C442", "XYZ"), "cat.toml: line 19: `artifact.client.sha256`: `XYZ98FC1C"),
            (GOOD.replace("\"26.3.100.34058\"\nreleased", "\"26.3\"\nreleased"), "line 6: `version`: `26.3` has 2 part(s)"),
            (GOOD.replace("oldest_client = \"26.3.100.34058\"", "oldest_client = \"26.4.0.0\""), "line 9: `oldest_client`: 26.4.0.0 is newer than the release"),
            (GOOD.replace("requires = [\"web_websocket\"]", "requires = [\"websockets\"]"), "unknown variant `websockets`"),
            (GOOD.replace("released = ", "release_date = "), "unknown field `release_date`"),
            (GOOD.replace("breaking = \"All clients need to be upgraded as soon as the server is upgraded.\"", "breaking = \" \""), "line 8: `breaking`: give the vendor's reason"),
        ];
        for (text, expected) in cases {
            let err = error(&text);
            assert!(err.contains(expected), "wanted {expected:?} in {err:?}");
        }
        // The toml crate's own errors carry the line too.
        let err = error(&GOOD.replace("[release.artifact.client]", "[release.artifact.database]"));
        assert!(
            err.starts_with("cat.toml: TOML parse error at line 17"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod shipped {
    use super::*;

    #[test]
    fn the_shipped_catalogue_holds_the_vendors_facts() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/catalogue/password-secure.toml"
        );
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/catalogue/password-secure.toml"
        ));
        let catalogue = Catalogue::parse(text, path).unwrap();
        assert_eq!(catalogue.releases().len(), 14);
        let v = |t: &str| t.parse::<Version>().unwrap();
        let r263 = catalogue.get(v("26.3.100.34058")).unwrap();
        assert!(r263.breaking.is_some());
        assert_eq!(r263.oldest_client, Some(v("26.3.100.34058")));
        assert_eq!(
            r263.released,
            ReleaseDate::Month {
                year: 2026,
                month: 3
            }
        );
        let r266 = catalogue.get(v("26.6.100.34161")).unwrap();
        assert!(r266.breaking.as_deref().unwrap().contains("PKCS#11"));
        assert_eq!(r266.notes[0].id, "pkcs11");
        assert_eq!(
            catalogue.get(v("9.3.1.33994")).unwrap().released,
            ReleaseDate::Undated
        );
        assert!(catalogue
            .releases()
            .iter()
            .all(|r| r.requires == [Requirement::WebWebsocket] && r.artifacts.is_empty()));
    }
}
