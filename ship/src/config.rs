//! Layered settings: built-in defaults → optional TOML file → environment.
//!
//! - Defaults are the `Default` impls (`#[serde(default)]` on every section), so `regionsync serve`
//!   with no configuration at all runs one region on a SQLite file under `./data/`.
//! - The file comes from `--config PATH` or `REGIONSYNC_CONFIG`; a named file that does not
//!   exist is an error, not silently ignored.
//! - Environment variables are `REGIONSYNC_` + the key path joined with `__`, e.g.
//!   `REGIONSYNC_REGION_ID=eu-west`, `REGIONSYNC_DATABASE__URL=mysql://…`.
//! - Unknown keys are errors (a typo must not silently fall back to a default).
//!
//! The sections here are the ones ship itself needs; the app composes them with each
//! container's section into the full settings type.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::db::{DatabaseUrl, PoolOptions};

/// The environment variable prefix of every setting.
pub const ENV_PREFIX: &str = "REGIONSYNC_";
/// The environment variable naming the configuration file.
pub const CONFIG_FILE_ENV: &str = "REGIONSYNC_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Parse(String),
    #[error("invalid configuration:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<ConfigProblem> },
}

/// One thing wrong with the settings: the key path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl ConfigProblem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Settings sections check themselves after loading.
pub trait Validate {
    /// Push every problem found; `prefix` is the section's key path (e.g. `database`).
    fn validate(&self, prefix: &str, problems: &mut Vec<ConfigProblem>);
}

/// Load `T` from the layers, then validate it.
pub fn load<T>(file: Option<&Path>) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Validate,
{
    let mut figment = Figment::new();
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError::MissingFile(path.to_path_buf()));
        }
        figment = figment.merge(Toml::file(path));
    }
    figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__").ignore(&["config"]));
    let settings: T = figment
        .extract()
        .map_err(|e| ConfigError::Parse(e.to_string()))?;
    let mut problems = Vec::new();
    settings.validate("", &mut problems);
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(ConfigError::Invalid { problems })
    }
}

/// Join a section prefix and a key into a key path.
pub fn key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A region id: a slug `[a-z0-9-]{1,32}`.
pub fn check_region_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a region id: use 1 to 32 characters from a-z, 0-9 and '-'",
            crate::errors::clip(id)
        ))
    }
}

/// `[http]`: where the web process listens and what it accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Address to listen on, e.g. `127.0.0.1:8080` or `0.0.0.0:8080`. Port 0 picks a free port.
    pub bind: String,
    /// Largest request body accepted, in bytes; larger bodies get 413 `payload_too_large`.
    pub max_body_bytes: usize,
    /// Seconds a graceful shutdown waits for in-flight requests.
    pub shutdown_timeout_secs: u64,
    /// HTTP worker threads; defaults to the number of cores.
    pub workers: Option<usize>,
    /// Seconds a request body may pause between two pieces before it is answered
    /// `408 request_timeout` and the connection closed.
    pub body_idle_timeout_secs: u64,
    /// Seconds a whole request body may take to arrive (a body dripped slowly enough never
    /// pauses long; this bounds it too).
    pub body_timeout_secs: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            max_body_bytes: 8 * 1024 * 1024,
            shutdown_timeout_secs: 10,
            workers: None,
            body_idle_timeout_secs: 5,
            body_timeout_secs: 30,
        }
    }
}

impl Validate for HttpSettings {
    fn validate(&self, prefix: &str, problems: &mut Vec<ConfigProblem>) {
        if self.bind.parse::<SocketAddr>().is_err() {
            problems.push(ConfigProblem::new(
                key(prefix, "bind"),
                format!("`{}` is not an address like 127.0.0.1:8080", self.bind),
            ));
        }
        if self.max_body_bytes < 1024 {
            problems.push(ConfigProblem::new(
                key(prefix, "max_body_bytes"),
                "must be at least 1024",
            ));
        }
        for (name, secs) in [
            ("body_idle_timeout_secs", self.body_idle_timeout_secs),
            ("body_timeout_secs", self.body_timeout_secs),
        ] {
            if secs == 0 {
                problems.push(ConfigProblem::new(key(prefix, name), "must be at least 1"));
            }
        }
        if self.workers == Some(0) {
            problems.push(ConfigProblem::new(
                key(prefix, "workers"),
                "must be at least 1",
            ));
        }
    }
}

/// `[database]`: which database this region uses and how many connections it keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://data/regionsync.db` (default), `mysql://user:pass@host:3306/db`.
    pub url: DatabaseUrl,
    pub pool_size: u32,
    /// Seconds to wait for the database to answer (first connection and pool checkout).
    pub connect_timeout_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: default_database_url(),
            pool_size: 8,
            connect_timeout_secs: 5,
        }
    }
}

fn default_database_url() -> DatabaseUrl {
    DatabaseUrl::sqlite_file("data/regionsync.db")
}

impl DatabaseSettings {
    pub fn pool_options(&self) -> PoolOptions {
        PoolOptions {
            max_size: self.pool_size,
            connect_timeout: Duration::from_secs(self.connect_timeout_secs),
        }
    }
}

impl Validate for DatabaseSettings {
    fn validate(&self, prefix: &str, problems: &mut Vec<ConfigProblem>) {
        if !(1..=256).contains(&self.pool_size) {
            problems.push(ConfigProblem::new(
                key(prefix, "pool_size"),
                "must be between 1 and 256",
            ));
        }
        if !(1..=120).contains(&self.connect_timeout_secs) {
            problems.push(ConfigProblem::new(
                key(prefix, "connect_timeout_secs"),
                "must be between 1 and 120",
            ));
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (default).
    #[default]
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `[log]`: how the process logs. `RUST_LOG`, when set, overrides `filter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing filter directive, e.g. `info` or `info,sync=debug`.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            filter: "info".into(),
        }
    }
}

impl Validate for LogSettings {
    fn validate(&self, prefix: &str, problems: &mut Vec<ConfigProblem>) {
        if tracing_subscriber::EnvFilter::try_new(&self.filter).is_err() {
            problems.push(ConfigProblem::new(
                key(prefix, "filter"),
                format!("`{}` is not a valid log filter", self.filter),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_database_is_a_sqlite_file_under_data() {
        let db = DatabaseSettings::default();
        assert_eq!(db.url.backend(), crate::db::Backend::Sqlite);
        assert_eq!(db.url.sqlite_path(), PathBuf::from("data/regionsync.db"));
    }

    #[test]
    fn region_ids_are_slugs() {
        for ok in ["eu-west", "a", "us-east-1", "x".repeat(32).as_str()] {
            assert!(check_region_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "EU", "eu_west", "eu west", "x".repeat(33).as_str(), "é"] {
            assert!(check_region_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sections_report_every_problem_with_its_key() {
        let mut problems = Vec::new();
        HttpSettings {
            bind: "nowhere".into(),
            max_body_bytes: 10,
            workers: Some(0),
            ..HttpSettings::default()
        }
        .validate("http", &mut problems);
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["http.bind", "http.max_body_bytes", "http.workers"]);
    }
}

/// A secret setting (a credential, a private key): `Debug` and `Serialize` print `***`, so
/// neither `config show` nor a logged or panicking `{:?}` reveals it; [`Secret::expose`] gives
/// the value to the one place that uses it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

#[cfg(test)]
mod secret_tests {
    use super::Secret;

    #[test]
    fn a_secret_never_prints() {
        let secret: Secret =
            serde_json::from_str("\"rsc_hunter2\"").unwrap_or_else(|_| Secret::new(""));
        assert_eq!(secret.expose(), "rsc_hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(
            serde_json::to_string(&secret).unwrap_or_default(),
            "\"***\""
        );
    }
}
