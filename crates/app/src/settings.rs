//! The full settings of a regionsync process: ship's sections plus each container's section.
//! Loading (defaults → file → environment) and validation are ship's (`ship::config`).

use std::path::Path;

use broker::BrokerConfig;
use serde::{Deserialize, Serialize};
use ship::auth::AuthSettings;
use ship::config::{
    self, check_region_id, ConfigError, ConfigProblem, DatabaseSettings, HttpSettings, LogSettings,
    Validate,
};
use ship::db::DatabaseUrl;
use sync::{AlertsConfig, SyncConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// This region's id, a slug like `eu-west`.
    pub region_id: String,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub log: LogSettings,
    pub sync: SyncConfig,
    /// How this region verifies the tokens peers present.
    pub auth: AuthSettings,
    /// The broker role, or where the broker is.
    pub broker: BrokerConfig,
    /// Anomaly alerts: thresholds and the webhook.
    pub alerts: AlertsConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            region_id: "local".into(),
            http: HttpSettings::default(),
            database: DatabaseSettings::default(),
            log: LogSettings::default(),
            sync: SyncConfig::default(),
            auth: AuthSettings::default(),
            broker: BrokerConfig::default(),
            alerts: AlertsConfig::default(),
        }
    }
}

impl Settings {
    /// Load from the layers (see `ship::config`): defaults, then `file` (or the file named by
    /// `REGIONSYNC_CONFIG`), then `REGIONSYNC_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let from_env = std::env::var_os(config::CONFIG_FILE_ENV)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from);
        config::load(file.or(from_env.as_deref()))
    }

    /// The settings as TOML with secrets redacted (`regionsync config show`): secrets
    /// (`broker.credential`, `broker.signing_key`) and the database URL's password print `***`
    /// by their own `Serialize`; the other URLs lose any password here, and the alert webhook
    /// its path and query (a webhook URL's path is commonly its secret token).
    pub fn to_redacted_toml(&self) -> Result<String, toml::ser::Error> {
        let mut shown = self.clone();
        let broker = &mut shown.broker;
        for url in [&mut broker.url, &mut broker.public_url]
            .into_iter()
            .flatten()
        {
            *url = DatabaseUrl::redact_text(url);
        }
        for url in broker.peer_urls.values_mut() {
            *url = DatabaseUrl::redact_text(url);
        }
        if let Some(url) = shown.alerts.webhook_url.as_mut() {
            *url = redact_webhook(url);
        }
        toml::to_string_pretty(&shown)
    }
}

/// `https://hooks.example.com/services/T0/B0/XXXX?token=…` → `https://hooks.example.com/***`.
fn redact_webhook(raw: &str) -> String {
    match reqwest::Url::parse(raw) {
        Ok(parsed) if parsed.has_host() => {
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            let hidden = parsed.path() != "/" || parsed.query().is_some();
            format!(
                "{}://{}{port}/{}",
                parsed.scheme(),
                parsed.host_str().unwrap_or_default(),
                if hidden { "***" } else { "" }
            )
        }
        _ => "***".to_string(),
    }
}

impl Validate for Settings {
    fn validate(&self, _prefix: &str, problems: &mut Vec<ConfigProblem>) {
        if let Err(message) = check_region_id(&self.region_id) {
            problems.push(ConfigProblem::new("region_id", message));
        }
        self.http.validate("http", problems);
        self.database.validate("database", problems);
        self.log.validate("log", problems);
        self.sync.validate("sync", problems);
        self.auth.validate("auth", problems);
        self.broker.validate("broker", problems);
        self.alerts.validate("alerts", problems);
        let wildcard = self
            .http
            .bind
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_unspecified());
        if wildcard && self.broker.public_url.is_none() {
            problems.push(ConfigProblem::new(
                "broker.public_url",
                format!(
                    "http.bind `{}` listens on every address: set the URL peers reach this region at",
                    self.http.bind
                ),
            ));
        }
        if self.sync.peers.iter().any(|p| p.id == self.region_id) {
            problems.push(ConfigProblem::new(
                "sync.peers",
                format!("`{}` is this region itself", self.region_id),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_reach_debug_or_config_show() {
        let mut settings = Settings::default();
        settings.broker.credential = Some(ship::config::Secret::new("rsc_hunter2"));
        settings.broker.signing_key = Some(ship::config::Secret::new(
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA\n-----END PRIVATE KEY-----",
        ));
        settings.broker.url = Some("https://relay:hunter4@broker.example".into());
        settings
            .broker
            .peer_urls
            .insert("us-east".into(), "https://u:hunter5@us.example".into());
        settings.alerts.webhook_url =
            Some("https://hooks.example.com/services/T0/B0/hunter6?k=hunter7".into());
        let debug = format!("{settings:?}");
        let shown = settings.to_redacted_toml().unwrap_or_default();
        for text in [debug, shown.clone()] {
            assert!(
                !text.contains("hunter2") && !text.contains("MC4CAQ"),
                "{text}"
            );
        }
        for secret in ["hunter4", "hunter5", "hunter6", "hunter7"] {
            assert!(!shown.contains(secret), "{secret}: {shown}");
        }
        assert!(
            shown.contains("https://relay:***@broker.example"),
            "{shown}"
        );
        assert!(shown.contains("https://hooks.example.com/***"), "{shown}");
    }
}
