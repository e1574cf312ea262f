use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::DbError;

/// The database backends regionsync speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Mysql,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Mysql => "mysql",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A database URL whose backend is known from its scheme.
///
/// Accepted forms: `sqlite://relative/path.db`, `sqlite:///absolute/path.db`, `file://path`, a
/// bare file path (SQLite), `mysql://user:pass@host:3306/db` and `mariadb://…` (MariaDB/MySQL).
///
/// `Display`, `Debug` and `Serialize` show the URL with the password replaced by `***`; only
/// [`DatabaseUrl::expose`] gives the real string.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    raw: String,
    backend: Backend,
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, DbError> {
        let raw = raw.trim();
        let invalid = |reason: &str| DbError::InvalidUrl {
            url: redact(raw),
            reason: reason.to_string(),
        };
        if raw.is_empty() {
            return Err(invalid("the URL is empty"));
        }
        let backend = match raw.split_once("://").map(|(scheme, _)| scheme) {
            Some("mysql") | Some("mariadb") => Backend::Mysql,
            Some("sqlite") | Some("file") => Backend::Sqlite,
            Some("postgres") | Some("postgresql") => {
                return Err(invalid(
                    "PostgreSQL is planned but not built in yet; use sqlite:// or mysql://",
                ))
            }
            Some(other) => {
                return Err(invalid(&format!(
                    "unknown scheme `{other}`; expected sqlite://, mysql:// or mariadb://"
                )))
            }
            None => Backend::Sqlite,
        };
        let url = Self {
            raw: raw.to_string(),
            backend,
        };
        match backend {
            Backend::Sqlite => {
                let path = url.sqlite_path();
                if path.as_os_str().is_empty() {
                    return Err(invalid("the SQLite URL names no file"));
                }
                if path.to_string_lossy().contains(":memory:") {
                    return Err(invalid(
                        "in-memory SQLite is not supported: every pooled connection would see \
                         its own empty database; name a file",
                    ));
                }
            }
            Backend::Mysql => {
                let parsed =
                    ::url::Url::parse(&url.mysql_url()).map_err(|e| invalid(&e.to_string()))?;
                if parsed.host_str().unwrap_or_default().is_empty() {
                    return Err(invalid("the MySQL URL names no host"));
                }
                if parsed.path().trim_start_matches('/').is_empty() {
                    return Err(invalid(
                        "the MySQL URL names no database (mysql://user@host:3306/NAME)",
                    ));
                }
            }
        }
        Ok(url)
    }

    /// A SQLite file URL (infallible: any non-empty path names a file).
    pub fn sqlite_file(path: &str) -> Self {
        Self {
            raw: format!("sqlite://{path}"),
            backend: Backend::Sqlite,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with its password, for establishing connections only.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The URL with the password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact(&self.raw)
    }

    /// The SQLite file this URL points at (only meaningful for [`Backend::Sqlite`]).
    pub fn sqlite_path(&self) -> PathBuf {
        let rest = self
            .raw
            .strip_prefix("sqlite://")
            .or_else(|| self.raw.strip_prefix("file://"))
            .unwrap_or(&self.raw);
        PathBuf::from(rest.split('?').next().unwrap_or_default())
    }

    /// The URL in the form the MySQL client library expects (`mysql://`).
    pub fn mysql_url(&self) -> String {
        match self.raw.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => self.raw.clone(),
        }
    }

    /// The host (and port) a server URL names, for messages.
    pub fn host(&self) -> Option<String> {
        let parsed = ::url::Url::parse(&self.mysql_url()).ok()?;
        let host = parsed.host_str()?.to_string();
        Some(match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        })
    }

    /// The database name a server URL names.
    pub fn database_name(&self) -> Option<String> {
        let parsed = ::url::Url::parse(&self.mysql_url()).ok()?;
        let name = parsed.path().trim_start_matches('/');
        (!name.is_empty()).then(|| name.to_string())
    }

    /// The same server URL naming another database (used by test support and tooling).
    pub fn with_database(&self, name: &str) -> Result<Self, DbError> {
        let mut parsed = ::url::Url::parse(&self.raw).map_err(|e| DbError::InvalidUrl {
            url: self.redacted(),
            reason: e.to_string(),
        })?;
        parsed.set_path(&format!("/{name}"));
        Self::parse(parsed.as_str())
    }
}

/// Replace the password of a `scheme://user:password@host/...` URL by `***`.
pub(crate) fn redact(raw: &str) -> String {
    match ::url::Url::parse(raw) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // set_password only fails for URLs that cannot have credentials, and this one has one.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => raw.to_string(),
        // Not a URL we understand: hide everything between "://" and the last '@'.
        Err(_) => match (raw.find("://"), raw.rfind('@')) {
            (Some(start), Some(at)) if at > start => {
                format!("{}://***{}", &raw[..start], &raw[at..])
            }
            _ => raw.to_string(),
        },
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        DatabaseUrl::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_comes_from_the_scheme() {
        let cases = [
            ("sqlite://data/region.db", Backend::Sqlite),
            ("sqlite:///tmp/region.db", Backend::Sqlite),
            ("data/region.db", Backend::Sqlite),
            ("mysql://root@127.0.0.1:3306/regionsync", Backend::Mysql),
            ("mariadb://root@127.0.0.1:3306/regionsync", Backend::Mysql),
        ];
        for (raw, backend) in cases {
            assert_eq!(DatabaseUrl::parse(raw).unwrap().backend(), backend, "{raw}");
        }
    }

    #[test]
    fn sqlite_paths_are_taken_literally() {
        let url = DatabaseUrl::parse("sqlite://data/region.db").unwrap();
        assert_eq!(url.sqlite_path(), PathBuf::from("data/region.db"));
        let url = DatabaseUrl::parse("sqlite:///var/lib/rs/region.db").unwrap();
        assert_eq!(url.sqlite_path(), PathBuf::from("/var/lib/rs/region.db"));
    }

    #[test]
    fn unsupported_and_broken_urls_are_refused_with_a_reason() {
        for raw in [
            "",
            "postgres://u@h/db",
            "redis://h",
            "sqlite://",
            "sqlite://:memory:",
            "mysql://root@127.0.0.1:3306",
        ] {
            let err = DatabaseUrl::parse(raw).unwrap_err();
            assert!(matches!(err, DbError::InvalidUrl { .. }), "{raw}: {err}");
        }
    }

    #[test]
    fn passwords_never_show() {
        let url = DatabaseUrl::parse("mysql://app:s3cret@db.example:3306/rs").unwrap();
        for shown in [
            url.to_string(),
            format!("{url:?}"),
            serde_json::to_string(&url).unwrap(),
        ] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("db.example"), "{shown}");
        }
        assert_eq!(url.expose(), "mysql://app:s3cret@db.example:3306/rs");
        assert_eq!(redact("my sql://u:secret@h/x"), "my sql://***@h/x");
    }

    #[test]
    fn mariadb_scheme_is_spoken_as_mysql() {
        let url = DatabaseUrl::parse("mariadb://root@h:3306/rs").unwrap();
        assert_eq!(url.mysql_url(), "mysql://root@h:3306/rs");
        assert_eq!(url.host().as_deref(), Some("h:3306"));
        assert_eq!(url.database_name().as_deref(), Some("rs"));
        let other = url.with_database("other").unwrap();
        assert_eq!(other.database_name().as_deref(), Some("other"));
    }
}
