//! The validated probe specifications: where the agent reads a component's
//! version and facts from (a file, a command, the Windows registry), and the
//! yes/no checks it runs on the host. Built from the file by `validate`.

use regex_lite::Regex;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use tierwise_common::{Role, Version, WebServerKind};

/// A regular expression from the configuration. The first capture group, if
/// the pattern has one, is the interesting part; otherwise the whole match.
#[derive(Clone, Debug)]
pub struct Pattern(Regex);

impl Pattern {
    pub fn new(text: &str) -> Result<Self, String> {
        regex_lite::RegexBuilder::new(text)
            .size_limit(1 << 20)
            .build()
            .map(Pattern)
            .map_err(|e| format!("invalid regular expression `{text}`: {e}"))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The first capture group of the first match, or the whole match.
    pub fn extract<'t>(&self, text: &'t str) -> Option<&'t str> {
        let captures = self.0.captures(text)?;
        captures
            .get(1)
            .or_else(|| captures.get(0))
            .map(|m| m.as_str())
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Pattern::new(&text).map_err(de::Error::custom)
    }
}

/// Where a probe reads its text from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A text file; absent means "not installed".
    File(PathBuf),
    /// A program and its arguments, run without a shell.
    Command {
        argv: Vec<String>,
        timeout: Duration,
    },
}

/// How the agent finds a component's installed version.
#[derive(Clone, Debug)]
pub enum VersionProbe {
    /// Text from a file or a command; `pattern` picks the version out of it,
    /// otherwise the whole (trimmed) text must be the version.
    Text {
        source: Source,
        pattern: Option<Pattern>,
    },
    /// A fixed version, for components that cannot be probed.
    Fixed(Version),
    /// Windows: the Uninstall entry whose DisplayName matches → DisplayVersion.
    UninstallRegistry { display_name: Pattern },
    /// Windows: the file version of an executable or DLL.
    FileVersion(PathBuf),
    /// Windows, for a discovered component (never written in a file): the
    /// highest DisplayVersion among Uninstall entries that
    /// `probe::discovery::classify` gives this role.
    Discovered(Role),
}

/// A yes/no check on the host (WebSocket support, the update-check setting).
#[derive(Clone, Debug)]
pub enum CheckProbe {
    Fixed(bool),
    /// Yes when the pattern matches the text, no when it does not; unknown
    /// when the file is absent or the command fails.
    Text {
        source: Source,
        pattern: Pattern,
    },
    /// Windows: a DWORD registry value; non-zero is yes, absent is no.
    RegistryValue {
        key: String,
        value: String,
    },
}

/// Where the primary server's databases are listed: JSON, an array of
/// `{"name": "...", "active": true, "patch_level": "9.3.1.33994"}`.
#[derive(Clone, Debug)]
pub struct DatabasesProbe {
    pub source: Source,
}

#[derive(Clone, Debug)]
pub enum FactsSpec {
    None,
    Server {
        databases: Option<DatabasesProbe>,
    },
    Web {
        server: WebServerKind,
        docroot: PathBuf,
        websocket: Option<CheckProbe>,
        /// Where the Web Application package (the ZIP the Server Manager
        /// generates) of a version lies; `{version}` is filled in.
        web_app: Option<String>,
    },
    Client {
        update_check: Option<CheckProbe>,
    },
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    #[test]
    fn pattern_prefers_the_first_group() {
        let p = Pattern::new(r"Version (\S+)").unwrap();
        assert_eq!(
            p.extract("Product Version 9.3.1.33994 (x64)"),
            Some("9.3.1.33994")
        );
        let p = Pattern::new(r"\d+\.\d+\.\d+\.\d+").unwrap();
        assert_eq!(p.extract("v 26.3.100.34058"), Some("26.3.100.34058"));
        assert_eq!(p.extract("none"), None);
    }
}
