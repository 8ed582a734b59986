//! Database URLs the controller accepts, checked before anything connects.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error(
        "database URL `{0}` is not supported: use sqlite://PATH (e.g. sqlite:///var/lib/tierwise/tierwise.db) \
         or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
    )]
    Scheme(String),
    #[error("database URL `{0}` names no SQLite file: write sqlite://PATH")]
    SqliteEmpty(String),
    #[error(
        "database URL `{0}` names no PostgreSQL host: write postgres://USER@HOST[:PORT]/DATABASE"
    )]
    PostgresNoHost(String),
}

/// A checked database URL.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    backend: Backend,
    connect: String,
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let shown = redact(url);
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or("");
            if path.is_empty() {
                return Err(UrlError::SqliteEmpty(shown));
            }
            // Create the file on first start unless the URL says otherwise.
            let connect = if url.contains("mode=") || path == ":memory:" {
                url.to_owned()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            return Ok(Self {
                backend: Backend::Sqlite,
                connect,
            });
        }
        for scheme in ["postgres://", "postgresql://"] {
            if let Some(rest) = url.strip_prefix(scheme) {
                let authority = rest.split(['/', '?']).next().unwrap_or("");
                let host = authority.rsplit('@').next().unwrap_or("");
                if host.is_empty() || host.starts_with(':') {
                    return Err(UrlError::PostgresNoHost(shown));
                }
                return Ok(Self {
                    backend: Backend::Postgres,
                    connect: url.to_owned(),
                });
            }
        }
        Err(UrlError::Scheme(shown))
    }

    /// The SQLite URL for a file, as `tierwise serve` builds it by default.
    pub fn sqlite_file(path: &std::path::Path) -> Self {
        Self {
            backend: Backend::Sqlite,
            connect: format!("sqlite://{}?mode=rwc", path.display()),
        }
    }

    /// `sqlite::memory:` and friends: a database that lives in one connection.
    pub fn is_in_memory(&self) -> bool {
        self.backend == Backend::Sqlite && self.connect.contains(":memory:")
    }

    /// The SQLite database's file, if it is one.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        if self.backend != Backend::Sqlite || self.is_in_memory() {
            return None;
        }
        let rest = self.connect.strip_prefix("sqlite:")?;
        let path = rest.trim_start_matches("//").split('?').next()?;
        (!path.is_empty()).then(|| std::path::PathBuf::from(path))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn connect_string(&self) -> &str {
        &self.connect
    }

    /// The URL with any password replaced, for messages and logs.
    pub fn redacted(&self) -> String {
        redact(&self.connect)
    }
}

fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut shown = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
                    None => base.to_owned(),
                },
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => param.to_owned(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&params.join("&"));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_sqlite_and_postgres() {
        let url = DatabaseUrl::parse("sqlite:///tmp/t.db").unwrap();
        assert_eq!(url.backend(), Backend::Sqlite);
        assert_eq!(url.connect_string(), "sqlite:///tmp/t.db?mode=rwc");
        let url = DatabaseUrl::parse("postgres://postgres@127.0.0.1:5432/test").unwrap();
        assert_eq!(url.backend(), Backend::Postgres);
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        let err = DatabaseUrl::parse("mysql://root@localhost/db").unwrap_err();
        assert!(err
            .to_string()
            .contains("is not supported: use sqlite://PATH"));
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        assert!(DatabaseUrl::parse("postgres:///test").is_err());
        assert!(DatabaseUrl::parse("/var/lib/tierwise.db").is_err());
    }

    #[test]
    fn hides_passwords() {
        let err = DatabaseUrl::parse("mysql://u:secret@h/db")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
        let url = DatabaseUrl::parse("postgres://u:secret@h:5432/db").unwrap();
        assert_eq!(url.redacted(), "postgres://u:***@h:5432/db");
        let url = DatabaseUrl::parse("postgres://u@h/db?sslmode=disable&password=secret").unwrap();
        assert_eq!(
            url.redacted(),
            "postgres://u@h/db?sslmode=disable&password=***"
        );
    }
}
