use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::DbError;

/// The database backends regionsync speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Mysql,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Mysql => "mysql",
            Backend::Postgres => "postgres",
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
/// bare file path (SQLite), `mysql://user:pass@host:3306/db` and `mariadb://…` (MariaDB/MySQL),
/// `postgres://user:pass@host:5432/db` and `postgresql://…` (PostgreSQL).
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
            Some("postgres") | Some("postgresql") => Backend::Postgres,
            Some(other) => {
                let shown = if is_scheme_word(other) { other } else { "…" };
                return Err(invalid(&format!(
                    "database.url has an unknown scheme `{shown}`; expected sqlite://, mysql://, \
                     mariadb://, postgres:// or postgresql://"
                )));
            }
            None => {
                if let Some(reason) = mistyped_scheme(raw) {
                    return Err(invalid(&reason));
                }
                Backend::Sqlite
            }
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
                if path.to_string_lossy().contains('@') {
                    return Err(invalid(
                        "database.url is a SQLite file path containing `@`, which looks like \
                         user:password@host; a server URL is mysql://user:password@host:3306/db",
                    ));
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
            Backend::Postgres => {
                let parsed =
                    ::url::Url::parse(url.expose()).map_err(|e| invalid(&e.to_string()))?;
                // libpq also takes the host (a socket directory) from `?host=…`.
                let host_in_query = parsed
                    .query_pairs()
                    .any(|(k, v)| k == "host" && !v.is_empty());
                if parsed.host_str().unwrap_or_default().is_empty() && !host_in_query {
                    return Err(invalid("the PostgreSQL URL names no host"));
                }
                if parsed.path().trim_start_matches('/').is_empty() {
                    return Err(invalid(
                        "the PostgreSQL URL names no database (postgres://user@host:5432/NAME)",
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

    /// Any URL-like text (a setting, a mistyped URL) with its password hidden: the password of
    /// `scheme://user:password@host/…` becomes `***`, and in text that is no such URL but has
    /// an `@`, everything before the last `@` but a leading scheme and the user name.
    pub fn redact_text(raw: &str) -> String {
        redact(raw)
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

/// Replace the password of a `scheme://user:password@host/...` URL by `***`; in anything else
/// that has an `@` (a mistyped `mysql//user:password@host/db`, a `mysql:u:p@h` without `//`)
/// everything before the last `@` but a leading scheme and a user name.
pub(crate) fn redact(raw: &str) -> String {
    match ::url::Url::parse(raw) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // set_password only fails for URLs that cannot have credentials, and this one has one.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        // An authority with a user but no password, or no `@` at all: nothing to hide.
        Ok(parsed) if !parsed.username().is_empty() || !raw.contains('@') => raw.to_string(),
        // Not a URL we understand: hide everything between "://" and the last '@'.
        _ => match (raw.find("://"), raw.rfind('@')) {
            (Some(start), Some(at)) if at > start => {
                format!("{}://***{}", &raw[..start], &raw[at..])
            }
            (_, Some(at)) => {
                let (prefix, rest) = split_scheme_prefix(&raw[..at]);
                format!("{prefix}{}{}", mask_userinfo(rest), &raw[at..])
            }
            _ => raw.to_string(),
        },
    }
}

/// `user:password` → `user:***`; anything else (no `:`, a user with a `/`) → `***`.
fn mask_userinfo(userinfo: &str) -> String {
    match userinfo.split_once(':') {
        Some((user, _)) if !user.is_empty() && !user.contains(['/', '\\']) => format!("{user}:***"),
        _ => "***".to_string(),
    }
}

/// A scheme name: a letter, then letters, digits, `+`, `-`, `.`.
fn is_scheme_word(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Split `mysql//rest` / `mysql:rest` / `sqlite:/rest` into the scheme-like word with its
/// separators (`:`, `/`, `\`) and the rest; ("", whole) when the text does not start so.
fn split_scheme_prefix(raw: &str) -> (&str, &str) {
    let word = raw
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .unwrap_or(raw.len());
    let rest = &raw[word..];
    let separators = rest.len() - rest.trim_start_matches([':', '/', '\\']).len();
    if word == 0 || separators == 0 || !is_scheme_word(&raw[..word]) {
        return ("", raw);
    }
    raw.split_at(word + separators)
}

/// Why a URL without `://` is a mistyped one rather than a SQLite file path (`None` if it can
/// be a path): `mysql`, `mysql:…`, `mysql/…`, `mariadb…`, `postgres…`, `sqlite:…`, `sqlite//…`,
/// `file:…`, any other `word:…` but a Windows drive (`C:\…`, `C:/…`). The reason suggests the
/// right form, redacted.
fn mistyped_scheme(raw: &str) -> Option<String> {
    let lower = raw.to_ascii_lowercase();
    let separator = |c: char| matches!(c, ':' | '/' | '\\');
    for (scheme, needs_separator) in [("mysql", true), ("mariadb", false), ("postgres", false)] {
        let Some(after) = lower.strip_prefix(scheme) else {
            continue;
        };
        if needs_separator && !(after.is_empty() || after.starts_with(separator)) {
            continue;
        }
        let rest = raw[scheme.len()..]
            .trim_start_matches(|c: char| c.is_ascii_alphanumeric())
            .trim_start_matches(separator);
        return Some(suggestion(scheme, rest));
    }
    let (prefix, rest) = split_scheme_prefix(raw);
    let word_len = prefix.trim_end_matches(separator).len();
    let word = &lower[..word_len];
    let separators = &prefix[word_len..];
    match word {
        "" => None,
        "sqlite" | "file" if separators.starts_with(':') || separators.starts_with("//") => {
            // `sqlite:/abs.db` meant `sqlite:///abs.db`.
            let rest = if separators == ":/" {
                &raw[word_len + 1..]
            } else {
                rest
            };
            Some(suggestion("sqlite", rest))
        }
        // A Windows drive: `C:\data\region.db`, `C:/data/region.db`.
        _ if word_len == 1 => None,
        _ if separators.starts_with(':') => Some(format!(
            "database.url starts with a scheme `{}:` but has no `://`, and regionsync knows no \
             such scheme; set database.url to sqlite://PATH (or a plain file path), \
             mysql://user:password@host:3306/db, mariadb://… or postgres://user:password@host:5432/db",
            &raw[..word_len],
        )),
        _ => None,
    }
}

/// The reason for a mistyped URL of a known scheme, with the suggested form (redacted; the
/// error shows the URL itself, redacted too).
fn suggestion(scheme: &str, rest: &str) -> String {
    let suggested = redact(&format!("{scheme}://{rest}"));
    format!(
        "database.url is not a URL (no `://` after the scheme) and not a plain SQLite file path; \
         did you mean {suggested}?"
    )
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
            (
                "postgres://postgres@127.0.0.1:5432/regionsync",
                Backend::Postgres,
            ),
            (
                "postgresql://app:pw@db.example/regionsync",
                Backend::Postgres,
            ),
            (
                "postgres:///regionsync?host=/var/run/postgresql",
                Backend::Postgres,
            ),
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
            "postgres://u@h",
            "postgres://u@h/",
            "postgresql:///db",
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
    fn postgres_urls_keep_their_scheme_and_name_host_and_database() {
        for raw in [
            "postgres://app:s3cret@db.example:5432/rs",
            "postgresql://app:s3cret@db.example:5432/rs",
        ] {
            let url = DatabaseUrl::parse(raw).unwrap();
            assert_eq!(url.backend(), Backend::Postgres);
            assert_eq!(url.expose(), raw);
            assert!(!url.to_string().contains("s3cret"), "{url}");
            assert_eq!(url.host().as_deref(), Some("db.example:5432"));
            assert_eq!(url.database_name().as_deref(), Some("rs"));
            let other = url.with_database("other").unwrap();
            assert_eq!(other.backend(), Backend::Postgres);
            assert_eq!(other.database_name().as_deref(), Some("other"));
            assert!(
                other.expose().contains("app:s3cret@"),
                "{}",
                other.redacted()
            );
        }
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

    /// Mistyped URLs used to run on a new SQLite file (`./mysql/u:p@…/db`) with the password in
    /// the log: each is refused, the message names `database.url`, suggests the right form when
    /// the scheme is known, and never shows the password.
    #[test]
    fn mistyped_schemes_are_refused_without_the_password() {
        let cases: [(&str, Option<&str>); 17] = [
            (
                "mysql//u:s3cret@127.0.0.1:3306/db",
                Some("mysql://u:***@127.0.0.1:3306/db"),
            ),
            (
                "mysql:u:s3cret@127.0.0.1:3306/db",
                Some("mysql://u:***@127.0.0.1:3306/db"),
            ),
            (
                "mysql:/u:s3cret@127.0.0.1:3306/db",
                Some("mysql://u:***@127.0.0.1:3306/db"),
            ),
            (
                "mysql/u:s3cret@127.0.0.1:3306/db",
                Some("mysql://u:***@127.0.0.1:3306/db"),
            ),
            ("mysql:\\\\u:s3cret@h/db", Some("mysql://u:***@h/db")),
            ("MySQL//u:s3cret@h/db", Some("mysql://u:***@h/db")),
            (
                "mariadb//u:s3cret@h:3306/db",
                Some("mariadb://u:***@h:3306/db"),
            ),
            (
                "mariadb:u:s3cret@h:3306/db",
                Some("mariadb://u:***@h:3306/db"),
            ),
            ("postgres//u:s3cret@h/db", Some("postgres://u:***@h/db")),
            ("postgresql:u:s3cret@h/db", Some("postgres://u:***@h/db")),
            ("sqlite:data/region.db", Some("sqlite://data/region.db")),
            (
                "sqlite:/var/lib/region.db",
                Some("sqlite:///var/lib/region.db"),
            ),
            ("sqlite//data/region.db", Some("sqlite://data/region.db")),
            ("file:data/region.db", Some("sqlite://data/region.db")),
            ("msql:u:s3cret@h/db", None),
            ("./mysql/u:s3cret@127.0.0.1:3306/db", None),
            ("sqlite://u:s3cret@h/db", None),
        ];
        for (raw, suggested) in cases {
            let err = DatabaseUrl::parse(raw).map(|_| ()).unwrap_err();
            let message = err.to_string();
            assert!(
                matches!(err, DbError::InvalidUrl { .. }),
                "{raw}: {message}"
            );
            assert!(message.contains("database.url"), "{raw}: {message}");
            assert!(!message.contains("s3cret"), "{raw}: {message}");
            if let Some(suggested) = suggested {
                assert!(
                    message.contains(&format!("did you mean {suggested}?")),
                    "{raw}: {message}"
                );
            }
        }
    }

    #[test]
    fn paths_that_merely_look_unusual_are_still_sqlite_files() {
        for raw in [
            "data/region.db",
            "./mysql-data/region.db",
            "mysql.db",
            "sqlite/region.db",
            "C:\\data\\region.db",
            "C:/data/region.db",
            "/var/lib/postgres-backup/region.db",
        ] {
            let url = DatabaseUrl::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(url.backend(), Backend::Sqlite, "{raw}");
        }
    }

    #[test]
    fn redact_hides_userinfo_in_scheme_less_strings() {
        for (raw, shown) in [
            ("mysql//u:s3cret@h:3306/db", "mysql//u:***@h:3306/db"),
            ("mysql:u:s3cret@h:3306/db", "mysql:u:***@h:3306/db"),
            ("u:s3cret@h:3306/db", "u:***@h:3306/db"),
            ("./mysql/u:s3cret@h/db", "***@h/db"),
            ("mysql//u:p@ss:w0rd@h/db", "mysql//u:***@h/db"),
            ("s3cret@h/db", "***@h/db"),
            ("data/region.db", "data/region.db"),
            ("mysql://root@h/db", "mysql://root@h/db"),
        ] {
            assert_eq!(redact(raw), shown, "{raw}");
        }
    }
}
